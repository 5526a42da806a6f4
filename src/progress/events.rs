//! JSON event lines on stdout (`--format json`): the one writer of every event, used by
//! the [`Reporter`](super::Reporter) and by code that reports away from it (reconnects).

use std::io::Write;

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Print one JSON event line on stdout (for `--format json`; see [`Reporter::emit`]).
pub fn emit_json(event: &str, body: serde_json::Value) {
    let mut obj = serde_json::json!({"event": event, "ts_ms": now_ms() as u64});
    if let (Some(o), serde_json::Value::Object(b)) = (obj.as_object_mut(), body) {
        o.extend(b);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{obj}");
    let _ = out.flush();
}

/// [`emit_json`] when `json` (for reports made away from the [`Reporter`]).
pub fn emit_json_if(json: bool, event: &str, body: serde_json::Value) {
    if json {
        emit_json(event, body);
    }
}
