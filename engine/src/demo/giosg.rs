//! The giosg demo: the simulated account of `pipe_tests::giosg` → decrypt → tags → Parquet.

use std::path::Path;
use std::sync::Arc;

use crate::commands::{config_error, env_var, run_pipeline, EXIT_FAILED, EXIT_OK};
use crate::config;
use crate::registry::Registry;
use crate::run::RunOptions;

/// The demo pipeline, built in so `pipe demo` works from any directory.
const DEMO_PIPELINE: &str = include_str!("../../../pipelines/giosg-demo.toml");

/// Runs the giosg demo: `chats` simulated chats (every 5th encrypted) → decrypt → tags →
/// Parquet under `out`.
pub async fn run(out: &Path, chats: usize, quiet: bool) -> u8 {
    use pipe_tests::giosg::{generate, GiosgSim, SimConfig, SimOptions};

    let mut sim_cfg = SimConfig::demo();
    sim_cfg.chats = chats;
    let dataset = Arc::new(generate(&sim_cfg));
    let sim = match GiosgSim::start(dataset.clone(), SimOptions::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the giosg simulator on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    println!("giosg simulator on {} with {} chats ({} messages)", sim.base_url(), dataset.chats.len(),
        dataset.chats.iter().map(|c| c.messages.len()).sum::<usize>());
    let base_url = sim.base_url();
    let out_dir = out.display().to_string();
    // The demo decrypts its encrypted chats with the simulator's key, handed over in a
    // private temporary file as a real key would be. Without encrypted chats (tiny --chats)
    // any key will do: it is never used.
    let pem = match dataset.private_key_pkcs8_pem.as_str() {
        "" => pipe_tests::giosg::crypto::unrelated_private_key_pem(),
        pem => pem.to_string(),
    };
    let key_file = match DemoKeyFile::write(&pem) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot write the demo's private key to {}: {e}", std::env::temp_dir().display());
            return EXIT_FAILED;
        }
    };
    let key_path = key_file.0.display().to_string();
    let vars = |name: &str| match name {
        "PIPE_DEMO_GIOSG_PRIVATE_KEY_FILE" => Some(key_path.clone()),
        "PIPE_DEMO_GIOSG_URL" => Some(base_url.clone()),
        "PIPE_DEMO_GIOSG_ORG" => Some(dataset.organization_id.clone()),
        "PIPE_DEMO_GIOSG_TOKEN" => Some(dataset.token.clone()),
        "PIPE_DEMO_OUT" => Some(out_dir.clone()),
        other => env_var(other),
    };
    let registry = Registry::builtin();
    let p = match config::load_str(DEMO_PIPELINE, "pipelines/giosg-demo.toml (built in)", "giosg-demo", &registry, &vars) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    let code = run_pipeline(&p, &RunOptions { full_refresh: true, ..Default::default() }, quiet, true, None).await;
    if code == EXIT_OK {
        println!("  simulator answered {} requests", sim.requests());
        println!("\nRead it back, for example:\n  duckdb -c \"SELECT sender_role, count(*) FROM '{out_dir}/messages/**/*.parquet' GROUP BY 1\"");
    }
    sim.shutdown().await;
    drop(key_file);
    code
}

/// The demo's private key file in the temp directory, readable by the owner only, removed
/// when dropped.
struct DemoKeyFile(std::path::PathBuf);

impl DemoKeyFile {
    fn write(pem: &str) -> std::io::Result<Self> {
        use std::io::Write as _;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("pipe-demo-key-{}-{nanos}.pem", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&path)?;
        f.write_all(pem.as_bytes())?;
        Ok(DemoKeyFile(path))
    }
}

impl Drop for DemoKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
