//! `slicer`: cut each chunk into slices of about `average_size` bytes, with a
//! pause of `delay` µs after each slice.
//!
//! The cut points follow Toxiproxy's recursive halving: a span longer than
//! `average_size + size_variation` is split near its middle, moved by a random
//! amount in `[-size_variation, size_variation)`, and each half is cut again.
//! That gives evenly varying slices with no bias towards a small first or
//! last one. The halving here uses an explicit stack, never recursion, and
//! never yields an empty slice.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::{later, pass_end, Chunk, Cx, Item};

pub use gauntlet_model::toxic::Slicer;

/// The sizes of the slices of a chunk of `len` bytes, in order.
pub(crate) fn slice_sizes(attrs: &Slicer, len: usize, rng: &mut impl Rng) -> VecDeque<usize> {
    let average = usize::try_from(attrs.average_size.max(1)).unwrap_or(usize::MAX);
    let variation = usize::try_from(attrs.size_variation).unwrap_or(usize::MAX);
    let mut sizes = VecDeque::new();
    // Spans still to cut, left-most on top.
    let mut spans = vec![(0usize, len)];
    while let Some((start, end)) = spans.pop() {
        let size = end - start;
        if size <= average.saturating_add(variation) || size < 2 {
            if size > 0 {
                sizes.push_back(size);
            }
            continue;
        }
        let shift = if variation > 0 {
            let v = i128::try_from(variation).unwrap_or(i128::MAX / 4);
            rng.gen_range(0..2 * v) - v
        } else {
            0
        };
        let mid = (start + size / 2) as i128 + shift;
        let mid = mid.clamp(start as i128 + 1, end as i128 - 1) as usize;
        spans.push((mid, end));
        spans.push((start, mid));
    }
    sizes
}

pub(crate) struct State {
    attrs: Slicer,
    /// Sizes of the slices still to cut from the head chunk.
    plan: VecDeque<usize>,
    /// When the pause after the last slice ends.
    next_at: Option<Instant>,
}

impl State {
    pub(crate) fn new(attrs: Slicer) -> Self {
        Self {
            attrs,
            plan: VecDeque::new(),
            next_at: None,
        }
    }

    pub(crate) fn update(&mut self, attrs: Slicer) {
        self.attrs = attrs;
        self.plan.clear();
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        loop {
            if let Some(at) = self.next_at {
                if cx.now < at && !cx.input.is_empty() {
                    return Some(at);
                }
            }
            if pass_end(cx) {
                return None;
            }
            let Some(Item::Data(chunk)) = cx.input.front_mut() else {
                return None;
            };
            if !cx.out.has_room() {
                return None;
            }
            if self.plan.is_empty() {
                self.plan = slice_sizes(&self.attrs, chunk.data.len(), cx.rng);
            }
            let size = self.plan.pop_front().unwrap_or(chunk.data.len());
            if size >= chunk.data.len() || self.plan.is_empty() {
                self.plan.clear();
                if let Some(item) = cx.input.pop_front() {
                    cx.out.push(item);
                }
            } else {
                let at = chunk.at;
                let data = chunk.data.split_to(size);
                cx.out.push(Item::Data(Chunk { data, at }));
            }
            self.next_at = (self.attrs.delay > 0)
                .then(|| later(cx.now, Duration::from_micros(self.attrs.delay)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::ToxicKind;
    use rand::SeedableRng;

    #[test]
    fn sizes_cover_the_chunk_and_stay_near_the_average() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let slicer = Slicer {
            average_size: 10,
            size_variation: 4,
            delay: 0,
        };
        for len in [0usize, 1, 13, 14, 15, 100, 4096, 32 * 1024] {
            let sizes = slice_sizes(&slicer, len, &mut rng);
            assert_eq!(sizes.iter().sum::<usize>(), len);
            assert!(
                sizes.iter().all(|s| (1..=14).contains(s)),
                "{len}: {sizes:?}"
            );
        }
    }

    #[test]
    fn degenerate_attributes_terminate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for slicer in [
            Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            Slicer {
                average_size: 1,
                size_variation: 1_000_000,
                delay: 0,
            },
            Slicer {
                average_size: u64::MAX,
                size_variation: u64::MAX,
                delay: 0,
            },
        ] {
            let sizes = slice_sizes(&slicer, 32 * 1024, &mut rng);
            assert_eq!(sizes.iter().sum::<usize>(), 32 * 1024);
        }
    }

    #[test]
    fn emits_slices_with_a_pause_after_each() {
        let attrs = Slicer {
            average_size: 2,
            size_variation: 0,
            delay: 500,
        };
        let mut h = Harness::new(ToxicKind::Slicer(attrs));
        h.data(b"abcdefgh");
        let mut slices = Vec::new();
        for _ in 0..20 {
            let next = h.step();
            slices.extend(h.take().0);
            match next {
                Some(at) => h.now = at,
                None => break,
            }
        }
        assert_eq!(slices.concat(), b"abcdefgh");
        assert_eq!(slices.len(), 4);
    }
}
