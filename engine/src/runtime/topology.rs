//! The stages of a run and how they are connected (docs/design.md §2, §5):
//!
//! ```text
//!   source ──ch──► transform 1 ──ch──► … ──ch──► transform n ──ch──► coordinator ──► sinks
//!   (task)          (task)                        (task)            (this task)
//! ```
//!
//! * [`open_source`] opens the source (or, for `[[source.accounts]]`, a [`MultiSource`] over the
//!   planned accounts); its declared streams decide what flows.
//! * [`open_stages`] opens the transforms in order, propagating each stream's schema through
//!   them ([`propagate`]), then every sink with the schemas its batches will have.
//! * [`Stages::wire`] runs the source and each transform as a task, connected by bounded
//!   channels of [`CHANNEL_CAPACITY`] events: memory stays flat and a slow sink slows the
//!   source. Checkpoints and `End` travel the same channels, so they are barriers: a transform
//!   flushes before passing one on.

use std::collections::HashSet;
use std::sync::Arc;

use pipe_plugin_sdk::{
    Event, Metrics, PluginError, PluginFactory, Sink, SinkContext, Source, SourceContext, StreamDecl, Transform,
    TransformContext, TransformOutput,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Pipeline;
use crate::runtime::multi_source::MultiSource;
use crate::runtime::plan::Plan;
use crate::runtime::report::RunError;

/// Events in flight between two stages. Small: memory stays flat, a slow sink slows the source.
pub const CHANNEL_CAPACITY: usize = 4;

/// What travels between stages: the next event, or the error that stopped a stage (the last
/// item on that channel).
pub type Item = Result<Event, PluginError>;

/// An open sink and its name in messages and the summary (`sinks[0] parquet`).
pub struct SinkStage {
    /// `<key path> <plugin>`, e.g. `sinks[0] parquet`.
    pub name: String,
    /// The open sink.
    pub sink: Box<dyn Sink>,
}

/// An open transform and the streams it touches (the others bypass it unchanged).
struct TransformStage {
    name: &'static str,
    transform: Box<dyn Transform>,
    touched: HashSet<String>,
}

/// Every stage open, not yet running.
pub struct Stages {
    source: Box<dyn Source>,
    transforms: Vec<TransformStage>,
    sinks: Vec<SinkStage>,
}

/// The running source and transform tasks, and the receiving end of the last channel.
pub struct Running {
    /// Events as they leave the last transform (or the source, without transforms).
    pub events: mpsc::Receiver<Item>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the source and transform tasks (dropping the source ends its requests).
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens the run's source: the pipeline's plugin, or one per planned account behind a
/// [`MultiSource`]. `ctx.state` is the state to resume from (composite for accounts).
///
/// Errors: the plugin refuses its config ([`RunError::Config`], naming the key, e.g.
/// `source.token: ...` or `source.accounts[0].token: ...`); any other open error
/// ([`RunError::Failed`]).
pub fn open_source(plan: &Plan<'_>, ctx: SourceContext) -> Result<Box<dyn Source>, RunError> {
    let p = &*plan.pipeline;
    match &plan.accounts {
        None => {
            let PluginFactory::Source(open) = &p.source.descriptor.factory else { unreachable!("checked at load") };
            open(p.source.config.clone(), ctx).map_err(|e| open_error("source", p.source.descriptor.name, e))
        }
        Some(list) => {
            let max = p.accounts.as_ref().map_or(1, |a| a.max_concurrent);
            let prior = ctx.state.clone();
            let multi = MultiSource::open(list, max, prior.as_ref(), &ctx)
                .map_err(|(path, e)| open_error(&path, p.source.descriptor.name, e))?;
            Ok(Box::new(multi))
        }
    }
}

/// Opens `p`'s transforms in order, each seeing the streams as the transforms before it left
/// them, then its sinks with the final stream schemas; `run_id` names this run's files;
/// transforms count into `metrics`.
///
/// Errors: as [`open_source`], for `transforms[i]` and `sinks[i]`.
pub fn open_stages(
    source: Box<dyn Source>,
    p: &Pipeline,
    run_id: &str,
    metrics: &Arc<Metrics>,
) -> Result<Stages, RunError> {
    let mut streams = source.streams();
    let mut transforms = Vec::new();
    for spec in &p.transforms {
        let PluginFactory::Transform(open) = &spec.descriptor.factory else { unreachable!("checked at load") };
        let ctx = TransformContext { pipeline: p.name.clone(), metrics: metrics.clone() };
        let transform = open(spec.config.clone(), ctx).map_err(|e| open_error(&spec.path, spec.descriptor.name, e))?;
        let touched;
        (streams, touched) = propagate(streams, transform.as_ref());
        transforms.push(TransformStage { name: spec.descriptor.name, transform, touched });
    }
    let mut sinks = Vec::new();
    for spec in &p.sinks {
        let PluginFactory::Sink(open) = &spec.descriptor.factory else { unreachable!("checked at load") };
        let ctx = SinkContext { pipeline: p.name.clone(), streams: streams.clone(), run_id: run_id.to_string() };
        let sink = open(spec.config.clone(), ctx).map_err(|e| open_error(&spec.path, spec.descriptor.name, e))?;
        sinks.push(SinkStage { name: format!("{} {}", spec.path, spec.descriptor.name), sink });
    }
    Ok(Stages { source, transforms, sinks })
}

/// The streams after `t`: each stream `t` touches gets the schema `t` outputs for it, the
/// others pass unchanged. Returns them, in the same order, and the names of the touched ones.
pub fn propagate(streams: Vec<StreamDecl>, t: &dyn Transform) -> (Vec<StreamDecl>, HashSet<String>) {
    let mut touched = HashSet::new();
    let out = streams
        .into_iter()
        .map(|s| match t.output_stream(&s) {
            Some(out) => {
                touched.insert(s.name.clone());
                out
            }
            None => s,
        })
        .collect();
    (out, touched)
}

impl Stages {
    /// Starts the source and every transform as tasks, connected by bounded channels. Returns
    /// the sinks (driven by the coordinator on the calling task) and the running stages.
    pub fn wire(self) -> (Vec<SinkStage>, Running) {
        let (tx, mut rx) = mpsc::channel::<Item>(CHANNEL_CAPACITY);
        let mut tasks = vec![tokio::spawn(pump_source(self.source, tx))];
        for t in self.transforms {
            let (tx, next_rx) = mpsc::channel::<Item>(CHANNEL_CAPACITY);
            tasks.push(tokio::spawn(pump_transform(t, rx, tx)));
            rx = next_rx;
        }
        (self.sinks, Running { events: rx, tasks })
    }
}

/// The error of a plugin's open: a refused config is a configuration error at `path` (exit 2),
/// anything else a failed run.
fn open_error(path: &str, plugin: &str, e: PluginError) -> RunError {
    match e {
        PluginError::Config { path: key, message } => {
            let full = if key.is_empty() { path.to_string() } else { format!("{path}.{key}") };
            RunError::Config(format!("{full}: {message}"))
        }
        other => RunError::Failed(anyhow::anyhow!("cannot open {path} (`{plugin}`): {other}")),
    }
}

/// Forwards the source's events until `End` or an error (both forwarded), or until nobody
/// listens.
async fn pump_source(mut source: Box<dyn Source>, tx: mpsc::Sender<Item>) {
    loop {
        let item = source.next().await;
        let done = matches!(item, Ok(Event::End) | Err(_));
        if tx.send(item).await.is_err() || done {
            return;
        }
    }
}

/// Feeds one transform its batches in order. Batches of streams it does not touch, and dead
/// letters, pass unchanged; at a checkpoint or `End` it flushes first, so what it buffered is
/// covered by that checkpoint. Its dead letters get its name as `stage` when they have none.
async fn pump_transform(stage: TransformStage, mut rx: mpsc::Receiver<Item>, tx: mpsc::Sender<Item>) {
    let TransformStage { name, transform: mut t, touched } = stage;
    let failed = |e: PluginError| PluginError::Other(format!("transform `{name}`: {e}"));
    let emit = |stream: String, out: TransformOutput| match out {
        TransformOutput::Batch(batch) => Event::Batch { stream, batch },
        TransformOutput::DeadLetter(mut dl) => {
            if dl.stage.is_empty() {
                dl.stage = name.to_string();
            }
            Event::DeadLetter(dl)
        }
    };
    while let Some(item) = rx.recv().await {
        let produced: Result<Vec<Event>, PluginError> = match item {
            Ok(Event::Batch { stream, batch }) if touched.contains(&stream) => t
                .transform(&stream, batch)
                .await
                .map(|outs| outs.into_iter().map(|o| emit(stream.clone(), o)).collect())
                .map_err(failed),
            Ok(barrier @ (Event::Checkpoint(_) | Event::End)) => t
                .flush()
                .await
                .map(|outs| outs.into_iter().map(|(s, o)| emit(s, o)).chain(std::iter::once(barrier)).collect())
                .map_err(failed),
            Ok(other) => Ok(vec![other]),
            Err(e) => Err(e),
        };
        match produced {
            Ok(events) => {
                for ev in events {
                    let end = matches!(ev, Event::End);
                    if tx.send(Ok(ev)).await.is_err() || end {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, Field, Schema};
    use pipe_plugin_sdk::reexports::async_trait;

    use super::*;

    /// Adds a `lang` column to `messages`; leaves every other stream alone.
    struct AddsLang;

    #[async_trait]
    impl Transform for AddsLang {
        fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
            (input.name == "messages").then(|| {
                let mut fields: Vec<_> = input.schema.fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new("lang", DataType::Utf8, true)));
                StreamDecl { name: input.name.clone(), schema: Arc::new(Schema::new(fields)) }
            })
        }

        async fn transform(
            &mut self,
            _stream: &str,
            batch: RecordBatch,
        ) -> pipe_plugin_sdk::Result<Vec<TransformOutput>> {
            Ok(vec![TransformOutput::Batch(batch)])
        }
    }

    fn stream(name: &str) -> StreamDecl {
        StreamDecl { name: name.into(), schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])) }
    }

    #[test]
    fn a_transform_changes_only_the_streams_it_touches() {
        let (out, touched) = propagate(vec![stream("conversations"), stream("messages")], &AddsLang);
        assert_eq!(out.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["conversations", "messages"]);
        assert_eq!(out[0].schema, stream("conversations").schema);
        assert_eq!(out[1].schema.fields().len(), 2);
        assert_eq!(out[1].schema.field(1).name(), "lang");
        assert_eq!(touched, HashSet::from(["messages".to_string()]));
    }

    #[test]
    fn a_refused_config_is_a_configuration_error_at_its_key() {
        let refused = PluginError::Config { path: "token".into(), message: "is empty".into() };
        assert!(matches!(open_error("source", "giosg", refused), RunError::Config(m) if m == "source.token: is empty"));
        let whole = PluginError::Config { path: String::new(), message: "bad".into() };
        assert!(matches!(open_error("sinks[0]", "parquet", whole), RunError::Config(m) if m == "sinks[0]: bad"));
        let other = PluginError::Other("disk full".into());
        assert!(
            matches!(open_error("sinks[0]", "parquet", other), RunError::Failed(e) if e.to_string() == "cannot open sinks[0] (`parquet`): disk full")
        );
    }
}
