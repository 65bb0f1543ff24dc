//! Stocking the catalog the load orders from, before the load starts.

use std::time::Duration;

use gauntlet_loadgen as loadgen;

/// Products the catalog is stocked with before the load.
pub const PRODUCTS: u32 = 20;
/// Each product's initial stock: enough that no scenario here sells out,
/// so a cancelled order always has a cause worth reading.
pub const INITIAL_STOCK: i64 = 1_000_000;

/// How many times one catalog write is sent while the gateway's rate
/// limit refuses it (429), each after the `Retry-After` it gave.
const STOCK_TRIES: u32 = 30;

/// Why the catalog could not be stocked: each names the request.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("stocking the catalog: {0}")]
    Token(#[from] loadgen::TokenError),
    #[error("stocking the catalog: POST {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("stocking the catalog: POST {url}: {status}: {body}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
}

/// Creates the catalog the load orders from, through the gateway as any
/// client would (before the load, so outside every figure): prices from
/// 1.00 to 99.00, from the seed. With JWTs on, it signs a token of its own
/// (`sub` = `harness`); a write over a rate limit waits and is sent again.
pub(super) async fn stock_catalog(
    http: &reqwest::Client,
    gateway: &str,
    seed: u64,
    token: Option<&loadgen::TokenConfig>,
) -> Result<(), StockError> {
    let url = format!("{gateway}/api/products");
    let bearer = token
        .map(|t| t.sign("harness", Duration::from_secs(600)))
        .transpose()?;
    for i in 0..PRODUCTS {
        let price = 100 + (seed.wrapping_mul(31).wrapping_add(u64::from(i) * 977) % 9_800);
        let body = serde_json::json!({
            "name": format!("Product {}", i + 1),
            "price_cents": price,
            "stock": INITIAL_STOCK,
        });
        let mut tries = 0;
        let resp = loop {
            let mut req = http.post(&url).json(&body);
            if let Some(b) = &bearer {
                req = req.bearer_auth(b);
            }
            let resp = req.send().await.map_err(|source| StockError::Unreachable {
                url: url.clone(),
                source,
            })?;
            tries += 1;
            if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || tries >= STOCK_TRIES {
                break resp;
            }
            // Never created: safe to send again once the limit allows.
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(StockError::Refused { url, status, body });
        }
    }
    Ok(())
}
