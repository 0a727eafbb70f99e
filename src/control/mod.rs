//! Operator control: signals, stats, progress, pacing, the Redis queue and authorization gate, and
//! `shardcap ctl`.

pub mod pacing;
pub mod progress;
pub mod redis;
pub mod report;
pub mod signals;
pub mod stats;
