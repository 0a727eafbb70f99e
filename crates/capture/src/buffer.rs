//! A large sequential read buffer that parsers look into in place.
//!
//! Records are parsed as slices of this buffer; bytes are only moved when a record straddles the end
//! of the buffer (the tail is moved to the front before the next read), so a packet is copied once,
//! into its shard's output.
//!
//! A buffer grows only to hold a record larger than it actually met (never to what a file header
//! claims), and shrinks back once such records are behind it. The bytes all buffers hold beyond
//! their own size are counted against one process-wide limit ([`set_memory_limit`]); a record that
//! would take more than is left fails with [`io::ErrorKind::OutOfMemory`] instead of allocating.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Default size of one input buffer.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// Default limit on the bytes all read buffers together hold beyond their own size (grown for
/// large records).
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
/// Growth granularity of a buffer.
const GROW_STEP: usize = 64 << 10;

/// Bytes all buffers hold beyond their own size now.
static GROWN: AtomicUsize = AtomicUsize::new(0);
/// Limit on [`GROWN`].
static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_MEMORY_LIMIT);

/// Sets the limit on the bytes all read buffers together may hold beyond their own size.
pub fn set_memory_limit(bytes: usize) {
    MEMORY_LIMIT.store(bytes, Ordering::Relaxed);
}

/// Bytes all read buffers hold beyond their own size now.
pub fn grown_bytes() -> usize {
    GROWN.load(Ordering::Relaxed)
}

/// True when half the limit is held by grown buffers: the merge then opens no further files.
pub fn memory_tight() -> bool {
    grown_bytes() > MEMORY_LIMIT.load(Ordering::Relaxed) / 2
}

/// True for the error of a record that did not fit in the buffer memory left.
pub fn is_memory_limit(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::OutOfMemory
}

/// Takes `bytes` from the limit, or says why not.
fn reserve(bytes: usize) -> io::Result<()> {
    let limit = MEMORY_LIMIT.load(Ordering::Relaxed);
    GROWN
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(bytes).filter(|&n| n <= limit)
        })
        .map(drop)
        .map_err(|held| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "a record needs {bytes} more buffer bytes, but read buffers already hold \
                     {held} of the {limit}-byte limit (--buffer-memory)"
                ),
            )
        })
}

fn release(bytes: usize) {
    GROWN.fetch_sub(bytes, Ordering::AcqRel);
}

/// Buffers of closed readers, kept for the next files so that opening one (thousands of small
/// rotated files) neither allocates nor zero-fills a buffer. Only [`DEFAULT_CAPACITY`] buffers are
/// kept: the small ones of the catalog's probes would otherwise take their places.
static SPARE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
/// Most spare buffers kept.
const SPARE_MAX: usize = 4;

/// A spare buffer of `capacity` bytes, if one is kept.
fn take_spare(capacity: usize) -> Option<Box<[u8]>> {
    if capacity != DEFAULT_CAPACITY {
        return None;
    }
    SPARE.lock().ok()?.pop()
}

/// Sequential reader with an in-place view of the next unconsumed bytes.
pub struct ReadBuffer {
    src: Box<dyn Read + Send>,
    buf: Box<[u8]>,
    /// The size it was made with (it is back to this size when no large record is in it).
    base: usize,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    eof: bool,
}

impl ReadBuffer {
    /// Wraps a byte stream with a buffer of `capacity` bytes (grown only for larger records).
    pub fn new(src: Box<dyn Read + Send>, capacity: usize) -> Self {
        ReadBuffer {
            src,
            buf: take_spare(capacity).unwrap_or_else(|| vec![0u8; capacity].into_boxed_slice()),
            base: capacity,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    /// The unconsumed bytes currently buffered.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Number of unconsumed bytes currently buffered.
    #[inline(always)]
    pub fn available(&self) -> usize {
        self.end - self.start
    }

    /// Stream offset of the first unconsumed byte.
    #[inline(always)]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Marks `n` buffered bytes as consumed.
    #[inline(always)]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.available());
        self.start += n;
        self.offset += n as u64;
    }

    /// Makes at least `need` bytes available unless the stream ends first.
    /// Returns whether `need` bytes are available.
    #[inline(always)]
    pub fn ensure(&mut self, need: usize) -> io::Result<bool> {
        if self.available() >= need {
            return Ok(true);
        }
        self.refill(need)
    }

    #[cold]
    fn refill(&mut self, need: usize) -> io::Result<bool> {
        let size = if need > self.buf.len() {
            // Exactly what the record needs (in steps), never what a header claims.
            need.next_multiple_of(GROW_STEP).max(self.base)
        } else if self.buf.len() > self.base && need <= self.base && self.available() <= self.base {
            // The large records are behind: back to the own size.
            self.base
        } else {
            self.buf.len()
        };
        if size != self.buf.len() {
            self.resize(size)?;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.available() < need && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.available() >= need)
    }

    /// Moves the unconsumed bytes into a buffer of `size` bytes, accounting for the growth.
    fn resize(&mut self, size: usize) -> io::Result<()> {
        let (old, new) = (self.buf.len() - self.base, size - self.base);
        if new > old {
            reserve(new - old)?;
        }
        let mut other = if size == self.base {
            take_spare(size).unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
        } else {
            vec![0u8; size].into_boxed_slice()
        };
        other[..self.available()].copy_from_slice(self.data());
        self.end -= self.start;
        self.start = 0;
        self.buf = other;
        if old > new {
            release(old - new);
        }
        Ok(())
    }

    /// Skips `n` bytes, reading through them if they are not buffered. Returns false on early end.
    pub fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        loop {
            let here = (self.available() as u64).min(n);
            self.consume(here as usize);
            n -= here;
            if n == 0 {
                return Ok(true);
            }
            if !self.ensure(1)? {
                return Ok(false);
            }
        }
    }

    /// True when the stream is exhausted and nothing is buffered.
    pub fn at_end(&mut self) -> io::Result<bool> {
        Ok(!self.ensure(1)?)
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.len() > self.base {
            release(buf.len() - self.base);
        }
        if buf.len() != DEFAULT_CAPACITY {
            return;
        }
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < SPARE_MAX {
                spare.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_reused_buffer_shows_only_its_own_stream() {
        let mut big = ReadBuffer::new(Box::new(Cursor::new(vec![0xaa; 3 << 20])), DEFAULT_CAPACITY);
        assert!(big.ensure(DEFAULT_CAPACITY).unwrap());
        drop(big);
        let mut small = ReadBuffer::new(Box::new(Cursor::new(b"hello".to_vec())), DEFAULT_CAPACITY);
        assert!(small.ensure(5).unwrap());
        assert_eq!(small.data(), b"hello");
        assert!(!small.ensure(6).unwrap());
        small.consume(5);
        assert!(small.at_end().unwrap());
        assert_eq!(small.offset(), 5);
    }
}
