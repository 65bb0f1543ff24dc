//! `gauntlet list [DIR]`: the scenarios in a folder (`scenarios/` unless
//! told), each with its description, flows, length and fault count.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use gauntlet_reports::scenario::FlowChoice;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The folder to list.
    #[arg(default_value = "scenarios")]
    dir: PathBuf,
}

/// Exit 0 when every `*.toml` in the folder is a valid scenario; 2 when
/// the folder cannot be read or a file is invalid (listed, with its first
/// problem; `validate` shows them all).
pub fn run(args: ListArgs) -> ExitCode {
    let entries = match std::fs::read_dir(&args.dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("no scenario files (*.toml) in {}", args.dir.display());
        return ExitCode::from(2);
    }
    let mut bad = 0;
    let mut rows = Vec::new();
    for file in &files {
        match gauntlet_reports::load_scenario(file) {
            Ok(s) => {
                let flows = match s.system.flow {
                    FlowChoice::Sync => "sync",
                    FlowChoice::Async => "async",
                    FlowChoice::Both => "both",
                };
                let length = s.load.warmup + s.load.duration();
                rows.push((
                    s.name.clone(),
                    flows,
                    humantime::format_duration(length).to_string(),
                    s.faults.len(),
                    s.description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                    file.display().to_string(),
                ));
            }
            Err(e) => {
                bad += 1;
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default().to_string();
                rows.push((
                    file.display().to_string(),
                    "-",
                    "-".into(),
                    0,
                    format!("INVALID: {first}"),
                    file.display().to_string(),
                ));
            }
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
    println!(
        "{:<width$}  {:<5}  {:>8}  {:>6}  description",
        "scenario", "flows", "length", "faults"
    );
    for (name, flows, length, faults, description, _file) in &rows {
        println!("{name:<width$}  {flows:<5}  {length:>8}  {faults:>6}  {description}");
    }
    if bad > 0 {
        eprintln!(
            "{bad} of {} file(s) invalid: `gauntlet validate` lists every problem",
            files.len()
        );
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
