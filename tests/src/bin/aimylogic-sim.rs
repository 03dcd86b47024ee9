//! The Aimylogic Chat API simulator as a standalone server, for trying `pipe` by hand.
//!
//! `aimylogic-sim [CLIENTS]` serves a generated channel on 127.0.0.1, writes its client ids to
//! `./aimylogic-clients.txt`, prints one JSON line `{"base_url", "token", "clients",
//! "messages", "client_ids_file"}` and runs until its standard input closes.

use std::sync::Arc;

use pipe_tests::aimylogic::{generate, AimylogicSim, SimConfig};

#[tokio::main]
async fn main() {
    let clients = std::env::args().nth(1).map(|a| a.parse().expect("CLIENTS is a number")).unwrap_or(50);
    let dataset = Arc::new(generate(&SimConfig::demo(clients)));
    let sim = AimylogicSim::start(dataset.clone()).await.expect("bind 127.0.0.1");
    let file = "aimylogic-clients.txt";
    std::fs::write(file, dataset.clients.iter().map(|c| format!("{}\n", c.id)).collect::<String>()).expect("write the client ids");
    println!(
        "{}",
        serde_json::json!({
            "base_url": sim.base_url(),
            "token": dataset.token,
            "clients": dataset.clients.len(),
            "messages": dataset.expected().len(),
            "client_ids_file": file,
        })
    );
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    eprintln!("aimylogic-sim: {} requests served", sim.requests());
    sim.shutdown().await;
}
