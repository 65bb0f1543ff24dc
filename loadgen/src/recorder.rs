//! Where operations go as they complete.
//!
//! Each goose user owns a [`UserLog`]: its operations and the journeys it
//! started, appended with no lock. The only shared things on the hot path
//! are a few atomic counters and the user's own small "last second"
//! histogram, whose mutex only the once-a-second progress sampler ever
//! contends for. Logs are handed in when a user ends and merged once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::history::{Operation, Outcome};

/// Microseconds from the run's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub start: Instant,
}

impl Clock {
    pub fn us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }
}

/// Significant figures of the live (progress) histograms: 1% is plenty
/// for a number printed once a second.
const LIVE_SIGFIG: u8 = 2;

/// Records `us` (at least 1), growing the histogram as needed: its
/// `saturating_record` clamps to the current range instead of growing.
pub(crate) fn record_latency(h: &mut Histogram<u64>, us: u64) {
    let us = us.max(1);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

pub(crate) fn live_histogram() -> Histogram<u64> {
    // 2 significant figures is always a valid precision.
    Histogram::new(LIVE_SIGFIG).unwrap_or_else(|_| unreachable!())
}

/// Counters and histograms the progress sampler reads while users run.
pub(crate) struct Live {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub unknown: AtomicU64,
    /// Journeys started.
    pub started: AtomicU64,
    /// Where measuring starts, microseconds from the run's start
    /// (`u64::MAX` until the load starts).
    pub measured_from_us: AtomicU64,
    pub histograms: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>>,
    /// Logs of users that have ended.
    pub logs: Mutex<Vec<UserLog>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            ok: AtomicU64::new(0),
            fail: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            started: AtomicU64::new(0),
            measured_from_us: AtomicU64::new(u64::MAX),
            histograms: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
        }
    }
}

impl Live {
    /// Takes the latency recorded since the last call, from every user.
    pub fn drain_latency(&self) -> Histogram<u64> {
        let mut all = live_histogram();
        for h in self.histograms.lock().iter() {
            let mut h = h.lock();
            // Both auto-resize, so adding cannot overflow their range.
            let _ = all.add(&*h);
            h.reset();
        }
        all
    }
}

/// One user's record.
pub(crate) struct UserLog {
    pub ops: Vec<Operation>,
    /// Measured journeys started, by the second (from where measuring
    /// starts) they were started in.
    pub starts: Vec<u32>,
    live: Arc<Mutex<Histogram<u64>>>,
}

impl UserLog {
    pub fn new(live: &Live) -> Self {
        let h = Arc::new(Mutex::new(live_histogram()));
        live.histograms.lock().push(h.clone());
        UserLog {
            ops: Vec::new(),
            starts: Vec::new(),
            live: h,
        }
    }

    pub fn record(&mut self, op: Operation, live: &Live) {
        let counter = match op.outcome {
            Outcome::Ok => &live.ok,
            Outcome::Fail => &live.fail,
            Outcome::Unknown => &live.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        record_latency(&mut self.live.lock(), op.latency_us());
        self.ops.push(op);
    }

    /// A journey due at `due_us` started at `at_us`.
    pub fn journey_started(&mut self, due_us: u64, at_us: u64, live: &Live) {
        live.started.fetch_add(1, Ordering::Relaxed);
        let from = live.measured_from_us.load(Ordering::Relaxed);
        if due_us < from {
            // A warm-up journey.
            return;
        }
        let since = at_us.saturating_sub(from);
        let second = usize::try_from(since / 1_000_000).unwrap_or(usize::MAX);
        if second >= self.starts.len() {
            // Bounded by the run's length in seconds.
            self.starts.resize(second.saturating_add(1).min(1 << 24), 0);
        }
        if let Some(n) = self.starts.get_mut(second) {
            *n += 1;
        }
    }
}
