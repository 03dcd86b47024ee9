//! No memory growth over many open/close cycles of loaded plugins, measured: after a warm-up,
//! 2000 more cycles of every kind, each moving Arrow data across the boundary in both
//! directions. Two measures: resident memory (`VmRSS` of this process) and bytes in use in the
//! C heap (glibc's `mallinfo2`, which the host and the plugin libraries share: each library has
//! its own Rust std, but they all allocate with the same `malloc`). A leak of a schema, a batch,
//! an error string or a handle per crossing would show as megabytes.
//!
//! The engine's own plugin host is compiled into this test, so these are the adapters `pipe`
//! runs.

use pipe_engine::plugin_host;
use pipe_tests::libraries;

use std::sync::Arc;

use arrow_array::Int64Array;
use pipe_plugin_sdk::{
    Checkpoint, Event, Metrics, PluginDescriptor, PluginFactory, SinkContext, SourceContext, TransformContext,
};
use serde_json::json;

const WARM_UP: usize = 1000;
const CYCLES: usize = 2000;
/// Allowed resident growth over `CYCLES` cycles (2 KiB per cycle): allocator caches and thread
/// churn move RSS by a few hundred KiB without any leak.
const MAX_RSS_GROWTH_KIB: u64 = 4096;
/// Allowed heap growth over `CYCLES` cycles (512 B per cycle). Measured without a leak: about
/// 10-60 B per cycle early on, decreasing as the run goes on (allocator caches filling), i.e.
/// not proportional to the cycles; one leaked exported schema per crossing would be ~1.5 KiB.
const MAX_HEAP_GROWTH_KIB: u64 = 1024;

/// glibc's `struct mallinfo2`.
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

unsafe extern "C" {
    /// glibc ≥ 2.33: statistics of every malloc arena of the process.
    fn mallinfo2() -> MallInfo2;
}

/// Bytes in use in the C heap: allocated chunks plus mmapped allocations.
fn heap_kib() -> u64 {
    // SAFETY: a plain query of glibc's allocator.
    let m = unsafe { mallinfo2() };
    ((m.uordblks + m.hblkhd) / 1024) as u64
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn descriptor(lib: &str, name: &str) -> PluginDescriptor {
    let lib = plugin_host::loader::load(&libraries::library(lib)).unwrap().expect("a plugin library");
    lib.plugins
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} in {lib:?}", lib = lib.path))
        .descriptor()
}

struct Plugins {
    source: PluginDescriptor,
    transform: PluginDescriptor,
    parquet: PluginDescriptor,
    out: tempfile::TempDir,
}

/// One cycle of each kind: a source drained to its end (batches, a dead letter and a
/// checkpoint cross from the library), a transform fed a batch and flushed (a batch crosses
/// both ways), and the real parquet sink opened, written, committed and closed.
async fn cycle(p: &Plugins, i: usize) {
    let PluginFactory::Source(open_source) = &p.source.factory else { unreachable!() };
    let ctx = SourceContext { pipeline: "mem".into(), state: None, limit: None, metrics: Arc::new(Metrics::default()) };
    let mut source = open_source(json!({"batches": 2}), ctx).unwrap();
    let streams = source.streams();
    let mut batches = Vec::new();
    loop {
        match source.next().await.unwrap() {
            Event::Batch { batch, .. } => batches.push(batch),
            Event::End => break,
            _ => {}
        }
    }
    drop(source);
    // The rows that crossed are the rows the plugin made.
    let first = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(first.values().to_vec(), (0..10).collect::<Vec<i64>>());

    let PluginFactory::Transform(open_transform) = &p.transform.factory else { unreachable!() };
    let mut transform = open_transform(json!({}), TransformContext::default()).unwrap();
    let out = transform.output_stream(&streams[0]).expect("touches numbers");
    let mut transformed = transform.transform("numbers", batches[0].clone()).await.unwrap();
    transformed.extend(transform.flush().await.unwrap().into_iter().map(|(_, o)| o));
    drop(transform);

    let PluginFactory::Sink(open_sink) = &p.parquet.factory else { unreachable!() };
    let ctx = SinkContext { pipeline: "mem".into(), streams: vec![out], run_id: format!("run{i}") };
    let path = p.out.path().join("pq");
    let mut sink = open_sink(json!({"path": path.to_str().unwrap()}), ctx).unwrap();
    for b in &batches {
        sink.write("numbers", b).await.unwrap();
    }
    sink.commit(&Checkpoint { state: json!({"i": i}) }).await.unwrap();
    assert!(sink.stats().rows >= 20);
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_close_cycles_of_loaded_plugins_do_not_grow_memory() {
    // Resident memory and the C heap belong to the process: measure where no other test runs
    // (`cargo test` runs this binary's tests as threads of one process; nextest does not).
    let test = concat!(module_path!(), "::open_close_cycles_of_loaded_plugins_do_not_grow_memory");
    if !pipe_tests::alone_in_process(test) {
        return;
    }
    let p = Plugins {
        source: descriptor("pipe_test_panicky", "panicky_source"),
        transform: descriptor("pipe_test_panicky", "panicky_transform"),
        parquet: descriptor("pipe_parquet", "parquet"),
        out: tempfile::tempdir().unwrap(),
    };
    for i in 0..WARM_UP {
        cycle(&p, i).await;
    }
    let (before, heap_before) = (rss_kib(), heap_kib());
    for i in WARM_UP..WARM_UP + CYCLES / 2 {
        cycle(&p, i).await;
    }
    let (middle, heap_middle) = (rss_kib(), heap_kib());
    for i in WARM_UP + CYCLES / 2..WARM_UP + CYCLES {
        cycle(&p, i).await;
    }
    let (after, heap_after) = (rss_kib(), heap_kib());
    let growth = after.saturating_sub(before);
    let heap_growth = heap_after.saturating_sub(heap_before);
    let per_cycle = |kib: u64| kib as f64 * 1024.0 / CYCLES as f64;
    println!(
        "after {WARM_UP} warm-up cycles, then {half} and {CYCLES} more: VmRSS {before} / {middle} / {after} KiB \
         (growth {growth} KiB, {:.0} B/cycle); C heap in use {heap_before} / {heap_middle} / {heap_after} KiB \
         (growth {heap_growth} KiB, {:.0} B/cycle)",
        per_cycle(growth),
        per_cycle(heap_growth),
        half = CYCLES / 2,
    );
    assert!(growth < MAX_RSS_GROWTH_KIB, "resident memory grew by {growth} KiB over {CYCLES} open/close cycles");
    assert!(heap_growth < MAX_HEAP_GROWTH_KIB, "the C heap grew by {heap_growth} KiB over {CYCLES} open/close cycles");
    // Every committed file is there: the cycles really ran.
    let files = std::fs::read_dir(p.out.path().join("pq/numbers")).unwrap().count();
    assert_eq!(files, WARM_UP + CYCLES);
}
