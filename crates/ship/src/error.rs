//! The shipper's errors: a configuration the shipper cannot work with, and failures while it runs,
//! each with what it was doing and the error behind it.

use std::io;
use std::path::PathBuf;

/// Why shipping could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration (target, credentials, state directory, limits) is unusable: fix it and
    /// start again.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    File {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// An I/O failure not tied to one file (a thread, standard output).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Shipping stopped on a failure that a restart resumes from.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// A configuration error.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    /// A failure while running.
    pub fn runtime(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    /// True for a configuration error (the binary's exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_))
    }
}

/// Result with the shipper's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
