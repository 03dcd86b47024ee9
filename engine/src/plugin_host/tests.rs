//! The whole boundary in one process, without `dlopen`: SDK plugins exported through the SDK's
//! side of the C ABI (`pipe_plugin_sdk::ffi::init`, what `declare_plugin!` expands to) and read
//! back through the host's side (`loader::from_descriptor`, the adapters, the descriptor's
//! closures). Every call crosses the `extern "C"` vtables, the Arrow C Data Interface and the
//! JSON wire forms, as with a real library; the output must equal the plugin opened directly.
//! The `ffi_*` end-to-end tests do the same through real `.so` files.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use pipe_plugin_abi as abi;
use pipe_plugin_sdk::ffi::{LibraryInfo, init};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{
    Checkpoint, DeadLetter, Event, Metrics, PluginDescriptor, PluginFactory, PluginKind, Result, Sink, SinkContext,
    SinkStats, Source, SourceContext, StreamDecl, Transform, TransformContext, TransformOutput, config,
};
use serde_json::{Value, json};

use super::loader::{self, LoadedLibrary};

fn numbers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

fn labelled_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("label", DataType::Utf8, false)]))
}

/// `{"batches": N}`: N batches of 3 numbers, a dead letter, a checkpoint, the end.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersConfig {
    batches: i64,
}

struct Numbers {
    left: i64,
    next: i64,
    done: bool,
    pipeline: String,
}

#[async_trait]
impl Source for Numbers {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![StreamDecl { name: "numbers".into(), schema: numbers_schema() }]
    }

    async fn next(&mut self) -> Result<Event> {
        if self.left > 0 {
            self.left -= 1;
            let start = self.next;
            self.next += 3;
            let batch =
                RecordBatch::try_new(numbers_schema(), vec![Arc::new(Int64Array::from_iter_values(start..start + 3))])?;
            return Ok(Event::Batch { stream: "numbers".into(), batch });
        }
        if !self.done {
            self.done = true;
            return Ok(Event::Checkpoint(Checkpoint { state: json!({"next": self.next, "by": self.pipeline}) }));
        }
        Ok(Event::End)
    }
}

fn numbers() -> PluginDescriptor {
    PluginDescriptor {
        name: "numbers",
        version: "1.0.0",
        description: "in-process test source",
        config_schema: Arc::new(|| json!({"type": "object", "properties": {"batches": {"type": "integer"}}})),
        check_config: Arc::new(config::check::<NumbersConfig>),
        factory: PluginFactory::source(|v, ctx| {
            let cfg: NumbersConfig = config::parse(v)?;
            let next = ctx.state.as_ref().and_then(|s| s["next"].as_i64()).unwrap_or(0);
            Metrics::add(&ctx.metrics.requests, 1);
            Ok(Box::new(Numbers { left: cfg.batches, next, done: false, pipeline: ctx.pipeline }))
        }),
    }
}

/// Adds a `label` column (`<pipeline>:<n>`), and a dead letter for every odd number.
struct Label {
    pipeline: String,
}

#[async_trait]
impl Transform for Label {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        (input.name == "numbers").then(|| StreamDecl { name: input.name.clone(), schema: labelled_schema() })
    }

    async fn transform(&mut self, stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        let n = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("n is Int64");
        let labels: StringArray =
            n.iter().map(|v| Some(format!("{}:{}", self.pipeline, v.unwrap_or_default()))).collect();
        let mut out = vec![TransformOutput::Batch(RecordBatch::try_new(
            labelled_schema(),
            vec![batch.column(0).clone(), Arc::new(labels)],
        )?)];
        out.extend(n.iter().flatten().filter(|v| v % 2 == 1).map(|v| {
            TransformOutput::DeadLetter(DeadLetter {
                stream: stream.into(),
                key: json!({"n": v}),
                stage: "label".into(),
                reason: "odd".into(),
                message: format!("{v} is odd"),
                raw: json!(v),
            })
        }));
        Ok(out)
    }
}

fn label() -> PluginDescriptor {
    PluginDescriptor {
        name: "label",
        version: "1.0.0",
        description: "in-process test transform",
        config_schema: Arc::new(|| json!({"type": "object"})),
        check_config: PluginDescriptor::check_with(|_| Ok(())),
        factory: PluginFactory::transform(|_, ctx| Ok(Box::new(Label { pipeline: ctx.pipeline }))),
    }
}

/// What the in-process sink saw: (run id, stream, rows) per write, then the committed states.
static WRITTEN: Mutex<Vec<(String, String, usize)>> = Mutex::new(Vec::new());
static COMMITTED: Mutex<Vec<Value>> = Mutex::new(Vec::new());

struct Collect {
    run_id: String,
    rows: u64,
}

#[async_trait]
impl Sink for Collect {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        WRITTEN.lock().unwrap().push((self.run_id.clone(), stream.into(), batch.num_rows()));
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        COMMITTED.lock().unwrap().push(checkpoint.state.clone());
        Ok(())
    }

    async fn abort(&mut self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> SinkStats {
        SinkStats { rows: self.rows, ..SinkStats::default() }
    }
}

fn collect() -> PluginDescriptor {
    PluginDescriptor {
        name: "collect",
        version: "1.0.0",
        description: "in-process test sink",
        config_schema: Arc::new(|| json!({"type": "object"})),
        check_config: PluginDescriptor::check_with(|_| Ok(())),
        factory: PluginFactory::sink(|_, ctx| Ok(Box::new(Collect { run_id: ctx.run_id, rows: 0 }))),
    }
}

static PLUGINS: &[fn() -> PluginDescriptor] = &[numbers, label, collect];

/// The in-process library's descriptor (initialised once per process, like a real library),
/// read as the loader reads a loaded library's.
fn library() -> Arc<LoadedLibrary> {
    let mut out: *const abi::PipeLibraryV1 = std::ptr::null();
    let mut err = abi::PipeError::new();
    let info = LibraryInfo { name: "in-process", version: "0.0.0", plugins: PLUGINS };
    // SAFETY: valid out-pointers; no host API (the library's logs stay off: this process's
    // logger would be its own caller).
    assert_eq!(unsafe { init(std::ptr::null(), &mut out, &mut err, info) }, abi::PIPE_OK);
    // SAFETY: static for the life of the process.
    let desc = unsafe { &*out };
    loader::from_descriptor(desc, Path::new("in-process"), abi::ABI_VERSION).expect("a valid library")
}

fn foreign(lib: &LoadedLibrary, name: &str) -> PluginDescriptor {
    lib.plugins.iter().find(|p| p.name == name).expect("shipped").descriptor()
}

fn source_ctx(state: Option<Value>, metrics: &Arc<Metrics>) -> SourceContext {
    SourceContext { pipeline: "p".into(), state, limit: None, metrics: metrics.clone() }
}

async fn read_all(d: &PluginDescriptor, config: Value, state: Option<Value>) -> (Vec<String>, Arc<Metrics>) {
    let PluginFactory::Source(open) = &d.factory else { panic!("a source") };
    let metrics = Arc::new(Metrics::default());
    let mut source = open(config, source_ctx(state, &metrics)).unwrap();
    let mut events = vec![format!("streams {:?}", source.streams().iter().map(|s| &s.name).collect::<Vec<_>>())];
    loop {
        match source.next().await.unwrap() {
            Event::Batch { stream, batch } => {
                assert_eq!(batch.schema(), numbers_schema());
                events.push(format!("{stream}: {:?}", batch.column(0)));
            }
            Event::DeadLetter(d) => events.push(format!("dead letter {d:?}")),
            Event::Checkpoint(c) => events.push(format!("checkpoint {}", c.state)),
            Event::End => break,
        }
    }
    (events, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_through_the_abi_emits_what_it_emits_directly() {
    let lib = library();
    assert_eq!(
        lib.plugins.iter().map(|p| (p.name, p.kind)).collect::<Vec<_>>(),
        [("numbers", PluginKind::Source), ("label", PluginKind::Transform), ("collect", PluginKind::Sink)]
    );
    let via_abi = foreign(&lib, "numbers");
    assert_eq!((via_abi.config_schema)(), (numbers().config_schema)());
    let err = (via_abi.check_config)(&json!({"batches": "x"})).unwrap_err();
    assert!(matches!(&err, pipe_plugin_sdk::PluginError::Config { path, .. } if path == "batches"), "{err}");

    let state = Some(json!({"next": 30}));
    let (direct, _) = read_all(&numbers(), json!({"batches": 2}), state.clone()).await;
    let (crossed, metrics) = read_all(&via_abi, json!({"batches": 2}), state).await;
    assert_eq!(crossed, direct);
    assert!(direct.iter().any(|e| e.contains("30")), "the state reached the source: {direct:?}");
    // The library's counters reach the engine's.
    assert_eq!(Metrics::get(&metrics.requests), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_through_the_abi_gets_its_context_and_outputs_what_it_outputs_directly() {
    let lib = library();
    let input = StreamDecl { name: "numbers".into(), schema: numbers_schema() };
    let batch = RecordBatch::try_new(numbers_schema(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
    let mut outputs = Vec::new();
    for d in [label(), foreign(&lib, "label")] {
        let PluginFactory::Transform(open) = &d.factory else { panic!("a transform") };
        let ctx = TransformContext { pipeline: "nightly".into(), metrics: Arc::new(Metrics::default()) };
        let mut t = open(json!({}), ctx).unwrap();
        let out = t.output_stream(&input).expect("touches numbers");
        assert_eq!(out.schema, labelled_schema());
        let other = StreamDecl { name: "other".into(), schema: numbers_schema() };
        assert!(t.output_stream(&other).is_none());
        let outs = t.transform("numbers", batch.clone()).await.unwrap();
        outputs.push(format!("{outs:?}"));
        assert!(t.flush().await.unwrap().is_empty());
    }
    assert_eq!(outputs[1], outputs[0]);
    assert!(outputs[0].contains("nightly:2"), "the pipeline name reached the transform: {}", outputs[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_through_the_abi_writes_and_commits() {
    let lib = library();
    let d = foreign(&lib, "collect");
    let PluginFactory::Sink(open) = &d.factory else { panic!("a sink") };
    let streams = vec![StreamDecl { name: "numbers".into(), schema: numbers_schema() }];
    let ctx = SinkContext { pipeline: "p".into(), streams, run_id: "sink-test".into() };
    let mut sink = open(json!({}), ctx).unwrap();
    let batch = RecordBatch::try_new(numbers_schema(), vec![Arc::new(Int64Array::from(vec![7, 8]))]).unwrap();
    sink.write("numbers", &batch).await.unwrap();
    sink.commit(&Checkpoint { state: json!({"run": "sink-test"}) }).await.unwrap();
    assert_eq!(sink.stats().rows, 2);
    drop(sink);
    let written = WRITTEN.lock().unwrap().clone();
    assert!(written.contains(&("sink-test".into(), "numbers".into(), 2)), "{written:?}");
    assert!(COMMITTED.lock().unwrap().contains(&json!({"run": "sink-test"})));
}

/// Plugins of libraries used to live in 64 preallocated slots; now each is a descriptor whose
/// closures capture it, so there is no limit. 70 reads of the library (210 plugins), each
/// opened, must all work, and each descriptor must open its own plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_number_of_library_plugins_load_and_open() {
    let libs: Vec<Arc<LoadedLibrary>> = (0..70).map(|_| library()).collect();
    let plugins: Vec<_> = libs.iter().flat_map(|l| l.plugins.iter().cloned()).collect();
    assert_eq!(plugins.len(), 210);
    let streams = vec![StreamDecl { name: "numbers".into(), schema: numbers_schema() }];
    let metrics = Arc::new(Metrics::default());
    for p in &plugins {
        match &p.descriptor().factory {
            PluginFactory::Source(open) => {
                let mut s = open(json!({"batches": 1}), source_ctx(None, &metrics)).unwrap();
                assert!(matches!(s.next().await.unwrap(), Event::Batch { .. }));
            }
            PluginFactory::Transform(open) => {
                let t = open(json!({}), TransformContext::default()).unwrap();
                assert!(t.output_stream(&streams[0]).is_some());
            }
            PluginFactory::Sink(open) => {
                let ctx = SinkContext { pipeline: "p".into(), streams: streams.clone(), run_id: "many".into() };
                assert_eq!(open(json!({}), ctx).unwrap().stats(), SinkStats::default());
            }
        }
    }
    assert_eq!(Metrics::get(&metrics.requests), 70, "every source opened once");
}
