//! Operator control: signals, stats, the Redis queue and authorization gate, and `shardcap ctl`.

pub mod ctl;
pub mod redis;
pub mod signals;
pub mod stats;
