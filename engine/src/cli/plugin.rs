//! `pipe plugin check LIB [--config FILE]` ([`command`]): the conformance kit
//! (`pipe_plugin_sdk::conformance`) against every plugin of a library, or against a built-in by
//! name. One line per check; exit 0 when none failed, 1 when one did (a library refused at the
//! handshake counts as a failed `handshake` check), 2 for usage errors.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipe_plugin_sdk::conformance::{self, Options, Report, Status};
use pipe_plugin_sdk::{PluginDescriptor, PluginKind};

use crate::cli::errors::config_error;
use crate::config::env_var;
use crate::config::tables::ConfigTables;
use crate::exit::Exit;
use crate::plugin_host;
use crate::plugin_host::ExternalPlugin;
use crate::plugin_host::cancel_probe::{CancelOutcome, cancel_latency};
use crate::registry::Registry;

/// Runs the kit. `target` is a library file (`./libacme.so`) or a built-in plugin's name;
/// `config` a TOML file with working configs (see [`ConfigTables`]); `cycles` overrides the
/// measured open/close cycles of the memory check.
pub async fn command(target: &str, config: Option<&Path>, cycles: Option<usize>, registry: &Registry) -> Exit {
    let tables = match config.map(|p| ConfigTables::load(p, &env_var)).transpose() {
        Ok(t) => t,
        Err(e) => return config_error(e),
    };
    let path = Path::new(target);
    if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
        return check_spec(target, tables.as_ref(), cycles, registry).await;
    }
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
                return Exit::Failed;
            }
            Err(e) => {
                println!("{:<20} {:<14} FAIL  {e}", target, "handshake");
                return Exit::Failed;
            }
        }
    } else if let Some(d) = registry.get(target) {
        vec![(d.clone(), None)]
    } else {
        eprintln!("error: `{target}` is neither a file nor a built-in plugin (built-ins: {})", builtin_names(registry));
        return Exit::Config;
    };
    if plugins.is_empty() {
        println!("{:<20} {:<14} FAIL  the library ships no plugin", target, "descriptor");
        return Exit::Failed;
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
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// The glibc tunable that turns off its per-thread caches of freed blocks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const NO_THREAD_CACHES: &str = "glibc.malloc.tcache_count=0";

/// Replaces this process with itself, same arguments, with glibc's per-thread caches of freed
/// blocks (tcache) off, unless they are off already; returns only if that is not possible (not
/// glibc, or the exec failed: then the check runs as it is, and says so in a warning).
///
/// Why: glibc keeps up to seven freed blocks per size class in a cache of each thread and
/// counts them as in use in `mallinfo2`, which the memory check reads. A library's calls hop
/// between threads (tokio's blocking pool on our side, the library's own runtime on its side),
/// so those caches fill over a few hundred open/close cycles and read as 400–1,300 bytes of
/// growth per cycle where nothing leaks (measured on the shipped sinks; heaptrack showed a flat
/// heap). With the caches off the same sinks measure 0–40 B/cycle, and a real leak still shows.
/// The tunable can only be set before the process starts, hence the re-exec.
pub fn without_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if tunables.contains("glibc.malloc.tcache_count") {
            return;
        }
        let tunables =
            if tunables.is_empty() { NO_THREAD_CACHES.to_string() } else { format!("{tunables}:{NO_THREAD_CACHES}") };
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                tracing::warn!("the memory check may read allocator caches as growth: cannot find this program ({e})");
                return;
            }
        };
        let e =
            std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GLIBC_TUNABLES", tunables).exec();
        tracing::warn!("the memory check may read allocator caches as growth: cannot restart without them ({e})");
    }
}

/// `pipe plugin check SPEC.toml`: a vendor spec of the `rest` source gets the checks of a
/// library source. The spec must load (`spec` line: every problem with its line); with
/// `--config` (the `rest` table of a pipeline, or bare keys: `base_url`, `account_id`, ...)
/// the source is opened and read with that spec as `spec`.
async fn check_spec(target: &str, tables: Option<&ConfigTables>, cycles: Option<usize>, registry: &Registry) -> Exit {
    let Some(d) = registry.get("rest") else {
        eprintln!("error: this pipe has no `rest` source to check a vendor spec with");
        return Exit::Config;
    };
    let only_spec = serde_json::json!({ "spec": target });
    match (d.check_config)(&only_spec) {
        Ok(()) => println!("{:<20} {:<14} PASS  {target} is a vendor spec of the `rest` source", d.name, "spec"),
        Err(e) => {
            let message = match e {
                pipe_plugin_sdk::PluginError::Config { message, .. } => message,
                other => other.to_string(),
            };
            println!(
                "{:<20} {:<14} FAIL  {}",
                d.name,
                "spec",
                message.replace('\n', "\n                                          ")
            );
            return Exit::Failed;
        }
    }
    let config = tables.and_then(|t| t.for_plugin("rest", true)).map(|mut c| {
        if let Some(o) = c.as_object_mut() {
            o.insert("spec".into(), serde_json::Value::String(target.to_string()));
        }
        c
    });
    let mut opts = Options { config, ..Options::default() };
    if let Some(n) = cycles {
        opts.cycles = n;
        opts.warm_up_cycles = opts.warm_up_cycles.min(n);
    }
    let report: Report = conformance::check(d, &opts).await;
    print!("{report}");
    if report.passed() {
        Exit::Ok
    } else {
        eprintln!("error: conformance check failed (the FAIL lines above say why)");
        Exit::Failed
    }
}

fn builtin_names(registry: &Registry) -> String {
    registry.all().iter().map(|e| e.descriptor.name).collect::<Vec<_>>().join(", ")
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
