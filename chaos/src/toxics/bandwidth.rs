//! `bandwidth`: cap the throughput at `rate` KB/s.
//!
//! Each slice of `n` bytes is released `n / rate` milliseconds after the
//! previous one finished (or after it arrived, if the link was idle), so the
//! schedule does not drift when the timer fires late. As in Toxiproxy, a chunk
//! bigger than 100 ms worth of data is cut into 100 ms slices, and a rate of 0
//! means no limit.

use std::time::Duration;

use tokio::time::Instant;

use super::{later, pass_end, Chunk, Cx, Item};

pub use gauntlet_model::toxic::Bandwidth;

pub(crate) struct State {
    attrs: Bandwidth,
    /// When the head chunk became available to this toxic.
    head_since: Option<Instant>,
    /// The slice being timed: when it is released, and its length.
    slice: Option<(Instant, usize)>,
    /// When the previous slice was released.
    last_release: Option<Instant>,
}

impl State {
    pub(crate) fn new(attrs: Bandwidth) -> Self {
        Self {
            attrs,
            head_since: None,
            slice: None,
            last_release: None,
        }
    }

    pub(crate) fn update(&mut self, attrs: Bandwidth) {
        self.attrs = attrs;
        self.slice = None;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        loop {
            if pass_end(cx) {
                return None;
            }
            let Some(Item::Data(chunk)) = cx.input.front_mut() else {
                return None;
            };
            let rate = self.attrs.rate;
            if rate == 0 || chunk.data.is_empty() {
                if !cx.out.has_room() {
                    return None;
                }
                if let Some(item) = cx.input.pop_front() {
                    cx.out.push(item);
                }
                continue;
            }
            let (release, len) = match self.slice {
                Some(slice) => slice,
                None => {
                    let since = *self.head_since.get_or_insert(cx.now);
                    let start = self.last_release.map_or(since, |last| last.max(since));
                    // 100 ms worth of data at this rate.
                    let max_slice = usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX);
                    let len = chunk.data.len().min(max_slice);
                    let nanos = (len as u128 * 1_000_000) / u128::from(rate);
                    let release = later(
                        start,
                        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
                    );
                    self.slice = Some((release, len));
                    (release, len)
                }
            };
            if cx.now < release {
                return Some(release);
            }
            if !cx.out.has_room() {
                return None;
            }
            let at = chunk.at;
            if len >= chunk.data.len() {
                if let Some(item) = cx.input.pop_front() {
                    cx.out.push(item);
                }
                self.head_since = None;
            } else {
                let data = chunk.data.split_to(len);
                cx.out.push(Item::Data(Chunk { data, at }));
                // The rest of the chunk is already waiting.
                self.head_since = Some(release);
            }
            self.slice = None;
            self.last_release = Some(release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::ToxicKind;

    #[test]
    fn releases_bytes_at_the_rate_in_100ms_slices() {
        // 10 KB/s: 1000 bytes per 100 ms slice.
        let mut h = Harness::new(ToxicKind::Bandwidth(Bandwidth { rate: 10 }));
        h.data(&[7u8; 2500]);
        let start = h.now;
        let mut released = Vec::new();
        for _ in 0..10 {
            let next = h.step();
            for c in h.take().0 {
                released.push((h.now - start, c.len()));
            }
            match next {
                Some(at) => h.now = at,
                None => break,
            }
        }
        assert_eq!(
            released,
            vec![
                (Duration::from_millis(100), 1000),
                (Duration::from_millis(200), 1000),
                (Duration::from_millis(250), 500),
            ]
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut h = Harness::new(ToxicKind::Bandwidth(Bandwidth { rate: 0 }));
        h.data(b"abc");
        assert_eq!(h.step(), None);
        assert_eq!(h.take().0, vec![b"abc".to_vec()]);
    }
}
