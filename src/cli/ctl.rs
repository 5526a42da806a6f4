//! `godwit ctl`: send one command to a running godwit's control socket, and the control
//! flags shared by `godwit run` and the phases (`--serve-socket-file`,
//! `--serve-tcp-port`, `--metrics-addr`).

use crate::control::metrics::MetricsServer;
use crate::control::socket::{self, Server};
use crate::control::Control;
use crate::error::Result;
use crate::progress::Reporter;
use std::path::PathBuf;
use std::sync::Arc;

/// `godwit ctl` exits with this when nothing answers on the socket (no godwit runs there).
pub const EXIT_NO_LISTENER: i32 = 3;
/// `godwit ctl` exits with this when the command was refused (the answer starts `error:`).
pub const EXIT_REFUSED: i32 = 4;

#[derive(clap::Args, Debug, Clone)]
pub struct CtlArgs {
    /// The control socket of the running godwit (its --serve-socket-file).
    #[arg(long, required_unless_present = "tcp", conflicts_with = "tcp")]
    pub socket: Option<PathBuf>,
    /// Or its TCP control port: PORT (on 127.0.0.1) or HOST:PORT (its --serve-tcp-port).
    #[arg(long)]
    pub tcp: Option<String>,
    /// The command, e.g. `status`, `status json`, `throttle`, `chunk-size=500`,
    /// `unpostpone`, `panic` (`help` lists them).
    #[arg(required = true, num_args = 1..)]
    pub command: Vec<String>,
}

pub async fn ctl(a: CtlArgs) -> i32 {
    let line = a.command.join(" ");
    let (target, shown) = match (&a.socket, &a.tcp) {
        (Some(p), _) => (socket::Target::Unix(p.clone()), p.display().to_string()),
        (None, Some(t)) => match socket::tcp_addr(t) {
            Ok(addr) => (socket::Target::Tcp(addr.clone()), addr),
            Err(e) => {
                eprintln!("error: --tcp: {e}");
                return 2;
            }
        },
        (None, None) => {
            eprintln!("error: give --socket PATH or --tcp PORT");
            return 2;
        }
    };
    match socket::send(&target, &line).await {
        Ok(answer) => {
            print!("{answer}");
            if answer.starts_with("error:") {
                EXIT_REFUSED
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!(
                "error: nothing answers on {shown} ({e})\n  fix: check the path or port given to the running godwit's --serve-socket-file / --serve-tcp-port; the socket is removed when godwit exits"
            );
            EXIT_NO_LISTENER
        }
    }
}

/// The control flags of `godwit run` and the phases commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ControlArgs {
    /// Serve the control commands (gh-ost's: status, sup, throttle, chunk-size=N,
    /// unpostpone, panic, …) on this Unix socket, mode 0600, removed at exit.
    #[arg(long)]
    pub serve_socket_file: Option<PathBuf>,
    /// Serve the control commands on this TCP port too: PORT (127.0.0.1) or HOST:PORT.
    #[arg(long, value_parser = socket::tcp_addr)]
    pub serve_tcp_port: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: the system
    /// chooses; the address is reported in a `serving` event / log line).
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

/// The servers a command runs; dropping it stops them and removes the socket file.
pub struct Servers {
    socket: Option<Server>,
    metrics: Option<MetricsServer>,
}

impl Servers {
    /// True when a control socket or the metrics server runs.
    pub fn serving(&self) -> bool {
        self.socket.is_some() || self.metrics.is_some()
    }
}

impl ControlArgs {
    /// Start the servers the flags ask for, and say where they listen (a `serving` event
    /// with --format json, a log line otherwise).
    pub async fn start(&self, control: &Arc<Control>, rep: &Reporter) -> Result<Servers> {
        let socket = if self.serve_socket_file.is_some() || self.serve_tcp_port.is_some() {
            Some(
                Server::start(
                    control.clone(),
                    self.serve_socket_file.as_deref(),
                    self.serve_tcp_port.as_deref(),
                )
                .await?,
            )
        } else {
            None
        };
        let metrics = match &self.metrics_addr {
            Some(a) => Some(MetricsServer::start(control.clone(), a).await?),
            None => None,
        };
        if socket.is_some() || metrics.is_some() {
            let body = serde_json::json!({
                "socket": self.serve_socket_file,
                "tcp": socket.as_ref().and_then(|s| s.tcp_addr).map(|a| a.to_string()),
                "metrics": metrics.as_ref().map(|m| format!("http://{}/metrics", m.addr)),
            });
            tracing::info!("control: {body}");
            rep.emit("serving", body);
        }
        Ok(Servers { socket, metrics })
    }
}
