//! The records of `PREFIX_FAILED`: which file, why, and at which byte offset.

use serde::{Deserialize, Serialize};

/// One failed file, stored as a JSON string in the failed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedFile {
    /// The file's name as it was queued.
    pub file: String,
    /// What went wrong.
    pub reason: String,
    /// Byte offset (of the decompressed stream) where it went wrong; packets before it were streamed.
    pub offset: u64,
}

impl FailedFile {
    /// The JSON text stored in Redis.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }

    /// Reads a record; a bare name (pushed by another tool) becomes a record without a reason.
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| FailedFile {
            file: text.to_string(),
            reason: String::new(),
            offset: 0,
        })
    }
}
