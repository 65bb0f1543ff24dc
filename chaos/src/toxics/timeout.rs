//! `timeout`: swallow all data, and close the connection after `timeout`
//! (never, when it is 0).
//!
//! As in Toxiproxy, removing a timeout toxic from a live connection closes
//! that connection: the data it swallowed is gone, so the stream cannot
//! sensibly go on. New connections made after the removal are unaffected.

use std::time::Duration;

use tokio::time::Instant;

use super::{later, pass_end, Cx, End, Item};

pub use gauntlet_model::toxic::Timeout;

pub(crate) struct State {
    attrs: Timeout,
    /// When the toxic took hold on this link (added, or last updated).
    started: Instant,
}

impl State {
    pub(crate) fn new(attrs: Timeout, now: Instant) -> Self {
        Self {
            attrs,
            started: now,
        }
    }

    /// An update restarts the clock, as re-running the toxic does in
    /// Toxiproxy.
    pub(crate) fn update(&mut self, attrs: Timeout, now: Instant) {
        self.attrs = attrs;
        self.started = now;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        while let Some(Item::Data(_)) = cx.input.front() {
            cx.input.pop_front();
        }
        if pass_end(cx) {
            return None;
        }
        if self.attrs.timeout == 0 {
            return None;
        }
        let due = later(self.started, Duration::from_millis(self.attrs.timeout));
        if cx.now < due {
            return Some(due);
        }
        cx.out.push(Item::End(End::Close));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::ToxicKind;

    #[test]
    fn swallows_data_then_closes() {
        let mut h = Harness::new(ToxicKind::Timeout(Timeout { timeout: 30 }));
        h.data(b"gone");
        assert_eq!(h.step(), Some(h.now + Duration::from_millis(30)));
        assert!(h.input.is_empty());
        assert_eq!(h.take(), (vec![], None));
        h.advance(Duration::from_millis(30));
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![], Some(End::Close)));
    }

    #[test]
    fn zero_never_closes_but_passes_the_source_end() {
        let mut h = Harness::new(ToxicKind::Timeout(Timeout { timeout: 0 }));
        h.data(b"gone");
        assert_eq!(h.step(), None);
        h.advance(Duration::from_secs(3600));
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![], None));
        h.end(End::Eof);
        h.step();
        assert_eq!(h.take(), (vec![], Some(End::Eof)));
    }
}
