//! The control socket: gh-ost's line protocol on a Unix socket (`--serve-socket-file`)
//! and/or TCP (`--serve-tcp-port`, loopback unless a host is given). One command line
//! per connection, the answer, then the connection is closed:
//! `echo status | nc -U /tmp/godwit.sock`.
//!
//! The socket file is made mode 0600 before the first connection is accepted, and
//! connections from another user are refused (the peer's uid is checked too, which also
//! covers the moment between the bind and the chmod). It is removed when the [`Server`]
//! is dropped: at the end of the command, whatever the outcome (error, signal, `panic`).

use super::Control;
use crate::error::{Error, Result};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// A command line longer than this is refused.
const MAX_LINE: u64 = 4096;
/// A client that sends no line within this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The running control servers; dropping it stops them and removes the socket file.
pub struct Server {
    path: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where the TCP server listens (the port the OS chose for port 0).
    pub tcp_addr: Option<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(p) = &self.path {
            match std::fs::remove_file(p) {
                Ok(()) => tracing::debug!("removed the control socket {}", p.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("could not remove the control socket {}: {e}", p.display())
                }
            }
        }
    }
}

/// `PORT` (on 127.0.0.1) or `HOST:PORT`.
pub fn tcp_addr(spec: &str) -> std::result::Result<String, String> {
    let spec = spec.trim();
    if let Ok(port) = spec.parse::<u16>() {
        return Ok(format!("127.0.0.1:{port}"));
    }
    match spec.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(spec.to_string())
        }
        _ => Err(format!("`{spec}` is not PORT or HOST:PORT")),
    }
}

impl Server {
    /// Start serving `control` on the socket file and/or the TCP address (`HOST:PORT`).
    pub async fn start(
        control: Arc<Control>,
        path: Option<&Path>,
        tcp: Option<&str>,
    ) -> Result<Server> {
        let mut server = Server {
            path: None,
            tasks: Vec::new(),
            tcp_addr: None,
        };
        if let Some(p) = path {
            let listener = bind_unix(p).await?;
            server.path = Some(p.to_path_buf());
            let owner = std::fs::metadata(p)?.uid();
            control
                .serving
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("unix socket {}", p.display()));
            let c = control.clone();
            server.tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let uid = stream.peer_cred().map(|c| c.uid()).ok();
                    if !uid.is_some_and(|u| u == owner || u == 0) {
                        tracing::warn!(
                            ?uid,
                            "control socket: connection from another user refused"
                        );
                        continue;
                    }
                    tokio::spawn(serve_one(c.clone(), stream));
                }
            }));
        }
        if let Some(addr) = tcp {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::bad_input(format!("--serve-tcp-port: cannot listen on {addr}: {e}"))
                    .with_hint("choose a free port (0 lets the system choose one)")
            })?;
            let local = listener.local_addr()?;
            server.tcp_addr = Some(local);
            control
                .serving
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("tcp {local}"));
            let c = control.clone();
            server.tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    tokio::spawn(serve_one(c.clone(), stream));
                }
            }));
        }
        Ok(server)
    }
}

/// Bind the socket file: refused when another process answers on it, a stale socket file
/// (its process gone) is replaced, anything else at the path is left alone and refused.
async fn bind_unix(p: &Path) -> Result<tokio::net::UnixListener> {
    let hint = "choose another --serve-socket-file";
    if let Ok(meta) = std::fs::symlink_metadata(p) {
        if !meta.file_type().is_socket() {
            return Err(Error::bad_input(format!(
                "--serve-socket-file: {} exists and is not a socket",
                p.display()
            ))
            .with_hint(hint));
        }
        let live = tokio::time::timeout(Duration::from_secs(2), tokio::net::UnixStream::connect(p))
            .await
            .is_ok_and(|r| r.is_ok());
        if live {
            return Err(Error::bad_input(format!(
                "--serve-socket-file: another process answers on {} (another godwit run?)",
                p.display()
            ))
            .with_hint(format!(
                "{hint}, or ask it with `godwit ctl --socket {} status`",
                p.display()
            )));
        }
        tracing::info!("removing the stale control socket {}", p.display());
        std::fs::remove_file(p)?;
    }
    let listener = tokio::net::UnixListener::bind(p).map_err(|e| {
        Error::bad_input(format!(
            "--serve-socket-file: cannot listen on {}: {e}",
            p.display()
        ))
        .with_hint(hint)
    })?;
    if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(p);
        return Err(Error::internal(format!(
            "cannot make the control socket {} private: {e}",
            p.display()
        )));
    }
    Ok(listener)
}

/// One connection: read a line, answer, close.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(control: Arc<Control>, stream: S) {
    let (r, mut w) = tokio::io::split(stream);
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(MAX_LINE));
    let answer = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) if line.ends_with('\n') || (line.len() as u64) < MAX_LINE => {
            control.execute(&line)
        }
        Ok(Ok(_)) => "error: command line too long\n".to_string(),
        Ok(Err(e)) => format!("error: {e}\n"),
        Err(_) => return,
    };
    let _ = w.write_all(answer.as_bytes()).await;
    let _ = w.shutdown().await;
}

/// Send one command line to a control socket and return the answer (`godwit ctl`).
pub async fn send(target: &Target, command: &str) -> std::io::Result<String> {
    let line = format!("{}\n", command.trim());
    let mut answer = String::new();
    match target {
        Target::Unix(p) => {
            let mut s = tokio::net::UnixStream::connect(p).await?;
            s.write_all(line.as_bytes()).await?;
            s.read_to_string(&mut answer).await?;
        }
        Target::Tcp(a) => {
            let mut s = tokio::net::TcpStream::connect(a.as_str()).await?;
            s.write_all(line.as_bytes()).await?;
            s.read_to_string(&mut answer).await?;
        }
    }
    Ok(answer)
}

/// Where `godwit ctl` sends its command.
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses() {
        assert_eq!(tcp_addr("9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(tcp_addr("0.0.0.0:9000").unwrap(), "0.0.0.0:9000");
        assert!(tcp_addr("x").is_err());
        assert!(tcp_addr(":9000").is_err());
    }

    #[tokio::test]
    async fn serves_tcp_on_loopback() {
        let c = Arc::new(Control::default());
        let server = Server::start(c.clone(), None, Some("127.0.0.1:0"))
            .await
            .unwrap();
        let addr = server.tcp_addr.unwrap();
        assert!(addr.ip().is_loopback());
        let t = Target::Tcp(addr.to_string());
        assert!(send(&t, "throttle").await.unwrap().starts_with("throttled"));
        assert!(c.forced_throttle());
        assert!(send(&t, "status")
            .await
            .unwrap()
            .contains(&format!("# Serving on tcp {addr}")));
        drop(server);
        assert!(send(&t, "sup").await.is_err());
    }

    #[tokio::test]
    async fn serves_private_socket_and_removes_it() {
        let p = std::env::temp_dir().join(format!("godwit-ctl-test-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let c = Arc::new(Control::default());
        let server = Server::start(c.clone(), Some(&p), None).await.unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let t = Target::Unix(p.clone());
        assert_eq!(
            send(&t, "chunk-size=42").await.unwrap(),
            "chunk-size set to 42\n"
        );
        assert_eq!(c.chunk_size(), Some(42));
        assert!(send(&t, "nope")
            .await
            .unwrap()
            .starts_with("error: unknown command"));
        // A second server on the same path is refused while the first answers.
        let e = Server::start(Arc::new(Control::default()), Some(&p), None)
            .await
            .err()
            .unwrap();
        assert!(e.message.contains("another process answers"), "{e}");
        drop(server);
        assert!(!p.exists());
        // A stale socket file (nobody answers) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&p).unwrap();
        drop(stale);
        assert!(p.exists());
        let server = Server::start(c, Some(&p), None).await.unwrap();
        assert!(send(&t, "sup").await.unwrap().starts_with("Copy: "));
        drop(server);
        assert!(!p.exists());
    }
}
