//! The goose side: one scenario with one transaction, run once by each of
//! the run's goose users, embedded with no command line, no reports, no
//! controllers and no metrics of goose's own (the latency that counts is
//! measured here, from the intended send time, which goose cannot know).
//!
//! goose starts the users (at the closed model's increase rate, or all at
//! once), gives each its HTTP client (one shared pool, no cookies), and
//! ends when every user's transaction has returned.
//!
//! Two things of goose's stay process-wide: with `--iterations` it prints
//! one "N users launched." line to standard output per run, and it installs
//! a Ctrl-C handler (unless the process already has one) that triggers its
//! killswitch, which [`run_load`](crate::run_load) treats as a cancel.

use std::sync::Arc;
use std::time::Duration;

use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::driver::Driver;
use crate::error::LoadError;

/// How the load introduces itself to the system.
pub const USER_AGENT: &str = concat!("gauntlet-loadgen/", env!("CARGO_PKG_VERSION"));

/// Users started per second when they should all start at once: goose
/// spaces starts by 1/rate, so this starts thousands within milliseconds.
const ALL_AT_ONCE: f64 = 1_000_000.0;

/// What goose is asked to run.
pub(crate) struct Attack {
    pub base_url: String,
    pub users: u32,
    /// Users started per second; `None` starts them all at once.
    pub increase_per_sec: Option<f64>,
    pub request_timeout: Duration,
}

/// Runs `driver`'s users under goose until they have all returned.
pub(crate) async fn run(driver: Arc<Driver>, attack: Attack) -> Result<(), LoadError> {
    let journeys: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
        let driver = driver.clone();
        let client = user.client.clone();
        let index = user.weighted_users_index;
        Box::pin(async move {
            driver.run_user(client, index).await;
            Ok(())
        })
    });
    let scenario = Scenario::new("gauntlet journeys")
        .register_transaction(Transaction::new(journeys).set_name("journeys"));
    let client = GooseClientBuilder::new()
        .without_cookies()
        .timeout(attack.request_timeout)
        .gzip(false)
        .user_agent(USER_AGENT);
    let rate = attack.increase_per_sec.unwrap_or(ALL_AT_ONCE).to_string();
    let goose = |e: GooseError| LoadError::Goose(format!("{e:?}"));
    let mut config = GooseConfiguration::default();
    // Warnings only: goose's info lines would interleave with the caller's.
    config.quiet = 1;
    let mut g = GooseAttack::initialize_with_config(config)
        .map_err(goose)?
        .register_scenario(scenario)
        .set_client_builder_without_cookies(client)
        .map_err(goose)?;
    g = *g
        .set_default(GooseDefault::Host, attack.base_url.as_str())
        .map_err(goose)?;
    g = *g
        .set_default(GooseDefault::Users, attack.users as usize)
        .map_err(goose)?;
    g = *g
        .set_default(GooseDefault::IncreaseRate, rate.as_str())
        .map_err(goose)?;
    // Each user runs the transaction once; it loops journeys itself, so
    // the run ends when every user has returned.
    g = *g.set_default(GooseDefault::Iterations, 1).map_err(goose)?;
    for flag in [
        GooseDefault::NoMetrics,
        GooseDefault::NoPrintMetrics,
        GooseDefault::NoErrorSummary,
        // The telnet Controller listens unless told not to (the WebSocket
        // one is off by default in 0.19, and saying so draws a warning).
        GooseDefault::NoTelnet,
    ] {
        g = *g.set_default(flag, true).map_err(goose)?;
    }
    g.execute().await.map_err(goose)?;
    Ok(())
}
