//! One request, and how its ending is read: a 2xx is ok, a 4xx/5xx a
//! failure, no answer unknown.
//!
//! Two transports. `Direct` (the default, plain `http://`) gives each goose
//! user one HTTP/1.1 keep-alive connection of its own (`h1`): no pool to
//! check out of, no URL parsed per request, the request written from a
//! reused buffer, and the connection driven by the user's own task while
//! it waits for its answer (no second task to hand the request to and the
//! answer back from). That is what lets the generator come close to wrk
//! on a loopback endpoint, where the pooled client falls well short (the
//! `max_rate` bench measures both).
//! `Goose` sends with the goose user's own reqwest client, and is the one
//! that speaks `https://`.

use std::time::Duration;

use bytes::Bytes;
use goose_reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use goose_reqwest::{Client, Method, Url};
use hyper::Uri;
use tokio::time::Instant;

use crate::h1;
use crate::history::{detail, OpKind, Outcome};
use crate::watch::{Raced, Watch};

/// The header the orders service dedupes orders by.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The detail of an operation cut short by the run's cancellation.
pub(crate) const CANCELLED: &str = "cancelled by the run while in flight";

/// An endpoint's address in both forms the transports want.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// For the goose (reqwest) client.
    pub url: Url,
    /// Origin form (`/api/orders?x=y`), for the direct connection.
    pub path: Uri,
}

/// Why a URL is not a [`Link`]: the text that was wrong, and why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// Not an absolute URL (`http://host:port/path`).
    #[error("{url:?}: {source}")]
    Url {
        url: String,
        source: url::ParseError,
    },
    /// The URL's path and query are not a request target.
    #[error("{origin:?}: {source}")]
    Origin {
        origin: String,
        source: hyper::http::uri::InvalidUri,
    },
}

impl Link {
    pub fn parse(url: &str) -> Result<Link, LinkError> {
        let url = Url::parse(url).map_err(|source| LinkError::Url {
            url: url.to_string(),
            source,
        })?;
        let origin = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let path = match origin.parse::<Uri>() {
            Ok(path) => path,
            Err(source) => return Err(LinkError::Origin { origin, source }),
        };
        Ok(Link { url, path })
    }
}

/// A request to make.
pub(crate) struct Call<'a> {
    pub kind: OpKind,
    pub link: &'a Link,
    /// A JSON body, for a POST.
    pub body: Option<Vec<u8>>,
    pub idempotency_key: Option<&'a str>,
}

/// How a request ended.
pub(crate) struct Answer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    /// The body, for a 2xx (empty otherwise).
    pub body: Bytes,
    pub detail: Option<Box<str>>,
    pub invoked: Instant,
    pub completed: Instant,
}

/// What every request of a run shares.
pub(crate) struct Http {
    /// `host:port`, the `Host` header and where direct connections go.
    pub authority: String,
    pub host: HeaderValue,
    pub timeout: Duration,
}

/// One user's way of sending.
pub(crate) enum Transport {
    /// A connection of the user's own, made on first use and remade after
    /// any failure.
    Direct(Direct),
    /// The goose user's reqwest client.
    Goose(Client),
}

/// A user's own HTTP/1.1 connection.
#[derive(Default)]
pub(crate) struct Direct {
    conn: Option<h1::Conn>,
}

impl Direct {
    /// Drops the connection (its state is unknown after a failure).
    fn reset(&mut self) {
        self.conn = None;
    }
}

/// How an exchange ended, before it is read as an outcome.
enum Exchange {
    Answered(u16, Bytes),
    /// The answer's head came, its body did not.
    BodyLost(u16, Box<str>),
    /// Nothing was sent: no connection could be made.
    NotSent(Box<str>),
    /// Sent, and the connection broke before a whole answer.
    Lost(Box<str>),
}

impl Http {
    /// Sends `call` (with `auth` as its `Authorization`) and reads the
    /// whole answer within the request timeout; the run's cancellation,
    /// seen through `watch`, abandons it (the outcome is then unknown).
    pub async fn send(
        &self,
        transport: &mut Transport,
        auth: Option<&HeaderValue>,
        call: Call<'_>,
        watch: &mut Watch,
    ) -> Answer {
        let invoked = Instant::now();
        let result = {
            let exchange = async {
                match transport {
                    Transport::Direct(d) => self.direct(d, auth, &call).await,
                    Transport::Goose(c) => self.goose(c, auth, &call).await,
                }
            };
            watch.race(self.timeout, exchange).await
        };
        let completed = Instant::now();
        let mut answer = Answer {
            outcome: Outcome::Unknown,
            status: None,
            body: Bytes::new(),
            detail: None,
            invoked,
            completed,
        };
        let exchange = match result {
            Raced::Cancelled => Exchange::Lost(CANCELLED.into()),
            Raced::TimedOut => Exchange::Lost(detail(&format!(
                "timeout: no answer within {:?}",
                self.timeout
            ))),
            Raced::Done(e) => e,
        };
        if !matches!(exchange, Exchange::Answered(..)) {
            // Whatever the connection holds now is not an answer to read.
            if let Transport::Direct(d) = transport {
                d.reset();
            }
        }
        match exchange {
            Exchange::Answered(status, body) => {
                answer.status = Some(status);
                if (200..300).contains(&status) {
                    answer.outcome = Outcome::Ok;
                    answer.body = body;
                } else {
                    answer.outcome = Outcome::Fail;
                    answer.detail = Some(detail(&String::from_utf8_lossy(&body)));
                }
            }
            Exchange::BodyLost(status, why) => {
                answer.status = Some(status);
                answer.detail = Some(why);
            }
            Exchange::NotSent(why) => {
                answer.outcome = Outcome::Fail;
                answer.detail = Some(why);
            }
            Exchange::Lost(why) => answer.detail = Some(why),
        }
        answer
    }

    async fn direct(
        &self,
        d: &mut Direct,
        auth: Option<&HeaderValue>,
        call: &Call<'_>,
    ) -> Exchange {
        // A connection the server closed while idle is remade: nothing was
        // sent on it.
        if d.conn.as_mut().is_some_and(|c| !c.still_open()) {
            d.reset();
        }
        if d.conn.is_none() {
            match h1::Conn::connect(&self.authority).await {
                Ok(conn) => d.conn = Some(conn),
                Err(e) => return Exchange::NotSent(detail(&format!("no connection: {e}"))),
            }
        }
        let Some(conn) = &mut d.conn else {
            return Exchange::NotSent("no connection".into());
        };
        if let Err(why) = self.encode(&mut conn.out, auth, call) {
            return Exchange::NotSent(why);
        }
        // A failed exchange drops the connection in `send`; an answer that
        // ends the connection (or leaves it out of step) drops it here.
        match conn.exchange().await {
            Ok(a) => {
                if !a.reusable {
                    d.reset();
                }
                Exchange::Answered(a.status, a.body)
            }
            Err(h1::Failed::Lost(why)) => Exchange::Lost(detail(&why)),
            Err(h1::Failed::BodyLost(status, why)) => Exchange::BodyLost(status, detail(&why)),
        }
    }

    /// `call` as it goes on the wire, into `out`.
    fn encode(
        &self,
        out: &mut Vec<u8>,
        auth: Option<&HeaderValue>,
        call: &Call<'_>,
    ) -> Result<(), Box<str>> {
        out.clear();
        let target = call.link.path.path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(method(call.kind).as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut line = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        line(b"host", self.host.as_bytes());
        line(USER_AGENT.as_str().as_bytes(), crate::USER_AGENT.as_bytes());
        if let Some(key) = call.idempotency_key {
            // The same check a header map makes: no line breaks smuggled in.
            if HeaderValue::from_str(key).is_err() {
                return Err(detail(&format!("bad request: idempotency key {key:?}")));
            }
            line(IDEMPOTENCY_KEY.as_str().as_bytes(), key.as_bytes());
        }
        if let Some(auth) = auth {
            line(AUTHORIZATION.as_str().as_bytes(), auth.as_bytes());
        }
        if let Some(body) = &call.body {
            line(CONTENT_TYPE.as_str().as_bytes(), b"application/json");
            line(b"content-length", body.len().to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = &call.body {
            out.extend_from_slice(body);
        }
        Ok(())
    }

    async fn goose(
        &self,
        client: &Client,
        auth: Option<&HeaderValue>,
        call: &Call<'_>,
    ) -> Exchange {
        let mut builder = client.request(method(call.kind), call.link.url.clone());
        if let Some(body) = &call.body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        if let Some(key) = call.idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Exchange::NotSent(describe("no connection", &e)),
            Err(e) if e.is_builder() => return Exchange::NotSent(describe("bad request", &e)),
            Err(e) if e.is_timeout() => return Exchange::Lost(describe("timeout", &e)),
            Err(e) => return Exchange::Lost(describe("connection lost", &e)),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => Exchange::Answered(status, body),
            Err(e) => Exchange::BodyLost(status, describe("body lost", &e)),
        }
    }
}

fn method(kind: OpKind) -> Method {
    match kind {
        OpKind::CreateUser | OpKind::PlaceOrder => Method::POST,
        OpKind::ListProducts | OpKind::GetOrder => Method::GET,
    }
}

/// `what: <innermost cause>`, short.
fn describe(what: &str, e: &goose_reqwest::Error) -> Box<str> {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    detail(&format!("{what}: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_query_in_origin_form() {
        let l = Link::parse("http://127.0.0.1:8080/api/products?limit=20").unwrap();
        assert_eq!(l.path, "/api/products?limit=20");
        assert_eq!(
            l.url.as_str(),
            "http://127.0.0.1:8080/api/products?limit=20"
        );
        assert!(Link::parse("not a url").is_err());
    }
}
