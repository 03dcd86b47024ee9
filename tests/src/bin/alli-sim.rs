//! The Alli simulator as a standalone server, for trying `pipe` by hand.
//!
//! `alli-sim [CONVERSATIONS]` serves a generated project (REST webapi v2 and GraphQL) on
//! 127.0.0.1, prints one JSON line `{"base_url", "api_key", "email", "password",
//! "conversations", "chats"}` and runs until its standard input closes (or it is killed).

use pipe_tests::alli::{generate, AlliSim, SimConfig};

#[tokio::main]
async fn main() {
    let conversations = std::env::args().nth(1).map(|a| a.parse().expect("a number of conversations")).unwrap_or(200);
    let dataset = generate(&SimConfig { conversations, ..SimConfig::demo() });
    let sim = AlliSim::start(dataset.clone()).await.expect("bind 127.0.0.1");
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
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    eprintln!("alli-sim: {} requests served, {} invalid GraphQL documents", sim.requests(), sim.invalid_queries().len());
    sim.shutdown().await;
}
