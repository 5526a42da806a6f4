//! The PostgreSQL engine.

use crate::engine::{Engine, EngineOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::target::Target;

pub async fn connect(
    _target: &Target,
    _table: &str,
    _opts: &EngineOptions,
) -> Result<Box<dyn Engine>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "PostgreSQL is not supported by this build yet",
    )
    .with_hint("use a mysql:// URL"))
}
