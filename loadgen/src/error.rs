//! What can stop a load run.

use thiserror::Error;

/// Why [`run_load`](crate::run_load) gave no result.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The config is wrong; every problem is listed, each with its key.
    #[error("invalid load config ({} problem(s)):\n  {}", .0.len(), .0.join("\n  "))]
    Config(Vec<String>),
    /// The system could not be prepared for the load (catalog read,
    /// customers created). Is it up at that URL, and seeded with products?
    #[error("load set-up against {base_url} failed: {detail}")]
    Setup { base_url: String, detail: String },
    /// goose refused or failed the run.
    #[error("goose could not run the load: {0}")]
    Goose(String),
}
