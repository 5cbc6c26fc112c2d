//! The Drive v3 REST calls the connector makes, with authentication, retries and the
//! mapping of Drive's error responses.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::GDriveError;
use crate::google::{RetryPolicy, TokenSource};

/// MIME type of Drive folders.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// MIME type of Drive shortcuts.
pub const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// Prefix of Google-native documents (Docs, Sheets, folders, shortcuts…).
pub const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";

/// The file fields the connector reads.
pub const FILE_FIELDS: &str = "id,name,mimeType,size,md5Checksum,version,modifiedTime,parents,shortcutDetails,trashed,driveId";

/// A Drive `File` resource (the fields the connector asks for).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveFile {
    /// File id.
    pub id: String,
    /// Name (not unique within a folder).
    #[serde(default)]
    pub name: String,
    /// MIME type.
    #[serde(default)]
    pub mime_type: String,
    /// Size in bytes (a decimal string; absent for folders and Google documents).
    #[serde(default)]
    pub size: Option<String>,
    /// MD5 of the content (binary files only).
    #[serde(default)]
    pub md5_checksum: Option<String>,
    /// Monotonic version number (a decimal string).
    #[serde(default)]
    pub version: Option<String>,
    /// RFC 3339 modification time.
    #[serde(default)]
    pub modified_time: Option<String>,
    /// Parent folder ids (one, since 2020).
    #[serde(default)]
    pub parents: Vec<String>,
    /// Target of a shortcut.
    #[serde(default)]
    pub shortcut_details: Option<ShortcutDetails>,
    /// In the trash.
    #[serde(default)]
    pub trashed: bool,
    /// Shared drive of the file.
    #[serde(default)]
    pub drive_id: Option<String>,
}

impl DriveFile {
    /// A folder.
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    /// A shortcut.
    pub fn is_shortcut(&self) -> bool {
        self.mime_type == SHORTCUT_MIME
    }

    /// The first parent.
    pub fn parent(&self) -> Option<&str> {
        self.parents.first().map(String::as_str)
    }
}

/// `shortcutDetails` of a shortcut.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortcutDetails {
    /// Id of the target file.
    #[serde(default)]
    pub target_id: String,
    /// MIME type of the target.
    #[serde(default)]
    pub target_mime_type: Option<String>,
}

/// A `files.list` response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    #[serde(default)]
    pub files: Vec<DriveFile>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// One entry of a `changes.list` response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveChange {
    #[serde(default)]
    pub change_type: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub file: Option<DriveFile>,
}

/// A `changes.list` response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeList {
    #[serde(default)]
    pub changes: Vec<DriveChange>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub new_start_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartPageToken {
    start_page_token: String,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// Counters of the requests a connector made (all of them, including token requests and
/// retries), for tests and measurements.
#[derive(Debug, Default)]
pub struct GDriveStats {
    requests: AtomicU64,
    retries: AtomicU64,
    media_bytes: AtomicU64,
}

impl GDriveStats {
    /// Drive API requests sent (each retry counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Requests that were retries of a rate-limited or failed one.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Media bytes received from the network (including any prefix a server that ignores
    /// `Range` sent and the connector discarded).
    pub fn media_bytes(&self) -> u64 {
        self.media_bytes.load(Ordering::Relaxed)
    }
}

/// The HTTP side of the connector.
#[derive(Debug)]
pub(crate) struct Api {
    client: reqwest::Client,
    /// `…/drive/v3`, no trailing slash.
    base: String,
    tokens: TokenSource,
    retry: RetryPolicy,
    stats: Arc<GDriveStats>,
}

enum Outcome {
    Done(reqwest::Response),
    Retry(GDriveError),
}

impl Api {
    pub(crate) fn new(
        endpoint: &str,
        tokens: TokenSource,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<Self, GDriveError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build()
            .map_err(GDriveError::Http)?;
        Ok(Self {
            client,
            base: format!("{}/drive/v3", endpoint.trim_end_matches('/')),
            tokens,
            retry,
            stats: Arc::new(GDriveStats::default()),
        })
    }

    pub(crate) fn stats(&self) -> Arc<GDriveStats> {
        Arc::clone(&self.stats)
    }

    /// Send a request built by `build` (called once per attempt) with a bearer token;
    /// retry per the policy; on 401 refresh the token once and retry. Returns a 2xx
    /// response or the error of the last attempt.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GDriveError> {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = match self
                .tokens
                .token(&self.client)
                .await
                .map_err(GDriveError::from)
            {
                Ok(t) => Some(t),
                Err(e) if e.retryable() && attempt < self.retry.max_attempts => {
                    tracing::debug!(attempt, error = %e, "gdrive: token endpoint; retrying");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.retry.delay(attempt - 1)).await;
                    None
                }
                Err(e) => return Err(e),
            };
            let Some(token) = token else { continue };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match build(&self.client).bearer_auth(&token).send().await {
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    Outcome::Retry(GDriveError::Http(e))
                }
                Err(e) => return Err(GDriveError::Http(e)),
                Ok(resp) if resp.status().is_success() => Outcome::Done(resp),
                Ok(resp) => {
                    let err = api_error(resp).await;
                    match &err {
                        GDriveError::Api { status: 401, .. }
                            if !refreshed && self.tokens.refreshable() =>
                        {
                            refreshed = true;
                            self.tokens.invalidate(&token).await;
                            // A refresh is not a retry of a failure: no backoff, no count.
                            attempt -= 1;
                            continue;
                        }
                        e if e.retryable() => Outcome::Retry(err),
                        _ => return Err(err),
                    }
                }
            };
            match outcome {
                Outcome::Done(resp) => return Ok(resp),
                Outcome::Retry(err) => {
                    if attempt >= self.retry.max_attempts {
                        return Err(GDriveError::Exhausted {
                            attempts: attempt,
                            last: Box::new(err),
                        });
                    }
                    tracing::debug!(attempt, error = %err, "gdrive: retrying");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.retry.delay(attempt - 1)).await;
                }
            }
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, GDriveError> {
        let url = format!("{}/{path}", self.base);
        let resp = self.send(|c| c.get(&url).query(query)).await?;
        let body = resp.bytes().await.map_err(GDriveError::Http)?;
        serde_json::from_slice(&body).map_err(|e| GDriveError::Decode(format!("{path}: {e}")))
    }

    /// `files.get` (metadata).
    pub(crate) async fn get_file(&self, id: &str) -> Result<DriveFile, GDriveError> {
        self.get_json(
            &format!("files/{}", encode_path(id)),
            &[
                ("fields", FILE_FIELDS.to_owned()),
                ("supportsAllDrives", "true".to_owned()),
            ],
        )
        .await
    }

    /// One page of `files.list` for query `q`, in shared drive `drive` if given.
    pub(crate) async fn list_files(
        &self,
        q: &str,
        drive: Option<&str>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<FileList, GDriveError> {
        let mut query = vec![
            ("q", q.to_owned()),
            ("fields", format!("nextPageToken,files({FILE_FIELDS})")),
            ("pageSize", page_size.to_string()),
            ("supportsAllDrives", "true".to_owned()),
            ("includeItemsFromAllDrives", "true".to_owned()),
        ];
        if let Some(d) = drive {
            query.push(("corpora", "drive".to_owned()));
            query.push(("driveId", d.to_owned()));
        }
        if let Some(t) = page_token {
            query.push(("pageToken", t.to_owned()));
        }
        self.get_json("files", &query).await
    }

    /// `changes.getStartPageToken`.
    pub(crate) async fn start_page_token(
        &self,
        drive: Option<&str>,
    ) -> Result<String, GDriveError> {
        let mut query = vec![("supportsAllDrives", "true".to_owned())];
        if let Some(d) = drive {
            query.push(("driveId", d.to_owned()));
        }
        let t: StartPageToken = self.get_json("changes/startPageToken", &query).await?;
        Ok(t.start_page_token)
    }

    /// One page of `changes.list`.
    pub(crate) async fn list_changes(
        &self,
        page_token: &str,
        drive: Option<&str>,
        page_size: u32,
    ) -> Result<ChangeList, GDriveError> {
        let mut query = vec![
            ("pageToken", page_token.to_owned()),
            ("pageSize", page_size.to_string()),
            (
                "fields",
                format!(
                    "nextPageToken,newStartPageToken,changes(changeType,fileId,removed,time,file({FILE_FIELDS}))"
                ),
            ),
            ("supportsAllDrives", "true".to_owned()),
            ("includeItemsFromAllDrives", "true".to_owned()),
            ("includeRemoved", "true".to_owned()),
        ];
        if let Some(d) = drive {
            query.push(("driveId", d.to_owned()));
        }
        self.get_json("changes", &query).await
    }

    /// Bytes `range` of file `id` (`alt=media` with a `Range` header). A server that ignores
    /// the header (200 with the whole body) is read as a stream: the prefix is discarded and
    /// reading stops once the range's end has arrived. `Ok(None)`: the range is not
    /// satisfiable (416).
    pub(crate) async fn media(
        &self,
        id: &str,
        range: Range<u64>,
    ) -> Result<Option<Bytes>, GDriveError> {
        let url = format!("{}/files/{}", self.base, encode_path(id));
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let resp = self
            .send(|c| {
                c.get(&url)
                    .query(&[("alt", "media"), ("supportsAllDrives", "true")])
                    .header(reqwest::header::RANGE, &header)
            })
            .await;
        let mut resp = match resp {
            Err(GDriveError::Api { status: 416, .. }) => return Ok(None),
            other => other?,
        };
        let want = (range.end - range.start) as usize;
        // 206: the body starts where Content-Range says (range.start); 200: at 0.
        let mut skip = if resp.status().as_u16() == 206 {
            match partial_start(&resp) {
                Some(s) if s > range.start => {
                    return Err(GDriveError::Decode(format!(
                        "asked for bytes from {}, got {:?}",
                        range.start,
                        resp.headers().get(reqwest::header::CONTENT_RANGE)
                    )));
                }
                Some(s) => range.start - s,
                None => 0,
            }
        } else {
            range.start
        };
        let mut out = BytesMut::with_capacity(want.min(64 << 20));
        while out.len() < want {
            let Some(chunk) = resp.chunk().await.map_err(GDriveError::Http)? else {
                break;
            };
            self.stats
                .media_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let mut chunk = &chunk[..];
            if skip > 0 {
                let n = (skip as usize).min(chunk.len());
                chunk = &chunk[n..];
                skip -= n as u64;
            }
            let room = want - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if out.is_empty() {
            // The whole body ended before the range started (a server ignoring `Range`).
            return Ok(None);
        }
        Ok(Some(out.freeze()))
    }
}

/// The first byte position of a 206's `Content-Range: bytes a-b/n`.
fn partial_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.strip_prefix("bytes ")?;
    rest.split(['-', '/']).next()?.trim().parse().ok()
}

/// Percent-encode a file id for a URL path (ids are `[A-Za-z0-9_-]` in practice).
fn encode_path(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn api_error(resp: reqwest::Response) -> GDriveError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
    let detail = body.error.unwrap_or_default();
    let reason = detail
        .errors
        .first()
        .map(|e| e.reason.clone())
        .unwrap_or_default();
    let message = if detail.message.is_empty() {
        text.chars().take(200).collect()
    } else {
        detail.message
    };
    GDriveError::Api {
        status,
        reason,
        message,
    }
}
