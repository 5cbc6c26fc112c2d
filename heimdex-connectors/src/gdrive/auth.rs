//! Access tokens for the Drive API: a given token, a service account (JWT bearer grant,
//! RS256) or an OAuth refresh token, cached and refreshed before they expire.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::GDriveError;

/// The OAuth scope asked for: read-only access to the files Drive lets the caller see.
pub const DRIVE_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";

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
    pub fn from_json(json: &str, subject: Option<String>) -> Result<Self, GDriveError> {
        let file: CredentialsFile = serde_json::from_str(json)
            .map_err(|e| GDriveError::Credentials(format!("credentials JSON: {e}")))?;
        let missing = |field: &str| {
            GDriveError::Credentials(format!(
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
            other => Err(GDriveError::Credentials(format!(
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
    /// Explicit token endpoint; else the key's `token_uri`, else Google's.
    token_uri: Option<String>,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("credentials", &self.credentials)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(credentials: Credentials, token_uri: Option<String>) -> Self {
        Self {
            credentials,
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
            _ => GOOGLE_TOKEN_URI.to_owned(),
        }
    }

    /// A valid token: the cached one unless it expires within [`REFRESH_MARGIN`].
    pub(crate) async fn token(&self, client: &reqwest::Client) -> Result<String, GDriveError> {
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

    async fn fetch(&self, client: &reqwest::Client) -> Result<Cached, GDriveError> {
        let endpoint = self.endpoint();
        let form: Vec<(&str, String)> = match &self.credentials {
            Credentials::AccessToken(t) => {
                return Ok(Cached {
                    token: t.clone(),
                    expires_at: None,
                });
            }
            Credentials::ServiceAccount { key, subject } => {
                let assertion = sign_assertion(key, subject.as_deref(), &endpoint)?;
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
            .map_err(GDriveError::Http)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(GDriveError::Http)?;
        if status != 200 {
            return Err(GDriveError::Token { status, body });
        }
        let parsed: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| GDriveError::Decode(format!("token response: {e}")))?;
        let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok(Cached {
            token: parsed.access_token,
            expires_at: Some(started + ttl),
        })
    }
}

/// The signed JWT of the service-account flow (RFC 7523): `iss` the account, `scope`
/// drive.readonly, `aud` the token endpoint, valid for one hour, `sub` the delegated user.
fn sign_assertion(
    key: &ServiceAccountKey,
    subject: Option<&str>,
    aud: &str,
) -> Result<String, GDriveError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = Claims {
        iss: &key.client_email,
        scope: DRIVE_READONLY_SCOPE,
        aud,
        iat: now,
        exp: now + 3600,
        sub: subject,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid.clone_from(&key.private_key_id);
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
        .map_err(|e| GDriveError::Credentials(format!("service-account private key: {e}")))?;
    jsonwebtoken::encode(&header, &claims, &signing)
        .map_err(|e| GDriveError::Credentials(format!("signing the JWT: {e}")))
}
