//! The client's history: every request the load made, Jepsen style, as
//! invoked and how it completed.

use serde::{Deserialize, Serialize};

pub use gauntlet_model::{OpKind, Outcome};

/// One client operation. Times are microseconds from the run's start
/// ([`LoadResult::started_at`](crate::LoadResult::started_at)).
///
/// Kept small (about 100 bytes; strings only where they carry something),
/// as a run holds one per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique in the run, in the order operations were invoked.
    pub id: u64,
    /// The journey it belongs to (the open model's arrival index); `None`
    /// for the set-up before the load.
    pub journey: Option<u64>,
    /// What it did.
    pub kind: OpKind,
    /// When it was meant to be sent: the arrival's slot for a journey's
    /// first request in the open model, otherwise when it was sent.
    /// Latency counts from here (or from `invoke_us`, if that is earlier:
    /// a user is woken up to a few tenths of a millisecond ahead of its
    /// slot, see `wake::LEAD`), and the figures
    /// place the operation in the second this falls in.
    pub intended_us: u64,
    /// When it was sent.
    pub invoke_us: u64,
    /// When its answer was read, or it was given up on.
    pub complete_us: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The order it created or read, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<i64>,
    /// The `Idempotency-Key` it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<Box<str>>,
    /// What went wrong, or the order's state, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<str>>,
}

impl Operation {
    /// From the intended send (or the actual one, if earlier) to
    /// completion, in microseconds.
    pub fn latency_us(&self) -> u64 {
        self.complete_us
            .saturating_sub(self.intended_us.min(self.invoke_us))
    }
}

/// The longest `detail` kept; an error body past it is cut.
pub(crate) const MAX_DETAIL: usize = 160;

/// `text`, cut to [`MAX_DETAIL`] bytes on a character boundary.
pub(crate) fn detail(text: &str) -> Box<str> {
    if text.len() <= MAX_DETAIL {
        return text.into();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end]).into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_stays_small() {
        assert!(std::mem::size_of::<Operation>() <= 112);
    }

    #[test]
    fn wire_format_is_pinned() {
        let op = Operation {
            id: 3,
            journey: Some(9),
            kind: OpKind::PlaceOrder,
            intended_us: 10,
            invoke_us: 12,
            complete_us: 40,
            outcome: Outcome::Ok,
            status: Some(202),
            order_id: Some(5),
            idempotency_key: Some("k-9".into()),
            detail: Some("PENDING".into()),
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(
            json,
            r#"{"id":3,"journey":9,"kind":"place_order","intended_us":10,"invoke_us":12,"complete_us":40,"outcome":"ok","status":202,"order_id":5,"idempotency_key":"k-9","detail":"PENDING"}"#
        );
        assert_eq!(serde_json::from_str::<Operation>(&json).unwrap(), op);
        assert_eq!(op.latency_us(), 30);
    }

    #[test]
    fn details_are_cut_on_a_char_boundary() {
        let long = "é".repeat(200);
        let d = detail(&long);
        assert!(d.len() <= MAX_DETAIL + 3);
        assert!(d.ends_with("..."));
    }
}
