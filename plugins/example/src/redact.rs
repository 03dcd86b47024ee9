//! The `redact_digits` transform: masks runs of `min_digits` or more digits in
//! `messages.text` with `#` (card, phone and account numbers), leaving every other column and
//! stream untouched. Stateless; batches keep their schema.

use std::sync::Arc;

use pipe_plugin_sdk::config;
use pipe_plugin_sdk::reexports::arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::schema::MESSAGES;
use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, Result, StreamDecl, Transform, TransformOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// The `[[transforms]]` keys of `plugin = "redact_digits"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// Shortest run of digits that is masked (1-100). Default 4.
    #[serde(default = "default_min_digits")]
    pub min_digits: usize,
}

fn default_min_digits() -> usize {
    4
}

fn parse(config: Value) -> Result<RedactConfig> {
    let cfg: RedactConfig = config::parse(config)?;
    if !(1..=100).contains(&cfg.min_digits) {
        return Err(PluginError::Config { path: "min_digits".into(), message: "must be between 1 and 100".into() });
    }
    Ok(cfg)
}

/// The plugin's descriptor, listed in `declare_plugin!`.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "redact_digits",
        version: env!("CARGO_PKG_VERSION"),
        description: "masks long digit runs in message text (example plugin)",
        config_schema: Arc::new(config::schema_of::<RedactConfig>),
        check_config: PluginDescriptor::check_with(|v| parse(v.clone()).map(|_| ())),
        factory: PluginFactory::transform(|v, _ctx| Ok(Box::new(Redact { cfg: parse(v)? }))),
    }
}

struct Redact {
    cfg: RedactConfig,
}

/// `text` with every run of at least `min` ASCII digits replaced by as many `#`.
pub fn mask(text: &str, min: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= min {
            out.extend(std::iter::repeat_n('#', run.len()))
        } else {
            out.push_str(run)
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[async_trait]
impl Transform for Redact {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        // Only `messages` with a `text` column is touched; the schema stays the same.
        (input.name == MESSAGES && input.schema.column_with_name("text").is_some()).then(|| input.clone())
    }

    async fn transform(&mut self, _stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        let (index, _) = batch
            .schema()
            .column_with_name("text")
            .ok_or_else(|| PluginError::other("messages without a `text` column"))?;
        let text = batch
            .column(index)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| PluginError::other("`text` is not a utf8 column"))?;
        let masked: StringArray = text.iter().map(|t| t.map(|t| mask(t, self.cfg.min_digits))).collect();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[index] = Arc::new(masked) as ArrayRef;
        debug_assert_eq!(columns[index].len(), batch.num_rows());
        Ok(vec![TransformOutput::Batch(RecordBatch::try_new(batch.schema(), columns)?)])
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masks_long_runs_only() {
        assert_eq!(mask("card 4111 1111, pin 12, call 5550123", 4), "card #### ####, pin 12, call #######");
        assert_eq!(mask("", 4), "");
    }
}
