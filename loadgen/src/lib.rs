//! Load generation for Gauntlet: goose-driven user journeys at a target
//! arrival rate (open model) or with a fixed set of users (closed model),
//! latency recorded from the intended send time in HdrHistogram.
//!
//! Not built yet: this crate is the home of that work (see the scenarios and
//! run-pipeline issue); it holds no code so nothing here pretends to work.
