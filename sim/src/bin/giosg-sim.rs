//! The giosg simulator as a standalone server, for benchmarks and trying `pipe` by hand.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pipe_sim::giosg::{GiosgSim, HttpFaults, QuotaHeaders, SimConfig, SimOptions, WindowLimit, generate};

/// Serve simulated giosg organizations (REST `/api/v5`, chat encryption off) on 127.0.0.1.
///
/// Prints one JSON line per organization, `{"base_url", "organization_id", "token", "chats",
/// "messages"}`, and serves until its standard input closes (Ctrl-D) or it is killed. Put the
/// values in `GIOSG_*` variables and run `pipe run pipelines/giosg.toml` against it.
///
/// Example: `giosg-sim 1000 30` serves 1,000 chats answering each request after 30 ms;
/// `giosg-sim 1000 30 --rate-limit 50` also answers 429 past 50 requests a second (a token
/// bucket that states nothing); `giosg-sim 1000 30 --window-limit 50 --quota-headers ietf`
/// allows 50 requests per one-second window and states the quota in `RateLimit-*` headers.
///
/// Chats are created minutes to hours apart from `pipe_sim::giosg::EPOCH` on; a large
/// account has them closer together so that all of them lie within 270 days of it, in the past
/// (`SimConfig::spread_within_days`).
/// Days from `pipe_sim::giosg::EPOCH` (2026-01-05) that a dataset's chats span at most, on
/// average; a chat may be updated up to 40 days after it ended (a purge), so its last update
/// still lies before December 2026.
const SPAN_DAYS: i64 = 270;

#[derive(Parser)]
#[command(name = "giosg-sim", version)]
struct Args {
    /// Chats per organization.
    #[arg(default_value_t = 300)]
    chats: usize,
    /// Added latency of every response, in milliseconds.
    #[arg(default_value_t = 0)]
    latency_ms: u64,
    /// Upper bound on messages per chat.
    #[arg(default_value_t = 40)]
    max_messages: usize,
    /// Organizations to serve, each on its own port with its own seed and token.
    #[arg(default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    accounts: u64,
    /// Requests per second allowed (token bucket, one second of burst, no quota headers);
    /// past it: 429 with `Retry-After: 1`.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Requests allowed per fixed window of `--window-secs` (aligned to the Unix epoch); past
    /// it: 429 with `Retry-After` to the window's end.
    #[arg(long)]
    window_limit: Option<u64>,
    /// Length of the `--window-limit` window, in seconds.
    #[arg(long, default_value_t = 1)]
    window_secs: u64,
    /// State the `--window-limit` quota on every answer: `ietf` (`RateLimit-*`), `x`
    /// (`X-RateLimit-*`, reset as a Unix time) or `none`.
    #[arg(long, default_value = "none")]
    quota_headers: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut sims = Vec::new();
    for i in 0..args.accounts {
        let mut cfg = SimConfig {
            chats: args.chats,
            max_messages_per_chat: args.max_messages,
            encrypted_every: 0,
            ..SimConfig::demo()
        }
        .spread_within_days(SPAN_DAYS);
        if i > 0 {
            cfg.seed += i;
            cfg.organization_id = format!("00000000-0000-4000-8000-{i:012}");
            cfg.token = format!("{}-{i}", cfg.token);
        }
        let dataset = Arc::new(generate(&cfg));
        let sim = match GiosgSim::start(dataset.clone(), SimOptions::default()).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("giosg-sim: cannot listen on 127.0.0.1: {e}");
                return ExitCode::FAILURE;
            }
        };
        let headers = match args.quota_headers.as_str() {
            "ietf" => Some(QuotaHeaders::Ietf),
            "x" => Some(QuotaHeaders::X),
            "none" => None,
            other => {
                eprintln!("giosg-sim: --quota-headers is ietf, x or none, not {other}");
                return ExitCode::FAILURE;
            }
        };
        let window_limit = args.window_limit.map(|limit| WindowLimit {
            limit,
            window: Duration::from_secs(args.window_secs.max(1)),
            headers,
        });
        sim.set_faults(HttpFaults {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit: args.rate_limit,
            window_limit,
            ..Default::default()
        });
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
    pipe_sim::serve_until_stdin_closes().await;
    for sim in sims {
        eprintln!(
            "giosg-sim: {} requests served at {} ({} answered 429)",
            sim.requests(),
            sim.base_url(),
            sim.throttled()
        );
        sim.shutdown().await;
    }
    ExitCode::SUCCESS
}
