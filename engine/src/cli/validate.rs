//! `pipe validate FILE [--check]`: checks a pipeline file without running it — TOML, plugin
//! names, every plugin's keys and types, `${VAR}` references — and says where each plugin comes
//! from. With `--check` it also probes the source (network): its first authenticated request.

use std::path::Path;

use crate::cli::errors::config_errors;
use crate::config::{self, env_var};
use crate::exit::Exit;
use crate::plugin_host;
use crate::registry::Registry;

/// Validates `file`; with `check`, probes its source ([`probe_source`]).
///
/// Exit: 0 valid (and the probe answered), 2 configuration problems (every one printed, with
/// file, line and key), 1 the probe failed.
pub async fn command(file: &Path, check: bool, registry: &Registry) -> Exit {
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
    if check { probe_source(&p).await } else { Exit::Ok }
}

/// How long `pipe validate --check` waits for the source's probe.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `pipe validate --check`: opens the pipeline's source (no state, nothing committed) and runs
/// its [`probe`](pipe_plugin_sdk::Source::probe) within `PROBE_TIMEOUT`. Prints one line
/// and returns 0 when it answered, 1 when it failed or timed out (refused credentials name the
/// vendor and the status, never the secret).
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
