//! Proxy life cycle on real sockets, and the no-data-loss rule when toxics
//! come and go on a live connection.

use std::net::SocketAddr;
use std::sync::Arc;

use gauntlet_chaos::{
    Bandwidth, Chaos, ChaosError, Latency, LimitData, ProxySpec, ProxyUpdate, Slicer, SlowClose,
    Stream, ToxicKind, ToxicSpec, ToxicUpdate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::common::{connect, eventually, read_to_end, refused, round_trip, Server, WAIT};

async fn proxy_to(chaos: &Chaos, name: &str, upstream: SocketAddr) -> SocketAddr {
    chaos
        .create_proxy(ProxySpec::new(name, "127.0.0.1:0", upstream.to_string()))
        .await
        .expect("create proxy")
        .listen_addr()
        .expect("bound address")
}

#[tokio::test]
async fn disabling_closes_connections_and_refuses_new_ones() {
    let echo = Server::echo().await;
    let chaos = Chaos::new(1);
    let addr = proxy_to(&chaos, "p", echo.addr).await;
    let mut live = connect(addr).await;
    assert_eq!(round_trip(&mut live, b"hi").await.expect("echo"), b"hi");

    let off = chaos.set_enabled("p", false).await.expect("disable");
    assert!(!off.enabled);
    assert!(read_to_end(&mut live, usize::MAX)
        .await
        .map_or(true, |rest| rest.is_empty()));
    assert!(refused(addr).await);

    let on = chaos.set_enabled("p", true).await.expect("enable");
    assert_eq!(
        on.listen_addr(),
        Some(addr),
        "the port is kept across disable/enable"
    );
    let mut again = connect(addr).await;
    assert_eq!(
        round_trip(&mut again, b"back").await.expect("echo"),
        b"back"
    );
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn changing_the_upstream_restarts_the_proxy() {
    let first = Server::start(|mut s| async move {
        let _ = s.write_all(b"first").await;
    })
    .await;
    let second = Server::start(|mut s| async move {
        let _ = s.write_all(b"second").await;
    })
    .await;
    let chaos = Chaos::new(1);
    let addr = proxy_to(&chaos, "p", first.addr).await;
    let mut old = connect(addr).await;
    let mut greeting = [0u8; 5];
    old.read_exact(&mut greeting).await.expect("greeting");
    assert_eq!(&greeting, b"first");

    let update = ProxyUpdate {
        upstream: Some(second.addr.to_string()),
        ..ProxyUpdate::default()
    };
    let updated = chaos.update_proxy("p", update).await.expect("update");
    assert!(updated.enabled);
    assert_eq!(updated.listen_addr(), Some(addr));
    // The old connection was dropped with the restart.
    assert!(read_to_end(&mut old, usize::MAX)
        .await
        .map_or(true, |rest| rest.is_empty()));
    let mut new = connect(addr).await;
    assert_eq!(read_to_end(&mut new, 6).await.expect("greeting"), b"second");

    // A new listen address moves the proxy.
    let update = ProxyUpdate {
        listen: Some("127.0.0.1:0".into()),
        ..ProxyUpdate::default()
    };
    let moved = chaos.update_proxy("p", update).await.expect("move");
    let new_addr = moved.listen_addr().expect("address");
    assert_ne!(new_addr, addr);
    assert!(refused(addr).await);
    let mut there = connect(new_addr).await;
    assert_eq!(
        read_to_end(&mut there, 6).await.expect("greeting"),
        b"second"
    );
    chaos.shutdown().await;
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn reset_reenables_and_clears_and_errors_name_the_culprit() {
    let echo = Server::echo().await;
    let chaos = Chaos::new(1);
    let a = proxy_to(&chaos, "a", echo.addr).await;
    proxy_to(&chaos, "b", echo.addr).await;
    chaos
        .add_toxic(
            "a",
            ToxicSpec::new(ToxicKind::Latency(Latency {
                latency: 1000,
                jitter: 0,
            })),
        )
        .expect("add");
    chaos.set_enabled("a", false).await.expect("disable");
    chaos.reset().await.expect("reset");
    for proxy in chaos.list() {
        assert!(proxy.enabled, "{proxy:?}");
        assert!(proxy.toxics.is_empty(), "{proxy:?}");
    }
    let mut stream = connect(a).await;
    assert_eq!(
        round_trip(&mut stream, b"fast").await.expect("echo"),
        b"fast"
    );

    let err = chaos.get("nope").expect_err("missing");
    assert!(matches!(err, ChaosError::ProxyNotFound(_)));
    assert_eq!(err.to_string(), "proxy not found: \"nope\"");
    assert_eq!(err.api_message(), "proxy not found");
    let err = chaos
        .add_toxic(
            "a",
            ToxicSpec::new(ToxicKind::Latency(Latency::default())).toxicity(f32::NAN),
        )
        .expect_err("NaN toxicity");
    assert_eq!(err.status(), 400);
    chaos.shutdown().await;
    assert!(chaos.list().is_empty());
    assert!(refused(a).await, "shutdown closes every listener");
    echo.stop().await;
}

/// Sends a known byte sequence through the proxy and back while toxics are
/// added to and removed from both directions of the live connection, every
/// 32 KiB of progress; everything must come back, once, in order.
#[tokio::test]
async fn toggling_toxics_mid_stream_loses_no_bytes() {
    const TOTAL: usize = 1 << 20;
    const BLOCK: usize = 32 * 1024;
    let echo = Server::echo().await;
    let chaos = Chaos::new(7);
    let addr = proxy_to(&chaos, "p", echo.addr).await;
    let payload: Arc<Vec<u8>> = Arc::new(
        (0..TOTAL as u32 / 4)
            .flat_map(|i| i.to_be_bytes())
            .collect(),
    );

    let stream = connect(addr).await;
    let (mut reader, mut writer) = stream.into_split();
    let (progress_tx, mut progress) = watch::channel(0usize);
    let (toggled_tx, toggled_rx) = watch::channel(0usize);

    // The writer stays at most four blocks ahead of the toggles, so toggles
    // always happen with data in flight and the stream cannot finish first.
    let send = tokio::spawn({
        let payload = Arc::clone(&payload);
        let mut toggled = toggled_rx;
        async move {
            for (k, block) in payload.chunks(BLOCK).enumerate() {
                if toggled.wait_for(|t| *t + 4 >= k).await.is_err() {
                    break;
                }
                writer.write_all(block).await?;
            }
            writer.shutdown().await
        }
    });
    let receive = tokio::spawn(async move {
        let mut got = Vec::with_capacity(TOTAL);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(got);
            }
            got.extend_from_slice(&buf[..n]);
            let _ = progress_tx.send(got.len());
        }
    });

    let toxics = [
        ToxicKind::Latency(Latency {
            latency: 5,
            jitter: 3,
        }),
        ToxicKind::Slicer(Slicer {
            average_size: 500,
            size_variation: 200,
            delay: 100,
        }),
        ToxicKind::Bandwidth(Bandwidth { rate: 4_000 }),
        ToxicKind::SlowClose(SlowClose { delay: 1 }),
        ToxicKind::LimitData(LimitData { bytes: 1 << 40 }),
    ];
    let start = tokio::time::Instant::now();
    let mut toggles = 0usize;
    let mut next_mark = BLOCK;
    let toggled = tokio::time::timeout(WAIT * 3, async {
        while next_mark < TOTAL {
            if progress.wait_for(|n| *n >= next_mark).await.is_err() {
                break;
            }
            next_mark += BLOCK;
            let kind = toxics[toggles % toxics.len()].clone();
            // Pairs in the same direction, so a removed toxic often hands its
            // queue to another toxic rather than straight to the socket.
            let stream = if (toggles / 2) % 2 == 0 {
                Stream::Upstream
            } else {
                Stream::Downstream
            };
            let name = format!("t{toggles}");
            chaos
                .add_toxic("p", ToxicSpec::new(kind).name(&name).stream(stream))
                .expect("add");
            if toggles % 3 == 0 {
                chaos
                    .update_toxic(
                        "p",
                        &name,
                        ToxicUpdate::default().with("delay", 1).with("jitter", 1),
                    )
                    .expect("update");
            }
            // Three toxics live at a time; the oldest goes while it holds data.
            if toggles >= 3 {
                chaos
                    .remove_toxic("p", &format!("t{}", toggles - 3))
                    .expect("remove");
            }
            toggles += 1;
            let _ = toggled_tx.send(toggles);
        }
        let _ = toggled_tx.send(usize::MAX / 2);
    })
    .await;
    assert!(
        toggled.is_ok(),
        "stream stalled after {} bytes",
        *progress.borrow()
    );
    chaos.reset().await.expect("clear toxics");

    let sent = tokio::time::timeout(WAIT, send)
        .await
        .expect("send in time")
        .expect("send task");
    sent.expect("send");
    let got = tokio::time::timeout(WAIT, receive)
        .await
        .expect("receive in time")
        .expect("receive task")
        .expect("receive");
    assert!(toggles >= 20, "only {toggles} toggles");
    // Sanity check that the toxics held data at all: the bandwidth toxic
    // alone, live for 32 KiB at a time, accounts for more than this.
    let elapsed = start.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(40),
        "toxics never engaged: {elapsed:?}"
    );
    assert_eq!(got.len(), TOTAL);
    assert!(got == *payload, "bytes were lost, duplicated or reordered");
    chaos.shutdown().await;
    echo.stop().await;
}

#[tokio::test]
async fn dropping_the_registry_stops_its_proxies() {
    let echo = Server::echo().await;
    let chaos = Chaos::new(1);
    let addr = proxy_to(&chaos, "p", echo.addr).await;
    drop(chaos);
    assert!(
        eventually(|| refused(addr)).await,
        "listener still open after drop"
    );
    echo.stop().await;
}
