//! What the Google API connectors (Drive: feature `gdrive`; Cloud Storage: feature `gcs`)
//! share: credentials and access tokens (a given token, a service account's JWT bearer
//! grant (RS256), an OAuth refresh token, or the metadata server of a Google Cloud VM), cached
//! and refreshed before they expire; and the retry policy of rate limits and server errors.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Errors of fetching an access token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
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
}

impl AuthError {
    /// Whether a retry may succeed: 429 and 5xx from the token endpoint, failed connections.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Token { status, .. } => *status == 429 || *status >= 500,
            Self::Http(_) => true,
            _ => false,
        }
    }
}

/// The token endpoint of the metadata server of Google Cloud VMs, Cloud Run, GKE
/// (the default service account).
pub const METADATA_TOKEN_URI: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";

/// Google's OAuth token endpoint (the default `token_uri`).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A token is refreshed this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How the connector authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A ready access token (never refreshed; a 401 is [`PermissionDenied`]).
    ///
    /// [`PermissionDenied`]: heimdex_core::ConnectorError::PermissionDenied
    AccessToken(String),
    /// A service-account key: a JWT signed with its private key is exchanged for tokens.
    ServiceAccount {
        /// The key (from the key JSON file).
        key: ServiceAccountKey,
        /// Domain-wide delegation: the user to act as (the JWT's `sub`).
        subject: Option<String>,
    },
    /// An OAuth client and a user's refresh token (an "authorized user").
    RefreshToken {
        /// OAuth client id.
        client_id: String,
        /// OAuth client secret.
        client_secret: String,
        /// The user's refresh token.
        refresh_token: String,
    },
    /// The metadata server of the Google Cloud machine this runs on (its service account;
    /// scopes are the machine's).
    MetadataServer,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Self::AccessToken(_) => f.write_str("AccessToken(..)"),
            Self::ServiceAccount { key, subject } => f
                .debug_struct("ServiceAccount")
                .field("client_email", &key.client_email)
                .field("subject", subject)
                .finish_non_exhaustive(),
            Self::RefreshToken { client_id, .. } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::MetadataServer => f.write_str("MetadataServer"),
        }
    }
}

/// The fields of a service-account key JSON file that the connector uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// The account's e-mail (the JWT's `iss`).
    pub client_email: String,
    /// PEM private key (PKCS#8).
    pub private_key: String,
    /// Id of the key (the JWT header's `kid`).
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Token endpoint (the JWT's `aud`).
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// A credentials JSON file: a service-account key or an authorized user, told apart by
/// `type` as in Google's `GOOGLE_APPLICATION_CREDENTIALS` files.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

impl Credentials {
    /// Read a `GOOGLE_APPLICATION_CREDENTIALS`-style JSON document: `"type":
    /// "service_account"` or `"type": "authorized_user"`.
    pub fn from_json(json: &str, subject: Option<String>) -> Result<Self, AuthError> {
        let file: CredentialsFile = serde_json::from_str(json)
            .map_err(|e| AuthError::Credentials(format!("credentials JSON: {e}")))?;
        let missing = |field: &str| {
            AuthError::Credentials(format!(
                "credentials JSON of type {}: no {field}",
                file.kind
            ))
        };
        match file.kind.as_str() {
            "service_account" => Ok(Self::ServiceAccount {
                key: ServiceAccountKey {
                    client_email: file
                        .client_email
                        .clone()
                        .ok_or_else(|| missing("client_email"))?,
                    private_key: file
                        .private_key
                        .clone()
                        .ok_or_else(|| missing("private_key"))?,
                    private_key_id: file.private_key_id.clone(),
                    token_uri: file.token_uri.clone(),
                },
                subject,
            }),
            "authorized_user" => Ok(Self::RefreshToken {
                client_id: file.client_id.clone().ok_or_else(|| missing("client_id"))?,
                client_secret: file
                    .client_secret
                    .clone()
                    .ok_or_else(|| missing("client_secret"))?,
                refresh_token: file
                    .refresh_token
                    .clone()
                    .ok_or_else(|| missing("refresh_token"))?,
            }),
            other => Err(AuthError::Credentials(format!(
                "credentials JSON of unsupported type {other:?} (service_account or authorized_user)"
            ))),
        }
    }

    /// Whether a new token can be fetched (false for a given access token).
    pub fn refreshable(&self) -> bool {
        !matches!(self, Self::AccessToken(_))
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// `None`: never expires (a given token).
    expires_at: Option<Instant>,
}

/// Fetches and caches access tokens.
pub(crate) struct TokenSource {
    credentials: Credentials,
    /// The OAuth scope asked for in service-account grants.
    scope: &'static str,
    /// Explicit token endpoint; else the key's `token_uri`, else Google's.
    token_uri: Option<String>,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .field("scope", &self.scope)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Tokens for `credentials`, of `scope` (service accounts), from `token_uri` (else the
    /// key file's `token_uri`, else Google's).
    pub(crate) fn new(
        credentials: Credentials,
        scope: &'static str,
        token_uri: Option<String>,
    ) -> Self {
        Self {
            credentials,
            scope,
            token_uri,
            cache: Mutex::new(None),
        }
    }

    pub(crate) fn refreshable(&self) -> bool {
        self.credentials.refreshable()
    }

    fn endpoint(&self) -> String {
        if let Some(u) = &self.token_uri {
            return u.clone();
        }
        match &self.credentials {
            Credentials::ServiceAccount { key, .. } => key
                .token_uri
                .clone()
                .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
            Credentials::MetadataServer => METADATA_TOKEN_URI.to_owned(),
            _ => GOOGLE_TOKEN_URI.to_owned(),
        }
    }

    /// A valid token: the cached one unless it expires within [`REFRESH_MARGIN`].
    pub(crate) async fn token(&self, client: &reqwest::Client) -> Result<String, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            let fresh = match c.expires_at {
                None => true,
                Some(at) => at > Instant::now() + REFRESH_MARGIN,
            };
            if fresh {
                return Ok(c.token.clone());
            }
        }
        let fetched = self.fetch(client).await?;
        let token = fetched.token.clone();
        *cache = Some(fetched);
        Ok(token)
    }

    /// Forget `stale` (a token the API refused with 401) so the next call fetches anew.
    pub(crate) async fn invalidate(&self, stale: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.token == stale) {
            *cache = None;
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<Cached, AuthError> {
        let endpoint = self.endpoint();
        let form: Vec<(&str, String)> = match &self.credentials {
            Credentials::AccessToken(t) => {
                return Ok(Cached {
                    token: t.clone(),
                    expires_at: None,
                });
            }
            Credentials::MetadataServer => {
                let started = Instant::now();
                let resp = client
                    .get(&endpoint)
                    .header("Metadata-Flavor", "Google")
                    .send()
                    .await
                    .map_err(AuthError::Http)?;
                return token_response(resp, started).await;
            }
            Credentials::ServiceAccount { key, subject } => {
                let assertion = sign_assertion(key, subject.as_deref(), self.scope, &endpoint)?;
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    ("assertion", assertion),
                ]
            }
            Credentials::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("refresh_token", refresh_token.clone()),
            ],
        };
        let started = Instant::now();
        let resp = client
            .post(&endpoint)
            .form(&form)
            .send()
            .await
            .map_err(AuthError::Http)?;
        token_response(resp, started).await
    }
}

/// The token of a token endpoint's answer to a request sent at `started`.
async fn token_response(resp: reqwest::Response, started: Instant) -> Result<Cached, AuthError> {
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(AuthError::Http)?;
    if status != 200 {
        return Err(AuthError::Token { status, body });
    }
    let parsed: TokenResponse = serde_json::from_str(&body)
        .map_err(|e| AuthError::Decode(format!("token response: {e}")))?;
    let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
    Ok(Cached {
        token: parsed.access_token,
        expires_at: Some(started + ttl),
    })
}

/// The signed JWT of the service-account flow (RFC 7523): `iss` the account, `scope`,
/// `aud` the token endpoint, valid for one hour, `sub` the delegated user.
fn sign_assertion(
    key: &ServiceAccountKey,
    subject: Option<&str>,
    scope: &str,
    aud: &str,
) -> Result<String, AuthError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = Claims {
        iss: &key.client_email,
        scope,
        aud,
        iat: now,
        exp: now + 3600,
        sub: subject,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid.clone_from(&key.private_key_id);
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
        .map_err(|e| AuthError::Credentials(format!("service-account private key: {e}")))?;
    jsonwebtoken::encode(&header, &claims, &signing)
        .map_err(|e| AuthError::Credentials(format!("signing the JWT: {e}")))
}

/// Retry policy for rate limits, server errors and failed connections: exponential backoff
/// with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each time, plus up to as much again of jitter.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        // Jitter: up to one base delay, from the clock's nanoseconds (no RNG needed).
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let base = self.base_delay.as_nanos().max(1) as u64;
        let jitter = Duration::from_nanos(u64::from(nanos) % base);
        (exp + jitter).min(self.max_delay.max(self.base_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let d0 = p.delay(0);
        assert!(d0 >= Duration::from_millis(100) && d0 < Duration::from_millis(200));
        let d2 = p.delay(2);
        assert!(d2 >= Duration::from_millis(400) && d2 < Duration::from_millis(500));
        assert!(p.delay(30) <= Duration::from_secs(1));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::RefreshToken {
            client_id: "cid".into(),
            client_secret: "s3cr3t".into(),
            refresh_token: "r3fr3sh".into(),
        };
        let t = TokenSource::new(c, "scope", None);
        let d = format!("{t:?}");
        assert!(
            d.contains("cid") && !d.contains("s3cr3t") && !d.contains("r3fr3sh"),
            "{d}"
        );
        let d = format!("{:?}", Credentials::AccessToken("tok3n".into()));
        assert!(!d.contains("tok3n"), "{d}");
    }
}
