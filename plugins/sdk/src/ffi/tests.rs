//! The SDK side of the ABI in-process, without `dlopen`: the exported entry points called
//! through the descriptor `init` returns, as a host would (docs/plugin-abi.md §5.6's "static init"
//! test). The engine's tests cover the same through real `.so` files.

use std::ffi::{CStr, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pipe_plugin_abi as abi;
use serde_json::json;

use super::{LibraryInfo, arrow as ffi_arrow, init};
use crate::schema::{CONVERSATIONS, ConversationRow, ConversationsBuilder, conversations_schema};
use crate::{Event, PluginDescriptor, PluginError, PluginFactory, Result, Source, StreamDecl, config};

/// A source that emits one conversations batch, then blocks forever (until cancelled), or
/// panics / fails when its config says so.
struct TestSource {
    mode: String,
    sent: bool,
}

#[async_trait::async_trait]
impl Source for TestSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() }]
    }

    async fn next(&mut self) -> Result<Event> {
        match self.mode.as_str() {
            "panic" => panic!("boom\0with a NUL"),
            "fail" => return Err(PluginError::Auth { vendor: "test".into(), status: 401, what: "login".into() }),
            _ => {}
        }
        if !self.sent {
            self.sent = true;
            return Ok(Event::Batch { stream: CONVERSATIONS.into(), batch: sample_batch() });
        }
        std::future::pending().await
    }
}

fn sample_batch() -> RecordBatch {
    let mut b = ConversationsBuilder::new();
    for i in 0..3 {
        b.append(&ConversationRow {
            vendor: "test".into(),
            account_id: "acc".into(),
            conversation_id: format!("c{i}"),
            title: (i != 1).then(|| format!("title {i}")),
            agent_ids: vec!["a".into(), "b".into()],
            variables: [("k".to_string(), format!("v{i}"))].into_iter().collect(),
            raw: "{}".into(),
            created_at: Some(1_700_000_000_000_000 + i),
            ..Default::default()
        });
    }
    b.finish()
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    mode: String,
}

fn test_source() -> PluginDescriptor {
    PluginDescriptor {
        name: "test_source",
        version: "9.9.9",
        description: "in-process test source",
        config_schema: Arc::new(config::schema_of::<TestConfig>),
        check_config: Arc::new(config::check::<TestConfig>),
        factory: PluginFactory::source(|v, _| {
            let cfg: TestConfig = config::parse(v)?;
            Ok(Box::new(TestSource { mode: cfg.mode, sent: false }))
        }),
    }
}

static PLUGINS: &[fn() -> PluginDescriptor] = &[test_source];

fn library() -> &'static abi::PipeLibraryV1 {
    let mut out: *const abi::PipeLibraryV1 = std::ptr::null();
    let mut err = abi::PipeError::new();
    let info = LibraryInfo { name: "sdk-test", version: "1.2.3", plugins: PLUGINS };
    // SAFETY: valid out-pointers; no host API.
    assert_eq!(unsafe { init(std::ptr::null(), &mut out, &mut err, info) }, abi::PIPE_OK);
    // SAFETY: static for the life of the process.
    unsafe { &*out }
}

fn text(p: *const std::ffi::c_char) -> String {
    // SAFETY: NUL-terminated strings from the library.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Takes the message out of a failed call's error, freeing it with the library's free_string.
fn take_message(lib: &abi::PipeLibraryV1, err: &mut abi::PipeError) -> (String, Option<String>) {
    let free = lib.free_string.unwrap();
    let message = text(err.message);
    let path = (!err.config_path.is_null()).then(|| text(err.config_path));
    // SAFETY: strings of this library, freed once.
    unsafe {
        free(err.message);
        free(err.config_path);
    }
    (message, path)
}

fn open(lib: &abi::PipeLibraryV1, config: &str) -> std::result::Result<*mut c_void, (i32, String, Option<String>)> {
    // SAFETY: one plugin, static.
    let plugin = unsafe { &*lib.plugins };
    // SAFETY: the test library's one plugin is a source with a static vtable.
    let vt = unsafe { &*plugin.source };
    let args = abi::PipeSourceOpenArgsV1 {
        struct_size: abi::struct_size::<abi::PipeSourceOpenArgsV1>(),
        pipeline: abi::PipeStr::new("p"),
        config_json: abi::PipeStr::new(config),
        state_json: abi::PipeStr::EMPTY,
        limit: -1,
    };
    let mut h = std::ptr::null_mut();
    let mut err = abi::PipeError::new();
    // SAFETY: per the ABI.
    let status = unsafe { vt.open.unwrap()(plugin, &args, &mut h, &mut err) };
    if status == abi::PIPE_OK {
        Ok(h)
    } else {
        let (m, p) = take_message(lib, &mut err);
        Err((status, m, p))
    }
}

fn empty_event() -> abi::PipeEventV1 {
    abi::PipeEventV1 {
        struct_size: abi::struct_size::<abi::PipeEventV1>(),
        kind: abi::PIPE_EVENT_NONE,
        stream: abi::PipeStr::EMPTY,
        json: abi::PipeStr::EMPTY,
        array: abi::ArrowArray::empty(),
        schema: abi::ArrowSchema::empty(),
    }
}

#[test]
fn the_exported_library_describes_its_plugins() {
    let lib = library();
    assert_eq!(lib.abi_version, abi::ABI_VERSION);
    assert_eq!(lib.n_plugins, 1);
    assert_eq!(text(lib.library_name), "sdk-test");
    assert!(text(lib.build_info).contains("panic=unwind"));
    // SAFETY: static descriptor.
    let plugin = unsafe { &*lib.plugins };
    assert_eq!((text(plugin.name), plugin.kind), ("test_source".to_string(), abi::PIPE_KIND_SOURCE));
    let schema: serde_json::Value = serde_json::from_str(&text(plugin.config_schema_json)).unwrap();
    assert!(schema["properties"]["mode"].is_object());
    assert!(plugin.transform.is_null() && plugin.sink.is_null());
}

#[test]
fn config_errors_cross_with_their_key_path() {
    let lib = library();
    let (status, message, path) = open(lib, r#"{"mode": 5}"#).unwrap_err();
    assert_eq!(status, abi::PIPE_ERROR_CONFIG);
    assert_eq!(path.as_deref(), Some("mode"));
    assert!(message.contains("invalid type"), "{message}");
    let (status, message, _) = open(lib, "not json").unwrap_err();
    assert_eq!(status, abi::PIPE_ERROR_ABI);
    assert!(message.contains("config_json is not JSON"), "{message}");
}

#[test]
fn a_batch_crosses_unchanged_and_keeps_its_declared_schema() {
    let lib = library();
    let h = open(lib, r#"{"mode": "ok"}"#).unwrap();
    // SAFETY: per the ABI, on an open handle.
    unsafe {
        let vt = &*(*lib.plugins).source;
        let mut n = 0;
        let mut err = abi::PipeError::new();
        assert_eq!(vt.stream_count.unwrap()(h, &mut n, &mut err), abi::PIPE_OK);
        assert_eq!(n, 1);
        let mut name = abi::PipeStr::EMPTY;
        let mut schema = abi::ArrowSchema::empty();
        assert_eq!(vt.stream.unwrap()(h, 0, &mut name, &mut schema, &mut err), abi::PIPE_OK);
        let declared = Arc::new(ffi_arrow::schema_from_owned(&mut schema).unwrap());
        assert!(schema.release.is_none(), "the import released the schema");
        assert_eq!(std::str::from_utf8(name.as_bytes()).unwrap(), CONVERSATIONS);
        assert_eq!(declared.as_ref(), conversations_schema().as_ref());

        let mut ev = empty_event();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_OK);
        assert_eq!(ev.kind, abi::PIPE_EVENT_BATCH);
        let batch = ffi_arrow::import_owned_batch(&mut ev.array, &mut ev.schema, Some(&declared)).unwrap();
        assert!(Arc::ptr_eq(&batch.schema(), &declared));
        assert_eq!(batch, sample_batch());
        vt.close.unwrap()(h);
    }
}

#[test]
fn cancel_interrupts_a_blocked_call_and_errors_carry_their_message() {
    let lib = library();
    let h = open(lib, r#"{"mode": "ok"}"#).unwrap();
    struct Handle(*mut c_void);
    // SAFETY: the ABI allows cancel from another thread.
    unsafe impl Send for Handle {}
    // SAFETY: per the ABI, on an open handle.
    unsafe {
        let vt = &*(*lib.plugins).source;
        let mut ev = empty_event();
        let mut err = abi::PipeError::new();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_OK);
        ffi_arrow::import_owned_batch(&mut ev.array, &mut ev.schema, None).unwrap();
        // The next call blocks forever, until cancelled from another thread.
        let handle = Handle(h);
        let cancel = vt.cancel.unwrap();
        let canceller = std::thread::spawn(move || {
            let handle = handle;
            std::thread::sleep(Duration::from_millis(200));
            cancel(handle.0);
            Instant::now()
        });
        let mut ev = empty_event();
        let status = vt.next_event.unwrap()(h, &mut ev, &mut err);
        let returned = Instant::now();
        let cancelled_at = canceller.join().unwrap();
        assert_eq!(status, abi::PIPE_ERROR_CANCELLED);
        assert!(returned.duration_since(cancelled_at) < Duration::from_millis(500));
        take_message(lib, &mut err);
        vt.close.unwrap()(h);
    }
    let h = open(lib, r#"{"mode": "fail"}"#).unwrap();
    // SAFETY: as above.
    unsafe {
        let vt = &*(*lib.plugins).source;
        let mut ev = empty_event();
        let mut err = abi::PipeError::new();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_ERROR);
        let (message, path) = take_message(lib, &mut err);
        assert_eq!(message, "test rejected the credentials: HTTP 401 on login; check the token and its permissions");
        assert_eq!(path, None);
        vt.close.unwrap()(h);
    }
}

#[test]
fn a_panic_becomes_an_error_and_poisons_the_instance() {
    let lib = library();
    let h = open(lib, r#"{"mode": "panic"}"#).unwrap();
    // SAFETY: per the ABI, on an open handle.
    unsafe {
        let vt = &*(*lib.plugins).source;
        let mut ev = empty_event();
        let mut err = abi::PipeError::new();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_ERROR_PANIC);
        let (message, _) = take_message(lib, &mut err);
        // The NUL inside the panic message cannot cut it short or abort.
        assert!(message.starts_with("panicked: boom\u{FFFD}with a NUL at "), "{message}");
        let mut err = abi::PipeError::new();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_ERROR_PANIC);
        let (message, _) = take_message(lib, &mut err);
        assert!(message.contains("unusable after an earlier panic"), "{message}");
        vt.close.unwrap()(h);
    }
}

#[test]
fn a_caller_struct_smaller_than_v1_is_refused() {
    let lib = library();
    let h = open(lib, r#"{"mode": "ok"}"#).unwrap();
    // SAFETY: per the ABI, on an open handle.
    unsafe {
        let vt = &*(*lib.plugins).source;
        let mut ev = empty_event();
        ev.struct_size = 8;
        let mut err = abi::PipeError::new();
        assert_eq!(vt.next_event.unwrap()(h, &mut ev, &mut err), abi::PIPE_ERROR_ABI);
        let (message, _) = take_message(lib, &mut err);
        assert!(message.contains("PipeEventV1: struct_size 8"), "{message}");
        vt.close.unwrap()(h);
    }
}

#[test]
fn dead_letters_and_checkpoints_round_trip_as_json() {
    use super::wire;
    let dl = crate::DeadLetter {
        stream: "messages".into(),
        key: json!({"message_id": "m1"}),
        stage: "giosg".into(),
        reason: "unparsable_timestamp".into(),
        message: "bad".into(),
        raw: json!({"created_at": "x"}),
    };
    assert_eq!(wire::dead_letter_from_json(&wire::dead_letter_to_json(&dl)).unwrap(), dl);
    let cp = crate::Checkpoint { state: json!({"cursor": [1, 2]}) };
    assert_eq!(wire::checkpoint_from_json(&wire::checkpoint_to_json(&cp)).unwrap(), cp);
}

/// A batch whose buffers break Arrow's rules (bytes that are not UTF-8 in a string column,
/// offsets that run backwards) is refused at import with an error, instead of being read as
/// valid later. (The C Data Interface carries no buffer lengths: the importer derives them from
/// the offsets, so an offset past the end of the producer's allocation cannot be detected by
/// any consumer; what can be checked is checked.)
#[test]
fn an_invalid_array_from_the_other_side_is_an_error_not_undefined_behaviour() {
    use arrow_array::StringArray;
    use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
    use arrow_schema::{DataType, Field, Schema};

    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
    let lies: [(&[i32], &[u8], &str); 2] = [(&[0, 3], &[0xff, 0xfe, 0xfd], "utf8"), (&[0, 2, 1], b"abc", "offset")];
    for (offsets, values, complaint) in lies {
        // SAFETY: (test) deliberately invalid; only the validation under test reads it, and
        // every offset lies inside `values`.
        let lying = unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets.to_vec())),
                Buffer::from_slice_ref(values),
                None,
            )
        };
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(lying)]).unwrap();
        let mut array = abi::ArrowArray::empty();
        let mut sent = abi::ArrowSchema::empty();
        // SAFETY: (test) both outputs are ours to fill.
        unsafe { ffi_arrow::export_batch(&batch, &mut array, &mut sent) }.unwrap();
        // SAFETY: (test) the array is ours and moved in; the schema is borrowed.
        let err = unsafe { ffi_arrow::import_batch(&mut array, &sent, Some(&schema)) }.unwrap_err();
        assert!(err.to_string().to_lowercase().contains(complaint), "{complaint}: {err}");
        assert!(array.release.is_none(), "the import took (and so released) the array");
        // SAFETY: (test) the schema is still ours; released once here.
        unsafe { ffi_arrow::schema_from_owned(&mut sent) }.unwrap();
    }
}
