//! The giosg simulator as a standalone server, for benchmarks and trying `pipe` by hand.
//!
//! `giosg-sim [CHATS] [LATENCY_MS] [MAX_MESSAGES] [ACCOUNTS]` serves ACCOUNTS (default 1)
//! generated organizations on 127.0.0.1, each on its own port with its own seed, prints one
//! JSON line per organization `{"base_url", "organization_id", "token", "chats", "messages"}`
//! and runs until its standard input closes (or it is killed).

use std::sync::Arc;
use std::time::Duration;

use pipe_tests::giosg::{generate, GiosgSim, HttpFaults, SimConfig, SimOptions};

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments")).collect();
    let chats = args.first().copied().unwrap_or(300);
    let latency = Duration::from_millis(args.get(1).copied().unwrap_or(0) as u64);
    let max_messages = args.get(2).copied().unwrap_or(40);
    let accounts = args.get(3).copied().unwrap_or(1).max(1);
    let mut sims = Vec::new();
    for i in 0..accounts {
        let mut cfg = SimConfig { chats, max_messages_per_chat: max_messages, encrypted_every: 0, ..SimConfig::demo() };
        if i > 0 {
            cfg.seed += i as u64;
            cfg.organization_id = format!("00000000-0000-4000-8000-{i:012}");
            cfg.token = format!("{}-{i}", cfg.token);
        }
        let dataset = Arc::new(generate(&cfg));
        let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.expect("bind 127.0.0.1");
        sim.set_faults(HttpFaults { latency, ..Default::default() });
        println!(
            "{}",
            serde_json::json!({
                "base_url": sim.base_url(),
                "organization_id": dataset.organization_id,
                "token": dataset.token,
                "chats": dataset.chats.len(),
                "messages": dataset.message_count(),
            })
        );
        sims.push(sim);
    }
    // Serve until stdin closes.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    for sim in sims {
        eprintln!("giosg-sim: {} requests served at {}", sim.requests(), sim.base_url());
        sim.shutdown().await;
    }
}
