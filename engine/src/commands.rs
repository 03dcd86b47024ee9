//! One function per subcommand; each returns the process exit code (design.md §7).

use std::path::Path;

use pipe_plugin_sdk::schema::canonical_schema;

use crate::config::{self, Pipeline};
use crate::progress::Progress;
use crate::registry::Registry;
use crate::run::{self, RunError, RunOptions, RunReport};
use crate::{state, Cli, Command, StateAction};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;
pub const EXIT_DEAD_LETTERS: u8 = 4;

pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs the chosen subcommand.
pub async fn dispatch(cli: Cli) -> u8 {
    let registry = Registry::builtin();
    match cli.command {
        Command::Run { file, limit, full_refresh, report, shard, window } => match config::load_file_all(&file, &registry, &env_var) {
            Ok(p) => run_pipeline(&p, &RunOptions { limit, full_refresh, shard: shard.map(|s| (s.index, s.count)), window }, cli.quiet, false, report.as_deref()).await,
            Err(errors) => config_errors(errors),
        },
        Command::Validate { file, check } => match config::load_file_all(&file, &registry, &env_var) {
            Ok(p) => {
                println!("{}: ok — pipeline `{}`: source `{}`, {} transform(s), sink(s): {}",
                    file.display(), p.name, p.source.descriptor.name, p.transforms.len(),
                    p.sinks.iter().map(|s| s.descriptor.name).collect::<Vec<_>>().join(", "));
                crate::plugin_check::describe_plugins(&p);
                if check { crate::plugin_check::probe_source(&p).await } else { EXIT_OK }
            }
            Err(errors) => config_errors(errors),
        },
        Command::Plugins { plugin_dir } => {
            let mut dirs = plugin_dir;
            dirs.extend(crate::plugin_host::env_plugin_path(env_var("PIPE_PLUGIN_PATH").as_deref()));
            crate::registry::print_plugins(&registry, &dirs)
        }
        Command::Plugin { action: crate::PluginAction::Check { lib, config, cycles } } => {
            crate::plugin_check::run(&lib, config.as_deref(), cycles, &registry).await
        }
        Command::Schema { stream, json } => match canonical_schema(&stream) {
            Some(schema) if json => {
                println!("{}", serde_json::to_string_pretty(schema.as_ref()).expect("schema serializes"));
                EXIT_OK
            }
            Some(schema) => {
                println!("stream `{stream}` (canonical schema v1)");
                for f in schema.fields() {
                    println!("  {:<16} {:<40} {}", f.name(), f.data_type().to_string(), if f.is_nullable() { "nullable" } else { "not null" });
                }
                EXIT_OK
            }
            None => {
                eprintln!("error: unknown stream `{stream}` (the canonical streams are: messages, conversations)");
                EXIT_CONFIG
            }
        },
        Command::State { action } => state_command(action, &registry).await,
        Command::Demo { out, chats, vendor } => crate::demo::run(&out, chats, vendor.as_deref(), cli.quiet).await,
    }
}

/// Prints every configuration problem, one `error:` line each, and returns exit code 2.
fn config_errors(errors: Vec<config::ConfigError>) -> u8 {
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.len() > 1 {
        eprintln!("{} problems in the pipeline file", errors.len());
    }
    EXIT_CONFIG
}

pub(crate) fn config_error(e: config::ConfigError) -> u8 {
    eprintln!("error: {e}");
    EXIT_CONFIG
}

pub(crate) async fn run_pipeline(p: &Pipeline, opts: &RunOptions, quiet: bool, summary_to_stdout: bool, report_file: Option<&Path>) -> u8 {
    let mut progress = Progress::start(quiet);
    tracing::info!(pipeline = %p.name, source = p.source.descriptor.name, "run started");
    let result = run::run(p, opts, &progress).await;
    progress.finish();
    match result {
        Ok(report) => {
            let text = summary(p, &report);
            if summary_to_stdout { println!("{text}") } else if !quiet { eprintln!("{text}") }
            if report.dead_letters > 0 && !p.fail_on_dead_letters && !quiet {
                eprintln!("{}", dead_letter_warning(p, report.dead_letters));
            }
            let code = if !report.stopped_early.is_empty() {
                for why in &report.stopped_early {
                    eprintln!("error: partial: {why}");
                }
                eprintln!("       what arrived is committed; the next run continues from the checkpoint");
                EXIT_PARTIAL
            } else if !report.incomplete.is_empty() {
                let shown: Vec<&str> = report.incomplete.iter().take(20).map(String::as_str).collect();
                eprintln!(
                    "error: partial: {} conversation(s) arrived incomplete (fewer messages than the vendor reports): {}{}",
                    report.incomplete.len(),
                    shown.join(", "),
                    if report.incomplete.len() > shown.len() { ", ..." } else { "" }
                );
                EXIT_PARTIAL
            } else if report.dead_letters > 0 && p.fail_on_dead_letters {
                eprintln!("error: {} dead letter(s) in {} and fail_on_dead_letters = true", report.dead_letters, p.dead_letter_dir.display());
                EXIT_DEAD_LETTERS
            } else {
                EXIT_OK
            };
            if let Some(path) = report_file {
                let outcome = match code { EXIT_OK => "success", EXIT_PARTIAL => "partial", _ => "dead_letters" };
                let json = serde_json::to_string_pretty(&report.to_json(&p.name, outcome)).expect("report serializes");
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("error: cannot write the run report to {}: {e}", path.display());
                    return EXIT_FAILED;
                }
            }
            code
        }
        Err(RunError::Config(msg)) => {
            eprintln!("error: {msg}");
            EXIT_CONFIG
        }
        Err(RunError::Failed(e)) => {
            eprintln!("error: run of `{}` failed: {e:#}", p.name);
            eprintln!("       nothing after the last checkpoint was committed; the next run resumes from it");
            EXIT_FAILED
        }
    }
}

/// The warning for a run that produced dead letters but does not fail on them. Names the
/// count and the directory; without a `[dead_letter]` table the records went to the default
/// directory, which the user never chose, so say how to choose one.
fn dead_letter_warning(p: &Pipeline, count: u64) -> String {
    let dir = p.dead_letter_dir.display();
    let mut text = format!(
        "warning: {count} dead letter(s): rows that could not be processed (they are still in the output, unprocessed); records in {dir}"
    );
    // The config fills this exact default when the pipeline has no [dead_letter] table.
    if p.dead_letter_dir == Path::new(".pipe/dead_letter").join(&p.name) {
        text.push_str("\n         (no [dead_letter] table in the pipeline: add `[dead_letter] path = \"...\"` to choose where they go)");
    }
    text
}

/// The end-of-run summary: rows per stream, files, bytes, requests, retries, dead letters,
/// elapsed.
fn summary(p: &Pipeline, r: &RunReport) -> String {
    let mut out = format!("pipeline `{}` finished in {:.1} s\n", p.name, r.elapsed.as_secs_f64());
    for (stream, rows) in &r.rows {
        out.push_str(&format!("  {stream:<14} {rows:>10} rows\n"));
    }
    for (sink, s) in &r.sinks {
        if s.files > 0 {
            out.push_str(&format!("  {sink:<24} {} files, {:.1} MiB\n", s.files, s.bytes as f64 / (1024.0 * 1024.0)));
        }
    }
    out.push_str(&format!("  requests {} · retries {} · checkpoints {} · dead letters {}", r.requests, r.retries, r.checkpoints, r.dead_letters));
    if r.dead_letters > 0 {
        out.push_str(&format!(" (in {})", p.dead_letter_dir.display()));
    }
    out
}

async fn state_command(action: StateAction, registry: &Registry) -> u8 {
    let (file, reset) = match &action {
        StateAction::Show { file } => (file, false),
        StateAction::Reset { file } => (file, true),
    };
    let p = match config::load_file(file, registry, &|name| Some(env_var(name).unwrap_or_default())) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    let store = match state::StateStore::open(&p.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let accounts: Vec<Option<String>> = match p.accounts.as_ref().map(|a| &a.list) {
        None => vec![None],
        Some(list) => list.iter().map(|a| Some(a.id.clone())).collect(),
    };
    let mut code = EXIT_OK;
    for account in accounts {
        let key = state::key(&p.name, account.as_deref());
        let at = store.describe(&key);
        if reset {
            match store.remove(&key).await {
                Ok(true) => println!("removed {at}"),
                Ok(false) => println!("no state at {at}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = EXIT_FAILED;
                }
            }
            continue;
        }
        match store.load(&key).await {
            Ok(Some((doc, _))) => println!("{}", serde_json::to_string_pretty(&doc).expect("JSON serializes")),
            Ok(None) => println!("no state yet at {at} (the next run starts from scratch)"),
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_FAILED;
            }
        }
    }
    code
}
