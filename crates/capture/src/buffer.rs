//! A large sequential read buffer that parsers look into in place.
//!
//! Records are parsed as slices of this buffer; bytes are only moved when a record straddles the end
//! of the buffer (the tail is moved to the front before the next read). The buffer is a shared
//! [`Chunk`]: an output may keep it to write records straight from it ([`Chunk::pin`]); the reader
//! then reads on into another chunk, and the pinned one goes back to the spares when the last
//! output lets it go. The chunks pinned at once are bounded ([`PINNED_MAX`]).
//!
//! A buffer grows only to hold a record larger than it actually met (never to what a file header
//! claims), and shrinks back once such records are behind it. The bytes all buffers hold beyond
//! their own size are counted against one process-wide limit ([`set_memory_limit`]); a record that
//! would take more than is left fails with [`io::ErrorKind::OutOfMemory`] instead of allocating.

use std::io::{self, Read};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// Buffers of closed readers and of chunks let go by the outputs, kept for the next reads so that
/// opening a file (thousands of small rotated files) or reading on past a pinned chunk neither
/// allocates nor zero-fills a buffer. Only [`DEFAULT_CAPACITY`] buffers are
/// kept: the small ones of the catalog's probes would otherwise take their places.
static SPARE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
/// Most spare buffers kept.
const SPARE_MAX: usize = PINNED_MAX;

/// A spare buffer of `capacity` bytes, if one is kept.
fn take_spare(capacity: usize) -> Option<Box<[u8]>> {
    if capacity != DEFAULT_CAPACITY {
        return None;
    }
    SPARE.lock().ok()?.pop()
}

/// A buffer of `capacity` bytes: a spare one, or a new one.
fn new_bytes(capacity: usize) -> Box<[u8]> {
    take_spare(capacity).unwrap_or_else(|| vec![0u8; capacity].into_boxed_slice())
}

/// Keeps a buffer of the default size for the next reader, if there is room among the spares.
fn give_spare(buf: Box<[u8]>) {
    if buf.len() != DEFAULT_CAPACITY {
        return;
    }
    if let Ok(mut spare) = SPARE.lock() {
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }
}

/// Most chunks pinned by outputs at once: beyond it, outputs copy records instead (see
/// [`Chunk::pin`]). With 1 MiB buffers, at most 16 MiB more than the readers' own.
pub const PINNED_MAX: usize = 16;
/// Chunks pinned by outputs now.
static PINNED: AtomicUsize = AtomicUsize::new(0);

/// The bytes of a read buffer, shared by its reader and the outputs that write records straight
/// from it. Goes back to the spares when the last holder lets it go.
pub struct ChunkBytes {
    bytes: Box<[u8]>,
    /// Whether it counts in [`PINNED`].
    pinned: AtomicBool,
}

impl Drop for ChunkBytes {
    fn drop(&mut self) {
        if *self.pinned.get_mut() {
            PINNED.fetch_sub(1, Ordering::AcqRel);
        }
        give_spare(std::mem::take(&mut self.bytes));
    }
}

/// A shared read buffer (see [`ChunkBytes`]).
#[derive(Clone)]
pub struct Chunk(Arc<ChunkBytes>);

impl Chunk {
    fn new(bytes: Box<[u8]>) -> Self {
        Chunk(Arc::new(ChunkBytes {
            bytes,
            pinned: AtomicBool::new(false),
        }))
    }

    /// Another holder of the same bytes, for an output that writes records from them later; `None`
    /// when [`PINNED_MAX`] chunks are pinned already, or this one was grown for a large record
    /// (the output copies the record instead). While held, the reader reads on into another
    /// buffer.
    #[inline]
    pub fn pin(&self) -> Option<Chunk> {
        // Pinned only from the reader's own thread: nobody else sets the flag meanwhile.
        if !self.0.pinned.load(Ordering::Acquire) {
            if self.len() > DEFAULT_CAPACITY {
                return None;
            }
            if PINNED.fetch_add(1, Ordering::AcqRel) >= PINNED_MAX {
                PINNED.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            self.0.pinned.store(true, Ordering::Release);
        }
        Some(self.clone())
    }

    /// Whether `other` holds the same bytes.
    #[inline(always)]
    pub fn same(&self, other: &Chunk) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Its bytes, for writing, if no other holder can see them change.
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        Arc::get_mut(&mut self.0).map(|c| {
            // Pinned before, by holders that are gone: no longer pinned.
            if std::mem::take(c.pinned.get_mut()) {
                PINNED.fetch_sub(1, Ordering::AcqRel);
            }
            &mut c.bytes[..]
        })
    }
}

impl Deref for Chunk {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        &self.0.bytes
    }
}

/// Sequential reader with an in-place view of the next unconsumed bytes.
pub struct ReadBuffer {
    src: Box<dyn Read + Send>,
    buf: Chunk,
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
            buf: Chunk::new(new_bytes(capacity)),
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

    /// The shared buffer [`ReadBuffer::data`] lies in.
    #[inline(always)]
    pub fn chunk(&self) -> &Chunk {
        &self.buf
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
        if size != self.buf.len() || self.buf.bytes_mut().is_none() {
            // Another size, or an output still writes from this one: read on into another.
            self.resize(size)?;
        } else if self.start > 0 {
            let (start, end) = (self.start, self.end);
            let bytes = self.buf.bytes_mut().expect("not shared");
            bytes.copy_within(start..end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.available() < need && !self.eof {
            let end = self.end;
            let bytes = self.buf.bytes_mut().expect("not shared");
            match self.src.read(&mut bytes[end..]) {
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
            new_bytes(size)
        } else {
            vec![0u8; size].into_boxed_slice()
        };
        other[..self.available()].copy_from_slice(self.data());
        self.end -= self.start;
        self.start = 0;
        self.buf = Chunk::new(other);
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
        // The bytes go back to the spares with the chunk's last holder.
        if self.buf.len() > self.base {
            release(self.buf.len() - self.base);
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

    #[test]
    fn a_pinned_chunk_keeps_its_bytes_while_the_reader_reads_on() {
        let stream: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut buf = ReadBuffer::new(Box::new(Cursor::new(stream.clone())), 64 << 10);
        let mut pins = Vec::new();
        let mut offset = 0;
        while buf.ensure(1000).unwrap() {
            // Pin every chunk the reader reads into, then read on through the next ones.
            let new = pins
                .last()
                .is_none_or(|(c, _): &(Chunk, _)| !c.same(buf.chunk()));
            if let Some(c) = buf.chunk().pin().filter(|_| new) {
                let snapshot = c.to_vec();
                pins.push((c, snapshot));
            }
            assert_eq!(&buf.data()[..1000], &stream[offset..offset + 1000]);
            buf.consume(1000);
            offset += 1000;
        }
        assert!(pins.len() >= 2, "the reader moved to other chunks");
        assert!(
            pins.len() <= PINNED_MAX,
            "no more than PINNED_MAX pinned at once"
        );
        for (c, snapshot) in &pins {
            assert_eq!(&c[..], &snapshot[..], "pinned bytes unchanged");
        }
    }
}
