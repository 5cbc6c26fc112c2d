//! A small fake of the GCS JSON API with the semantics of Google's servers that
//! gcp-storage-emulator lacks: `maxResults`/`pageToken`/`startOffset` paging,
//! `ifGenerationMatch` (412), `416` past the end, `x-goog-generation` on downloads, bearer
//! tokens from a service-account JWT grant (scope `devstorage.read_only`), injected 503s, and
//! optionally a server that ignores `Range` (streaming its body in 8 KiB chunks).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;

pub const BUCKET: &str = "bkt";
pub const SA_EMAIL: &str = "gcs-reader@heimdex-test.iam.gserviceaccount.com";
pub const ACCESS_TOKEN: &str = "ya29.fake-gcs";
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

#[derive(Default)]
pub struct Inner {
    objects: BTreeMap<String, (Vec<u8>, u64)>,
    next_generation: u64,
    pub ignore_range: bool,
    pub fail_next: u32,
    pub lists: u64,
    pub metadata: u64,
    pub media: u64,
    pub jwt_grants: u64,
    base: String,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGcs {
    pub url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGcs {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            next_generation: 1_700_000_000_000_000,
            base: url.clone(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/storage/v1/b/{bucket}/o", get(list))
            .route("/storage/v1/b/{bucket}/o/{object}", get(object))
            .route("/token", post(token))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    /// Create or replace an object; its new generation.
    pub fn put(&self, name: &str, bytes: &[u8]) -> u64 {
        let mut s = self.lock();
        s.next_generation += 1;
        let g = s.next_generation;
        s.objects.insert(name.to_owned(), (bytes.to_vec(), g));
        g
    }
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// Checks shared by every API call: the bucket, the bearer token, injected failures.
fn check(s: &mut Inner, bucket: &str, headers: &HeaderMap) -> Option<Response> {
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return Some(error(StatusCode::SERVICE_UNAVAILABLE, "try again"));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return Some(error(StatusCode::UNAUTHORIZED, "Invalid Credentials"));
    }
    if bucket != BUCKET {
        return Some(error(
            StatusCode::NOT_FOUND,
            "The specified bucket does not exist.",
        ));
    }
    None
}

fn resource(name: &str, bytes: &[u8], generation: u64) -> serde_json::Value {
    json!({
        "name": name,
        "size": bytes.len().to_string(),
        "generation": generation.to_string(),
        "updated": "2026-12-01T02:00:00.123Z",
        "contentType": "video/mp4",
    })
}

async fn list(
    State(state): State<Shared>,
    Path(bucket): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    if let Some(r) = check(&mut s, &bucket, &headers) {
        return r;
    }
    s.lists += 1;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    // The page token is the name to start at (opaque to clients).
    let start = match (q.get("pageToken"), q.get("startOffset")) {
        (Some(t), _) => match t.strip_prefix("pt:") {
            Some(n) => n.to_owned(),
            None => return error(StatusCode::BAD_REQUEST, "Invalid page token"),
        },
        (None, Some(o)) => o.clone(),
        (None, None) => String::new(),
    };
    let mut names = s
        .objects
        .range(start..)
        .filter(|(n, _)| n.starts_with(&prefix));
    let items: Vec<_> = names
        .by_ref()
        .take(max)
        .map(|(n, (b, g))| resource(n, b, *g))
        .collect();
    let mut body = json!({ "kind": "storage#objects", "items": items });
    if let Some((next, _)) = names.next() {
        body["nextPageToken"] = json!(format!("pt:{next}"));
    }
    Json(body).into_response()
}

async fn object(
    State(state): State<Shared>,
    Path((bucket, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    if let Some(r) = check(&mut s, &bucket, &headers) {
        return r;
    }
    let Some((bytes, generation)) = s.objects.get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, "No such object");
    };
    if q.get("alt").map(String::as_str) != Some("media") {
        s.metadata += 1;
        return Json(resource(&name, &bytes, generation)).into_response();
    }
    s.media += 1;
    if let Some(want) = q.get("ifGenerationMatch")
        && *want != generation.to_string()
    {
        return error(StatusCode::PRECONDITION_FAILED, "Precondition Failed");
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    let gen_header = ("x-goog-generation", generation.to_string());
    let len = bytes.len();
    if s.ignore_range || range.is_none() {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
        return (
            StatusCode::OK,
            [gen_header],
            Body::from_stream(futures::stream::iter(chunks)),
        )
            .into_response();
    }
    let (a, b) = range.unwrap_or_default();
    if a >= len {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE.as_str(), format!("bytes */{len}"))],
        )
            .into_response();
    }
    let end = (b + 1).min(len);
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (
                header::CONTENT_RANGE.as_str(),
                format!("bytes {a}-{}/{len}", end - 1),
            ),
            (gen_header.0, gen_header.1),
        ],
        bytes[a..end].to_vec(),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Claims {
    scope: String,
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = lock(&state);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(
        include_str!("../fixtures/gdrive-test-key.pub.pem").as_bytes(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{}/token", s.base)]);
    v.set_issuer(&[SA_EMAIL]);
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let claims = match jsonwebtoken::decode::<Claims>(&assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid_grant: {e}")),
    };
    if claims.scope != SCOPE {
        return error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    s.jwt_grants += 1;
    Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}
