//! Opens a capture file as a byte stream, decompressing gzip or zstd on a thread beside the hot loop.
//! Every byte read from a capture file this way, and every byte a decompressor produced, is
//! counted process-wide ([`read_totals`]), so a run can tell how often it read its inputs.

use std::cell::Cell;
use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread;

use super::detect::Compression;

/// Largest chunk a decompression thread hands over.
const CHUNK: usize = 1 << 20;
/// Its first chunk: a probe that reads only a file's head does not wait for a whole [`CHUNK`].
const FIRST_CHUNK: usize = 64 << 10;

/// Bytes read from capture files by this process (compressed bytes for compressed files).
static FILE_BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes decompressors produced in this process.
static DECOMPRESSED_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Capture bytes this thread took through the reader layer (see [`thread_read_bytes`]).
    static TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Adds `n` bytes taken by this thread.
fn taken(n: usize) {
    TAKEN.with(|t| t.set(t.get() + n as u64));
}

/// The capture bytes this thread has taken through the reader layer so far: bytes read from
/// uncompressed files (by [`open`] and [`read_tail`]) and decompressed bytes handed to it from
/// compressed ones. Other threads' reads do not count, so the difference over a stretch of work
/// is what that work read on this thread.
pub fn thread_read_bytes() -> u64 {
    TAKEN.with(Cell::get)
}

/// What this process has read from capture files so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTotals {
    /// Bytes read from the files themselves (compressed bytes for compressed files).
    pub file: u64,
    /// Bytes gzip and zstd decompression produced.
    pub decompressed: u64,
}

/// The bytes read from capture files (by [`open`] and [`read_tail`]) and decompressed, by every
/// reader of this process since it started.
pub fn read_totals() -> ReadTotals {
    ReadTotals {
        file: FILE_BYTES.load(Ordering::Relaxed),
        decompressed: DECOMPRESSED_BYTES.load(Ordering::Relaxed),
    }
}

/// A file whose reads are counted in [`read_totals`].
struct Counted(File);

impl Read for Counted {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(out)?;
        FILE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        taken(n);
        Ok(n)
    }
}

/// The last `window` bytes of `file` (all of it when it is smaller), read without moving its
/// position and counted in [`read_totals`]; with the offset they start at.
pub fn read_tail(file: &File, window: u64) -> io::Result<(u64, Vec<u8>)> {
    let size = file.metadata()?.len();
    let start = size.saturating_sub(window);
    let mut buf = vec![0u8; (size - start) as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    FILE_BYTES.fetch_add(got as u64, Ordering::Relaxed);
    taken(got);
    buf.truncate(got);
    Ok((start, buf))
}
/// Largest zstd window accepted: 2^27 bytes (128 MiB), the most `zstd --long` or `--ultra` use;
/// the decoder of one open file holds at most this much.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// What a file that is not a regular file is (`None` for a regular file), for refusals.
pub fn special_kind(kind: FileType) -> Option<&'static str> {
    Some(if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "a special file"
    })
}

/// The refusal of a file that is not a regular file.
pub fn not_regular(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind}, not a regular file (only regular files are read)"),
    )
}

/// Opens `path` for reading without ever blocking (a FIFO without writer, a device): opened with
/// `O_NONBLOCK`, then refused unless it is a regular file (for which `O_NONBLOCK` changes nothing).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    match special_kind(file.metadata()?.file_type()) {
        None => Ok(file),
        Some(kind) => Err(not_regular(kind)),
    }
}

/// Opens `path` ([`open_regular`]), detects compression by content and returns the decompressed
/// stream; its reads are counted in [`read_totals`].
pub fn open(path: &Path) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    open_file(open_regular(path)?)
}

/// [`open`] for a file already open (read from its current position).
pub fn open_file(file: File) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    decompress(Box::new(Counted(file)))
}

/// Detects compression by content and returns the decompressed stream of `file`.
pub fn decompress(
    mut file: Box<dyn Read + Send>,
) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    let compression = Compression::sniff(&head[..got]);
    let raw = Cursor::new(head[..got].to_vec()).chain(file);
    let stream: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(Decompressed::spawn(flate2::read::MultiGzDecoder::new(raw))),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(raw)?;
            // A frame declaring a larger window is damage, whatever the library's default.
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(Decompressed::spawn(decoder))
        }
    };
    Ok((compression, stream))
}

/// Reads chunks that a decompression thread produces.
struct Decompressed {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Decompressed {
    fn spawn<R: Read + Send + 'static>(mut decoder: R) -> Self {
        let (tx, rx) = sync_channel(2);
        thread::Builder::new()
            .name("decompress".into())
            .spawn(move || {
                let mut size = FIRST_CHUNK;
                loop {
                    let mut chunk = vec![0u8; size];
                    size = (size * 2).min(CHUNK);
                    let mut filled = 0;
                    let result = loop {
                        match decoder.read(&mut chunk[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == chunk.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    chunk.truncate(filled);
                    DECOMPRESSED_BYTES.fetch_add(filled as u64, Ordering::Relaxed);
                    let last = filled == 0 || result.is_err();
                    let msg = result.map(|_| chunk);
                    if tx.send(msg).is_err() || last {
                        return;
                    }
                }
            })
            .expect("spawn decompression thread");
        Decompressed {
            rx,
            chunk: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for Decompressed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(io::Error::new(
                        e.kind(),
                        format!("decompression failed: {e}"),
                    ));
                }
                Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        taken(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `payload` zstd-compressed as a stream (no content size) with a window of 2^`log`.
    fn zstd_with_window(payload: &[u8], log: u32) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(log).unwrap();
        std::io::Write::write_all(&mut enc, payload).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let (c, mut s) = decompress(Box::new(Cursor::new(bytes)))?;
        assert_eq!(c, Compression::Zstd);
        let mut out = Vec::new();
        s.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn a_thread_counts_what_it_read_and_not_what_others_read() {
        let dir = std::env::temp_dir().join(format!("shardcap-taken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (plain, packed) = (dir.join("plain"), dir.join("packed"));
        let payload = vec![5u8; 300_000];
        std::fs::write(&plain, &payload).unwrap();
        std::fs::write(&packed, zstd::encode_all(&payload[..], 3).unwrap()).unwrap();
        let read_all = |path: &Path| {
            let (_, mut s) = open(path).unwrap();
            io::copy(&mut s, &mut io::sink()).unwrap()
        };
        let before = thread_read_bytes();
        // Another thread's reads are not this thread's.
        let p = plain.clone();
        thread::spawn(move || read_all(&p)).join().unwrap();
        assert_eq!(thread_read_bytes(), before);
        // A plain file's bytes; a compressed file's bytes as decompressed for this thread (its
        // 4-byte head sniffed here too).
        assert_eq!(read_all(&plain), 300_000);
        assert_eq!(thread_read_bytes() - before, 300_000);
        assert_eq!(read_all(&packed), 300_000);
        assert_eq!(thread_read_bytes() - before, 600_004);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zstd_windows_above_the_limit_are_refused() {
        let payload = vec![7u8; 100_000];
        let ok = zstd_with_window(&payload, ZSTD_WINDOW_LOG_MAX);
        assert_eq!(read_all(ok).unwrap(), payload);
        let big = zstd_with_window(&payload, ZSTD_WINDOW_LOG_MAX + 1);
        assert!(read_all(big).is_err(), "a 256 MiB window is refused");
    }
}
