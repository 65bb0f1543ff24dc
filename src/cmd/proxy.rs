//! `gauntlet proxy`: the Toxiproxy-compatible fault proxy on its own, so
//! any Toxiproxy client or tool can drive it. `--config` loads the proxies
//! of a Toxiproxy config file at start, as `toxiproxy-server -config` does
//! (the compose stack's `toxiproxy.json` is one).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use gauntlet_chaos::Chaos;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The control API's address. Loopback unless you mean otherwise; port
    /// 0 picks a free one (printed).
    #[arg(long, default_value = super::serve::DEFAULT_API_ADDR)]
    listen: SocketAddr,
    /// Seeds which connections a toxic with toxicity < 1 affects.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A Toxiproxy config file: a JSON array of
    /// {"name", "listen", "upstream", "enabled"}, created before the API
    /// answers.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let chaos = Chaos::new(args.seed);
    if let Some(path) = &args.config {
        if let Err(e) = populate(&chaos, path).await {
            chaos.shutdown().await;
            return Err(e);
        }
    }
    println!("fault API on http://{addr} (Ctrl-C to stop)");
    let served =
        gauntlet_chaos::run_api(listener, chaos.clone(), super::serve::shutdown_signal()).await;
    chaos.shutdown().await;
    served.context("the fault API failed")?;
    Ok(ExitCode::SUCCESS)
}

async fn populate(chaos: &Chaos, path: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let specs = gauntlet_chaos::proxies_from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    let proxies = chaos
        .populate(specs)
        .await
        .with_context(|| format!("{}: cannot create its proxies", path.display()))?;
    for p in &proxies {
        println!("proxy {:<22} {} -> {}", p.name, p.listen, p.upstream);
    }
    Ok(())
}
