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

use crate::config::Service;
use crate::service::{self, Built, RunningService, ServiceContext, StartError};

/// Builds one service by name.
pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    match ctx.name {
        Service::Gateway => gateway::build(ctx).await,
        Service::Users => users::build(ctx).await,
        Service::Catalog => catalog::build(ctx).await,
        Service::Orders => orders::build(ctx).await,
        Service::Payments => payments::build(ctx).await,
        Service::Provider => provider::build(ctx).await,
        Service::Notifications => notifications::build(ctx).await,
        Service::Analytics => analytics::build(ctx).await,
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
