//! Whole files replaced at once: written beside the target, then renamed over it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::nofollow;

/// Replaces `path` with `bytes` atomically: a new temporary file beside it (a unique name, created
/// exclusively, never through a symlink), renamed over it, so a reader sees the old or the new
/// content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Like [`write_atomic`], with the new content on disk before it takes the name.
pub fn write_atomic_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Like [`write_atomic_synced`], the file readable by its owner only ([`nofollow::PRIVATE`]):
/// for state that names every input or holds documents.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (f, tmp) = nofollow::create_temp_with(path, nofollow::PRIVATE)?;
    fill(f, &tmp, path, bytes, true)
}

fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let (f, tmp) = nofollow::create_temp(path)?;
    fill(f, &tmp, path, bytes, sync)
}

/// Writes the temporary file `tmp` and renames it to `path` (removing it on failure).
fn fill(mut f: fs::File, tmp: &Path, path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let written = f
        .write_all(bytes)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) })
        .and_then(|()| nofollow::rename(tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stats.json");
        write_atomic(&p, b"first, longer content").unwrap();
        write_atomic_synced(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn private_files_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoints.json");
        write_private(&p, b"{}").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
