//! Named-pipe output: created if missing, opened once for the whole run, with the pipe buffer size
//! asked for. A sync waits until the reader has read every byte written (FIONREAD on the write
//! end counts the unread ones).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use super::output::Output;

/// Pipe buffer size asked for by default (capped by /proc/sys/fs/pipe-max-size).
pub const DEFAULT_PIPE_SIZE: usize = 64 << 10;
/// How often a sync looks at the bytes left unread.
const DRAIN_POLL_MS: u8 = 5;

/// A FIFO held open for the whole run.
pub struct FifoOutput {
    file: File,
    path: PathBuf,
}

impl FifoOutput {
    /// Creates `path` as a FIFO if missing (an existing non-FIFO is an error), then waits for a reader
    /// to open it, giving up when `stop` is set. The pipe gets [`DEFAULT_PIPE_SIZE`].
    pub fn open(path: &Path, stop: &AtomicBool) -> io::Result<Self> {
        Self::open_sized(path, stop, DEFAULT_PIPE_SIZE)
    }

    /// Like [`FifoOutput::open`], asking for a pipe buffer of `pipe_size` bytes.
    pub fn open_sized(path: &Path, stop: &AtomicBool, pipe_size: usize) -> io::Result<Self> {
        match std::fs::metadata(path) {
            Ok(md) if md.file_type().is_fifo() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a FIFO; remove it or choose another path",
                        path.display()
                    ),
                ))
            }
            Err(_) => nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o644))
                .map_err(io::Error::from)?,
        }
        let started = Instant::now();
        let mut warned = false;
        let file = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    if stop.load(Ordering::Relaxed) {
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "stopped while waiting for a reader",
                        ));
                    }
                    if !warned && started.elapsed() > Duration::from_secs(2) {
                        log::info!("{}: waiting for a reader to open the FIFO", path.display());
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        // Back to blocking writes: the writer thread waits for the consumer, the merge does not.
        let fd = file.as_raw_fd();
        let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(flags & !OFlag::O_NONBLOCK))?;
        let size = pipe_size.min(i32::MAX as usize) as i32;
        if fcntl(fd, FcntlArg::F_SETPIPE_SZ(size)).is_err() {
            log::debug!(
                "{}: F_SETPIPE_SZ refused; keeping the default pipe size",
                path.display()
            );
        }
        Ok(FifoOutput {
            file,
            path: path.to_path_buf(),
        })
    }
}

impl FifoOutput {
    /// Names the FIFO in a broken pipe's error.
    fn explain(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::BrokenPipe => io::Error::new(
                e.kind(),
                format!("the consumer closed FIFO {}", self.path.display()),
            ),
            _ => e,
        }
    }
}

impl Output for FifoOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf).map_err(|e| self.explain(e))
    }

    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        shardcap_files::write_all_vectored(&mut self.file, parts).map_err(|e| self.explain(e))
    }

    fn vectored(&self) -> bool {
        true
    }

    /// Waits until the reader has read everything written, or has closed the FIFO (the next write
    /// then reports it).
    fn sync(&mut self) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        loop {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int into `unread`.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } < 0 {
                return Err(io::Error::last_os_error());
            }
            if unread == 0 {
                return Ok(());
            }
            // POLLERR on a write end: no reader any more.
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::empty())];
            poll(&mut fds, PollTimeout::from(DRAIN_POLL_MS)).map_err(io::Error::from)?;
            if fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLERR))
            {
                return Ok(());
            }
        }
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("fifo {}", self.path.display())
    }
}
