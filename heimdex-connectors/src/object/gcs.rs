//! Google Cloud Storage: `gs://bucket/prefix`, through the GCS **JSON API**
//! (`https://storage.googleapis.com/storage/v1/…`) with reqwest.
//!
//! # Requests
//!
//! | operation | request |
//! |---|---|
//! | [`list`](Connector::list) | `GET /storage/v1/b/{bucket}/o?prefix=…&startOffset=…&maxResults=…&pageToken=…&fields=items(name,size,generation,md5Hash,updated,contentType),nextPageToken` |
//! | [`stat`](Connector::stat) | `GET /storage/v1/b/{bucket}/o/{object}?fields=…` |
//! | [`read_range`](Connector::read_range) | `GET /storage/v1/b/{bucket}/o/{object}?alt=media` with `Range: bytes=a-b` |
//! | [`read_range_checked`](Connector::read_range_checked) | the same with `ifGenerationMatch={generation}` |
//!
//! - Listing is by **name** (see "Listing by content or by name" in [`Connector`]): objects
//!   whose name has a video or audio extension, `media` = [`MediaKind::UnknownWithVideoExtension`]; no
//!   content is read. Keys are relative to the prefix, in ascending order. A page token
//!   (`gcs1:<last key>`) resumes with `startOffset` (keys at or before it are also dropped
//!   client-side, for servers that ignore `startOffset`); a page asks for at most
//!   `page_size + 1` items (1,000 at most), so a listing costs one request per 1,000 objects.
//!   A page ends with a token only when more candidates may follow.
//! - `version` is the object's `generation` (a decimal string): it changes with every write.
//! - `read_range` returns exactly the asked bytes: a server that ignores `Range` (200 with the
//!   whole object) is read as a stream, the bytes before the range discarded and the response
//!   dropped as soon as the range's end has arrived. A range starting at or past the end is
//!   [`ConnectorError::RangeOutOfBounds`] (from a `416`, or an empty answer, with the size from
//!   `Content-Range` or a `stat`).
//! - `read_range_checked` is one conditional request: a replaced object answers `412`,
//!   reported as [`ConnectorError::Changed`] (one metadata request names the new generation).
//!   The generation served is also compared with the `x-goog-generation` response header;
//!   a server that sends no such header (Google's always do) gets a `stat` after the read, so
//!   a server that ignores `ifGenerationMatch` still cannot return bytes of another version
//!   unnoticed.
//! - [`changes`](Connector::changes) is the trait's default: the listing diffed against a
//!   [`ManifestCursor`](heimdex_core::connector::ManifestCursor).
//! - Errors: 404 → `NotFound` (a missing bucket: keyed by the source URI), 401/403 →
//!   `PermissionDenied` (a 401 first refreshes the token once), 408/429/5xx (but 501, 505),
//!   timeouts and connection failures → retried with exponential backoff and jitter
//!   ([`RetryPolicy`]), then `Unavailable`; anything else → `Backend`.
//!
//! # Endpoint and credentials
//!
//! Options win over the environment:
//!
//! | option (aliases) | environment | meaning |
//! |---|---|---|
//! | `endpoint` (`endpoint_url`, `base_url`, `google_base_url`) | `STORAGE_EMULATOR_HOST` | API base URL, default `https://storage.googleapis.com`; with `STORAGE_EMULATOR_HOST` (`host:port` or a URL, Google's convention for emulators) no credentials are used |
//! | `token` (`access_token`, `bearer_token`) | `HEIMDEX_GCS_TOKEN` | a ready OAuth access token, used as is |
//! | `service_account_key` (`google_service_account_key`, `credentials_json`) | `GOOGLE_SERVICE_ACCOUNT_KEY` | service-account key JSON, inline |
//! | `service_account_path` (`service_account`, `google_service_account`, `google_service_account_path`, `application_credentials`, `google_application_credentials`, `credentials_file`) | `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_PATH`, `GOOGLE_APPLICATION_CREDENTIALS` | a credentials file: a service-account key (JWT bearer grant, RS256, scope [`READ_ONLY_SCOPE`]) or an `authorized_user` file (refresh token) |
//! | `skip_signature` (`google_skip_signature`) | | `true`: anonymous requests (public buckets) |
//! | `token_uri` | | token endpoint; default the key's `token_uri`, else Google's |
//! | `max_retries` | | retries of a failed request, default 5 |
//! | `retry_timeout` | | stop retrying after this long (`30s`, `500ms`, `2m`), default 3 min |
//! | `timeout`, `connect_timeout` | | read and connect timeouts, default 60 s and 10 s |
//! | `allow_http` | | accepted for compatibility: `http://` endpoints always work |
//!
//! Without any of them, gcloud's application default credentials file
//! (`$CLOUDSDK_CONFIG` or `~/.config/gcloud` `/application_default_credentials.json`) is used
//! if it exists, else the metadata server of the Google Cloud machine (as Google's SDKs do).
//! Tokens are cached and refreshed a minute before they expire (the code is shared with the
//! Drive connector: [`crate::google`]). A key none of these name is
//! [`SourceError::InvalidOption`] naming it; the bucket comes from the URI only.
//!
//! ```
//! use heimdex_connectors::SourceSpec;
//! use heimdex_connectors::object::gcs;
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let spec = SourceSpec::parse("gs://media/campaigns")?.with_options([
//!     ("endpoint", "http://127.0.0.1:4443"),
//!     ("skip_signature", "true"),
//! ]);
//! let connector = gcs::build(&spec)?; // nothing is contacted yet
//! assert_eq!(connector.prefix(), "campaigns");
//! # Ok(()) }
//! ```

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use heimdex_core::Connector;
use heimdex_core::connector::{ConnectorError, ListPage, ListRequest, ObjectMeta};
use heimdex_core::media::{MediaKind, has_media_extension};
use serde::Deserialize;

use super::{DEFAULT_PAGE_SIZE, parse_bool, parse_duration};
use crate::google::{AuthError, Credentials, RetryPolicy, TokenSource};
use crate::source::{SourceError, SourceSpec, kind};

/// Connector name of GCS sources.
pub const NAME: &str = "gcs";

/// The API's base URL.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// The OAuth scope asked for: read-only access to objects.
pub const READ_ONLY_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// Prefix of this connector's page tokens (followed by the last key of the previous page).
const TOKEN_PREFIX: &str = "gcs1:";

/// The object fields the connector reads.
const OBJECT_FIELDS: &str = "name,size,generation,md5Hash,updated,contentType";

/// GCS's largest `maxResults`.
const MAX_RESULTS: usize = 1000;

/// Errors of the GCS connector; converted into [`ConnectorError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcsError {
    /// GCS answered with an error status.
    #[error("Cloud Storage returned {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.message`, or the start of the body.
        message: String,
    },
    /// The request failed before an answer (connection, timeout, body).
    #[error("HTTP request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// No access token.
    #[error("access token: {0}")]
    Auth(#[source] AuthError),
    /// A response that does not have the documented shape.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Failing on every attempt.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// Error of the last attempt.
        #[source]
        last: Box<GcsError>,
    },
}

impl GcsError {
    /// Whether a retry may succeed: 408, 429, 5xx (but 501 and 505), failed connections and
    /// timeouts, a token endpoint failing so.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502..=504 | 506..=599)
            }
            Self::Http(e) => transport(e),
            Self::Auth(e) => e.retryable(),
            _ => false,
        }
    }

    /// The HTTP status of an API error.
    fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The [`ConnectorError`] of this error for `key`.
    pub fn into_connector(self, key: &str) -> ConnectorError {
        let key = key.to_owned();
        match self {
            Self::Api { status: 404, .. } => ConnectorError::NotFound { key },
            Self::Api {
                status: 401 | 403, ..
            } => ConnectorError::PermissionDenied {
                connector: NAME,
                key,
                reason: self.to_string(),
            },
            Self::Auth(ref e) if !e.retryable() => ConnectorError::PermissionDenied {
                connector: NAME,
                key,
                reason: self.to_string(),
            },
            e if e.retryable() || matches!(e, Self::Exhausted { .. }) => {
                ConnectorError::Unavailable {
                    connector: NAME,
                    key,
                    source: Box::new(e),
                }
            }
            e => ConnectorError::Backend {
                connector: NAME,
                key,
                source: Box::new(e),
            },
        }
    }
}

fn transport(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()
}

/// Everything the connector needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Object-name prefix of the source (no leading or trailing `/`).
    pub prefix: String,
    /// API base URL (`/storage/v1` is appended).
    pub endpoint: String,
    /// How to authenticate; `None`: anonymous (an emulator, a public bucket).
    pub credentials: Option<Credentials>,
    /// Token endpoint override.
    pub token_uri: Option<String>,
    /// Retries of rate limits, server errors and failed connections.
    pub retry: RetryPolicy,
    /// Stop retrying once this much time has passed since the first attempt.
    pub retry_timeout: Duration,
    /// Read timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

impl GcsConfig {
    /// A configuration with defaults: Google's endpoint, 6 attempts within 3 minutes.
    pub fn new(bucket: impl Into<String>, prefix: &str, credentials: Option<Credentials>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: normalise_prefix(prefix),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            credentials,
            token_uri: None,
            retry: RetryPolicy::default(),
            retry_timeout: Duration::from_secs(180),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Use another API base URL (an emulator, a proxy).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Use another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The configuration of a `gs://bucket/prefix` source: its options, then the environment
    /// (see the [module docs](self)).
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, SourceError> {
        Self::from_spec_and_env(spec, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`from_spec`](Self::from_spec) with `env` standing in for the environment.
    pub fn from_spec_and_env(
        spec: &SourceSpec,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SourceError> {
        let bad = |key: &str, reason: String| SourceError::InvalidOption {
            key: key.to_owned(),
            reason,
        };
        // Canonical option → its aliases.
        const KNOWN: [(&str, &[&str]); 11] = [
            (
                "endpoint",
                &["endpoint", "endpoint_url", "base_url", "google_base_url"],
            ),
            ("token", &["token", "access_token", "bearer_token"]),
            (
                "service_account_key",
                &[
                    "service_account_key",
                    "google_service_account_key",
                    "credentials_json",
                ],
            ),
            (
                "service_account_path",
                &[
                    "service_account_path",
                    "service_account",
                    "google_service_account",
                    "google_service_account_path",
                    "application_credentials",
                    "google_application_credentials",
                    "credentials_file",
                ],
            ),
            (
                "skip_signature",
                &["skip_signature", "google_skip_signature"],
            ),
            ("token_uri", &["token_uri"]),
            ("max_retries", &["max_retries"]),
            ("retry_timeout", &["retry_timeout"]),
            ("timeout", &["timeout"]),
            ("connect_timeout", &["connect_timeout"]),
            ("allow_http", &["allow_http"]),
        ];
        const REFUSED: [&str; 4] = [
            "bucket",
            "bucket_name",
            "google_bucket",
            "google_bucket_name",
        ];
        let mut opts: std::collections::BTreeMap<&str, (String, String)> = Default::default();
        for (key, value) in spec.options().iter() {
            if REFUSED.contains(&key) {
                return Err(bad(
                    key,
                    format!(
                        "the {} source URI names the bucket; it is not an option",
                        kind::GCS
                    ),
                ));
            }
            let Some((canonical, _)) = KNOWN.iter().find(|(_, names)| names.contains(&key)) else {
                return Err(bad(key, format!("unknown option for {}:// sources", "gs")));
            };
            if !value.is_empty() {
                opts.insert(canonical, (key.to_owned(), value.to_owned()));
            }
        }
        let opt = |k: &str| opts.get(k).map(|(_, v)| v.clone());
        let named = |k: &str| opts.get(k).map(|(n, _)| n.clone()).unwrap_or_default();
        let read_file = |key: &str, path: &str| {
            std::fs::read_to_string(path).map_err(|e| bad(key, format!("reading {path}: {e}")))
        };
        let json_credentials = |key: &str, json: &str| {
            Credentials::from_json(json, None).map_err(|e| bad(key, e.to_string()))
        };

        let emulator = env("STORAGE_EMULATOR_HOST");
        let endpoint = match (opt("endpoint"), &emulator) {
            (Some(e), _) => e,
            (None, Some(host)) if host.contains("://") => host.clone(),
            (None, Some(host)) => format!("http://{host}"),
            (None, None) => DEFAULT_ENDPOINT.to_owned(),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            let key = if opts.contains_key("endpoint") {
                named("endpoint")
            } else {
                "STORAGE_EMULATOR_HOST".to_owned()
            };
            return Err(bad(
                &key,
                format!("expected an http:// or https:// URL, got {endpoint:?}"),
            ));
        }
        let skip = opt("skip_signature")
            .map(|v| parse_bool(&named("skip_signature"), &v))
            .transpose()?
            .unwrap_or(false);
        if let Some(v) = opt("allow_http") {
            parse_bool(&named("allow_http"), &v)?;
        }
        let credentials = if let Some(t) = opt("token") {
            Some(Credentials::AccessToken(t))
        } else if let Some(json) = opt("service_account_key") {
            Some(json_credentials(&named("service_account_key"), &json)?)
        } else if let Some(path) = opt("service_account_path") {
            let key = named("service_account_path");
            Some(json_credentials(&key, &read_file(&key, &path)?)?)
        } else if skip || (emulator.is_some() && opt("endpoint").is_none()) {
            None
        } else if let Some(t) = env("HEIMDEX_GCS_TOKEN") {
            Some(Credentials::AccessToken(t))
        } else if let Some(json) = env("GOOGLE_SERVICE_ACCOUNT_KEY") {
            Some(json_credentials("GOOGLE_SERVICE_ACCOUNT_KEY", &json)?)
        } else if let Some((var, path)) = [
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ]
        .into_iter()
        .find_map(|v| env(v).map(|p| (v, p)))
        {
            Some(json_credentials(var, &read_file(var, &path)?)?)
        } else if let Some(path) = gcloud_adc_file(&env) {
            let path = path.display().to_string();
            Some(json_credentials(&path, &read_file(&path, &path)?)?)
        } else {
            Some(Credentials::MetadataServer)
        };
        let credentials = if skip { None } else { credentials };

        let mut config = Self::new(spec.authority(), spec.path(), credentials);
        config.endpoint = endpoint;
        config.token_uri = opt("token_uri");
        if let Some(v) = opt("max_retries") {
            let n: u32 = v.trim().parse().map_err(|_| {
                bad(
                    &named("max_retries"),
                    format!("expected a number of retries, got {v:?}"),
                )
            })?;
            config.retry.max_attempts = n.saturating_add(1).min(100);
        }
        let duration = |k: &str| -> Result<Option<Duration>, SourceError> {
            opt(k)
                .map(|v| {
                    parse_duration(&v).ok_or_else(|| {
                        bad(
                            &named(k),
                            format!("expected a duration such as 30s, 500ms or 2m, got {v:?}"),
                        )
                    })
                })
                .transpose()
        };
        if let Some(d) = duration("retry_timeout")? {
            config.retry_timeout = d;
        }
        if let Some(d) = duration("timeout")? {
            config.timeout = d.max(Duration::from_millis(1));
        }
        if let Some(d) = duration("connect_timeout")? {
            config.connect_timeout = d.max(Duration::from_millis(1));
        }
        Ok(config)
    }
}

/// gcloud's application default credentials file, if it exists.
fn gcloud_adc_file(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = env("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")))?;
    let file = dir.join("application_default_credentials.json");
    file.is_file().then_some(file)
}

fn normalise_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Counters of the requests a connector made (each retry counts), for tests and
/// measurements.
#[derive(Debug, Default)]
pub struct GcsStats {
    requests: AtomicU64,
    retries: AtomicU64,
    media_bytes: AtomicU64,
}

impl GcsStats {
    /// API requests sent (not counting token requests).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Requests that were retries of a failed one.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Media bytes received (including any a server that ignores `Range` sent before the
    /// range, which the connector discarded).
    pub fn media_bytes(&self) -> u64 {
        self.media_bytes.load(Ordering::Relaxed)
    }
}

/// An object resource (the fields the connector asks for).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GcsObject {
    name: String,
    /// Decimal string.
    #[serde(default)]
    size: Option<String>,
    /// Decimal string.
    #[serde(default)]
    generation: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectList {
    #[serde(default)]
    items: Vec<GcsObject>,
    #[serde(default)]
    next_page_token: Option<String>,
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
}

/// The [`Connector`] of a `gs://bucket/prefix` source. `Debug` shows the bucket, prefix,
/// endpoint and the kind of credentials, never a secret.
pub struct GcsConnector {
    client: reqwest::Client,
    bucket: String,
    root: String,
    /// The source URI, for errors about the source as a whole.
    location: String,
    /// `{endpoint}/storage/v1/b/{bucket}/o`.
    objects_url: String,
    endpoint: String,
    tokens: Option<TokenSource>,
    retry: RetryPolicy,
    retry_timeout: Duration,
    stats: Arc<GcsStats>,
}

impl std::fmt::Debug for GcsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConnector")
            .field("bucket", &self.bucket)
            .field("prefix", &self.root)
            .field("endpoint", &self.endpoint)
            .field("tokens", &self.tokens)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The connector of a `gs://bucket/prefix` source (options, then the environment).
pub fn build(spec: &SourceSpec) -> Result<GcsConnector, SourceError> {
    let config = GcsConfig::from_spec(spec)?;
    GcsConnector::new(config, spec.uri())
        .map_err(|e| SourceError::Connector(e.into_connector(spec.uri())))
}

impl GcsConnector {
    /// A connector with `config`; `location` names the source in errors about it as a whole
    /// (`gs://bucket/prefix`). Makes no request.
    pub fn new(config: GcsConfig, location: impl Into<String>) -> Result<Self, GcsError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(GcsError::Http)?;
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        Ok(Self {
            client,
            objects_url: format!(
                "{endpoint}/storage/v1/b/{}/o",
                encode_component(&config.bucket)
            ),
            endpoint,
            bucket: config.bucket,
            root: normalise_prefix(&config.prefix),
            location: location.into(),
            tokens: config
                .credentials
                .map(|c| TokenSource::new(c, READ_ONLY_SCOPE, config.token_uri)),
            retry: config.retry,
            retry_timeout: config.retry_timeout,
            stats: Arc::new(GcsStats::default()),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object-name prefix (no leading or trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.root
    }

    /// Request counters.
    pub fn stats(&self) -> Arc<GcsStats> {
        Arc::clone(&self.stats)
    }

    /// The object name of `key`.
    fn full(&self, key: &str) -> String {
        if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        }
    }

    /// The URL of the object of `key`, or `NotFound` for a key that names no object.
    fn object_url(&self, key: &str) -> Result<String, ConnectorError> {
        if key.is_empty() || key.contains(['\r', '\n']) {
            return Err(ConnectorError::NotFound {
                key: key.to_owned(),
            });
        }
        Ok(format!(
            "{}/{}",
            self.objects_url,
            encode_component(&self.full(key))
        ))
    }

    /// The key of an object name, if it lies below the prefix.
    fn key_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.root.is_empty() {
            return (!name.is_empty()).then_some(name);
        }
        name.strip_prefix(self.root.as_str())?
            .strip_prefix('/')
            .filter(|k| !k.is_empty())
    }

    /// Send a request built by `build` (once per attempt) with a bearer token when the
    /// connector has credentials; retry per the policy; on 401 refresh the token once.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GcsError> {
        let started = Instant::now();
        let mut refreshed = false;
        let mut attempt = 0u32;
        'attempts: loop {
            attempt += 1;
            let err = 'attempt: {
                let token = match &self.tokens {
                    Some(t) => match t.token(&self.client).await {
                        Ok(tok) => Some(tok),
                        Err(e) => break 'attempt GcsError::Auth(e),
                    },
                    None => None,
                };
                let mut req = build(&self.client);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => break 'attempt GcsError::Http(e),
                };
                if resp.status().is_success() {
                    return Ok(resp);
                }
                let err = api_error(resp).await;
                if err.status() == Some(401)
                    && !refreshed
                    && let (Some(tokens), Some(stale)) = (&self.tokens, &token)
                    && tokens.refreshable()
                {
                    // A refresh is not a retry of a failure: no backoff, no count.
                    refreshed = true;
                    tokens.invalidate(stale).await;
                    attempt -= 1;
                    continue 'attempts;
                }
                err
            };
            if !err.retryable() {
                return Err(err);
            }
            let delay = self.retry.delay(attempt - 1);
            if attempt >= self.retry.max_attempts || started.elapsed() + delay > self.retry_timeout
            {
                return Err(GcsError::Exhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            tracing::debug!(attempt, error = %err, "gcs: retrying");
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }

    /// Metadata of the object of `key` (any name).
    async fn object(&self, key: &str) -> Result<GcsObject, ConnectorError> {
        let url = self.object_url(key)?;
        let resp = self
            .send(|c| c.get(&url).query(&[("fields", OBJECT_FIELDS)]))
            .await
            .map_err(|e| e.into_connector(key))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| GcsError::Http(e).into_connector(key))?;
        serde_json::from_slice(&body)
            .map_err(|e| GcsError::Decode(format!("object resource: {e}")).into_connector(key))
    }

    fn meta(&self, key: &str, o: &GcsObject) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size: o
                .size
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            version: o.generation.clone().unwrap_or_default(),
            modified_ms: o.updated.as_deref().and_then(parse_rfc3339_ms),
            media: MediaKind::UnknownWithVideoExtension,
        }
    }

    /// The `Changed` error of `key` read at `expected`, naming the current generation.
    async fn changed(&self, key: &str, expected: &str) -> ConnectorError {
        match self.object(key).await {
            Ok(now) => ConnectorError::Changed {
                key: key.to_owned(),
                expected: expected.to_owned(),
                found: now.generation.unwrap_or_default(),
            },
            Err(e) => e,
        }
    }

    /// `RangeOutOfBounds` when `range` starts at or past `size`.
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

    /// Bytes `range` of `key`, of generation `expected` when given.
    async fn read(
        &self,
        key: &str,
        range: Range<u64>,
        expected: Option<&str>,
    ) -> Result<Bytes, ConnectorError> {
        let url = self.object_url(key)?;
        if range.end <= range.start {
            // Nothing to fetch: the object must exist, the range lie inside it and, when
            // asked, the generation match.
            let o = self.object(key).await?;
            let meta = self.meta(key, &o);
            Self::check_bounds(key, &range, meta.size)?;
            if let Some(v) = expected
                && meta.version != v
            {
                return Err(ConnectorError::Changed {
                    key: key.to_owned(),
                    expected: v.to_owned(),
                    found: meta.version,
                });
            }
            return Ok(Bytes::new());
        }
        let mut query = vec![("alt", "media".to_owned())];
        if let Some(g) = expected {
            query.push(("ifGenerationMatch", g.to_owned()));
        }
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let resp = self
            .send(|c| {
                c.get(&url)
                    .query(&query)
                    .header(reqwest::header::RANGE, &header)
            })
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return Err(match e.status() {
                    Some(412) => self.changed(key, expected.unwrap_or_default()).await,
                    Some(416) => {
                        let o = self.object(key).await?;
                        Self::check_bounds(key, &range, self.meta(key, &o).size)?;
                        e.into_connector(key)
                    }
                    _ => e.into_connector(key),
                });
            }
        };
        let served = resp
            .headers()
            .get("x-goog-generation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let (Some(v), Some(g)) = (expected, &served)
            && g != v
        {
            return Err(ConnectorError::Changed {
                key: key.to_owned(),
                expected: v.to_owned(),
                found: g.clone(),
            });
        }
        let (first, total) = content_range(&resp);
        let partial = resp.status().as_u16() == 206;
        // 206: the body starts where Content-Range says; 200 (Range ignored): at 0.
        let mut skip = match (partial, first) {
            (true, Some(s)) if s > range.start => {
                return Err(GcsError::Decode(format!(
                    "asked for bytes from {}, got {:?}",
                    range.start,
                    resp.headers().get(reqwest::header::CONTENT_RANGE)
                ))
                .into_connector(key));
            }
            (true, Some(s)) => range.start - s,
            (true, None) => 0,
            (false, _) => range.start,
        };
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let mut out = BytesMut::with_capacity(want.min(64 << 20));
        while out.len() < want {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| GcsError::Http(e).into_connector(key))?;
            let Some(chunk) = chunk else { break };
            self.stats
                .media_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let mut chunk = &chunk[..];
            if skip > 0 {
                let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
                chunk = &chunk[n..];
                skip -= n as u64;
            }
            let room = want - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        drop(resp);
        if out.is_empty() {
            // Nothing at `range.start`: past the end (a server that answers an empty 206 or
            // ignores `Range` instead of 416).
            let size = match total {
                Some(t) => t,
                None => self.meta(key, &self.object(key).await?).size,
            };
            Self::check_bounds(key, &range, size)?;
            return Err(GcsError::Decode(format!(
                "no bytes at {} of an object of {size} bytes",
                range.start
            ))
            .into_connector(key));
        }
        if let (Some(v), None) = (expected, &served) {
            // The server did not say which generation it served: compare now.
            let now = self.object(key).await?.generation.unwrap_or_default();
            if now != v {
                return Err(ConnectorError::Changed {
                    key: key.to_owned(),
                    expected: v.to_owned(),
                    found: now,
                });
            }
        }
        Ok(out.freeze())
    }
}

/// `(first byte, total size)` of a `Content-Range: bytes a-b/n` header.
fn content_range(resp: &reqwest::Response) -> (Option<u64>, Option<u64>) {
    let Some(v) = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return (None, None);
    };
    let rest = v.trim().strip_prefix("bytes ").unwrap_or(v);
    let (span, total) = rest.split_once('/').unwrap_or((rest, ""));
    let first = span.split('-').next().and_then(|s| s.trim().parse().ok());
    (first, total.trim().parse().ok())
}

async fn api_error(resp: reqwest::Response) -> GcsError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
    let message = match body.error {
        Some(d) if !d.message.is_empty() => d.message,
        _ => text.chars().take(200).collect(),
    };
    GcsError::Api { status, message }
}

/// Percent-encode one URL path segment (an object name's `/` included, as the JSON API
/// wants).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn parse_token(token: Option<&str>) -> Result<Option<&str>, ConnectorError> {
    match token {
        None => Ok(None),
        Some(t) => match t.strip_prefix(TOKEN_PREFIX) {
            Some(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(ConnectorError::InvalidPageToken {
                reason: "not a gcs connector page token".into(),
            }),
        },
    }
}

fn page(objects: Vec<ObjectMeta>, more: bool) -> ListPage {
    let next_page_token = if more {
        objects.last().map(|m| format!("{TOKEN_PREFIX}{}", m.key))
    } else {
        None
    };
    ListPage {
        objects,
        next_page_token,
    }
}

#[async_trait]
impl Connector for GcsConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        let after = parse_token(req.page_token.as_deref())?;
        let want = req.prefix.as_deref().unwrap_or("");
        let limit = req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
        let list_prefix = if self.root.is_empty() {
            want.to_owned()
        } else {
            format!("{}/{want}", self.root)
        };
        let mut query = vec![
            ("prefix", list_prefix),
            ("maxResults", (limit + 1).min(MAX_RESULTS).to_string()),
            ("fields", format!("items({OBJECT_FIELDS}),nextPageToken")),
        ];
        if let Some(a) = after {
            // Inclusive: the key itself is dropped below.
            query.push(("startOffset", self.full(a)));
        }
        let mut out: Vec<ObjectMeta> = Vec::new();
        let mut gcs_token: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(t) = &gcs_token {
                q.push(("pageToken", t.clone()));
            }
            let objects_url = &self.objects_url;
            let resp = self
                .send(|c| c.get(objects_url).query(&q))
                .await
                .map_err(|e| e.into_connector(&self.location))?;
            let body = resp
                .bytes()
                .await
                .map_err(|e| GcsError::Http(e).into_connector(&self.location))?;
            let list: ObjectList = serde_json::from_slice(&body).map_err(|e| {
                GcsError::Decode(format!("object list: {e}")).into_connector(&self.location)
            })?;
            for item in &list.items {
                let Some(key) = self.key_of(&item.name) else {
                    continue;
                };
                if !key.starts_with(want)
                    || after.is_some_and(|a| key <= a)
                    || out.last().is_some_and(|last| key <= last.key.as_str())
                    || !has_media_extension(key.rsplit('/').next().unwrap_or(key))
                {
                    continue;
                }
                if out.len() == limit {
                    // One more candidate: this page is full and another follows.
                    return Ok(page(out, true));
                }
                out.push(self.meta(key, item));
            }
            match list.next_page_token {
                // A server that hands back the same token would loop: stop.
                Some(t) if gcs_token.as_ref() != Some(&t) => {
                    if out.len() == limit {
                        return Ok(page(out, true));
                    }
                    gcs_token = Some(t);
                }
                _ => return Ok(page(out, false)),
            }
        }
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError> {
        self.object_url(key)?;
        if !has_media_extension(key.rsplit('/').next().unwrap_or(key)) {
            // Not a candidate (listing is by name): as if absent, like the listing.
            return Err(ConnectorError::NotFound {
                key: key.to_owned(),
            });
        }
        let o = self.object(key).await?;
        Ok(self.meta(key, &o))
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        self.read(key, range, None).await
    }

    async fn read_range_checked(
        &self,
        key: &str,
        range: Range<u64>,
        version: &str,
    ) -> Result<Bytes, ConnectorError> {
        self.read(key, range, Some(version)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn config(uri: &str, options: &[(&str, &str)]) -> Result<GcsConfig, SourceError> {
        let spec = SourceSpec::parse(uri)
            .unwrap()
            .with_options(options.iter().copied());
        GcsConfig::from_spec_and_env(&spec, no_env)
    }

    #[test]
    fn options_are_checked_and_named() {
        let c = config(
            "gs://b/p/q",
            &[
                ("endpoint", "http://127.0.0.1:1"),
                ("skip_signature", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:1");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", "p/q"));
        assert!(c.credentials.is_none());
        let spec = SourceSpec::parse("gs://b/p/q").unwrap().with_options([
            ("endpoint", "http://127.0.0.1:1"),
            ("skip_signature", "true"),
        ]);
        assert_eq!(build(&spec).unwrap().prefix(), "p/q");
        for key in ["access_key_id", "bucket", "region", "colour"] {
            match config("gs://b", &[(key, "x")]) {
                Err(SourceError::InvalidOption { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        match config(
            "gs://b",
            &[("service_account_path", "/nonexistent/sa.json")],
        ) {
            Err(SourceError::InvalidOption { key, reason }) => {
                assert_eq!(key, "service_account_path");
                assert!(reason.contains("/nonexistent/sa.json"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let c = config(
            "gs://b",
            &[
                ("access_token", "ya29.x"),
                ("max_retries", "2"),
                ("retry_timeout", "2s"),
                ("timeout", "5s"),
                ("allow_http", "true"),
            ],
        )
        .unwrap();
        assert!(matches!(c.credentials, Some(Credentials::AccessToken(ref t)) if t == "ya29.x"));
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry_timeout, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        for (k, v) in [
            ("endpoint", "storage.example"),
            ("max_retries", "many"),
            ("retry_timeout", "1h"),
            ("skip_signature", "maybe"),
        ] {
            assert!(
                matches!(config("gs://b", &[(k, v)]), Err(SourceError::InvalidOption { key, .. }) if key == k)
            );
        }
    }

    #[test]
    fn environment() {
        let spec = SourceSpec::parse("gs://b/p").unwrap();
        // The emulator convention: host:port, no credentials.
        let c = GcsConfig::from_spec_and_env(&spec, |k| {
            (k == "STORAGE_EMULATOR_HOST").then(|| "localhost:9023".to_owned())
        })
        .unwrap();
        assert_eq!(c.endpoint, "http://localhost:9023");
        assert!(c.credentials.is_none());
        let c = GcsConfig::from_spec_and_env(&spec, |k| {
            (k == "HEIMDEX_GCS_TOKEN").then(|| "tok".to_owned())
        })
        .unwrap();
        assert!(matches!(c.credentials, Some(Credentials::AccessToken(_))));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        // Nothing at all: the metadata server (nothing is contacted yet).
        let c = GcsConfig::from_spec_and_env(&spec, no_env).unwrap();
        assert!(matches!(c.credentials, Some(Credentials::MetadataServer)));
        // A credentials file named by GOOGLE_APPLICATION_CREDENTIALS.
        let dir = std::env::temp_dir().join(format!("heimdex-gcs-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("user.json");
        std::fs::write(
            &file,
            r#"{"type":"authorized_user","client_id":"cid","client_secret":"sec","refresh_token":"rt"}"#,
        )
        .unwrap();
        let path = file.display().to_string();
        let c = GcsConfig::from_spec_and_env(&spec, |k| {
            (k == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone())
        })
        .unwrap();
        assert!(matches!(
            c.credentials,
            Some(Credentials::RefreshToken { .. })
        ));
        let conn = GcsConnector::new(c, "gs://b/p").unwrap();
        let debug = format!("{conn:?}");
        assert!(debug.contains("cid") && !debug.contains("sec\"") && !debug.contains("rt\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_keys_and_encoding() {
        assert_eq!(parse_token(Some("gcs1:a/b.mp4")).unwrap(), Some("a/b.mp4"));
        for bad in ["", "gcs1:", "os1:x", "\u{0}garbage"] {
            assert!(matches!(
                parse_token(Some(bad)),
                Err(ConnectorError::InvalidPageToken { .. })
            ));
        }
        assert_eq!(encode_component("a b/c#1.mp4"), "a%20b%2Fc%231.mp4");
        assert_eq!(encode_component("été"), "%C3%A9t%C3%A9");
        let c = build(
            &SourceSpec::parse("gs://b//x/y/")
                .unwrap()
                .with_option("skip_signature", "true"),
        )
        .unwrap();
        assert_eq!(c.prefix(), "x/y");
        assert_eq!(c.key_of("x/y/z.mp4"), Some("z.mp4"));
        assert_eq!(c.key_of("x/yz/z.mp4"), None);
        assert_eq!(c.key_of("x/y/"), None);
        assert!(matches!(
            c.object_url(""),
            Err(ConnectorError::NotFound { .. })
        ));
        assert_eq!(
            c.object_url("a b.mp4").unwrap(),
            "https://storage.googleapis.com/storage/v1/b/b/o/x%2Fy%2Fa%20b.mp4"
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
    }

    #[test]
    fn errors_map_to_categories() {
        let api = |status| GcsError::Api {
            status,
            message: "m".into(),
        };
        assert!(matches!(
            api(404).into_connector("k"),
            ConnectorError::NotFound { .. }
        ));
        for s in [401, 403] {
            assert!(matches!(
                api(s).into_connector("k"),
                ConnectorError::PermissionDenied { .. }
            ));
        }
        for s in [408, 429, 500, 503] {
            assert!(api(s).retryable(), "{s}");
            assert!(matches!(
                api(s).into_connector("k"),
                ConnectorError::Unavailable { .. }
            ));
        }
        for s in [400, 501] {
            assert!(!api(s).retryable(), "{s}");
            assert!(matches!(
                api(s).into_connector("k"),
                ConnectorError::Backend { .. }
            ));
        }
        let e = GcsError::Exhausted {
            attempts: 3,
            last: Box::new(api(503)),
        };
        assert!(matches!(
            e.into_connector("k"),
            ConnectorError::Unavailable { .. }
        ));
        assert!(matches!(
            GcsError::Auth(AuthError::Credentials("bad key".into())).into_connector("k"),
            ConnectorError::PermissionDenied { .. }
        ));
    }
}
