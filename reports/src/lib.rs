//! Reports for Gauntlet runs: `report.json`, `junit.xml` and a self-contained
//! `report.html` with plotters SVG charts, and baseline comparison.
//!
//! Not built yet: this crate is the home of that work; it holds no code so
//! nothing here pretends to work.
