//! `pipe validate FILE [--check [--report FILE]]`: checks a pipeline file without running it —
//! TOML, plugin names, every plugin's keys and types, `${VAR}` references — and says where each
//! plugin comes from. With `--check` it also tests the source against the live account
//! (network, read-only): a built-in source's contract report ([`pipe_plugin_sdk::contract`]),
//! or a library source's first authenticated request.

use std::path::Path;

use pipe_plugin_sdk::contract::{ContractProbe, ContractReport};

use crate::cli::errors::config_errors;
use crate::config::{self, env_var};
use crate::exit::Exit;
use crate::plugin_host;
use crate::registry::Registry;

/// Validates `file`; with `check`, tests its source ([`check_source`]) and writes the contract
/// report as JSON to `report` when given.
///
/// Exit: 0 valid (and every required contract check passed), 2 configuration problems (every
/// one printed, with file, line and key), 1 the check failed (a required contract check
/// failed, credentials refused, the vendor unreachable, the report not writable).
pub async fn command(file: &Path, check: bool, report: Option<&Path>, registry: &Registry) -> Exit {
    let p = match config::load_file_all(file, registry, &env_var) {
        Ok(p) => p,
        Err(errors) => return config_errors(errors),
    };
    println!(
        "{}: ok — pipeline `{}`: source `{}`, {} transform(s), sink(s): {}",
        file.display(),
        p.name,
        p.source.descriptor.name,
        p.transforms.len(),
        p.sinks.iter().map(|s| s.descriptor.name).collect::<Vec<_>>().join(", ")
    );
    describe_plugins(&p);
    if check { check_source(&p, report).await } else { Exit::Ok }
}

/// How long `pipe validate --check` waits for the source's probe.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The contract probe of a built-in source, by name; `None` for other plugins (and for a
/// library plugin that overrides a built-in: the C ABI has no probe entry point).
fn builtin_contract(name: &str) -> Option<ContractProbe> {
    if plugin_host::loader::library_of(name).is_some() {
        return None;
    }
    let probe: ContractProbe = match name {
        "giosg" => std::sync::Arc::new(pipe_plugin_giosg::contract::probe),
        "alli" => std::sync::Arc::new(pipe_plugin_alli::contract::probe),
        "aimylogic" => std::sync::Arc::new(pipe_plugin_aimylogic::contract::probe),
        "rest" => std::sync::Arc::new(pipe_plugin_rest::contract::probe),
        _ => return None,
    };
    Some(probe)
}

/// `pipe validate --check`: a built-in source's contract report (printed line by line, then a
/// summary), else the source's one-line [`probe`](pipe_plugin_sdk::Source::probe). With
/// `[[source.accounts]]`, the first account is checked. Bounded by `PROBE_TIMEOUT`.
///
/// Exit 0 when every required check passed (or the probe answered), 1 otherwise; refused
/// credentials name the vendor and the status, never the secret.
pub async fn check_source(p: &crate::config::Pipeline, report: Option<&Path>) -> Exit {
    let name = p.source.descriptor.name;
    if let Some(accounts) = &p.accounts
        && let Some(first) = accounts.list.first()
    {
        println!("source `{name}`: checking account `{}` (the first of {})", first.id, accounts.list.len());
    }
    let Some(contract) = builtin_contract(name) else {
        if report.is_some() {
            eprintln!("note: source `{name}` is a library plugin: it has no contract report, --report is not written");
        }
        return probe_source(p).await;
    };
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, contract(p.source.config.clone())).await;
    let result: ContractReport = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("error: source `{name}`: check failed: {e}");
            return Exit::Failed;
        }
        Err(_) => {
            eprintln!("error: source `{name}`: check failed: no answer within {} s", PROBE_TIMEOUT.as_secs());
            return Exit::Failed;
        }
    };
    print!("{}", result.render());
    if let Some(path) = report {
        let text = serde_json::to_string_pretty(&result.to_json()).expect("the report serializes");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("error: cannot write the contract report to {}: {e}", path.display());
            return Exit::Failed;
        }
    }
    if result.passed() {
        Exit::Ok
    } else {
        for c in result.failed_required() {
            eprintln!("error: source `{name}`: required check `{}` {}: {}", c.name, c.status.label(), c.seen);
        }
        Exit::Failed
    }
}

/// A library source's check: opens it (no state, nothing committed) and runs its
/// [`probe`](pipe_plugin_sdk::Source::probe) within `PROBE_TIMEOUT`. Prints one line and
/// returns 0 when it answered, 1 when it failed or timed out.
pub async fn probe_source(p: &crate::config::Pipeline) -> Exit {
    use pipe_plugin_sdk::{PluginFactory, SourceContext};
    let spec = &p.source;
    let PluginFactory::Source(open) = &spec.descriptor.factory else { unreachable!("the config resolved a source") };
    let ctx = SourceContext { pipeline: p.name.clone(), state: None, limit: Some(1), metrics: Default::default() };
    let name = spec.descriptor.name;
    let outcome = async {
        let mut source = open(spec.config.clone(), ctx)?;
        source.probe().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, outcome).await {
        Ok(Ok(what)) => {
            println!("source `{name}`: ok — {what}");
            Exit::Ok
        }
        Ok(Err(e)) => {
            eprintln!("error: source `{name}`: check failed: {e}");
            Exit::Failed
        }
        Err(_) => {
            eprintln!("error: source `{name}`: check failed: no answer within {} s", PROBE_TIMEOUT.as_secs());
            Exit::Failed
        }
    }
}

/// For `pipe validate`: one line per plugin of the pipeline — role, name, version, and where
/// it comes from (built in, or which library with which ABI version).
pub fn describe_plugins(p: &crate::config::Pipeline) {
    let specs = std::iter::once(&p.source).chain(&p.transforms).chain(&p.sinks);
    for spec in specs {
        let d = &spec.descriptor;
        // A loaded library's plugin is used only when no built-in has its name, or the
        // pipeline allowed the override; either way the load succeeded, so the library wins.
        let origin = match plugin_host::loader::library_of(d.name) {
            Some(lib) => {
                format!("{} (plugin ABI {}, {} {})", lib.path.display(), lib.abi_version, lib.name, lib.version)
            }
            None => "built-in".to_string(),
        };
        println!("  {:<14} {:<16} {:<8} {origin}", spec.path, d.name, d.version);
    }
}
