//! `cancel` measured across the C ABI, for `pipe plugin check`: the SDK's conformance kit sees
//! a library plugin through the adapter, whose drop fires `cancel` and returns at once, so it
//! cannot tell how long the library's blocked call really took to give up. This opens the
//! source directly, keeps `next_event` busy on one thread and calls `cancel` from another, as
//! the ABI's threading contract allows, and times the call's return.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use pipe_plugin_abi::{PIPE_EVENT_END, PipeSourceOpenArgsV1, PipeStr, struct_size};
use serde_json::Value;

use super::call::{OwnedArray, OwnedSchema, empty_event};
use super::external::ExternalPlugin;
use super::instance::Instance;
use super::vtables::Vtable;

/// What happened when `cancel` was called.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The call in flight returned this long after `cancel` (with `PIPE_ERROR_CANCELLED` or
    /// another error).
    Interrupted(Duration),
    /// The source reached its end before `cancel` was called: nothing to interrupt.
    FinishedFirst,
    /// The call had not returned `within` after `cancel`.
    Hung,
}

/// Opens `plugin` (a source) with `config`, reads events on a thread, calls `cancel` after
/// `after`, and waits up to `within` for the read to return.
///
/// Errors: not a source, `open` failed, or a read failed before `cancel` (the message).
pub fn cancel_latency(
    plugin: &Arc<ExternalPlugin>,
    config: &Value,
    after: Duration,
    within: Duration,
) -> Result<CancelOutcome, String> {
    let Vtable::Source(fns) = plugin.vtable else { return Err(format!("`{}` is not a source", plugin.name)) };
    let config = config.to_string();
    let args = PipeSourceOpenArgsV1 {
        struct_size: struct_size::<PipeSourceOpenArgsV1>(),
        pipeline: PipeStr::new("conformance"),
        config_json: PipeStr::new(&config),
        state_json: PipeStr::EMPTY,
        limit: -1,
    };
    let mut h = std::ptr::null_mut();
    // SAFETY: static descriptor; args borrowed for the call.
    plugin.status("open", |err| unsafe { (fns.open)(plugin.desc, &args, &mut h, err) }).map_err(|e| e.to_string())?;
    let inst = Arc::new(Instance::new(h, fns.cancel, fns.close, plugin.clone()));

    let (done_tx, done_rx) = mpsc::channel::<(Instant, Result<bool, String>)>();
    let reader = inst.clone();
    std::thread::spawn(move || {
        // Ok(true): reached the end; Ok(false) never; Err: the call failed (cancelled or not).
        let result = loop {
            let mut ev = empty_event();
            // SAFETY: open handle, calls serialised by `with`; the event is ours to fill.
            let status =
                reader.with(|h| reader.plugin.status("next_event", |err| unsafe { (fns.next_event)(h, &mut ev, err) }));
            // Whatever Arrow data the event carries is released here.
            drop((OwnedArray(ev.array), OwnedSchema(ev.schema)));
            match status {
                Err(e) => break Err(e.to_string()),
                Ok(()) if ev.kind == PIPE_EVENT_END => break Ok(true),
                Ok(()) => {}
            }
        };
        let _ = done_tx.send((Instant::now(), result));
    });

    match done_rx.recv_timeout(after) {
        Ok((_, Ok(_))) => return Ok(CancelOutcome::FinishedFirst),
        Ok((_, Err(e))) => return Err(format!("reading failed before cancel: {e}")),
        Err(_) => {}
    }
    let cancelled_at = Instant::now();
    inst.cancel();
    Ok(match done_rx.recv_timeout(within) {
        Ok((returned_at, _)) => CancelOutcome::Interrupted(returned_at.saturating_duration_since(cancelled_at)),
        // The thread keeps its reference; the instance closes whenever the call returns.
        Err(_) => CancelOutcome::Hung,
    })
}
