//! The Alli demo: the simulated project of `pipe_tests::alli` (REST and GraphQL on one port)
//! → tags → Parquet, read over the REST webapi v2.

use std::path::Path;

use crate::commands::{config_error, env_var, run_pipeline, EXIT_FAILED, EXIT_OK};
use crate::config;
use crate::registry::Registry;
use crate::run::RunOptions;

/// The demo pipeline, built in so `pipe demo` works from any directory.
const DEMO_PIPELINE: &str = include_str!("../../../pipelines/alli-demo.toml");

/// Runs the Alli demo: `conversations` simulated conversations (plus two longer than one chats
/// page) → tags → Parquet under `out`.
pub async fn run(out: &Path, conversations: usize, quiet: bool) -> u8 {
    use pipe_tests::alli::{generate, AlliSim, SimConfig};

    let mut sim_cfg = SimConfig::demo();
    sim_cfg.conversations = conversations;
    let dataset = generate(&sim_cfg);
    let (convs, chats) = (dataset.conversations.len(), dataset.chat_count());
    let api_key = dataset.api_key.clone();
    let sim = match AlliSim::start(dataset).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the Alli simulator on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    println!("Alli simulator on {} with {convs} conversations ({chats} chats), REST webapi v2 and GraphQL", sim.base_url());
    let base_url = sim.base_url();
    let out_dir = out.display().to_string();
    let vars = |name: &str| match name {
        "PIPE_DEMO_ALLI_URL" => Some(base_url.clone()),
        "PIPE_DEMO_ALLI_API_KEY" => Some(api_key.clone()),
        "PIPE_DEMO_OUT" => Some(out_dir.clone()),
        other => env_var(other),
    };
    let registry = Registry::builtin();
    let p = match config::load_str(DEMO_PIPELINE, "pipelines/alli-demo.toml (built in)", "alli-demo", &registry, &vars) {
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
