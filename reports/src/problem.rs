//! A problem found in a scenario file, and where it is: `file:line:column`.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// One thing wrong with a scenario file. Displays as
/// `file:line:column: message`, the shape editors and CI logs link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters (not bytes).
    pub column: usize,
    /// What is wrong and what was expected instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Turns byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset; an offset
    /// past the end is clamped to it, one inside a character to its start.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    pub(crate) fn problem(
        &self,
        file: &str,
        span: Option<Range<usize>>,
        message: String,
    ) -> Problem {
        let (line, column) = self.position(span.map_or(0, |s| s.start));
        Problem {
            file: file.to_string(),
            line,
            column,
            message,
        }
    }
}

/// The candidate nearest to `word`, when it is near enough to be a likely
/// typo rather than another word.
///
/// Ties go to the candidate whose differing characters are closest, so
/// `p98` suggests `p99` rather than `p90`.
pub(crate) fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let gap = |c: &str| -> u32 {
        if c.chars().count() != word.chars().count() {
            return u32::MAX;
        }
        word.chars()
            .zip(c.chars())
            .map(|(a, b)| (a as u32).abs_diff(b as u32))
            .sum()
    };
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), gap(c), *c))
        .filter(|(d, _, c)| *d <= (word.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, g, _)| (*d, *g))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let idx = LineIndex::new("ab\nçd = 1\n\nx");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(1), (1, 2));
        assert_eq!(idx.position(3), (2, 1));
        // `d` follows a two-byte character: byte 5, column 2.
        assert_eq!(idx.position(5), (2, 2));
        assert_eq!(idx.position(11), (3, 1));
        assert_eq!(idx.position(12), (4, 1));
        assert_eq!(idx.position(999), (4, 2));
    }

    #[test]
    fn a_problem_displays_as_file_line_column_message() {
        let p = LineIndex::new("a\nb = 1").problem("s.toml", Some(2..3), "bad".into());
        assert_eq!(p.to_string(), "s.toml:2:1: bad");
    }

    #[test]
    fn nearest_suggests_typos_only() {
        assert_eq!(nearest("rat", &["rate", "users"]), Some("rate"));
        assert_eq!(nearest("sed", &["seed", "name"]), Some("seed"));
        assert_eq!(nearest("zzzzzz", &["rate", "users"]), None);
        assert_eq!(nearest("p98", &["p50", "p90", "p95", "p99"]), Some("p99"));
    }
}
