//! [`ServiceClient`]: the one way a service calls another. Every call goes
//! through the link's resilience [`Policy`] (breaker, per-attempt timeout,
//! retries with jittered backoff), and every failure is classified the same
//! way everywhere:
//!
//! | what happened                         | retried?        | breaker  | caller sees |
//! |---------------------------------------|-----------------|----------|-------------|
//! | 2xx                                   | –               | success  | `Ok`        |
//! | 4xx (the request was wrong)           | no              | success  | `Status`    |
//! | 5xx, refused connection               | if retryable    | failure  | `Unavailable` |
//!
//! (`Unavailable` says whether any attempt reached the target: a refused
//! connection certainly did nothing, a 5xx may have.)
//! | timeout, connection lost mid-request  | if retryable    | failure  | `Unknown`   |
//! | breaker open                          | no              | –        | `Rejected`  |
//!
//! A breaker that opens *between* attempts, after one that may have reached
//! the target (timed out, lost its reply, 5xx), makes the call `Unknown`,
//! not `Rejected`: the earlier attempt may have acted.
//!
//! `Unknown` is kept apart from `Unavailable` on purpose: after a timeout or a
//! lost reply the target may have acted, so only an idempotent follow-up is safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use gauntlet_resilience::{CallError, Failure, Policy, ResilienceConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::error::{ApiError, ErrorBody};

/// The header that makes a non-idempotent call safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Why a call did not return a 2xx.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{link}: circuit breaker open, call not attempted")]
    Rejected { link: String },
    #[error("{link}: outcome unknown after {attempts} attempt(s): {detail}")]
    Unknown {
        link: String,
        attempts: u32,
        detail: String,
    },
    #[error("{link}: unavailable after {attempts} attempt(s): {detail}")]
    Unavailable {
        link: String,
        attempts: u32,
        detail: String,
        /// Whether any attempt reached the target (and so may have acted).
        reached: bool,
    },
    #[error("{link}: answered {status}: {}", body.error)]
    Status {
        link: String,
        status: StatusCode,
        body: ErrorBody,
    },
}

impl ClientError {
    /// The status the target answered with, when it answered with a 4xx.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the target may have carried out the request: a timeout,
    /// a lost reply, or a 5xx. False when the breaker or a refused
    /// connection kept every attempt from reaching it, or it answered 4xx.
    pub fn maybe_applied(&self) -> bool {
        match self {
            Self::Unknown { .. } => true,
            Self::Unavailable { reached, .. } => *reached,
            Self::Rejected { .. } | Self::Status { .. } => false,
        }
    }
}

impl From<ClientError> for ApiError {
    /// A dependency's failure, as our own caller should see it.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Status { status, body, .. } => ApiError { status, body },
            ClientError::Rejected { .. } | ClientError::Unavailable { .. } => {
                ApiError::unavailable(e.to_string())
            }
            ClientError::Unknown { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string())
            }
        }
    }
}

/// A response as received, for pass-through (the gateway).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The failure of one attempt, before the policy decides about retrying.
#[derive(Debug)]
enum AttemptError {
    Refused(String),
    Lost(String),
    Server(StatusCode, Bytes),
    Client(StatusCode, Bytes),
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(d) => write!(f, "connection refused: {d}"),
            Self::Lost(d) => write!(f, "no reply: {d}"),
            Self::Server(s, b) | Self::Client(s, b) => {
                write!(f, "{s}: {}", String::from_utf8_lossy(b))
            }
        }
    }
}

/// A client for one link (`orders->payments`, `gateway->catalog`, ...).
#[derive(Clone, Debug)]
pub struct ServiceClient {
    link: String,
    base: String,
    http: reqwest::Client,
    policy: Arc<Policy>,
}

impl ServiceClient {
    /// `base` is the target's root URL, e.g. `http://127.0.0.1:7003`.
    pub fn new(
        link: impl Into<String>,
        base: impl Into<String>,
        http: reqwest::Client,
        config: ResilienceConfig,
        seed: u64,
    ) -> Self {
        let link = link.into();
        let policy = Arc::new(Policy::new(link.clone(), config, seed));
        Self {
            link,
            base: base.into().trim_end_matches('/').to_string(),
            http,
            policy,
        }
    }

    pub fn link(&self) -> &str {
        &self.link
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `GET path`, decoded as JSON. GETs are always retryable.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let raw = self
            .send(Method::GET, path, HeaderMap::new(), None, true)
            .await?;
        self.decode(&raw)
    }

    /// `POST path` with a JSON body. Retried only when it carries an
    /// idempotency key or `idempotent` says the operation is safe to repeat.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
        idempotent: bool,
    ) -> Result<T, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        if let Some(key) = idempotency_key {
            if let Ok(v) = key.parse() {
                headers.insert(IDEMPOTENCY_KEY, v);
            }
        }
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Unavailable {
            link: self.link.clone(),
            attempts: 0,
            detail: format!("cannot encode request: {e}"),
            reached: false,
        })?;
        let retryable = idempotent || idempotency_key.is_some();
        let raw = self
            .send(
                Method::POST,
                path,
                headers,
                Some(Bytes::from(bytes)),
                retryable,
            )
            .await?;
        self.decode(&raw)
    }

    /// Sends one request under the policy and returns the 2xx response as is.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Option<Bytes>,
        retryable: bool,
    ) -> Result<RawResponse, ClientError> {
        // One client span per call (its attempts inside it), and its
        // context in the request's `traceparent`, so the callee's server
        // span is its child.
        let span = tracing::info_span!(
            "call",
            otel.name = %format!("{method} {}", self.link),
            otel.kind = "client",
            link = %self.link,
            http.request.method = %method,
            url.path = %path_and_query,
        );
        if let Some(tp) = gauntlet_events::trace::traceparent_of(&span) {
            if let Ok(v) = HeaderValue::from_str(&tp) {
                headers.insert(gauntlet_events::trace::TRACEPARENT, v);
            }
        }
        self.send_in(method, path_and_query, headers, body, retryable)
            .instrument(span)
            .await
    }

    async fn send_in(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
        retryable: bool,
    ) -> Result<RawResponse, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        // `reached`: some attempt got to the target. `pending`: the last
        // attempt started and never ended, because its timeout dropped it
        // mid-request; it may well have reached the target.
        let reached = AtomicBool::new(false);
        let pending = AtomicBool::new(false);
        let result = self
            .policy
            .call(retryable, |_attempt| {
                let mut req = self
                    .http
                    .request(method.clone(), &url)
                    .headers(headers.clone());
                if let Some(b) = &body {
                    req = req.body(b.clone());
                }
                let (reached, pending) = (&reached, &pending);
                async move {
                    if pending.swap(true, Ordering::Relaxed) {
                        reached.store(true, Ordering::Relaxed);
                    }
                    let resp = req.send().await.map_err(|e| {
                        pending.store(false, Ordering::Relaxed);
                        if e.is_connect() {
                            Failure::Transient(AttemptError::Refused(error_chain(&e)))
                        } else {
                            reached.store(true, Ordering::Relaxed);
                            Failure::Transient(AttemptError::Lost(error_chain(&e)))
                        }
                    })?;
                    pending.store(false, Ordering::Relaxed);
                    reached.store(true, Ordering::Relaxed);
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp
                        .bytes()
                        .await
                        .map_err(|e| Failure::Transient(AttemptError::Lost(error_chain(&e))))?;
                    if status.is_server_error() {
                        Err(Failure::Transient(AttemptError::Server(status, body)))
                    } else if status.is_client_error() {
                        Err(Failure::Permanent(AttemptError::Client(status, body)))
                    } else {
                        Ok(RawResponse {
                            status,
                            headers,
                            body,
                        })
                    }
                }
            })
            .await;
        let reached = reached.load(Ordering::Relaxed) || pending.load(Ordering::Relaxed);
        result.map_err(|e| self.classify(e, reached))
    }

    fn classify(&self, e: CallError<AttemptError>, reached: bool) -> ClientError {
        let link = self.link.clone();
        match e {
            // The breaker opened between attempts: the earlier ones may
            // have acted, so the call as a whole has an unknown outcome.
            CallError::Rejected(_) if reached => ClientError::Unknown {
                link,
                attempts: self.policy.config().retry.max_attempts,
                detail: "an earlier attempt may have reached the target, then the circuit \
                         breaker opened before the retry"
                    .into(),
            },
            CallError::Rejected(_) => ClientError::Rejected { link },
            CallError::Timeout { attempts } => ClientError::Unknown {
                link,
                attempts,
                detail: format!("timed out after {:?}", self.policy.config().timeout),
            },
            CallError::Failed {
                error, attempts, ..
            } => match error {
                AttemptError::Client(status, body) => ClientError::Status {
                    link,
                    status,
                    body: error_body(status, &body),
                },
                AttemptError::Lost(detail) => ClientError::Unknown {
                    link,
                    attempts,
                    detail,
                },
                other => ClientError::Unavailable {
                    link,
                    attempts,
                    detail: other.to_string(),
                    reached,
                },
            },
        }
    }

    fn decode<T: DeserializeOwned>(&self, raw: &RawResponse) -> Result<T, ClientError> {
        serde_json::from_slice(&raw.body).map_err(|e| ClientError::Unavailable {
            link: self.link.clone(),
            attempts: 1,
            detail: format!("undecodable response: {e}"),
            reached: true,
        })
    }
}

/// Our error body from a response, or one made up from its text.
fn error_body(status: StatusCode, body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_else(|_| ErrorBody {
        error: status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        detail: String::from_utf8_lossy(body).into_owned().into(),
    })
}

/// reqwest's errors hide the cause (refused, reset, ...) in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The HTTP client every service shares: pooled keep-alive connections,
/// no proxy from the environment (all traffic is loopback), Nagle off.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
