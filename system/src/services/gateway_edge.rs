//! The gateway's edge policies, before anything is forwarded: who the
//! caller is (a JWT, or the static API key) and whether it is over a rate
//! limit. [`Edge::admit`] says yes, or gives the answer to send instead.
//!
//! - Authentication: `Authorization: Bearer <token>`. A token equal to the
//!   configured API key is let in as it is; otherwise, with
//!   [`AuthConfig`] set, the token must be a JWT signed HS256 with the
//!   shared secret or RS256 with a key of the JWKS file, with `sub` and an
//!   `exp` not past, an `nbf` (if any) not ahead, and the configured `iss`
//!   and `aud`. A refusal is 401 with the JSON error body and the RFC 6750
//!   `WWW-Authenticate` challenge.
//! - Rate limits: GCRA (`governor`), per subject (the token's `sub`, else
//!   the client's IP address) and for everyone together; over either, 429
//!   with `Retry-After` in whole seconds.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, GatewayConfig, LimitsConfig};
use crate::error::ApiError;

/// The realm every challenge names.
pub const REALM: &str = "gauntlet";

/// How often subjects whose limit state is back to fresh are forgotten,
/// which keeps the per-subject table to the subjects seen within about
/// one burst's refill time plus this.
pub const FORGET_EVERY: Duration = Duration::from_secs(1);

/// Why the edge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("gateway: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("gateway.auth.jwks_file {}: {reason}", path.display())]
    Jwks { path: PathBuf, reason: String },
}

/// Who a request is from, as the per-subject limit counts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A verified token's `sub`.
    Token(String),
    /// The client's address (no token, or the static API key).
    Peer(IpAddr),
    /// No token and no known address (a request not from a socket).
    Unknown,
}

/// The edge policies, shared by every request.
pub struct Edge {
    api_key: Option<String>,
    verifier: Option<Verifier>,
    per_subject: Option<DefaultKeyedRateLimiter<Subject>>,
    global: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("jwt", &self.verifier.is_some())
            .field("per_subject", &self.per_subject.is_some())
            .field("global", &self.global.is_some())
            .finish()
    }
}

/// The claims the gateway reads; the library checks the others. `sub` is
/// optional here so that a token without one is refused by the validation
/// (which says which claim is missing), not as unreadable.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
}

/// Why a token is refused, in words a client can act on: the text goes
/// into the 401's body and its `WWW-Authenticate` challenge.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    /// An HS256 token, and no shared secret is configured.
    #[error("HS256 tokens are not accepted here")]
    Hs256NotAccepted,
    /// An RS256 token whose `kid` (or lack of one) names no key of the JWKS.
    #[error("no key {} in the key set", which_key(.kid))]
    UnknownKey { kid: Option<String> },
    /// An algorithm with no key configured for it.
    #[error("algorithm {alg:?} is not accepted here")]
    AlgorithmNotAccepted { alg: Algorithm },
    /// A valid token whose `sub` is missing or empty.
    #[error("the token has no sub claim")]
    NoSubject,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the signature does not match")]
    BadSignature,
    /// `iss` is not the configured issuer (`-`: none is configured).
    #[error("wrong issuer; expected {}", .expected.as_deref().unwrap_or("-"))]
    WrongIssuer { expected: Option<String> },
    /// `aud` is not the configured audience.
    #[error("wrong audience; expected {}", .expected.as_deref().unwrap_or("none"))]
    WrongAudience { expected: Option<String> },
    /// A claim the validation requires (`exp`, `sub`, `iss`, `aud`) is absent.
    #[error("the token has no {claim} claim")]
    MissingClaim { claim: String },
    #[error("the {claim} claim is malformed")]
    MalformedClaim { claim: String },
    /// The header's algorithm does not fit the key it was checked with.
    #[error("the algorithm does not fit the key")]
    AlgorithmMismatch,
    /// Not `header.payload.signature` with base64 JSON parts.
    #[error("malformed token (expected a JWT: header.payload.signature)")]
    Malformed,
    /// Anything else jsonwebtoken refuses, in its words.
    #[error("invalid token: {0}")]
    Other(#[source] jsonwebtoken::errors::Error),
}

/// `with kid <kid>`, or `without a kid`. By reference: that is how
/// thiserror passes a field to a format argument.
fn which_key(kid: &Option<String>) -> String {
    kid.as_deref()
        .map_or("without a kid".to_string(), |k| format!("with kid {k}"))
}

/// Checks JWTs: one validation per accepted algorithm, and its keys.
struct Verifier {
    hs256: Option<(DecodingKey, Validation)>,
    /// RS256 keys by `kid` (a key without one matches only a token without one).
    rs256: Vec<(Option<String>, DecodingKey)>,
    rs256_validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Edge {
    /// The policies `config` asks for; reads the JWKS file if one is named.
    pub fn new(config: &GatewayConfig) -> Result<Self, EdgeError> {
        config.validate().map_err(EdgeError::Config)?;
        let verifier = config.auth.as_ref().map(Verifier::new).transpose()?;
        let LimitsConfig {
            per_subject_per_sec,
            per_subject_burst,
            global_per_sec,
            global_burst,
        } = config.limits;
        Ok(Edge {
            api_key: config.api_key.clone(),
            verifier,
            per_subject: quota(per_subject_per_sec, per_subject_burst)
                .map(DefaultKeyedRateLimiter::keyed),
            global: quota(global_per_sec, global_burst).map(DefaultDirectRateLimiter::direct),
            clock: DefaultClock::default(),
        })
    }

    /// Whether anything is checked at all.
    pub fn is_open(&self) -> bool {
        self.api_key.is_none()
            && self.verifier.is_none()
            && self.per_subject.is_none()
            && self.global.is_none()
    }

    /// `Ok` to let the request through, or why not (its answer is the
    /// refusal's [`IntoResponse`]).
    pub fn admit(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<(), Refusal> {
        let subject = self.authenticate(headers, peer)?;
        if let Some(limiter) = &self.per_subject {
            if let Err(not_until) = limiter.check_key(&subject) {
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(Refusal::RateLimited("per-subject", wait));
            }
        }
        if let Some(limiter) = &self.global {
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(Refusal::RateLimited("global", wait));
            }
        }
        Ok(())
    }

    /// Forgets subjects whose limit is back to fresh; see [`FORGET_EVERY`].
    pub fn forget_idle_subjects(&self) {
        if let Some(limiter) = &self.per_subject {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Subjects the per-subject limit is tracking now.
    pub fn tracked_subjects(&self) -> usize {
        self.per_subject.as_ref().map_or(0, |l| l.len())
    }

    /// Forgets idle subjects every [`FORGET_EVERY`], for as long as it runs.
    pub async fn run_forgetting(self: std::sync::Arc<Self>) {
        if self.per_subject.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(FORGET_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.forget_idle_subjects();
        }
    }

    fn authenticate(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Subject, Refusal> {
        let by_peer = || peer.map_or(Subject::Unknown, Subject::Peer);
        if self.api_key.is_none() && self.verifier.is_none() {
            return Ok(by_peer());
        }
        let Some(token) = bearer(headers) else {
            return Err(Refusal::NoToken);
        };
        if self.api_key.as_deref() == Some(token) {
            return Ok(by_peer());
        }
        match &self.verifier {
            Some(v) => v
                .verify(token)
                .map(Subject::Token)
                .map_err(|e| Refusal::BadToken(e.to_string())),
            None => Err(Refusal::BadToken("wrong API key".into())),
        }
    }
}

/// The bearer token, or `None` when the request carries none (no
/// `Authorization`, or another scheme).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn quota(per_sec: Option<u32>, burst: Option<u32>) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec?)?;
    let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token came.
    NoToken,
    /// A token came and was refused, for this reason.
    BadToken(String),
    /// Over the named limit; it admits again after the wait.
    RateLimited(&'static str, Duration),
}

impl IntoResponse for Refusal {
    /// 401 with the challenge (`error="invalid_token"` and why when a token
    /// came and was refused, the bare challenge when none came: RFC 6750,
    /// 3.1); 429 with `Retry-After` in whole seconds, rounded up, at least 1.
    fn into_response(self) -> Response {
        match self {
            Refusal::NoToken => challenge(
                ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token")
                    .with_detail("send Authorization: Bearer <token>"),
                format!("Bearer realm=\"{REALM}\""),
            ),
            Refusal::BadToken(why) => {
                let header = format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                    quotable(&why)
                );
                challenge(
                    ApiError::new(StatusCode::UNAUTHORIZED, "invalid token").with_detail(why),
                    header,
                )
            }
            Refusal::RateLimited(which, wait) => {
                let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                let mut response =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
                        .with_detail(format!("{which} limit; retry in {secs} s"))
                        .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                response
            }
        }
    }
}

fn challenge(error: ApiError, challenge: String) -> Response {
    let mut response = error.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// `text` with only the characters RFC 6750 allows in `error_description`
/// (visible ASCII and space, less `"` and `\`).
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl Verifier {
    fn new(config: &AuthConfig) -> Result<Self, EdgeError> {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway.as_secs();
            v.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            if let Some(iss) = &config.issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            match &config.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                // Unchecked: a token naming an audience is not refused for it.
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            v
        };
        let hs256 = config.hs256_secret.as_ref().map(|s| {
            (
                DecodingKey::from_secret(s.as_bytes()),
                validation(Algorithm::HS256),
            )
        });
        let rs256 = match &config.jwks_file {
            Some(path) => read_jwks(path)?,
            None => Vec::new(),
        };
        Ok(Verifier {
            hs256,
            rs256,
            rs256_validation: validation(Algorithm::RS256),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    /// The token's subject, or why it is refused (in words a client can act on).
    fn verify(&self, token: &str) -> Result<String, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| self.describe(&e))?;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some((key, v)) => (key, v),
                None => return Err(TokenError::Hs256NotAccepted),
            },
            Algorithm::RS256 if !self.rs256.is_empty() => {
                let kid = header.kid.as_deref();
                let key = self.rs256.iter().find(|(k, _)| k.as_deref() == kid).or(
                    match (kid, self.rs256.as_slice()) {
                        (None, [only]) => Some(only),
                        _ => None,
                    },
                );
                match key {
                    Some((_, key)) => (key, &self.rs256_validation),
                    None => {
                        return Err(TokenError::UnknownKey {
                            kid: kid.map(str::to_string),
                        })
                    }
                }
            }
            other => return Err(TokenError::AlgorithmNotAccepted { alg: other }),
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| self.describe(&e))?
            .claims;
        claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NoSubject)
    }

    fn describe(&self, e: &jsonwebtoken::errors::Error) -> TokenError {
        match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer {
                expected: self.issuer.clone(),
            },
            ErrorKind::InvalidAudience => TokenError::WrongAudience {
                expected: self.audience.clone(),
            },
            ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim {
                claim: claim.clone(),
            },
            ErrorKind::InvalidClaimFormat(claim) => TokenError::MalformedClaim {
                claim: claim.clone(),
            },
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => TokenError::Malformed,
            _ => TokenError::Other(e.clone()),
        }
    }
}

/// The RS256 keys of a JWKS file: RSA keys meant for signatures, whose
/// `alg` (if given) is RS256. A file with none of them is an error, as
/// is one that cannot be read or parsed.
fn read_jwks(path: &Path) -> Result<Vec<(Option<String>, DecodingKey)>, EdgeError> {
    let fail = |reason: String| EdgeError::Jwks {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| fail(format!("is not a JWKS (a JSON {{\"keys\": [...]}}): {e}")))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let AlgorithmParameters::RSA(_) = &jwk.algorithm else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        if jwk
            .common
            .key_algorithm
            .is_some_and(|a| a != KeyAlgorithm::RS256)
        {
            continue;
        }
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| fail(format!("key {i} is not usable: {e}")))?;
        keys.push((jwk.common.key_id.clone(), key));
    }
    if keys.is_empty() {
        return Err(fail(format!(
            "has no RSA signing key for RS256 among its {} keys",
            set.keys.len()
        )));
    }
    Ok(keys)
}
