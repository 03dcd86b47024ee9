//! `cancel` interrupts a source blocked on a slow server within a second: the giosg source as a
//! dynamic library, against a server that accepts the request and never answers (giosg's own
//! HTTP timeout is 60 s).
//!
//! Two views: the engine's path (its plugin host, compiled into this test, dropping a source
//! whose `next` is in flight, as the runtime does when a run stops), and the raw ABI (`cancel`
//! from another thread makes the blocked `next_event` return `PIPE_ERROR_CANCELLED`).

use pipe_engine::plugin_host;
use pipe_tests::libraries;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pipe_plugin_abi as abi;
use pipe_plugin_sdk::{Metrics, PluginFactory, SourceContext};
use serde_json::json;

/// A server that reads requests and never answers. Reports each accepted connection, and the
/// time each one was closed by the client.
fn silent_server() -> (SocketAddr, mpsc::Receiver<()>, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let (closed_tx, closed_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = accepted_tx.send(());
            let closed_tx = closed_tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                let _ = closed_tx.send(Instant::now());
            });
        }
    });
    (addr, accepted_rx, closed_rx)
}

fn giosg_config(addr: SocketAddr) -> serde_json::Value {
    json!({"base_url": format!("http://{addr}"), "organization_id": "org", "token": "t"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_blocked_library_source_cancels_its_request_within_a_second() {
    let (addr, accepted, closed) = silent_server();
    let lib = plugin_host::loader::load(&libraries::library("pipe_giosg")).unwrap().expect("a plugin");
    let giosg = lib.plugins.iter().find(|p| p.name == "giosg").unwrap().descriptor();
    let PluginFactory::Source(open) = giosg.factory else { panic!("giosg is a source") };
    let ctx =
        SourceContext { pipeline: "cancel".into(), state: None, limit: None, metrics: Arc::new(Metrics::default()) };
    let mut source = open(giosg_config(addr), ctx).unwrap();

    let next = tokio::spawn(async move { source.next().await.map(|_| ()) });
    tokio::task::spawn_blocking(move || accepted.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the source never connected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!next.is_finished(), "the source should be blocked on the silent server");

    // What the engine does to a stage when the run stops: abort its task, dropping the source.
    let t0 = Instant::now();
    next.abort();
    let closed_at = tokio::task::spawn_blocking(move || closed.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the request was never dropped");
    let took = closed_at.saturating_duration_since(t0);
    println!("request dropped {took:?} after the source was dropped");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
}

#[test]
fn cancel_makes_a_blocked_next_event_return_cancelled_within_a_second() {
    let (addr, accepted, _closed) = silent_server();
    // SAFETY: our own plugin library, following the ABI.
    unsafe {
        let lib = libloading::Library::new(libraries::library("pipe_giosg")).unwrap();
        let init = *lib.get::<abi::InitV1Fn>(abi::SYMBOL_INIT_V1).unwrap();
        let mut desc: *const abi::PipeLibraryV1 = std::ptr::null();
        let mut err = abi::PipeError::new();
        assert_eq!(init(std::ptr::null(), &mut desc, &mut err), abi::PIPE_OK);
        let plugin = &*(*desc).plugins;
        let vt = &*plugin.source;

        let config = giosg_config(addr).to_string();
        let args = abi::PipeSourceOpenArgsV1 {
            struct_size: abi::struct_size::<abi::PipeSourceOpenArgsV1>(),
            pipeline: abi::PipeStr::new("cancel"),
            config_json: abi::PipeStr::new(&config),
            state_json: abi::PipeStr::EMPTY,
            limit: -1,
        };
        let mut h = std::ptr::null_mut();
        assert_eq!(vt.open.unwrap()(plugin, &args, &mut h, &mut err), abi::PIPE_OK);

        struct Handle(*mut std::ffi::c_void);
        // SAFETY: the ABI lets another thread drive the instance while this one cancels it.
        unsafe impl Send for Handle {}
        let handle = Handle(h);
        let next_event = vt.next_event.unwrap();
        let free = (*desc).free_string.unwrap();
        let blocked = std::thread::spawn(move || {
            let handle = handle;
            let mut ev = abi::PipeEventV1 {
                struct_size: abi::struct_size::<abi::PipeEventV1>(),
                kind: 0,
                stream: abi::PipeStr::EMPTY,
                json: abi::PipeStr::EMPTY,
                array: abi::ArrowArray::empty(),
                schema: abi::ArrowSchema::empty(),
            };
            let mut err = abi::PipeError::new();
            let status = next_event(handle.0, &mut ev, &mut err);
            let returned = Instant::now();
            free(err.message);
            free(err.config_path);
            (status, returned)
        });
        accepted.recv_timeout(Duration::from_secs(20)).expect("the source never connected");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!blocked.is_finished(), "next_event should be blocked on the silent server");

        let t0 = Instant::now();
        vt.cancel.unwrap()(h);
        let (status, returned) = blocked.join().unwrap();
        let took = returned.saturating_duration_since(t0);
        println!("next_event returned {took:?} after cancel");
        assert_eq!(status, abi::PIPE_ERROR_CANCELLED);
        assert!(took < Duration::from_secs(1), "cancel took {took:?}");
        vt.close.unwrap()(h);
        // Libraries are never unloaded.
        std::mem::forget(lib);
    }
}
