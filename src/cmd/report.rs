//! `gauntlet report <run>...`: draws `report.html` again from a run's
//! `report.json`, so a run made by an older version can be redrawn; with
//! `--check`, holds the page already there to "every chart has data"
//! instead (what CI asks of a run's report).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use gauntlet_reports::{html, read_json};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories, or their report.json files.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Do not draw: check the report.html already there (every chart has
    /// data, a point per window, the faults shaded); exit 1 if not.
    #[arg(long)]
    check: bool,
}

/// Exit 0 when every report was drawn (or, with `--check`, passed), 1 when
/// a page failed its check, 2 when a report could not be read or written
/// (each problem is printed; the others are still done).
pub fn run(args: ReportArgs) -> ExitCode {
    let mut bad = false;
    let mut failed = false;
    for given in &args.runs {
        let report = match read_json(given) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
                continue;
            }
        };
        let dir = gauntlet_reports::report::run_dir_of(given);
        if args.check {
            let path = dir.join(html::REPORT_HTML);
            let page = match std::fs::read_to_string(&path) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    bad = true;
                    continue;
                }
            };
            match html::inspect::check(&report, &page) {
                Ok(s) => println!(
                    "{}: {} bytes, {} charts, {} series, {} fault shades: ok",
                    path.display(),
                    page.len(),
                    s.charts,
                    s.series,
                    s.fault_shades
                ),
                Err(problems) => {
                    failed = true;
                    for p in problems {
                        eprintln!("{}: {p}", path.display());
                    }
                }
            }
            continue;
        }
        match html::write_html(&dir, &report) {
            Ok(path) => println!("{}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
