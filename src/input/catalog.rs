//! The catalog: each input probed once for its format and first packet time, so the merge can open
//! files only when packet time reaches them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::discover::Candidate;
use shardcap_capture::capture::{Capture, CaptureInfo};
use shardcap_capture::stream::{self, not_regular, open_regular, special_kind};
use shardcap_capture::ReadError;

/// A capture known to the catalog.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in the order the inputs were given (or arrived).
    pub seq: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Size on disk in bytes (compressed, for compressed files).
    pub size: u64,
    /// Format, link types and precision, as far as the probe read.
    pub info: CaptureInfo,
    /// Timestamp of the first packet; `None` for a capture without packets.
    pub first_ts: Option<u64>,
    /// Device and inode of the file the probe read (`None` when not known): the merge reads the
    /// name only while it still leads to that file, so a file or symlink swapped in meanwhile is
    /// not read in its place.
    pub inode: Option<(u64, u64)>,
}

/// Why an input was not cataloged.
#[derive(Debug, Clone)]
pub enum Rejected {
    /// Not a capture (by content). Quietly ignored when found by a directory walk.
    NotCapture { path: PathBuf, explicit: bool },
    /// Unreadable, or damaged before its first packet.
    Unreadable { path: PathBuf, error: ReadError },
}

/// Probes one candidate: format, link types, precision and first timestamp.
pub fn probe(seq: u64, cand: &Candidate) -> Result<Entry, Rejected> {
    probe_path(seq, &cand.path).map_err(|e| match e {
        None => Rejected::NotCapture {
            path: cand.path.clone(),
            explicit: cand.explicit,
        },
        Some(error) => Rejected::Unreadable {
            path: cand.path.clone(),
            error,
        },
    })
}

fn probe_path(seq: u64, path: &Path) -> Result<Entry, Option<ReadError>> {
    let md =
        fs::metadata(path).map_err(|e| Some(ReadError::new(0, format!("cannot stat: {e}"))))?;
    if let Some(kind) = special_kind(md.file_type()) {
        return Err(Some(ReadError::new(0, not_regular(kind).to_string())));
    }
    let file = open_regular(path).map_err(ReadError::open)?;
    let opened = file.metadata().map_err(ReadError::open)?;
    let opened_stream = stream::open_file(file).map_err(ReadError::open)?;
    let (mut cap, format, compression) =
        Capture::from_stream(opened_stream, 8 << 10)?.ok_or(None)?;
    let first_ts = match cap.advance() {
        Ok(true) => Some(cap.ts()),
        Ok(false) => None,
        Err(e) => return Err(Some(e)),
    };
    Ok(Entry {
        seq,
        path: path.to_path_buf(),
        size: opened.size(),
        info: cap.info(format, compression),
        first_ts,
        inode: Some((opened.dev(), opened.ino())),
    })
}
