//! A whole run: set-up, goose's users under a progress loop, and the
//! result merged from every user's log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use goose_reqwest::header::HeaderValue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::attack::{self, Attack, USER_AGENT};
use crate::config::{LoadConfig, Model, TOKEN_MARGIN};
use crate::driver::{Driver, Pace};
use crate::error::LoadError;
use crate::http::Http;
use crate::journey::Planner;
use crate::pacer::Pacer;
use crate::progress::{Phase, Progress};
use crate::recorder::{Clock, Live};
use crate::result::LoadResult;
use crate::result::Meta;
use crate::runner::{Ctx, Urls};
use crate::schedule::Schedule;
use crate::setup;
use crate::token::Signer;

/// How often [`Progress`] is reported.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// After a cancellation, how long goose gets to wind its users down before
/// it is dropped (its users stop on the cancellation themselves).
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// After goose is done or dropped, the most the run waits for users still
/// handing in their logs (their requests were abandoned on cancel).
const HAND_IN_WAIT: Duration = Duration::from_secs(2);

/// Runs the load `config` describes and returns what it measured.
///
/// `progress` is called about once a second from the calling task.
/// Cancelling `cancel` stops the load promptly: journeys in flight are
/// abandoned (their requests recorded as unknown) and the result so far is
/// returned with `cancelled` set.
pub async fn run_load<F>(
    config: LoadConfig,
    cancel: CancellationToken,
    progress: F,
) -> Result<LoadResult, LoadError>
where
    F: Fn(Progress) + Send + Sync,
{
    run_load_observed(config, cancel, progress, None).await
}

/// When a run's load starts, sent once its set-up is done: a caller that
/// acts in step with the measured load (a fault timeline, say) waits for
/// [`LoadStart::measured_from`].
#[derive(Debug, Clone, Copy)]
pub struct LoadStart {
    /// The load (warm-up first) starts now.
    pub load_start: Instant,
    /// Measuring starts here, after the warm-up.
    pub measured_from: Instant,
    /// Where the run's `_us` times count from.
    pub clock_start: Instant,
}

/// [`run_load`], telling `started` when the load begins (after the set-up,
/// which reads the catalog and creates customers and may take a while).
pub async fn run_load_observed<F>(
    config: LoadConfig,
    cancel: CancellationToken,
    progress: F,
    started: Option<tokio::sync::oneshot::Sender<LoadStart>>,
) -> Result<LoadResult, LoadError>
where
    F: Fn(Progress) + Send + Sync,
{
    config.validate().map_err(LoadError::Config)?;
    let started_at = SystemTime::now();
    let clock = Clock {
        start: Instant::now(),
    };
    let cancel = cancel.child_token();
    let live = Arc::new(Live::default());
    let auth = config
        .api_key
        .as_ref()
        .map(|k| HeaderValue::from_str(&format!("Bearer {k}")))
        .transpose()
        .map_err(|_| LoadError::Config(vec!["api_key: must be visible ASCII".into()]))?;
    let prefix = match &config.run_tag {
        Some(tag) => format!("load-{tag}-{:x}", config.seed),
        None => format!("load-{:x}", config.seed),
    };
    let bad_url = |e: String| LoadError::Config(vec![format!("base_url: {e}")]);
    let urls = Urls::new(&config.base_url).map_err(|e| bad_url(e.to_string()))?;
    let authority = match (
        urls.users.url.host_str(),
        urls.users.url.port_or_known_default(),
    ) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => {
            return Err(bad_url(format!(
                "{:?} has no host and port",
                config.base_url
            )))
        }
    };
    let host = HeaderValue::from_str(&authority).map_err(|e| bad_url(e.to_string()))?;
    let signer = config
        .token
        .as_ref()
        .map(|t| Signer::new(t, config.planned_duration() + TOKEN_MARGIN));
    let mut ctx = Ctx {
        api_key: auth,
        signer,
        http: Http {
            authority,
            host,
            timeout: config.request_timeout,
        },
        urls,
        client: config.client,
        catalog: Vec::new(),
        customers: Vec::new(),
        flow: config.flow,
        idempotency_keys: config.idempotency_keys,
        poll: config.poll,
        prefix,
        clock,
        live: live.clone(),
        ids: AtomicU64::new(0),
        cancel: cancel.clone(),
    };

    let setup_failed = |detail: String| LoadError::Setup {
        base_url: config.base_url.clone(),
        detail,
    };
    let client = goose_reqwest::Client::builder()
        .timeout(config.request_timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| setup_failed(format!("cannot build an HTTP client: {e}")))?;
    progress(Progress {
        elapsed: Duration::ZERO,
        phase: Phase::Setup,
        target_rate: None,
        current_rate: 0.0,
        p99_ms: None,
        ok: 0,
        errors: 0,
    });
    let mut session = ctx.session(client, "load-setup");
    let prepared = setup::prepare(&ctx, &mut session, &config).await;
    live.logs.lock().push(session.log);
    (ctx.catalog, ctx.customers) = prepared?;

    let load_start = Instant::now();
    let measured_from = load_start + config.warmup;
    live.measured_from_us
        .store(clock.us(measured_from), Ordering::Relaxed);
    if let Some(tx) = started {
        // A caller that stopped listening has nothing to keep in step.
        let _ = tx.send(LoadStart {
            load_start,
            measured_from,
            clock_start: clock.start,
        });
    }
    let (pace, load_end, increase_per_sec) = match &config.model {
        Model::Open {
            start_rate,
            stages,
            warmup_rate,
            ..
        } => {
            let first = stages.first().map_or(*start_rate, |s| s.target_rate);
            let warmup = Some((config.warmup, warmup_rate.unwrap_or(first)));
            let schedule = Schedule::new(*start_rate, stages, warmup);
            let end = load_start + schedule.duration();
            (Pace::Open(Pacer::new(schedule, load_start)), end, None)
        }
        Model::Closed {
            increase_per_sec,
            think_time,
            duration,
            ..
        } => {
            let end = measured_from + *duration;
            let pace = Pace::Closed {
                deadline: end,
                think: *think_time,
            };
            (pace, end, *increase_per_sec)
        }
    };
    let users = config.users();
    let driver = Arc::new(Driver {
        ctx,
        pace,
        planner: Planner::new(&config),
    });
    let attack = attack::run(
        driver.clone(),
        Attack {
            base_url: config.base_url.clone(),
            users,
            increase_per_sec,
            request_timeout: config.request_timeout,
        },
    );
    tokio::pin!(attack);

    let schedule = match &driver.pace {
        Pace::Open(p) => Some(p.schedule()),
        Pace::Closed { .. } => None,
    };
    let mut tick = tokio::time::interval_at(load_start + PROGRESS_EVERY, PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (load_start, 0u64);
    let mut cancelled_at = None;
    let mut grace = None;
    let outcome = if cancel.is_cancelled() {
        Ok(())
    } else {
        loop {
            tokio::select! {
                r = &mut attack => break r,
                _ = tick.tick() => {
                    let now = Instant::now();
                    let started = live.started.load(Ordering::Relaxed);
                    let dt = now.saturating_duration_since(last.0).as_secs_f64().max(1e-3);
                    let p99 = live.drain_latency();
                    let phase = if now < measured_from {
                        Phase::Warmup
                    } else if now < load_end {
                        Phase::Load
                    } else {
                        Phase::Drain
                    };
                    progress(Progress {
                        elapsed: now.saturating_duration_since(clock.start),
                        phase,
                        target_rate: schedule.map(|s| s.rate_at(now - load_start)),
                        current_rate: started.saturating_sub(last.1) as f64 / dt,
                        p99_ms: (!p99.is_empty())
                            .then(|| p99.value_at_quantile(0.99) as f64 / 1000.0),
                        ok: live.ok.load(Ordering::Relaxed),
                        errors: live.fail.load(Ordering::Relaxed)
                            + live.unknown.load(Ordering::Relaxed),
                    });
                    last = (now, started);
                    // goose's own killswitch (Ctrl-C when the process left
                    // SIGINT to goose) stops the run as a cancel does.
                    if goose::is_killswitch_triggered() {
                        cancel.cancel();
                    }
                }
                _ = cancel.cancelled(), if cancelled_at.is_none() => {
                    let now = Instant::now();
                    cancelled_at = Some(now);
                    grace = Some(now + CANCEL_GRACE);
                }
                _ = async {
                    match grace {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    // goose still waits to start users the cancel made
                    // pointless; stop waiting for it.
                    break Ok(());
                }
            }
        }
    };
    let cancelled = cancel.is_cancelled();
    let cancelled_at = cancelled_at.unwrap_or_else(Instant::now);
    // Every user that started hands its log in as it returns.
    let hand_in = Instant::now() + HAND_IN_WAIT;
    while live.histograms.lock().len() > live.logs.lock().len() && Instant::now() < hand_in {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outcome?;

    let until = if cancelled {
        cancelled_at.min(load_end)
    } else {
        load_end
    };
    let warmup = config.warmup.as_secs_f64();
    let measured_secs = until
        .saturating_duration_since(measured_from)
        .as_secs_f64()
        .ceil() as u64;
    let (target_rate, arrivals_due) = match schedule {
        Some(s) => (
            (0..measured_secs)
                .map(|i| s.rate_at(Duration::from_secs_f64(warmup + i as f64 + 0.5)))
                .collect(),
            if cancelled {
                s.arrivals_by(until - load_start).ceil() as u64
            } else {
                s.arrivals()
            },
        ),
        None => (Vec::new(), 0),
    };
    let logs = std::mem::take(&mut *live.logs.lock());
    Ok(LoadResult::assemble(
        logs,
        Meta {
            started_at,
            elapsed: clock.start.elapsed(),
            load_started_us: clock.us(load_start),
            measured_from_us: clock.us(measured_from),
            measured_until_us: clock.us(until),
            cancelled,
            users,
            target_rate,
            arrivals_due,
        },
    ))
}
