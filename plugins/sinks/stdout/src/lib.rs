//! # pipe-plugin-stdout
//!
//! Sink plugin printing rows to standard output (`plugin = "stdout"`): one JSON object per
//! line, `{"stream":"messages", <the row's columns>}`, in the json sink's encoding (docs/design.md
//! §3: RFC 3339 UTC timestamps, lists as arrays, maps as objects, nulls as `null`). Handy for
//! a first look at an account (`pipe run --limit 5`) or for piping into `jq`.
//!
//! Each batch is written and flushed as it arrives; `commit` is a flush, and `abort` cannot
//! take back what was printed.

use std::io::Write;
use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use pipe_plugin_sdk::json_rows::encode_rows_with_stream;
use pipe_plugin_sdk::staging::run_blocking;
use pipe_plugin_sdk::{
    Checkpoint, PluginDescriptor, PluginError, PluginFactory, Result, Sink, SinkContext, SinkStats, config,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the stdout sink (a `[[sinks]]` table with `plugin = "stdout"`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Print only these columns, in this order (after `stream`). A stream without some of them
    /// prints the ones it has; a column no stream has is a configuration error. Default: every
    /// column.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "stdout",
        version: env!("CARGO_PKG_VERSION"),
        description: "JSON Lines on standard output, one object per row with a \"stream\" key",
        config_schema: Arc::new(config::schema_of::<StdoutConfig>),
        check_config: Arc::new(config::check::<StdoutConfig>),
        factory: PluginFactory::sink(|cfg, ctx| {
            let cfg: StdoutConfig = config::parse(cfg)?;
            Ok(Box::new(StdoutSink::open(cfg, ctx, std::io::stdout())?))
        }),
    }
}

/// The stdout sink, writing to any `W` (standard output in production, a buffer in tests).
pub struct StdoutSink<W: Write + Send> {
    out: W,
    columns: Option<Vec<String>>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Rows printed so far.
    rows: u64,
}

impl<W: Write + Send> StdoutSink<W> {
    /// Opens the sink over `out`.
    ///
    /// Errors: [`PluginError::Config`] at `columns[i]` for a column none of the declared
    /// streams has.
    pub fn open(cfg: StdoutConfig, ctx: SinkContext, out: W) -> Result<Self> {
        if let Some(columns) = &cfg.columns
            && !ctx.streams.is_empty()
        {
            for (i, column) in columns.iter().enumerate() {
                if !ctx.streams.iter().any(|s| s.schema.index_of(column).is_ok()) {
                    return Err(PluginError::Config {
                        path: format!("columns[{i}]"),
                        message: format!("no stream has a column `{column}`"),
                    });
                }
            }
        }
        Ok(StdoutSink { out, columns: cfg.columns, buf: Vec::new(), rows: 0 })
    }

    /// The sink's writer (tests read what was printed).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// `batch` restricted to the configured columns, in their order.
    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let Some(columns) = &self.columns else {
            return Ok(batch.clone());
        };
        let schema = batch.schema();
        let indices: Vec<usize> = columns.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        Ok(batch.project(&indices)?)
    }

    fn print(&mut self) -> Result<()> {
        let result = self.out.write_all(&self.buf).and_then(|()| self.out.flush());
        result.map_err(|e| PluginError::io("writing to standard output", e))
    }
}

#[async_trait]
impl<W: Write + Send> Sink for StdoutSink<W> {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.project(batch)?;
        self.buf.clear();
        encode_rows_with_stream(stream, &batch, &mut self.buf)?;
        // A slow reader at the other end of a pipe blocks the write; keep that off the
        // runtime's worker.
        run_blocking(|| self.print())?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<()> {
        run_blocking(|| self.out.flush()).map_err(|e| PluginError::io("flushing standard output", e))
    }

    async fn abort(&mut self) -> Result<()> {
        // Printed lines cannot be taken back; just make sure nothing is left half-buffered.
        run_blocking(|| self.out.flush()).map_err(|e| PluginError::io("flushing standard output", e))
    }

    /// Rows printed (no files).
    fn stats(&self) -> SinkStats {
        SinkStats { rows: self.rows, ..SinkStats::default() }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pipe_plugin_sdk::StreamDecl;
    use pipe_plugin_sdk::schema::{
        CONVERSATIONS, ConversationRow, ConversationsBuilder, MESSAGES, MessageRow, MessagesBuilder, SenderRole,
        conversations_schema, messages_schema,
    };
    use serde_json::{Value, json};

    use super::*;

    fn ctx() -> SinkContext {
        SinkContext {
            pipeline: "test".into(),
            streams: vec![
                StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
                StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
            ],
            run_id: "r".into(),
        }
    }

    fn messages() -> RecordBatch {
        let mut b = MessagesBuilder::new();
        b.append(&MessageRow {
            vendor: "giosg".into(),
            account_id: "org".into(),
            conversation_id: "c1".into(),
            message_id: "m1".into(),
            seq: 0,
            sent_at: 1_686_739_774_406_000,
            sender_role: SenderRole::Agent,
            sender_id: None,
            sender_name: None,
            message_type: "msg".into(),
            text: Some("hi".into()),
            is_encrypted: false,
            ciphertext: None,
            tags: vec!["x".into()],
            attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
            raw: "{}".into(),
            extracted_at: 0,
        });
        b.finish()
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn prints_one_object_per_row_with_the_stream_first() {
        let mut sink = StdoutSink::open(StdoutConfig::default(), ctx(), Vec::new()).unwrap();
        sink.write(MESSAGES, &messages()).await.unwrap();
        let mut c = ConversationsBuilder::new();
        c.append(&ConversationRow { vendor: "giosg".into(), conversation_id: "c1".into(), ..Default::default() });
        sink.write(CONVERSATIONS, &c.finish()).await.unwrap();
        sink.commit(&Checkpoint { state: json!(null) }).await.unwrap();

        let text = std::str::from_utf8(sink.get_ref()).unwrap();
        assert!(text.starts_with("{\"stream\":\"messages\",\"vendor\":\"giosg\","), "{text}");
        let rows = lines(sink.get_ref());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["sent_at"], "2023-06-14T10:49:34.406000Z");
        assert_eq!(rows[0]["attributes"], json!({"k": "v"}));
        assert_eq!(rows[0]["tags"], json!(["x"]));
        assert_eq!(rows[0]["sender_id"], Value::Null);
        assert_eq!(rows[0].as_object().unwrap().len(), 1 + messages_schema().fields().len());
        assert_eq!(rows[1]["stream"], "conversations");
        assert_eq!(rows[1]["created_at"], Value::Null);
        assert_eq!(sink.stats(), SinkStats { files: 0, bytes: 0, rows: 2 });
    }

    #[tokio::test]
    async fn columns_selects_and_orders() {
        let cfg = StdoutConfig { columns: Some(vec!["text".into(), "message_id".into(), "title".into()]) };
        let mut sink = StdoutSink::open(cfg, ctx(), Vec::new()).unwrap();
        sink.write(MESSAGES, &messages()).await.unwrap();
        let text = std::str::from_utf8(sink.get_ref()).unwrap();
        assert_eq!(text, "{\"stream\":\"messages\",\"text\":\"hi\",\"message_id\":\"m1\"}\n");
    }

    #[test]
    fn unknown_column_is_a_config_error() {
        let cfg = StdoutConfig { columns: Some(vec!["text".into(), "nope".into()]) };
        let err = StdoutSink::open(cfg, ctx(), Vec::new()).err().unwrap();
        assert!(matches!(err, PluginError::Config { ref path, .. } if path == "columns[1]"), "{err}");
        assert!((descriptor().check_config)(&json!({"colums": ["x"]})).is_err());
    }
}
