//! Server load thresholds (`--max-load`, `--critical-load`, the control socket's
//! `max-load=` / `critical-load=`): their syntax, and the error for a counter the engine
//! does not provide. The engines read the counters (`engine/*/load.rs`).

use crate::error::Error;

/// `VAR=N[,VAR=N]`, as gh-ost's --max-load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadThresholds(pub Vec<(String, f64)>);

impl std::str::FromStr for LoadThresholds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not VAR=N (e.g. Threads_running=25)"))?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("'{k}' is not a status variable name"));
            }
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a number (in '{part}')"))?;
            out.push((k.to_string(), v));
        }
        if out.is_empty() {
            return Err("expected VAR=N[,VAR=N]".into());
        }
        Ok(LoadThresholds(out))
    }
}

/// The error for a load counter name the server's engine does not provide. `valid` says
/// which names are (or how to list them).
pub fn unknown_counter(name: &str, engine: &str, valid: &str) -> Error {
    Error::bad_input(format!("`{name}` is not a load counter on {engine}"))
        .with_hint(format!("use one of: {valid}"))
}
