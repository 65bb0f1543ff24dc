//! What a client operation did and how it ended: the words of the load
//! generator's records and of a run's `history.json` alike.

use serde::{Deserialize, Serialize};

/// What one operation did, which is also the endpoint it called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /api/users`
    CreateUser,
    /// `GET /api/products` (also read as `browse`)
    #[serde(alias = "browse")]
    ListProducts,
    /// `POST /api/orders`
    PlaceOrder,
    /// `GET /api/orders/{id}` (also read as `poll_order`)
    #[serde(alias = "poll_order")]
    GetOrder,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 4] = [
        OpKind::CreateUser,
        OpKind::ListProducts,
        OpKind::PlaceOrder,
        OpKind::GetOrder,
    ];

    /// The endpoint's name, as latency figures are keyed.
    pub fn endpoint(self) -> &'static str {
        match self {
            OpKind::CreateUser => "POST /api/users",
            OpKind::ListProducts => "GET /api/products",
            OpKind::PlaceOrder => "POST /api/orders",
            OpKind::GetOrder => "GET /api/orders/{id}",
        }
    }
}

/// How an operation ended, as a checker must read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx answer: it took effect (a 202 pending order included).
    Ok,
    /// A 4xx or 5xx answer, or a request that never left (no connection
    /// could be made): it did not take effect.
    Fail,
    /// No answer: a timeout, a connection lost after the request was sent,
    /// or the run cancelled while it was in flight. It may or may not have
    /// taken effect.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_outcomes_have_one_spelling_each_and_the_journey_aliases() {
        let kinds: Vec<String> = OpKind::ALL
            .iter()
            .map(|k| serde_json::to_string(k).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "\"create_user\"",
                "\"list_products\"",
                "\"place_order\"",
                "\"get_order\""
            ]
        );
        assert_eq!(
            serde_json::from_str::<OpKind>("\"browse\"").unwrap(),
            OpKind::ListProducts
        );
        assert_eq!(
            serde_json::from_str::<OpKind>("\"poll_order\"").unwrap(),
            OpKind::GetOrder
        );
        assert_eq!(OpKind::GetOrder.endpoint(), "GET /api/orders/{id}");
        assert_eq!(
            serde_json::to_string(&Outcome::Unknown).unwrap(),
            "\"unknown\""
        );
    }
}
