//! Before the load: read the catalog and sign up the customers orders are
//! placed by, so every journey's choices are fixed by its seed alone.
//! These requests are in the history (with no journey), not in the latency.

use serde::Deserialize;
use tokio::time::Instant;

use crate::config::LoadConfig;
use crate::error::LoadError;
use crate::history::{OpKind, Outcome};
use crate::http::Call;
use crate::runner::{Ctx, Session};

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
        let (outcome, id, detail) = ctx
            .create_user(s, None, "Customer", &email, Instant::now())
            .await;
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
