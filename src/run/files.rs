//! Where a run's files go: a new directory per run, named by the
//! scenario and the UTC time, and the copy kept as the next baseline.

use std::path::{Path, PathBuf};

use gauntlet_reports::html;

use super::RunError;

/// Copies a run's reports into `keep` (created; earlier ones replaced),
/// where `run --baseline` and `compare` read them.
pub(super) fn save_baseline(dir: &Path, keep: &Path) -> Result<(), RunError> {
    let err = |source| RunError::SaveBaseline {
        path: keep.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(keep).map_err(err)?;
    for name in [
        gauntlet_reports::report::REPORT_JSON,
        html::REPORT_HTML,
        gauntlet_reports::junit::JUNIT_XML,
    ] {
        std::fs::copy(dir.join(name), keep.join(name)).map_err(err)?;
    }
    Ok(())
}

/// A scenario name as a file name: anything but ASCII letters, digits,
/// `-` and `_` becomes `-`.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `<out>/<scenario>-<UTC timestamp>`, new (a suffix if two runs start in
/// the same second).
pub(super) fn run_dir(out: &Path, name: &str) -> Result<PathBuf, RunError> {
    let stamp = utc_stamp(std::time::SystemTime::now());
    let safe = safe_name(name);
    std::fs::create_dir_all(out).map_err(|source| RunError::RunDir {
        path: out.to_path_buf(),
        source,
    })?;
    for n in 1.. {
        let leaf = if n == 1 {
            format!("{safe}-{stamp}")
        } else {
            format!("{safe}-{stamp}-{n}")
        };
        let path = out.join(leaf);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(RunError::RunDir { path, source }),
        }
    }
    unreachable!("the loop returns")
}

/// `YYYYMMDDTHHMMSSZ` in UTC: humantime's RFC 3339 form
/// (`2026-11-21T08:26:30Z`) without its separators.
fn utc_stamp(t: std::time::SystemTime) -> String {
    use std::time::{Duration, UNIX_EPOCH};
    // humantime formats 1970 to 9999 and panics outside: a clock before
    // 1970 names the directory by the epoch, as it always has.
    const LAST: Duration = Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
    let t = t.clamp(UNIX_EPOCH, UNIX_EPOCH + LAST);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn run_directories_are_named_by_utc_time() {
        // 2026-11-21 08:26:30 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_249_590);
        assert_eq!(utc_stamp(t), "20261121T082630Z");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_stamp(t), "20000229T000000Z");
    }

    #[test]
    fn two_runs_in_one_second_get_two_directories() {
        let out = tempfile::tempdir().unwrap();
        let a = run_dir(out.path(), "quick start").unwrap();
        let b = run_dir(out.path(), "quick start").unwrap();
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("quick-start-"));
    }
}
