//! The two ways an order is carried out.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How an order is carried out: `sync`, a saga over HTTP while the client
/// waits; `async`, events through Kafka after a 202.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    #[default]
    Sync,
    Async,
}

impl Flow {
    /// Both flows, sync first.
    pub const ALL: [Flow; 2] = [Flow::Sync, Flow::Async];

    /// `"sync"` or `"async"`, as the orders API and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Sync => "sync",
            Flow::Async => "async",
        }
    }

    /// True for the flow that runs on the event path (Kafka).
    pub fn uses_events(self) -> bool {
        self == Flow::Async
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_written_in_lowercase() {
        for flow in Flow::ALL {
            assert_eq!(serde_json::to_string(&flow).unwrap(), format!("\"{flow}\""));
        }
        assert_eq!(Flow::default(), Flow::Sync);
        assert!(Flow::Async.uses_events() && !Flow::Sync.uses_events());
        assert!(serde_json::from_str::<Flow>("\"both\"").is_err());
    }
}
