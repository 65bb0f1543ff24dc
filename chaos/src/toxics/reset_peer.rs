//! `reset_peer`: once data (or the end of the stream) reaches the toxic, wait
//! `timeout`, then reset the connection: the sockets are closed with linger 0
//! so the kernel sends RST, and both peers see "connection reset".
//!
//! Unlike Toxiproxy, data that arrived while the reset was pending is kept in
//! the queue rather than discarded, so removing the toxic before it fires
//! loses nothing; once it fires, the reset discards it anyway.

use std::time::Duration;

use tokio::time::Instant;

use super::{later, Cx, End, Item};

pub use gauntlet_model::toxic::ResetPeer;

pub(crate) struct State {
    attrs: ResetPeer,
    /// When the first item reached the toxic.
    armed: Option<Instant>,
}

impl State {
    pub(crate) fn new(attrs: ResetPeer) -> Self {
        Self { attrs, armed: None }
    }

    pub(crate) fn update(&mut self, attrs: ResetPeer) {
        self.attrs = attrs;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        let armed = match self.armed {
            Some(t) => t,
            None if cx.input.is_empty() => return None,
            None => *self.armed.insert(cx.now),
        };
        let due = later(armed, Duration::from_millis(self.attrs.timeout));
        if cx.now < due {
            return Some(due);
        }
        cx.input.clear();
        cx.out.push(Item::End(End::Reset));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::ToxicKind;

    #[test]
    fn waits_for_data_then_resets_after_the_timeout() {
        let mut h = Harness::new(ToxicKind::ResetPeer(ResetPeer { timeout: 20 }));
        assert_eq!(h.step(), None);
        h.advance(Duration::from_secs(1));
        h.data(b"x");
        assert_eq!(h.step(), Some(h.now + Duration::from_millis(20)));
        assert_eq!(h.input.len(), 1, "pending data is kept");
        h.advance(Duration::from_millis(20));
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![], Some(End::Reset)));
    }
}
