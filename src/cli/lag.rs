//! The replica-lag flags, shared by `godwit run` and the phase commands (names as
//! gh-ost's, so that runbooks carry over).

use crate::dispatch;
use crate::error::Result;
use crate::target::Target;
use crate::throttle::lag::{parse_replicas, LagOptions, LagWatch};
use crate::throttle::Throttle;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct LagArgs {
    /// Pause copy and replay writes while any replica is further behind than this, or
    /// cannot be read, or has its replication stopped.
    #[arg(long, default_value_t = crate::throttle::DEFAULT_MAX_LAG_MS, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub max_lag_millis: u64,
    /// How often godwit writes its heartbeat row on the primary (the replicas' lag is
    /// read from it).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub heartbeat_interval_millis: u64,
    /// The replicas to watch, host:port[,host:port…] (user, password and database as in
    /// --url). Without it: MySQL/MariaDB replicas listed by SHOW SLAVE HOSTS (started
    /// with report_host), PostgreSQL standbys and subscribers in pg_stat_replication.
    #[arg(long)]
    pub throttle_control_replicas: Option<String>,
}

impl LagArgs {
    /// Start the lag check for a run on `table` (`None`: the phases) and attach it to
    /// `throttle`. `None` when there is no replica to watch (said at INFO).
    pub async fn start(
        &self,
        target: &Target,
        table: Option<&str>,
        throttle: Throttle,
    ) -> Result<(Throttle, Option<LagWatch>)> {
        throttle
            .max_lag_handle()
            .store(self.max_lag_millis, Ordering::SeqCst);
        let replicas = self
            .throttle_control_replicas
            .as_deref()
            .map(|s| parse_replicas(s, target.port))
            .transpose()?;
        let opts = LagOptions {
            max_lag: Duration::from_millis(self.max_lag_millis),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_millis),
            replicas,
        };
        let Some(monitor) = dispatch::lag_monitor(target, table, &opts).await? else {
            return Ok((throttle, None));
        };
        let watch = LagWatch::start(monitor, opts.heartbeat_interval).await?;
        Ok((throttle.with_lag(watch.state()), Some(watch)))
    }
}
