//! One process's share of a consumer group's work, when several processes
//! of one service split it without a group coordinator.

use std::fmt;
use std::str::FromStr;

/// Member `index` of `count`: it takes partition `p` when
/// `p % count == index`, and relays the outbox rows whose key, read as an
/// integer, is `index` modulo `count`. The default, `0/1`, takes everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    index: u32,
    count: u32,
}

impl Default for Share {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Share {
    /// `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether partition `p` is this member's.
    pub fn takes_partition(&self, p: i32) -> bool {
        p.rem_euclid(self.count as i32) == self.index as i32
    }

    /// This member's partitions of `0..partitions`.
    pub fn partitions(&self, partitions: i32) -> impl Iterator<Item = i32> + '_ {
        (0..partitions).filter(move |p| self.takes_partition(*p))
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why an `i/n` did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected INDEX/COUNT with INDEX < COUNT (e.g. 0/2), got '{0}'")]
pub struct ShareParseError(String);

impl FromStr for Share {
    type Err = ShareParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShareParseError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Share::new(index, count).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_members_split_three_partitions_without_overlap_or_gap() {
        let a: Share = "0/2".parse().expect("parses");
        let b: Share = "1/2".parse().expect("parses");
        assert_eq!(a.partitions(3).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(b.partitions(3).collect::<Vec<_>>(), [1]);
        assert_eq!(Share::default().partitions(3).count(), 3);
        assert_eq!(a.to_string(), "0/2");
    }

    #[test]
    fn an_index_outside_its_count_is_refused() {
        for bad in ["2/2", "1", "a/2", "0/0", "-1/2", ""] {
            let e = bad.parse::<Share>().expect_err(bad);
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }
}
