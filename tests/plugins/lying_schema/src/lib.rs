//! Test-only plugin library (`libpipe_test_lying_schema.so`): `lying_source` is a correct source
//! (3 batches of 10 rows on `numbers`, a checkpoint `{"emitted": 3}` it resumes from, the end)
//! except that it declares `n: Int64` and emits `n: Utf8`. The conformance kit's `schema` check
//! must fail on it, naming both schemas.

use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{Checkpoint, Event, PluginDescriptor, PluginFactory, Result, Source, StreamDecl, config};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Config: nothing but the batch count.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Batches per run. Default 3.
    #[serde(default = "default_batches")]
    pub batches: u32,
}

fn default_batches() -> u32 {
    3
}

fn numbers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

/// The source's descriptor.
pub fn source() -> PluginDescriptor {
    PluginDescriptor {
        name: "lying_source",
        version: "0.0.1",
        description: "test source whose batches do not match its declared schema",
        config_schema: Arc::new(config::schema_of::<Config>),
        check_config: Arc::new(config::check::<Config>),
        factory: PluginFactory::source(|v, ctx| {
            let cfg: Config = config::parse(v)?;
            let emitted = ctx.state.and_then(|s| s["emitted"].as_u64()).unwrap_or(0) as u32;
            Ok(Box::new(Lying { batches: cfg.batches, emitted, checkpointed: false }))
        }),
    }
}

struct Lying {
    batches: u32,
    emitted: u32,
    checkpointed: bool,
}

#[async_trait]
impl Source for Lying {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![StreamDecl { name: "numbers".into(), schema: numbers_schema() }]
    }

    async fn next(&mut self) -> Result<Event> {
        if self.emitted < self.batches {
            let start = i64::from(self.emitted) * 10;
            self.emitted += 1;
            // The lie: the declared column is Int64, the emitted one Utf8.
            let emitted = Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, false)]));
            let batch = RecordBatch::try_new(
                emitted,
                vec![Arc::new(StringArray::from_iter_values((start..start + 10).map(|n| n.to_string())))],
            )?;
            return Ok(Event::Batch { stream: "numbers".into(), batch });
        }
        if !self.checkpointed {
            self.checkpointed = true;
            return Ok(Event::Checkpoint(Checkpoint { state: json!({"emitted": self.emitted}) }));
        }
        Ok(Event::End)
    }
}

pipe_plugin_sdk::declare_plugin! {
    plugins: [source],
}
