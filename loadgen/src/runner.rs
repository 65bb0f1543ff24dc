//! Runs a journey's requests against the gateway and records each one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use goose_reqwest::header::HeaderValue;
use goose_reqwest::Client;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::HttpClient;
use crate::config::{Flow, Poll};
use crate::history::{detail, OpKind, Operation, Outcome};
use crate::http::{Answer, Call, Direct, Http, Link, LinkError, Transport};
use crate::journey::{JourneyKind, JourneyPlan};
use crate::recorder::{Clock, Live, UserLog};
use crate::token::Signer;
use crate::watch::Watch;

/// How many products a browse asks for.
const BROWSE_LIMIT: u32 = 20;

/// The gateway's URLs, built once.
pub(crate) struct Urls {
    base: String,
    pub users: Link,
    pub products: Link,
    pub catalog: Link,
    pub orders: Link,
}

impl Urls {
    /// The URLs under `base`, which [`LoadConfig::validate`] has checked.
    ///
    /// [`LoadConfig::validate`]: crate::LoadConfig::validate
    pub fn new(base: &str) -> Result<Self, LinkError> {
        let base = base.trim_end_matches('/');
        Ok(Urls {
            users: Link::parse(&format!("{base}/api/users"))?,
            products: Link::parse(&format!("{base}/api/products?limit={BROWSE_LIMIT}"))?,
            catalog: Link::parse(&format!("{base}/api/products?limit=1000"))?,
            orders: Link::parse(&format!("{base}/api/orders"))?,
            base: base.to_string(),
        })
    }

    /// `GET /api/orders/{id}`.
    pub fn order(&self, id: i64) -> Result<Link, LinkError> {
        Link::parse(&format!("{}/api/orders/{id}", self.base))
    }
}

/// One goose user's side of a run: its client, its own cancellation (a
/// child of the run's, so waiting on it takes no lock shared with other
/// users) and the watch its requests race, and its log.
pub(crate) struct Session {
    pub transport: Transport,
    /// The `Authorization` this user sends: its own token, or the API key.
    pub auth: Option<HeaderValue>,
    pub cancel: CancellationToken,
    /// The request timer and a waiter on `cancel`, kept for every request.
    pub watch: Watch,
    pub log: UserLog,
}

/// Everything a journey needs, shared by every user of a run.
pub(crate) struct Ctx {
    pub http: Http,
    /// `Bearer <api_key>`, when the config has one.
    pub api_key: Option<HeaderValue>,
    /// Signs each user's own token, when the gateway wants JWTs.
    pub signer: Option<Signer>,
    pub urls: Urls,
    /// Product ids orders pick from.
    pub catalog: Vec<i64>,
    /// Customer ids orders are placed by.
    pub customers: Vec<i64>,
    pub client: HttpClient,
    pub flow: Flow,
    pub idempotency_keys: bool,
    pub poll: Poll,
    /// `<run_tag->seed-in-hex`: makes e-mails and keys unique to the run.
    pub prefix: String,
    pub clock: Clock,
    pub live: Arc<Live>,
    pub ids: AtomicU64,
    /// The run's cancellation; each session waits on a child of it.
    pub cancel: CancellationToken,
}

#[derive(Serialize)]
struct NewUser<'a> {
    name: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct NewOrder {
    user_id: i64,
    product_id: i64,
    quantity: u32,
    flow: &'static str,
}

/// The part of a user, product or order answer the load reads.
#[derive(Deserialize)]
struct Created {
    id: i64,
    #[serde(default)]
    status: Option<String>,
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "CONFIRMED" | "CANCELLED")
}

impl Ctx {
    /// A session for one user (or the set-up), who is `subject` in its
    /// token. `client` is the goose user's, used when the config asks for it.
    /// Made inside the runtime (its watch has a timer).
    pub fn session(&self, client: Client, subject: &str) -> Session {
        let token = self.signer.as_ref().and_then(|s| {
            s.bearer(subject)
                .map_err(|e| tracing::warn!(error = %e, "sending no token"))
                .ok()
        });
        let cancel = self.cancel.child_token();
        Session {
            transport: match self.client {
                HttpClient::Direct => Transport::Direct(Direct::default()),
                HttpClient::Goose => Transport::Goose(client),
            },
            auth: token.or_else(|| self.api_key.clone()),
            watch: Watch::new(&cancel),
            cancel,
            log: UserLog::new(&self.live),
        }
    }

    /// Runs one journey; `intended` is when it was due (its first request's
    /// latency counts from there).
    pub async fn run(&self, s: &mut Session, plan: &JourneyPlan, intended: Instant) {
        let journey = Some(plan.index);
        match plan.kind {
            JourneyKind::CreateUser => {
                let email = format!("{}-{}@load.example", self.prefix, plan.index);
                self.create_user(s, journey, plan.name, &email, intended)
                    .await;
            }
            JourneyKind::Browse => {
                let call = Call {
                    kind: OpKind::ListProducts,
                    link: &self.urls.products,
                    body: None,
                    idempotency_key: None,
                };
                let (_, op) = self.call(s, journey, call, intended).await;
                s.log.record(op, &self.live);
            }
            JourneyKind::PlaceOrder => self.place_order(s, plan, intended, false).await,
            JourneyKind::PollOrder => self.place_order(s, plan, intended, true).await,
        }
    }

    /// `POST /api/users`; how it ended, its status, and the new user's id
    /// on success.
    pub async fn create_user(
        &self,
        s: &mut Session,
        journey: Option<u64>,
        name: &str,
        email: &str,
        intended: Instant,
    ) -> (Outcome, Option<u16>, Option<i64>, Option<Box<str>>) {
        let body = serde_json::to_vec(&NewUser { name, email }).unwrap_or_default();
        let call = Call {
            kind: OpKind::CreateUser,
            link: &self.urls.users,
            body: Some(body),
            idempotency_key: None,
        };
        let (answer, op) = self.call(s, journey, call, intended).await;
        let id = (answer.outcome == Outcome::Ok)
            .then(|| serde_json::from_slice::<Created>(&answer.body).ok())
            .flatten()
            .map(|c| c.id);
        let result = (op.outcome, op.status, id, op.detail.clone());
        s.log.record(op, &self.live);
        result
    }

    /// `POST /api/orders`; with `poll`, then follows a pending answer.
    async fn place_order(
        &self,
        s: &mut Session,
        plan: &JourneyPlan,
        intended: Instant,
        poll: bool,
    ) {
        let (Some(&user_id), Some(&product_id)) = (
            pick(&self.customers, plan.customer_draw),
            pick(&self.catalog, plan.product_draw),
        ) else {
            // Set-up guarantees both when orders are in the mix.
            return;
        };
        let body = serde_json::to_vec(&NewOrder {
            user_id,
            product_id,
            quantity: plan.quantity,
            flow: self.flow.as_str(),
        })
        .unwrap_or_default();
        let key = self
            .idempotency_keys
            .then(|| format!("{}-{}", self.prefix, plan.index));
        let call = Call {
            kind: OpKind::PlaceOrder,
            link: &self.urls.orders,
            body: Some(body),
            idempotency_key: key.as_deref(),
        };
        let journey = Some(plan.index);
        let (answer, mut op) = self.call(s, journey, call, intended).await;
        op.idempotency_key = key.map(String::into_boxed_str);
        let mut pending = None;
        if answer.outcome == Outcome::Ok {
            match serde_json::from_slice::<Created>(&answer.body) {
                Ok(order) => {
                    op.order_id = Some(order.id);
                    let status = order.status.unwrap_or_default();
                    if poll && !is_terminal(&status) {
                        pending = Some(order.id);
                    }
                    op.detail = Some(status.into_boxed_str());
                }
                Err(e) => op.detail = Some(detail(&format!("unreadable order: {e}"))),
            }
        }
        s.log.record(op, &self.live);
        if let Some(id) = pending {
            self.follow(s, journey, id).await;
        }
    }

    /// `GET /api/orders/{id}` every poll interval until the order is
    /// terminal, the poll timeout passes, or the run is cancelled.
    async fn follow(&self, s: &mut Session, journey: Option<u64>, id: i64) {
        let Ok(link) = self.urls.order(id) else {
            return;
        };
        let deadline = Instant::now() + self.poll.timeout;
        loop {
            let next = Instant::now() + self.poll.interval;
            if next > deadline {
                return;
            }
            if s.watch
                .unless_cancelled(tokio::time::sleep_until(next))
                .await
                .is_none()
            {
                return;
            }
            let call = Call {
                kind: OpKind::GetOrder,
                link: &link,
                body: None,
                idempotency_key: None,
            };
            let (answer, mut op) = self.call(s, journey, call, Instant::now()).await;
            op.order_id = Some(id);
            let mut done = false;
            if answer.outcome == Outcome::Ok {
                if let Ok(order) = serde_json::from_slice::<Created>(&answer.body) {
                    let status = order.status.unwrap_or_default();
                    done = is_terminal(&status);
                    op.detail = Some(status.into_boxed_str());
                }
            }
            s.log.record(op, &self.live);
            if done || s.cancel.is_cancelled() {
                return;
            }
        }
    }

    /// Sends `call` and returns its answer with the operation it makes
    /// (not yet recorded, so the caller can add what the body says).
    pub async fn call(
        &self,
        s: &mut Session,
        journey: Option<u64>,
        call: Call<'_>,
        intended: Instant,
    ) -> (Answer, Operation) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let kind = call.kind;
        let answer = self
            .http
            .send(&mut s.transport, s.auth.as_ref(), call, &mut s.watch)
            .await;
        let invoke_us = self.clock.us(answer.invoked);
        let op = Operation {
            id,
            journey,
            kind,
            intended_us: self.clock.us(intended),
            invoke_us,
            complete_us: self.clock.us(answer.completed),
            outcome: answer.outcome,
            status: answer.status,
            order_id: None,
            idempotency_key: None,
            detail: answer.detail.clone(),
        };
        (answer, op)
    }
}

fn pick<T>(items: &[T], draw: u32) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(draw as usize % items.len())
    }
}
