//! Expands the command line's INPUTs (files, directories, globs, @LIST files) into capture paths.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A path to read, and whether the user named it (rather than a directory walk finding it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    /// Named directly (file, glob match or list entry): a non-capture there is reported and counted.
    pub explicit: bool,
}

/// Files and directories already reached, by device and inode.
#[derive(Default)]
struct Seen {
    files: HashSet<(u64, u64)>,
    dirs: HashSet<(u64, u64)>,
}

/// Expands inputs in the order given. Missing paths and empty globs are usage errors (exit 2).
/// The same file reached twice (by any name) is kept once. Directory walks follow symbolic links
/// and enter each directory once, whatever its names: a link loop ends there.
pub fn expand(inputs: &[String]) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for input in inputs {
        expand_one(input, true, &mut out, &mut seen)?;
    }
    Ok(out)
}

fn expand_one(
    input: &str,
    allow_list: bool,
    out: &mut Vec<Candidate>,
    seen: &mut Seen,
) -> Result<()> {
    if let Some(list) = input.strip_prefix('@').filter(|_| allow_list) {
        let text = fs::read_to_string(list)
            .map_err(|e| Error::usage(format!("{list}: cannot read list file: {e}")))?;
        let base = Path::new(list).parent().unwrap_or(Path::new(""));
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let p = base.join(line);
            expand_one(&p.to_string_lossy(), false, out, seen)?;
        }
        return Ok(());
    }
    let path = Path::new(input);
    match fs::metadata(path) {
        Ok(md) if md.is_dir() => walk(path, out, seen),
        Ok(md) => {
            push(path.to_path_buf(), &md, true, out, seen);
            Ok(())
        }
        Err(_) if has_glob_chars(input) => {
            let paths =
                glob::glob(input).map_err(|e| Error::usage(format!("{input}: bad glob: {e}")))?;
            let mut matched = 0;
            for p in paths.flatten() {
                matched += 1;
                expand_one(&p.to_string_lossy(), false, out, seen)?;
            }
            if matched == 0 {
                return Err(Error::usage(format!("{input}: the glob matches no file")));
            }
            Ok(())
        }
        Err(e) => Err(Error::usage(format!(
            "{input}: {e}; name an existing file, directory, glob or @LIST"
        ))),
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn push(
    path: PathBuf,
    md: &fs::Metadata,
    explicit: bool,
    out: &mut Vec<Candidate>,
    seen: &mut Seen,
) {
    if seen.files.insert((md.dev(), md.ino())) {
        out.push(Candidate { path, explicit });
    } else {
        log::warn!(
            "{}: the same file was named twice; reading it once",
            path.display()
        );
    }
}

/// Every regular file under `dir`, symlinks followed, in name order. walkdir reports a link back to
/// an ancestor (a loop), and `seen` prunes a directory or file reached twice by other links, so
/// each is visited once: the walk is linear in the tree, whatever its links.
fn walk(dir: &Path, out: &mut Vec<Candidate>, seen: &mut Seen) -> Result<()> {
    let dirs = &mut seen.dirs;
    let entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !e.file_type().is_dir()
                || e.metadata()
                    .map_or(true, |md| dirs.insert((md.dev(), md.ino())))
        });
    let mut found = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.loop_ancestor().is_some() => {
                log::debug!("{e}: a link back to a directory being walked; skipped");
                continue;
            }
            Err(e) if e.depth() == 0 => {
                return Err(Error::usage(format!(
                    "{}: cannot list directory: {e}",
                    dir.display()
                )))
            }
            Err(e) => {
                log::debug!("{e}; skipped");
                continue;
            }
        };
        if entry.file_type().is_file() {
            if let Ok(md) = entry.metadata() {
                found.push((entry.into_path(), md));
            }
        }
    }
    for (path, md) in found {
        push(path, &md, false, out, seen);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_dirs_globs_lists_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        for f in ["a.pcap", "sub/b.bin", "c.pcap"] {
            fs::write(d.join(f), b"x").unwrap();
        }
        fs::write(d.join("list.txt"), "a.pcap\n# comment\n\nsub/b.bin\n").unwrap();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let got = expand(&[
            format!("@{}", s(&d.join("list.txt"))),
            s(&d.join("*.pcap")),
            s(d),
        ])
        .unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.pcap", "b.bin", "c.pcap", "list.txt"]);
        assert!(got[0].explicit && !got[3].explicit);
        let err = expand(&[s(&d.join("missing.pcap"))]).unwrap_err();
        assert!(err.is_usage());
        assert!(expand(&[s(&d.join("*.none"))]).is_err());
    }

    #[test]
    fn symlink_loops_end_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.pcap"), b"x").unwrap();
        // Walked naively, these two links make 2^40 paths before the name length limit.
        std::os::unix::fs::symlink(".", d.join("a")).unwrap();
        std::os::unix::fs::symlink(".", d.join("b")).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
        let got = expand(&[d.to_string_lossy().into_owned()]).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].path, d.join("a.pcap"));
    }

    #[test]
    fn links_fanning_into_one_directory_walk_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Level k holds two links to level k+1: 2^40 paths through 40 levels, walked naively.
        for k in 0..=40 {
            fs::create_dir(d.join(format!("l{k}"))).unwrap();
        }
        for k in 0..40 {
            for name in ["a", "b"] {
                let target = d.join(format!("l{}", k + 1));
                std::os::unix::fs::symlink(target, d.join(format!("l{k}/{name}"))).unwrap();
            }
        }
        fs::write(d.join("l40/x.pcap"), b"x").unwrap();
        let got = expand(&[d.join("l0").to_string_lossy().into_owned()]).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
    }
}
