//! The JWT each user signs for itself, once, at its start: HS256 with the
//! gateway's secret, `sub` naming the user, valid for the whole run.

use std::time::Duration;

use goose_reqwest::header::{HeaderValue, InvalidHeaderValue, ToStrError};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::TokenConfig;

/// Why a token could not be made. A user without one sends the API key
/// instead (or nothing), and the gateway's 401s say so in the history.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// jsonwebtoken refused to sign: for `sub`, and its reason.
    #[error("cannot sign a token for {sub}: {source}")]
    Sign {
        sub: String,
        source: jsonwebtoken::errors::Error,
    },
    /// The signed token is not a valid `Authorization` header value.
    #[error(transparent)]
    Header(#[from] InvalidHeaderValue),
    /// The `Authorization` header value is not visible ASCII text.
    #[error(transparent)]
    NotText(#[from] ToStrError),
}

/// Signs tokens for a run's users.
pub(crate) struct Signer {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
    /// Seconds since the Unix epoch the tokens expire at.
    exp: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl Signer {
    /// A signer whose tokens are valid for `lifetime` from now.
    pub fn new(config: &TokenConfig, lifetime: Duration) -> Self {
        Signer {
            key: EncodingKey::from_secret(config.hs256_secret.as_bytes()),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            exp: jsonwebtoken::get_current_timestamp().saturating_add(lifetime.as_secs().max(1)),
        }
    }

    /// `Bearer <token>` for `sub`.
    pub fn bearer(&self, sub: &str) -> Result<HeaderValue, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub,
            iat: now,
            nbf: now,
            exp: self.exp,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|source| TokenError::Sign {
                sub: sub.to_string(),
                source,
            })?;
        Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_the_user_and_the_configured_claims() {
        let config = TokenConfig {
            hs256_secret: "a-secret-of-at-least-thirty-two-bytes".into(),
            issuer: Some("iss-x".into()),
            audience: Some("aud-y".into()),
        };
        let signer = Signer::new(&config, Duration::from_secs(600));
        let bearer = signer.bearer("load-7").unwrap();
        let token = bearer.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.set_issuer(&["iss-x"]);
        v.set_audience(&["aud-y"]);
        v.validate_nbf = true;
        v.leeway = 0;
        let data = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(config.hs256_secret.as_bytes()),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "load-7");
        let exp = data.claims["exp"].as_u64().unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        assert!(
            (now + 590..=now + 601).contains(&exp),
            "exp {exp}, now {now}"
        );
        // Another secret does not verify it.
        let other = jsonwebtoken::DecodingKey::from_secret(b"another-secret-of-at-least-32-bytes");
        assert!(jsonwebtoken::decode::<serde_json::Value>(token, &other, &v).is_err());
    }
}
