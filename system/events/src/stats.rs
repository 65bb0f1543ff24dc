//! What a consumer has done so far, and how far behind it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Processing times are recorded in microseconds, up to this (longer ones
/// are recorded as this).
const MAX_RECORDED_US: u64 = 3_600_000_000;

/// How far one assigned partition is behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Offset the next produced message will get (while the consumer is
    /// paused, on the embedded broker, possibly a lower bound: see the crate
    /// docs).
    pub high_watermark: i64,
    /// Offset of the next message this consumer will handle: one past the
    /// last one handled, or else the group's committed offset, or else the
    /// start of the partition.
    pub position: i64,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// `high_watermark − position`, never negative.
    pub lag: i64,
}

/// A snapshot of one consumer's counters.
#[derive(Debug, Clone)]
pub struct ConsumerStats {
    pub group: String,
    /// Messages handled successfully.
    pub processed: u64,
    /// Handler attempts beyond each message's first.
    pub retries: u64,
    /// Messages sent to a dead-letter topic.
    pub dead_lettered: u64,
    /// Failed handler attempts (transient, permanent, panicked, timed out).
    pub errors: u64,
    /// Errors of the Kafka client itself: failed receives, failed
    /// dead-letter publishes, failed commits, rebalance errors.
    pub client_errors: u64,
    pub paused: bool,
    /// Time from receiving a message to being done with it (handled or
    /// dead-lettered, retries included), in microseconds.
    pub processing: Histogram<u64>,
    /// Lag of each assigned partition, as of [`ConsumerStats::lag_age`] ago.
    pub lag: Vec<PartitionLag>,
    /// How old `lag` is; `None` until it was first measured.
    pub lag_age: Option<Duration>,
}

impl ConsumerStats {
    pub fn processing_p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn processing_p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn processing_max(&self) -> Duration {
        Duration::from_micros(self.processing.max())
    }

    fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.processing.value_at_quantile(q))
    }

    /// Lag summed over the assigned partitions.
    pub fn total_lag(&self) -> i64 {
        self.lag.iter().map(|l| l.lag).sum()
    }
}

/// The live counters behind [`ConsumerStats`], shared by a consumer's tasks.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) processed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) client_errors: AtomicU64,
    pub(crate) paused: AtomicBool,
    processing: Mutex<Histogram<u64>>,
    /// Next offset to handle, per (topic, partition), as this consumer
    /// last stored it.
    positions: Mutex<HashMap<String, HashMap<i32, i64>>>,
    lag: Mutex<(Vec<PartitionLag>, Option<Instant>)>,
    /// When a snapshot was last taken: lag is measured only while someone
    /// reads it (see [`Counters::lag_wanted`]).
    read_at: Mutex<Option<Instant>>,
}

/// Lag is measured while a snapshot was taken at most this long ago.
pub(crate) const LAG_WANTED_FOR: Duration = Duration::from_secs(10);

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            processed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            processing: Mutex::new(new_histogram()),
            positions: Mutex::new(HashMap::new()),
            lag: Mutex::new((Vec::new(), None)),
            read_at: Mutex::new(None),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a message's processing time.
    pub(crate) fn record_processing(&self, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_RECORDED_US);
        // Cannot fail: `us` is clamped into the histogram's range.
        let _ = self.processing.lock().record(us);
    }

    /// Records a message's processing time, and that everything up to
    /// `offset` on its partition is done.
    pub(crate) fn record_done(&self, topic: &str, partition: i32, offset: i64, took: Duration) {
        self.record_processing(took);
        let mut positions = self.positions.lock();
        // Allocates the topic's name only the first time it is seen.
        match positions.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, offset + 1);
            }
            None => {
                positions.insert(topic.to_string(), HashMap::from([(partition, offset + 1)]));
            }
        }
    }

    pub(crate) fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .lock()
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .copied()
    }

    pub(crate) fn set_lag(&self, lag: Vec<PartitionLag>) {
        *self.lag.lock() = (lag, Some(Instant::now()));
    }

    /// Whether anyone has read these figures lately: measuring lag takes
    /// requests to the broker, which an idle system should not make.
    pub(crate) fn lag_wanted(&self) -> bool {
        self.read_at
            .lock()
            .is_some_and(|at| at.elapsed() <= LAG_WANTED_FOR)
    }

    pub(crate) fn snapshot(&self, group: &str) -> ConsumerStats {
        *self.read_at.lock() = Some(Instant::now());
        let (lag, at) = self.lag.lock().clone();
        ConsumerStats {
            group: group.to_string(),
            processed: self.processed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            processing: self.processing.lock().clone(),
            lag,
            lag_age: at.map(|at| at.elapsed()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; the bounds are constants, so
    // this cannot fail, but fall back to an auto-resizing one regardless.
    Histogram::new_with_bounds(1, MAX_RECORDED_US, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits is a valid precision"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_times_and_positions() {
        let c = Counters::new();
        c.record_done("t", 0, 9, Duration::from_millis(2));
        c.record_done("t", 0, 10, Duration::from_millis(4));
        assert_eq!(c.position("t", 0), Some(11));
        assert_eq!(c.position("t", 1), None);
        let s = c.snapshot("g");
        assert_eq!(s.processing.len(), 2);
        assert!(s.processing_p99() >= Duration::from_millis(3));
        assert!(s.lag_age.is_none());
        c.set_lag(vec![PartitionLag {
            topic: "t".into(),
            partition: 0,
            high_watermark: 15,
            position: 11,
            committed: Some(11),
            lag: 4,
        }]);
        let s = c.snapshot("g");
        assert_eq!(s.total_lag(), 4);
        assert!(s.lag_age.is_some());
    }

    #[test]
    fn lag_is_wanted_only_after_a_read() {
        let c = Counters::new();
        assert!(!c.lag_wanted());
        let _ = c.snapshot("g");
        assert!(c.lag_wanted());
        *c.read_at.lock() = Instant::now().checked_sub(LAG_WANTED_FOR * 2);
        assert!(!c.lag_wanted());
    }
}
