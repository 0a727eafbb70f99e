//! Files shardcap writes for others to read: shard outputs, NDJSON bodies, stats and state files.
//! A reader must never see half of one under its final name, so each is written under another
//! name and renamed into place when complete.

pub mod atomic;
pub mod partial;

pub use atomic::write_atomic;
pub use partial::PartialFile;
