//! One followed log file: its open descriptor (kept across renames), how far it is read and
//! acknowledged, its identity and `_id` key, and the checks for truncation and replacement.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::checkpoint::FileState;
use crate::document::LogSource;
use crate::identity::{FileId, Fingerprint};
use crate::logformat::LogFormat;

/// Longest first line looked at to recognise a format, and longest header read back on resume.
const HEAD_LIMIT: usize = 64 << 10;

/// What a file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    /// Its first line is not complete yet.
    Pending,
    /// A log in a known format.
    Log,
    /// Something else (text logs, stats): left alone.
    NotALog,
}

/// The identity a file's records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub fingerprint: Fingerprint,
    pub key: u64,
}

/// A followed file.
#[derive(Debug)]
pub struct Tailed {
    pub id: FileId,
    /// Its current name.
    pub path: PathBuf,
    file: Option<File>,
    /// Format and header; `None` until the first line is complete.
    pub source: Option<LogSource>,
    pub generation: u32,
    pub registration: Option<Registration>,
    /// Next byte to read.
    pub read_pos: u64,
    /// Every record before this byte is acknowledged.
    pub acked: u64,
    /// Size at the last look.
    pub size: u64,
    /// Found by the last directory walk.
    pub visible: bool,
    /// Zeek wrote `#close`.
    pub closed_by_writer: bool,
    /// Last growth or read.
    pub last_activity: Instant,
    /// A trailing line without newline was reported.
    pub partial_reported: bool,
    /// With content `_id`s: how many records before `counted` had each content hash.
    pub occurrences: HashMap<u64, u32>,
    /// The byte up to which `occurrences` counts.
    pub counted: u64,
}

impl Tailed {
    /// A file seen for the first time: read from the start.
    pub fn new(id: FileId, path: PathBuf, size: u64) -> Self {
        Tailed {
            id,
            path,
            file: None,
            source: None,
            generation: 0,
            registration: None,
            read_pos: 0,
            acked: 0,
            size,
            visible: true,
            closed_by_writer: false,
            last_activity: Instant::now(),
            partial_reported: false,
            occurrences: HashMap::new(),
            counted: 0,
        }
    }

    /// A file with a checkpoint: resumes at its offset when the head is unchanged, else starts the
    /// next generation from byte 0 (it was truncated or replaced while the shipper was away).
    pub fn resume(cp: &FileState, path: PathBuf, size: u64) -> Self {
        let mut t = Tailed::new(cp.id, path, size);
        let same = size >= cp.offset
            && t.open().is_ok()
            && t.file.as_ref().is_some_and(|f| cp.fingerprint.matches(f));
        t.close();
        if same {
            t.generation = cp.generation;
            t.registration = Some(Registration {
                fingerprint: cp.fingerprint,
                key: cp.key,
            });
            t.read_pos = cp.offset;
            t.acked = cp.offset;
        } else {
            log::warn!(
                "{}: changed since its checkpoint (truncated or replaced); shipping it again from byte 0",
                t.path.display()
            );
            t.generation = cp.generation + 1;
        }
        t
    }

    /// The open descriptor, opening the path if needed. Fails when the path now names another file.
    pub fn open(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let f = File::open(&self.path)?;
            if FileId::of(&f.metadata()?) != self.id {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the name now belongs to another file",
                ));
            }
            self.file = Some(f);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// True when a descriptor is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Closes the descriptor (reopened by name when the file grows).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Size now, by the open descriptor (so a renamed or deleted file is still followed).
    pub fn current_size(&mut self) -> io::Result<u64> {
        Ok(self.open()?.metadata()?.len())
    }

    /// True when the head no longer matches the registration: the file was rewritten in place.
    pub fn head_changed(&mut self) -> bool {
        let Some(r) = self.registration else {
            return false;
        };
        match self.open() {
            Ok(f) => !r.fingerprint.matches(f),
            Err(_) => false,
        }
    }

    /// Starts over after a truncation or rewrite: the next generation, from byte 0.
    pub fn restart(&mut self) {
        self.generation += 1;
        self.registration = None;
        self.source = None;
        self.read_pos = 0;
        self.acked = 0;
        self.closed_by_writer = false;
        self.partial_reported = false;
        self.occurrences.clear();
        self.counted = 0;
    }

    /// Reads up to `buf.len()` bytes from `read_pos`; returns how many.
    pub fn read_at_pos(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pos = self.read_pos;
        let f = self.open()?;
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], pos + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Recognises the format once the first line is complete. A Zeek TSV file resumed mid-way
    /// gets its header back.
    pub fn identify(&mut self) -> io::Result<Identified> {
        if self.source.is_some() {
            return Ok(Identified::Log);
        }
        let mut head = vec![0u8; HEAD_LIMIT];
        let n = {
            let f = self.open()?;
            f.read_at(&mut head, 0)?
        };
        head.truncate(n);
        let Some(nl) = head.iter().position(|&b| b == b'\n') else {
            return Ok(if n == HEAD_LIMIT {
                Identified::NotALog
            } else {
                Identified::Pending
            });
        };
        let first = &head[..nl];
        let Some(format) = LogFormat::sniff(first.strip_suffix(b"\r").unwrap_or(first)) else {
            return Ok(Identified::NotALog);
        };
        let mut source = LogSource::new(format, &self.path);
        if format == LogFormat::ZeekTsv && self.read_pos > 0 {
            let upto = (self.read_pos as usize).min(head.len());
            for line in head[..upto].split(|&b| b == b'\n') {
                if !line.starts_with(b"#") {
                    break;
                }
                // A header line that does not apply shows again when data lines fail.
                let _ = source.header.directive(line);
            }
        }
        self.source = Some(source);
        Ok(Identified::Log)
    }

    /// Follows a rename.
    pub fn renamed(&mut self, path: &Path) {
        log::info!("{} is now {}", self.path.display(), path.display());
        self.path = path.to_path_buf();
        if let Some(s) = &mut self.source {
            s.renamed(path);
        }
    }
}
