//! Benchmark (ignored by default; run by `benches/ffi_overhead.sh`): the cost of the dynamic
//! path against the built-in on the same pipeline, as a ratio measured in one run.
//!
//! One simulated giosg account (in this process, on loopback), exported by the real `pipe`
//! binary with the same pipeline three ways: everything built in; the giosg source loaded from
//! `libpipe_giosg.so`; the source and the parquet sink both loaded from libraries. Runs
//! alternate (built-in, source-dynamic, both-dynamic, built-in, ...) so drift in the machine
//! hits all variants alike; the medians are compared.
//!
//! Knobs: `PIPE_BENCH_CHATS` (default 3000), `PIPE_BENCH_ROUNDS` (default 5).
//!
//! A second, in-process figure isolates the fixed cost of one crossing: the engine's adapter
//! pulling 100 000 small batches out of a library source (`spawn_blocking`, the call, the
//! Arrow import), per event.

use pipe_engine::plugin_host;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pipeline(sim: &GiosgSim, org: &str, out: &str, head: &str) -> String {
    format!(
        "name = \"bench\"\n{head}\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{BENCH_TOKEN}}\"\npage_size = 100\nconcurrency = 8\n\n\
         [[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[state]\npath = \"{out}/state\"\n",
        sim.base_url()
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run benches/ffi_overhead.sh"]
async fn dynamic_vs_builtin_on_the_same_pipeline() {
    let chats = env_or("PIPE_BENCH_CHATS", 3000);
    let rounds = env_or("PIPE_BENCH_ROUNDS", 5);
    let dataset = Arc::new(generate(&SimConfig {
        chats,
        max_messages_per_chat: 30,
        encrypted_every: 0,
        ..SimConfig::small(chats)
    }));
    let messages = dataset.message_count();
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "source_only", &["pipe_giosg"]);
    libraries::plugin_dir(dir.path(), "both", &["pipe_giosg", "pipe_parquet"]);

    let variants = [
        ("built-in", ""),
        ("giosg .so", "plugin_dirs = [\"source_only\"]\nallow_override = true\n"),
        ("giosg + parquet .so", "plugin_dirs = [\"both\"]\nallow_override = true\n"),
    ];
    let env = [("BENCH_TOKEN", dataset.token.as_str())];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    // One unmeasured round warms the page cache, the simulator and the libraries' first load.
    for round in 0..=rounds {
        for (i, (_, head)) in variants.iter().enumerate() {
            let out = format!("out/r{round}v{i}");
            let file = format!("p{round}v{i}.toml");
            std::fs::write(dir.path().join(&file), pipeline(&sim, &dataset.organization_id, &out, head)).unwrap();
            let t0 = Instant::now();
            let run = run_pipe(dir.path(), &["run", "--quiet", &file], &env).await;
            let took = t0.elapsed();
            assert!(run.status.success(), "{}", stderr(&run));
            if round > 0 {
                times[i].push(took);
            }
        }
    }
    sim.shutdown().await;

    let base = median(times[0].clone());
    println!("\nffi overhead: {chats} chats, {messages} messages, giosg → parquet, {rounds} rounds, medians:");
    for (i, (name, _)) in variants.iter().enumerate() {
        let m = median(times[i].clone());
        let all: Vec<String> = times[i].iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect();
        println!(
            "  {name:<20} {:>7.3} s   ratio to built-in {:.3}   (runs: {})",
            m.as_secs_f64(),
            m.as_secs_f64() / base.as_secs_f64(),
            all.join(" ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run benches/ffi_overhead.sh"]
async fn cost_of_one_event_crossing() {
    use pipe_plugin_sdk::{Event, Metrics, PluginFactory, SourceContext};
    let events = 100_000u32;
    let lib = plugin_host::loader::load(&libraries::library("pipe_test_panicky")).unwrap().expect("a plugin");
    let source = lib.plugins.iter().find(|p| p.name == "panicky_source").unwrap().descriptor();
    let PluginFactory::Source(open) = source.factory else { unreachable!() };
    let ctx =
        SourceContext { pipeline: "bench".into(), state: None, limit: None, metrics: Arc::new(Metrics::default()) };
    let mut source = open(serde_json::json!({"batches": events}), ctx).unwrap();
    let t0 = Instant::now();
    let mut rows = 0;
    loop {
        match source.next().await.unwrap() {
            Event::Batch { batch, .. } => rows += batch.num_rows(),
            Event::End => break,
            _ => {}
        }
    }
    let took = t0.elapsed();
    assert_eq!(rows, events as usize * 10);
    println!(
        "\nffi crossing: {events} batch events from a library source through the engine's adapter: {:.1} µs per event",
        took.as_secs_f64() * 1e6 / f64::from(events)
    );
}
