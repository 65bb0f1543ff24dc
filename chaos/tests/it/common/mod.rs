//! Loopback servers and helpers shared by the integration tests. Every
//! server binds `127.0.0.1:0` and is stopped by the test that started it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use gauntlet_chaos::Chaos;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// A loopback TCP server running one handler per connection.
pub struct Server {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    accept: Option<JoinHandle<()>>,
    tracker: TaskTracker,
}

impl Server {
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let accept = tokio::spawn({
            let cancel = cancel.clone();
            let tracker = tracker.clone();
            async move {
                loop {
                    let accepted = tokio::select! {
                        _ = cancel.cancelled() => break,
                        accepted = listener.accept() => accepted,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let conn = handler(stream);
                    let cancel = cancel.clone();
                    tracker.spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            () = conn => {}
                        }
                    });
                }
            }
        });
        Self {
            addr,
            cancel,
            accept: Some(accept),
            tracker,
        }
    }

    /// Echoes every byte back; answers FIN with FIN.
    pub async fn echo() -> Self {
        Self::start(|mut stream| async move {
            let (mut r, mut w) = stream.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        })
        .await
    }

    /// Writes `data` to every client, then closes.
    pub async fn sender(data: Vec<u8>) -> Self {
        let data = std::sync::Arc::new(data);
        Self::start(move |mut stream| {
            let data = data.clone();
            async move {
                let _ = stream.write_all(&data).await;
                let _ = stream.shutdown().await;
                // Drain until the client closes, so the close is a clean FIN.
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        })
        .await
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The HTTP API on a loopback port, stopped by [`Api::stop`].
pub struct Api {
    pub addr: SocketAddr,
    pub chaos: Chaos,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Api {
    pub async fn start(seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let chaos = Chaos::new(seed);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gauntlet_chaos::run_api(
            listener,
            chaos.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            chaos,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.chaos.shutdown().await;
    }
}

/// Polls `condition` until it holds or `WAIT` passes; returns whether it held.
pub async fn eventually<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Connects, failing the test after `WAIT`.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Whether a connection to `addr` is refused.
pub async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(WAIT, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Reads until EOF or `limit` bytes, within `WAIT`.
pub async fn read_to_end(stream: &mut TcpStream, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(WAIT, async {
        while out.len() < limit {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    })
    .await
    .unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "read took too long",
        ))
    })
}

/// Writes `msg` and reads back exactly as many bytes, within `WAIT`.
pub async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(WAIT, async {
        stream.write_all(msg).await?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await?;
        Ok(back)
    })
    .await
    .unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "round trip took too long",
        ))
    })
}
