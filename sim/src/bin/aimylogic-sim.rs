//! The Aimylogic Chat API simulator as a standalone server, for trying `pipe` by hand.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pipe_sim::aimylogic::{AimylogicSim, SimConfig, generate};

/// Serve a simulated Aimylogic channel (client histories) on 127.0.0.1.
///
/// Writes the channel's client ids to `--client-ids-file`, prints one JSON line `{"base_url",
/// "token", "clients", "messages", "client_ids_file"}` and serves until its standard input
/// closes (Ctrl-D) or it is killed.
#[derive(Parser)]
#[command(name = "aimylogic-sim", version)]
struct Args {
    /// Clients (conversations) in the channel.
    #[arg(default_value_t = 50)]
    clients: usize,
    /// Where to write the client ids, one per line (the source's `client_ids_file`).
    #[arg(long, default_value = "aimylogic-clients.txt")]
    client_ids_file: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dataset = Arc::new(generate(&SimConfig::demo(args.clients)));
    let sim = match AimylogicSim::start(dataset.clone()).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("aimylogic-sim: cannot listen on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ids: String = dataset.clients.iter().map(|c| format!("{}\n", c.id)).collect();
    if let Err(e) = std::fs::write(&args.client_ids_file, ids) {
        eprintln!("aimylogic-sim: cannot write {}: {e}", args.client_ids_file.display());
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        serde_json::json!({
            "base_url": sim.base_url(),
            "token": dataset.token,
            "clients": dataset.clients.len(),
            "messages": dataset.expected().len(),
            "client_ids_file": args.client_ids_file,
        })
    );
    pipe_sim::serve_until_stdin_closes().await;
    eprintln!("aimylogic-sim: {} requests served", sim.requests());
    sim.shutdown().await;
    ExitCode::SUCCESS
}
