//! Where a shard's bytes go: the `Output` trait, and the plain file and stdout outputs.

use std::io::{self, IoSlice, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use shardcap_capture::format::StreamHeader;
use shardcap_files::PartialFile;

/// A destination for one shard's pcap stream.
pub trait Output: Send {
    /// Writes all of `buf` (whole records, or the stream header).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Writes the buffers of `parts` in order (whole records in all). Outputs that hand the kernel
    /// several buffers in one call override it and say so in [`Output::vectored`].
    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        parts.iter().try_for_each(|p| self.write_all(p))
    }
    /// Whether [`Output::write_parts`] writes several buffers in one call: the shard's records
    /// then go out from where they were read. Other outputs get them gathered into one buffer.
    fn vectored(&self) -> bool {
        false
    }
    /// Begins the stream with its pcap header. Outputs that put the header elsewhere (the spool,
    /// at the head of every segment) override this.
    fn write_header(&mut self, header: &StreamHeader) -> io::Result<()> {
        self.write_all(&header.encode())
    }
    /// Called by the writer thread when no data came for a while: time-based work goes here.
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Makes everything written so far durable (files) or delivered (pipes).
    fn sync(&mut self) -> io::Result<()>;
    /// Ends the stream cleanly: the output is complete.
    fn finish(self: Box<Self>) -> io::Result<()>;
    /// Names the output in messages.
    fn describe(&self) -> String;
    /// Whether a consumer may read the output while it is written (pipes, stdout, spool
    /// segments): the writer then hands it one brake chunk at a time, so that a suspension bounds
    /// what reaches the consumer. A file nobody reads before it is complete takes whole buffers
    /// (a quarter of the write calls, and no walk over the records).
    fn read_while_written(&self) -> bool {
        true
    }
}

/// How a file output's bytes reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIo {
    /// Whole blocks past the page cache (`O_DIRECT`), gathered into a buffer: the kernel does
    /// not copy the bytes, and the outputs do not fill the page cache. Written through the page
    /// cache where the filesystem refuses it.
    Direct,
    /// Through the page cache, records handed to the kernel from where they were read.
    Buffered,
}

/// A file output, written as `NAME.partial` and renamed to `NAME` when complete.
pub struct FileOutput(PartialFile);

impl FileOutput {
    /// Creates (truncates) `NAME.partial`; `buffer` is the size of a direct output's buffer.
    pub fn create(path: &Path, io: FileIo, buffer: usize) -> io::Result<Self> {
        Self::written(PartialFile::create(path)?, io, buffer)
    }

    /// Reopens an existing `NAME.partial` to append after its first `keep` bytes (a resumed run).
    pub fn resume(path: &Path, keep: u64, io: FileIo, buffer: usize) -> io::Result<Self> {
        Self::written(PartialFile::resume(path, keep)?, io, buffer)
    }

    fn written(mut file: PartialFile, io: FileIo, buffer: usize) -> io::Result<Self> {
        static SAID: AtomicBool = AtomicBool::new(false);
        if io == FileIo::Direct
            && !file.write_direct(buffer)?
            && !SAID.swap(true, Ordering::Relaxed)
        {
            log::info!(
                "{}: written through the page cache (its filesystem keeps files in memory or \
                 refuses direct I/O), as are the other file outputs there",
                file.path().display()
            );
        }
        Ok(FileOutput(file))
    }
}

impl Output for FileOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    /// The file is a valid (empty) capture from the moment its header is written, as it is
    /// through the page cache.
    fn write_header(&mut self, header: &StreamHeader) -> io::Result<()> {
        self.0.write_all(&header.encode())?;
        self.0.flush()
    }

    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        self.0.write_parts(parts)
    }

    fn vectored(&self) -> bool {
        true
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync()
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()
    }

    fn describe(&self) -> String {
        self.0.path().display().to_string()
    }

    /// Read once renamed into place, complete.
    fn read_while_written(&self) -> bool {
        false
    }
}

/// Standard output (a pipe or file; never a terminal).
pub struct StdoutOutput(io::Stdout);

impl StdoutOutput {
    /// Refuses a terminal: binary pcap would garble it.
    pub fn open() -> io::Result<Self> {
        let out = io::stdout();
        if out.is_terminal() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "stdout is a terminal; redirect it to a file or pipe it into a reader",
            ));
        }
        Ok(StdoutOutput(out))
    }
}

impl Output for StdoutOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Stdout is line-buffered: flush so a reader sees every record (and the header) at once.
        let mut out = self.0.lock();
        out.write_all(buf)?;
        out.flush()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.lock().flush()
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.lock().flush()
    }

    fn describe(&self) -> String {
        "stdout".into()
    }
}

/// Outputs for the unit tests of the sinks and of the consumers' supervision.
#[cfg(test)]
pub mod testing {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::Output;

    /// Takes everything and keeps it in the shared buffer.
    pub struct Recorder(pub Arc<Mutex<Vec<u8>>>);

    impl Recorder {
        /// A recorder whose buffer nobody looks at.
        pub fn boxed() -> Box<dyn Output> {
            Box::new(Recorder(Arc::default()))
        }
    }

    impl Output for Recorder {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
    }
}
