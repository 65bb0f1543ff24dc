//! `latency`: delay every chunk by `latency` ± `jitter`.
//!
//! As in Toxiproxy, the delay counts from when the chunk was read (or released
//! by the toxic before), not from when this toxic got to it, so a burst of
//! chunks is delayed once, not once per chunk; a fresh delay is drawn for each
//! chunk, uniform in `[latency - jitter, latency + jitter)`.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::{later, pass_end, Cx, Item};

pub use gauntlet_model::toxic::Latency;

/// A delay drawn uniformly from `[latency - jitter, latency + jitter)`.
fn draw(attrs: &Latency, rng: &mut impl Rng) -> Duration {
    let latency = i128::from(attrs.latency);
    let jitter = i128::from(attrs.jitter);
    let ms = if jitter > 0 {
        latency + rng.gen_range(0..2 * jitter) - jitter
    } else {
        latency
    };
    Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

pub(crate) struct State {
    attrs: Latency,
    /// When the chunk at the head of the queue is due out.
    head_due: Option<Instant>,
}

impl State {
    pub(crate) fn new(attrs: Latency) -> Self {
        Self {
            attrs,
            head_due: None,
        }
    }

    pub(crate) fn update(&mut self, attrs: Latency) {
        self.attrs = attrs;
        self.head_due = None;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        loop {
            if pass_end(cx) {
                return None;
            }
            let Some(Item::Data(chunk)) = cx.input.front() else {
                return None;
            };
            let due = match self.head_due {
                Some(due) => due,
                None => {
                    let due = later(chunk.at, draw(&self.attrs, cx.rng));
                    self.head_due = Some(due);
                    due
                }
            };
            if cx.now < due {
                return Some(due);
            }
            if !cx.out.has_room() {
                return None;
            }
            if let Some(Item::Data(mut chunk)) = cx.input.pop_front() {
                chunk.at = due;
                cx.out.push(Item::Data(chunk));
            }
            self.head_due = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::{End, ToxicKind};

    #[test]
    fn holds_each_chunk_for_the_latency_from_its_arrival() {
        let mut h = Harness::new(ToxicKind::Latency(Latency {
            latency: 100,
            jitter: 0,
        }));
        h.data(b"a");
        h.advance(Duration::from_millis(40));
        h.data(b"b");
        let due = h.step().unwrap();
        assert_eq!(due, h.now + Duration::from_millis(60));
        assert!(h.output.is_empty());
        h.advance(Duration::from_millis(60));
        assert_eq!(h.step().unwrap(), h.now + Duration::from_millis(40));
        assert_eq!(h.take().0, vec![b"a".to_vec()]);
        h.advance(Duration::from_millis(40));
        h.end(End::Eof);
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![b"b".to_vec()], Some(End::Eof)));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let attrs = Latency {
            latency: 100,
            jitter: 10,
        };
        let mut rng = rand::rngs::mock::StepRng::new(0, 0x1234_5678_9ABC_DEF1);
        for _ in 0..1000 {
            let d = draw(&attrs, &mut rng).as_millis();
            assert!((90..110).contains(&d), "{d}");
        }
        let big = Latency {
            latency: 5,
            jitter: 10,
        };
        for _ in 0..100 {
            assert!(draw(&big, &mut rng) <= Duration::from_millis(15));
        }
    }
}
