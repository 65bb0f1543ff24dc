//! Helpers shared by the integration tests: a broker per test, unique
//! names, recording handlers, and polling with a deadline.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use gauntlet_events::{
    ensure_topics, topics, Delivery, EmbeddedBroker, HandleError, Handler, TopicSpec,
};
use parking_lot::Mutex;

/// Generous: the first group join takes a few seconds, and tests share two
/// cores with whatever else is building.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub async fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start(loopback(0), None)
        .await
        .expect("embedded broker starts")
}

pub fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `name` with `partitions` and its dead-letter topic.
pub async fn topic(bootstrap: &str, name: &str, partitions: i32) {
    ensure_topics(
        bootstrap,
        &topics::with_dlqs(&[TopicSpec::new(name, partitions)]),
    )
    .await
    .expect("topics created");
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after
/// `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`wait_until`], for a condition that must be awaited.
pub async fn wait_until_async<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a [`Recorder`] answers to a delivery.
type Reply = Box<dyn Fn(&Delivery) -> Result<(), HandleError> + Send + Sync>;

/// Records every delivery it is given, answering with `reply(delivery)`.
pub struct Recorder {
    pub seen: Mutex<Vec<Delivery>>,
    reply: Reply,
}

impl Recorder {
    pub fn new(
        reply: impl Fn(&Delivery) -> Result<(), HandleError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            reply: Box::new(reply),
        })
    }

    /// Accepts everything.
    pub fn ok() -> Arc<Self> {
        Self::new(|_| Ok(()))
    }

    pub fn count(&self) -> usize {
        self.seen.lock().len()
    }
}

impl Handler for Recorder {
    fn handle<'a>(&'a self, msg: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            self.seen.lock().push(msg.clone());
            (self.reply)(msg)
        })
    }
}
