//! The eight services. Each module has `app(state) -> Router` and
//! `build(ctx) -> Built` (its database, clients and background loops).

pub mod analytics;
pub mod catalog;
mod catalog_events;
pub mod gateway;
pub mod gateway_edge;
pub mod notifications;
pub mod orders;
pub mod payments;
mod payments_events;
pub mod provider;
mod sinks_events;
pub mod users;

use tokio::net::TcpListener;

use crate::config::ServiceName;
use crate::service::{self, Built, RunningService, ServiceContext, StartError};

/// Builds one service by name.
pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    match ctx.name {
        ServiceName::Gateway => gateway::build(ctx).await,
        ServiceName::Users => users::build(ctx).await,
        ServiceName::Catalog => catalog::build(ctx).await,
        ServiceName::Orders => orders::build(ctx).await,
        ServiceName::Payments => payments::build(ctx).await,
        ServiceName::Provider => provider::build(ctx).await,
        ServiceName::Notifications => notifications::build(ctx).await,
        ServiceName::Analytics => analytics::build(ctx).await,
    }
}

/// Builds one service and serves it on `listener`.
pub async fn start(
    ctx: ServiceContext,
    listener: TcpListener,
) -> Result<RunningService, StartError> {
    let built = build(&ctx).await?;
    Ok(service::spawn(&ctx, listener, built))
}
