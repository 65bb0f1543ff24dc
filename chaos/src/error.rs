//! The crate's one error type and how it maps onto the Toxiproxy API.

use axum::http::StatusCode;

/// Everything that can go wrong when driving the proxy, in process or over
/// HTTP.
///
/// `Display` names the culprit for Rust callers; [`ChaosError::api_message`]
/// gives the exact message Toxiproxy puts in its error bodies, so clients that
/// match on it keep working.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// No proxy has this name.
    #[error("proxy not found: {0:?}")]
    ProxyNotFound(String),
    /// The proxy exists but has no toxic of this name.
    #[error("toxic not found: {toxic:?} on proxy {proxy:?}")]
    ToxicNotFound {
        /// The proxy that was searched.
        proxy: String,
        /// The toxic name that was asked for.
        toxic: String,
    },
    /// A proxy of this name already exists; delete it first or use populate.
    #[error("proxy already exists: {0:?}")]
    ProxyExists(String),
    /// A toxic of this name already exists on the proxy (names are unique
    /// across both streams); remove it or pick another name.
    #[error("toxic already exists: {toxic:?} on proxy {proxy:?}")]
    ToxicExists {
        /// The proxy the toxic was added to.
        proxy: String,
        /// The clashing name.
        toxic: String,
    },
    /// A required field was missing or empty (`name`, `upstream`, ...).
    #[error("missing required field: {0}")]
    MissingField(String),
    /// The request body could not be read as what the endpoint expects.
    #[error("bad request body: {0}")]
    BadRequest(String),
    /// `stream` (or its alias `direction`) was neither `upstream` nor
    /// `downstream`.
    #[error("stream was invalid, can be either upstream or downstream (got {0:?})")]
    InvalidStream(String),
    /// The toxic `type` is not one this proxy implements.
    #[error("invalid toxic type {0:?}: expected latency, bandwidth, slow_close, timeout, reset_peer, slicer or limit_data")]
    InvalidToxicType(String),
    /// The listen address could not be resolved or bound (in use, no such
    /// host, no permission).
    #[error("listen tcp {addr}: {source}")]
    Listen {
        /// The listen address as given.
        addr: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O failure (serving the API, for instance).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<gauntlet_model::UnknownStream> for ChaosError {
    fn from(e: gauntlet_model::UnknownStream) -> Self {
        Self::InvalidStream(e.0)
    }
}

impl ChaosError {
    /// The HTTP status Toxiproxy answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ProxyNotFound(_) | Self::ToxicNotFound { .. } => StatusCode::NOT_FOUND,
            Self::ProxyExists(_) | Self::ToxicExists { .. } => StatusCode::CONFLICT,
            Self::MissingField(_)
            | Self::BadRequest(_)
            | Self::InvalidStream(_)
            | Self::InvalidToxicType(_) => StatusCode::BAD_REQUEST,
            Self::Listen { .. } | Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the API's error body, worded as Toxiproxy words it.
    pub fn api_message(&self) -> String {
        match self {
            Self::ProxyNotFound(_) => "proxy not found".into(),
            Self::ToxicNotFound { .. } => "toxic not found".into(),
            Self::ProxyExists(_) => "proxy already exists".into(),
            Self::ToxicExists { .. } => "toxic already exists".into(),
            Self::InvalidStream(_) => {
                "stream was invalid, can be either upstream or downstream".into()
            }
            Self::InvalidToxicType(_) => "invalid toxic type".into(),
            Self::MissingField(_) | Self::BadRequest(_) | Self::Listen { .. } | Self::Io(_) => {
                self.to_string()
            }
        }
    }
}
