//! The Alli simulator as a standalone server, for trying `pipe` by hand.

use std::process::ExitCode;

use clap::Parser;
use pipe_sim::alli::{AlliSim, SimConfig, generate};

/// Serve a simulated Alli project (REST webapi v2 and GraphQL on one port) on 127.0.0.1.
///
/// Prints one JSON line `{"base_url", "api_key", "email", "password", "conversations",
/// "chats"}` and serves until its standard input closes (Ctrl-D) or it is killed. Every GraphQL
/// document it receives is validated against its schema; the count of invalid ones is printed
/// at the end.
#[derive(Parser)]
#[command(name = "alli-sim", version)]
struct Args {
    /// Ordinary conversations in the project (two long ones are added).
    #[arg(default_value_t = 200)]
    conversations: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dataset = generate(&SimConfig { conversations: args.conversations, ..SimConfig::demo() });
    let sim = match AlliSim::start(dataset.clone()).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("alli-sim: cannot listen on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "base_url": sim.base_url(),
            "api_key": dataset.api_key,
            "email": dataset.email,
            "password": dataset.password,
            "conversations": dataset.conversations.len(),
            "chats": dataset.chat_count(),
        })
    );
    pipe_sim::serve_until_stdin_closes().await;
    eprintln!(
        "alli-sim: {} requests served, {} invalid GraphQL documents",
        sim.requests(),
        sim.invalid_queries().len()
    );
    sim.shutdown().await;
    ExitCode::SUCCESS
}
