//! Engine-side throughput of the Parquet sink against the floor: a bare arrow-rs `ArrowWriter`
//! (zstd) writing the same batches. Rows are realistic: simulator chats mapped by the giosg
//! source's own mapping. Run: `cargo bench -p pipe-plugin-parquet --bench throughput`.
//! Prints rows/s for both and their ratio, best of 3, measured in one run.

use std::time::Instant;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use pipe_plugin_giosg::mapping::{ChatBundle, map_chat};
use pipe_plugin_sdk::schema::{MESSAGES, MessagesBuilder, messages_schema};
use pipe_plugin_sdk::{Checkpoint, PluginFactory, SinkContext, StreamDecl};
use pipe_sim::giosg::{SimConfig, generate};

fn batches(copies: usize) -> Vec<RecordBatch> {
    let d = generate(&SimConfig { chats: 2000, encrypted_every: 0, ..SimConfig::demo() });
    let mut out = Vec::new();
    for _ in 0..copies {
        let mut b = MessagesBuilder::new();
        for c in &d.chats {
            let bundle = ChatBundle {
                chat: c.chat.clone(),
                messages: c.messages.iter().map(|m| m.json.clone()).collect(),
                memberships: c.memberships.clone(),
                tags: c.tags.clone(),
                variables: c.variables.clone(),
            };
            for m in map_chat(&d.organization_id, &bundle, 0).messages {
                b.append(&m);
                if b.len() == 8192 {
                    out.push(b.finish());
                }
            }
        }
        if !b.is_empty() {
            out.push(b.finish());
        }
    }
    out
}

fn bare_write(batches: &[RecordBatch], dir: &std::path::Path) {
    let file = std::fs::File::create(dir.join("bare.parquet")).unwrap();
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap())).build();
    let mut w = ArrowWriter::try_new(file, messages_schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

async fn sink_write(batches: &[RecordBatch], dir: &std::path::Path, run: usize) {
    let PluginFactory::Sink(open) = pipe_plugin_parquet::descriptor().factory else { unreachable!() };
    let ctx = SinkContext {
        pipeline: "bench".into(),
        streams: vec![StreamDecl { name: MESSAGES.into(), schema: messages_schema() }],
        run_id: format!("bench{run}"),
    };
    let mut sink = open(serde_json::json!({"path": dir.join("pipe").to_str().unwrap()}), ctx).unwrap();
    for b in batches {
        sink.write(MESSAGES, b).await.unwrap();
    }
    sink.commit(&Checkpoint { state: serde_json::Value::Null }).await.unwrap();
}

fn main() {
    let batches = batches(5);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (mut best_bare, mut best_sink) = (f64::MAX, f64::MAX);
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        bare_write(&batches, dir.path());
        best_bare = best_bare.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rt.block_on(sink_write(&batches, dir.path(), run));
        best_sink = best_sink.min(t.elapsed().as_secs_f64());
    }
    let (bare, sink) = (rows as f64 / best_bare, rows as f64 / best_sink);
    println!("rows: {rows} messages in {} batches", batches.len());
    println!("bare ArrowWriter (zstd):  {bare:>12.0} rows/s");
    println!("pipe parquet sink:        {sink:>12.0} rows/s");
    println!("ratio sink / bare:        {:>12.2}", sink / bare);
}
