//! `gauntlet validate <file>...`: checks scenario files without running
//! anything, listing every problem of every file as `file:line:column`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Exit 0 when every file is a valid scenario, 2 otherwise.
pub fn run(args: ValidateArgs) -> ExitCode {
    let mut bad = 0;
    for file in &args.files {
        match gauntlet_reports::load_scenario(file) {
            Ok(s) => {
                let problems = gauntlet::run::plan::preflight(&s);
                if problems.is_empty() {
                    println!("{}: ok ({})", file.display(), s.name);
                } else {
                    bad += 1;
                    eprintln!("{} problem(s) in the scenario:", problems.len());
                    for p in problems {
                        eprintln!("{}: {p}", file.display());
                    }
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} scenario file(s) rejected", args.files.len());
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
