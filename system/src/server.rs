//! Serving an axum app: `run(listener, app, shutdown)`.
//!
//! Written on hyper directly rather than `axum::serve` for two reasons:
//! - every request carries a [`ConnectionAbort`] so a handler can drop its
//!   connection without answering (the provider's "charged, reply lost"),
//!   which is exactly what a client sees when a process dies mid-request;
//! - connections are owned by the serving future, so aborting it (a crash)
//!   kills them all at once, while `shutdown` drains them gracefully.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a graceful shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Drops the connection a request came on, without a response.
#[derive(Clone, Debug)]
pub struct ConnectionAbort(CancellationToken);

impl ConnectionAbort {
    pub fn abort(&self) {
        self.0.cancel();
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, don't spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let abort = CancellationToken::new();
                let app = app.clone();
                let per_request = abort.clone();
                let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectionAbort(per_request.clone()));
                    // What axum's `ConnectInfo` extractor reads: the
                    // gateway's per-client rate limit keys on it.
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                connections.spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = abort.cancelled() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let drained = async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}
