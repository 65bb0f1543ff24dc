//! `limit_data`: let `bytes` bytes through, then close the connection.
//!
//! The count is kept per link and survives updates of the toxic, as
//! Toxiproxy's per-stub state does. As there, the limit is checked when data
//! arrives: with `bytes` = 0 the connection closes on the first chunk.

use tokio::time::Instant;

use super::{pass_end, Cx, End, Item};

pub use gauntlet_model::toxic::LimitData;

pub(crate) struct State {
    attrs: LimitData,
    /// Bytes already let through on this link.
    sent: u64,
}

impl State {
    pub(crate) fn new(attrs: LimitData) -> Self {
        Self { attrs, sent: 0 }
    }

    pub(crate) fn update(&mut self, attrs: LimitData) {
        self.attrs = attrs;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        loop {
            if pass_end(cx) {
                return None;
            }
            if cx.input.is_empty() || !cx.out.has_room() {
                return None;
            }
            let Some(Item::Data(mut chunk)) = cx.input.pop_front() else {
                return None;
            };
            let remaining = self.attrs.bytes.saturating_sub(self.sent);
            let take = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(chunk.data.len());
            chunk.data.truncate(take);
            self.sent += take as u64;
            if take > 0 {
                cx.out.push(Item::Data(chunk));
            }
            if self.sent >= self.attrs.bytes {
                cx.out.push(Item::End(End::Close));
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::ToxicKind;

    #[test]
    fn lets_exactly_the_limit_through_then_closes() {
        let mut h = Harness::new(ToxicKind::LimitData(LimitData { bytes: 5 }));
        h.data(b"abc");
        h.data(b"defg");
        h.data(b"hij");
        assert_eq!(h.step(), None);
        assert_eq!(
            h.take(),
            (vec![b"abc".to_vec(), b"de".to_vec()], Some(End::Close))
        );
    }

    #[test]
    fn zero_closes_on_the_first_chunk() {
        let mut h = Harness::new(ToxicKind::LimitData(LimitData { bytes: 0 }));
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![], None));
        h.data(b"a");
        h.step();
        assert_eq!(h.take(), (vec![], Some(End::Close)));
    }
}
