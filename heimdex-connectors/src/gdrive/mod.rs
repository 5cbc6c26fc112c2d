//! Google Drive (v3 REST API) connector: a folder (recursively), a shared drive or My Drive,
//! read in place through ranged `alt=media` downloads, with Drive's changes feed for
//! incremental sync. Feature `gdrive`.
//!
//! # Sources
//!
//! | URI | scope |
//! |---|---|
//! | `gdrive://folder/<id>` | the folder and its subfolders (My Drive or a shared drive) |
//! | `gdrive://shared-drive/<id>` | a whole shared drive (`corpora=drive&driveId=<id>`) |
//! | `gdrive://my-drive` | the caller's My Drive, from its root |
//!
//! # Authentication
//!
//! Options ([`SourceOptions`](crate::SourceOptions), given when the connector is built)
//! win over environment variables; the first credential found in this order is used:
//!
//! | option | environment | meaning |
//! |---|---|---|
//! | `access_token` (or `token`) | `HEIMDEX_GDRIVE_TOKEN` | a ready OAuth access token, used as is (never refreshed) |
//! | `client_id` + `client_secret` + `refresh_token` | | an OAuth client and a user's refresh token (`refresh_token` grant) |
//! | `credentials_json` / `credentials_file` | `GOOGLE_APPLICATION_CREDENTIALS` (a path) | a service-account key (JWT bearer grant, RS256, scope `drive.readonly`) or an `authorized_user` file |
//! | `subject` | | service accounts: the user to impersonate (domain-wide delegation) |
//! | `endpoint` | `HEIMDEX_GDRIVE_ENDPOINT` | API base URL, default `https://www.googleapis.com` (`/drive/v3` is appended) |
//! | `token_uri` | `HEIMDEX_GDRIVE_TOKEN_URI` | token endpoint; default the key file's `token_uri`, else `https://oauth2.googleapis.com/token` |
//! | `page_size` | | `files.list`/`changes.list` page size, default 1000 (Drive's maximum) |
//! | `retry_attempts`, `retry_base_ms` | | retry policy, default 6 attempts from 500 ms |
//! | `timeout_secs` | | connect and read timeout, default 60 |
//!
//! Tokens are cached and refreshed [60 s](auth::REFRESH_MARGIN) before they expire; a 401
//! refreshes the token once and retries the request. The token source is shared by all
//! calls of one connector.
//!
//! # Listing
//!
//! The connector walks the folder tree breadth-first with `files.list`
//! (`q='<folder>' in parents and trashed = false`, one page of up to 1000 children per
//! request), skipping trashed items and Google documents (`application/vnd.google-apps.*`),
//! recursing into folders and resolving shortcuts to files (`shortcutDetails.targetId`, then
//! `files.get`; shortcuts to folders are not followed, so the tree stays a tree). Candidates
//! are files whose `mimeType` is `video/*` or `audio/*` or whose name has a video or audio
//! extension; contents are never read to list (see the connector contract), so `media` is
//! [`MediaKind::UnknownWithVideoExtension`].
//!
//! - Keys are the path of names from the source root (`sub/folder/name.mp4`). Drive allows
//!   several items of one name in a folder: the one with the smallest id keeps the name,
//!   the others get ` (<fileId>)` before the extension (`clip (1AbC…).mp4`); folders alike.
//!   Names containing `/` are not supported (such keys are listed but cannot be resolved
//!   by path after a restart).
//! - Version: `md5Checksum` (the content's MD5), else `v<version>`, else `modifiedTime`.
//! - Paging: the first [`list`](Connector::list) call walks the whole tree (only the
//!   subtrees that can match a prefix) and keeps the sorted result in memory; the page
//!   token is opaque (`gd1:` + hex of the snapshot id and the last key), so later pages
//!   cost no request. A token whose snapshot is gone (another process) walks again and
//!   continues after its key.
//! - `stat`/`read_range` map a key to a file id with the index the last listing or change
//!   sync left in memory; `stat` checks it against a fresh `files.get` (name and parent),
//!   `read_range` does not (a read of a just-renamed file's old key may return its bytes
//!   until a `stat`, a checked read or a sync notices). A key not in the index is resolved
//!   by path, one `files.list` query per segment (`name = '…'`).
//! - The walk lists up to 8 folders of one tree level at once.
//!
//! # Reading
//!
//! `files/<id>?alt=media` with `Range: bytes=a-b`. A server that ignores `Range` (200 with
//! the whole body) is read as a stream: the prefix is discarded and the response dropped as
//! soon as the range's end has arrived, so at most `end` bytes plus one network chunk come
//! over the wire. [`read_range_checked`](Connector::read_range_checked) is the trait's
//! default (read, then a `files.get` comparing the version).
//!
//! # Changes
//!
//! [`changes(None)`](Connector::changes) records `changes/startPageToken`, then lists
//! everything (all [`Change::New`]); the cursor holds that token and a manifest of every
//! listed key (file id, parent, name, version) and of the folders in scope. A later call
//! pages through `changes?pageToken=…` to `newStartPageToken` and applies the latest state
//! of each changed file to the manifest: trashed/removed files are deleted; a file whose
//! parent is a folder in scope is new, modified or moved; one whose parent is not is out of
//! scope (a parent the manifest does not know is resolved up its parents chain, folder
//! parents cached). Changes to folders in scope (renamed, moved, trashed, created in
//! scope) and to items that share a name with a sibling fall back to a full walk diffed
//! against the manifest. The changes are the diff of the old and new manifests, so each
//! is reported once, in key order. An unchanged drive costs one `changes.list` request.
//!
//! # Errors and retries
//!
//! 429, 5xx, 403 with reason `rateLimitExceeded`/`userRateLimitExceeded` and failed
//! connections are retried with exponential backoff and jitter ([`RetryPolicy`]); when the
//! attempts run out the error is [`ConnectorError::Unavailable`]. 404 is
//! [`ConnectorError::NotFound`]; 401 (after one refresh) and other 403s are
//! [`ConnectorError::PermissionDenied`]; a malformed cursor (or a page token Drive
//! refuses) is [`ConnectorError::InvalidCursor`].
//!
//! # Limits
//!
//! - A listing is a full walk: one `files.list` per folder and page of 1000 children
//!   (8 folders at once), plus one `files.get` per shortcut. Later pages of the same listing
//!   are served from memory (the last 8 listings are kept).
//! - The cursor grows with the source: about 110 bytes per listed file, plus its folders.
//! - Shortcuts to folders are not followed; names containing `/` cannot be resolved by path.
//! - On a server that ignores `Range`, a read near the end of a file streams (and discards)
//!   everything before it; with `Range` (Google's servers) exactly the range is fetched.
//! - Multiple parents (legacy Drive items) are reduced to the first.

mod api;
pub mod auth;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use heimdex_core::ConnectorError;
use heimdex_core::connector::{Change, ChangeSet, Connector, ListPage, ListRequest, ObjectMeta};
use heimdex_core::media::{MediaKind, has_media_extension};
use serde::{Deserialize, Serialize};

pub use crate::google::RetryPolicy;
pub use api::GDriveStats;
use api::{Api, DriveFile, FOLDER_MIME, GOOGLE_APPS_PREFIX};
pub use auth::{Credentials, DRIVE_READONLY_SCOPE, ServiceAccountKey};

use crate::source::{SourceError, SourceSpec};

/// Backend name in errors and logs.
pub const NAME: &str = "gdrive";

/// Default API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://www.googleapis.com";

/// Errors of the Drive connector; converted into [`ConnectorError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GDriveError {
    /// Drive answered with an error status.
    #[error("Drive API returned {status} ({reason}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.errors[0].reason` (e.g. `rateLimitExceeded`, `notFound`), or empty.
        reason: String,
        /// `error.message`.
        message: String,
    },
    /// The request failed before an answer (connection, timeout, body).
    #[error("HTTP request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The token endpoint refused or failed.
    #[error("token endpoint returned {status}: {body}")]
    Token {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Missing or unusable credentials.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A response that does not have the documented shape.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Rate limited or failing on every attempt.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// Error of the last attempt.
        #[source]
        last: Box<GDriveError>,
    },
}

impl From<crate::google::AuthError> for GDriveError {
    fn from(e: crate::google::AuthError) -> Self {
        use crate::google::AuthError as A;
        match e {
            A::Http(e) => Self::Http(e),
            A::Token { status, body } => Self::Token { status, body },
            A::Credentials(m) => Self::Credentials(m),
            A::Decode(m) => Self::Decode(m),
        }
    }
}

impl GDriveError {
    /// Whether a retry may succeed: 429, 5xx, rate-limit 403s, failed connections.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Api { status, reason, .. } => {
                *status == 429
                    || *status >= 500
                    || (*status == 403
                        && matches!(
                            reason.as_str(),
                            "rateLimitExceeded" | "userRateLimitExceeded"
                        ))
            }
            Self::Token { status, .. } => *status == 429 || *status >= 500,
            Self::Http(_) => true,
            _ => false,
        }
    }

    /// The [`ConnectorError`] of this error for `key`.
    pub fn into_connector(self, key: &str) -> ConnectorError {
        let key = key.to_owned();
        match self {
            Self::Api { status: 404, .. } => ConnectorError::NotFound { key },
            Self::Api {
                status: 401 | 403, ..
            }
            | Self::Credentials(_)
            | Self::Token {
                status: 400..=499, ..
            } if !self.retryable() => ConnectorError::PermissionDenied {
                connector: NAME,
                key,
                reason: self.to_string(),
            },
            Self::Token { status, .. } if status == 429 || status >= 500 => {
                ConnectorError::Unavailable {
                    connector: NAME,
                    key,
                    source: Box::new(self),
                }
            }
            Self::Exhausted { .. } | Self::Http(_) => ConnectorError::Unavailable {
                connector: NAME,
                key,
                source: Box::new(self),
            },
            e if e.retryable() => ConnectorError::Unavailable {
                connector: NAME,
                key,
                source: Box::new(e),
            },
            e => ConnectorError::Backend {
                connector: NAME,
                key,
                source: Box::new(e),
            },
        }
    }
}

/// What a source covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A folder (by id) and its subfolders.
    Folder(String),
    /// A whole shared drive (by id).
    SharedDrive(String),
    /// The caller's My Drive.
    MyDrive,
}

impl Scope {
    /// The scope of a `gdrive://` source.
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, SourceError> {
        let bad = |reason: &str| SourceError::InvalidUri {
            input: spec.uri().to_owned(),
            reason: reason.to_owned(),
        };
        let id = spec.path();
        match spec.authority() {
            "folder" | "shared-drive" if id.is_empty() || id.contains('/') => Err(bad(
                "expected gdrive://folder/<id> or gdrive://shared-drive/<id> with one id",
            )),
            "folder" => Ok(Self::Folder(id.to_owned())),
            "shared-drive" => Ok(Self::SharedDrive(id.to_owned())),
            "my-drive" if id.is_empty() => Ok(Self::MyDrive),
            _ => Err(bad(
                "expected gdrive://folder/<id>, gdrive://shared-drive/<id> or gdrive://my-drive",
            )),
        }
    }
}

/// Everything the connector needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GDriveConfig {
    /// What the source covers.
    pub scope: Scope,
    /// API base URL (`/drive/v3` is appended).
    pub endpoint: String,
    /// Token endpoint override.
    pub token_uri: Option<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Page size of `files.list` and `changes.list` (1..=1000).
    pub page_size: u32,
    /// Retries of rate limits and server errors.
    pub retry: RetryPolicy,
    /// Connect and read timeout.
    pub timeout: Duration,
}

impl GDriveConfig {
    /// A configuration with defaults: Google's endpoints, pages of 1000, 6 attempts.
    pub fn new(scope: Scope, credentials: Credentials) -> Self {
        Self {
            scope,
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            token_uri: None,
            credentials,
            page_size: 1000,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Use another API base URL (a test server, a proxy).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Use another token endpoint.
    pub fn with_token_uri(mut self, token_uri: impl Into<String>) -> Self {
        self.token_uri = Some(token_uri.into());
        self
    }

    /// Use another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Use another page size (clamped to 1..=1000).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, 1000);
        self
    }

    /// The configuration of a `gdrive://` source: its options, then the environment (see
    /// the [module docs](self)).
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, SourceError> {
        Self::from_spec_and_env(spec, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`from_spec`](Self::from_spec) with `env` standing in for the environment.
    pub fn from_spec_and_env(
        spec: &SourceSpec,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SourceError> {
        let scope = Scope::from_spec(spec)?;
        let opts = spec.options();
        let opt = |k: &str| opts.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        let bad = |key: &str, reason: String| SourceError::InvalidOption {
            key: key.to_owned(),
            reason,
        };
        let subject = opt("subject");
        let read_file = |key: &str, path: &str| {
            std::fs::read_to_string(path).map_err(|e| bad(key, format!("reading {path}: {e}")))
        };
        let credentials = if let Some(t) = opt("access_token").or_else(|| opt("token")) {
            Credentials::AccessToken(t)
        } else if let Some(refresh_token) = opt("refresh_token") {
            Credentials::RefreshToken {
                client_id: opts.require("client_id")?.to_owned(),
                client_secret: opts.require("client_secret")?.to_owned(),
                refresh_token,
            }
        } else if let Some(json) = opt("credentials_json") {
            Credentials::from_json(&json, subject)
                .map_err(|e| bad("credentials_json", e.to_string()))?
        } else if let Some(path) = opt("credentials_file") {
            let json = read_file("credentials_file", &path)?;
            Credentials::from_json(&json, subject)
                .map_err(|e| bad("credentials_file", e.to_string()))?
        } else if let Some(t) = env("HEIMDEX_GDRIVE_TOKEN") {
            Credentials::AccessToken(t)
        } else if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
            let json = read_file("GOOGLE_APPLICATION_CREDENTIALS", &path)?;
            Credentials::from_json(&json, subject)
                .map_err(|e| bad("GOOGLE_APPLICATION_CREDENTIALS", e.to_string()))?
        } else {
            return Err(bad(
                "credentials",
                "none given: set option access_token, refresh_token (+ client_id, client_secret) \
                 or credentials_file, or HEIMDEX_GDRIVE_TOKEN or GOOGLE_APPLICATION_CREDENTIALS"
                    .into(),
            ));
        };
        let mut config = Self::new(scope, credentials);
        if let Some(e) = opt("endpoint").or_else(|| env("HEIMDEX_GDRIVE_ENDPOINT")) {
            config.endpoint = e;
        }
        config.token_uri = opt("token_uri").or_else(|| env("HEIMDEX_GDRIVE_TOKEN_URI"));
        let num = |key: &str| -> Result<Option<u64>, SourceError> {
            opt(key)
                .map(|v| v.parse::<u64>().map_err(|e| bad(key, e.to_string())))
                .transpose()
        };
        if let Some(n) = num("page_size")? {
            config.page_size = n.clamp(1, 1000) as u32;
        }
        if let Some(n) = num("retry_attempts")? {
            config.retry.max_attempts = n.clamp(1, 100) as u32;
        }
        if let Some(n) = num("retry_base_ms")? {
            config.retry.base_delay = Duration::from_millis(n);
        }
        if let Some(n) = num("timeout_secs")? {
            config.timeout = Duration::from_secs(n.max(1));
        }
        Ok(config)
    }
}

/// Where a key lives, as the manifest and the in-memory index keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Known {
    /// Id of the file whose bytes the key reads (a shortcut's target).
    id: String,
    /// Parent folder id of the listed item.
    p: String,
    /// Name of the listed item (the shortcut's own name for shortcuts).
    n: String,
    /// The shortcut's own id, for keys that are shortcuts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    /// Version when listed.
    v: String,
}

impl Known {
    /// The id of the listed item itself (the shortcut for shortcuts).
    fn item_id(&self) -> &str {
        self.s.as_deref().unwrap_or(&self.id)
    }
}

/// A folder in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FolderRec {
    p: String,
    n: String,
    /// Key prefix of its contents (without trailing `/`).
    path: String,
}

/// The resolved root of the scope.
#[derive(Debug, Clone)]
struct Root {
    id: String,
    /// Shared drive to list in (`corpora=drive`), if the root is in one.
    drive: Option<String>,
}

/// Result of walking the tree.
#[derive(Debug, Default)]
struct Walk {
    objects: BTreeMap<String, Known>,
    metas: HashMap<String, ObjectMeta>,
    folders: BTreeMap<String, FolderRec>,
}

/// The manifest of a cursor with lookups by item id, by shortcut target and by
/// (parent, name), kept in step with its edits.
struct Manifest {
    objects: BTreeMap<String, Known>,
    /// Listed item id (shortcut or file) → key.
    by_item: HashMap<String, String>,
    /// Shortcut target id → keys of shortcuts to it.
    by_target: HashMap<String, HashSet<String>>,
    /// (parent, name) → number of keys.
    slots: HashMap<(String, String), usize>,
}

impl Manifest {
    fn new(objects: BTreeMap<String, Known>) -> Self {
        let mut m = Self {
            objects: BTreeMap::new(),
            by_item: HashMap::new(),
            by_target: HashMap::new(),
            slots: HashMap::new(),
        };
        for (key, k) in objects {
            m.insert(key, k);
        }
        m
    }

    fn insert(&mut self, key: String, k: Known) {
        self.remove(&key);
        self.by_item.insert(k.item_id().to_owned(), key.clone());
        if k.s.is_some() {
            self.by_target
                .entry(k.id.clone())
                .or_default()
                .insert(key.clone());
        }
        *self.slots.entry((k.p.clone(), k.n.clone())).or_default() += 1;
        self.objects.insert(key, k);
    }

    fn remove(&mut self, key: &str) -> Option<Known> {
        let k = self.objects.remove(key)?;
        if self.by_item.get(k.item_id()).is_some_and(|x| x == key) {
            self.by_item.remove(k.item_id());
        }
        if let Some(n) = self.slots.get_mut(&(k.p.clone(), k.n.clone())) {
            *n = n.saturating_sub(1);
        }
        if k.s.is_some()
            && let Some(keys) = self.by_target.get_mut(&k.id)
        {
            keys.remove(key);
        }
        Some(k)
    }

    /// Keys of shortcuts to `target`.
    fn via(&self, target: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .by_target
            .get(target)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// How many keys are listed under `k`'s parent and name.
    fn slot(&self, k: &Known) -> usize {
        self.slots
            .get(&(k.p.clone(), k.n.clone()))
            .copied()
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    gdrive: u32,
    root: String,
    token: String,
    objects: BTreeMap<String, Known>,
    folders: BTreeMap<String, FolderRec>,
}

/// Drive's own MIME types of media: video, and audio (indexed by its transcript).
fn is_media_mime(mime: &str) -> bool {
    mime.starts_with("video/") || mime.starts_with("audio/")
}

const CURSOR_VERSION: u32 = 1;
const SNAPSHOTS_KEPT: usize = 8;
/// Folders of one tree level listed at once.
const WALK_CONCURRENCY: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
struct PageToken {
    s: u64,
    a: String,
}

#[derive(Default)]
struct State {
    index: HashMap<String, Known>,
    /// Recent listings: (id, prefix, sorted objects).
    snapshots: VecDeque<(u64, Option<String>, Arc<Vec<ObjectMeta>>)>,
    next_snapshot: u64,
    /// Parent of folders outside the known tree (for scope decisions), `None`: no parent.
    parents: HashMap<String, Option<String>>,
}

/// A Google Drive source. See the [module docs](self).
pub struct GDriveConnector {
    api: Api,
    scope: Scope,
    page_size: u32,
    root: tokio::sync::OnceCell<Root>,
    state: Mutex<State>,
}

impl std::fmt::Debug for GDriveConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GDriveConnector")
            .field("scope", &self.scope)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl GDriveConnector {
    /// A connector with `config`. Makes no request (the root is resolved on first use).
    pub fn new(config: GDriveConfig) -> Result<Self, GDriveError> {
        let tokens = crate::google::TokenSource::new(
            config.credentials,
            DRIVE_READONLY_SCOPE,
            config.token_uri,
        );
        let api = Api::new(&config.endpoint, tokens, config.retry, config.timeout)?;
        Ok(Self {
            api,
            scope: config.scope,
            page_size: config.page_size.clamp(1, 1000),
            root: tokio::sync::OnceCell::new(),
            state: Mutex::new(State {
                // Snapshot ids start at a per-connector value, so a page token of another
                // connector (or process) misses and re-walks instead of paging someone
                // else's listing.
                next_snapshot: snapshot_base(),
                ..State::default()
            }),
        })
    }

    /// The connector of a `gdrive://` source ([`GDriveConfig::from_spec`]).
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, SourceError> {
        let config = GDriveConfig::from_spec(spec)?;
        Self::new(config).map_err(|e| SourceError::Connector(e.into_connector(spec.uri())))
    }

    /// Request counters.
    pub fn stats(&self) -> Arc<GDriveStats> {
        self.api.stats()
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn root(&self) -> Result<&Root, ConnectorError> {
        self.root
            .get_or_try_init(|| async {
                match &self.scope {
                    Scope::Folder(id) => {
                        let f = self
                            .api
                            .get_file(id)
                            .await
                            .map_err(|e| e.into_connector(id))?;
                        if !f.is_folder() || f.trashed {
                            return Err(ConnectorError::NotFound {
                                key: format!("folder {id} ({} is not a live folder)", f.name),
                            });
                        }
                        Ok(Root {
                            id: f.id,
                            drive: f.drive_id,
                        })
                    }
                    Scope::SharedDrive(id) => Ok(Root {
                        id: id.clone(),
                        drive: Some(id.clone()),
                    }),
                    Scope::MyDrive => {
                        let f = self
                            .api
                            .get_file("root")
                            .await
                            .map_err(|e| e.into_connector("my-drive"))?;
                        Ok(Root {
                            id: f.id,
                            drive: None,
                        })
                    }
                }
            })
            .await
    }

    /// Every live child of `folder` matching `extra` (a `q` clause), all pages.
    async fn children(
        &self,
        root: &Root,
        folder: &str,
        extra: &str,
    ) -> Result<Vec<DriveFile>, ConnectorError> {
        let q = format!(
            "'{}' in parents and trashed = false{extra}",
            q_escape(folder)
        );
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .api
                .list_files(&q, root.drive.as_deref(), self.page_size, token.as_deref())
                .await
                .map_err(|e| e.into_connector(folder))?;
            out.extend(page.files);
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// For a listed non-folder item: the file whose bytes it stands for (the item itself,
    /// or a shortcut's live target), if it is a candidate video.
    async fn candidate(&self, item: &DriveFile) -> Result<Option<DriveFile>, ConnectorError> {
        if item.trashed || item.is_folder() {
            return Ok(None);
        }
        if item.is_shortcut() {
            let Some(sd) = &item.shortcut_details else {
                return Ok(None);
            };
            let target_mime = sd.target_mime_type.as_deref().unwrap_or_default();
            if target_mime == FOLDER_MIME
                || !(is_media_mime(target_mime) || has_media_extension(&item.name))
            {
                return Ok(None);
            }
            return match self.api.get_file(&sd.target_id).await {
                Ok(t) if !t.trashed && !t.mime_type.starts_with(GOOGLE_APPS_PREFIX) => Ok(Some(t)),
                Ok(_) | Err(GDriveError::Api { status: 404, .. }) => Ok(None),
                Err(e) => Err(e.into_connector(&item.name)),
            };
        }
        if item.mime_type.starts_with(GOOGLE_APPS_PREFIX) {
            return Ok(None);
        }
        Ok(
            (is_media_mime(&item.mime_type) || has_media_extension(&item.name))
                .then(|| item.clone()),
        )
    }

    /// Walk the tree breadth-first (only into folders that can hold keys under `prefix`).
    async fn walk(&self, prefix: Option<&str>) -> Result<Walk, ConnectorError> {
        let root = self.root().await?;
        let mut walk = Walk::default();
        let mut level = vec![(root.id.clone(), String::new())];
        let mut visited = HashSet::from([root.id.clone()]);
        let mut queue = Vec::new();
        while !level.is_empty() {
            // One level of the tree, up to WALK_CONCURRENCY folders listed at once, in order.
            let listed: Vec<(String, String, Vec<DriveFile>)> =
                futures::stream::iter(level.drain(..).map(|(folder, path)| async move {
                    let children = self.children(root, &folder, "").await?;
                    Ok::<_, ConnectorError>((folder, path, children))
                }))
                .buffered(WALK_CONCURRENCY)
                .try_collect()
                .await?;
            for (folder, path, children) in listed {
                self.walk_folder(
                    &mut walk,
                    &mut visited,
                    &mut queue,
                    prefix,
                    folder,
                    path,
                    children,
                )
                .await?;
            }
            std::mem::swap(&mut level, &mut queue);
        }
        let mut state = self.state();
        if prefix.is_none() {
            state.index.clear();
        }
        for (k, v) in &walk.objects {
            state.index.insert(k.clone(), v.clone());
        }
        Ok(walk)
    }

    /// Sort one listed folder's children into `walk`: folders (queued for the next level
    /// when they can hold keys under `prefix`) and candidate videos.
    #[allow(clippy::too_many_arguments)]
    async fn walk_folder(
        &self,
        walk: &mut Walk,
        visited: &mut HashSet<String>,
        queue: &mut Vec<(String, String)>,
        prefix: Option<&str>,
        folder: String,
        path: String,
        children: Vec<DriveFile>,
    ) -> Result<(), ConnectorError> {
        let mut dirs: BTreeMap<String, Vec<DriveFile>> = BTreeMap::new();
        let mut files: BTreeMap<String, Vec<(DriveFile, DriveFile)>> = BTreeMap::new();
        for item in children {
            if item.trashed {
                continue;
            }
            if item.is_folder() {
                dirs.entry(item.name.clone()).or_default().push(item);
            } else if let Some(target) = self.candidate(&item).await? {
                files
                    .entry(item.name.clone())
                    .or_default()
                    .push((item, target));
            }
        }
        for (name, mut group) in dirs {
            group.sort_by(|a, b| a.id.cmp(&b.id));
            for (i, d) in group.into_iter().enumerate() {
                let seg = if i == 0 {
                    name.clone()
                } else {
                    suffixed(&name, &d.id)
                };
                if !visited.insert(d.id.clone()) {
                    continue;
                }
                let sub = join(&path, &seg);
                walk.folders.insert(
                    d.id.clone(),
                    FolderRec {
                        p: folder.clone(),
                        n: d.name.clone(),
                        path: sub.clone(),
                    },
                );
                if prefix.is_none_or(|p| may_contain(p, &sub)) {
                    queue.push((d.id, sub));
                }
            }
        }
        for (name, mut group) in files {
            group.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            for (i, (item, target)) in group.into_iter().enumerate() {
                let seg = if i == 0 {
                    name.clone()
                } else {
                    suffixed(&name, &item.id)
                };
                let key = join(&path, &seg);
                if prefix.is_some_and(|p| !key.starts_with(p)) {
                    continue;
                }
                let meta = meta_of(&key, &target);
                walk.objects.insert(
                    key.clone(),
                    Known {
                        id: target.id.clone(),
                        p: folder.clone(),
                        n: item.name.clone(),
                        s: item.is_shortcut().then(|| item.id.clone()),
                        v: meta.version.clone(),
                    },
                );
                walk.metas.insert(key, meta);
            }
        }
        Ok(())
    }

    /// The live file of `key` and where it is: from the index (checked), else by path.
    async fn current(&self, key: &str) -> Result<(Known, DriveFile), ConnectorError> {
        let cached = self.state().index.get(key).cloned();
        if let Some(loc) = cached {
            match self.api.get_file(&loc.id).await {
                Ok(f) if self.still_at(&loc, &f) => return Ok((loc, f)),
                Ok(_) | Err(GDriveError::Api { status: 404, .. }) => {
                    self.state().index.remove(key);
                }
                Err(e) => return Err(e.into_connector(key)),
            }
        }
        let loc = self.resolve(key).await?;
        let f = self
            .api
            .get_file(&loc.id)
            .await
            .map_err(|e| e.into_connector(key))?;
        if !self.still_at(&loc, &f) {
            return Err(not_found(key));
        }
        self.state().index.insert(key.to_owned(), loc.clone());
        Ok((loc, f))
    }

    /// Whether the fresh `f` is still the candidate `loc` names.
    fn still_at(&self, loc: &Known, f: &DriveFile) -> bool {
        if f.trashed || f.is_folder() || f.mime_type.starts_with(GOOGLE_APPS_PREFIX) {
            return false;
        }
        if loc.s.is_some() {
            // A shortcut's target: where the shortcut is was checked when it was listed.
            return true;
        }
        f.name == loc.n
            && f.parents.contains(&loc.p)
            && (is_media_mime(&f.mime_type) || has_media_extension(&f.name))
    }

    /// Resolve `key` by path: one `files.list` per segment.
    async fn resolve(&self, key: &str) -> Result<Known, ConnectorError> {
        let root = self.root().await?;
        let segs: Vec<&str> = key.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(not_found(key));
        }
        let (last, dirs) = segs.split_last().ok_or_else(|| not_found(key))?;
        let mut parent = root.id.clone();
        for seg in dirs {
            let extra = format!(
                " and name = '{}' and mimeType = '{FOLDER_MIME}'",
                q_escape(seg)
            );
            let mut found = self.children(root, &parent, &extra).await?;
            found.sort_by(|a, b| a.id.cmp(&b.id));
            parent = match found.into_iter().next() {
                Some(f) => f.id,
                None => match split_suffix(seg) {
                    Some((name, id)) => match self.api.get_file(id).await {
                        Ok(f)
                            if f.is_folder()
                                && !f.trashed
                                && f.name == name
                                && f.parents.contains(&parent) =>
                        {
                            f.id
                        }
                        Ok(_) | Err(GDriveError::Api { status: 404, .. }) => {
                            return Err(not_found(key));
                        }
                        Err(e) => return Err(e.into_connector(key)),
                    },
                    None => return Err(not_found(key)),
                },
            };
        }
        let extra = format!(" and name = '{}'", q_escape(last));
        let mut found = self.children(root, &parent, &extra).await?;
        found.sort_by(|a, b| a.id.cmp(&b.id));
        for item in found {
            if let Some(target) = self.candidate(&item).await? {
                return Ok(known(&item, &target, &parent));
            }
        }
        if let Some((name, id)) = split_suffix(last) {
            match self.api.get_file(id).await {
                Ok(item) if item.name == name && item.parents.contains(&parent) => {
                    if let Some(target) = self.candidate(&item).await? {
                        return Ok(known(&item, &target, &parent));
                    }
                }
                Ok(_) | Err(GDriveError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e.into_connector(key)),
            }
        }
        Err(not_found(key))
    }

    /// Whether folder `id` (not in the manifest) is inside the scope, walking up its
    /// parents (cached).
    async fn folder_in_scope(
        &self,
        id: &str,
        root: &Root,
        folders: &BTreeMap<String, FolderRec>,
    ) -> Result<bool, ConnectorError> {
        let mut cur = id.to_owned();
        for _ in 0..64 {
            if cur == root.id || folders.contains_key(&cur) {
                return Ok(true);
            }
            let cached = self.state().parents.get(&cur).cloned();
            let parent = match cached {
                Some(p) => p,
                None => {
                    let p = match self.api.get_file(&cur).await {
                        Ok(f) => f.parents.into_iter().next(),
                        Err(GDriveError::Api {
                            status: 404 | 403, ..
                        }) => None,
                        Err(e) => return Err(e.into_connector(&cur)),
                    };
                    self.state().parents.insert(cur.clone(), p.clone());
                    p
                }
            };
            match parent {
                Some(p) => cur = p,
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Apply the latest state of changed items to the manifest, or `None` when a full walk
    /// is needed (a folder in scope changed, or a name shared with a sibling is involved).
    async fn apply(
        &self,
        root: &Root,
        old: &Cursor,
        latest: &BTreeMap<String, Option<DriveFile>>,
    ) -> Result<Option<Walk>, ConnectorError> {
        let mut m = Manifest::new(old.objects.clone());
        let mut metas = HashMap::new();
        let path_of = |folder: &str| -> Option<String> {
            if folder == root.id {
                Some(String::new())
            } else {
                old.folders.get(folder).map(|f| f.path.clone())
            }
        };
        for (id, state) in latest {
            let live = state.as_ref().filter(|f| !f.trashed);
            let Some(f) = live else {
                if *id == root.id || old.folders.contains_key(id) {
                    return Ok(None);
                }
                if let Some(key) = m.by_item.get(id).cloned() {
                    if m.slot(&m.objects[&key]) > 1 {
                        return Ok(None);
                    }
                    m.remove(&key);
                }
                for key in m.via(id) {
                    m.remove(&key);
                }
                continue;
            };
            if f.is_folder() {
                if *id == root.id {
                    continue;
                }
                // Keep the cache of outside folders' parents current.
                self.state()
                    .parents
                    .insert(id.clone(), f.parent().map(str::to_owned));
                if let Some(rec) = old.folders.get(id) {
                    if f.name == rec.n && f.parent() == Some(rec.p.as_str()) {
                        continue;
                    }
                    return Ok(None);
                }
                if let Some(p) = f.parent()
                    && self.folder_in_scope(p, root, &old.folders).await?
                {
                    return Ok(None);
                }
                continue;
            }
            // Keys reading this file through a shortcut.
            let readable = !f.mime_type.starts_with(GOOGLE_APPS_PREFIX);
            for key in m.via(id) {
                if readable {
                    let meta = meta_of(&key, f);
                    if let Some(k) = m.objects.get_mut(&key) {
                        k.v.clone_from(&meta.version);
                    }
                    metas.insert(key, meta);
                } else {
                    m.remove(&key);
                }
            }
            // The item itself.
            if let Some(old_key) = m.by_item.get(id).cloned() {
                let k = &m.objects[&old_key];
                let plain = path_of(&k.p).map(|p| join(&p, &k.n));
                if plain.as_deref() != Some(old_key.as_str()) || m.slot(k) > 1 {
                    return Ok(None);
                }
                m.remove(&old_key);
            }
            let Some(parent) = f.parent() else { continue };
            let Some(dir) = path_of(parent) else {
                if self.folder_in_scope(parent, root, &old.folders).await? {
                    return Ok(None);
                }
                continue;
            };
            let Some(target) = self.candidate(f).await? else {
                continue;
            };
            let k = known(f, &target, parent);
            if m.slot(&k) > 0 {
                return Ok(None);
            }
            let key = join(&dir, &f.name);
            let meta = meta_of(&key, &target);
            m.insert(key.clone(), k);
            metas.insert(key, meta);
        }
        Ok(Some(Walk {
            objects: m.objects,
            metas,
            folders: old.folders.clone(),
        }))
    }

    fn snapshot(
        &self,
        prefix: Option<String>,
        metas: Vec<ObjectMeta>,
    ) -> (u64, Arc<Vec<ObjectMeta>>) {
        let mut state = self.state();
        let id = state.next_snapshot;
        state.next_snapshot = id.wrapping_add(1);
        let all = Arc::new(metas);
        state.snapshots.push_back((id, prefix, Arc::clone(&all)));
        while state.snapshots.len() > SNAPSHOTS_KEPT {
            state.snapshots.pop_front();
        }
        (id, all)
    }
}

#[async_trait]
impl Connector for GDriveConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        let token = req
            .page_token
            .as_deref()
            .map(decode_page_token)
            .transpose()?;
        let cached = token.as_ref().and_then(|t| {
            self.state()
                .snapshots
                .iter()
                .find(|(id, prefix, _)| *id == t.s && *prefix == req.prefix)
                .map(|(id, _, all)| (*id, Arc::clone(all)))
        });
        let (id, all) = match cached {
            Some(c) => c,
            None => {
                let walk = self.walk(req.prefix.as_deref()).await?;
                let mut metas: Vec<ObjectMeta> = walk.metas.into_values().collect();
                metas.sort_by(|a, b| a.key.cmp(&b.key));
                self.snapshot(req.prefix.clone(), metas)
            }
        };
        let prefix = req.prefix.as_deref().unwrap_or_default();
        let start = token
            .as_ref()
            .map(|t| all.partition_point(|m| m.key.as_str() <= t.a.as_str()))
            .unwrap_or(0);
        let size = req.page_size.unwrap_or(1000).max(1);
        let mut objects = Vec::new();
        let mut i = start;
        while i < all.len() && objects.len() < size {
            if all[i].key.starts_with(prefix) {
                objects.push(all[i].clone());
            }
            i += 1;
        }
        let more = all[i..].iter().any(|m| m.key.starts_with(prefix));
        let next_page_token = match objects.last() {
            Some(last) if more => Some(encode_page_token(&PageToken {
                s: id,
                a: last.key.clone(),
            })),
            _ => {
                self.state().snapshots.retain(|(s, _, _)| *s != id);
                None
            }
        };
        Ok(ListPage {
            objects,
            next_page_token,
        })
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError> {
        let (_, f) = self.current(key).await?;
        Ok(meta_of(key, &f))
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        if range.start >= range.end {
            let meta = self.stat(key).await?;
            if range.start >= meta.size {
                return Err(out_of_bounds(key, range, meta.size));
            }
            return Ok(Bytes::new());
        }
        let cached = self.state().index.get(key).cloned();
        let (id, from_index) = match cached {
            Some(k) => (k.id, true),
            None => (self.current(key).await?.0.id, false),
        };
        let got = match self.api.media(&id, range.clone()).await {
            Err(GDriveError::Api { status: 404, .. }) if from_index => {
                // The indexed file is gone: resolve the key again.
                self.state().index.remove(key);
                let (k, _) = self.current(key).await?;
                self.api.media(&k.id, range.clone()).await
            }
            other => other,
        };
        match got.map_err(|e| e.into_connector(key))? {
            Some(bytes) => Ok(bytes),
            None => {
                let meta = self.stat(key).await?;
                Err(out_of_bounds(key, range, meta.size))
            }
        }
    }

    async fn changes(&self, cursor: Option<&str>) -> Result<ChangeSet, ConnectorError> {
        let root = self.root().await?;
        let drive = root.drive.as_deref();
        let Some(cursor) = cursor else {
            // Token first: whatever changes during the walk is seen again next time.
            let token = self
                .api
                .start_page_token(drive)
                .await
                .map_err(|e| e.into_connector("changes"))?;
            let walk = self.walk(None).await?;
            let empty = Cursor {
                gdrive: CURSOR_VERSION,
                root: root.id.clone(),
                token: String::new(),
                objects: BTreeMap::new(),
                folders: BTreeMap::new(),
            };
            return Ok(finish(&empty, walk, root, token));
        };
        let old = decode_cursor(cursor)?;
        if old.root != root.id {
            return Err(ConnectorError::InvalidCursor {
                reason: format!("cursor of another Drive source (root {})", old.root),
            });
        }
        let mut latest: BTreeMap<String, Option<DriveFile>> = BTreeMap::new();
        let mut token = old.token.clone();
        loop {
            let page = match self.api.list_changes(&token, drive, self.page_size).await {
                Err(GDriveError::Api { status: 400, .. }) => {
                    return Err(ConnectorError::InvalidCursor {
                        reason: format!("Drive refused the change page token {token:?}"),
                    });
                }
                other => other.map_err(|e| e.into_connector("changes"))?,
            };
            for ch in page.changes {
                if ch.change_type.as_deref() == Some("drive") {
                    continue;
                }
                let Some(id) = ch
                    .file_id
                    .or_else(|| ch.file.as_ref().map(|f| f.id.clone()))
                else {
                    continue;
                };
                latest.insert(id, if ch.removed { None } else { ch.file });
            }
            match (page.new_start_page_token, page.next_page_token) {
                (Some(new), _) => {
                    token = new;
                    break;
                }
                (None, Some(next)) => token = next,
                (None, None) => {
                    return Err(GDriveError::Decode(
                        "changes.list without nextPageToken or newStartPageToken".into(),
                    )
                    .into_connector("changes"));
                }
            }
        }
        let walk = if latest.is_empty() {
            Walk {
                objects: old.objects.clone(),
                metas: HashMap::new(),
                folders: old.folders.clone(),
            }
        } else {
            match self.apply(root, &old, &latest).await? {
                Some(w) => w,
                None => {
                    tracing::debug!("gdrive: changes touch folders or shared names; walking");
                    self.walk(None).await?
                }
            }
        };
        {
            let mut state = self.state();
            state.index = walk
                .objects
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        Ok(finish(&old, walk, root, token))
    }
}

/// The changes from `old` to `new` and the cursor of `new`.
fn finish(old: &Cursor, mut new: Walk, root: &Root, token: String) -> ChangeSet {
    let mut changes = Vec::new();
    for (key, k) in &new.objects {
        match old.objects.get(key) {
            None => changes.extend(new.metas.remove(key).map(Change::New)),
            Some(o) if o.v != k.v => changes.extend(new.metas.remove(key).map(Change::Modified)),
            Some(_) => {}
        }
    }
    for key in old.objects.keys() {
        if !new.objects.contains_key(key) {
            changes.push(Change::Deleted { key: key.clone() });
        }
    }
    changes.sort_by(|a, b| change_key(a).cmp(change_key(b)));
    let cursor = Cursor {
        gdrive: CURSOR_VERSION,
        root: root.id.clone(),
        token,
        objects: new.objects,
        folders: new.folders,
    };
    ChangeSet {
        changes,
        cursor: serde_json::to_string(&cursor).unwrap_or_default(),
    }
}

fn change_key(c: &Change) -> &str {
    match c {
        Change::New(m) | Change::Modified(m) => &m.key,
        Change::Deleted { key } => key,
    }
}

fn decode_cursor(cursor: &str) -> Result<Cursor, ConnectorError> {
    let c: Cursor = serde_json::from_str(cursor).map_err(|e| ConnectorError::InvalidCursor {
        reason: format!("not a Drive cursor: {e}"),
    })?;
    if c.gdrive != CURSOR_VERSION || c.token.is_empty() {
        return Err(ConnectorError::InvalidCursor {
            reason: format!("unsupported Drive cursor version {}", c.gdrive),
        });
    }
    Ok(c)
}

const PAGE_TOKEN_PREFIX: &str = "gd1:";

fn encode_page_token(t: &PageToken) -> String {
    let json = serde_json::to_string(t).unwrap_or_default();
    let mut out = String::from(PAGE_TOKEN_PREFIX);
    for b in json.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_page_token(token: &str) -> Result<PageToken, ConnectorError> {
    let bad = |reason: &str| ConnectorError::InvalidPageToken {
        reason: reason.to_owned(),
    };
    let hex = token
        .strip_prefix(PAGE_TOKEN_PREFIX)
        .ok_or_else(|| bad("not a Drive page token"))?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("corrupt Drive page token"));
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    serde_json::from_slice(&bytes).map_err(|e| bad(&format!("corrupt Drive page token: {e}")))
}

fn snapshot_base() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() >> 16
}

fn known(item: &DriveFile, target: &DriveFile, parent: &str) -> Known {
    Known {
        id: target.id.clone(),
        p: parent.to_owned(),
        n: item.name.clone(),
        s: item.is_shortcut().then(|| item.id.clone()),
        v: version_of(target),
    }
}

fn version_of(f: &DriveFile) -> String {
    if let Some(md5) = f.md5_checksum.as_deref().filter(|s| !s.is_empty()) {
        md5.to_owned()
    } else if let Some(v) = f.version.as_deref().filter(|s| !s.is_empty()) {
        format!("v{v}")
    } else {
        f.modified_time.clone().unwrap_or_else(|| "unknown".into())
    }
}

fn meta_of(key: &str, f: &DriveFile) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: f
            .size
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        version: version_of(f),
        modified_ms: f.modified_time.as_deref().and_then(parse_rfc3339_ms),
        media: MediaKind::UnknownWithVideoExtension,
    }
}

fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `name (<id>).ext`: the key segment of a second item of one name in a folder.
fn suffixed(name: &str, id: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({id}).{ext}"),
        _ => format!("{name} ({id})"),
    }
}

/// The `(name, id)` a [`suffixed`] segment was made of.
fn split_suffix(seg: &str) -> Option<(String, &str)> {
    let (head, ext) = match seg.rsplit_once('.') {
        Some((h, e)) if h.ends_with(')') => (h, Some(e)),
        _ => (seg, None),
    };
    let open = head.rfind(" (")?;
    let id = head[open + 2..].strip_suffix(')')?;
    if id.is_empty() {
        return None;
    }
    let stem = &head[..open];
    let name = match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem.to_owned(),
    };
    Some((name, id))
}

/// Whether a folder at `dir` can hold keys starting with `prefix`.
fn may_contain(prefix: &str, dir: &str) -> bool {
    let d = format!("{dir}/");
    d.starts_with(prefix) || prefix.starts_with(&d)
}

/// Escape a string literal of a Drive `q` query.
fn q_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

fn not_found(key: &str) -> ConnectorError {
    ConnectorError::NotFound {
        key: key.to_owned(),
    }
}

fn out_of_bounds(key: &str, range: Range<u64>, size: u64) -> ConnectorError {
    ConnectorError::RangeOutOfBounds {
        key: key.to_owned(),
        start: range.start,
        end: range.end,
        size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_round_trip() {
        assert_eq!(suffixed("clip.mp4", "X1"), "clip (X1).mp4");
        assert_eq!(suffixed("noext", "X1"), "noext (X1)");
        assert_eq!(
            split_suffix("clip (X1).mp4"),
            Some(("clip.mp4".into(), "X1"))
        );
        assert_eq!(split_suffix("noext (X1)"), Some(("noext".into(), "X1")));
        assert_eq!(split_suffix("clip.mp4"), None);
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_typed() {
        let t = encode_page_token(&PageToken {
            s: 7,
            a: "a/b.mp4".into(),
        });
        let back = decode_page_token(&t).unwrap();
        assert_eq!((back.s, back.a.as_str()), (7, "a/b.mp4"));
        for bad in ["\u{0}garbage", "gd1:zz", "gd1:7b", ""] {
            assert!(matches!(
                decode_page_token(bad),
                Err(ConnectorError::InvalidPageToken { .. })
            ));
        }
    }

    #[test]
    fn scopes_from_uris() {
        let scope = |uri: &str| Scope::from_spec(&SourceSpec::parse(uri).unwrap());
        assert_eq!(
            scope("gdrive://folder/1AbC").unwrap(),
            Scope::Folder("1AbC".into())
        );
        assert_eq!(
            scope("gdrive://shared-drive/0XyZ").unwrap(),
            Scope::SharedDrive("0XyZ".into())
        );
        assert_eq!(scope("gdrive://my-drive").unwrap(), Scope::MyDrive);
        assert!(scope("gdrive://folder").is_err());
        assert!(scope("gdrive://my-drive/x").is_err());
        assert!(scope("gdrive://elsewhere/x").is_err());
    }

    #[test]
    fn config_options_win_over_env() {
        let spec = SourceSpec::parse("gdrive://my-drive")
            .unwrap()
            .with_option("access_token", "from-option")
            .with_option("retry_base_ms", "5");
        let env = |k: &str| match k {
            "HEIMDEX_GDRIVE_TOKEN" => Some("from-env".to_owned()),
            "HEIMDEX_GDRIVE_ENDPOINT" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        let c = GDriveConfig::from_spec_and_env(&spec, env).unwrap();
        assert!(matches!(c.credentials, Credentials::AccessToken(ref t) if t == "from-option"));
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.retry.base_delay, Duration::from_millis(5));
        let bare = SourceSpec::parse("gdrive://my-drive").unwrap();
        let c = GDriveConfig::from_spec_and_env(&bare, env).unwrap();
        assert!(matches!(c.credentials, Credentials::AccessToken(ref t) if t == "from-env"));
        assert!(matches!(
            GDriveConfig::from_spec_and_env(&bare, |_| None),
            Err(SourceError::InvalidOption { ref key, .. }) if key == "credentials"
        ));
        let user =
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#;
        let spec = bare.clone().with_option("credentials_json", user);
        let c = GDriveConfig::from_spec_and_env(&spec, env).unwrap();
        assert!(
            matches!(c.credentials, Credentials::RefreshToken { ref client_id, .. } if client_id == "c")
        );
        let spec = bare
            .clone()
            .with_option("credentials_json", r#"{"type":"external_account"}"#);
        assert!(matches!(
            GDriveConfig::from_spec_and_env(&spec, env),
            Err(SourceError::InvalidOption { ref key, .. }) if key == "credentials_json"
        ));
        let refresh = bare.clone().with_option("refresh_token", "r");
        assert!(matches!(
            GDriveConfig::from_spec_and_env(&refresh, |_| None),
            Err(SourceError::InvalidOption { ref key, .. }) if key == "client_id"
        ));
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable() {
        let api = |status: u16, reason: &str| GDriveError::Api {
            status,
            reason: reason.into(),
            message: String::new(),
        };
        assert!(api(429, "").retryable());
        assert!(api(503, "").retryable());
        assert!(api(403, "userRateLimitExceeded").retryable());
        assert!(!api(403, "insufficientFilePermissions").retryable());
        assert!(matches!(
            api(403, "forbidden").into_connector("k"),
            ConnectorError::PermissionDenied { .. }
        ));
        assert!(matches!(
            api(404, "notFound").into_connector("k"),
            ConnectorError::NotFound { .. }
        ));
    }
}
