//! Errors that end a command, and the exit codes they map to.

use std::fmt;

/// Exit code: the run finished and every input was read.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime failure (output, consumer, Redis, I/O) stopped the run.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code: usage or configuration error, detected before any output was written.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the run finished, but some input was unreadable or damaged and was skipped in part.
pub const EXIT_SKIPPED: i32 = 3;

/// What kind of failure an [`Error`] is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad flag, bad path, bad configuration: exit 2.
    Usage,
    /// Anything that went wrong while running: exit 1.
    Runtime,
}

/// A one-line, user-facing error.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    /// A runtime failure (exit 1).
    pub fn runtime(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Runtime,
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage => EXIT_USAGE,
            Kind::Runtime => EXIT_RUNTIME,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::runtime(e.to_string())
    }
}

/// Result with a shardcap [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
