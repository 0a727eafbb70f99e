//! Where a shard's bytes go: the `Output` trait, and the plain file and stdout outputs.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::format::StreamHeader;
use crate::safe_fs;

/// A destination for one shard's pcap stream.
pub trait Output: Send {
    /// Writes all of `buf` (whole records, or the stream header).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
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
}

/// A file output. Written as `NAME.partial` and renamed to `NAME` only when complete, so a stopped
/// or failed run never leaves a half-written file under the final name.
pub struct FileOutput {
    file: File,
    partial: PathBuf,
    path: PathBuf,
}

impl FileOutput {
    /// Path of the in-progress file for `path`.
    pub fn partial_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    }

    /// Refuses a target that exists and is not a regular file (a device such as /dev/null, a FIFO,
    /// a directory): the finished output is renamed over its target, which would replace it.
    pub fn check_target(path: &Path) -> io::Result<()> {
        match fs::symlink_metadata(path) {
            Ok(md) if !md.file_type().is_file() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} exists and is not a regular file; a file: output replaces its target when \
                     complete (use -o stdout or fifo: to feed a device or a pipe)",
                    path.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Creates `NAME.partial` afresh (whatever had that name, a symlink included, is replaced,
    /// never written through).
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::check_target(path)?;
        let partial = Self::partial_path(path);
        let file = safe_fs::create_fresh(&partial)?;
        Ok(FileOutput {
            file,
            partial,
            path: path.to_path_buf(),
        })
    }

    /// Reopens an existing `NAME.partial` to append after its first `keep` bytes (a resumed run).
    pub fn resume(path: &Path, keep: u64) -> io::Result<Self> {
        let partial = Self::partial_path(path);
        let file = safe_fs::open_existing(&partial, false)?;
        file.set_len(keep)?;
        let mut out = FileOutput {
            file,
            partial,
            path: path.to_path_buf(),
        };
        io::Seek::seek(&mut out.file, io::SeekFrom::End(0))?;
        Ok(out)
    }
}

impl Output for FileOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.file.sync_all()?;
        safe_fs::rename(&self.partial, &self.path)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
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
