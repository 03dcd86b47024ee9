//! `pipe demo`: for each vendor, start its simulated account on 127.0.0.1 (`pipe_sim::demo`),
//! fill the `${PIPE_DEMO_*}` variables of its demo pipeline (`pipelines/<vendor>-demo.toml`,
//! built in so the demo works from any directory) and run it like `pipe run` would, into
//! `<out>/<vendor>/`. A second demo replaces the output of the first.

use std::path::Path;

use pipe_sim::demo::{DemoAccount, VENDORS};

use crate::cli::errors::config_error;
use crate::cli::run::run_pipeline;
use crate::config::{self, env_var};
use crate::exit::Exit;
use crate::registry::Registry;
use crate::runtime::RunOptions;

/// The demo pipeline of each vendor in [`VENDORS`].
const PIPELINES: &[(&str, &str)] = &[
    ("giosg", include_str!("../../../pipelines/giosg-demo.toml")),
    ("alli", include_str!("../../../pipelines/alli-demo.toml")),
    ("aimylogic", include_str!("../../../pipelines/aimylogic-demo.toml")),
];

/// The file that marks a directory as a demo's output, so a later demo may replace it.
const MARKER: &str = ".pipe-demo";

/// Runs the demo of `vendor`, or of every vendor when `None`; `size` is the number of
/// conversations each simulated account holds. Returns the exit code of the first vendor
/// whose run did not succeed, else 0.
pub async fn command(out: &Path, size: usize, vendor: Option<&str>, quiet: bool) -> Exit {
    let chosen: Vec<&str> = match vendor {
        None | Some("all") => VENDORS.to_vec(),
        Some(v) if VENDORS.contains(&v) => vec![v],
        Some(v) => {
            eprintln!("error: `pipe demo` has no vendor `{v}` (known: {}, all)", VENDORS.join(", "));
            return Exit::Config;
        }
    };
    for v in chosen {
        let code = run_vendor(v, &out.join(v), size, quiet).await;
        if code != Exit::Ok {
            return code;
        }
    }
    Exit::Ok
}

async fn run_vendor(vendor: &str, dir: &Path, size: usize, quiet: bool) -> Exit {
    let pipeline = PIPELINES.iter().find(|(v, _)| *v == vendor).map(|(_, text)| *text).expect("a pipeline per vendor");
    if let Err(e) = clear_previous_output(dir) {
        eprintln!("error: {e}");
        return Exit::Config;
    }
    let account = match DemoAccount::start(vendor, size).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot start the {vendor} simulator on 127.0.0.1: {e}");
            return Exit::Failed;
        }
    };
    println!("{}", account.description);
    let out_dir = dir.display().to_string();
    let vars = |name: &str| match account.vars.iter().find(|(k, _)| *k == name) {
        Some((_, value)) => Some(value.clone()),
        None if name == "PIPE_DEMO_OUT" => Some(out_dir.clone()),
        None => env_var(name),
    };
    let origin = format!("pipelines/{vendor}-demo.toml (built in)");
    let code = match config::load_str(pipeline, &origin, &format!("{vendor}-demo"), &Registry::builtin(), &vars) {
        Ok(p) => run_pipeline(&p, &RunOptions { full_refresh: true, ..Default::default() }, quiet, true, None).await,
        Err(e) => config_error(e),
    };
    if code == Exit::Ok {
        if let Err(e) =
            std::fs::write(dir.join(MARKER), "written by `pipe demo`; a later demo replaces this directory\n")
        {
            eprintln!("warning: cannot mark {} as demo output: {e}", dir.display());
        }
        println!("  simulator answered {} requests", account.requests());
        println!(
            "\nRead it back, for example:\n  duckdb -c \"SELECT sender_role, message_type, count(*) FROM '{out_dir}/messages/**/*.parquet' GROUP BY ALL\""
        );
    }
    account.shutdown().await;
    code
}

/// Removes `dir` when an earlier demo wrote it (it holds [`MARKER`]), so rows are never
/// doubled; refuses a non-empty directory the demo did not write.
fn clear_previous_output(dir: &Path) -> Result<(), String> {
    let Ok(mut entries) = std::fs::read_dir(dir) else { return Ok(()) };
    if dir.join(MARKER).exists() {
        return std::fs::remove_dir_all(dir)
            .map_err(|e| format!("cannot replace the earlier demo output {}: {e}", dir.display()));
    }
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(format!(
            "{} exists and was not written by `pipe demo`: choose another --out (the demo replaces only its own output)",
            dir.display()
        )),
    }
}
