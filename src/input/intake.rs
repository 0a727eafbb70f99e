//! Where files come from while a run goes on, and who decides when each may be read: the command
//! line (all known at start), a Redis queue, a watched spool directory.

use std::path::Path;
use std::time::Duration;

use super::catalog::{Entry, Rejected};
use super::discover::Candidate;
use crate::control::signals::Signals;
use crate::error::Result;
use crate::input::FileEnd;

/// What an intake has for the dispatcher.
#[derive(Debug)]
pub enum Arrivals {
    /// New files to catalog and merge.
    Files(Vec<Candidate>),
    /// Nothing new yet; more may come.
    Nothing,
    /// No file will ever come again.
    Closed,
}

/// Whether a file may be read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Read it.
    Open,
    /// Not yet: the dispatcher brings its outputs up to date, shows itself waiting, answers
    /// signals, and asks again (the intake paces the questions).
    NotYet,
}

/// A source of input files with an optional authorization gate.
pub trait Intake {
    /// New files, waiting up to `wait` for some (`None`: do not wait).
    fn poll(&mut self, wait: Option<Duration>, signals: &Signals) -> Result<Arrivals>;

    /// Whether files are handed out in batches, each only once every earlier file was streamed
    /// (`poll` is then called only while the merge is idle), so the stream depends on the
    /// batches alone, not on when they came.
    fn batched(&self) -> bool {
        false
    }

    /// The latest packet time of `path`, handed out by `poll`, when the intake learned it
    /// (a watched spool learns every file's range before releasing it).
    fn last_ts(&self, _path: &Path) -> Option<u64> {
        None
    }

    /// Called before `entry` is opened, and again while the answer is [`Gate::NotYet`].
    fn authorize(&mut self, _entry: &Entry, _signals: &Signals) -> Result<Gate> {
        Ok(Gate::Open)
    }

    /// A file handed out by `poll` could not be cataloged (unreadable, or not a capture).
    fn rejected(&mut self, _why: &Rejected) -> Result<()> {
        Ok(())
    }

    /// `entry` was read to its end, damaged, or skipped.
    fn finished(&mut self, _entry: &Entry, _end: &FileEnd) -> Result<()> {
        Ok(())
    }

    /// The run ends (normally or by a stop signal).
    fn close(&mut self, _stopped: bool) -> Result<()> {
        Ok(())
    }

    /// Whether the server the files come from answers now (`None`: no server).
    fn reachable(&self) -> Option<bool> {
        None
    }
}

/// The files named on the command line: all known at start, one batch.
pub struct StaticIntake {
    files: Option<Vec<Candidate>>,
}

impl StaticIntake {
    /// Hands out `files` once.
    pub fn new(files: Vec<Candidate>) -> Self {
        StaticIntake { files: Some(files) }
    }
}

impl Intake for StaticIntake {
    fn batched(&self) -> bool {
        true
    }

    fn poll(&mut self, _wait: Option<Duration>, _signals: &Signals) -> Result<Arrivals> {
        Ok(match self.files.take() {
            Some(f) => Arrivals::Files(f),
            None => Arrivals::Closed,
        })
    }
}
