//! `gauntlet validate <file>...`: checks scenario files without running
//! anything, listing every problem of every file as `file:line:column`.

use std::path::{Path, PathBuf};

use gauntlet_reports::Scenario;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The baseline run the scenarios' baseline gates would read (as
    /// `run --baseline`); a scenario with such gates is rejected without.
    #[arg(long, value_name = "RUN")]
    baseline: Option<PathBuf>,
}

/// Reads and checks one scenario file, printing every problem it has (as
/// `file:line:column` where the file says) to standard error.
pub fn check(file: &Path) -> Option<Scenario> {
    let scenario = match gauntlet_reports::load_scenario(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let problems = gauntlet::run::preflight::preflight(&scenario);
    if problems.is_empty() {
        return Some(scenario);
    }
    eprintln!("{} problem(s) in the scenario:", problems.len());
    for p in problems {
        eprintln!("{}: {p}", file.display());
    }
    None
}

/// Exit 0 when every file is a valid scenario, 2 otherwise.
pub fn run(args: ValidateArgs) -> ExitCode {
    let mut bad = 0;
    for file in &args.files {
        let Some(s) = check(file) else {
            bad += 1;
            continue;
        };
        let one = [(file.clone(), s)];
        let options = gauntlet_reports::compare::CompareOptions::default();
        if super::run::baselines_for(&one, args.baseline.as_deref(), &options).is_none() {
            bad += 1;
            continue;
        }
        println!("{}: ok ({})", file.display(), one[0].1.name);
    }
    if bad > 0 {
        eprintln!("{bad} of {} scenario file(s) rejected", args.files.len());
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
