//! `slow_close`: let data through, but hold the close for `delay`.

use std::time::Duration;

use tokio::time::Instant;

use super::{later, pass_end, Cx, Item};

pub use gauntlet_model::toxic::SlowClose;

pub(crate) struct State {
    attrs: SlowClose,
    /// When the end marker reached the head of the queue.
    end_seen: Option<Instant>,
}

impl State {
    pub(crate) fn new(attrs: SlowClose) -> Self {
        Self {
            attrs,
            end_seen: None,
        }
    }

    pub(crate) fn update(&mut self, attrs: SlowClose) {
        self.attrs = attrs;
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_, '_>) -> Option<Instant> {
        loop {
            match cx.input.front() {
                None => return None,
                Some(Item::Data(_)) => {
                    if !cx.out.has_room() {
                        return None;
                    }
                    if let Some(item) = cx.input.pop_front() {
                        cx.out.push(item);
                    }
                }
                Some(Item::End(_)) => {
                    let seen = *self.end_seen.get_or_insert(cx.now);
                    let due = later(seen, Duration::from_millis(self.attrs.delay));
                    if cx.now < due {
                        return Some(due);
                    }
                    pass_end(cx);
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::testing::Harness;
    use crate::toxics::{End, ToxicKind};

    #[test]
    fn passes_data_and_delays_the_end() {
        let mut h = Harness::new(ToxicKind::SlowClose(SlowClose { delay: 50 }));
        h.data(b"x");
        h.end(End::Eof);
        let due = h.step().unwrap();
        assert_eq!(due, h.now + Duration::from_millis(50));
        assert_eq!(h.take(), (vec![b"x".to_vec()], None));
        h.advance(Duration::from_millis(50));
        assert_eq!(h.step(), None);
        assert_eq!(h.take(), (vec![], Some(End::Eof)));
    }
}
