//! An in-memory Google Drive v3 server for tests: the documented request and response
//! shapes of `files.list`, `files.get` (metadata and `alt=media` with `Range`),
//! `changes.getStartPageToken`, `changes.list` and an OAuth token endpoint (JWT bearer grant
//! verified with a test RSA public key, and the refresh-token grant), with bearer checking and
//! injectable failures. Only what the connector uses is implemented, strictly: unknown `q`
//! clauses are 400, `fields` selects the returned fields (without it, `files.get` returns
//! `kind,id,name,mimeType` as Drive does), shared-drive items need `supportsAllDrives` /
//! `includeItemsFromAllDrives`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use md5::{Digest, Md5};
use serde_json::{Value, json};

pub const FOLDER: &str = "application/vnd.google-apps.folder";
pub const SHORTCUT: &str = "application/vnd.google-apps.shortcut";
pub const GDOC: &str = "application/vnd.google-apps.document";
/// The id of My Drive's root folder (alias `root`).
pub const MY_ROOT: &str = "0AMyDriveRoot";
pub const SA_EMAIL: &str = "heimdex-test@heimdex-test.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "test-secret";
pub const REFRESH_TOKEN: &str = "1//test-refresh-token";

/// A failure the server answers the next Drive request(s) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    TooManyRequests,
    RateLimit403,
    UserRateLimit403,
    Server500,
    Unavailable503,
    Forbidden403,
    NotFound404,
    /// A 401 although the token is valid (a token the API stopped accepting).
    Unauthorized401,
}

#[derive(Debug, Clone)]
pub struct FFile {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub parents: Vec<String>,
    pub trashed: bool,
    pub content: Vec<u8>,
    pub version: u64,
    pub modified_ms: i64,
    pub drive_id: Option<String>,
    pub shortcut: Option<(String, String)>,
}

/// Request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub drive_requests: u64,
    pub list: u64,
    pub get: u64,
    pub media: u64,
    pub changes: u64,
    pub jwt_grants: u64,
    pub refresh_grants: u64,
    pub unauthorized: u64,
    pub media_bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Inner {
    base: String,
    files: BTreeMap<String, FFile>,
    /// Change log: (file id, drive of the file, time ms).
    log: Vec<(String, Option<String>, i64)>,
    next_id: u64,
    clock_ms: i64,
    tokens: HashMap<String, Instant>,
    token_ttl_secs: u64,
    next_token: u64,
    failures: VecDeque<Fail>,
    ignore_range: bool,
    counts: Counts,
    public_pem: String,
    last_subject: Option<String>,
}

/// A running fake Drive. Dropping it stops the server.
pub struct FakeDrive {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDrive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDrive").field("url", &self.url).finish()
    }
}

type Shared = Arc<Mutex<Inner>>;

impl FakeDrive {
    /// Start on 127.0.0.1:0. `public_pem`: the service-account key whose JWTs are accepted.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut inner = Inner {
            base: url.clone(),
            token_ttl_secs: 3600,
            clock_ms: 1_700_000_000_000,
            public_pem: include_str!("../fixtures/gdrive-test-key.pub.pem").to_owned(),
            ..Inner::default()
        };
        inner.files.insert(
            MY_ROOT.into(),
            FFile {
                id: MY_ROOT.into(),
                name: "My Drive".into(),
                mime: FOLDER.into(),
                parents: vec![],
                trashed: false,
                content: vec![],
                version: 1,
                modified_ms: inner.clock_ms,
                drive_id: None,
                shortcut: None,
            },
        );
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/drive/v3/files", get(list_files))
            .route("/drive/v3/files/{id}", get(get_file))
            .route("/drive/v3/changes/startPageToken", get(start_token))
            .route("/drive/v3/changes", get(list_changes))
            .route("/token", post(token))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url)
    }

    // --- tokens -------------------------------------------------------------------------

    /// A valid access token for `ttl`.
    pub fn issue_token(&self, ttl: Duration) -> String {
        let mut s = self.lock();
        issue(&mut s, ttl).0
    }

    /// Lifetime (`expires_in`) of tokens the token endpoint issues from now on.
    pub fn set_token_ttl(&self, secs: u64) {
        self.lock().token_ttl_secs = secs;
    }

    /// Invalidate every issued token (the next request with one is 401).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn last_subject(&self) -> Option<String> {
        self.lock().last_subject.clone()
    }

    // --- behaviour ----------------------------------------------------------------------

    pub fn fail_next(&self, n: usize, fail: Fail) {
        let mut s = self.lock();
        for _ in 0..n {
            s.failures.push_back(fail);
        }
    }

    pub fn set_ignore_range(&self, on: bool) {
        self.lock().ignore_range = on;
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    pub fn reset_counts(&self) {
        self.lock().counts = Counts::default();
    }

    pub fn file(&self, id: &str) -> Option<FFile> {
        self.lock().files.get(id).cloned()
    }

    // --- content ------------------------------------------------------------------------

    fn insert(&self, mut f: FFile) -> String {
        let mut s = self.lock();
        if f.id.is_empty() {
            s.next_id += 1;
            f.id = format!("1F{:05}x", s.next_id);
        }
        s.clock_ms += 1000;
        f.modified_ms = s.clock_ms;
        if f.drive_id.is_none() {
            f.drive_id = f
                .parents
                .first()
                .and_then(|p| s.files.get(p))
                .and_then(|p| p.drive_id.clone());
        }
        let id = f.id.clone();
        let drive = f.drive_id.clone();
        s.files.insert(id.clone(), f);
        let t = s.clock_ms;
        s.log.push((id.clone(), drive, t));
        id
    }

    /// Change a file and log the change.
    pub fn modify(&self, id: &str, change: impl FnOnce(&mut FFile)) {
        let mut s = self.lock();
        s.clock_ms += 1000;
        let now = s.clock_ms;
        let f = s.files.get_mut(id).expect("no such file");
        change(f);
        f.version += 1;
        f.modified_ms = now;
        let drive = f.drive_id.clone();
        s.log.push((id.to_owned(), drive, now));
    }

    /// A new shared drive; its id is also its root folder's id.
    pub fn shared_drive(&self, name: &str) -> String {
        let id = {
            let mut s = self.lock();
            s.next_id += 1;
            format!("0ADrive{:03}", s.next_id)
        };
        self.insert(FFile {
            id: id.clone(),
            name: name.into(),
            mime: FOLDER.into(),
            parents: vec![],
            trashed: false,
            content: vec![],
            version: 1,
            modified_ms: 0,
            drive_id: Some(id.clone()),
            shortcut: None,
        })
    }

    pub fn folder(&self, parent: &str, name: &str) -> String {
        self.add(parent, name, FOLDER, Vec::new())
    }

    pub fn add(&self, parent: &str, name: &str, mime: &str, content: Vec<u8>) -> String {
        self.insert(FFile {
            id: String::new(),
            name: name.into(),
            mime: mime.into(),
            parents: vec![parent.into()],
            trashed: false,
            content,
            version: 1,
            modified_ms: 0,
            drive_id: None,
            shortcut: None,
        })
    }

    /// A file whose MIME type is guessed from its name, as Drive does on upload.
    pub fn upload(&self, parent: &str, name: &str, content: &[u8]) -> String {
        self.add(parent, name, guess_mime(name), content.to_vec())
    }

    pub fn shortcut(&self, parent: &str, name: &str, target: &str) -> String {
        let target_mime = self.file(target).expect("target").mime;
        self.insert(FFile {
            id: String::new(),
            name: name.into(),
            mime: SHORTCUT.into(),
            parents: vec![parent.into()],
            trashed: false,
            content: vec![],
            version: 1,
            modified_ms: 0,
            drive_id: None,
            shortcut: Some((target.into(), target_mime)),
        })
    }

    pub fn update_content(&self, id: &str, content: &[u8]) {
        self.modify(id, |f| f.content = content.to_vec());
    }

    pub fn trash(&self, id: &str) {
        self.modify(id, |f| f.trashed = true);
    }

    pub fn rename(&self, id: &str, name: &str) {
        self.modify(id, |f| f.name = name.into());
    }

    pub fn move_to(&self, id: &str, parent: &str) {
        self.modify(id, |f| f.parents = vec![parent.into()]);
    }

    /// Delete permanently (the change feed reports `removed: true`).
    pub fn delete(&self, id: &str) {
        let mut s = self.lock();
        s.clock_ms += 1000;
        let now = s.clock_ms;
        if let Some(f) = s.files.remove(id) {
            s.log.push((id.to_owned(), f.drive_id, now));
        }
    }

    fn live_child(&self, parent: &str, name: &str, folder: bool) -> Option<String> {
        let s = self.lock();
        s.files
            .values()
            .find(|f| {
                !f.trashed
                    && f.name == name
                    && f.parents.iter().any(|p| p == parent)
                    && (f.mime == FOLDER) == folder
            })
            .map(|f| f.id.clone())
    }

    /// Create or overwrite the file at `key` under folder `root`, creating folders.
    pub fn put_path(&self, root: &str, key: &str, content: &[u8]) -> String {
        let segs: Vec<&str> = key.split('/').collect();
        let (name, dirs) = segs.split_last().expect("key");
        let mut parent = root.to_owned();
        for d in dirs {
            parent = match self.live_child(&parent, d, true) {
                Some(id) => id,
                None => self.folder(&parent, d),
            };
        }
        match self.live_child(&parent, name, false) {
            Some(id) => {
                self.update_content(&id, content);
                id
            }
            None => self.upload(&parent, name, content),
        }
    }

    /// The id of the live file at `key` under `root`.
    pub fn id_at(&self, root: &str, key: &str) -> Option<String> {
        let segs: Vec<&str> = key.split('/').collect();
        let (name, dirs) = segs.split_last()?;
        let mut parent = root.to_owned();
        for d in dirs {
            parent = self.live_child(&parent, d, true)?;
        }
        self.live_child(&parent, name, false)
    }
}

pub fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "txt" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

fn issue(s: &mut Inner, ttl: Duration) -> (String, u64) {
    s.next_token += 1;
    let token = format!("ya29.fake-{}", s.next_token);
    s.tokens.insert(token.clone(), Instant::now() + ttl);
    (token, ttl.as_secs())
}

fn rfc3339(ms: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

fn md5_hex(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    });
    (status, Json(body)).into_response()
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("File not found: {id}."),
    )
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "badRequest", message)
}

/// Bearer check, then injected failures.
fn admit(s: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    s.counts.drive_requests += 1;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = token
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| *exp > Instant::now());
    if !valid {
        s.counts.unauthorized += 1;
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials.",
        ));
    }
    if let Some(fail) = s.failures.pop_front() {
        return Some(match fail {
            Fail::TooManyRequests => error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "Rate limit exceeded",
            ),
            Fail::RateLimit403 => error(
                StatusCode::FORBIDDEN,
                "rateLimitExceeded",
                "Rate limit exceeded",
            ),
            Fail::UserRateLimit403 => error(
                StatusCode::FORBIDDEN,
                "userRateLimitExceeded",
                "User rate limit exceeded",
            ),
            Fail::Server500 => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internalError",
                "Internal Error",
            ),
            Fail::Unavailable503 => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Backend Error",
            ),
            Fail::Forbidden403 => error(
                StatusCode::FORBIDDEN,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            ),
            Fail::NotFound404 => not_found("injected"),
            Fail::Unauthorized401 => error(
                StatusCode::UNAUTHORIZED,
                "authError",
                "Request had invalid authentication credentials.",
            ),
        });
    }
    None
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true")
}

fn resolve_alias(id: &str) -> &str {
    if id == "root" { MY_ROOT } else { id }
}

/// The full JSON resource of a file.
fn file_json(f: &FFile) -> Value {
    let mut v = json!({
        "kind": "drive#file",
        "id": f.id,
        "name": f.name,
        "mimeType": f.mime,
        "parents": f.parents,
        "trashed": f.trashed,
        "version": f.version.to_string(),
        "modifiedTime": rfc3339(f.modified_ms),
    });
    if let Some(d) = &f.drive_id {
        v["driveId"] = json!(d);
    }
    if !f.mime.starts_with("application/vnd.google-apps.") {
        v["size"] = json!(f.content.len().to_string());
        v["md5Checksum"] = json!(md5_hex(&f.content));
    }
    if let Some((target, mime)) = &f.shortcut {
        v["shortcutDetails"] = json!({"targetId": target, "targetMimeType": mime});
    }
    v
}

// --- `fields` selection ---------------------------------------------------------------

#[derive(Debug)]
struct Field {
    name: String,
    sub: Vec<Field>,
}

fn parse_fields(s: &str) -> Vec<Field> {
    fn parse(chars: &[char], i: &mut usize) -> Vec<Field> {
        let mut out = Vec::new();
        let mut name = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            *i += 1;
            match c {
                ',' => {
                    if !name.trim().is_empty() {
                        out.push(Field {
                            name: name.trim().to_owned(),
                            sub: vec![],
                        });
                    }
                    name.clear();
                }
                '(' => {
                    let sub = parse(chars, i);
                    out.push(Field {
                        name: name.trim().to_owned(),
                        sub,
                    });
                    name.clear();
                    // Skip a following comma.
                    if *i < chars.len() && chars[*i] == ',' {
                        *i += 1;
                    }
                }
                ')' => break,
                c => name.push(c),
            }
        }
        if !name.trim().is_empty() {
            out.push(Field {
                name: name.trim().to_owned(),
                sub: vec![],
            });
        }
        out
    }
    let chars: Vec<char> = s.chars().collect();
    parse(&chars, &mut 0)
}

fn select(v: &Value, fields: &[Field]) -> Value {
    if fields.is_empty() || fields.iter().any(|f| f.name == "*") {
        return v.clone();
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|x| select(x, fields)).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for f in fields {
                if let Some(x) = map.get(&f.name) {
                    out.insert(f.name.clone(), select(x, &f.sub));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn fields_or(q: &HashMap<String, String>, default: &str) -> Vec<Field> {
    parse_fields(q.get("fields").map(String::as_str).unwrap_or(default))
}

// --- `q` parsing ------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Tok {
    Lit(String),
    Word(String),
}

#[derive(Debug)]
enum Clause {
    InParents(String),
    Trashed(bool),
    Name(String),
    Mime { eq: bool, value: String },
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            i += 1;
            let mut lit = String::new();
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        lit.push(*chars.get(i + 1).ok_or("dangling escape")?);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        lit.push(*c);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Lit(lit));
        } else {
            let mut w = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '\'' {
                w.push(chars[i]);
                i += 1;
            }
            out.push(Tok::Word(w));
        }
    }
    Ok(out)
}

fn parse_q(q: &str) -> Result<Vec<Clause>, String> {
    let toks = tokenize(q)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    let word = |t: Option<&Tok>, w: &str| matches!(t, Some(Tok::Word(x)) if x == w);
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
            (Tok::Lit(id), a, b) if word(a, "in") && word(b, "parents") => {
                clauses.push(Clause::InParents(id.clone()));
            }
            (Tok::Word(w), a, Some(Tok::Word(v))) if w == "trashed" && word(a, "=") => {
                clauses.push(Clause::Trashed(v == "true"));
            }
            (Tok::Word(w), a, Some(Tok::Lit(v))) if w == "name" && word(a, "=") => {
                clauses.push(Clause::Name(v.clone()));
            }
            (Tok::Word(w), Some(Tok::Word(op)), Some(Tok::Lit(v)))
                if w == "mimeType" && (op == "=" || op == "!=") =>
            {
                clauses.push(Clause::Mime {
                    eq: op == "=",
                    value: v.clone(),
                });
            }
            other => return Err(format!("unsupported query term {other:?}")),
        }
        i += 3;
        if i < toks.len() {
            if !word(toks.get(i), "and") {
                return Err(format!("expected `and` at {:?}", toks.get(i)));
            }
            i += 1;
        }
    }
    Ok(clauses)
}

fn matches(f: &FFile, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match c {
        Clause::InParents(p) => f.parents.iter().any(|x| x == resolve_alias(p)),
        Clause::Trashed(t) => f.trashed == *t,
        Clause::Name(n) => f.name == *n,
        Clause::Mime { eq, value } => (f.mime == *value) == *eq,
    })
}

// --- handlers ---------------------------------------------------------------------------

async fn list_files(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = admit(&mut s, &headers) {
        return r;
    }
    s.counts.list += 1;
    let clauses = match parse_q(q.get("q").map(String::as_str).unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => return bad_request(&format!("Invalid Value: q: {e}")),
    };
    let all_drives = flag(&q, "includeItemsFromAllDrives");
    let drive = match q.get("corpora").map(String::as_str) {
        Some("drive") => match (
            q.get("driveId"),
            all_drives && flag(&q, "supportsAllDrives"),
        ) {
            (Some(d), true) => Some(d.clone()),
            _ => {
                return bad_request(
                    "corpora=drive needs driveId, includeItemsFromAllDrives and supportsAllDrives",
                );
            }
        },
        None | Some("user") => None,
        Some(other) => return bad_request(&format!("unsupported corpora {other}")),
    };
    let page_size: usize = q
        .get("pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let start: usize = match q.get("pageToken") {
        None => 0,
        Some(t) => match t.strip_prefix("p").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return bad_request("Invalid Value: pageToken"),
        },
    };
    // Newest first, as an unordered server may answer: the connector must sort.
    let mut hits: Vec<&FFile> = s
        .files
        .values()
        .rev()
        .filter(|f| f.id != MY_ROOT && !(f.parents.is_empty()))
        .filter(|f| match &drive {
            Some(d) => f.drive_id.as_ref() == Some(d),
            None => all_drives || f.drive_id.is_none(),
        })
        .filter(|f| matches(f, &clauses))
        .collect();
    let total = hits.len();
    hits = hits.into_iter().skip(start).take(page_size).collect();
    let files: Vec<Value> = hits.iter().map(|f| file_json(f)).collect();
    let mut body = json!({
        "kind": "drive#fileList",
        "incompleteSearch": false,
        "files": files,
    });
    if start + page_size < total {
        body["nextPageToken"] = json!(format!("p{}", start + page_size));
    }
    let fields = fields_or(
        &q,
        "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)",
    );
    Json(select(&body, &fields)).into_response()
}

async fn get_file(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = admit(&mut s, &headers) {
        return r;
    }
    let id = resolve_alias(&id).to_owned();
    let Some(f) = s.files.get(&id).cloned() else {
        s.counts.get += 1;
        return not_found(&id);
    };
    if f.drive_id.is_some() && !flag(&q, "supportsAllDrives") {
        s.counts.get += 1;
        return not_found(&id);
    }
    if q.get("alt").map(String::as_str) != Some("media") {
        s.counts.get += 1;
        let fields = fields_or(&q, "kind,id,name,mimeType");
        return Json(select(&file_json(&f), &fields)).into_response();
    }
    s.counts.media += 1;
    if f.mime.starts_with("application/vnd.google-apps.") {
        return error(
            StatusCode::FORBIDDEN,
            "fileNotDownloadable",
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
        );
    }
    let len = f.content.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            let a: u64 = a.parse().ok()?;
            let b: Option<u64> = if b.is_empty() { None } else { b.parse().ok() };
            Some((a, b))
        });
    match range {
        Some((a, b)) if !s.ignore_range => {
            if a >= len {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                    "Request range not satisfiable",
                )
                    .into_response();
            }
            let end = b.map(|b| b.min(len - 1)).unwrap_or(len - 1);
            let body = f.content[a as usize..=end as usize].to_vec();
            s.counts.media_bytes_sent += body.len() as u64;
            (
                StatusCode::PARTIAL_CONTENT,
                [(header::CONTENT_RANGE, format!("bytes {a}-{end}/{len}"))],
                body,
            )
                .into_response()
        }
        _ => {
            s.counts.media_bytes_sent += len;
            (StatusCode::OK, f.content).into_response()
        }
    }
}

async fn start_token(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = admit(&mut s, &headers) {
        return r;
    }
    s.counts.changes += 1;
    if q.contains_key("driveId") && !flag(&q, "supportsAllDrives") {
        return bad_request("driveId needs supportsAllDrives");
    }
    Json(json!({
        "kind": "drive#startPageToken",
        "startPageToken": s.log.len().to_string(),
    }))
    .into_response()
}

async fn list_changes(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = admit(&mut s, &headers) {
        return r;
    }
    s.counts.changes += 1;
    let Some(start) = q.get("pageToken").and_then(|t| t.parse::<usize>().ok()) else {
        return bad_request("Invalid Value: pageToken");
    };
    if start > s.log.len() {
        return bad_request("Invalid Value: pageToken");
    }
    let all_drives = flag(&q, "includeItemsFromAllDrives");
    let drive = q.get("driveId").cloned();
    if drive.is_some() && !(all_drives && flag(&q, "supportsAllDrives")) {
        return bad_request("driveId needs includeItemsFromAllDrives and supportsAllDrives");
    }
    let page_size: usize = q
        .get("pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let end = (start + page_size).min(s.log.len());
    let mut changes = Vec::new();
    for (id, file_drive, t) in &s.log[start..end] {
        let visible = match &drive {
            Some(d) => file_drive.as_ref() == Some(d),
            None => all_drives || file_drive.is_none(),
        };
        if !visible {
            continue;
        }
        let mut c = json!({
            "kind": "drive#change",
            "changeType": "file",
            "time": rfc3339(*t),
            "fileId": id,
        });
        match s.files.get(id) {
            Some(f) => {
                c["removed"] = json!(false);
                c["file"] = file_json(f);
            }
            None => c["removed"] = json!(true),
        }
        changes.push(c);
    }
    let mut body = json!({ "kind": "drive#changeList", "changes": changes });
    if end < s.log.len() {
        body["nextPageToken"] = json!(end.to_string());
    } else {
        body["newStartPageToken"] = json!(s.log.len().to_string());
    }
    let fields = fields_or(&q, "*");
    Json(select(&body, &fields)).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct JwtClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
    #[serde(default)]
    sub: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else {
                return oauth_error("invalid_request", "no assertion");
            };
            let key = match jsonwebtoken::DecodingKey::from_rsa_pem(s.public_pem.as_bytes()) {
                Ok(k) => k,
                Err(e) => return oauth_error("server_error", &e.to_string()),
            };
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            v.set_audience(&[format!("{}/token", s.base)]);
            v.set_issuer(&[SA_EMAIL]);
            v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
            let claims = match jsonwebtoken::decode::<JwtClaims>(assertion, &key, &v) {
                Ok(d) => d.claims,
                Err(e) => return oauth_error("invalid_grant", &format!("Invalid JWT: {e}")),
            };
            if !claims
                .scope
                .split(' ')
                .any(|x| x == "https://www.googleapis.com/auth/drive.readonly")
            {
                return oauth_error("invalid_scope", "drive.readonly expected");
            }
            if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
                return oauth_error("invalid_grant", "Invalid JWT: bad lifetime");
            }
            let _ = (&claims.iss, &claims.aud);
            s.last_subject = claims.sub;
            s.counts.jwt_grants += 1;
        }
        Some("refresh_token") => {
            let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
                && form.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN);
            if !ok {
                return oauth_error("invalid_grant", "Bad Request");
            }
            s.counts.refresh_grants += 1;
        }
        _ => return oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
    let ttl = Duration::from_secs(s.token_ttl_secs);
    let (token, expires_in) = issue(&mut s, ttl);
    Json(json!({
        "access_token": token,
        "expires_in": expires_in,
        "token_type": "Bearer",
    }))
    .into_response()
}
