//! Checking plugins from the CLI:
//!
//! * `pipe plugin check LIB [--config FILE]` ([`run`]): the conformance kit
//!   (`pipe_plugin_sdk::conformance`) against every plugin of a library, or against a built-in
//!   by name. One line per check; exit 0 when none failed, 1 when one did (a library refused
//!   at the handshake counts as a failed `handshake` check), 2 for usage errors.
//! * `pipe validate FILE`: where each plugin comes from ([`describe_plugins`]) and, with
//!   `--check`, the source's probe ([`probe_source`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipe_plugin_sdk::conformance::{self, Options, Report, Status};
use pipe_plugin_sdk::{PluginDescriptor, PluginKind};

use crate::cli::errors::config_error;
use crate::config::env_var;
use crate::config::tables::ConfigTables;
use crate::exit::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};
use crate::plugin_host;
use crate::plugin_host::ExternalPlugin;
use crate::plugin_host::cancel_probe::{CancelOutcome, cancel_latency};
use crate::registry::Registry;

/// Runs the kit. `target` is a library file (`./libacme.so`) or a built-in plugin's name;
/// `config` a TOML file with working configs (see [`ConfigTables`]); `cycles` overrides the
/// measured open/close cycles of the memory check.
pub async fn run(target: &str, config: Option<&Path>, cycles: Option<usize>, registry: &Registry) -> u8 {
    let tables = match config.map(|p| ConfigTables::load(p, &env_var)).transpose() {
        Ok(t) => t,
        Err(e) => return config_error(e),
    };
    let path = Path::new(target);
    // Each plugin, with its library's side when it has one (for the ABI-level cancel check).
    let plugins: Vec<(PluginDescriptor, Option<Arc<ExternalPlugin>>)> = if path.is_file() {
        match plugin_host::loader::load(path) {
            Ok(Some(lib)) => {
                println!(
                    "{:<20} {:<14} PASS  {} {} answers ABI {} ({})",
                    lib.name, "handshake", lib.name, lib.version, lib.abi_version, lib.build_info
                );
                lib.plugins.iter().map(|p| (p.descriptor(), Some(p.clone()))).collect()
            }
            Ok(None) => {
                println!(
                    "{:<20} {:<14} FAIL  not a pipe plugin library: no `pipe_plugin_abi_version` symbol, or dlopen refused it (see the warning above)",
                    target, "handshake"
                );
                return EXIT_FAILED;
            }
            Err(e) => {
                println!("{:<20} {:<14} FAIL  {e}", target, "handshake");
                return EXIT_FAILED;
            }
        }
    } else if let Some(d) = registry.get(target) {
        vec![(d.clone(), None)]
    } else {
        eprintln!("error: `{target}` is neither a file nor a built-in plugin (built-ins: {})", builtin_names(registry));
        return EXIT_CONFIG;
    };
    if plugins.is_empty() {
        println!("{:<20} {:<14} FAIL  the library ships no plugin", target, "descriptor");
        return EXIT_FAILED;
    }
    let only = plugins.len() == 1;
    let mut failed = false;
    for (d, external) in &plugins {
        let mut opts =
            Options { config: tables.as_ref().and_then(|t| t.for_plugin(d.name, only)), ..Options::default() };
        if let Some(n) = cycles {
            opts.cycles = n;
            opts.warm_up_cycles = opts.warm_up_cycles.min(n);
        }
        let report: Report = conformance::check(d, &opts).await;
        print!("{report}");
        failed |= !report.passed();
        if let (Some(ext), Some(cfg), PluginKind::Source) = (external, &opts.config, d.kind()) {
            let (status, detail) = cancel_across_abi(ext, cfg, opts.cancel_within).await;
            println!("{:<20} {:<14} {}  {detail}", d.name, "cancel_abi", status.as_str());
            failed |= status == Status::Fail;
        }
    }
    if failed {
        eprintln!("error: conformance check failed (the FAIL lines above say why)");
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn builtin_names(registry: &Registry) -> String {
    registry.all().iter().map(|e| e.descriptor.name).collect::<Vec<_>>().join(", ")
}

/// How long `pipe validate --check` waits for the source's probe.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `pipe validate --check`: opens the pipeline's source (no state, nothing committed) and runs
/// its [`probe`](pipe_plugin_sdk::Source::probe) within [`PROBE_TIMEOUT`]. Prints one line
/// and returns 0 when it answered, 1 when it failed or timed out (refused credentials name the
/// vendor and the status, never the secret).
pub async fn probe_source(p: &crate::config::Pipeline) -> u8 {
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
            EXIT_OK
        }
        Ok(Err(e)) => {
            eprintln!("error: source `{name}`: check failed: {e}");
            EXIT_FAILED
        }
        Err(_) => {
            eprintln!("error: source `{name}`: check failed: no answer within {} s", PROBE_TIMEOUT.as_secs());
            EXIT_FAILED
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

/// How long the ABI-level cancel check lets the source read before cancelling.
const CANCEL_AFTER: Duration = Duration::from_millis(200);

/// The kit's `cancel` check sees a library through the engine's adapter, whose drop returns at
/// once; this one times the library's own blocked `next_event` after `cancel` (from another
/// thread, as the ABI allows).
async fn cancel_across_abi(
    plugin: &Arc<ExternalPlugin>,
    config: &serde_json::Value,
    within: Duration,
) -> (Status, String) {
    let (plugin, config) = (plugin.clone(), config.clone());
    let outcome = tokio::task::spawn_blocking(move || cancel_latency(&plugin, &config, CANCEL_AFTER, within)).await;
    match outcome {
        Ok(Ok(CancelOutcome::Interrupted(took))) if took <= within => {
            (Status::Pass, format!("`cancel` made the blocked `next_event` return in {} ms", took.as_millis()))
        }
        Ok(Ok(CancelOutcome::Interrupted(took))) => {
            (Status::Fail, format!("`next_event` returned {} ms after `cancel`", took.as_millis()))
        }
        Ok(Ok(CancelOutcome::Hung)) => {
            (Status::Fail, format!("`next_event` still blocked {} ms after `cancel`", within.as_millis()))
        }
        Ok(Ok(CancelOutcome::FinishedFirst)) => (
            Status::Skip,
            format!("the source read to its end within {} ms: nothing to interrupt", CANCEL_AFTER.as_millis()),
        ),
        Ok(Err(e)) => (Status::Fail, e),
        Err(e) => (Status::Fail, format!("the check itself failed: {e}")),
    }
}
