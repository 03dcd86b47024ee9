//! Test-only plugin library (`libpipe_test_panicky.so`): `panicky_source`, `panicky_transform`
//! and `panicky_sink` behave normally, except that each panics in the entry point named by its
//! `panic_in` key (`source.open`, `source.next`, `transform.flush`, `sink.commit`, ...), so the
//! engine's FFI tests can check that every kind of entry point survives a panic.
//!
//! The source emits `batches` batches of 10 rows on stream `numbers` (`n: int64`), a dead
//! letter after the first, a checkpoint `{"emitted": N}` and the end.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{
    Checkpoint, DeadLetter, Event, PluginDescriptor, PluginFactory, Result, Sink, SinkStats, Source, StreamDecl,
    Transform, TransformOutput, config,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Config of all three plugins.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The entry point that panics (`check_config`, `source.open`, `source.next`, ...).
    #[serde(default)]
    pub panic_in: Option<String>,
    /// Batches the source emits. Default 3.
    #[serde(default = "default_batches")]
    pub batches: u32,
}

fn default_batches() -> u32 {
    3
}

fn maybe_panic(cfg: &Config, entry: &str) {
    if cfg.panic_in.as_deref() == Some(entry) {
        panic!("deliberate panic in {entry}");
    }
}

fn check(v: &Value) -> Result<()> {
    let cfg: Config = config::parse(v.clone())?;
    maybe_panic(&cfg, "check_config");
    Ok(())
}

fn numbers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

/// The source's descriptor.
pub fn source() -> PluginDescriptor {
    PluginDescriptor {
        name: "panicky_source",
        version: "0.0.1",
        description: "test source that panics where told",
        config_schema: Arc::new(config::schema_of::<Config>),
        check_config: Arc::new(check),
        factory: PluginFactory::source(|v, _ctx| {
            let cfg: Config = config::parse(v)?;
            maybe_panic(&cfg, "source.open");
            Ok(Box::new(PanickySource { cfg, emitted: 0, done: false }))
        }),
    }
}

/// The transform's descriptor.
pub fn transform() -> PluginDescriptor {
    PluginDescriptor {
        name: "panicky_transform",
        version: "0.0.1",
        description: "test transform that panics where told",
        config_schema: Arc::new(config::schema_of::<Config>),
        check_config: Arc::new(check),
        factory: PluginFactory::transform(|v, _ctx| {
            let cfg: Config = config::parse(v)?;
            maybe_panic(&cfg, "transform.open");
            Ok(Box::new(PanickyTransform { cfg }))
        }),
    }
}

/// The sink's descriptor.
pub fn sink() -> PluginDescriptor {
    PluginDescriptor {
        name: "panicky_sink",
        version: "0.0.1",
        description: "test sink that panics where told",
        config_schema: Arc::new(config::schema_of::<Config>),
        check_config: Arc::new(check),
        factory: PluginFactory::sink(|v, _ctx| {
            let cfg: Config = config::parse(v)?;
            maybe_panic(&cfg, "sink.open");
            Ok(Box::new(PanickySink { cfg, rows: 0, committed: 0 }))
        }),
    }
}

struct PanickySource {
    cfg: Config,
    emitted: u32,
    done: bool,
}

#[async_trait]
impl Source for PanickySource {
    fn streams(&self) -> Vec<StreamDecl> {
        maybe_panic(&self.cfg, "source.streams");
        vec![StreamDecl { name: "numbers".into(), schema: numbers_schema() }]
    }

    async fn next(&mut self) -> Result<Event> {
        maybe_panic(&self.cfg, "source.next");
        if self.emitted < self.cfg.batches {
            let start = i64::from(self.emitted) * 10;
            self.emitted += 1;
            let batch = RecordBatch::try_new(
                numbers_schema(),
                vec![Arc::new(Int64Array::from_iter_values(start..start + 10))],
            )?;
            return Ok(Event::Batch { stream: "numbers".into(), batch });
        }
        if !self.done {
            self.done = true;
            return Ok(Event::DeadLetter(DeadLetter {
                stream: "numbers".into(),
                key: json!({"n": -1}),
                stage: String::new(),
                reason: "test_dead_letter".into(),
                message: "one dead letter per run".into(),
                raw: json!({"n": "not a number"}),
            }));
        }
        if self.emitted == self.cfg.batches {
            self.emitted += 1;
            return Ok(Event::Checkpoint(Checkpoint { state: json!({"emitted": self.cfg.batches}) }));
        }
        Ok(Event::End)
    }
}

struct PanickyTransform {
    cfg: Config,
}

#[async_trait]
impl Transform for PanickyTransform {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        maybe_panic(&self.cfg, "transform.output_stream");
        Some(input.clone())
    }

    async fn transform(&mut self, _stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        maybe_panic(&self.cfg, "transform.transform");
        Ok(vec![TransformOutput::Batch(batch)])
    }

    async fn flush(&mut self) -> Result<Vec<(String, TransformOutput)>> {
        maybe_panic(&self.cfg, "transform.flush");
        Ok(Vec::new())
    }
}

struct PanickySink {
    cfg: Config,
    rows: u64,
    committed: u64,
}

#[async_trait]
impl Sink for PanickySink {
    async fn write(&mut self, _stream: &str, batch: &RecordBatch) -> Result<()> {
        maybe_panic(&self.cfg, "sink.write");
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<()> {
        maybe_panic(&self.cfg, "sink.commit");
        self.committed = self.rows;
        Ok(())
    }

    async fn abort(&mut self) -> Result<()> {
        maybe_panic(&self.cfg, "sink.abort");
        self.rows = self.committed;
        Ok(())
    }

    fn stats(&self) -> SinkStats {
        maybe_panic(&self.cfg, "sink.stats");
        SinkStats { files: 0, bytes: 0, rows: self.committed }
    }
}

pipe_plugin_sdk::declare_plugin! {
    plugins: [source, transform, sink],
}
