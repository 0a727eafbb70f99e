//! Output and state files created without following symlinks, so a name planted in a writable
//! directory (a symlink to a file elsewhere) never redirects a write: every open uses `O_NOFOLLOW`,
//! new files are created exclusively (`O_CREAT|O_EXCL`) under unique temporary names, and files
//! reach their final names by `renameat`, which replaces a name and never writes through it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the files created (before the umask).
const MODE: u32 = 0o644;
/// Mode of the files that may hold what only their owner should read (document bodies, the
/// names of every input): owner only.
pub const PRIVATE: u32 = 0o600;
/// Attempts at a free temporary name before giving up.
const TEMP_ATTEMPTS: u32 = 64;

fn options() -> OpenOptions {
    options_with(MODE)
}

fn options_with(mode: u32) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(mode)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits());
    o
}

/// Creates `path` as a new empty file for writing. An entry already there that is not a directory
/// (an old file, or a symlink: the link itself is removed, never its target) is removed first; one
/// planted again in between makes this fail rather than write through it.
pub fn create_fresh(path: &Path) -> io::Result<File> {
    match nix::unistd::unlink(path) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::from(e)),
    }
    create_new(path)
}

/// Creates `path` as a new empty file for writing; fails if anything has that name.
pub fn create_new(path: &Path) -> io::Result<File> {
    options().write(true).create_new(true).open(path)
}

/// Opens an existing regular file for writing (`append`: at its end; else for reading as well)
/// without following a symlink.
pub fn open_existing(path: &Path, append: bool) -> io::Result<File> {
    let file = if append {
        options().append(true).open(path)?
    } else {
        options().read(true).write(true).open(path)?
    };
    regular(file, path)
}

/// Opens `path` for appending, creating it if missing, without following a symlink.
pub fn open_or_create(path: &Path) -> io::Result<File> {
    regular(options().append(true).create(true).open(path)?, path)
}

/// Like [`open_or_create`], creating the file readable by its owner only ([`PRIVATE`]).
pub fn open_or_create_private(path: &Path) -> io::Result<File> {
    regular(
        options_with(PRIVATE).append(true).create(true).open(path)?,
        path,
    )
}

/// Refuses anything but a regular file (a FIFO or device reached through a planted name).
fn regular(file: File, path: &Path) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ))
    }
}

/// Creates a new temporary file beside `path` under a name nobody else holds (`.NAME.PID.N.tmp`).
pub fn create_temp(path: &Path) -> io::Result<(File, PathBuf)> {
    create_temp_with(path, MODE)
}

/// Like [`create_temp`], with the file's `mode`.
pub fn create_temp_with(path: &Path, mode: u32) -> io::Result<(File, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default();
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = dir.join(tmp);
        match options_with(mode).write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Gives `from` the name `to` (replacing the entry named `to`, never writing through it).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    nix::fcntl::renameat(None, from, None, to).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::write_atomic;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn planted_symlinks_are_replaced_or_refused_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let name = dir.path().join("name");
        symlink(&target, &name).unwrap();

        assert!(open_existing(&name, true).is_err());
        assert!(open_or_create(&name).is_err());
        let mut f = create_fresh(&name).unwrap();
        f.write_all(b"new").unwrap();
        assert!(!std::fs::symlink_metadata(&name).unwrap().is_symlink());

        let other = dir.path().join("other");
        symlink(&target, &other).unwrap();
        write_atomic(&other, b"json").unwrap();
        assert!(!std::fs::symlink_metadata(&other).unwrap().is_symlink());
        assert_eq!(std::fs::read(&other).unwrap(), b"json");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["name", "other", "target"],
            "no temporary file is left"
        );
    }
}
