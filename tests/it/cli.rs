//! The command line's contract for bad input: `validate` and `run` reject a
//! bad scenario before starting anything, list every problem with its
//! position, and exit 2; every shipped scenario is valid.

use std::process::Command;

fn gauntlet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
}

const BROKEN: &str = r#"name = "broken"
seed = "forty-two"
gates = ["p98(sync) < 300ms", "breaker.opened(orders->paymnts) >= 1"]

[load]
rate = [{ duration = "10s", target = -5 }]

[[faults]]
at = "2s"
action = { type = "link_down", link = "orders->nowhere" }
"#;

fn broken_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, BROKEN).expect("written");
    (dir, path)
}

#[test]
fn validate_lists_every_problem_with_its_line_and_exits_2() {
    let (_dir, path) = broken_file();
    let out = gauntlet()
        .arg("validate")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (line, what) in [
        (2, "`seed`"),
        (3, "unknown metric `p98`"),
        (3, "unknown link `orders->paymnts`"),
        (6, "`load.rate[0].target`"),
        (10, "unknown link `orders->nowhere`"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(what)),
            "no `{what}` at line {line} in:\n{err}"
        );
    }
}

#[test]
fn run_rejects_a_bad_scenario_before_starting_anything() {
    let (dir, path) = broken_file();
    let out_dir = dir.path().join("runs");
    let started = std::time::Instant::now();
    let out = gauntlet()
        .arg("run")
        .arg("--out")
        .arg(&out_dir)
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown metric `p98`"), "{err}");
    // Nothing ran: no run directory, and no system start-up time.
    assert!(!out_dir.exists());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_load_the_generator_cannot_drive_is_rejected_by_validate() {
    // 100 users at 1 a second take 100 s to start; the run lasts 30 s.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ramp.toml");
    std::fs::write(
        &path,
        "name = \"ramp\"\n[load]\nusers = 100\nincrease_per_sec = 1\nduration = \"30s\"\nwarmup = \"0s\"\n",
    )
    .expect("written");
    let out = gauntlet()
        .arg("validate")
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("load:"), "{err}");
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let out = gauntlet()
        .arg("validate")
        .args(&files)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
