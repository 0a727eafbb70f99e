//! Appending to a file past the page cache (`O_DIRECT`): the kernel hands whole aligned blocks
//! of our buffer to the device instead of copying every byte into the page cache first.
//!
//! Bytes are gathered into one aligned buffer and written in whole blocks at aligned offsets.
//! The unaligned tail goes out with an ordinary write whenever the data must reach the file (a
//! sync, the end), and is written again, within its block, by the next direct write. The file
//! thus always holds exactly the bytes appended, never padding. A filesystem that refuses direct
//! I/O at the first write gets ordinary writes of the same buffer; see [`worthwhile`] for those
//! where it is not even tried.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};

/// Offsets, lengths and the buffer's address are multiples of this: the page size, and the
/// largest logical block size of common devices.
pub const ALIGN: usize = 4096;

/// Appends to one file through an aligned buffer, with `O_DIRECT` where the filesystem takes it.
pub struct DirectAppender {
    /// Backing store; the buffer is `store[start..start + cap]`, `start` aligning it.
    store: Vec<u8>,
    start: usize,
    cap: usize,
    /// Bytes of the buffer in use.
    len: usize,
    /// File offset of the buffer's first byte (a multiple of [`ALIGN`]).
    base: u64,
    /// Whether writes go past the page cache (false once the filesystem refused it).
    direct: bool,
}

impl DirectAppender {
    /// Appends to `file` from `end` (its current length) through a buffer of about `cap` bytes.
    /// The bytes of the last partial block are read back into the buffer, so that direct writes
    /// start at an aligned offset (they are written again unchanged).
    pub fn new(file: &File, end: u64, cap: usize) -> io::Result<Self> {
        let cap = cap.max(ALIGN).next_multiple_of(ALIGN);
        let mut store = vec![0u8; cap + ALIGN];
        let start = store.as_ptr().align_offset(ALIGN);
        let base = end - end % ALIGN as u64;
        let len = (end - base) as usize;
        file.read_exact_at(&mut store[start..start + len], base)?;
        Ok(DirectAppender {
            store,
            start,
            cap,
            len,
            base,
            direct: set_direct(file, true).is_ok(),
        })
    }

    /// Appends `buf`.
    pub fn write_all(&mut self, file: &File, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = buf.len().min(self.cap - self.len);
            let at = self.start + self.len;
            self.store[at..at + n].copy_from_slice(&buf[..n]);
            self.len += n;
            buf = &buf[n..];
            if self.len == self.cap {
                self.write_blocks(file)?;
            }
        }
        Ok(())
    }

    /// Appends the bytes of `parts`, in order.
    pub fn write_parts(&mut self, file: &File, parts: &[IoSlice]) -> io::Result<()> {
        parts.iter().try_for_each(|p| self.write_all(file, p))
    }

    /// Writes everything appended so far to the file, the unaligned tail with an ordinary write.
    pub fn flush(&mut self, file: &File) -> io::Result<()> {
        self.write_blocks(file)?;
        let tail = &self.store[self.start..self.start + self.len];
        if !self.direct || tail.is_empty() {
            return file.write_all_at(tail, self.base);
        }
        set_direct(file, false)?;
        file.write_all_at(tail, self.base)?;
        set_direct(file, true)
    }

    /// Writes the buffer's whole blocks and moves the rest to its start.
    fn write_blocks(&mut self, file: &File) -> io::Result<()> {
        let whole = self.len - self.len % ALIGN;
        if whole == 0 {
            return Ok(());
        }
        let blocks = &self.store[self.start..self.start + whole];
        match file.write_all_at(blocks, self.base) {
            // Taken at open, refused at write (a device with larger blocks than ours).
            Err(e) if self.direct && e.raw_os_error() == Some(Errno::EINVAL as i32) => {
                self.direct = false;
                set_direct(file, false)?;
                file.write_all_at(blocks, self.base)?;
            }
            r => r?,
        }
        self.base += whole as u64;
        let (from, to) = (self.start + whole, self.start + self.len);
        self.store.copy_within(from..to, self.start);
        self.len -= whole;
        Ok(())
    }
}

/// Whether the filesystem of `file` takes direct I/O and it can save anything there: not on
/// tmpfs, which keeps files in memory (a "direct" write is the page-cache copy all the same,
/// after our own copy into the buffer). Ramfs and others without direct I/O refuse it.
pub fn worthwhile(file: &File) -> bool {
    let in_memory = fstatfs(file)
        .map(|s| s.filesystem_type() == TMPFS_MAGIC)
        .unwrap_or(true);
    !in_memory
        && set_direct(file, true)
            .and_then(|()| set_direct(file, false))
            .is_ok()
}

/// Sets or clears `O_DIRECT` on an open file.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let mut flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    flags.set(OFlag::O_DIRECT, on);
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};

    /// Bytes that differ from one offset to the next, so a misplaced block shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
            .collect()
    }

    fn open(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[test]
    fn the_file_holds_exactly_what_was_appended_after_every_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = open(&path);
        let mut a = DirectAppender::new(&file, 0, 3 * ALIGN).unwrap();
        let mut want = Vec::new();
        // Pieces smaller than a block, across blocks, and larger than the buffer.
        for (i, len) in [24, 880, 5000, 1, 4096, 3 * ALIGN + 17, 0, 70_000, 333]
            .into_iter()
            .enumerate()
        {
            let piece = pattern(len, i as u8);
            let (x, y) = piece.split_at(len / 3);
            a.write_parts(&file, &[IoSlice::new(x), IoSlice::new(y)])
                .unwrap();
            want.extend_from_slice(&piece);
            if i % 3 == 2 {
                a.flush(&file).unwrap();
                assert_eq!(fs::read(&path).unwrap(), want, "after piece {i}");
            }
        }
        a.flush(&file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), want);
    }

    #[test]
    fn appending_to_a_file_ending_inside_a_block_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let head = pattern(2 * ALIGN + 100, 7);
        fs::write(&path, &head).unwrap();
        let file = open(&path);
        let mut a = DirectAppender::new(&file, head.len() as u64, ALIGN).unwrap();
        let more = pattern(3 * ALIGN, 9);
        a.write_all(&file, &more).unwrap();
        a.flush(&file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), [head, more].concat());
    }

    #[test]
    fn not_tried_on_tmpfs() {
        let shm = std::path::Path::new("/dev/shm");
        let on_tmpfs = nix::sys::statfs::statfs(shm).map(|s| s.filesystem_type() == TMPFS_MAGIC);
        assert!(
            on_tmpfs.unwrap_or(false),
            "this test needs /dev/shm on tmpfs"
        );
        let file = tempfile::tempfile_in(shm).unwrap();
        assert!(!worthwhile(&file));
    }

    #[test]
    fn a_file_with_o_direct_cleared_gets_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = open(&path);
        let mut a = DirectAppender::new(&file, 0, ALIGN).unwrap();
        // What a filesystem refusing direct I/O leaves: ordinary writes of the same buffer.
        a.direct = false;
        set_direct(&file, false).unwrap();
        let bytes = pattern(5 * ALIGN + 3, 1);
        a.write_all(&file, &bytes).unwrap();
        a.flush(&file).unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}
