//! Command-line interface: one file per subcommand.

mod blockers;
mod cleanup;
mod ctl;
mod hooks;
mod lag;
mod phases;
mod plan;
mod revert;
mod run;
mod verify;

use crate::progress::Format;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "godwit",
    version,
    about = "Online, zero-downtime schema changes for MySQL/MariaDB and PostgreSQL",
    long_about = "godwit alters busy tables without blocking the application: it copies the table into a shadow with the new schema, follows the change stream to keep it in sync, and swaps the tables in one short cut-over.\n\nNothing changes without --execute."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub log_format: Format,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Alter a table online (dry run unless --execute).
    Run(run::RunArgs),
    /// Swap back to the original schema during a revert window (`run --revert-window`),
    /// with every write since the cut-over kept.
    Revert(revert::RevertArgs),
    /// Compare two tables row by row (chunked checksums): exit 0 when they hold the same
    /// rows, 36 when they differ.
    Verify(verify::VerifyArgs),
    /// List (or with --execute remove) what godwit left behind for a table.
    Cleanup(cleanup::CleanupArgs),
    /// Dry-run planning: what an ALTER will lock, rewrite and cost, and how to run it.
    Plan(plan::PlanArgs),
    /// Migration files: additive changes and sync triggers (old and new application both work).
    Expand(phases::PhaseArgs),
    /// Migration files: bring existing rows into the new shape, in batches.
    Backfill(phases::PhaseArgs),
    /// Migration files: remove the old shape (after the old application is gone).
    Contract(phases::PhaseArgs),
    /// Migration files: undo an expanded, not yet contracted migration.
    Abort(phases::PhaseArgs),
    /// Migration files: expand and backfill (and contract with --complete), in order.
    Migrate(phases::MigrateArgs),
    /// Migration files: where each migration stands.
    Status(phases::StatusArgs),
    /// Send one command to a running godwit's control socket (`status`, `throttle`,
    /// `chunk-size=N`, `unpostpone`, `panic`, …) and print the answer. Exit 3 when
    /// nothing answers there, 4 when the command is refused.
    Ctl(ctl::CtlArgs),
}

/// Where to connect; shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnArgs {
    /// Server URL: mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB. The password
    /// comes from MYSQL_PWD / PGPASSWORD, ~/.pgpass, --password-file, or the URL.
    #[arg(long, env = "GODWIT_URL", hide_env_values = true)]
    pub url: String,
    /// Read the password from this file (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The table: NAME (MySQL) or [SCHEMA.]NAME (PostgreSQL).
    #[arg(long)]
    pub table: String,
}

fn init_logging(verbose: u8, format: Format) {
    let default = match verbose {
        0 => "godwit=info",
        1 => "godwit=debug",
        _ => "godwit=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GODWIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        Format::Json => b.json().try_init(),
        Format::Text => b.try_init(),
    };
}

/// Parse arguments, run the command, return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Run(a) => run::run(a).await,
            Command::Cleanup(a) => cleanup::cleanup(a).await,
            Command::Revert(a) => revert::revert(a).await,
            Command::Verify(a) => verify::verify(a).await,
            Command::Plan(a) => plan::plan_command(a).await,
            Command::Expand(a) => phases::phase(a, crate::phases::Phase::Expand).await,
            Command::Backfill(a) => phases::phase(a, crate::phases::Phase::Backfill).await,
            Command::Contract(a) => phases::phase(a, crate::phases::Phase::Contract).await,
            Command::Abort(a) => phases::phase(a, crate::phases::Phase::Abort).await,
            Command::Migrate(a) => phases::migrate(a).await,
            Command::Status(a) => phases::status(a).await,
            Command::Ctl(a) => ctl::ctl(a).await,
        }
    })
}
