//! Inputs: discovery, the first-packet catalog, continuous-mode intake and retention. The readers
//! themselves are in `shardcap-capture`.

pub mod catalog;
pub mod discover;
pub mod duplicates;
pub mod intake;
pub mod ranges;
pub mod retention;
pub mod screen;
pub mod span;
pub mod survey;
pub mod watch;

use shardcap_capture::ReadError;

/// How a file ended.
#[derive(Debug)]
pub enum FileEnd {
    /// Every packet was read.
    Complete,
    /// Damaged or unreadable: packets before the damage were emitted.
    Damaged(ReadError),
    /// Not opened: skipped by the gate, or not a capture any more.
    Skipped(String),
    /// Not opened: the same packets as this other input, read instead.
    Duplicate(std::path::PathBuf),
}
