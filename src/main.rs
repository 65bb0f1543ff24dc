//! `gauntlet`: a load-testing and chaos harness for microservice resilience,
//! with its own reference system to run it against.
//!
//! # Layout
//!
//! - `main.rs`: argument parsing and logging
//! - `cmd/serve.rs`: `gauntlet serve`, the whole system or one service
//! - `cmd/proxy.rs`: `gauntlet proxy`, the fault proxy on its own
//! - `cmd/run.rs`: `gauntlet run`, scenarios from start to verdict
//! - `cmd/validate.rs`: `gauntlet validate`, scenario files checked
//! - `cmd/report.rs`: `gauntlet report`, report.html drawn from report.json
//! - `cmd/compare.rs`: `gauntlet compare`, two runs, noise-aware verdicts
//! - `cmd/list.rs`: `gauntlet list`, the scenarios in a folder

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "gauntlet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenario files: load and faults against the system, then
    /// invariants and gates; writes report.json, junit.xml and report.html.
    Run(cmd::run::RunArgs),
    /// Check scenario files without running them.
    Validate(cmd::validate::ValidateArgs),
    /// Draw report.html again from a run's report.json.
    Report(cmd::report::ReportArgs),
    /// Compare two runs of one scenario: regressed, improved, unchanged.
    Compare(cmd::compare::CompareArgs),
    /// List the scenarios in a folder.
    List(cmd::list::ListArgs),
    /// Run the reference system (every service, or one with --service).
    Serve(cmd::serve::ServeArgs),
    /// Run the Toxiproxy-compatible fault proxy on its own.
    Proxy(cmd::proxy::ProxyArgs),
}

/// Our own crates at info, everyone else's (the broker's are chatty) at warn.
const DEFAULT_LOG: &str =
    "warn,gauntlet=info,gauntlet_system=info,gauntlet_chaos=info,gauntlet_events=info";
/// During a run the faults are meant: the system's complaints about them
/// would bury the progress line and the summary. The report has it all.
const RUN_LOG: &str = "error,gauntlet=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The commands that only read files need no runtime or logging.
    let cli = match cli.command {
        Command::Validate(args) => return cmd::validate::run(args),
        Command::Report(args) => return cmd::report::run(args),
        Command::List(args) => return cmd::list::run(args),
        Command::Compare(args) => {
            return match cmd::compare::run(args) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        command => Cli { command },
    };
    let default_log = match cli.command {
        Command::Run(_) => RUN_LOG,
        _ => DEFAULT_LOG,
    };
    let provider = match gauntlet::traces::provider() {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "error: cannot export traces to {}: {e}",
                std::env::var(gauntlet::traces::OTLP_ENDPOINT).unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        use tracing_subscriber::Layer as _;
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| default_log.into()),
            );
        tracing_subscriber::registry()
            .with(logs)
            .with(gauntlet::traces::layer(&provider))
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cmd::run::run(args).await,
            Command::Validate(_) | Command::Report(_) | Command::List(_) | Command::Compare(_) => {
                unreachable!("handled before the runtime starts")
            }
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Proxy(args) => cmd::proxy::run(args).await,
        }
    });
    // Whatever is still batched goes out before the process ends.
    if let Err(e) = provider.shutdown() {
        tracing::debug!(error = %e, "trace export did not shut down cleanly");
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
