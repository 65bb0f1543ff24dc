//! One flow's run on fresh state: bring the system up, load it with the
//! fault timeline alongside, heal, let it quiesce, read everything back,
//! stop it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gauntlet_loadgen as loadgen;
use gauntlet_reports::history::{History, Operation};
use gauntlet_reports::report::{LagSample, OutboxSample, RetrySample};
use gauntlet_reports::scenario::{External, Scenario};
use gauntlet_reports::state::{FinalState, TopicEvents};
use gauntlet_system::events::SUBSCRIPTIONS;
use gauntlet_system::{ServiceName, SystemOptions};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::collect::{event_accounts, event_progress, BreakerLog, Probe, CALLERS};
use super::plan;
use super::progress::ProgressLine;
use crate::stack::{Kafka, Stack, StackOptions, KAFKA_LINK};
use crate::timeline::{FaultAction, FaultRecord, FaultStep, Network, Services, Target, Timeline};

/// How often breakers and lag are sampled while the run goes.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often quiescence is checked.
const QUIESCE_POLL: Duration = Duration::from_millis(250);
/// Consecutive clean checks that make the system quiet.
const QUIET_CHECKS: u32 = 2;
/// After an interruption: the short wait for the system before reading it.
const INTERRUPTED_QUIESCE: Duration = Duration::from_secs(10);

/// Why a flow could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    #[error("cannot start the system: {0}")]
    Start(String),
    #[error("the load generator could not run: {0}")]
    Load(String),
}

/// How settling went.
#[derive(Debug, Clone, Default)]
pub struct Quiesce {
    pub settled: bool,
    pub took: Duration,
    /// What was still moving at the bound.
    pub waiting_on: Option<String>,
}

/// Everything one flow's run produced.
pub struct Leg {
    /// `sync` or `async`.
    pub flow: &'static str,
    pub load: loadgen::LoadResult,
    pub history: History,
    pub state: Option<FinalState>,
    pub breakers: BreakerLog,
    /// Lag samples, `at_ms` from the measured start.
    pub lag: Vec<LagSample>,
    /// Per group: the largest lag seen, and the lag after quiescing.
    pub lag_summary: BTreeMap<String, (u64, u64)>,
    /// Retries per link per sampling interval, `at_ms` from the measured start.
    pub retries: Vec<RetrySample>,
    /// Outbox backlogs over time, `at_ms` from the measured start.
    pub outbox: Vec<OutboxSample>,
    pub faults: Vec<FaultRecord>,
    /// Per topic and group, what this run produced, consumed and
    /// dead-lettered (the final state holds the topics' whole history).
    pub events_delta: Option<Vec<TopicEvents>>,
    /// Fault steps left out of this flow (event-path faults on a sync run).
    /// (index in the scenario's steps, when it was due in ms, why).
    pub skipped_faults: Vec<(usize, u64, String)>,
    pub quiesce: Quiesce,
    pub interrupted: bool,
    /// Unix milliseconds at the start of the measured load.
    pub measured_from_unix_ms: i64,
    /// Problems reading the system back.
    pub problems: Vec<String>,
}

impl Leg {
    /// Seconds of measured load.
    pub fn measured_secs(&self) -> f64 {
        (self
            .load
            .measured_until_us
            .saturating_sub(self.load.measured_from_us)) as f64
            / 1e6
    }
}

/// True for a step that acts on the event path.
fn event_path_only(step: &FaultStep) -> bool {
    match &step.action {
        FaultAction::PauseConsumer { .. } | FaultAction::Poison { .. } => true,
        FaultAction::Toxic { link, .. } | FaultAction::LinkDown { link } => link == KAFKA_LINK,
        _ => false,
    }
}

/// Runs `scenario` in `flow` on a fresh system whose databases go under
/// `data_dir`.
pub async fn run_leg(
    scenario: &Scenario,
    flow: loadgen::Flow,
    data_dir: PathBuf,
    interrupt: CancellationToken,
    progress: Arc<ProgressLine>,
) -> Result<Leg, LegError> {
    let flow_name = match flow {
        loadgen::Flow::Sync => "sync",
        loadgen::Flow::Async => "async",
    };
    let uses_events = flow == loadgen::Flow::Async;
    let config = plan::system_config(scenario).map_err(LegError::Start)?;
    let mut steps = plan::fault_steps(scenario).map_err(LegError::Start)?;
    let mut skipped_faults = Vec::new();
    // Each kept step's index in the scenario, so records name the
    // scenario's step whatever this flow left out.
    let mut kept: Vec<usize> = (0..steps.len()).collect();
    if !uses_events {
        kept.clear();
        let mut index = 0;
        steps.retain(|s| {
            let skip = event_path_only(s);
            if skip {
                skipped_faults.push((
                    index,
                    s.at.as_millis() as u64,
                    format!(
                        "at {}: {} (the sync flow has no event path)",
                        humantime::format_duration(s.at),
                        s.action.describe()
                    ),
                ));
            }
            if !skip {
                kept.push(index);
            }
            index += 1;
            !skip
        });
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LegError::Start(format!("cannot build an HTTP client: {e}")))?;

    let (sut, stack) = match &scenario.system.external {
        Some(external) => {
            progress.phase(flow_name, "attaching to the system");
            let sut = attach(external, flow_name, &http);
            set_provider(&sut, scenario)
                .await
                .map_err(LegError::Start)?;
            (sut, None)
        }
        None => {
            progress.phase(flow_name, "starting the system");
            let stack = Stack::start(StackOptions {
                system: SystemOptions {
                    data_dir: Some(data_dir),
                    config,
                    ..SystemOptions::default()
                },
                gateway_listen: None,
                api_listen: None,
                kafka: if uses_events {
                    Kafka::Embedded
                } else {
                    Kafka::None
                },
            })
            .await
            .map_err(|e| LegError::Start(e.to_string()))?;
            // Each in a statement of its own: a lock guard taken inside the
            // struct literal would live to its end, and `kafka()` takes the
            // same lock.
            let urls = stack.system.lock().await.endpoints().services.clone();
            let bootstrap = stack.kafka().await;
            let sut = Sut {
                gateway_url: stack.gateway_url().to_string(),
                probe: Probe {
                    urls,
                    http: http.clone(),
                },
                bootstrap,
                network: Network::Embedded(stack.chaos.clone()),
                services: Services::Embedded(stack.system.clone()),
                run_tag: None,
            };
            (sut, Some(stack))
        }
    };
    let result = drive(
        scenario,
        flow,
        flow_name,
        &sut,
        steps,
        (kept, skipped_faults),
        interrupt,
        progress.clone(),
    )
    .await;
    if let Some(mut stack) = stack {
        progress.phase(flow_name, "stopping the system");
        stack.stop().await;
    }
    result
}

/// A system running elsewhere: reached through its own endpoints, its
/// state kept between runs (so this run's keys carry a tag of their own).
fn attach(external: &External, flow_name: &str, http: &reqwest::Client) -> Sut {
    let urls: BTreeMap<ServiceName, String> = external
        .services
        .iter()
        .filter_map(|(s, url)| Some((s.as_str().parse().ok()?, url.clone())))
        .collect();
    Sut {
        gateway_url: external.gateway.trim_end_matches('/').to_string(),
        probe: Probe {
            urls: urls.clone(),
            http: http.clone(),
        },
        bootstrap: external.kafka.clone(),
        network: match &external.toxiproxy {
            Some(addr) => Network::Toxiproxy(addr.clone()),
            None => Network::None,
        },
        services: Services::External {
            provider: urls.get(&ServiceName::Provider).cloned(),
            kafka: external.kafka.clone(),
        },
        run_tag: Some(format!("{}-{flow_name}", run_tag())),
    }
}

/// The system under test, however it runs.
struct Sut {
    /// Where the load goes.
    gateway_url: String,
    /// Each service's own address, to read it back.
    probe: Probe,
    bootstrap: Option<String>,
    network: Network,
    services: Services,
    /// Mixed into the load's keys and e-mails, for a system that keeps its
    /// state between runs.
    run_tag: Option<String>,
}

/// A tag unique to this moment: the UTC time to the millisecond.
fn run_tag() -> String {
    format!("{}", gauntlet_system::db::now_ms())
}

/// A system running elsewhere gets the scenario's provider behaviour
/// through the provider's own API (the embedded one is started with it).
async fn set_provider(sut: &Sut, scenario: &Scenario) -> Result<(), String> {
    let Some(provider) = sut.probe.urls.get(&ServiceName::Provider) else {
        return Ok(());
    };
    let faults = plan::system_config(scenario)?.provider;
    let url = format!("{}/admin/faults", provider.trim_end_matches('/'));
    let resp = sut
        .probe
        .http
        .put(&url)
        .json(&faults)
        .send()
        .await
        .map_err(|e| format!("setting the provider's behaviour: PUT {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!(
            "setting the provider's behaviour: PUT {url}: {}",
            resp.status()
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    scenario: &Scenario,
    flow: loadgen::Flow,
    flow_name: &'static str,
    sut: &Sut,
    steps: Vec<FaultStep>,
    (kept, skipped_faults): (Vec<usize>, Vec<(usize, u64, String)>),
    interrupt: CancellationToken,
    progress: Arc<ProgressLine>,
) -> Result<Leg, LegError> {
    let uses_events = flow == loadgen::Flow::Async;
    let http = sut.probe.http.clone();
    let services = sut.probe.clone();
    // The sync flow does not use the event path, even where there is one.
    let bootstrap = sut.bootstrap.clone().filter(|_| uses_events);
    // What the topics held before this run, on a system that keeps its
    // state (a fresh one holds nothing): the run's own dead letters are
    // the difference.
    let attached = matches!(sut.services, Services::External { .. });
    let events_before = match bootstrap.as_deref() {
        Some(b) if attached => event_accounts(b)
            .await
            .map_err(|e| LegError::Start(format!("reading the event path: {e}")))?,
        _ => Vec::new(),
    };

    // Breakers and lag, sampled until the system is read back.
    let sampling = CancellationToken::new();
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = tokio::spawn(sample(
        services.clone(),
        uses_events,
        samples.clone(),
        sampling.clone(),
    ));

    let load_len = scenario.load.duration();
    let mut load_config = plan::load_config(scenario, flow, &sut.gateway_url);
    load_config.run_tag = sut.run_tag.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let load_cancel = interrupt.child_token();
    let measured_from: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut timeline = Timeline::new(
        steps.clone(),
        Target {
            network: sut.network.clone(),
            services: sut.services.clone(),
            http: http.clone(),
        },
    );

    progress.phase(flow_name, "stocking the catalog");
    stock_catalog(
        &http,
        &sut.gateway_url,
        scenario.seed,
        load_config.token.as_ref(),
    )
    .await
    .map_err(LegError::Start)?;

    progress.phase(flow_name, "setting up the load");
    let line = progress.clone();
    let shown_from = measured_from.clone();
    let shown_steps = steps.clone();
    let load = loadgen::run_load_observed(
        load_config,
        load_cancel.clone(),
        move |p| {
            let into = shown_from
                .lock()
                .map(|m| Instant::now().saturating_duration_since(m));
            let active = into
                .map(|t| plan::active_at(&shown_steps, t, load_len))
                .unwrap_or_default();
            line.load(flow_name, &p, into, load_len, &active);
        },
        Some(started_tx),
    );
    let faults = async {
        let Ok(start) = started_rx.await else {
            // The load never started: nothing to inject.
            return timeline;
        };
        *measured_from.lock() = Some(start.measured_from);
        samples.lock().origin_unix_ms = Some(
            gauntlet_system::db::now_ms()
                + start
                    .measured_from
                    .saturating_duration_since(Instant::now())
                    .as_millis() as i64,
        );
        tokio::select! {
            _ = tokio::time::sleep_until(start.measured_from) => {}
            _ = interrupt.cancelled() => return timeline,
        }
        let end = start.measured_from + load_len;
        let stop = interrupt.child_token();
        tokio::select! {
            _ = timeline.run(&stop) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => {}
                    _ = interrupt.cancelled() => {}
                }
            }
            _ = tokio::time::sleep_until(end) => {}
            _ = interrupt.cancelled() => {}
        }
        // Heal before the load drains, so journeys in flight finish on a
        // healthy system.
        timeline.heal().await;
        timeline
    };
    let (load, timeline) = tokio::join!(load, faults);
    let load = match load {
        Ok(l) => l,
        Err(e) => {
            sampling.cancel();
            let _ = sampler.await;
            return Err(LegError::Load(e.to_string()));
        }
    };
    let interrupted = interrupt.is_cancelled() || load.cancelled;

    progress.phase(flow_name, "quiescing");
    let bound = if interrupted {
        INTERRUPTED_QUIESCE
    } else {
        scenario.quiesce
    };
    let quiesce = quiesce(&services, bootstrap.as_deref(), bound, &interrupt).await;

    progress.phase(flow_name, "reading the final state");
    let mut problems = Vec::new();
    let mut state = match services.final_state().await {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(format!("final state: {e}"));
            None
        }
    };
    if let (Some(state), Some(bootstrap)) = (state.as_mut(), bootstrap.as_deref()) {
        match event_accounts(bootstrap).await {
            Ok(accounts) => state.events = Some(accounts),
            Err(e) => problems.push(format!("event accounting: {e}")),
        }
    }
    let events_delta = state
        .as_ref()
        .and_then(|s| s.events.as_ref())
        .map(|after| delta(after, &events_before));
    // One last sample after quiescing: the final lag and breaker records.
    sampling.cancel();
    let _ = sampler.await;
    sample_once(&services, uses_events, &samples).await;

    let samples = std::mem::take(&mut *samples.lock());
    let origin = samples
        .origin_unix_ms
        .unwrap_or_else(gauntlet_system::db::now_ms);
    let history = to_history(&load.history, flow_name, state.as_ref());
    let lag = samples
        .lag
        .iter()
        .filter(|(at, _, _)| *at >= origin)
        .map(|(at, group, lag)| LagSample {
            flow: Some(flow_name.to_string()),
            at_ms: (at - origin) as u64,
            group: group.clone(),
            lag: *lag,
        })
        .collect();
    let retries = retry_deltas(&samples.retry_totals, origin);
    let outbox = samples
        .outbox
        .iter()
        .filter(|(at, _, _)| *at >= origin)
        .map(|(at, service, backlog)| OutboxSample {
            at_ms: (at - origin) as u64,
            service: service.clone(),
            backlog: *backlog,
        })
        .collect();
    Ok(Leg {
        flow: flow_name,
        history,
        state,
        breakers: samples.breakers,
        lag,
        lag_summary: samples.lag_summary,
        retries,
        outbox,
        faults: timeline
            .records()
            .iter()
            .map(|r| FaultRecord {
                step: kept.get(r.step).copied().unwrap_or(r.step),
                ..r.clone()
            })
            .collect(),
        events_delta,
        skipped_faults,
        quiesce,
        interrupted,
        measured_from_unix_ms: origin,
        problems,
        load,
    })
}

/// Products the catalog is stocked with before the load.
pub const PRODUCTS: u32 = 20;
/// Each product's initial stock: enough that no scenario here sells out,
/// so a cancelled order always has a cause worth reading.
pub const INITIAL_STOCK: i64 = 1_000_000;

/// How many times one catalog write is sent while the gateway's rate
/// limit refuses it (429), each after the `Retry-After` it gave.
const STOCK_TRIES: u32 = 30;

/// Creates the catalog the load orders from, through the gateway as any
/// client would (before the load, so outside every figure): prices from
/// 1.00 to 99.00, from the seed. With JWTs on, it signs a token of its own
/// (`sub` = `harness`); a write over a rate limit waits and is sent again.
async fn stock_catalog(
    http: &reqwest::Client,
    gateway: &str,
    seed: u64,
    token: Option<&loadgen::TokenConfig>,
) -> Result<(), String> {
    let url = format!("{gateway}/api/products");
    let bearer = token
        .map(|t| t.sign("harness", Duration::from_secs(600)))
        .transpose()
        .map_err(|e| format!("stocking the catalog: {e}"))?;
    for i in 0..PRODUCTS {
        let price = 100 + (seed.wrapping_mul(31).wrapping_add(u64::from(i) * 977) % 9_800);
        let body = serde_json::json!({
            "name": format!("Product {}", i + 1),
            "price_cents": price,
            "stock": INITIAL_STOCK,
        });
        let mut tries = 0;
        let resp = loop {
            let mut req = http.post(&url).json(&body);
            if let Some(b) = &bearer {
                req = req.bearer_auth(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("stocking the catalog: POST {url}: {e}"))?;
            tries += 1;
            if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || tries >= STOCK_TRIES {
                break resp;
            }
            // Never created: safe to send again once the limit allows.
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(format!(
                "stocking the catalog: POST {url}: {status}: {text}"
            ));
        }
    }
    Ok(())
}

/// `after` less `before`, account by account.
fn delta(after: &[TopicEvents], before: &[TopicEvents]) -> Vec<TopicEvents> {
    after
        .iter()
        .map(|a| {
            let b = before
                .iter()
                .find(|b| b.topic == a.topic && b.group == a.group);
            let less = |f: fn(&TopicEvents) -> u64| f(a).saturating_sub(b.map_or(0, f));
            TopicEvents {
                topic: a.topic.clone(),
                group: a.group.clone(),
                produced: less(|e| e.produced),
                consumed: less(|e| e.consumed),
                dead_lettered: less(|e| e.dead_lettered),
            }
        })
        .collect()
}

/// The load generator's history in the reports' shape, each operation
/// tagged with the flow it ran in and the trace of its order.
fn to_history(ops: &[loadgen::Operation], flow: &str, state: Option<&FinalState>) -> History {
    use gauntlet_reports::history::{OpKind, Outcome};
    let traces: BTreeMap<i64, &str> = state
        .iter()
        .flat_map(|s| &s.orders)
        .filter_map(|o| Some((o.id, o.trace_id.as_deref()?)))
        .collect();
    let ops = ops
        .iter()
        .map(|op| Operation {
            id: op.id,
            journey: op.journey,
            kind: match op.kind {
                loadgen::OpKind::CreateUser => OpKind::CreateUser,
                loadgen::OpKind::ListProducts => OpKind::ListProducts,
                loadgen::OpKind::PlaceOrder => OpKind::PlaceOrder,
                loadgen::OpKind::GetOrder => OpKind::GetOrder,
            },
            intended_us: Some(op.intended_us),
            invoke_us: op.invoke_us,
            complete_us: Some(op.complete_us),
            outcome: match op.outcome {
                loadgen::Outcome::Ok => Outcome::Ok,
                loadgen::Outcome::Fail => Outcome::Fail,
                loadgen::Outcome::Unknown => Outcome::Unknown,
            },
            status: op.status,
            order_id: op.order_id,
            idempotency_key: op.idempotency_key.as_deref().map(str::to_string),
            flow: Some(flow.to_string()),
            order_status: None,
            detail: op.detail.as_deref().map(str::to_string),
            trace_id: op
                .order_id
                .and_then(|id| traces.get(&id))
                .map(|t| t.to_string()),
        })
        .collect();
    History::new(ops)
}

#[derive(Default)]
struct Samples {
    /// Unix ms of the measured start, once known.
    origin_unix_ms: Option<i64>,
    breakers: BreakerLog,
    /// (unix ms, group, lag)
    lag: Vec<(i64, String, u64)>,
    lag_summary: BTreeMap<String, (u64, u64)>,
    /// (unix ms, retries per link so far)
    retry_totals: Vec<(i64, BTreeMap<String, u64>)>,
    /// (unix ms, service, outbox backlog)
    outbox: Vec<(i64, String, u64)>,
}

/// Per link, the retries between consecutive samples from `origin_unix_ms`
/// on (the first sample at or after it counts from the last one before
/// it, so the warm-up's retries stay out). A link is listed at every
/// sample once seen, 0 included, so a chart's series have one point per
/// sample.
fn retry_deltas(totals: &[(i64, BTreeMap<String, u64>)], origin_unix_ms: i64) -> Vec<RetrySample> {
    let mut out = Vec::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (at, per_link) in totals {
        for (link, total) in per_link {
            let before = last.insert(link, *total).unwrap_or(0);
            if *at >= origin_unix_ms {
                out.push(RetrySample {
                    at_ms: (at - origin_unix_ms) as u64,
                    link: link.clone(),
                    retries: total.saturating_sub(before),
                });
            }
        }
    }
    out
}

/// The services a consumer group lives in.
fn consumer_services() -> impl Iterator<Item = ServiceName> {
    SUBSCRIPTIONS.iter().map(|(s, _)| *s)
}

async fn sample(
    services: Probe,
    uses_events: bool,
    samples: Arc<Mutex<Samples>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sample_once(&services, uses_events, &samples).await,
            _ = stop.cancelled() => return,
        }
    }
}

async fn sample_once(services: &Probe, uses_events: bool, samples: &Mutex<Samples>) {
    // A crashed service does not answer: its sample is skipped, and its
    // records come back with it (transitions are merged, counters carried).
    for s in CALLERS {
        if let Ok(view) = services.breakers(s).await {
            samples.lock().breakers.absorb(&view);
        }
    }
    let now = gauntlet_system::db::now_ms();
    {
        let mut samples = samples.lock();
        let totals = samples.breakers.retries();
        samples.retry_totals.push((now, totals));
    }
    if !uses_events {
        return;
    }
    for s in consumer_services() {
        if let Ok(view) = services.events(s).await {
            let mut samples = samples.lock();
            samples
                .outbox
                .push((now, s.to_string(), view.outbox.backlog.max(0) as u64));
            for c in view.consumers {
                let lag = c.lag.max(0) as u64;
                samples.lag.push((now, c.group.clone(), lag));
                let entry = samples.lag_summary.entry(c.group).or_default();
                entry.0 = entry.0.max(lag);
                entry.1 = lag;
            }
        }
    }
}

/// Waits until every saga is terminal and, with an event path, every
/// outbox is empty and every group has handled every event; at most
/// `bound`.
async fn quiesce(
    services: &Probe,
    bootstrap: Option<&str>,
    bound: Duration,
    interrupt: &CancellationToken,
) -> Quiesce {
    let start = Instant::now();
    let deadline = start + bound;
    let mut quiet = 0;
    let mut waiting_on = None;
    let watch_interrupt = !interrupt.is_cancelled();
    loop {
        match unsettled(services, bootstrap).await {
            None => {
                quiet += 1;
                if quiet >= QUIET_CHECKS {
                    return Quiesce {
                        settled: true,
                        took: start.elapsed(),
                        waiting_on: None,
                    };
                }
            }
            Some(why) => {
                quiet = 0;
                waiting_on = Some(why);
            }
        }
        if Instant::now() >= deadline {
            return Quiesce {
                settled: false,
                took: start.elapsed(),
                waiting_on,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(QUIESCE_POLL) => {}
            // Ctrl-C while settling: read the system as it stands.
            _ = interrupt.cancelled(), if watch_interrupt => {
                return Quiesce { settled: false, took: start.elapsed(), waiting_on };
            }
        }
    }
}

/// What is still moving, or `None` when the system is quiet.
async fn unsettled(services: &Probe, bootstrap: Option<&str>) -> Option<String> {
    match services.open_orders(5).await {
        Ok(open) if !open.is_empty() => {
            let ids: Vec<String> = open.iter().map(|o| o.id.to_string()).collect();
            return Some(format!(
                "orders not terminal (first ids: {})",
                ids.join(", ")
            ));
        }
        Ok(_) => {}
        Err(e) => return Some(format!("orders unreadable: {e}")),
    }
    let bootstrap = bootstrap?;
    // A service whose address is not known (a system running elsewhere)
    // is left to the broker's accounting below.
    for s in consumer_services().filter(|s| services.urls.contains_key(s)) {
        match services.events(s).await {
            Ok(v) => {
                if v.outbox.backlog > 0 {
                    return Some(format!("{s}'s outbox holds {} events", v.outbox.backlog));
                }
                if let Some(c) = v.consumers.iter().find(|c| c.lag > 0) {
                    return Some(format!("consumer group {} lags by {}", c.group, c.lag));
                }
            }
            Err(e) => return Some(format!("{s} unreadable: {e}")),
        }
    }
    // Committed through the end: every event handled or dead-lettered.
    match event_progress(bootstrap).await {
        Ok(progress) => progress.iter().find(|p| p.committed < p.produced).map(|p| {
            format!(
                "consumer group {} is done with {} of {} events on {}",
                p.group, p.committed, p.produced, p.topic
            )
        }),
        Err(e) => Some(format!("event progress: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_over_time_are_per_interval_and_leave_the_warm_up_out() {
        let totals = vec![
            (900, BTreeMap::from([("orders->payments".to_string(), 4)])),
            (
                1900,
                BTreeMap::from([
                    ("orders->payments".to_string(), 10),
                    ("orders->catalog".to_string(), 1),
                ]),
            ),
            (2900, BTreeMap::from([("orders->payments".to_string(), 10)])),
        ];
        let d = retry_deltas(&totals, 1000);
        let got: Vec<(u64, &str, u64)> = d
            .iter()
            .map(|r| (r.at_ms, r.link.as_str(), r.retries))
            .collect();
        assert_eq!(
            got,
            [
                (900, "orders->catalog", 1),
                (900, "orders->payments", 6),
                (1900, "orders->payments", 0),
            ]
        );
    }
}
