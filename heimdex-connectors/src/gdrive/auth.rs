//! Access tokens for the Drive API: a given token, a service account (JWT bearer grant,
//! RS256, scope [`DRIVE_READONLY_SCOPE`]) or an OAuth refresh token, cached and refreshed
//! before they expire. The implementation is shared with the Cloud Storage connector
//! ([`crate::google`]).

pub use crate::google::{Credentials, GOOGLE_TOKEN_URI, REFRESH_MARGIN, ServiceAccountKey};

/// The OAuth scope asked for: read-only access to the files Drive lets the caller see.
pub const DRIVE_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";
