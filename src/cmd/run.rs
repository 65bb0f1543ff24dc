//! `gauntlet run <scenario>...`: runs scenarios one after another and
//! judges each. Exit status: 0 when every gate and invariant of every
//! scenario held, 1 when any failed (or a run was cut short), 2 when a
//! scenario is invalid or the system could not start.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use gauntlet::run::{self, RunOptions, DEFAULT_OUT_DIR};
use gauntlet_reports::Scenario;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (TOML), run in the order given.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where run directories are created.
    #[arg(long, default_value = DEFAULT_OUT_DIR)]
    out: PathBuf,
    /// Never show the live progress line (it is off anyway when standard
    /// error is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

/// Ctrl-C: the first heals, stops and keeps partial results; the second
/// exits at once. Installed before the load generator would install its
/// own (which would stop only the load, not the fault timeline).
fn install_interrupt() -> CancellationToken {
    let token = CancellationToken::new();
    let seen = Arc::new(AtomicBool::new(false));
    let t = token.clone();
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: healing faults, stopping the load, keeping what was measured (Ctrl-C again to quit now)");
        t.cancel();
    });
    if let Err(e) = installed {
        tracing::warn!(error = %e, "cannot catch Ctrl-C; an interrupt will not keep partial results");
    }
    token
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Every file is checked before anything starts.
    let mut scenarios: Vec<(PathBuf, Scenario)> = Vec::new();
    let mut bad = false;
    for file in &args.files {
        match super::validate::check(file) {
            Some(s) => scenarios.push((file.clone(), s)),
            None => bad = true,
        }
    }
    if bad {
        return Ok(ExitCode::from(2));
    }

    let interrupt = install_interrupt();
    let opts = RunOptions {
        out_dir: args.out,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
    };
    let mut failed = false;
    let started = std::time::Instant::now();
    for (file, scenario) in &scenarios {
        if interrupt.is_cancelled() {
            break;
        }
        eprintln!("running {} ({})", scenario.name, file.display());
        let t0 = std::time::Instant::now();
        let bound = run::time_bound(scenario);
        let Ok(result) =
            tokio::time::timeout(bound, run::run(scenario, &opts, interrupt.clone())).await
        else {
            eprintln!(
                "error: {}: the run did not finish within {}s (start-up, load, drain, quiesce and \
                 read-back): a harness fault; giving up",
                file.display(),
                bound.as_secs()
            );
            return Ok(ExitCode::from(2));
        };
        match result {
            Ok(outcome) => {
                print!("{}", run::summary(&outcome.report, &outcome.report_json));
                for n in &outcome.notes {
                    println!("  note: {n}");
                }
                println!(
                    "  took {:.1}s; junit: {}",
                    t0.elapsed().as_secs_f64(),
                    outcome.junit_xml.display()
                );
                failed |= !outcome.report.passed;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return Ok(ExitCode::from(2));
            }
        }
    }
    if scenarios.len() > 1 {
        println!(
            "{} scenario(s) in {:.1}s: {}",
            scenarios.len(),
            started.elapsed().as_secs_f64(),
            if failed || interrupt.is_cancelled() {
                "FAILED"
            } else {
                "all passed"
            }
        );
    }
    Ok(if failed || interrupt.is_cancelled() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
