//! A file's identity by content: its size and a hash of its first bytes, so a journaled file is
//! recognised under another name and a changed file under the same name is not mistaken for it.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use shardcap_flow::hash::fnv1a;

/// Bytes at the head of a file that its identity hashes.
pub const HEAD_BYTES: usize = 64 << 10;

/// Path, size and head hash of an input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// The name it had when journaled (for messages; identity does not depend on it).
    pub path: String,
    pub size: u64,
    /// FNV-1a (64-bit) hash of the first [`HEAD_BYTES`] bytes, as 16 hex digits.
    pub head: String,
}

impl FileId {
    /// Reads the head of `path` (whose size is `size`) and hashes it.
    pub fn of(path: &Path, size: u64) -> io::Result<Self> {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        File::open(path)?
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)?;
        Ok(FileId {
            path: path.to_string_lossy().into_owned(),
            size,
            head: format!("{:016x}", fnv1a(&head)),
        })
    }

    /// True when both name the same content (size and head hash), whatever their paths.
    pub fn same_content(&self, other: &FileId) -> bool {
        self.size == other.size && self.head == other.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"same bytes").unwrap();
        std::fs::write(&b, b"same bytes").unwrap();
        std::fs::write(&c, b"same bytez").unwrap();
        let id = |p: &Path| FileId::of(p, std::fs::metadata(p).unwrap().len()).unwrap();
        assert!(id(&a).same_content(&id(&b)));
        assert!(!id(&a).same_content(&id(&c)));
        assert_ne!(id(&a).path, id(&b).path);
    }
}
