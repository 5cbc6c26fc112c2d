//! Supabase-compatible bearer authentication.
//!
//! Tokens are JWTs as Supabase issues them: HS256 signed with the project's JWT secret
//! (`SUPABASE_JWT_SECRET`), or RS256/ES256 signed with a key from a JWKS URL (asymmetric
//! signing keys), fetched, cached, and fetched again when a token names an unknown `kid`
//! (at most once every [`JWKS_MIN_REFRESH`]). `exp` is required; `exp`, `nbf`, `aud`
//! (default `authenticated`) and `iss` (when configured) are checked. The algorithm comes
//! from the token header but must be one this server accepts for the key it matched: an
//! HS256 token cannot be checked against a public key, and `alg: none` is never accepted.
//!
//! The tenant is read from a claim path (default `app_metadata.tenant_id`), falling back to
//! `sub`, so a Supabase project that puts tenants in `app_metadata` and one where every user
//! is a tenant both work.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use heimdex_core::TenantId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use tokio::sync::RwLock;

/// The shortest time between two JWKS fetches triggered by unknown key ids.
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret (Supabase's JWT secret).
    pub hs256_secret: Option<String>,
    /// JWKS URL for RS256/ES256 keys.
    pub jwks_url: Option<String>,
    /// Required `aud`.
    pub audience: String,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Dotted path of the tenant claim; `sub` is the fallback.
    pub tenant_claim: String,
    /// Shortest time between two JWKS fetches caused by unknown key ids (default
    /// [`JWKS_MIN_REFRESH`]), so tokens with made-up `kid`s cannot hammer the key server.
    pub jwks_min_refresh: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_url: None,
            audience: "authenticated".into(),
            issuer: None,
            tenant_claim: "app_metadata.tenant_id".into(),
            jwks_min_refresh: JWKS_MIN_REFRESH,
        }
    }
}

/// Why a token was refused (all are 401 to the client).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token")]
    Missing,
    /// The token is not a well-formed JWT, or uses an algorithm this server does not accept.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signature, expiry, not-before, audience or issuer check failed.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token names a key id the JWKS does not have.
    #[error("unknown signing key {0:?}")]
    UnknownKey(Option<String>),
    /// The token carries no tenant (neither the tenant claim nor `sub`).
    #[error("token has no tenant claim")]
    NoTenant,
    /// The keys could not be fetched.
    #[error("cannot fetch signing keys: {0}")]
    Jwks(String),
}

#[derive(Debug, Default)]
struct JwksCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
}

/// Checks bearer tokens and names their tenant.
#[derive(Debug)]
pub struct Authenticator {
    cfg: AuthConfig,
    hs256: Option<DecodingKey>,
    jwks: RwLock<JwksCache>,
    http: reqwest::Client,
}

impl Authenticator {
    /// An authenticator for `cfg`.
    pub fn new(cfg: AuthConfig) -> Self {
        let hs256 = cfg
            .hs256_secret
            .as_deref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        Self {
            cfg,
            hs256,
            jwks: RwLock::new(JwksCache::default()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The tenant of the request whose `Authorization` header is `header`.
    pub async fn tenant_of_header(&self, header: Option<&str>) -> Result<TenantId, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.tenant(token).await
    }

    /// Check `token` and return its tenant.
    pub async fn tenant(&self, token: &str) -> Result<TenantId, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let (alg, key) = match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some(k) => (Algorithm::HS256, k.clone()),
                None => {
                    return Err(AuthError::Malformed(
                        "HS256 tokens are not accepted by this server".into(),
                    ));
                }
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                self.jwk(header.kid.as_deref(), header.alg).await?
            }
            other => {
                return Err(AuthError::Malformed(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let mut v = Validation::new(alg);
        v.set_audience(&[self.cfg.audience.as_str()]);
        if let Some(iss) = &self.cfg.issuer {
            v.set_issuer(&[iss.as_str()]);
        }
        v.validate_nbf = true;
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "aud"]);
        let data = decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        tenant_from_claims(&data.claims, &self.cfg.tenant_claim).ok_or(AuthError::NoTenant)
    }

    /// The key for `kid` from the JWKS (fetched again when unknown), checked against `alg`.
    async fn jwk(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Algorithm, DecodingKey), AuthError> {
        let Some(url) = &self.cfg.jwks_url else {
            return Err(AuthError::Malformed(format!(
                "{alg:?} tokens need a JWKS URL (HEIMDEX_JWKS_URL)"
            )));
        };
        let find = |cache: &JwksCache| -> Option<(Algorithm, DecodingKey)> {
            match kid {
                Some(k) => cache.keys.get(k).cloned(),
                // A token without `kid` is accepted only when the set has one key.
                None if cache.keys.len() == 1 => cache.keys.values().next().cloned(),
                None => None,
            }
        };
        if let Some(found) = find(&*self.jwks.read().await) {
            return check_alg(found, alg, kid);
        }
        let mut cache = self.jwks.write().await;
        if let Some(found) = find(&cache) {
            return check_alg(found, alg, kid);
        }
        if cache
            .fetched
            .is_some_and(|t| t.elapsed() < self.cfg.jwks_min_refresh)
        {
            return Err(AuthError::UnknownKey(kid.map(str::to_owned)));
        }
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| AuthError::Jwks(e.to_string()))?
            .json()
            .await
            .map_err(|e| AuthError::Jwks(e.to_string()))?;
        cache.keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let id = jwk.common.key_id.clone()?;
                let alg = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => return None,
                };
                Some((id, (alg, DecodingKey::from_jwk(jwk).ok()?)))
            })
            .collect();
        cache.fetched = Some(Instant::now());
        match find(&cache) {
            Some(found) => check_alg(found, alg, kid),
            None => Err(AuthError::UnknownKey(kid.map(str::to_owned))),
        }
    }
}

fn check_alg(
    (key_alg, key): (Algorithm, DecodingKey),
    token_alg: Algorithm,
    kid: Option<&str>,
) -> Result<(Algorithm, DecodingKey), AuthError> {
    if key_alg == token_alg {
        Ok((key_alg, key))
    } else {
        Err(AuthError::Malformed(format!(
            "token algorithm {token_alg:?} does not match key {kid:?} ({key_alg:?})"
        )))
    }
}

/// The tenant at the dotted `path` of the claims (a non-empty string), else `sub`.
pub fn tenant_from_claims(claims: &serde_json::Value, path: &str) -> Option<TenantId> {
    let at_path = path
        .split('.')
        .try_fold(claims, |v, part| v.get(part))
        .and_then(serde_json::Value::as_str);
    at_path
        .or_else(|| claims.get("sub").and_then(serde_json::Value::as_str))
        .filter(|t| !t.is_empty())
        .map(TenantId::new)
}
