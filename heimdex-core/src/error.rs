//! Error categories shared by every trait error.
//!
//! Each trait has its own `#[non_exhaustive]` error enum whose variants callers can match.
//! Edges (the CLI, the HTTP API, the Python bindings) do not care which backend failed; they
//! care what the caller can do about it. [`ErrorKind`] is that answer, derived from typed
//! variants (never from message text), and each edge maps it in one place: an exit code, an
//! HTTP status, an exception class.

use std::fmt;

/// What kind of failure an error is, for deciding what to tell the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (asset, job, source, person, file).
    NotFound,
    /// The request itself is wrong (bad filter, bad range, unknown vector space).
    InvalidInput,
    /// The request conflicts with the current state (a job transition the state machine
    /// forbids, a stale queue receipt, a home another process is writing).
    Conflict,
    /// The caller may not do this (missing or bad credentials, permission denied).
    Unauthorized,
    /// A dependency is unavailable or a transient failure happened: retrying may succeed.
    Unavailable,
    /// The media itself is unusable (not media, truncated, no usable stream).
    BadMedia,
    /// A bug or corrupt stored data: nothing the caller did.
    Internal,
}

impl ErrorKind {
    /// A stable lower-case name (`not_found`, `invalid_input`, …), used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::InvalidInput => "invalid_input",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
            Self::BadMedia => "bad_media",
            Self::Internal => "internal",
        }
    }

    /// Whether retrying the same operation later can succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn names_are_stable_and_distinct() {
        let all = [
            ErrorKind::NotFound,
            ErrorKind::InvalidInput,
            ErrorKind::Conflict,
            ErrorKind::Unauthorized,
            ErrorKind::Unavailable,
            ErrorKind::BadMedia,
            ErrorKind::Internal,
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(ErrorKind::BadMedia.to_string(), "bad_media");
        assert!(ErrorKind::Unavailable.is_transient());
        assert!(!ErrorKind::Internal.is_transient());
    }
}
