//! `run --allow-root DIR`: the directories a dispatcher fed by a shared Redis reads from.
//!
//! Whoever can push to the queue names paths; the dispatcher must neither read outside the roots nor
//! tell, through the reasons it records in `PREFIX_FAILED`, which paths exist. A queued path is
//! first judged by its name alone (made absolute, `.` and `..` folded): outside every root it gets
//! one reason, whatever is there. Inside, it is resolved (symbolic links followed) and must stay
//! inside; a missing or unreadable file gets one reason too, the detail going to the local log.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use shardcap_capture::stream::{open_regular, special_kind};

/// The reason recorded for a path outside every root (or resolving outside, or naming `..` out).
pub const OUTSIDE: &str = "not under an allowed directory (--allow-root)";
/// The reason recorded for a path inside a root that cannot be read (missing or denied).
pub const UNREADABLE: &str = "cannot be read";

/// The allowed directories, as given (absolute) and resolved.
#[derive(Debug, Clone)]
pub struct Roots {
    given: Vec<PathBuf>,
    resolved: Vec<PathBuf>,
}

/// Why a queued path is refused: the reason for `PREFIX_FAILED`, and the detail for the local log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub detail: String,
}

impl Roots {
    /// The roots of `--allow-root`; `None` when none was given (every path is read). A root that
    /// is not a directory is a usage error.
    pub fn new(dirs: &[PathBuf]) -> Result<Option<Roots>> {
        if dirs.is_empty() {
            return Ok(None);
        }
        let mut roots = Roots {
            given: Vec::new(),
            resolved: Vec::new(),
        };
        for d in dirs {
            let bad = |why: String| Error::usage(format!("--allow-root {}: {why}", d.display()));
            let resolved = d.canonicalize().map_err(|e| bad(e.to_string()))?;
            if !resolved.is_dir() {
                return Err(bad("not a directory".into()));
            }
            roots
                .given
                .push(lexical(d).map_err(|e| bad(e.to_string()))?);
            roots.resolved.push(resolved);
        }
        Ok(Some(roots))
    }

    /// Admits `path` (as queued) or says why not, without opening anything that could block.
    pub fn check(&self, path: &Path) -> std::result::Result<(), Refusal> {
        let outside = |detail: String| Refusal {
            reason: OUTSIDE.into(),
            detail,
        };
        let unreadable = |detail: String| Refusal {
            reason: UNREADABLE.into(),
            detail,
        };
        let named = lexical(path).map_err(|e| outside(e.to_string()))?;
        let under = |p: &Path| {
            let all = self.given.iter().chain(&self.resolved);
            all.into_iter().any(|r| p.starts_with(r))
        };
        if !under(&named) {
            return Err(outside("outside every --allow-root".into()));
        }
        let resolved = path.canonicalize().map_err(|e| unreadable(e.to_string()))?;
        if !self.resolved.iter().any(|r| resolved.starts_with(r)) {
            return Err(outside(format!("resolves to {}", resolved.display())));
        }
        let md = fs::metadata(&resolved).map_err(|e| unreadable(e.to_string()))?;
        if let Some(kind) = special_kind(md.file_type()) {
            let why = shardcap_capture::stream::not_regular(kind).to_string();
            return Err(Refusal {
                reason: why.clone(),
                detail: why,
            });
        }
        open_regular(&resolved)
            .map(drop)
            .map_err(|e| unreadable(e.to_string()))
    }
}

/// `path` made absolute (against the working directory) with `.` dropped and `..` folded by name.
fn lexical(path: &Path) -> std::io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in std::path::absolute(path)?.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_paths_get_one_reason_whatever_is_there() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.pcap"), b"x").unwrap();
        fs::write(top.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), root.join("link")).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap().unwrap();
        assert_eq!(roots.check(&root.join("a.pcap")), Ok(()));
        assert_eq!(roots.check(&root.join("./sub/../a.pcap")), Ok(()));
        for p in [
            top.path().join("secret"),
            top.path().join("missing"),
            root.join("../secret"),
            root.join("../missing"),
            root.join("link"),
            PathBuf::from("/etc/passwd"),
        ] {
            assert_eq!(roots.check(&p).unwrap_err().reason, OUTSIDE, "{p:?}");
        }
        let e = roots.check(&root.join("missing")).unwrap_err();
        assert_eq!(e.reason, UNREADABLE);
        assert!(e.detail.contains("No such file"), "{e:?}");
        assert!(roots
            .check(&root)
            .unwrap_err()
            .reason
            .contains("a directory"));
    }
}
