//! Errors that end a command, and the exit codes they map to. The library crates have errors of
//! their own; they become this one at the binary's edge, keeping the error behind them as source.

use std::io;
use std::path::{Path, PathBuf};

/// Exit code: the run finished and every input was read.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime failure (output, consumer, Redis, I/O) stopped the run.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: usage or configuration error, detected before any output was written.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the run finished, but some input was unreadable or damaged and was skipped in part.
pub const EXIT_SKIPPED: i32 = 3;

/// A one-line, user-facing error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flag, bad path, bad configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything that went wrong while running: exit 1.
    #[error("{message}")]
    Runtime {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A file that could not be read or written, and what was being done with it.
    #[error("{}: {what}: {source}", path.display())]
    File {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A shard's output failed.
    #[error("shard {shard}: {source}")]
    Shard {
        shard: usize,
        #[source]
        source: io::Error,
    },
    /// The shipper's error: exit 2 for its configuration, else 1.
    #[error(transparent)]
    Ship(#[from] shardcap_ship::Error),
    /// The generator's error: exit 2 when its directory cannot be made, else 1.
    #[cfg(feature = "generate")]
    #[error(transparent)]
    Generate(#[from] shardcap_gen::Error),
}

impl Error {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// A runtime failure (exit 1).
    pub fn runtime(message: impl Into<String>) -> Self {
        Error::Runtime {
            message: message.into(),
            source: None,
        }
    }

    /// Makes an I/O error on `path` (while doing `what`) an [`Error::File`].
    pub fn file(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::File { path, what, source }
    }

    /// Makes an I/O error of shard `shard`'s output an [`Error::Shard`].
    pub fn shard(shard: usize) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Shard { shard, source }
    }

    /// True for a usage or configuration error.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Usage(_) => true,
            Error::Ship(e) => e.is_config(),
            #[cfg(feature = "generate")]
            Error::Generate(e) => matches!(e, shardcap_gen::Error::CreateDir { .. }),
            Error::Runtime { .. } | Error::File { .. } | Error::Shard { .. } => false,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        if self.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_RUNTIME
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Runtime {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Result with a shardcap [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn exit_codes_follow_the_kind() {
        assert_eq!(Error::usage("x").exit_code(), EXIT_USAGE);
        assert_eq!(Error::runtime("x").exit_code(), EXIT_RUNTIME);
        let ship = Error::from(shardcap_ship::Error::usage("bad --es"));
        assert_eq!(ship.exit_code(), EXIT_USAGE);
        let io = Error::from(io::Error::other("disk"));
        assert_eq!(io.exit_code(), EXIT_RUNTIME);
        assert!(io.source().is_some(), "the I/O error stays as source");
        let file = Error::file(Path::new("/j/journal"), "cannot append")(io::Error::new(
            io::ErrorKind::StorageFull,
            "no space",
        ));
        assert_eq!(file.to_string(), "/j/journal: cannot append: no space");
        let kind = file
            .source()
            .and_then(|e| e.downcast_ref::<io::Error>())
            .map(io::Error::kind);
        assert_eq!(kind, Some(io::ErrorKind::StorageFull), "the kind survives");
    }
}
