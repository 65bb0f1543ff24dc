//! `gauntlet proxy`: the Toxiproxy-compatible fault proxy on its own, so
//! any Toxiproxy client or tool can drive it.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The control API's address. Loopback unless you mean otherwise.
    #[arg(long, default_value = super::serve::DEFAULT_API_ADDR)]
    listen: SocketAddr,
    /// Seeds which connections a toxic with toxicity < 1 affects.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    println!("fault API on http://{} (Ctrl-C to stop)", args.listen);
    gauntlet_chaos::run_standalone(args.listen, args.seed, super::serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
