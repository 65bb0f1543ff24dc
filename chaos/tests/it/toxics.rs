//! Each toxic on real loopback sockets, driven in process.

use std::net::SocketAddr;
use std::time::Duration;

use gauntlet_chaos::{
    Bandwidth, Chaos, Latency, LimitData, ProxySpec, ResetPeer, Slicer, SlowClose, Stream, Timeout,
    ToxicKind, ToxicSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::common::{connect, read_to_end, round_trip, Server, WAIT};

/// A registry with one enabled proxy `p` in front of `upstream`.
async fn proxy_to(seed: u64, upstream: SocketAddr) -> (Chaos, SocketAddr) {
    let chaos = Chaos::new(seed);
    let proxy = chaos
        .create_proxy(ProxySpec::new("p", "127.0.0.1:0", upstream.to_string()))
        .await
        .expect("create proxy");
    let addr = proxy.listen_addr().expect("bound address");
    (chaos, addr)
}

fn add(chaos: &Chaos, spec: ToxicSpec) {
    chaos.add_toxic("p", spec).expect("add toxic");
}

/// Median round-trip time of `n` echo round trips on one connection.
async fn median_rtt(addr: SocketAddr, n: usize) -> Duration {
    let mut stream = connect(addr).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let msg = format!("ping {i}");
        let start = Instant::now();
        let back = round_trip(&mut stream, msg.as_bytes()).await.expect("echo");
        samples.push(start.elapsed());
        assert_eq!(back, msg.as_bytes());
    }
    samples.sort();
    samples[n / 2]
}

#[tokio::test]
async fn plain_proxy_is_transparent() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    let mut stream = connect(addr).await;
    let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(
        round_trip(&mut stream, &payload).await.expect("echo"),
        payload
    );
    // Half-close: the reply to a request sent before FIN still arrives.
    stream.write_all(b"last words").await.expect("write");
    stream.shutdown().await.expect("shutdown");
    assert_eq!(
        read_to_end(&mut stream, usize::MAX).await.expect("read"),
        b"last words"
    );
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn latency_adds_the_configured_delay() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    let base = median_rtt(addr, 5).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Latency(Latency {
            latency: 100,
            jitter: 0,
        })),
    );
    let slow = median_rtt(addr, 5).await;
    assert!(slow >= Duration::from_millis(100), "{slow:?}");
    assert!(
        slow < base + Duration::from_millis(130),
        "{slow:?} (base {base:?})"
    );

    // Both directions chain: another 50 ms upstream.
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Latency(Latency {
            latency: 50,
            jitter: 0,
        }))
        .stream(Stream::Upstream),
    );
    let slower = median_rtt(addr, 3).await;
    assert!(slower >= Duration::from_millis(150), "{slower:?}");
    assert!(slower < base + Duration::from_millis(200), "{slower:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

async fn timed_round_trip(stream: &mut tokio::net::TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    let back = round_trip(stream, msg).await.expect("echo");
    assert_eq!(back, msg);
    start.elapsed()
}

/// A connection that has been passing bytes straight through (no toxics)
/// takes on a toxic added while it idles with its next bytes, and drops it
/// again once it is removed.
#[tokio::test]
async fn toxics_apply_to_an_idle_live_connection() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    let mut stream = connect(addr).await;
    for _ in 0..20 {
        timed_round_trip(&mut stream, b"plain").await;
    }
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Latency(Latency {
            latency: 100,
            jitter: 0,
        })),
    );
    let slow = timed_round_trip(&mut stream, b"slowed").await;
    assert!(slow >= Duration::from_millis(100), "{slow:?}");
    chaos
        .remove_toxic("p", "latency_downstream")
        .expect("remove toxic");
    let fast = timed_round_trip(&mut stream, b"plain again").await;
    assert!(fast < Duration::from_millis(100), "{fast:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn latency_jitter_stays_within_bounds() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Latency(Latency {
            latency: 60,
            jitter: 30,
        })),
    );
    let mut stream = connect(addr).await;
    let mut samples = Vec::new();
    for i in 0..12 {
        let start = Instant::now();
        round_trip(&mut stream, format!("{i}").as_bytes())
            .await
            .expect("echo");
        samples.push(start.elapsed());
    }
    let (min, max) = (samples.iter().min().copied(), samples.iter().max().copied());
    assert!(
        min.is_some_and(|d| d >= Duration::from_millis(30)),
        "{samples:?}"
    );
    assert!(
        max.is_some_and(|d| d < Duration::from_millis(90 + 60)),
        "{samples:?}"
    );
    assert!(min != max, "jitter varies the delay: {samples:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn bandwidth_caps_throughput() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    let payload = vec![42u8; 50_000];
    let mut stream = connect(addr).await;
    let start = Instant::now();
    round_trip(&mut stream, &payload).await.expect("echo");
    let unthrottled = start.elapsed();

    // 100 KB/s: 50 KB takes half a second.
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Bandwidth(Bandwidth { rate: 100 })).stream(Stream::Upstream),
    );
    let mut stream = connect(addr).await;
    let start = Instant::now();
    assert_eq!(
        round_trip(&mut stream, &payload).await.expect("echo"),
        payload
    );
    let throttled = start.elapsed();
    assert!(throttled >= Duration::from_millis(450), "{throttled:?}");
    assert!(throttled < Duration::from_millis(1500), "{throttled:?}");
    assert!(unthrottled < Duration::from_millis(200), "{unthrottled:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn timeout_swallows_data_and_closes_after_the_timeout() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Timeout(Timeout { timeout: 200 })),
    );
    let start = Instant::now();
    let mut stream = connect(addr).await;
    stream.write_all(b"hello?").await.expect("write");
    let got = read_to_end(&mut stream, usize::MAX)
        .await
        .expect("closed, not failed");
    let elapsed = start.elapsed();
    assert!(got.is_empty(), "no data gets through: {got:?}");
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn timeout_zero_never_closes_until_removed() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Timeout(Timeout { timeout: 0 })),
    );
    let mut stream = connect(addr).await;
    stream.write_all(b"hello?").await.expect("write");
    let mut buf = [0u8; 16];
    // Neither data nor a close within a bounded wait.
    let waited = tokio::time::timeout(Duration::from_millis(600), stream.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "timeout 0 must neither deliver nor close: {waited:?}"
    );
    // Removing it closes the stalled connection, as in Toxiproxy.
    chaos
        .remove_toxic("p", "timeout_downstream")
        .expect("remove");
    let rest = read_to_end(&mut stream, usize::MAX).await.expect("closed");
    assert!(rest.is_empty(), "{rest:?}");
    // New connections are unaffected.
    let mut fresh = connect(addr).await;
    assert_eq!(round_trip(&mut fresh, b"ok").await.expect("echo"), b"ok");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn reset_peer_resets_the_connection() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::ResetPeer(ResetPeer { timeout: 100 })),
    );
    let mut stream = connect(addr).await;
    let start = Instant::now();
    stream.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("answer in time");
    let elapsed = start.elapsed();
    match read {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn slicer_delivers_everything_in_small_chunks() {
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let sender = Server::sender(data.clone()).await;
    let (chaos, addr) = proxy_to(1, sender.addr).await;

    // Without the slicer a few reads get everything.
    let mut stream = connect(addr).await;
    assert_eq!(
        read_to_end(&mut stream, data.len()).await.expect("read"),
        data
    );
    drop(stream);

    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Slicer(Slicer {
            average_size: 50,
            size_variation: 20,
            delay: 2000,
        })),
    );
    let mut stream = connect(addr).await;
    let mut got = Vec::new();
    let mut reads = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while got.len() < data.len() {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early after {} bytes", got.len());
            reads.push(n);
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("all data in time");
    assert_eq!(got, data);
    // 3000 bytes in ~50-byte slices 2 ms apart: dozens of separate reads.
    assert!(reads.len() >= 20, "{} reads: {reads:?}", reads.len());
    chaos.shutdown().await;
    sender.stop().await;
}

#[tokio::test]
async fn limit_data_closes_after_exactly_the_limit() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::LimitData(LimitData { bytes: 10 })),
    );
    let mut stream = connect(addr).await;
    let payload: Vec<u8> = (0..100u8).collect();
    stream.write_all(&payload).await.expect("write");
    let got = read_to_end(&mut stream, usize::MAX).await.expect("read");
    assert_eq!(got, &payload[..10]);
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let sender = Server::sender(b"bye".to_vec()).await;
    let (chaos, addr) = proxy_to(1, sender.addr).await;

    let mut stream = connect(addr).await;
    let start = Instant::now();
    assert_eq!(
        read_to_end(&mut stream, usize::MAX).await.expect("read"),
        b"bye"
    );
    let quick = start.elapsed();

    add(
        &chaos,
        ToxicSpec::new(ToxicKind::SlowClose(SlowClose { delay: 300 })),
    );
    let mut stream = connect(addr).await;
    let start = Instant::now();
    let mut greeting = [0u8; 3];
    tokio::time::timeout(WAIT, stream.read_exact(&mut greeting))
        .await
        .expect("data in time")
        .expect("data");
    let data_at = start.elapsed();
    assert_eq!(&greeting, b"bye");
    assert!(read_to_end(&mut stream, usize::MAX)
        .await
        .expect("read")
        .is_empty());
    let closed_at = start.elapsed();
    assert!(
        data_at < Duration::from_millis(200),
        "data is not delayed: {data_at:?}"
    );
    assert!(closed_at >= Duration::from_millis(300), "{closed_at:?}");
    assert!(quick < Duration::from_millis(200), "{quick:?}");
    chaos.shutdown().await;
    sender.stop().await;
}

/// Which of `n` sequential connections a half-toxic `limit_data` cut short.
async fn affected_pattern(seed: u64, n: usize) -> Vec<bool> {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(seed, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::LimitData(LimitData { bytes: 1 })).toxicity(0.5),
    );
    let mut pattern = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = connect(addr).await;
        stream.write_all(b"hello").await.expect("write");
        stream.shutdown().await.expect("shutdown");
        let got = read_to_end(&mut stream, usize::MAX).await.expect("read");
        match got.as_slice() {
            b"h" => pattern.push(true),
            b"hello" => pattern.push(false),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    chaos.shutdown().await;
    echo.stop().await;
    pattern
}

#[tokio::test]
async fn toxicity_affects_a_seeded_share_of_connections() {
    let first = affected_pattern(11, 40).await;
    let affected = first.iter().filter(|a| **a).count();
    assert!(
        (10..=30).contains(&affected),
        "{affected}/40 affected: {first:?}"
    );
    assert_eq!(
        affected_pattern(11, 40).await,
        first,
        "the same seed makes the same choices"
    );
    assert_ne!(
        affected_pattern(12, 40).await,
        first,
        "another seed makes other choices"
    );
}

#[tokio::test]
async fn toxicity_zero_and_one() {
    let echo = Server::echo().await;
    let (chaos, addr) = proxy_to(1, echo.addr).await;
    add(
        &chaos,
        ToxicSpec::new(ToxicKind::Timeout(Timeout { timeout: 0 })).toxicity(0.0),
    );
    let mut stream = connect(addr).await;
    assert_eq!(
        round_trip(&mut stream, b"spared").await.expect("echo"),
        b"spared"
    );
    chaos
        .update_toxic(
            "p",
            "timeout_downstream",
            gauntlet_chaos::ToxicUpdate::toxicity(1.0),
        )
        .expect("update");
    let mut stream = connect(addr).await;
    stream.write_all(b"swallowed").await.expect("write");
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
            .await
            .is_err()
    );
    chaos.shutdown().await;
    echo.stop().await;
}
