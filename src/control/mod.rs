//! Operator control: signals, stats.

pub mod signals;
pub mod stats;
