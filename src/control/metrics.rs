//! Prometheus metrics (`--metrics-addr HOST:PORT`): `GET /metrics` answers the text
//! exposition format from the [`Control`]'s status. A minimal HTTP/1.1 server: one
//! request per connection, then close.

use super::{Control, Kind};
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metrics server; dropping it stops it.
pub struct MetricsServer {
    task: tokio::task::JoinHandle<()>,
    /// The address it listens on (the port the OS chose for port 0).
    pub addr: SocketAddr,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsServer {
    pub async fn start(control: Arc<Control>, addr: &str) -> Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::bad_input(format!("--metrics-addr: cannot listen on {addr}: {e}"))
                .with_hint("give a free HOST:PORT (port 0 lets the system choose one)")
        })?;
        let local = listener.local_addr()?;
        control
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("metrics http://{local}/metrics"));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                tokio::spawn(serve_one(control.clone(), stream));
            }
        });
        Ok(MetricsServer { task, addr: local })
    }
}

async fn serve_one(control: Arc<Control>, mut stream: tokio::net::TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), read).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&control),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v}"),
        None => "NaN".into(),
    }
}

/// The metrics as Prometheus text. Unknown values are `NaN`.
pub fn render(control: &Control) -> String {
    let s = control.status();
    let p = &s.progress;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, labels: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{labels} {value}");
    };
    let table = label(s.table.as_deref().unwrap_or(""));
    let kind = match s.kind {
        Kind::Run => "run",
        Kind::Backfill => "backfill",
    };
    metric(
        "godwit_info",
        "gauge",
        "What this process migrates (always 1).",
        &format!("{{table=\"{table}\",command=\"{kind}\"}}"),
        "1".into(),
    );
    metric(
        "godwit_state",
        "gauge",
        "The current state (1 for the label of the state).",
        &format!(
            "{{state=\"{}\"}}",
            s.state
                .map(|x| x.to_string())
                .unwrap_or_else(|| "starting".into())
        ),
        "1".into(),
    );
    metric(
        "godwit_rows_copied_total",
        "counter",
        "Rows copied (backfill: rows updated).",
        "",
        p.rows_copied.to_string(),
    );
    metric(
        "godwit_rows_estimate",
        "gauge",
        "The table's estimated row count.",
        "",
        p.rows_estimate.to_string(),
    );
    metric(
        "godwit_rows_per_second",
        "gauge",
        "Copy rate over the last minute of unthrottled time.",
        "",
        format!("{:.3}", p.rows_per_sec),
    );
    metric(
        "godwit_keys_replayed_total",
        "counter",
        "Keys replayed from the change stream.",
        "",
        p.keys_replayed.to_string(),
    );
    metric(
        "godwit_dirty_keys",
        "gauge",
        "Keys read from the change stream, waiting for replay.",
        "",
        p.dirty_keys.to_string(),
    );
    metric(
        "godwit_stream_lag_seconds",
        "gauge",
        "How far the change stream's reader is behind the server.",
        "",
        num(p.lag_ms.map(|l| l as f64 / 1000.0)),
    );
    metric(
        "godwit_replica_lag_seconds",
        "gauge",
        "The replicas' lag, when a lag throttle reads it.",
        "",
        num(s.replica_lag_ms.map(|l| l as f64 / 1000.0)),
    );
    metric(
        "godwit_throttled",
        "gauge",
        "1 while the copy waits for a throttle (the reason is a label).",
        &s.throttle_reason
            .as_deref()
            .map(|r| format!("{{reason=\"{}\"}}", label(r)))
            .unwrap_or_default(),
        if s.throttle_reason.is_some() {
            "1"
        } else {
            "0"
        }
        .into(),
    );
    metric(
        "godwit_forced_throttle",
        "gauge",
        "1 while `throttle` (the control socket) holds the copy.",
        "",
        if control.forced_throttle() { "1" } else { "0" }.into(),
    );
    metric(
        "godwit_chunk_size",
        "gauge",
        "Rows per copy chunk (backfill: per batch).",
        "",
        control.chunk_size().unwrap_or(p.chunk_size).to_string(),
    );
    metric(
        "godwit_chunk_seconds",
        "gauge",
        "How long the last chunk took.",
        "",
        num(s.chunk_ms.map(|m| m as f64 / 1000.0)),
    );
    metric(
        "godwit_cut_over_attempts_total",
        "counter",
        "Cut-over attempts made.",
        "",
        s.cut_over_attempts.to_string(),
    );
    metric(
        "godwit_eta_seconds",
        "gauge",
        "Time left for the copy, at the rate of the last minute of unthrottled time.",
        "",
        num(p.eta_seconds.map(|e| e as f64)),
    );
    metric(
        "godwit_elapsed_seconds",
        "gauge",
        "Time since the command started.",
        "",
        format!("{:.3}", control.elapsed().as_secs_f64()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Snapshot, State};

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let c = Control::default();
        c.update(|s| s.table = Some("a\"b".into()));
        c.set_state(State::Throttled, "throttled by the control socket");
        c.set_progress(&Snapshot {
            rows_copied: 10,
            rows_estimate: 20,
            eta_seconds: Some(3),
            chunk_size: 100,
            ..Snapshot::default()
        });
        let text = render(&c);
        for name in [
            "godwit_rows_copied_total",
            "godwit_rows_estimate",
            "godwit_keys_replayed_total",
            "godwit_dirty_keys",
            "godwit_stream_lag_seconds",
            "godwit_replica_lag_seconds",
            "godwit_throttled",
            "godwit_chunk_size",
            "godwit_chunk_seconds",
            "godwit_cut_over_attempts_total",
            "godwit_eta_seconds",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }
        assert!(text.contains("godwit_rows_copied_total 10\n"), "{text}");
        assert!(text.contains("godwit_eta_seconds 3\n"), "{text}");
        assert!(text.contains("godwit_stream_lag_seconds NaN\n"), "{text}");
        assert!(
            text.contains("godwit_throttled{reason=\"throttled by the control socket\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("table=\"a\\\"b\""), "{text}");
        assert!(
            text.contains("godwit_state{state=\"throttled\"} 1\n"),
            "{text}"
        );
    }
}
