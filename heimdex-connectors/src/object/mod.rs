//! Object-store connectors: Amazon S3 and S3-compatible stores (MinIO), Azure Blob Storage and
//! web servers (HTTP/WebDAV) through the [`object_store`](https://docs.rs/object_store) crate;
//! Google Cloud Storage through its JSON API ([`gcs::GcsConnector`], its own implementation
//! with reqwest: object_store speaks GCS's XML API, which the emulator the tests run,
//! `gcp-storage-emulator`, does not implement).
//!
//! [`ObjectStoreConnector`] is the one [`Connector`] over any `Arc<dyn ObjectStore>` and a key
//! prefix; the per-backend modules build the store from a [`SourceSpec`](crate::SourceSpec):
//! the URI gives the bucket (container, host) and the prefix, the environment gives
//! credentials the way each ecosystem's own tools read them, and [`SourceOptions`] override
//! both.
//!
//! | feature | kind | URI | builder |
//! |---|---|---|---|
//! | `s3` | `s3` | `s3://bucket/prefix` | [`s3::build`] |
//! | `gcs` | `gs` | `gs://bucket/prefix` | [`gcs::build`] (a [`gcs::GcsConnector`], JSON API) |
//! | `azure` | `az` | `az://container/prefix` | [`azure::build`] |
//! | `http` | `http` | `https://host/folder/` or `https://host/folder/file.mp4` | [`http::build`] |
//!
//! # Options
//!
//! `gs` sources have options of their own, listed in [`gcs`]'s docs (the option names of
//! earlier versions, built on object_store's GCS builder, are accepted where they still mean
//! something). For the other kinds:
//!
//! Option keys are case-insensitive. Besides the keys below, every configuration key that
//! object_store's builder of that backend accepts is passed through (e.g. `aws_session_token`,
//! `client_id`, `proxy_url`, `timeout`, `connect_timeout`); a key none of them knows is
//! [`SourceError::InvalidOption`] naming it. The bucket or container always comes from the
//! URI (`bucket` and `container_name` options are refused).
//!
//! | kind | option | meaning | environment (read first) |
//! |---|---|---|---|
//! | all | `endpoint` | the service URL (MinIO, an emulator, a proxy, a mirror) | see below |
//! | all | `allow_http` | `true` to allow plain `http://` endpoints | `AWS_ALLOW_HTTP`, … |
//! | `s3` | `region` | AWS region | `AWS_REGION`, `AWS_DEFAULT_REGION` |
//! | `s3` | `access_key_id`, `secret_access_key`, `session_token` | static credentials | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` |
//! | `s3` | `endpoint` | e.g. `http://minio:9000` | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT` |
//! | `s3` | `path_style` | `true`: `endpoint/bucket/key` (MinIO), the default | |
//! | `s3` | `virtual_hosted_style_request` | `true`: `bucket.endpoint/key` | `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` |
//! | `s3` | `skip_signature` | anonymous access to public buckets | `AWS_SKIP_SIGNATURE` |
//! | `az` | `account` (alias of `account_name`) | storage account | `AZURE_STORAGE_ACCOUNT_NAME` |
//! | `az` | `access_key` | shared key | `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCESS_KEY` |
//! | `az` | `sas_token`, `bearer_token`, `client_id`, `client_secret`, `tenant_id` | other credentials | `AZURE_STORAGE_SAS_TOKEN`, `AZURE_CLIENT_ID`, … |
//! | `az` | `endpoint` | account URL, e.g. `http://127.0.0.1:10000/devstoreaccount1` | `AZURE_STORAGE_ENDPOINT` |
//! | `az` | `use_emulator` | Azurite at `AZURITE_BLOB_STORAGE_URL` or `http://127.0.0.1:10000` | `AZURE_STORAGE_USE_EMULATOR` |
//! | `http` | `endpoint` | replaces `scheme://host:port` of the URI (a mirror, a local server) | |
//! | `http` | `files` | comma-separated file names under a folder URI, for servers without WebDAV | |
//! | all | `max_retries` | retries of a failed request (object_store's default: 10) | |
//! | all | `retry_timeout` | give up retrying after this long: `30s`, `500ms`, `2m` (default 3 min) | |
//!
//! AWS profiles (`AWS_PROFILE`, `~/.aws/config`) are not read: object_store does not support
//! them; export the variables or pass options. Credentials are options like any other, so a
//! store keeps only the non-secret ones (see
//! [`SourceOptions::storable`](crate::SourceOptions::storable)).
//!
//! # Contract details
//!
//! - Listing is by **name** (see "Listing by content or by name" in [`Connector`]): objects
//!   whose name has a video extension, `media` =
//!   [`MediaKind::UnknownWithVideoExtension`], and no object content is read. Keys are
//!   relative to the prefix, ascending; a page resumes after the previous page's last key
//!   (`list_with_offset`: S3 `start-after`). A page stops at its last candidate without
//!   fetching further, so listing costs one list request per 1,000 objects (S3's page) with
//!   the default page size of 5,000 candidates; a listing of exactly N full pages ends with
//!   one empty page.
//! - [`stat`](Connector::stat) is one `HEAD`; a key not named like a video is `NotFound`, as
//!   it is not a candidate.
//! - `version` is the ETag (quotes removed); a backend without ETags gets `size-mtime`.
//! - [`read_range_checked`](Connector::read_range_checked) is one conditional ranged `GET`
//!   (`If-Match: "<etag>"`): a replaced object fails with `412 Precondition Failed`, reported
//!   as [`ConnectorError::Changed`] (one `HEAD` then names the new version).
//! - Errors: 404 → `NotFound`, 401/403 → `PermissionDenied`, 408/429/5xx (but 501, 505),
//!   timeouts and connection failures (after object_store's own retries) → `Unavailable`,
//!   412 → `Changed`, anything else → `Backend`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use heimdex_core::Connector;
use heimdex_core::connector::{ConnectorError, ListPage, ListRequest, ObjectMeta};
use heimdex_core::media::{MediaKind, has_media_extension};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcs")]
pub mod gcs;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "s3")]
pub mod s3;

use crate::source::{SourceError, SourceOptions};

/// Candidates per listing page when the request does not say.
pub const DEFAULT_PAGE_SIZE: usize = 5_000;
/// Prefix of this connector's page tokens (followed by the last key of the previous page).
const TOKEN_PREFIX: &str = "os1:";
/// Prefix of versions made from size and modification time (backends without ETags).
const SIZE_MTIME: &str = "sm:";

/// Which objects a connector exposes.
#[derive(Debug, Clone)]
enum Listing {
    /// Whatever the store lists under the prefix: in key order (object stores), or in no
    /// order through WebDAV `PROPFIND` (a web server, which may not support it).
    Store { webdav: bool },
    /// Exactly these keys (sorted, deduplicated): one file, or a server that cannot list.
    Keys(Arc<[String]>),
}

/// A [`Connector`] over any object_store [`ObjectStore`] and a key prefix.
///
/// Keys are the object paths below the prefix, `/`-separated. See the
/// [module docs](self) for what each operation costs and how errors map. `Debug` shows the
/// store's `Display` (e.g. `AmazonS3(bucket)`), never its configuration or credentials.
#[derive(Clone)]
pub struct ObjectStoreConnector {
    name: &'static str,
    store: Arc<dyn ObjectStore>,
    /// The prefix, without leading or trailing `/`; empty for the whole bucket.
    root: String,
    /// Where this source lives, for errors about the source as a whole (`s3://bucket/p`).
    location: String,
    listing: Listing,
}

impl std::fmt::Debug for ObjectStoreConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let listing = match &self.listing {
            Listing::Store { webdav: false } => "store".to_owned(),
            Listing::Store { webdav: true } => "webdav".to_owned(),
            Listing::Keys(keys) => format!("{} named keys", keys.len()),
        };
        f.debug_struct("ObjectStoreConnector")
            .field("name", &self.name)
            .field("store", &self.store.to_string())
            .field("prefix", &self.root)
            .field("location", &self.location)
            .field("listing", &listing)
            .finish()
    }
}

impl ObjectStoreConnector {
    /// A connector named `name` (errors and logs) over `store`, rooted at `prefix` (leading,
    /// trailing and repeated `/` are ignored; empty for the whole store). `location` names
    /// the source in errors about it as a whole, e.g. `s3://bucket/prefix`.
    pub fn new(
        name: &'static str,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        location: impl Into<String>,
    ) -> Self {
        let root = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        Self {
            name,
            store,
            root,
            location: location.into(),
            listing: Listing::Store { webdav: false },
        }
    }

    /// Expose exactly `keys` (relative to the prefix) instead of listing the store: a single
    /// file, or a folder on a server that cannot list. Listing then `HEAD`s the keys of the
    /// page; other keys are `NotFound`.
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.sort();
        keys.dedup();
        self.listing = Listing::Keys(keys.into());
        self
    }

    /// The store lists through WebDAV (object_store's `HttpStore`): in no particular order,
    /// so each listing fetches everything under the prefix (one `PROPFIND`) and sorts it; a
    /// server without WebDAV makes listing [`ConnectorError::NotSupported`].
    pub fn with_webdav_listing(mut self) -> Self {
        self.listing = Listing::Store { webdav: true };
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix (no leading or trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.root
    }

    /// The store path of `key`, or `NotFound` for keys that cannot name an object of this
    /// source (empty, `.`/`..` or empty segments, outside a fixed key set).
    pub fn path_of(&self, key: &str) -> Result<Path, ConnectorError> {
        let not_found = || ConnectorError::NotFound {
            key: key.to_owned(),
        };
        if key.is_empty()
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(not_found());
        }
        if let Listing::Keys(keys) = &self.listing
            && keys.binary_search_by(|k| k.as_str().cmp(key)).is_err()
        {
            return Err(not_found());
        }
        let full = if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        };
        Path::parse(full).map_err(|_| not_found())
    }

    /// The key of a store path, if it lies below the prefix.
    fn key_of<'a>(&self, path: &'a Path) -> Option<&'a str> {
        let full: &str = path.as_ref();
        if self.root.is_empty() {
            return (!full.is_empty()).then_some(full);
        }
        full.strip_prefix(self.root.as_str())?
            .strip_prefix('/')
            .filter(|k| !k.is_empty())
    }

    fn meta(&self, key: &str, m: &object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size: m.size,
            version: version_of(m),
            // Whole seconds: listings carry milliseconds, HEAD's Last-Modified does not.
            modified_ms: Some(m.last_modified.timestamp() * 1000),
            media: MediaKind::UnknownWithVideoExtension,
        }
    }

    /// Map an object_store error about `key`.
    fn error(&self, key: &str, e: object_store::Error) -> ConnectorError {
        map_error(self.name, key, e)
    }

    async fn head(&self, key: &str) -> Result<object_store::ObjectMeta, ConnectorError> {
        let path = self.path_of(key)?;
        self.store.head(&path).await.map_err(|e| self.error(key, e))
    }

    /// The `Changed` error for `key` read at `expected`, naming the current version.
    async fn changed(&self, key: &str, expected: &str) -> ConnectorError {
        match self.head(key).await {
            Ok(now) => ConnectorError::Changed {
                key: key.to_owned(),
                expected: expected.to_owned(),
                found: version_of(&now),
            },
            Err(e) => e,
        }
    }

    /// A ranged GET of `key`, conditional on `etag` when given.
    async fn get(
        &self,
        key: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> Result<Bytes, ConnectorError> {
        let path = self.path_of(key)?;
        if range.end <= range.start {
            // Nothing to fetch: check that the object exists, the range lies inside it and,
            // when asked, that it is still the same version.
            let meta = self.head(key).await?;
            check_bounds(key, &range, meta.size)?;
            if let Some(expected) = if_match
                && version_of(&meta) != expected
            {
                return Err(ConnectorError::Changed {
                    key: key.to_owned(),
                    expected: expected.to_owned(),
                    found: version_of(&meta),
                });
            }
            return Ok(Bytes::new());
        }
        let mut opts = GetOptions::new().with_range(Some(GetRange::Bounded(range.clone())));
        if let Some(v) = if_match {
            opts = opts.with_if_match(Some(format!("\"{v}\"")));
        }
        let result = async {
            let got = self.store.get_opts(&path, opts).await?;
            got.bytes().await
        }
        .await;
        match result {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                let mapped = self.error(key, e);
                match mapped {
                    ConnectorError::Changed { .. } => {
                        Err(self.changed(key, if_match.unwrap_or_default()).await)
                    }
                    ConnectorError::NotFound { .. }
                    | ConnectorError::PermissionDenied { .. }
                    | ConnectorError::Unavailable { .. } => Err(mapped),
                    // 416 Range Not Satisfiable, or a response to a range the store rejects:
                    // say which, with the object's size.
                    other => {
                        let meta = self.head(key).await?;
                        check_bounds(key, &range, meta.size)?;
                        Err(other)
                    }
                }
            }
        }
    }

    async fn list_store(
        &self,
        req: &ListRequest,
        webdav: bool,
    ) -> Result<ListPage, ConnectorError> {
        let ordered = !webdav;
        let after = parse_token(req.page_token.as_deref())?;
        let want = req.prefix.as_deref().unwrap_or("");
        let limit = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
        // object_store prefixes match whole path segments: list the folder part of the
        // requested prefix and compare the rest by string.
        let folder = want.rfind('/').map(|i| &want[..i]).unwrap_or("");
        let joined = [self.root.as_str(), folder]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let list_prefix = if joined.is_empty() {
            None
        } else {
            match Path::parse(&joined) {
                Ok(p) => Some(p),
                // No object can lie below a prefix that is not a valid path.
                Err(_) => return Ok(ListPage::default()),
            }
        };
        let offset = match (ordered, after) {
            // Unordered (WebDAV) listings are filtered after sorting.
            (true, Some(a)) => Some(self.path_of_unchecked(a)?),
            _ => None,
        };
        let mut stream = match &offset {
            Some(o) => self.store.list_with_offset(list_prefix.as_ref(), o),
            None => self.store.list(list_prefix.as_ref()),
        };
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| self.list_error(e, webdav))?;
            let Some(key) = self.key_of(&m.location) else {
                continue;
            };
            // Also filter client-side: some servers (Azurite) ignore the offset.
            if ordered && after.is_some_and(|a| key <= a) {
                continue;
            }
            if !key.starts_with(want) {
                if ordered && key > want {
                    break;
                }
                continue;
            }
            let name = key.rsplit('/').next().unwrap_or(key);
            if !has_media_extension(name) {
                continue;
            }
            out.push(self.meta(key, &m));
            // A full page ends here, without polling on: peeking for one more candidate
            // could cost a list request of the next store page only to throw it away. A
            // listing of exactly N full pages ends with one empty page instead.
            if ordered && out.len() == limit {
                return Ok(page(out, limit, true));
            }
        }
        if !ordered {
            out.sort_by(|a, b| a.key.cmp(&b.key));
            out.dedup_by(|a, b| a.key == b.key);
            out.retain(|m| after.is_none_or(|a| m.key.as_str() > a));
            let more = out.len() > limit;
            out.truncate(limit);
            return Ok(page(out, limit, more));
        }
        Ok(page(out, limit, false))
    }

    fn list_error(&self, e: object_store::Error, webdav: bool) -> ConnectorError {
        if webdav {
            let (status, transport) = classify(&e);
            // 405 Method Not Allowed / 501 Not Implemented, or a reply that is not a
            // multistatus document: a plain web server.
            let plain = matches!(status, Some(400 | 405 | 501))
                || (status.is_none() && e.to_string().contains("decoding PROPFIND"));
            if plain && !transport {
                return ConnectorError::NotSupported {
                    connector: self.name,
                    operation: "listing a folder: the server does not answer WebDAV PROPFIND \
                                (give a file URI, or name the files with the `files` option)",
                };
            }
        }
        self.error(&self.location, e)
    }

    /// [`path_of`](Self::path_of) without the fixed-key check (for list offsets).
    fn path_of_unchecked(&self, key: &str) -> Result<Path, ConnectorError> {
        let full = if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        };
        Path::parse(full).map_err(|e| ConnectorError::InvalidPageToken {
            reason: e.to_string(),
        })
    }

    async fn list_keys(
        &self,
        req: &ListRequest,
        keys: &[String],
    ) -> Result<ListPage, ConnectorError> {
        let after = parse_token(req.page_token.as_deref())?;
        let want = req.prefix.as_deref().unwrap_or("");
        let limit = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
        let mut out = Vec::new();
        let mut candidates = keys.iter().filter(|key| {
            after.is_none_or(|a| key.as_str() > a)
                && key.starts_with(want)
                && has_media_extension(key.rsplit('/').next().unwrap_or(key))
        });
        for key in candidates.by_ref() {
            match self.head(key).await {
                Ok(m) => out.push(self.meta(key, &m)),
                // A named file that is gone is simply not listed.
                Err(ConnectorError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            if out.len() == limit {
                break;
            }
        }
        let more = candidates.next().is_some();
        Ok(page(out, limit, more))
    }
}

fn page(out: Vec<ObjectMeta>, limit: usize, more: bool) -> ListPage {
    debug_assert!(out.len() <= limit);
    let next_page_token = if more {
        out.last().map(|m| format!("{TOKEN_PREFIX}{}", m.key))
    } else {
        None
    };
    ListPage {
        objects: out,
        next_page_token,
    }
}

fn parse_token(token: Option<&str>) -> Result<Option<&str>, ConnectorError> {
    match token {
        None => Ok(None),
        Some(t) => match t.strip_prefix(TOKEN_PREFIX) {
            Some(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(ConnectorError::InvalidPageToken {
                reason: "not an object-store connector page token".into(),
            }),
        },
    }
}

fn check_bounds(key: &str, range: &Range<u64>, size: u64) -> Result<(), ConnectorError> {
    if range.start >= size {
        return Err(ConnectorError::RangeOutOfBounds {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}

/// The version of an object: its ETag without quotes (and without a weak `W/` marker), or
/// `sm:size-mtime_ms` when the backend has no ETag.
pub fn version_of(m: &object_store::ObjectMeta) -> String {
    match m.e_tag.as_deref().map(normalise_etag) {
        Some(e) if !e.is_empty() => e.to_owned(),
        _ => format!(
            "{SIZE_MTIME}{}-{}",
            m.size,
            m.last_modified.timestamp_millis()
        ),
    }
}

fn normalise_etag(e: &str) -> &str {
    let e = e.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(e)
}

/// Map an object_store error about `key` (an object key, or the source for listings) into
/// the connector error of its category.
pub fn map_error(connector: &'static str, key: &str, e: object_store::Error) -> ConnectorError {
    use object_store::Error as E;
    let key = key.to_owned();
    match e {
        E::NotFound { .. } => ConnectorError::NotFound { key },
        E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
            ConnectorError::PermissionDenied {
                connector,
                key,
                reason: source.to_string(),
            }
        }
        E::Precondition { .. } => ConnectorError::Changed {
            key,
            expected: String::new(),
            found: String::new(),
        },
        other => {
            let (status, transport) = classify(&other);
            match status {
                Some(404) => ConnectorError::NotFound { key },
                Some(401 | 403) => ConnectorError::PermissionDenied {
                    connector,
                    key,
                    reason: other.to_string(),
                },
                Some(412) => ConnectorError::Changed {
                    key,
                    expected: String::new(),
                    found: String::new(),
                },
                // 501 Not Implemented and 505 are not going away with a retry.
                Some(408 | 429 | 500 | 502..=504 | 506..=599) => ConnectorError::Unavailable {
                    connector,
                    key,
                    source: Box::new(other),
                },
                None if transport => ConnectorError::Unavailable {
                    connector,
                    key,
                    source: Box::new(other),
                },
                _ => ConnectorError::Backend {
                    connector,
                    key,
                    source: Box::new(other),
                },
            }
        }
    }
}

/// The HTTP status an error chain reports (object_store's retry error is not public, so its
/// `status code: NNN` text is read), and whether it is a transport failure (connect, timeout,
/// broken request).
fn classify(e: &object_store::Error) -> (Option<u16>, bool) {
    let mut status = None;
    #[allow(unused_mut)] // set by object_store's client errors (not with `gcs` alone)
    let mut transport = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // object_store's HTTP client exists with its cloud backends only (not with `gcs`
        // alone, which does not use object_store's client).
        #[cfg(any(feature = "s3", feature = "azure", feature = "http"))]
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            transport |= matches!(
                h.kind(),
                K::Connect | K::Timeout | K::Request | K::Interrupted
            );
        }
        if status.is_none() {
            let text = err.to_string();
            if let Some(i) = text.find("status code: ") {
                let digits: String = text[i + 13..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                status = digits.parse().ok();
            }
        }
        cur = err.source();
    }
    (status, transport)
}

#[async_trait]
impl Connector for ObjectStoreConnector {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        match &self.listing {
            Listing::Store { webdav } => self.list_store(&req, *webdav).await,
            Listing::Keys(keys) => {
                let keys = Arc::clone(keys);
                self.list_keys(&req, &keys).await
            }
        }
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError> {
        let name = key.rsplit('/').next().unwrap_or(key);
        if !has_media_extension(name) {
            // Not a candidate (listing is by name): as if absent, like the listing.
            self.path_of(key)?;
            return Err(ConnectorError::NotFound {
                key: key.to_owned(),
            });
        }
        let m = self.head(key).await?;
        Ok(self.meta(key, &m))
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        self.get(key, range, None).await
    }

    async fn read_range_checked(
        &self,
        key: &str,
        range: Range<u64>,
        version: &str,
    ) -> Result<Bytes, ConnectorError> {
        if version.starts_with(SIZE_MTIME) {
            // No ETag to send: read, then compare (the trait's default).
            let bytes = self.get(key, range, None).await?;
            let now = version_of(&self.head(key).await?);
            if now != version {
                return Err(ConnectorError::Changed {
                    key: key.to_owned(),
                    expected: version.to_owned(),
                    found: now,
                });
            }
            return Ok(bytes);
        }
        self.get(key, range, Some(version)).await
    }
}

/// Parse a boolean option value (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
#[allow(dead_code)] // not every backend has boolean options of its own
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, SourceError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(SourceError::InvalidOption {
            key: key.to_owned(),
            reason: format!("expected true or false, got {value:?}"),
        }),
    }
}

/// Apply `options` to a builder: each key goes through `alias` (our names → object_store's)
/// and is parsed as the backend's config key; a key the backend does not know is
/// [`SourceError::InvalidOption`] naming it. `refused` keys come from the URI.
#[cfg_attr(
    not(any(feature = "s3", feature = "azure", feature = "http")),
    allow(dead_code)
)]
pub(crate) fn apply_options<B, K>(
    mut builder: B,
    options: &SourceOptions,
    kind: &str,
    refused: &[&str],
    alias: impl Fn(&str, &str) -> Result<Option<(String, String)>, SourceError>,
    set: impl Fn(B, K, String) -> B,
) -> Result<B, SourceError>
where
    K: std::str::FromStr,
{
    for (key, value) in options.iter() {
        if RETRY_KEYS.contains(&key) {
            continue;
        }
        if refused.contains(&key) {
            return Err(SourceError::InvalidOption {
                key: key.to_owned(),
                reason: format!("the {kind} source URI names it; it is not an option"),
            });
        }
        let (k, v) = match alias(key, value)? {
            Some(kv) => kv,
            None => (key.to_owned(), value.to_owned()),
        };
        let parsed: K = k.parse().map_err(|_| SourceError::InvalidOption {
            key: key.to_owned(),
            reason: format!("unknown option for {kind}:// sources"),
        })?;
        builder = set(builder, parsed, v);
    }
    Ok(builder)
}

/// The options every kind takes for object_store's retry policy (see [`retry_config`]).
#[cfg_attr(
    not(any(feature = "s3", feature = "azure", feature = "http")),
    allow(dead_code)
)]
pub(crate) const RETRY_KEYS: [&str; 2] = ["max_retries", "retry_timeout"];

/// object_store's retry policy with the `max_retries` and `retry_timeout` options applied, or
/// `None` when neither is given.
#[cfg(any(feature = "s3", feature = "azure", feature = "http"))]
pub(crate) fn retry_config(
    options: &SourceOptions,
) -> Result<Option<object_store::RetryConfig>, SourceError> {
    let max = options.get("max_retries");
    let timeout = options.get("retry_timeout");
    if max.is_none() && timeout.is_none() {
        return Ok(None);
    }
    let mut config = object_store::RetryConfig::default();
    if let Some(v) = max {
        config.max_retries = v.trim().parse().map_err(|_| SourceError::InvalidOption {
            key: "max_retries".into(),
            reason: format!("expected a number of retries, got {v:?}"),
        })?;
    }
    if let Some(v) = timeout {
        config.retry_timeout = parse_duration(v).ok_or_else(|| SourceError::InvalidOption {
            key: "retry_timeout".into(),
            reason: format!("expected a duration such as 30s, 500ms or 2m, got {v:?}"),
        })?;
    }
    Ok(Some(config))
}

/// `500ms`, `30s`, `2m`, or plain seconds.
pub(crate) fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

/// The error of a builder that refused its configuration.
#[cfg_attr(
    not(any(feature = "s3", feature = "azure", feature = "http")),
    allow(dead_code)
)]
pub(crate) fn build_error(
    connector: &'static str,
    uri: &str,
    e: object_store::Error,
) -> SourceError {
    SourceError::Connector(ConnectorError::Backend {
        connector,
        key: uri.to_owned(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn conn(prefix: &str) -> ObjectStoreConnector {
        ObjectStoreConnector::new("memory", Arc::new(InMemory::new()), prefix, "mem://x")
    }

    #[test]
    fn prefixes_and_keys() {
        let c = conn("/a//b/");
        assert_eq!(c.prefix(), "a/b");
        assert_eq!(c.path_of("x/y.mp4").unwrap().as_ref(), "a/b/x/y.mp4");
        for bad in ["", "/x", "x//y", "../x", "x/./y", "x/"] {
            assert!(
                matches!(c.path_of(bad), Err(ConnectorError::NotFound { .. })),
                "{bad}"
            );
        }
        let p = Path::parse("a/b/c.mp4").unwrap();
        assert_eq!(c.key_of(&p), Some("c.mp4"));
        assert_eq!(c.key_of(&Path::parse("a/bc/d.mp4").unwrap()), None);
        assert_eq!(conn("").key_of(&p), Some("a/b/c.mp4"));
        let fixed = conn("").with_keys(["b.mp4", "a.mp4", "a.mp4"]);
        assert!(fixed.path_of("a.mp4").is_ok());
        assert!(fixed.path_of("c.mp4").is_err());
    }

    #[test]
    #[cfg(any(feature = "s3", feature = "azure", feature = "http"))]
    fn retry_options() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        let o: SourceOptions = [("max_retries", "0"), ("retry_timeout", "1.5s")]
            .into_iter()
            .collect();
        let r = retry_config(&o).unwrap().unwrap();
        assert_eq!(
            (r.max_retries, r.retry_timeout),
            (0, Duration::from_millis(1500))
        );
        assert!(retry_config(&SourceOptions::new()).unwrap().is_none());
        for (k, v) in [("max_retries", "many"), ("retry_timeout", "1h")] {
            let o: SourceOptions = [(k, v)].into_iter().collect();
            assert!(
                matches!(retry_config(&o), Err(SourceError::InvalidOption { key, .. }) if key == k)
            );
        }
    }

    #[test]
    fn versions_and_tokens() {
        let mut m = object_store::ObjectMeta {
            location: Path::from("x"),
            last_modified: Default::default(),
            size: 3,
            e_tag: Some("W/\"abc\"".into()),
            version: None,
        };
        assert_eq!(version_of(&m), "abc");
        m.e_tag = Some("0x8D".into());
        assert_eq!(version_of(&m), "0x8D");
        m.e_tag = None;
        assert_eq!(version_of(&m), "sm:3-0");
        assert_eq!(parse_token(Some("os1:a/b.mp4")).unwrap(), Some("a/b.mp4"));
        for bad in ["", "os1:", "after:x", "\u{0}garbage"] {
            assert!(matches!(
                parse_token(Some(bad)),
                Err(ConnectorError::InvalidPageToken { .. })
            ));
        }
    }

    #[test]
    fn errors_map_to_categories() {
        let src = || -> Box<dyn std::error::Error + Send + Sync> { "x".into() };
        let e = |err| map_error("s3", "k", err);
        assert!(matches!(
            e(object_store::Error::NotFound {
                path: "k".into(),
                source: src()
            }),
            ConnectorError::NotFound { .. }
        ));
        assert!(matches!(
            e(object_store::Error::Unauthenticated {
                path: "k".into(),
                source: src()
            }),
            ConnectorError::PermissionDenied { .. }
        ));
        assert!(matches!(
            e(object_store::Error::Precondition {
                path: "k".into(),
                source: src()
            }),
            ConnectorError::Changed { .. }
        ));
        for (text, unavailable) in [
            (
                "Server returned non-2xx status code: 503 Service Unavailable: slow down",
                true,
            ),
            (
                "Server returned non-2xx status code: 429 Too Many Requests: ",
                true,
            ),
            (
                "Server returned non-2xx status code: 400 Bad Request: no",
                false,
            ),
        ] {
            let got = e(object_store::Error::Generic {
                store: "S3",
                source: text.into(),
            });
            assert_eq!(
                matches!(got, ConnectorError::Unavailable { .. }),
                unavailable,
                "{text}: {got:?}"
            );
        }
        let got = e(object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 404 Not Found: NoSuchBucket".into(),
        });
        assert!(matches!(got, ConnectorError::NotFound { .. }));
    }
}
