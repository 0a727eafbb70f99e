//! Admission's looks that need a whole file read: with `--since`, the latest packet time of a
//! file starting before it that neither the catalog cache nor the intake knows ([`super::span`]),
//! and whether a file with the same size and first packet time as an earlier one holds the same
//! packets ([`super::duplicates`]). Those reads run on a thread of their own (a
//! [`Background`] reader, started when first needed), one file at a time, never on the
//! dispatch thread; the file is held meanwhile (not streamed) while every other file goes on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::catalog::Entry;
use super::duplicates::{read_content, Content, DuplicateIndex};
use super::ranges::Background;
use super::survey::read_range;

/// A whole-file read asked for: its number, the file, and whether its packets are hashed (else
/// its latest packet time is read).
struct Look {
    read: u64,
    path: PathBuf,
    content: bool,
}

/// What a whole-file read found.
enum Found {
    /// The latest packet time (`None`: no packets, or unreadable).
    Last(Option<u64>),
    /// The packets' hash (`None`: not readable to its end).
    Content(Option<Content>),
}

/// Reads one file to its end for `look`.
fn read_whole(look: &Look, stop: &AtomicBool) -> Found {
    if look.content {
        Found::Content(read_content(&look.path, &[], stop).map(|(c, _)| c))
    } else {
        Found::Last(read_range(&look.path, stop).map(|(_, last)| last))
    }
}

/// What came back from the reads since the last look.
#[derive(Default)]
pub struct Screened {
    /// Files held for their latest packet time, with it (`None`: unreadable).
    pub spans: Vec<(Entry, Option<u64>)>,
    /// Candidate duplicates decided, each with the file holding its packets, if any.
    pub verdicts: Vec<(Entry, Option<PathBuf>)>,
}

/// The held files and the reader working for them.
#[derive(Default)]
pub struct Screen {
    reader: Option<Background<Look, Found>>,
    /// Files held for their latest packet time, by read number.
    spans: HashMap<u64, Entry>,
    duplicates: DuplicateIndex,
    next_read: u64,
}

impl Screen {
    /// Holds `entry` until its latest packet time is read.
    pub fn read_span(&mut self, entry: Entry) {
        self.next_read += 1;
        let read = self.next_read;
        let path = entry.path.clone();
        self.spans.insert(read, entry);
        ask(&mut self.reader, read, path, false);
    }

    /// The duplicate check of a newly cataloged file: `Some(entry)` when it collides with no
    /// earlier file (it goes on), `None` when it is held until its verdict.
    pub fn check_duplicate(&mut self, entry: Entry) -> Option<Entry> {
        let reader = &mut self.reader;
        self.duplicates.check(entry, &mut |read, path: &Path| {
            ask(reader, read, path.to_path_buf(), true)
        })
    }

    /// What the reads found since the last look; with `wait`, waits up to that long for a
    /// result while files are held.
    pub fn take(&mut self, wait: Option<Duration>) -> Screened {
        let mut out = Screened::default();
        let Some(reader) = &mut self.reader else {
            return out;
        };
        for (look, found) in reader.done(wait) {
            match found {
                Found::Last(last) => {
                    if let Some(entry) = self.spans.remove(&look.read) {
                        out.spans.push((entry, last));
                    }
                }
                Found::Content(content) => self.duplicates.content(look.read, content),
            }
        }
        out.verdicts = self.duplicates.verdicts();
        out
    }

    /// True while no file is held.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.duplicates.waiting() == 0
    }
}

/// Queues a whole-file read, starting the reader if it does not run yet.
fn ask(reader: &mut Option<Background<Look, Found>>, read: u64, path: PathBuf, content: bool) {
    reader
        .get_or_insert_with(|| Background::new("intake-reader", read_whole))
        .ask(Look {
            read,
            path,
            content,
        });
}
