//! `gauntlet serve`: the reference system on loopback ports until Ctrl-C.
//!
//! Without `--service`, every service runs in this process. With
//! `--service NAME`, only that one runs, listening on `--listen`, and it
//! finds the services it calls from `GAUNTLET_<NAME>_URL` variables (or
//! `--peer name=url`), as one container per service would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use gauntlet::stack::{Kafka, Stack, StackOptions};
use gauntlet_events::Share;
use gauntlet_system::config::Endpoints;
use gauntlet_system::events::{Instance, Membership};
use gauntlet_system::service::ServiceContext;
use gauntlet_system::{Service, SystemConfig, SystemOptions};

/// The gateway's port when none is given, so the README's curl lines work.
pub const DEFAULT_GATEWAY_PORT: u16 = 8080;
/// Toxiproxy's own default control port, so its tooling finds ours.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8474";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run only this service (gateway, users, catalog, orders, payments,
    /// provider, notifications, analytics).
    #[arg(long)]
    service: Option<Service>,
    /// Where the databases live; a fresh temporary directory if not given
    /// (then removed on exit).
    #[arg(long, env = "GAUNTLET_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The gateway's port on 127.0.0.1 (whole system): clients reach it
    /// through the `gateway` fault proxy listening there. 0 picks a free one.
    #[arg(long, default_value_t = DEFAULT_GATEWAY_PORT)]
    gateway_port: u16,
    /// Use this Kafka cluster (host:port[,host:port]) instead of starting
    /// the embedded broker.
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// Where the Toxiproxy-compatible fault API listens (whole system).
    #[arg(long, default_value = DEFAULT_API_ADDR)]
    api_listen: std::net::SocketAddr,
    /// With --service: the address to listen on.
    #[arg(long, env = "GAUNTLET_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// With --service: where a peer service is, as name=url (repeatable);
    /// GAUNTLET_<NAME>_URL variables are read too.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(Service, String)>,
    /// With --service: this process is instance INDEX of COUNT of its
    /// service (e.g. 0/2), sharing its database with the others. Its
    /// relay publishes the outbox rows whose order id is INDEX mod COUNT;
    /// with static membership its consumers take the partitions p with
    /// p mod COUNT = INDEX.
    #[arg(long, env = "GAUNTLET_INSTANCE", value_name = "INDEX/COUNT")]
    instance: Option<Share>,
    /// With --service: how its consumers get partitions. `static` takes
    /// them directly (the embedded broker's way: its coordinator does not
    /// expire a crashed member); `group` joins the consumer group with
    /// cooperative-sticky assignment, for a real Kafka cluster.
    #[arg(long, env = "GAUNTLET_MEMBERSHIP", default_value = "static")]
    membership: Membership,
    /// Seeds every random choice (backoff jitter, provider faults).
    #[arg(long, env = "GAUNTLET_SEED", default_value_t = 1)]
    seed: u64,
    /// The system configuration as a JSON file: resilience settings per
    /// link, provider faults, gateway policies.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_peer(s: &str) -> anyhow::Result<(Service, String)> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("expected name=url, got '{s}'"))?;
    let name = name.parse::<Service>()?;
    Ok((name, url.to_string()))
}

fn load_config(args: &ServeArgs) -> anyhow::Result<SystemConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column())
            })?
        }
        None => SystemConfig::default(),
    };
    config.seed = args.seed;
    Ok(config)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    if args.service.is_none() && args.instance.is_some() {
        bail!("--instance needs --service: the whole system in one process is one instance of each service");
    }
    match args.service {
        None => serve_all(args, config).await,
        Some(name) => serve_one(args, config, name).await,
    }
}

async fn serve_all(args: ServeArgs, config: SystemConfig) -> anyhow::Result<ExitCode> {
    let opts = StackOptions {
        system: SystemOptions {
            data_dir: args.data_dir,
            config,
            addrs: BTreeMap::new(),
            kafka: None,
        },
        gateway_listen: Some(format!("127.0.0.1:{}", args.gateway_port)),
        api_listen: Some(args.api_listen),
        kafka: match args.kafka_brokers {
            Some(b) => Kafka::External(b),
            None => Kafka::Embedded,
        },
    };
    let mut stack = Stack::start(opts)
        .await
        .context("cannot start the system")?;
    println!("gateway       {}", stack.gateway_url());
    {
        let system = stack.system.lock().await;
        println!("  (direct)    {}", system.url(Service::Gateway));
        for name in Service::ALL {
            if name != Service::Gateway {
                println!("{:<13} {}", name.as_str(), system.url(name));
            }
        }
        println!("data dir      {}", system.data_dir().display());
    }
    if let Some(kafka) = stack.kafka().await {
        println!("kafka         {kafka}");
    }
    if let Some(api) = stack.api_addr() {
        println!(
            "fault API     http://{api}  (Toxiproxy-compatible; GET /proxies lists every link)"
        );
    }
    println!("Ctrl-C to stop.");
    shutdown_signal().await;
    eprintln!("stopping...");
    stack.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn serve_one(
    args: ServeArgs,
    config: SystemConfig,
    name: Service,
) -> anyhow::Result<ExitCode> {
    let mut endpoints = Endpoints::default();
    for peer in Service::ALL {
        let var = format!("GAUNTLET_{}_URL", peer.as_str().to_ascii_uppercase());
        if let Ok(url) = std::env::var(&var) {
            endpoints.services.insert(peer, url);
        }
    }
    for (peer, url) in args.peers {
        endpoints.services.insert(peer, url);
    }
    endpoints.kafka = args.kafka_brokers.clone();
    let Some(data_dir) = args.data_dir else {
        bail!("--service needs --data-dir (or GAUNTLET_DATA_DIR): its database must outlive the process");
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let listener = gauntlet_system::service::bind(name, &args.listen).await?;
    let addr = listener.local_addr()?;
    endpoints.services.insert(name, format!("http://{addr}"));
    let instance = Instance {
        share: args.instance.unwrap_or_default(),
        membership: args.membership,
    };
    let ctx = ServiceContext::new(
        name,
        data_dir,
        Arc::new(config),
        Arc::new(endpoints),
        gauntlet_system::client::http_client(),
    )
    .with_instance(instance);
    let running = gauntlet_system::services::start(ctx, listener)
        .await
        .with_context(|| format!("cannot start {name}"))?;
    if instance.share.is_whole() {
        println!("{name} http://{addr}");
    } else {
        println!(
            "{name} http://{addr} instance {} ({} membership)",
            instance.share,
            instance.membership.as_str()
        );
    }
    shutdown_signal().await;
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM as a container runtime sends.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
