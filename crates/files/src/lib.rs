//! Files shardcap writes for others to read: shard outputs, NDJSON bodies, stats and state files.
//! A reader must never see half of one under its final name, so each is written under another
//! name and renamed into place when complete.
//!
//! None of them is opened through a symlink: see [`nofollow`].

pub mod atomic;
pub mod direct;
pub mod nofollow;
pub mod partial;
pub mod vectored;

pub use atomic::{write_atomic, write_atomic_synced, write_private};
pub use partial::PartialFile;
pub use vectored::write_all_vectored;
