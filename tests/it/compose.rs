//! The compose stack without the containers: the topology of
//! `docker-compose.yml` as separate processes on loopback. One
//! `gauntlet serve --service NAME` per service (two for payments, sharing
//! its database, `--instance 0/2` and `1/2`), one `gauntlet proxy` loaded
//! with the links of `toxiproxy.json`, the embedded broker behind its
//! `kafka` proxy, and `scenarios/compose-smoke.toml` run against it with
//! its addresses pointed here.
//!
//! What differs from the containers: addresses (loopback ports instead of
//! host names, so the proxies' listen and upstream addresses are
//! rewritten, and each upstream set through the Toxiproxy API once its
//! service is up), and the broker (the embedded one, so the consumers take
//! static shares of the partitions instead of joining their group).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gauntlet::run::{self, RunOptions};
use gauntlet_events::EmbeddedBroker;
use gauntlet_reports::parse_scenario;
use gauntlet_system::{Service, LINKS};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A proxy as `toxiproxy.json` declares it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Declared {
    name: String,
    listen: String,
    upstream: String,
}

fn declared() -> Vec<Declared> {
    let text = std::fs::read_to_string(repo_file("toxiproxy.json")).expect("toxiproxy.json");
    serde_json::from_str(&text).expect("toxiproxy.json is a Toxiproxy config")
}

/// The compose service an upstream `host:port` names.
fn host(upstream: &str) -> &str {
    upstream.split(':').next().unwrap_or_default()
}

/// Every link of the system has its proxy in `toxiproxy.json`, named as
/// the scenarios name it, pointing at the callee; and in
/// `docker-compose.yml` the caller's URL for that callee is that proxy.
#[test]
fn toxiproxy_json_has_a_proxy_for_every_link_and_compose_uses_it() {
    let proxies = declared();
    let by_name: BTreeMap<&str, &Declared> = proxies.iter().map(|p| (p.name.as_str(), p)).collect();
    assert_eq!(by_name.len(), proxies.len(), "proxy names are unique");
    let compose = std::fs::read_to_string(repo_file("docker-compose.yml")).expect("compose file");
    let mut expected = vec!["gateway".to_string(), "kafka".to_string()];
    for (from, to) in LINKS {
        let name = gauntlet_system::config::link_name(from, to);
        let proxy = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("toxiproxy.json has no proxy for link {name}"));
        assert_eq!(proxy.upstream, format!("{to}:8000"), "{name}'s upstream");
        let port = proxy.listen.rsplit(':').next().expect("a port");
        let var = format!(
            "GAUNTLET_{}_URL: http://toxiproxy:{port}",
            to.as_str().to_ascii_uppercase()
        );
        let block = compose_service(&compose, from.as_str());
        assert!(
            block.lines().any(|l| l.trim() == var),
            "docker-compose.yml: {from} must reach {to} through its link's proxy ({var})"
        );
        expected.push(name);
    }
    // The links a scenario may name are exactly these.
    let mut scenario_links: Vec<String> = gauntlet_reports::topology::LINKS
        .iter()
        .map(|l| l.to_string())
        .collect();
    scenario_links.sort();
    expected.sort();
    let mut names: Vec<String> = by_name.keys().map(|n| n.to_string()).collect();
    names.sort();
    assert_eq!(names, expected, "toxiproxy.json's proxies");
    assert_eq!(scenario_links, expected, "the scenarios' links");
    assert_eq!(host(&by_name["gateway"].upstream), "gateway");
    assert_eq!(host(&by_name["kafka"].upstream), "kafka");
    assert!(
        compose.contains("KAFKA_BROKERS: toxiproxy:9092")
            && compose.contains("SERVICES://toxiproxy:9092"),
        "the services reach Kafka through the kafka proxy, and Kafka advertises it"
    );
}

/// The lines of one service's block in the compose file: those under
/// `  name:`, indented deeper, up to the next service.
fn compose_service(compose: &str, service: &str) -> String {
    let head = format!("  {service}:");
    let mut lines = compose.lines().skip_while(|l| *l != head);
    assert!(
        lines.next().is_some(),
        "docker-compose.yml has no service {service}"
    );
    lines
        .take_while(|l| l.trim().is_empty() || l.starts_with("   "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `gauntlet ARGS` and waits for the stdout line starting with
    /// `ready`; returns the process and that line. Its stderr goes to
    /// `logs/NAME.log`.
    fn start(name: &str, args: &[String], logs: &Path, ready: &str) -> (Proc, String) {
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("GAUNTLET_INSTANCE")
            .env_remove("GAUNTLET_MEMBERSHIP")
            .env_remove("KAFKA_BROKERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("gauntlet starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Read to the end, so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&ready) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let mut proc = Proc {
            name: name.to_string(),
            child,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => (proc, line),
            Err(_) => {
                proc.stop();
                let log =
                    std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
                panic!("{name} did not start: {args:?}\n{log}");
            }
        }
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM: each service drains and leaves as a container would.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address after the last space of a ready line (`http://` removed).
fn addr_of(line: &str, prefix: &str) -> String {
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .expect("an address")
        .trim_start_matches("http://")
        .to_string()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("fault API answers");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {url}: {status} {body}");
        body
    }

    /// Points a proxy at where its service now listens.
    async fn set_upstream(&self, proxy: &str, upstream: &str) {
        self.send(
            reqwest::Method::POST,
            &format!("/proxies/{}", encode(proxy)),
            Some(json!({ "upstream": upstream })),
        )
        .await;
    }
}

/// A proxy name as a path segment (`orders->payments` has a `>`).
fn encode(name: &str) -> String {
    name.replace('>', "%3E")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_topology_as_processes_passes_compose_smoke() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // toxiproxy.json's proxies, on loopback ports; every upstream is set
    // once its service is up.
    let proxies = declared();
    let config: Vec<Value> = proxies
        .iter()
        .map(|p| json!({ "name": p.name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9" }))
        .collect();
    let config_file = dir.path().join("toxiproxy.json");
    std::fs::write(&config_file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let (proxy, line) = Proc::start(
        "proxy",
        &[
            "proxy".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--config".into(),
            config_file.display().to_string(),
        ],
        &logs,
        "fault API on ",
    );
    let api_addr = addr_of(&line, "fault API on ");
    let api = Api {
        base: format!("http://{api_addr}"),
        http: http.clone(),
    };
    let listed = api.send(reqwest::Method::GET, "/proxies", None).await;
    let listen: BTreeMap<String, String> = proxies
        .iter()
        .map(|p| {
            let at = listed[&p.name]["listen"]
                .as_str()
                .unwrap_or_else(|| panic!("proxy {} created: {listed}", p.name));
            (p.name.clone(), at.to_string())
        })
        .collect();

    // The broker, advertising its proxy, as Kafka advertises Toxiproxy in
    // the compose file.
    let kafka = listen["kafka"].clone();
    let broker = EmbeddedBroker::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Some(kafka.clone()),
    )
    .await
    .expect("broker");
    api.set_upstream("kafka", &broker.bootstrap()).await;
    let events = gauntlet_system::events::EventsConfig::default();
    gauntlet_events::ensure_topics(&kafka, &gauntlet_system::events::topic_specs(&events))
        .await
        .expect("topics, as kafka-init creates them");

    // The services, callees first, as compose's depends_on orders them.
    let order: [(&str, Service, Option<&str>); 9] = [
        ("users", Service::Users, None),
        ("catalog", Service::Catalog, None),
        ("provider", Service::Provider, None),
        ("notifications", Service::Notifications, None),
        ("analytics", Service::Analytics, None),
        ("payments", Service::Payments, Some("0/2")),
        ("payments-2", Service::Payments, Some("1/2")),
        ("orders", Service::Orders, None),
        ("gateway", Service::Gateway, None),
    ];
    let mut procs = vec![proxy];
    let mut own: BTreeMap<&str, String> = BTreeMap::new();
    for (process, service, instance) in order {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--service".into(),
            service.as_str().into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--kafka-brokers".into(),
            kafka.clone(),
        ];
        for (from, to) in LINKS {
            if from == service {
                let link = gauntlet_system::config::link_name(from, to);
                args.push("--peer".into());
                args.push(format!("{to}=http://{}", listen[&link]));
            }
        }
        if let Some(share) = instance {
            args.push("--instance".into());
            args.push(share.into());
        }
        let prefix = format!("{service} ");
        let (p, line) = Proc::start(process, &args, &logs, &prefix);
        let addr = addr_of(&line, &prefix);
        // Each proxy whose upstream is this service now reaches it (both
        // payments instances answer to `payments` in compose; here the
        // first one takes the synchronous calls).
        if instance.is_none_or(|s| s == "0/2") {
            for d in proxies
                .iter()
                .filter(|d| host(&d.upstream) == service.as_str())
            {
                api.set_upstream(&d.name, &addr).await;
            }
        }
        own.insert(process, addr);
        procs.push(p);
    }

    // A fault through the Toxiproxy API, as any Toxiproxy client would
    // add one: latency on the gateway's link, felt by a request, removed.
    let gateway = format!("http://{}", listen["gateway"]);
    api.send(
        reqwest::Method::POST,
        "/proxies/gateway/toxics",
        Some(
            json!({ "name": "slow", "type": "latency", "stream": "downstream",
                     "attributes": { "latency": 300 } }),
        ),
    )
    .await;
    let started = Instant::now();
    let health = http
        .get(format!("{gateway}/health"))
        .send()
        .await
        .expect("gateway through its proxy");
    assert!(health.status().is_success());
    let slowed = started.elapsed();
    assert!(slowed >= Duration::from_millis(300), "{slowed:?}");
    api.send(
        reqwest::Method::DELETE,
        "/proxies/gateway/toxics/slow",
        None,
    )
    .await;

    // compose-smoke, pointed at these ports.
    let text = std::fs::read_to_string(repo_file("scenarios/compose-smoke.toml")).unwrap();
    let mut text = text;
    let mut replace = |from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "compose-smoke.toml names {from} once"
        );
        text = text.replace(from, to);
    };
    replace("\"http://127.0.0.1:8080\"", &format!("\"{gateway}\""));
    replace("\"127.0.0.1:8474\"", &format!("\"{api_addr}\""));
    replace("\"127.0.0.1:9094\"", &format!("\"{kafka}\""));
    let ports = [
        ("gateway", "18000"),
        ("users", "18001"),
        ("catalog", "18002"),
        ("orders", "18003"),
        ("payments", "18004"),
        ("provider", "18005"),
        ("notifications", "18006"),
        ("analytics", "18007"),
    ];
    for (process, port) in ports {
        replace(
            &format!("\"http://127.0.0.1:{port}\""),
            &format!("\"http://{}\"", own[process]),
        );
    }
    let scenario = parse_scenario("compose-smoke.toml", &text).expect("valid scenario");
    let out = tempfile::tempdir().expect("out dir");
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        progress: false,
        ..RunOptions::default()
    };
    let outcome = run::run(&scenario, &opts, CancellationToken::new())
        .await
        .expect("runs");
    let r = &outcome.report;
    let failed = crate::common::failures(r);
    assert!(r.passed, "{failed:#?} {:?}", outcome.notes);
    assert!(r.faults.iter().all(|f| f.error.is_none()), "{:?}", r.faults);
    assert!(
        r.faults.iter().any(|f| f.action == "orders->payments down"
            && f.phase == Some(gauntlet_reports::report::FaultPhase::Undone)),
        "{:?}",
        r.faults
    );

    // Every order placed is in the client history with the trace of the
    // request that placed it, as the system recorded it.
    let run_dir = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the run's directory");
    for flow in ["sync", "async"] {
        let history: Value = serde_json::from_slice(
            &std::fs::read(run_dir.join(flow).join("history.json")).unwrap(),
        )
        .unwrap();
        let placed: Vec<&Value> = history
            .as_array()
            .expect("a list of operations")
            .iter()
            .filter(|op| op["kind"] == "place_order" && op["order_id"].is_i64())
            .collect();
        assert!(!placed.is_empty(), "{flow}: orders placed");
        for op in placed {
            let trace = op["trace_id"].as_str().unwrap_or_default();
            assert!(
                trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
                "{flow}: {op}"
            );
        }
    }

    // Both payments instances took their share of the inventory events,
    // each from its own partitions.
    let mut handled = Vec::new();
    for process in ["payments", "payments-2"] {
        let events: Value = http
            .get(format!("http://{}/events", own[process]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let processed = events["consumers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["group"] == "payments"))
            .and_then(|c| c["processed"].as_u64())
            .unwrap_or_else(|| panic!("{process}'s consumer: {events}"));
        handled.push(processed);
    }
    eprintln!(
        "payments handled per instance: {} and {}",
        handled[0], handled[1]
    );
    assert!(
        handled.iter().all(|n| *n > 0),
        "each instance handles a share: {handled:?}"
    );
    // Every async order confirmed was charged on a StockReserved event
    // one of them handled.
    let confirmed = r.flows["async"].saga.map_or(0, |s| s.completed);
    assert!(confirmed > 0, "async orders confirmed");
    assert!(
        handled.iter().sum::<u64>() >= confirmed,
        "{handled:?} inventory events handled for {confirmed} confirmed async orders"
    );

    for mut p in procs.into_iter().rev() {
        p.stop();
    }
    broker.stop().await;
}
