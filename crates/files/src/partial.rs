//! A file written as `NAME.partial` and renamed to `NAME` only when complete, so a stopped or
//! failed run never leaves a half-written file under the final name.

use std::fs::{self, File};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::direct::{self, DirectAppender};
use crate::nofollow;

/// An open `NAME.partial`, to become `NAME` by [`PartialFile::finish`].
pub struct PartialFile {
    file: File,
    partial: PathBuf,
    path: PathBuf,
    /// Set when the file is appended past the page cache.
    direct: Option<DirectAppender>,
}

impl PartialFile {
    /// Path of the in-progress file for `path`.
    pub fn partial_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    }

    /// Refuses a target that exists and is not a regular file (a device such as /dev/null, a FIFO,
    /// a directory): the finished file is renamed over its target, which would replace it.
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

    /// Creates `NAME.partial` afresh: whatever had that name (a symlink included) is replaced,
    /// never written through.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::check_target(path)?;
        let partial = Self::partial_path(path);
        let file = nofollow::create_fresh(&partial)?;
        Ok(PartialFile {
            file,
            partial,
            path: path.to_path_buf(),
            direct: None,
        })
    }

    /// Appends past the page cache from now on, gathering into a buffer of `buffer` bytes (see
    /// [`crate::direct`]), where the filesystem takes it and it saves anything; says whether.
    pub fn write_direct(&mut self, buffer: usize) -> io::Result<bool> {
        if !direct::worthwhile(&self.file) {
            return Ok(false);
        }
        let end = self.file.seek(SeekFrom::End(0))?;
        self.direct = Some(DirectAppender::new(&self.file, end, buffer)?);
        Ok(true)
    }

    /// Reopens an existing `NAME.partial` to append after its first `keep` bytes (a resumed run).
    pub fn resume(path: &Path, keep: u64) -> io::Result<Self> {
        let partial = Self::partial_path(path);
        let mut file = nofollow::open_existing(&partial, false)?;
        file.set_len(keep)?;
        file.seek(SeekFrom::End(0))?;
        Ok(PartialFile {
            file,
            partial,
            path: path.to_path_buf(),
            direct: None,
        })
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends all of `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.direct {
            Some(d) => d.write_all(&self.file, buf),
            None => self.file.write_all(buf),
        }
    }

    /// Appends all the bytes of `parts`, in order (see [`crate::write_all_vectored`]).
    pub fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        match &mut self.direct {
            Some(d) => d.write_parts(&self.file, parts),
            None => crate::write_all_vectored(&mut self.file, parts),
        }
    }

    /// Puts the data written so far into the file (a direct file holds some back until a whole
    /// block is there).
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.direct {
            Some(d) => d.flush(&self.file),
            None => Ok(()),
        }
    }

    /// Makes the data written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    /// Makes everything durable and gives the file its final name.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_all()?;
        nofollow::rename(&self.partial, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_name_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.pcap");
        let mut f = PartialFile::create(&p).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!p.exists());
        f.finish().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abc");
    }

    #[test]
    fn resume_cuts_back_to_the_kept_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.pcap");
        let mut f = PartialFile::create(&p).unwrap();
        f.write_all(b"abcdef").unwrap();
        drop(f);
        let mut f = PartialFile::resume(&p, 2).unwrap();
        f.write_all(b"XY").unwrap();
        f.finish().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abXY");
    }

    #[test]
    fn a_resumed_file_written_past_the_cache_keeps_what_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.pcap");
        let head: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = PartialFile::create(&p).unwrap();
        f.write_all(&head).unwrap();
        drop(f);
        let mut f = PartialFile::resume(&p, 5_000).unwrap();
        f.write_direct(8192).unwrap();
        let more = vec![7u8; 20_000];
        f.write_all(&more).unwrap();
        f.sync().unwrap();
        f.write_all(&more[..3]).unwrap();
        f.finish().unwrap();
        assert_eq!(
            fs::read(&p).unwrap(),
            [&head[..5_000], &more[..], &more[..3]].concat()
        );
    }

    #[test]
    fn refuses_a_target_that_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PartialFile::check_target(dir.path()).is_err());
        assert!(PartialFile::check_target(&dir.path().join("absent")).is_ok());
    }
}
