//! `gauntlet compare <base> <new>`: every figure two runs of one scenario
//! both have, the change, and a noise-aware verdict. Exit status: 0 when
//! nothing regressed, 1 when something did, 2 when the inputs are not
//! comparable (another scenario, or not a report).
//!
//! Writes `compare.json` and `compare.html` (into `--out`, by default the
//! new run's directory) and, with `--markdown FILE`, a summary for a pull
//! request's comment.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use gauntlet_reports::compare::{self, CompareOptions};
use gauntlet_reports::{html, read_json};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a run directory or its report.json.
    base: PathBuf,
    /// The run to judge: a run directory or its report.json.
    new: PathBuf,
    /// The change a figure may make before it counts, per metric
    /// (`p99=15%`, `throughput=5%`; repeatable). Default 10%.
    #[arg(long, value_name = "METRIC=PCT")]
    threshold: Vec<String>,
    /// Where compare.json and compare.html go (default: the new run's
    /// directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also write a Markdown summary here (for a pull-request comment).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

/// The comparison options `--threshold` flags give.
pub fn options(thresholds: &[String]) -> anyhow::Result<CompareOptions> {
    let mut options = CompareOptions::default();
    for t in thresholds {
        options.set_threshold(t)?;
    }
    Ok(options)
}

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let options = match options(&args.threshold) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let read = |p: &Path| {
        read_json(p).map_err(|e| {
            eprintln!("error: not comparable: {e}");
        })
    };
    let (Ok(base), Ok(new)) = (read(&args.base), read(&args.new)) else {
        return Ok(ExitCode::from(2));
    };
    let mut cmp = match compare::compare(&base, &new, &options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: {e} ({} vs {})",
                args.base.display(),
                args.new.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    cmp.base.source = args.base.display().to_string();
    cmp.new.source = args.new.display().to_string();

    print!("{}", compare::table(&cmp));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| gauntlet_reports::report::run_dir_of(&args.new));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("compare.json");
    let json = serde_json::to_vec_pretty(&cmp).context("serialising the comparison")?;
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let html_path = html::write_compare_html(&out, &cmp, &base, &new)?;
    if let Some(md) = &args.markdown {
        std::fs::write(md, compare::markdown(&cmp))
            .with_context(|| format!("writing {}", md.display()))?;
        println!("markdown: {}", md.display());
    }
    println!("compare: {}", json_path.display());
    println!("html: {}", html_path.display());
    Ok(if cmp.regressed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
