//! The machine a run ran on, so numbers from two runs can be compared
//! knowing what produced them.

use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Total memory, in bytes, when the platform says.
    pub memory_bytes: Option<u64>,
    /// `linux`, `macos`, ... and the distribution when known.
    pub os: String,
    pub arch: String,
    /// `rustc --version`, when a toolchain is on the PATH.
    pub rustc: Option<String>,
    /// `cargo --version`, likewise.
    pub cargo: Option<String>,
}

impl Machine {
    /// Looks around. Never fails: what cannot be found is left empty.
    pub fn detect() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_bytes(),
            os: os_name(),
            arch: std::env::consts::ARCH.to_string(),
            rustc: version_of("rustc"),
            cargo: version_of("cargo"),
        }
    }
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&meminfo)
}

/// `MemTotal:  16318480 kB` → bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

fn os_name() -> String {
    let os = std::env::consts::OS;
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    match pretty {
        Some(p) => format!("{os} ({p})"),
        None => os.to_string(),
    }
}

fn version_of(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_total_memory() {
        let text = "MemTotal:       16318480 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo(text), Some(16318480 * 1024));
        assert_eq!(parse_meminfo("nothing"), None);
    }

    #[test]
    fn detects_something_sensible() {
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert!(!m.os.is_empty() && !m.arch.is_empty());
    }
}
