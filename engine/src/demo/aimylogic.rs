//! The Aimylogic demo: the simulated channel of `pipe_tests::aimylogic` → history export →
//! Parquet. The client ids go to the pipeline through a `client_ids_file`, as they would in
//! production (the Chat API cannot list clients).

use std::path::Path;
use std::sync::Arc;

use crate::commands::{config_error, env_var, run_pipeline, EXIT_FAILED, EXIT_OK};
use crate::config;
use crate::registry::Registry;
use crate::run::RunOptions;

/// The demo pipeline, built in so `pipe demo` works from any directory.
const DEMO_PIPELINE: &str = include_str!("../../../pipelines/aimylogic-demo.toml");

/// Runs the Aimylogic demo: `clients` simulated clients → Parquet under `out`.
pub async fn run(out: &Path, clients: usize, quiet: bool) -> u8 {
    use pipe_tests::aimylogic::{generate, AimylogicSim, SimConfig};

    let dataset = Arc::new(generate(&SimConfig::demo(clients)));
    let sim = match AimylogicSim::start(dataset.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the aimylogic simulator on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    println!("aimylogic simulator on {} with {} clients ({} messages)", sim.base_url(), dataset.clients.len(), dataset.expected().len());
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        return EXIT_FAILED;
    }
    let clients_file = out.join("clients.txt");
    let ids: String = dataset.clients.iter().map(|c| format!("{}\n", c.id)).collect();
    if let Err(e) = std::fs::write(&clients_file, ids) {
        eprintln!("error: cannot write {}: {e}", clients_file.display());
        return EXIT_FAILED;
    }
    let base_url = sim.base_url();
    let out_dir = out.display().to_string();
    let clients_path = clients_file.display().to_string();
    let vars = |name: &str| match name {
        "PIPE_DEMO_AIMYLOGIC_URL" => Some(base_url.clone()),
        "PIPE_DEMO_AIMYLOGIC_TOKEN" => Some(dataset.token.clone()),
        "PIPE_DEMO_AIMYLOGIC_CLIENTS" => Some(clients_path.clone()),
        "PIPE_DEMO_OUT" => Some(out_dir.clone()),
        other => env_var(other),
    };
    let registry = Registry::builtin();
    let p = match config::load_str(DEMO_PIPELINE, "pipelines/aimylogic-demo.toml (built in)", "aimylogic-demo", &registry, &vars) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    let code = run_pipeline(&p, &RunOptions { full_refresh: true, ..Default::default() }, quiet, true, None).await;
    if code == EXIT_OK {
        println!("  simulator answered {} requests", sim.requests());
        println!("\nRead it back, for example:\n  duckdb -c \"SELECT sender_role, message_type, count(*) FROM '{out_dir}/messages/**/*.parquet' GROUP BY ALL\"");
    }
    sim.shutdown().await;
    code
}
