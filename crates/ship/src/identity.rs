//! What a log file is, independent of its name: device, inode and a fingerprint of its head; and the
//! `_id` every record gets from that identity and its byte offset.
//!
//! `_id` formula: `KKKKKKKKKKKKKKKK-OFFSET`, where `K…` is the file key in 16 lowercase hex digits and
//! `OFFSET` the decimal byte offset of the record's first byte in the file. The file key is
//! `mix64(mix64(mix64(dev) ^ ino) ^ generation << 48 ^ H)`, where `H` is the 64-bit FNV-1a hash of
//! the file's first `fp_len` bytes (`fp_len` = the file size when first seen, at most 1 KiB),
//! `generation` counts the truncations seen of that file, and `mix64` is the murmur3 finaliser
//! (`shardcap_flow::hash::mix64`, fixed and seedless, like FNV-1a). The key is stored in the checkpoint
//! before any record of the file is sent, so a replay after a crash reproduces every `_id`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

use shardcap_flow::hash::fnv1a;
use shardcap_flow::hash::mix64;

/// How many head bytes the fingerprint covers at most.
pub const HEAD_BYTES: u64 = 1024;

/// Device and inode: a file across renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of an open file or a path's metadata.
    pub fn of(md: &std::fs::Metadata) -> FileId {
        FileId {
            dev: md.dev(),
            ino: md.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes: tells a file from another that reused its inode, or from
/// itself truncated and rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprints the first `min(size, HEAD_BYTES)` bytes of `file`.
    pub fn take(file: &File, size: u64) -> io::Result<Fingerprint> {
        Self::of_len(file, size.min(HEAD_BYTES))
    }

    /// Fingerprints exactly the first `len` bytes (fails when the file is now shorter).
    pub fn of_len(file: &File, len: u64) -> io::Result<Fingerprint> {
        let mut head = vec![0u8; len as usize];
        file.read_exact_at(&mut head, 0)?;
        Ok(Fingerprint {
            len,
            hash: fnv1a(&head),
        })
    }

    /// True when `file` still starts with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> bool {
        Self::of_len(file, self.len).is_ok_and(|f| f == *self)
    }
}

/// The key that prefixes the `_id` of every record of one file generation (see the module doc).
pub fn file_key(id: FileId, generation: u32, fp: &Fingerprint) -> u64 {
    mix64(mix64(mix64(id.dev) ^ id.ino) ^ (u64::from(generation) << 48) ^ fp.hash)
}

/// A record's `_id`: a key and a number, written `{key:016x}-{n}`. Positional: the file key and
/// the record's byte offset; by content (`crate::content_id`): the content key and the occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocId {
    pub key: u64,
    pub n: u64,
}

/// Appends a record's `_id`: `{key:016x}-{n}`.
pub fn write_doc_id(out: &mut Vec<u8>, id: DocId) {
    use std::io::Write;
    let _ = write!(out, "{:016x}-{}", id.key, id.n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_tells_rewritten_heads_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"first line\n").unwrap();
        let f = File::open(&p).unwrap();
        let fp = Fingerprint::take(&f, 11).unwrap();
        assert_eq!(fp.len, 11);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"more\n")
            .unwrap();
        assert!(fp.matches(&f), "growth keeps the head");
        std::fs::write(&p, b"other line\n").unwrap();
        assert!(!fp.matches(&f), "a rewritten head differs");
        std::fs::write(&p, b"x").unwrap();
        assert!(!fp.matches(&f), "a shorter file differs");
    }

    #[test]
    fn keys_depend_on_identity_generation_and_head() {
        let fp = Fingerprint { len: 10, hash: 7 };
        let id = FileId { dev: 1, ino: 2 };
        let k = file_key(id, 0, &fp);
        assert_eq!(k, file_key(id, 0, &fp));
        assert_ne!(k, file_key(id, 1, &fp));
        assert_ne!(k, file_key(FileId { dev: 1, ino: 3 }, 0, &fp));
        assert_ne!(k, file_key(id, 0, &Fingerprint { len: 10, hash: 8 }));
        let mut v = Vec::new();
        write_doc_id(&mut v, DocId { key: 0xab, n: 4096 });
        assert_eq!(v, b"00000000000000ab-4096");
    }

    /// Known answers pinning the `_id` formula of the module doc: a replay, a restart or a new
    /// version must give every record the `_id` it had, or Elasticsearch indexes it twice. A change
    /// here is a deliberate, documented format break.
    #[test]
    fn doc_ids_are_pinned() {
        let zeek = b"#separator \\x09\n#set_separator\t,\n".as_slice();
        let eve = b"{\"timestamp\":\"2024-03-01T12:00:00.000000+0000\",\"event_type\":\"alert\"}\n";
        // (dev, ino, generation, head, offset, `_id`)
        type Case<'a> = (u64, u64, u32, &'a [u8], u64, &'a str);
        let cases: [Case; 5] = [
            (2049, 131_074, 0, zeek, 0, "1c7c5a5add0fcc90-0"),
            (2049, 131_074, 1, zeek, 4096, "67b1eb6f4401250c-4096"),
            (64768, 7, 0, eve, 123_456_789, "ec0f358e3b439f0a-123456789"),
            (0, 0, 0, b"", 0, "efd01f60ba992926-0"),
            (
                u64::MAX,
                u64::MAX,
                65535,
                b"x",
                u64::MAX,
                "8944b4f4dd5f27b8-18446744073709551615",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (dev, ino, generation, head, offset, want) in cases {
            let p = dir.path().join("head");
            std::fs::write(&p, head).unwrap();
            let f = File::open(&p).unwrap();
            let fp = Fingerprint::take(&f, head.len() as u64).unwrap();
            let mut id = Vec::new();
            let key = file_key(FileId { dev, ino }, generation, &fp);
            write_doc_id(&mut id, DocId { key, n: offset });
            assert_eq!(String::from_utf8(id).unwrap(), want);
        }
    }
}
