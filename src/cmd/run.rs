//! `gauntlet run <scenario>...`: runs scenarios one after another and
//! judges each. Exit status: 0 when every gate and invariant of every
//! scenario held (and, with `--baseline`, nothing regressed), 1 when any
//! failed (or a run was cut short), 2 when a scenario is invalid, the
//! baseline is not comparable, or the system could not start.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use gauntlet::run::{self, Baseline, RunOptions, DEFAULT_OUT_DIR};
use gauntlet_reports::compare::CompareOptions;
use gauntlet_reports::report::REPORT_JSON;
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
    /// Compare each run with a baseline run (a run directory or its
    /// report.json; with several scenarios, a folder holding one run
    /// directory per scenario name, as `--save-baseline` writes). A
    /// regression fails the run; baseline gates read it.
    #[arg(long, value_name = "RUN")]
    baseline: Option<PathBuf>,
    /// Keep each run's reports as the next baseline: in DIR itself for one
    /// scenario, in DIR/<scenario name> for several.
    #[arg(long, value_name = "DIR")]
    save_baseline: Option<PathBuf>,
    /// With --baseline: the change a figure may make before it counts,
    /// per metric (`p99=15%`; repeatable; default 10%).
    #[arg(long, value_name = "METRIC=PCT")]
    threshold: Vec<String>,
}

/// Each scenario's baseline, read and matched to it; `None` (after
/// printing every problem) when one is missing, unreadable or of another
/// scenario, or when a scenario's gates need a baseline and none was given.
pub fn baselines_for(
    scenarios: &[(PathBuf, Scenario)],
    given: Option<&std::path::Path>,
    options: &CompareOptions,
) -> Option<Vec<Option<Baseline>>> {
    let mut bad = false;
    let mut baselines = Vec::new();
    for (file, scenario) in scenarios {
        let Some(given) = given else {
            if scenario.needs_baseline() {
                eprintln!(
                    "error: {}: a gate compares with a baseline (`baseline * k`), but no \
                     baseline was given: run with --baseline RUN",
                    file.display()
                );
                bad = true;
            }
            baselines.push(None);
            continue;
        };
        let path = find_baseline(given, scenario);
        match gauntlet_reports::read_json(&path) {
            Ok(report) if report.scenario == scenario.name => baselines.push(Some(Baseline {
                report,
                source: path,
                options: options.clone(),
            })),
            Ok(report) => {
                eprintln!(
                    "error: {}: not comparable: the baseline {} is a run of `{}`, this scenario is `{}`",
                    file.display(),
                    path.display(),
                    report.scenario,
                    scenario.name
                );
                bad = true;
            }
            Err(e) => {
                eprintln!("error: {}: baseline: {e}", file.display());
                bad = true;
            }
        }
    }
    (!bad).then_some(baselines)
}

/// The baseline for `scenario`: `given` itself (a run directory or a
/// report.json), or, when it holds no report, `given/<scenario name>`.
fn find_baseline(given: &std::path::Path, scenario: &Scenario) -> PathBuf {
    if given.is_file() || given.join(REPORT_JSON).is_file() {
        return given.to_path_buf();
    }
    let per_scenario = given.join(run::safe_name(&scenario.name));
    if per_scenario.join(REPORT_JSON).is_file() {
        return per_scenario;
    }
    given.to_path_buf()
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
    let compare_options = match super::compare::options(&args.threshold) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Every baseline is read and matched before anything runs.
    let Some(baselines) = baselines_for(&scenarios, args.baseline.as_deref(), &compare_options)
    else {
        return Ok(ExitCode::from(2));
    };

    let interrupt = install_interrupt();
    let several = scenarios.len() > 1;
    let mut failed = false;
    let started = std::time::Instant::now();
    for ((file, scenario), baseline) in scenarios.iter().zip(baselines) {
        if interrupt.is_cancelled() {
            break;
        }
        let opts = RunOptions {
            out_dir: args.out.clone(),
            progress: !args.no_progress && std::io::stderr().is_terminal(),
            baseline,
            save_baseline: args.save_baseline.as_ref().map(|d| {
                if several {
                    d.join(run::safe_name(&scenario.name))
                } else {
                    d.clone()
                }
            }),
        };
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
                    "  took {:.1}s; html: {}; junit: {}",
                    t0.elapsed().as_secs_f64(),
                    outcome.report_html.display(),
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
