//! The JSON forms of dead letters and checkpoints on the wire, shared by the library side and
//! the host side so both read what the other writes.

use serde_json::{Value, json};

use crate::{Checkpoint, DeadLetter, PluginError, Result};

/// A dead letter as JSON: `{"stream","key","stage","reason","message","raw"}`.
pub fn dead_letter_to_json(dl: &DeadLetter) -> String {
    json!({
        "stream": dl.stream,
        "key": dl.key,
        "stage": dl.stage,
        "reason": dl.reason,
        "message": dl.message,
        "raw": dl.raw,
    })
    .to_string()
}

/// Parses [`dead_letter_to_json`]'s output.
///
/// Errors: [`PluginError::Other`] for anything else.
pub fn dead_letter_from_json(text: &str) -> Result<DeadLetter> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| PluginError::other(format!("dead letter is not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(DeadLetter {
        stream: s("stream"),
        key: v.get("key").cloned().unwrap_or(Value::Null),
        stage: s("stage"),
        reason: s("reason"),
        message: s("message"),
        raw: v.get("raw").cloned().unwrap_or(Value::Null),
    })
}

/// A checkpoint's state as JSON text.
pub fn checkpoint_to_json(cp: &Checkpoint) -> String {
    cp.state.to_string()
}

/// Parses a checkpoint's state.
///
/// Errors: [`PluginError::Other`] when it is not JSON.
pub fn checkpoint_from_json(text: &str) -> Result<Checkpoint> {
    let state =
        serde_json::from_str(text).map_err(|e| PluginError::other(format!("checkpoint state is not JSON: {e}")))?;
    Ok(Checkpoint { state })
}
