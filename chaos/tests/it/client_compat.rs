//! The `toxiproxy_rust` client (a blocking Toxiproxy client) drives our API,
//! and every change it makes shows on real traffic through the proxy.
//!
//! The client blocks, so this is a plain test: the servers run on their own
//! runtime and the client calls come from the test thread.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

use crate::common::{self, Server};

/// A blocking echo round trip through `addr`; `Err` if the connection fails
/// or closes first.
fn echo_once(addr: SocketAddr, msg: &[u8]) -> std::io::Result<(Vec<u8>, Duration)> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, common::WAIT)?;
    stream.set_read_timeout(Some(common::WAIT))?;
    stream.set_nodelay(true)?;
    stream.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    let mut got = 0;
    while got < back.len() {
        let n = stream.read(&mut back[got..])?;
        if n == 0 {
            back.truncate(got);
            return Ok((back, start.elapsed()));
        }
        got += n;
    }
    Ok((back, start.elapsed()))
}

/// Whether the connection is closed within `WAIT` with no data delivered.
fn closes_without_data(addr: SocketAddr) -> std::io::Result<Duration> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, common::WAIT)?;
    stream.set_read_timeout(Some(common::WAIT))?;
    stream.write_all(b"anyone there?")?;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(start.elapsed()),
        Ok(n) => Err(std::io::Error::other(format!("got {n} bytes"))),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(start.elapsed()),
        Err(e) => Err(e),
    }
}

#[test]
fn toxiproxy_rust_client_drives_the_standalone_api() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let echo = runtime.block_on(Server::echo());
    let api_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind api");
    let api_addr = api_listener.local_addr().expect("api addr");
    drop(api_listener);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(gauntlet_chaos::run_standalone(api_addr, 5, async move {
        let _ = stopped.await;
    }));

    let client = Client::new(api_addr);
    let deadline = Instant::now() + common::WAIT;
    while !client.is_running() {
        assert!(Instant::now() < deadline, "API did not come up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let version = client.version().expect("version");
    assert!(version.contains("\"version\""), "{version}");

    let proxies = client
        .populate(vec![ProxyPack::new(
            "echo".into(),
            "127.0.0.1:0".into(),
            echo.addr.to_string(),
        )])
        .expect("populate");
    assert_eq!(proxies.len(), 1);
    let addr: SocketAddr = proxies[0].proxy_pack.listen.parse().expect("bound address");
    assert_ne!(addr.port(), 0);
    assert!(client.all().expect("all").contains_key("echo"));

    let proxy = client.find_and_reset_proxy("echo").expect("find");
    let (back, base) = echo_once(addr, b"ping").expect("plain echo");
    assert_eq!(back, b"ping");

    // latency: the reply is held for 200 ms.
    proxy.with_latency("downstream".into(), 200, 0, 1.0);
    let toxics = proxy.toxics().expect("toxics");
    assert_eq!(toxics.len(), 1);
    assert_eq!(toxics[0].name, "latency_downstream");
    assert_eq!(toxics[0].attributes.get("latency"), Some(&200));
    let (back, slow) = echo_once(addr, b"ping").expect("slow echo");
    assert_eq!(back, b"ping");
    assert!(slow >= Duration::from_millis(200), "{slow:?}");
    assert!(
        slow < Duration::from_millis(200) + Duration::from_millis(400) + base,
        "{slow:?}"
    );
    proxy.delete_all_toxics().expect("delete toxics");
    assert!(proxy.toxics().expect("toxics").is_empty());

    // timeout: nothing comes back, and the connection closes after 300 ms.
    proxy.with_timeout("downstream".into(), 300, 1.0);
    let closed_after = closes_without_data(addr).expect("timeout closes the connection");
    assert!(
        closed_after >= Duration::from_millis(300),
        "{closed_after:?}"
    );
    proxy.delete_all_toxics().expect("delete toxics");

    // limit_data: exactly 4 bytes, then the connection closes.
    proxy.with_limit_data("downstream".into(), 4, 1.0);
    let (back, _) = echo_once(addr, b"0123456789").expect("limited echo");
    assert_eq!(back, b"0123");
    proxy.delete_all_toxics().expect("delete toxics");

    // disable / enable.
    let refused = |addr| {
        matches!(std::net::TcpStream::connect_timeout(&addr, common::WAIT),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    };
    proxy.disable().expect("disable");
    assert!(refused(addr), "disabled proxy refuses connections");
    assert!(!client.find_proxy("echo").expect("find").proxy_pack.enabled);
    proxy
        .with_down(|| assert!(refused(addr)))
        .expect("with_down");
    assert_eq!(echo_once(addr, b"up").expect("enabled again").0, b"up");

    // reset: toxics gone, proxy enabled.
    proxy.with_latency("upstream".into(), 1000, 0, 1.0);
    proxy.disable().expect("disable");
    client.reset().expect("reset");
    let after = client.find_proxy("echo").expect("find");
    assert!(after.proxy_pack.enabled);
    assert!(after.toxics().expect("toxics").is_empty());
    let (back, fast) = echo_once(addr, b"again").expect("echo after reset");
    assert_eq!(back, b"again");
    assert!(fast < Duration::from_millis(900), "{fast:?}");

    proxy.delete().expect("delete");
    assert!(client.all().expect("all").is_empty());

    let _ = stop.send(());
    runtime.block_on(async {
        let served = server.await.expect("server task");
        assert!(served.is_ok(), "{served:?}");
        echo.stop().await;
    });
}
