//! godwit: online, zero-downtime schema changes for MySQL/MariaDB and PostgreSQL.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: [`cli`] parses the
//! command line, [`migration`] runs the engine-neutral online migration against an
//! [`engine::Engine`], and each engine lives in its own folder under [`engine`].

pub mod cli;
pub mod control;
pub mod ddl;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod hooks;
pub mod migration;
pub mod phases;
pub mod plan;
pub mod progress;
pub mod schema;
/// Connection targets: the engine seam's URL parsing (`engine/target.rs`).
pub use engine::target;
pub mod throttle;

pub use error::{Error, ErrorKind, Result};
