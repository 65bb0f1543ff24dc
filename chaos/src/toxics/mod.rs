//! The toxics: one fault per file, each a small stream transform.
//!
//! A link (one direction of one connection) is a chain of stages, one per
//! toxic, in the order the toxics were added. Each stage owns a queue of
//! items waiting for it; its transform moves items from that queue to the
//! next stage's queue (or to the socket) when it sees fit. A transform reads
//! the clock only from the time it is handed, and waits only by returning the
//! instant it wants to run again, so the whole chain runs inside the link's
//! one task with no channels and no per-toxic tasks.
//!
//! Items are never dropped by the chain machinery itself; only a toxic whose
//! job is to drop data (`timeout`, `limit_data` past its limit, `reset_peer`
//! when it fires) drops any. When a toxic is removed from a live link, what is
//! still queued for it is handed, in order, to the stage after it.

mod bandwidth;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::ChaosError;

pub use bandwidth::Bandwidth;
pub use gauntlet_model::toxic::{ToxicKind, TOXIC_TYPES};
pub use latency::Latency;
pub use limit_data::LimitData;
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

/// Builds a kind from a `type` and an `attributes` object; a missing or
/// `null` attributes value means "all zero", as in Toxiproxy, and unknown
/// attributes are ignored.
pub fn from_parts(kind: &str, attributes: Value) -> Result<ToxicKind, ChaosError> {
    fn attrs<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ChaosError> {
        let v = if v.is_null() {
            Value::Object(Map::new())
        } else {
            v
        };
        serde_json::from_value(v).map_err(|e| ChaosError::BadRequest(format!("attributes: {e}")))
    }
    Ok(match kind {
        "latency" => ToxicKind::Latency(attrs(attributes)?),
        "bandwidth" => ToxicKind::Bandwidth(attrs(attributes)?),
        "slow_close" => ToxicKind::SlowClose(attrs(attributes)?),
        "timeout" => ToxicKind::Timeout(attrs(attributes)?),
        "reset_peer" => ToxicKind::ResetPeer(attrs(attributes)?),
        "slicer" => ToxicKind::Slicer(attrs(attributes)?),
        "limit_data" => ToxicKind::LimitData(attrs(attributes)?),
        other => return Err(ChaosError::InvalidToxicType(other.to_owned())),
    })
}

/// A kind's attributes as a JSON object (every attribute present).
pub fn attributes(kind: &ToxicKind) -> Map<String, Value> {
    match serde_json::to_value(kind) {
        Ok(Value::Object(mut map)) => match map.remove("attributes") {
            Some(Value::Object(attributes)) => attributes,
            _ => Map::new(),
        },
        // Plain structs of integers always serialise to objects.
        _ => Map::new(),
    }
}

/// How many items may wait in front of a toxic. Latency buffers (as in
/// Toxiproxy, 1024 chunks) so that reading goes on while data is held;
/// the others hold one item, like Toxiproxy's unbuffered channels.
pub(crate) fn capacity(kind: &ToxicKind) -> usize {
    match kind {
        ToxicKind::Latency(_) => 1024,
        _ => 1,
    }
}

/// Why a stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The source sent FIN: half-close the destination, the other direction
    /// carries on.
    Eof,
    /// Close the connection: this direction's destination, and the other
    /// direction once it has flushed what it holds.
    Close,
    /// Reset the connection (linger 0, so the kernel sends RST).
    Reset,
}

/// A run of bytes read from the source at `at` (or released by an earlier
/// toxic at `at`).
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) data: Bytes,
    pub(crate) at: Instant,
}

/// What flows down a link: data, then at most one end marker.
#[derive(Debug)]
pub(crate) enum Item {
    Data(Chunk),
    End(End),
}

impl Item {
    pub(crate) fn is_end(&self) -> bool {
        matches!(self, Item::End(_))
    }
}

/// The queue a stage delivers into, with its capacity. End markers always
/// fit: closing never waits for room.
pub(crate) struct Outlet<'a> {
    queue: &'a mut VecDeque<Item>,
    cap: usize,
    pushed: usize,
    ended: bool,
}

impl<'a> Outlet<'a> {
    pub(crate) fn new(queue: &'a mut VecDeque<Item>, cap: usize) -> Self {
        Self {
            queue,
            cap,
            pushed: 0,
            ended: false,
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.queue.len() < self.cap
    }

    pub(crate) fn push(&mut self, item: Item) {
        self.ended |= item.is_end();
        self.queue.push_back(item);
        self.pushed += 1;
    }

    /// How many items were pushed through this outlet.
    pub(crate) fn pushed(&self) -> usize {
        self.pushed
    }

    /// Whether an end marker went through: the stage is finished.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

/// What a transform works with for one step.
pub(crate) struct Cx<'a, 'o> {
    pub(crate) now: Instant,
    pub(crate) input: &'a mut VecDeque<Item>,
    pub(crate) out: &'a mut Outlet<'o>,
    pub(crate) rng: &'a mut StdRng,
}

/// Moves items from input to output unchanged while there is room: what a
/// toxic does for a connection its toxicity spared.
pub(crate) fn pass(input: &mut VecDeque<Item>, out: &mut Outlet<'_>) {
    while let Some(front) = input.front() {
        if !front.is_end() && !out.has_room() {
            return;
        }
        if let Some(item) = input.pop_front() {
            out.push(item);
        }
        if out.ended() {
            return;
        }
    }
}

/// Passes a leading end marker on (every toxic lets the end through once the
/// data before it has gone). Returns whether it did.
pub(crate) fn pass_end(cx: &mut Cx<'_, '_>) -> bool {
    if matches!(cx.input.front(), Some(Item::End(_))) {
        if let Some(item) = cx.input.pop_front() {
            cx.out.push(item);
        }
        return true;
    }
    false
}

/// `t + d`, saturating far in the future instead of panicking on overflow
/// (attributes are user input and may be absurdly large).
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}

/// What removing a toxic from a live link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Hand what is queued for it to the next stage.
    HandOver,
    /// Close the stream (the timeout toxic: the data it swallowed is gone, so
    /// the stream cannot go on; Toxiproxy's timeout cleanup does the same).
    Close,
}

/// A toxic's per-link state: its attributes plus whatever it remembers
/// between steps.
pub(crate) enum Transform {
    Latency(latency::State),
    Bandwidth(bandwidth::State),
    SlowClose(slow_close::State),
    Timeout(timeout::State),
    ResetPeer(reset_peer::State),
    Slicer(slicer::State),
    LimitData(limit_data::State),
}

impl Transform {
    pub(crate) fn new(kind: &ToxicKind, now: Instant) -> Self {
        match kind {
            ToxicKind::Latency(a) => Self::Latency(latency::State::new(*a)),
            ToxicKind::Bandwidth(a) => Self::Bandwidth(bandwidth::State::new(*a)),
            ToxicKind::SlowClose(a) => Self::SlowClose(slow_close::State::new(*a)),
            ToxicKind::Timeout(a) => Self::Timeout(timeout::State::new(*a, now)),
            ToxicKind::ResetPeer(a) => Self::ResetPeer(reset_peer::State::new(*a)),
            ToxicKind::Slicer(a) => Self::Slicer(slicer::State::new(*a)),
            ToxicKind::LimitData(a) => Self::LimitData(limit_data::State::new(*a)),
        }
    }

    /// New attributes for a live link; per-link memory (bytes already let
    /// through by `limit_data`, say) is kept.
    pub(crate) fn update(&mut self, kind: &ToxicKind, now: Instant) {
        match (self, kind) {
            (Self::Latency(s), ToxicKind::Latency(a)) => s.update(*a),
            (Self::Bandwidth(s), ToxicKind::Bandwidth(a)) => s.update(*a),
            (Self::SlowClose(s), ToxicKind::SlowClose(a)) => s.update(*a),
            (Self::Timeout(s), ToxicKind::Timeout(a)) => s.update(*a, now),
            (Self::ResetPeer(s), ToxicKind::ResetPeer(a)) => s.update(*a),
            (Self::Slicer(s), ToxicKind::Slicer(a)) => s.update(*a),
            (Self::LimitData(s), ToxicKind::LimitData(a)) => s.update(*a),
            // The registry never changes a toxic's type.
            (this, kind) => *this = Self::new(kind, now),
        }
    }

    /// Runs the toxic on what is queued for it; returns when it next needs to
    /// run if it is waiting on the clock.
    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        match self {
            Self::Latency(s) => s.step(cx),
            Self::Bandwidth(s) => s.step(cx),
            Self::SlowClose(s) => s.step(cx),
            Self::Timeout(s) => s.step(cx),
            Self::ResetPeer(s) => s.step(cx),
            Self::Slicer(s) => s.step(cx),
            Self::LimitData(s) => s.step(cx),
        }
    }

    pub(crate) fn on_remove(&self) -> Removal {
        match self {
            Self::Timeout(_) => Removal::Close,
            _ => Removal::HandOver,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Drives one transform by hand, with a virtual clock.

    use super::*;
    use rand::SeedableRng;

    pub(crate) struct Harness {
        pub(crate) transform: Transform,
        pub(crate) input: VecDeque<Item>,
        pub(crate) output: VecDeque<Item>,
        pub(crate) cap: usize,
        pub(crate) rng: StdRng,
        pub(crate) now: Instant,
    }

    impl Harness {
        pub(crate) fn new(kind: ToxicKind) -> Self {
            let now = Instant::now();
            Self {
                transform: Transform::new(&kind, now),
                input: VecDeque::new(),
                output: VecDeque::new(),
                cap: usize::MAX,
                rng: StdRng::seed_from_u64(1),
                now,
            }
        }

        pub(crate) fn data(&mut self, bytes: &[u8]) {
            self.input.push_back(Item::Data(Chunk {
                data: Bytes::copy_from_slice(bytes),
                at: self.now,
            }));
        }

        pub(crate) fn end(&mut self, end: End) {
            self.input.push_back(Item::End(end));
        }

        pub(crate) fn step(&mut self) -> Option<Instant> {
            let mut out = Outlet::new(&mut self.output, self.cap);
            let mut cx = Cx {
                now: self.now,
                input: &mut self.input,
                out: &mut out,
                rng: &mut self.rng,
            };
            self.transform.step(&mut cx)
        }

        pub(crate) fn advance(&mut self, d: Duration) {
            self.now += d;
        }

        /// Drains the output: the data bytes and the end marker, if any.
        pub(crate) fn take(&mut self) -> (Vec<Vec<u8>>, Option<End>) {
            let mut chunks = Vec::new();
            let mut end = None;
            for item in self.output.drain(..) {
                match item {
                    Item::Data(c) => chunks.push(c.data.to_vec()),
                    Item::End(e) => end = Some(e),
                }
            }
            (chunks, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_serialise_with_every_attribute() {
        let cases = [
            (
                ToxicKind::Latency(Latency::default()),
                json!({"type": "latency", "attributes": {"latency": 0, "jitter": 0}}),
            ),
            (
                ToxicKind::Bandwidth(Bandwidth::default()),
                json!({"type": "bandwidth", "attributes": {"rate": 0}}),
            ),
            (
                ToxicKind::SlowClose(SlowClose::default()),
                json!({"type": "slow_close", "attributes": {"delay": 0}}),
            ),
            (
                ToxicKind::Timeout(Timeout::default()),
                json!({"type": "timeout", "attributes": {"timeout": 0}}),
            ),
            (
                ToxicKind::ResetPeer(ResetPeer::default()),
                json!({"type": "reset_peer", "attributes": {"timeout": 0}}),
            ),
            (
                ToxicKind::Slicer(Slicer::default()),
                json!({"type": "slicer", "attributes": {"average_size": 0, "size_variation": 0, "delay": 0}}),
            ),
            (
                ToxicKind::LimitData(LimitData::default()),
                json!({"type": "limit_data", "attributes": {"bytes": 0}}),
            ),
        ];
        for (kind, expected) in cases {
            assert_eq!(serde_json::to_value(&kind).unwrap(), expected);
            let back: ToxicKind = serde_json::from_value(expected).unwrap();
            assert_eq!(back, kind);
            let rebuilt = from_parts(kind.type_name(), Value::Null).unwrap();
            assert_eq!(rebuilt, kind);
        }
    }

    #[test]
    fn from_parts_ignores_unknown_attributes_and_rejects_bad_ones() {
        let kind = from_parts("latency", json!({"latency": 5, "enabled": true})).unwrap();
        assert_eq!(
            kind,
            ToxicKind::Latency(Latency {
                latency: 5,
                jitter: 0
            })
        );
        assert!(matches!(
            from_parts("latency", json!({"latency": -5})),
            Err(ChaosError::BadRequest(_))
        ));
        assert!(matches!(
            from_parts("latency", json!({"latency": "5"})),
            Err(ChaosError::BadRequest(_))
        ));
        assert!(matches!(
            from_parts("nope", json!({})),
            Err(ChaosError::InvalidToxicType(_))
        ));
    }

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert!(later(now, Duration::from_millis(u64::MAX)) > now);
    }
}
