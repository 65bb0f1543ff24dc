//! Before the load: read the catalog and sign up the customers orders are
//! placed by, so every journey's choices are fixed by its seed alone.
//! These requests are in the history (with no journey), not in the latency.
//! A set-up request refused by the gateway's rate limit (429) is sent again
//! after [`RATE_LIMITED_WAIT`], up to [`RATE_LIMITED_TRIES`] times: the
//! set-up is one subject, and may need more than its burst.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::config::LoadConfig;
use crate::error::LoadError;
use crate::history::{OpKind, Outcome};
use crate::http::Call;
use crate::runner::{Ctx, Session};

/// The wait before a set-up request refused with 429 is sent again: the
/// least `Retry-After` the gateway sends.
pub(crate) const RATE_LIMITED_WAIT: Duration = Duration::from_secs(1);
/// How many times one set-up request is sent while it is refused with 429.
pub(crate) const RATE_LIMITED_TRIES: u32 = 30;

const TOO_MANY_REQUESTS: Option<u16> = Some(429);

#[derive(Deserialize)]
struct Product {
    id: i64,
}

/// The catalog's product ids and the customers' ids; both empty when the
/// mix places no orders.
pub(crate) async fn prepare(
    ctx: &Ctx,
    s: &mut Session,
    config: &LoadConfig,
) -> Result<(Vec<i64>, Vec<i64>), LoadError> {
    if !config.mix.orders() {
        return Ok((Vec::new(), Vec::new()));
    }
    let failed = |detail: String| LoadError::Setup {
        base_url: config.base_url.clone(),
        detail,
    };
    let mut tries = 0;
    let (answer, outcome, why) = loop {
        let call = Call {
            kind: OpKind::ListProducts,
            link: &ctx.urls.catalog,
            body: None,
            idempotency_key: None,
        };
        let (answer, op) = ctx.call(s, None, call, Instant::now()).await;
        let outcome = op.outcome;
        let why = op.detail.clone();
        s.log.record(op, &ctx.live);
        tries += 1;
        if answer.status != TOO_MANY_REQUESTS || tries >= RATE_LIMITED_TRIES || !pause(ctx).await {
            break (answer, outcome, why);
        }
    };
    if outcome != Outcome::Ok {
        return Err(failed(format!(
            "reading the catalog ({}) gave {:?}, status {:?}: {}",
            ctx.urls.catalog.url.as_str(),
            outcome,
            answer.status,
            why.as_deref().unwrap_or("-")
        )));
    }
    let catalog: Vec<i64> = serde_json::from_slice::<Vec<Product>>(&answer.body)
        .map_err(|e| failed(format!("the catalog is not a list of products: {e}")))?
        .into_iter()
        .map(|p| p.id)
        .collect();
    if catalog.is_empty() {
        return Err(failed(
            "the catalog is empty: create products (POST /api/products) before placing orders"
                .into(),
        ));
    }
    let mut customers = Vec::with_capacity(config.customers as usize);
    for i in 0..config.customers {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let email = format!("{}-customer-{i}@load.example", ctx.prefix);
        let mut tries = 0;
        let (outcome, id, detail) = loop {
            let (outcome, status, id, detail) = ctx
                .create_user(s, None, "Customer", &email, Instant::now())
                .await;
            tries += 1;
            if status != TOO_MANY_REQUESTS || tries >= RATE_LIMITED_TRIES || !pause(ctx).await {
                break (outcome, id, detail);
            }
        };
        match id {
            Some(id) => customers.push(id),
            None => {
                return Err(failed(format!(
                    "creating customer {email} gave {outcome:?}: {} \
                     (a 409 means an earlier run used this seed: set run_tag)",
                    detail.as_deref().unwrap_or("-")
                )))
            }
        }
    }
    Ok((catalog, customers))
}

/// Waits [`RATE_LIMITED_WAIT`]; false when the run was cancelled meanwhile.
async fn pause(ctx: &Ctx) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RATE_LIMITED_WAIT) => true,
        _ = ctx.cancel.cancelled() => false,
    }
}
