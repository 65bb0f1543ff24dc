//! One direction of one connection: the chain of toxic stages between the
//! bytes read from the source and the bytes written to the destination.
//!
//! The chain follows the proxy's toxic list for its direction. When toxics
//! are added, they join the end of the chain; when one is removed, whatever
//! is queued for it moves, in order, to the stage after it (Toxiproxy's rule:
//! never drop data on the floor); when one is updated, it keeps its queue and
//! per-link memory.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::seed;
use crate::toxics::{pass, Cx, End, Item, Outlet, Removal, Transform};
use crate::{Stream, ToxicKind};

/// How many items may wait to be written to the destination. One keeps the
/// proxy from reading ahead of a destination that does not keep up.
const OUTBOX_CAP: usize = 1;

/// Forward passes over the stages per [`Chain::advance`] call. Each pass lets
/// an item cross every stage that has room, so a handful suffices; the bound
/// keeps one call from running long if a transform misbehaves.
const MAX_PASSES: usize = 32;

/// One toxic as the proxy's registry holds it; the chains follow a list of
/// these.
#[derive(Clone, Debug)]
pub(crate) struct ToxicEntry {
    /// Unique for the proxy's lifetime; links match stages by it.
    pub(crate) id: u64,
    /// Bumped on every update.
    pub(crate) revision: u64,
    pub(crate) name: String,
    pub(crate) stream: Stream,
    pub(crate) toxicity: f32,
    pub(crate) kind: ToxicKind,
}

/// The proxy's toxics at one moment, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) toxics: Vec<ToxicEntry>,
}

struct Stage {
    /// `None` for a stage kept only to swallow what follows a close.
    id: Option<u64>,
    revision: u64,
    /// This link's draw for the toxic, compared with the toxicity.
    roll: f64,
    active: bool,
    /// Has let an end marker through: drops anything after it.
    closed: bool,
    capacity: usize,
    queue: VecDeque<Item>,
    transform: Option<Transform>,
    rng: StdRng,
}

struct StepResult {
    progressed: bool,
    wake: Option<Instant>,
}

impl Stage {
    fn new(entry: &ToxicEntry, link_seed: u64, now: Instant) -> Self {
        let name_seed = seed::mix(link_seed, seed::hash_str(&entry.name));
        let roll = seed::unit(name_seed);
        Self {
            id: Some(entry.id),
            revision: entry.revision,
            roll,
            active: roll < f64::from(entry.toxicity),
            closed: false,
            capacity: crate::toxics::capacity(&entry.kind),
            queue: VecDeque::new(),
            transform: Some(Transform::new(&entry.kind, now)),
            rng: StdRng::seed_from_u64(seed::mix(name_seed, 0x5EED)),
        }
    }

    /// A closed stage that swallows everything: stands in for a removed toxic
    /// that had already ended the stream, so nothing leaks past the end.
    fn tombstone() -> Self {
        Self {
            id: None,
            revision: 0,
            roll: 0.0,
            active: false,
            closed: true,
            capacity: 1,
            queue: VecDeque::new(),
            transform: None,
            rng: StdRng::seed_from_u64(0),
        }
    }

    fn update(&mut self, entry: &ToxicEntry, now: Instant) {
        self.revision = entry.revision;
        self.active = self.roll < f64::from(entry.toxicity);
        if let Some(transform) = &mut self.transform {
            transform.update(&entry.kind, now);
        }
    }

    /// Room for one more item from the stage before.
    fn room(&self) -> usize {
        if self.closed {
            usize::MAX
        } else {
            self.capacity
        }
    }

    fn step(&mut self, now: Instant, mut out: Outlet<'_>) -> StepResult {
        let before = self.queue.len();
        let wake = match (&mut self.transform, self.closed, self.active) {
            (_, true, _) => {
                self.queue.clear();
                None
            }
            (Some(transform), false, true) => {
                let mut cx = Cx {
                    now,
                    input: &mut self.queue,
                    out: &mut out,
                    rng: &mut self.rng,
                };
                transform.step(&mut cx)
            }
            _ => {
                pass(&mut self.queue, &mut out);
                None
            }
        };
        if out.ended() {
            self.closed = true;
            self.queue.clear();
        }
        StepResult {
            progressed: out.pushed() > 0 || self.queue.len() != before,
            wake: if self.closed { None } else { wake },
        }
    }
}

/// The stages of one link plus the items waiting to be written.
pub(crate) struct Chain {
    direction: Stream,
    link_seed: u64,
    stages: Vec<Stage>,
    /// Items that went through every stage, in order; the link writes them.
    pub(crate) outbox: VecDeque<Item>,
}

impl Chain {
    pub(crate) fn new(
        direction: Stream,
        link_seed: u64,
        snapshot: &Snapshot,
        now: Instant,
    ) -> Self {
        let mut chain = Self {
            direction,
            link_seed,
            stages: Vec::new(),
            outbox: VecDeque::new(),
        };
        chain.reconcile(snapshot, now);
        chain
    }

    /// Whether bytes may skip the chain: no toxic on this direction and
    /// nothing waiting to be written.
    pub(crate) fn passes_through(&self) -> bool {
        self.stages.is_empty() && self.outbox.is_empty()
    }

    /// Whether the first stage (or the outbox) can take another item.
    pub(crate) fn can_accept(&self) -> bool {
        match self.stages.first() {
            Some(stage) => stage.queue.len() < stage.room(),
            None => self.outbox.len() < OUTBOX_CAP,
        }
    }

    /// Feeds an item read from the source into the chain.
    pub(crate) fn push(&mut self, item: Item) {
        match self.stages.first_mut() {
            Some(stage) => stage.queue.push_back(item),
            None => self.outbox.push_back(item),
        }
    }

    /// Brings the stages in line with the proxy's current toxics.
    pub(crate) fn reconcile(&mut self, snapshot: &Snapshot, now: Instant) {
        let wanted: Vec<&ToxicEntry> = snapshot
            .toxics
            .iter()
            .filter(|t| t.stream == self.direction)
            .collect();

        // Removals first, so their queues move on to stages that stay.
        let mut i = 0;
        while i < self.stages.len() {
            let gone = self.stages[i]
                .id
                .is_some_and(|id| !wanted.iter().any(|t| t.id == id));
            if !gone || self.remove_stage(i) {
                i += 1;
            }
        }

        for stage in &mut self.stages {
            let Some(id) = stage.id else { continue };
            if let Some(entry) = wanted.iter().find(|t| t.id == id) {
                if entry.revision != stage.revision {
                    stage.update(entry, now);
                }
            }
        }

        for entry in wanted {
            if !self.stages.iter().any(|s| s.id == Some(entry.id)) {
                self.stages.push(Stage::new(entry, self.link_seed, now));
            }
        }
    }

    /// Takes stage `i` out of the chain. What it still holds goes to the back
    /// of the next stage's queue (everything there is older), or a closing
    /// toxic closes the stream and leaves a tombstone in its place. Returns
    /// whether a tombstone now stands at `i`.
    fn remove_stage(&mut self, i: usize) -> bool {
        let mut stage = self.stages.remove(i);
        let removal = match (&stage.transform, stage.active && !stage.closed) {
            (Some(transform), true) => transform.on_remove(),
            _ => Removal::HandOver,
        };
        if !stage.closed {
            let next_queue = match self.stages.get_mut(i) {
                Some(next) => &mut next.queue,
                None => &mut self.outbox,
            };
            match removal {
                Removal::HandOver => {
                    next_queue.extend(stage.queue.drain(..));
                    return false;
                }
                Removal::Close => next_queue.push_back(Item::End(End::Close)),
            }
        }
        self.stages.insert(i, Stage::tombstone());
        true
    }

    /// Moves items through the stages as far as they can go at `now`.
    /// Returns the earliest instant a stage is waiting for, if any.
    pub(crate) fn advance(&mut self, now: Instant) -> Option<Instant> {
        if self.stages.is_empty() {
            return None;
        }
        for _ in 0..MAX_PASSES {
            let mut progressed = false;
            let mut wake = None;
            for i in 0..self.stages.len() {
                let (head, tail) = self.stages.split_at_mut(i + 1);
                let stage = &mut head[i];
                let out = match tail.first_mut() {
                    Some(next) => {
                        let room = next.room();
                        Outlet::new(&mut next.queue, room)
                    }
                    None => Outlet::new(&mut self.outbox, OUTBOX_CAP),
                };
                let result = stage.step(now, out);
                progressed |= result.progressed;
                wake = earliest(wake, result.wake);
            }
            if !progressed {
                return wake;
            }
        }
        // Still moving after the bound: come back at once rather than spin.
        Some(now)
    }

    /// Number of stages (tombstones included); 0 means a plain pipe.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stages.len()
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::{Chunk, LimitData, Slicer, Timeout};
    use crate::Latency;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(id: u64, stream: Stream, kind: ToxicKind) -> ToxicEntry {
        ToxicEntry {
            id,
            revision: 0,
            name: format!("t{id}"),
            stream,
            toxicity: 1.0,
            kind,
        }
    }

    fn data(bytes: &[u8], at: Instant) -> Item {
        Item::Data(Chunk {
            data: Bytes::copy_from_slice(bytes),
            at,
        })
    }

    /// Writes out everything in the outbox, as the link would.
    fn drain(chain: &mut Chain) -> (Vec<u8>, Option<End>) {
        let mut bytes = Vec::new();
        let mut end = None;
        while let Some(item) = chain.outbox.pop_front() {
            match item {
                Item::Data(c) => bytes.extend_from_slice(&c.data),
                Item::End(e) => end = Some(e),
            }
        }
        (bytes, end)
    }

    #[test]
    fn plain_chain_passes_through() {
        let now = Instant::now();
        let mut chain = Chain::new(Stream::Upstream, 1, &Snapshot::default(), now);
        assert!(chain.can_accept());
        chain.push(data(b"abc", now));
        assert!(!chain.can_accept());
        assert_eq!(chain.advance(now), None);
        assert_eq!(drain(&mut chain), (b"abc".to_vec(), None));
    }

    #[test]
    fn only_toxics_of_the_link_direction_apply() {
        let now = Instant::now();
        let snapshot = Snapshot {
            toxics: vec![entry(
                1,
                Stream::Downstream,
                ToxicKind::Timeout(Timeout { timeout: 0 }),
            )],
        };
        let mut chain = Chain::new(Stream::Upstream, 1, &snapshot, now);
        assert_eq!(chain.len(), 0);
        chain.push(data(b"abc", now));
        chain.advance(now);
        assert_eq!(drain(&mut chain).0, b"abc");
    }

    #[test]
    fn removing_a_toxic_hands_its_queue_on_in_order() {
        let t0 = Instant::now();
        let latency = entry(
            1,
            Stream::Upstream,
            ToxicKind::Latency(Latency {
                latency: 1000,
                jitter: 0,
            }),
        );
        let slicer = entry(
            2,
            Stream::Upstream,
            ToxicKind::Slicer(Slicer {
                average_size: 1,
                size_variation: 0,
                delay: 1_000_000,
            }),
        );
        let mut snapshot = Snapshot {
            toxics: vec![latency.clone(), slicer.clone()],
        };
        let mut chain = Chain::new(Stream::Upstream, 9, &snapshot, t0);
        for part in [&b"ab"[..], b"cd", b"ef"] {
            chain.push(data(part, t0));
        }
        let mut out = Vec::new();
        // After the latency, the slicer lets one byte out per second.
        let mut now = t0;
        for _ in 0..3 {
            if let Some(at) = chain.advance(now) {
                now = at;
            }
            out.extend(drain(&mut chain).0);
        }
        assert_eq!(out, b"ab");
        // Remove the latency (now empty) and then the slicer mid-chunk.
        snapshot.toxics.retain(|t| t.id != 1);
        chain.reconcile(&snapshot, now);
        snapshot.toxics.clear();
        chain.reconcile(&snapshot, now);
        assert_eq!(chain.len(), 0);
        for _ in 0..10 {
            chain.advance(now);
            out.extend(drain(&mut chain).0);
        }
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn a_stream_closed_by_a_toxic_stays_closed_after_removal() {
        let now = Instant::now();
        let limit = entry(
            1,
            Stream::Upstream,
            ToxicKind::LimitData(LimitData { bytes: 2 }),
        );
        let mut snapshot = Snapshot {
            toxics: vec![limit],
        };
        let mut chain = Chain::new(Stream::Upstream, 1, &snapshot, now);
        chain.push(data(b"abc", now));
        chain.advance(now);
        assert_eq!(drain(&mut chain), (b"ab".to_vec(), Some(End::Close)));
        snapshot.toxics.clear();
        chain.reconcile(&snapshot, now);
        chain.push(data(b"more", now));
        chain.advance(now);
        assert_eq!(drain(&mut chain), (vec![], None));
    }

    #[test]
    fn removing_a_timeout_closes_the_stream() {
        let now = Instant::now();
        let timeout = entry(
            1,
            Stream::Upstream,
            ToxicKind::Timeout(Timeout { timeout: 0 }),
        );
        let mut snapshot = Snapshot {
            toxics: vec![timeout],
        };
        let mut chain = Chain::new(Stream::Upstream, 1, &snapshot, now);
        chain.push(data(b"abc", now));
        chain.advance(now);
        assert_eq!(drain(&mut chain), (vec![], None));
        snapshot.toxics.clear();
        chain.reconcile(&snapshot, now);
        chain.advance(now);
        assert_eq!(drain(&mut chain), (vec![], Some(End::Close)));
    }

    #[test]
    fn toxicity_zero_passes_everything_and_one_applies() {
        let now = Instant::now();
        let mut spared = entry(
            1,
            Stream::Upstream,
            ToxicKind::Timeout(Timeout { timeout: 0 }),
        );
        spared.toxicity = 0.0;
        let mut chain = Chain::new(
            Stream::Upstream,
            1,
            &Snapshot {
                toxics: vec![spared],
            },
            now,
        );
        chain.push(data(b"abc", now));
        chain.advance(now);
        assert_eq!(drain(&mut chain).0, b"abc");
    }

    #[test]
    fn latency_delays_by_the_configured_amount() {
        let t0 = Instant::now();
        let latency = entry(
            1,
            Stream::Upstream,
            ToxicKind::Latency(Latency {
                latency: 100,
                jitter: 0,
            }),
        );
        let mut chain = Chain::new(
            Stream::Upstream,
            1,
            &Snapshot {
                toxics: vec![latency],
            },
            t0,
        );
        chain.push(data(b"x", t0));
        assert_eq!(chain.advance(t0), Some(t0 + Duration::from_millis(100)));
        assert!(chain.outbox.is_empty());
        chain.advance(t0 + Duration::from_millis(100));
        assert_eq!(drain(&mut chain).0, b"x");
    }
}
