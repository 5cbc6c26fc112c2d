//! The [`Connector`] trait: a storage source that Heimdex reads in place.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::media::MediaKind;

/// Errors of any connector. Backends keep private errors and convert into these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The object does not exist (or no longer exists).
    #[error("not found: {key}")]
    NotFound {
        /// Object key.
        key: String,
    },
    /// The requested range starts at or beyond the end of the object.
    #[error("range {start}..{end} out of bounds for {key} of {size} bytes")]
    RangeOutOfBounds {
        /// Object key.
        key: String,
        /// Requested start.
        start: u64,
        /// Requested end.
        end: u64,
        /// Object size.
        size: u64,
    },
    /// The cursor was not produced by this connector (or is corrupt).
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// Why.
        reason: String,
    },
    /// The page token was not produced by this connector (or is corrupt).
    #[error("invalid page token: {reason}")]
    InvalidPageToken {
        /// Why.
        reason: String,
    },
    /// The object changed while it was being read (version mismatch).
    #[error("object {key} changed while reading (expected version {expected}, found {found})")]
    Changed {
        /// Object key.
        key: String,
        /// Version the reader was opened with.
        expected: String,
        /// Version found now.
        found: String,
    },
    /// The credentials are missing, wrong, or do not allow reading this object.
    #[error("{connector}: permission denied for {key}: {reason}")]
    PermissionDenied {
        /// Backend name.
        connector: &'static str,
        /// Object key or path.
        key: String,
        /// What the backend said.
        reason: String,
    },
    /// A transient failure (rate limit, timeout, server error); retrying later may succeed.
    #[error("{connector}: temporarily unavailable at {key}: {source}")]
    Unavailable {
        /// Backend name.
        connector: &'static str,
        /// Object key or path.
        key: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operation is not supported by this backend.
    #[error("operation not supported by {connector}: {operation}")]
    NotSupported {
        /// Backend name.
        connector: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// Any other backend error, with the path or key it concerns.
    #[error("{connector} error at {key}: {source}")]
    Backend {
        /// Backend name.
        connector: &'static str,
        /// Object key or path.
        key: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConnectorError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::RangeOutOfBounds { .. }
            | Self::InvalidPageToken { .. }
            | Self::NotSupported { .. } => ErrorKind::InvalidInput,
            Self::PermissionDenied { .. } => ErrorKind::Unauthorized,
            // An object replaced mid-read: the job retries on the new version.
            Self::Changed { .. } | Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::InvalidCursor { .. } | Self::Backend { .. } => ErrorKind::Internal,
        }
    }
}

/// Metadata of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Key, relative to the source root, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Version: etag, generation, or `size-mtime` for files. Changes when the bytes change.
    pub version: String,
    /// Last modification, ms since the epoch, if known.
    pub modified_ms: Option<i64>,
    /// What the first bytes say the object is (see [`crate::media::sniff`]).
    pub media: MediaKind,
}

/// A listing request. Fields may be added; construct with `ListRequest::default()` and update.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListRequest {
    /// Only keys that start with this prefix.
    pub prefix: Option<String>,
    /// Maximum entries per page (backend default when `None`).
    pub page_size: Option<usize>,
    /// Token from the previous page; `None` for the first page.
    pub page_token: Option<String>,
}

impl ListRequest {
    /// A request for the first page of size `page_size`.
    pub fn with_page_size(page_size: usize) -> Self {
        Self {
            page_size: Some(page_size),
            ..Self::default()
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Candidate video objects of this page, in key order.
    pub objects: Vec<ObjectMeta>,
    /// Token of the next page; `None` when this was the last.
    pub next_page_token: Option<String>,
}

/// One change since a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A key that was not there before.
    New(ObjectMeta),
    /// A key whose version changed.
    Modified(ObjectMeta),
    /// A key that is gone.
    Deleted {
        /// The key that is gone.
        key: String,
    },
}

/// The changes since a cursor, plus the cursor to pass next time.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    /// Changes in key order.
    pub changes: Vec<Change>,
    /// Opaque cursor representing the state after these changes.
    pub cursor: String,
}

/// A storage source that Heimdex reads in place, without copying.
///
/// # Contract
/// - [`list`](Connector::list) returns the *candidate media objects* under the source:
///   objects whose content sniffs as a video container or audio file (see
///   [`crate::media::sniff`]) **or** whose name has a video or audio extension (so a broken
///   `.mp4` is still listed and fails its own job with a reason, rather than silently
///   vanishing). Pages are in ascending key order; following
///   `next_page_token` until `None` yields every candidate exactly once.
/// - [`stat`](Connector::stat) returns the same [`ObjectMeta`] the listing would, or
///   [`ConnectorError::NotFound`].
/// - [`read_range`](Connector::read_range) returns exactly the bytes `range` of the object,
///   truncated at its end; a range starting at or past the end is
///   [`ConnectorError::RangeOutOfBounds`] (an empty range inside the object returns empty bytes).
///   It never reads more of the object than asked for (plus backend-internal block rounding).
/// - [`changes`](Connector::changes) compares the current listing with the state a previous
///   cursor represents (`None`: the empty state) and reports [`Change::New`],
///   [`Change::Modified`] (version differs) and [`Change::Deleted`], in key order, plus a new
///   cursor. Passing the new cursor back with nothing changed yields no changes.
/// - [`read_range_checked`](Connector::read_range_checked) is `read_range` of one version:
///   when the object's current version is not `version` (it was replaced since it was
///   listed), it fails with [`ConnectorError::Changed`] instead of returning bytes of another
///   version, so a decoder never mixes two versions of a file.
/// - Keys are `/`-separated and relative to the source root, whatever the backend.
///
/// # Listing by content or by name
/// A connector that can read the first bytes of a file cheaply (a local disk) lists by
/// content *and* name, as above. A remote connector (object stores, Drive) must not read
/// object contents to list: it lists the objects whose name has a video or audio extension
/// (or whose backend-declared content type is video or audio), with `media` set to
/// [`MediaKind::UnknownWithVideoExtension`] (content not looked at yet); the pipeline's probe
/// reads only the bytes it needs of the objects a change selects.
#[async_trait]
pub trait Connector: Send + Sync + Debug {
    /// Backend name for errors and logs, e.g. `local`.
    fn name(&self) -> &'static str;

    /// List one page of candidate video objects.
    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError>;

    /// Metadata of one object.
    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError>;

    /// Read a byte range of one object.
    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError>;

    /// Read a byte range of `key` only if its current version is `version`, else
    /// [`ConnectorError::Changed`]. The default reads, then stats and compares (one extra
    /// metadata request); backends with conditional reads (`If-Match`) override it.
    async fn read_range_checked(
        &self,
        key: &str,
        range: Range<u64>,
        version: &str,
    ) -> Result<Bytes, ConnectorError> {
        let bytes = self.read_range(key, range).await?;
        let now = self.stat(key).await?;
        if now.version != version {
            return Err(ConnectorError::Changed {
                key: key.to_owned(),
                expected: version.to_owned(),
                found: now.version,
            });
        }
        Ok(bytes)
    }

    /// Changes since `cursor`. The default lists everything and diffs against a manifest
    /// cursor (see [`ManifestCursor`]); backends with a native change feed override it.
    async fn changes(&self, cursor: Option<&str>) -> Result<ChangeSet, ConnectorError> {
        let previous = match cursor {
            Some(c) => ManifestCursor::decode(c)?,
            None => ManifestCursor::default(),
        };
        let current = list_all(self, None).await?;
        Ok(previous.diff(current))
    }
}

/// Follow every page of a listing.
pub async fn list_all<C: Connector + ?Sized>(
    connector: &C,
    prefix: Option<String>,
) -> Result<Vec<ObjectMeta>, ConnectorError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = connector
            .list(ListRequest {
                prefix: prefix.clone(),
                page_size: None,
                page_token: token.take(),
            })
            .await?;
        out.extend(page.objects);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// A change cursor that records the listing it was computed from (key → version).
///
/// It makes change detection work on any backend that can list; its size grows with the
/// number of objects (about 60 bytes per object), which is fine for folders and buckets of
/// up to a few hundred thousand videos. Backends with native change feeds (Drive changes,
/// bucket notifications) use their own tokens instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ManifestCursor {
    /// Format version of the cursor.
    v: u32,
    /// key → version.
    objects: BTreeMap<String, String>,
}

impl ManifestCursor {
    const VERSION: u32 = 1;

    /// Decode a cursor string.
    pub fn decode(cursor: &str) -> Result<Self, ConnectorError> {
        let c: Self = serde_json::from_str(cursor).map_err(|e| ConnectorError::InvalidCursor {
            reason: e.to_string(),
        })?;
        if c.v != Self::VERSION {
            return Err(ConnectorError::InvalidCursor {
                reason: format!("unsupported cursor version {}", c.v),
            });
        }
        Ok(c)
    }

    /// The changes from this state to `current`, and the cursor of `current`.
    pub fn diff(&self, mut current: Vec<ObjectMeta>) -> ChangeSet {
        current.sort_by(|a, b| a.key.cmp(&b.key));
        let mut changes = Vec::new();
        let mut next = BTreeMap::new();
        for meta in current {
            next.insert(meta.key.clone(), meta.version.clone());
            match self.objects.get(&meta.key) {
                None => changes.push(Change::New(meta)),
                Some(v) if *v != meta.version => changes.push(Change::Modified(meta)),
                Some(_) => {}
            }
        }
        for key in self.objects.keys() {
            if !next.contains_key(key) {
                changes.push(Change::Deleted { key: key.clone() });
            }
        }
        changes.sort_by(|a, b| change_key(a).cmp(change_key(b)));
        let cursor = Self {
            v: Self::VERSION,
            objects: next,
        };
        ChangeSet {
            changes,
            cursor: serde_json::to_string(&cursor).unwrap_or_default(),
        }
    }
}

fn change_key(c: &Change) -> &str {
    match c {
        Change::New(m) | Change::Modified(m) => &m.key,
        Change::Deleted { key } => key,
    }
}

/// A shared connector handle.
pub type SharedConnector = Arc<dyn Connector>;

/// Helper to turn an io error into the connector error for `key`.
pub fn io_error(connector: &'static str, key: &str, e: io::Error) -> ConnectorError {
    if e.kind() == io::ErrorKind::NotFound {
        ConnectorError::NotFound {
            key: key.to_owned(),
        }
    } else {
        ConnectorError::Backend {
            connector,
            key: key.to_owned(),
            source: Box::new(e),
        }
    }
}
