//! The real `heimdex-server` binary over HTTP on the native stack: Postgres (a fresh database
//! and roles per test), Redis (a random namespace per test) and an S3 server (moto, started
//! per test on a free port), single node with the embedded index.
//!
//! Needs Postgres at `HEIMDEX_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! a role that may create databases and roles), Redis at `HEIMDEX_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `moto_server` (`pip install 'moto[server]'`, which `make deps`
//! does) and the samples (`HEIMDEX_SAMPLES`). Each missing piece fails the test, saying so.
//! The Redis restart test runs a `redis-server` of its own (the binary on `PATH`) and
//! restarts it; the Postgres test terminates the connections to its own test database.
#![cfg(all(feature = "server", feature = "postgres", feature = "redis"))]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const SECRET: &str = "server-native-test-secret-0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A fresh database with an owner (runs the migrations) and an application login role in
/// `heimdex_app`; all dropped at the end.
struct Db {
    base: String,
    name: String,
    owner: String,
    app: String,
}

impl Db {
    fn psql(base: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([base, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql])
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn create() -> Self {
        let base = std::env::var("HEIMDEX_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Err(e) = Self::psql(&base, "SELECT 1") {
            panic!(
                "cannot reach Postgres at {base} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect 15 main start` or set HEIMDEX_TEST_PG_URL"
            );
        }
        let n = id();
        let db = Self {
            base,
            name: format!("heimdex_srv_{n}"),
            owner: format!("heimdex_srv_owner_{n}"),
            app: format!("heimdex_srv_app_{n}"),
        };
        for sql in [
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'heimdex_app') \
             THEN CREATE ROLE heimdex_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
             NOREPLICATION NOBYPASSRLS; END IF; EXCEPTION WHEN duplicate_object OR \
             unique_violation THEN NULL; END $$"
                .to_owned(),
            format!("CREATE ROLE {} LOGIN CREATEROLE PASSWORD 'pw'", db.owner),
            format!("CREATE DATABASE {} OWNER {}", db.name, db.owner),
            format!(
                "CREATE ROLE {} LOGIN PASSWORD 'pw' IN ROLE heimdex_app",
                db.app
            ),
        ] {
            Self::psql(&db.base, &sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        db
    }

    fn url(&self, role: &str) -> String {
        format!("postgres://{role}:pw@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.app),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ] {
            if let Err(e) = Self::psql(&self.base, &sql) {
                eprintln!("cleanup: {sql}: {e}");
            }
        }
    }
}

/// A moto S3 server on a free port, with one bucket.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    async fn start(log: &Path) -> Self {
        let port = free_port();
        let log = std::fs::File::create(log).expect("s3 log");
        let mut cmd = if which("moto_server") {
            Command::new("moto_server")
        } else {
            let ok = Command::new("python3")
                .args(["-c", "import moto.server"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "no S3 server for the native stack tests: pip install 'moto[server]' (make deps)"
            );
            let mut c = Command::new("python3");
            c.args(["-m", "moto.server"]);
            c
        };
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t = Instant::now();
        loop {
            if http.get(&endpoint).send().await.is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = http
            .put(format!("{endpoint}/media"))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        Self { child, endpoint }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The whole stack around one `heimdex-server all` process that can be started, stopped
/// and killed.
struct Stack {
    dir: tempfile::TempDir,
    db: Db,
    s3: S3,
    redis: String,
    namespace: String,
    port: u16,
    env: Vec<(String, String)>,
    server: Option<Child>,
    http: reqwest::Client,
    starts: u32,
}

impl Stack {
    async fn new(env: &[(&str, &str)]) -> Self {
        Self::with_redis(env, None).await
    }

    /// The stack on the Redis at `redis` (a [`PrivateRedis`]), else on the shared one.
    async fn with_redis(env: &[(&str, &str)], redis: Option<String>) -> Self {
        common::samples();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::create();
        let s3 = S3::start(&dir.path().join("s3.log")).await;
        let redis = redis.unwrap_or_else(|| {
            std::env::var("HEIMDEX_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        });
        let mut stack = Self {
            dir,
            db,
            s3,
            redis,
            namespace: format!("heimdex-test-{}", id()),
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            server: None,
            http: reqwest::Client::new(),
            starts: 0,
        };
        stack.start().await;
        stack
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Start the server and wait until /readyz answers 200.
    async fn start(&mut self) {
        assert!(self.server.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_heimdex-server"));
        cmd.arg("all")
            .env_remove("HEIMDEX_CONFIG")
            .env_remove("HEIMDEX_QDRANT_URL")
            .env_remove("HEIMDEX_DEV_FAIL_STAGE")
            .env("HEIMDEX_HOME", self.home())
            .env("HEIMDEX_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("HEIMDEX_LOG", "info")
            .env("HEIMDEX_DATABASE_URL", self.db.url(&self.db.app))
            .env("HEIMDEX_DATABASE_ADMIN_URL", self.db.url(&self.db.owner))
            .env("HEIMDEX_REDIS_URL", &self.redis)
            .env("HEIMDEX_REDIS_NAMESPACE", &self.namespace)
            .env("HEIMDEX_MEDIA_URL", "s3://media/sidecars")
            .env("AWS_ENDPOINT", &self.s3.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("SUPABASE_JWT_SECRET", SECRET)
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.server = Some(cmd.spawn().expect("start heimdex-server"));
        self.starts += 1;
        let t = Instant::now();
        loop {
            if let Ok(r) = self
                .http
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                panic!("heimdex-server exited ({status}):\n{}", self.tail());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "heimdex-server not ready in 60 s:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panic, with the log, when the server has exited.
    fn assert_running(&mut self) {
        if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
            panic!("heimdex-server exited ({status}):\n{}", self.tail());
        }
    }

    /// Like [`Stack::jobs`], `None` on an error status (a backend the test broke).
    async fn try_jobs(&self, tenant: &str) -> Option<Vec<Value>> {
        let r = self.call(tenant, "GET", "/v1/jobs?limit=1000", None).await;
        (r.status == 200)
            .then(|| r.json().as_array().cloned())
            .flatten()
    }

    /// Wait until a job of `tenant` is processing: true, or false once every job settled.
    /// Error statuses on the way are tolerated (the test is breaking a backend); the server
    /// exiting, or no answer for a minute, is not.
    async fn wait_processing(&mut self, tenant: &str) -> bool {
        let t = Instant::now();
        loop {
            self.assert_running();
            if let Some(jobs) = self.try_jobs(tenant).await {
                if jobs.iter().any(|j| j["state"] == "processing") {
                    return true;
                }
                if jobs
                    .iter()
                    .all(|j| j["state"] == "completed" || j["state"] == "failed")
                {
                    return false;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no job processing and not all settled in 60 s:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM the server and wait for it to exit (it flushes its index on the way out).
    fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -TERM heimdex-server");
            let status = child.wait().expect("wait");
            assert!(status.success(), "heimdex-server stopped with {status}");
        }
    }

    /// SIGKILL the server (no shutdown of any kind).
    fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn token(tenant: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": tenant, "aud": "authenticated", "exp": now + 3600,
                    "app_metadata": {"tenant_id": tenant}}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    }

    async fn call(&self, tenant: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method.parse().expect("method"), self.url(path))
            .bearer_auth(Self::token(tenant))
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.tail()));
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = r.bytes().await.expect("body").to_vec();
        Reply {
            status,
            content_type,
            bytes,
        }
    }

    /// Register `folder` as a source of `tenant` and sync it; the queued job ids.
    async fn sync(&self, tenant: &str, folder: &Path) -> Vec<String> {
        let src = self
            .call(
                tenant,
                "POST",
                "/v1/sources",
                Some(json!({"uri": folder.display().to_string()})),
            )
            .await
            .ok(201);
        let id = src["id"].as_str().expect("source id");
        let sync = self
            .call(tenant, "POST", &format!("/v1/sources/{id}/sync"), None)
            .await
            .ok(200);
        sync["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j.as_str().expect("job id").to_owned())
            .collect()
    }

    async fn jobs(&self, tenant: &str) -> Vec<Value> {
        self.call(tenant, "GET", "/v1/jobs?limit=1000", None)
            .await
            .ok(200)
            .as_array()
            .expect("jobs")
            .clone()
    }

    /// Poll until no job of `tenant` is pending or processing.
    async fn settle(&self, tenant: &str, timeout: Duration) -> Vec<Value> {
        let t = Instant::now();
        loop {
            let jobs = self.jobs(tenant).await;
            if jobs
                .iter()
                .all(|j| j["state"] == "completed" || j["state"] == "failed")
            {
                return jobs;
            }
            assert!(
                t.elapsed() < timeout,
                "jobs not settled in {timeout:?}: {jobs:#?}\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.kill();
        if let Ok(client) = redis::Client::open(self.redis.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{{{}}}:*", self.namespace))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

struct Reply {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The JSON body, asserting the status.
    #[track_caller]
    fn ok(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.bytes)
        );
        self.json()
    }
}

fn folder_with(stack: &Stack, name: &str, samples: &[&str]) -> PathBuf {
    let dir = stack.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    common::copy_samples(&common::samples(), &dir, samples);
    dir
}

/// Create a source of real clips, sync it, poll its jobs to completed, find the spoken
/// moment by search, download its sidecar and a thumbnail; all over HTTP, with the ML stages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_over_http() {
    let stack = Stack::new(&[]).await;
    let folder = folder_with(&stack, "clips", &["harbor_news.mp4", "bikes.mp4"]);
    let jobs = stack.sync("acme", &folder).await;
    assert_eq!(jobs.len(), 2, "two new clips, two jobs");
    let jobs = stack.settle("acme", Duration::from_secs(600)).await;
    for j in &jobs {
        assert_eq!(j["state"], "completed", "job {j}");
    }

    // The chef's sentence is spoken from 7.5 s of harbor_news.mp4.
    let found = stack
        .call(
            "acme",
            "POST",
            "/v1/search",
            Some(json!({"query": "chef prepares fresh lobster and mussels", "limit": 3})),
        )
        .await
        .ok(200);
    let top = &found["moments"][0];
    assert!(
        top["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("harbor_news.mp4")),
        "top moment: {found:#}"
    );
    let (start, end) = (
        top["start_s"].as_f64().expect("start"),
        top["end_s"].as_f64().expect("end"),
    );
    assert!(
        (5.0..=9.0).contains(&start) && end >= 9.0,
        "the moment should cover the sentence from 7.5 s: {start}-{end}"
    );

    // Another tenant sees none of it.
    let other = stack
        .call(
            "globex",
            "POST",
            "/v1/search",
            Some(json!({"query": "lobster"})),
        )
        .await
        .ok(200);
    assert_eq!(other["moments"], json!([]), "tenant isolation");

    // Sidecar and thumbnail downloads (stored in S3).
    let asset = top["asset"].as_str().expect("asset");
    let sidecar = stack
        .call("acme", "GET", &format!("/v1/assets/{asset}/sidecar"), None)
        .await
        .ok(200);
    common::assert_valid_sidecar(&common::sidecar_validator(), &sidecar);
    let thumb = stack
        .call(
            "acme",
            "GET",
            &format!("/v1/assets/{asset}/thumbnails/0"),
            None,
        )
        .await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.content_type, "image/jpeg");
    assert!(thumb.bytes.starts_with(&[0xFF, 0xD8]), "a JPEG thumbnail");
    let missing = stack
        .call(
            "globex",
            "GET",
            &format!("/v1/assets/{asset}/sidecar"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404, "another tenant's sidecar is not found");
}

/// A short audio-only file and a file of huge dimensions (a small MJPEG AVI whose headers
/// and frames claim 16000x16000), next to the common bad inputs (zero bytes, random bytes, truncated).
fn write_more_bad_inputs(dir: &Path) {
    let small = dir.join("huge.avi");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args(["testsrc=size=64x48:rate=5:duration=1", "-c:v", "mjpeg"])
        .arg(&small)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = std::fs::read(&small).expect("read");
    let at = |b: &[u8], tag: &[u8]| b.windows(4).position(|w| w == tag).expect("AVI header") + 8;
    let side = 16_000u32.to_le_bytes();
    let avih = at(&b, b"avih");
    b[avih + 32..avih + 36].copy_from_slice(&side);
    b[avih + 36..avih + 40].copy_from_slice(&side);
    let strf = at(&b, b"strf");
    b[strf + 4..strf + 8].copy_from_slice(&side);
    b[strf + 8..strf + 12].copy_from_slice(&side);
    // And every JPEG frame header (SOF0: FF C0, length, precision, height, width), which
    // FFmpeg reads to fill in the stream's size.
    let mut i = 0;
    while i + 9 <= b.len() {
        if b[i] == 0xFF && b[i + 1] == 0xC0 {
            b[i + 5..i + 7].copy_from_slice(&16_000u16.to_be_bytes());
            b[i + 7..i + 9].copy_from_slice(&16_000u16.to_be_bytes());
        }
        i += 1;
    }
    std::fs::write(&small, b).expect("write");

    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
        ])
        .args(["-c:a", "aac"])
        .arg(dir.join("audio_only.mp4"))
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    // An MP4 holding only subtitles: neither video nor audio to analyse.
    std::fs::write(
        dir.join("lines.srt"),
        "1\n00:00:00,000 --> 00:00:02,000\nHello\n",
    )
    .expect("write srt");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(dir.join("lines.srt"))
        .args(["-c:s", "mov_text"])
        .arg(dir.join("subtitles_only.mp4"))
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bad inputs fail their own jobs, each with a clear reason; a good clip synced with them and
/// one synced afterwards are indexed: the workers keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_their_own_jobs() {
    let stack = Stack::new(&[("HEIMDEX_NO_ML", "1")]).await;
    let folder = folder_with(&stack, "bad", &["bikes.mp4"]);
    common::write_bad_inputs(&folder, &common::samples());
    write_more_bad_inputs(&folder);
    stack.sync("acme", &folder).await;
    let jobs = stack.settle("acme", Duration::from_secs(300)).await;
    let assets: Vec<Value> = stack
        .call("acme", "GET", "/v1/assets?limit=1000", None)
        .await
        .ok(200)
        .as_array()
        .expect("assets")
        .clone();
    let key_of = |asset: &Value| -> String {
        assets
            .iter()
            .find(|a| a["id"] == *asset)
            .and_then(|a| a["key"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut by_key = std::collections::BTreeMap::new();
    for j in &jobs {
        by_key.insert(key_of(&j["asset"]), j.clone());
    }
    eprintln!(
        "{}",
        by_key
            .iter()
            .map(|(k, j)| format!("{k}: {} {}", j["state"], j["error"]))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(by_key["bikes.mp4"]["state"], "completed");
    // Sound without pictures is media: indexed by its audio.
    assert_eq!(by_key["audio_only.mp4"]["state"], "completed");
    let expected = [
        ("empty.mp4", "not a media file"),
        ("random.mp4", "not a media file"),
        ("truncated.mp4", ""),
        ("subtitles_only.mp4", "no readable audio or video"),
        ("huge.avi", "exceeds the limit"),
    ];
    for (key, words) in expected {
        let job = by_key
            .get(key)
            .unwrap_or_else(|| panic!("no job for {key}: {by_key:#?}"));
        if key == "truncated.mp4" && job["state"] == "completed" {
            // The first 40% of a file may hold whole, decodable shots.
            continue;
        }
        assert_eq!(job["state"], "failed", "{key}: {job}");
        let reason = job["error"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty() && reason.contains(words),
            "{key}: the reason should say {words:?}: {reason}"
        );
        assert_eq!(
            job["attempts"], 1,
            "{key}: bad media fails at once, no retries"
        );
    }

    // The workers still serve: a new good clip is indexed.
    let more = folder_with(&stack, "good", &["carphone_pristine.mp4"]);
    let jobs = stack.sync("acme", &more).await;
    let t = Instant::now();
    loop {
        let job = stack
            .call("acme", "GET", &format!("/v1/jobs/{}", jobs[0]), None)
            .await
            .ok(200);
        if job["state"] == "completed" {
            break;
        }
        assert!(
            job["state"] != "failed" && t.elapsed() < Duration::from_secs(120),
            "after the bad inputs: {job}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let health = stack.call("acme", "GET", "/healthz", None).await.ok(200);
    assert_eq!(health["ok"], true);
}

/// SIGKILL the single-node server mid-job at least ten times: after the last restart every
/// job completes, none is lost, none runs twice to a second result, and search finds each
/// asset's documents once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_loses_nothing() {
    // Every kill costs the jobs in flight one attempt; short leases so a killed job is
    // delivered again quickly.
    let mut stack = Stack::new(&[
        ("HEIMDEX_NO_ML", "1"),
        ("HEIMDEX_WORKERS", "2"),
        ("HEIMDEX_LEASE_SECS", "3"),
        ("HEIMDEX_MAX_ATTEMPTS", "30"),
        ("HEIMDEX_RETRY_BACKOFF_MS", "100"),
        ("HEIMDEX_FLUSH_SECS", "1"),
    ])
    .await;
    let folder = stack.dir.path().join("many");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let samples = common::samples();
    let names = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"];
    let mut files = 0;
    for copy in 0..8 {
        for n in names {
            std::fs::copy(samples.join(n), folder.join(format!("{copy}_{n}"))).expect("copy");
            files += 1;
        }
    }
    let queued = stack.sync("acme", &folder).await;
    assert_eq!(queued.len(), files);

    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < 10 {
        assert!(Instant::now() < deadline, "could not kill mid-job 10 times");
        // Wait for a job in progress, let it run a moment, then kill.
        let t = Instant::now();
        let busy = loop {
            let jobs = stack.jobs("acme").await;
            if jobs.iter().any(|j| j["state"] == "processing") {
                break true;
            }
            if jobs.iter().all(|j| j["state"] == "completed")
                || t.elapsed() > Duration::from_secs(30)
            {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100 + 70 * (kills % 5))).await;
        stack.kill();
        kills += 1;
        stack.start().await;
    }
    assert!(
        kills >= 10,
        "all jobs finished after {kills} kills; give the test more work"
    );

    let jobs = stack.settle("acme", Duration::from_secs(300)).await;
    assert_eq!(
        jobs.len(),
        files,
        "one job per file, none lost or added: {jobs:#?}"
    );
    let mut assets = std::collections::BTreeSet::new();
    for j in &jobs {
        assert_eq!(j["state"], "completed", "after {kills} kills: {j}");
        assert!(
            assets.insert(j["asset"].to_string()),
            "two jobs for one asset: {j}"
        );
    }
    let listed = stack
        .call("acme", "GET", "/v1/assets?limit=1000", None)
        .await
        .ok(200);
    let listed = listed.as_array().expect("assets");
    assert_eq!(listed.len(), files);
    assert!(
        listed.iter().all(|a| a["state"] == "indexed"),
        "{listed:#?}"
    );

    // Search finds every asset, each moment once (no documents written twice, none lost
    // with an unflushed index: a restart restores them from the sidecars).
    for a in listed {
        let id = a["id"].as_str().expect("id");
        let found = stack
            .call(
                "acme",
                "POST",
                "/v1/search",
                Some(json!({"query": "mp4", "limit": 100, "filters": {"assets": [id]}})),
            )
            .await
            .ok(200);
        let moments = found["moments"].as_array().expect("moments");
        assert!(
            !moments.is_empty(),
            "{} not searchable after {kills} kills",
            a["key"]
        );
        let mut seen = std::collections::BTreeSet::new();
        for m in moments {
            let key = (m["start_s"].to_string(), m["end_s"].to_string());
            assert!(seen.insert(key), "duplicate moment {m}");
        }
    }
    eprintln!(
        "{kills} kills, {} starts, {files} jobs completed",
        stack.starts
    );
}

/// A `redis-server` of the test's own on a free port, without persistence (no RDB, no AOF):
/// killing it loses every message. Never the shared Redis, which other tests use.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start it (again: on the same port, empty) and wait until it answers PING.
    fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server (is it on PATH?): {e}"));
        self.child = Some(child);
        let t = Instant::now();
        loop {
            let ok = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ok.is_ok() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "private redis-server on port {} did not come up: {ok:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash: no save, every message lost.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings of the resilience tests: no ML, short leases (a job whose lease the outage
/// broke is delivered again quickly), many attempts (every outage may cost the jobs in
/// flight one), fast retries, and a reconcile every 2 s (it enqueues again what Redis lost).
const RESILIENCE_ENV: &[(&str, &str)] = &[
    ("HEIMDEX_NO_ML", "1"),
    ("HEIMDEX_WORKERS", "2"),
    ("HEIMDEX_LEASE_SECS", "3"),
    ("HEIMDEX_MAX_ATTEMPTS", "30"),
    ("HEIMDEX_RETRY_BACKOFF_MS", "100"),
    ("HEIMDEX_RETRY_MAX_BACKOFF_MS", "1000"),
    ("HEIMDEX_RECONCILE_SECS", "2"),
    ("HEIMDEX_FLUSH_SECS", "1"),
];

/// `copies` copies of each of three samples, named `{copy}_{sample}`; the folder and the
/// number of files.
fn copies(stack: &Stack, name: &str, copies: usize) -> (PathBuf, usize) {
    let folder = stack.dir.path().join(name);
    std::fs::create_dir_all(&folder).expect("mkdir");
    let samples = common::samples();
    let mut files = 0;
    for copy in 0..copies {
        for n in ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"] {
            std::fs::copy(samples.join(n), folder.join(format!("{copy}_{n}"))).expect("copy");
            files += 1;
        }
    }
    (folder, files)
}

/// After the faults: every one of `files` jobs completed once, every asset indexed and
/// searchable, each moment once, and the copies of one sample with the same moments (what
/// a clean run gives: nothing lost, nothing written twice).
async fn assert_indexed_once(stack: &mut Stack, files: usize, what: &str) {
    // The first answers after a fault may still be errors; they must go away.
    let t = Instant::now();
    while stack.try_jobs("acme").await.is_none() {
        stack.assert_running();
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "GET /v1/jobs still fails 30 s {what}:\n{}",
            stack.tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let jobs = stack.settle("acme", Duration::from_secs(300)).await;
    stack.assert_running();
    assert_eq!(jobs.len(), files, "one job per file {what}: {jobs:#?}");
    let mut assets = std::collections::BTreeSet::new();
    let attempts: u64 = jobs.iter().filter_map(|j| j["attempts"].as_u64()).sum();
    for j in &jobs {
        assert_eq!(j["state"], "completed", "{what}: {j}");
        assert!(
            assets.insert(j["asset"].to_string()),
            "two jobs for one asset: {j}"
        );
    }
    let listed = stack
        .call("acme", "GET", "/v1/assets?limit=1000", None)
        .await
        .ok(200);
    let listed = listed.as_array().expect("assets");
    assert_eq!(listed.len(), files);
    assert!(
        listed.iter().all(|a| a["state"] == "indexed"),
        "{what}: {listed:#?}"
    );
    let mut per_sample = std::collections::BTreeMap::<String, Vec<(String, String, usize)>>::new();
    for a in listed {
        let id = a["id"].as_str().expect("id");
        let key = a["key"].as_str().expect("key").to_owned();
        let found = stack
            .call(
                "acme",
                "POST",
                "/v1/search",
                Some(json!({"query": "mp4", "limit": 100, "filters": {"assets": [id]}})),
            )
            .await
            .ok(200);
        let moments = found["moments"].as_array().expect("moments");
        assert!(!moments.is_empty(), "{key} not searchable {what}");
        let mut seen = std::collections::BTreeSet::new();
        for m in moments {
            let span = (m["start_s"].to_string(), m["end_s"].to_string());
            assert!(seen.insert(span), "{key}: duplicate moment {what}: {m}");
        }
        let sample = key
            .split_once('_')
            .map_or(key.clone(), |(_, s)| s.to_owned());
        per_sample
            .entry(sample)
            .or_default()
            .push((id.to_owned(), key, moments.len()));
    }
    let log = std::fs::read_to_string(stack.log()).unwrap_or_default();
    let survived = log.matches("worker: backend error; retrying").count();

    // The documents in the index, counted per asset once the server stopped (and flushed):
    // the copies of one sample, some hit by the faults and some not, have as many documents
    // and moments as each other.
    stack.stop();
    let index = heimdex_index::EmbeddedIndex::open(stack.home().join("index")).expect("index");
    let documents: std::collections::BTreeMap<String, u64> = index
        .asset_counts_blocking(&heimdex_core::TenantId::new("acme"))
        .into_iter()
        .map(|(asset, n)| (asset.to_string(), n))
        .collect();
    assert_eq!(
        documents.len(),
        files,
        "documents of every asset, no other: {documents:?}"
    );
    for (sample, copies) in &per_sample {
        let counts: Vec<(&str, usize, u64)> = copies
            .iter()
            .map(|(id, key, moments)| {
                (
                    key.as_str(),
                    *moments,
                    documents.get(id).copied().unwrap_or(0),
                )
            })
            .collect();
        assert!(
            counts
                .iter()
                .all(|c| c.2 > 0 && (c.1, c.2) == (counts[0].1, counts[0].2)),
            "copies of {sample} differ in (moments, documents) {what}: {counts:?}"
        );
        eprintln!("{what}: {sample}: (key, moments, documents) {counts:?}");
    }
    eprintln!(
        "{what}: {files} jobs completed in {attempts} attempts; workers survived {survived} backend errors"
    );
}

/// The server's own Redis (no persistence) is killed and started again, empty, twice during
/// ingestion: the server keeps running, the periodic reconcile enqueues again the jobs Redis
/// lost, and every clip ends indexed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_ingest_loses_nothing() {
    let mut redis = PrivateRedis::start();
    let mut stack = Stack::with_redis(RESILIENCE_ENV, Some(redis.url())).await;
    let (folder, files) = copies(&stack, "clips", 5);
    assert_eq!(stack.sync("acme", &folder).await.len(), files);

    let mut restarts = 0;
    while restarts < 2 {
        if !stack.wait_processing("acme").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.kill();
        // Workers, leases and the reconcile meet a Redis that is down for a while.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stack.assert_running();
        redis.restart();
        restarts += 1;
    }
    assert_eq!(
        restarts, 2,
        "all jobs finished before two Redis restarts; give the test more work"
    );
    assert_indexed_once(&mut stack, files, "after 2 Redis restarts").await;
}

/// Every Postgres connection of the server is terminated (`pg_terminate_backend`) five times
/// during ingestion: the pools reconnect, the jobs that failed are retried, and every clip
/// ends indexed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_killed_mid_ingest_lose_nothing() {
    let mut stack = Stack::new(RESILIENCE_ENV).await;
    // Enough work that five kill rounds land mid-ingest on a quiet machine too (15 clips
    // finished before the fifth round in a warm CI run).
    let (folder, files) = copies(&stack, "clips", 12);
    assert_eq!(stack.sync("acme", &folder).await.len(), files);

    let kill = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        stack.db.name
    );
    let mut kills = 0;
    let mut terminated = 0;
    while kills < 5 {
        if !stack.wait_processing("acme").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A burst, so that some terminations hit queries in flight, not only idle
        // connections (which the pool tests before use).
        for _ in 0..10 {
            let n = Db::psql(&stack.db.base, &kill).unwrap_or_else(|e| panic!("{kill}: {e}"));
            terminated += n.parse::<u64>().expect("a count");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        kills += 1;
    }
    assert_eq!(
        kills, 5,
        "all jobs finished before five kills; give the test more work"
    );
    assert!(terminated >= 10, "only {terminated} connections terminated");
    assert_indexed_once(
        &mut stack,
        files,
        &format!("after terminating {terminated} connections in {kills} rounds"),
    )
    .await;
}

/// Wait until tenant `acme` has exactly `want` assets, all indexed; returns them.
async fn wait_indexed(stack: &Stack, want: usize) -> Value {
    let t = Instant::now();
    loop {
        let assets = stack.call("acme", "GET", "/v1/assets", None).await.ok(200);
        let all = assets.as_array().cloned().unwrap_or_default();
        let indexed = all.iter().filter(|x| x["state"] == "indexed").count();
        if indexed == want && all.len() == want {
            return assets;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "waiting for {want} indexed assets: {assets:#}\n{}",
            stack.tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Put (or with `None`, delete) `bucket/key` on the stack's S3 server.
async fn s3_object(stack: &Stack, bucket: &str, key: &str, body: Option<Vec<u8>>) {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&stack.s3.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 client");
    let path = object_store::path::Path::from(key);
    match body {
        Some(b) => {
            object_store::ObjectStoreExt::put(&store, &path, b.into())
                .await
                .expect("put");
        }
        None => object_store::ObjectStoreExt::delete(&store, &path)
            .await
            .expect("delete"),
    }
}

/// A bucket as a source, read in place: registered with its endpoint as a stored setting
/// (credentials from the server's AWS_* environment), synced on demand, then by the schedule
/// alone (a new object indexed, a deleted one removed), also after a restart, which rebuilds
/// the connector from the stored source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_source_syncs_on_demand_on_schedule_and_after_restart() {
    let mut stack = Stack::new(&[("HEIMDEX_NO_ML", "1"), ("HEIMDEX_SYNC_SECS", "2")]).await;
    let samples = common::samples();
    let r = stack
        .http
        .put(format!("{}/footage", stack.s3.endpoint))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let bikes = std::fs::read(samples.join("bikes.mp4")).expect("sample");
    s3_object(&stack, "footage", "q2/bikes.mp4", Some(bikes)).await;
    s3_object(
        &stack,
        "footage",
        "q2/notes.txt",
        Some(b"not media".to_vec()),
    )
    .await;
    s3_object(
        &stack,
        "footage",
        "other/skip.mp4",
        Some(b"elsewhere".to_vec()),
    )
    .await;

    let src = stack
        .call(
            "acme",
            "POST",
            "/v1/sources",
            Some(json!({"uri": "s3://footage/q2/", "options": {
                "endpoint": stack.s3.endpoint, "allow_http": "true",
                "secret_access_key": "test"}})),
        )
        .await
        .ok(201);
    assert_eq!(src["kind"], "s3");
    assert_eq!(src["uri"], "s3://footage/q2");
    assert_eq!(src["options"]["endpoint"], json!(stack.s3.endpoint));
    assert!(
        src["options"].get("secret_access_key").is_none(),
        "secrets are never stored or shown: {src}"
    );
    let id = src["id"].as_str().expect("id").to_owned();
    let sync = stack
        .call("acme", "POST", &format!("/v1/sources/{id}/sync"), None)
        .await
        .ok(200);
    assert_eq!(sync["new"], 1, "only the video under the prefix: {sync}");
    let jobs = stack.settle("acme", Duration::from_secs(300)).await;
    assert!(jobs.iter().all(|j| j["state"] == "completed"), "{jobs:#?}");
    let assets = stack.call("acme", "GET", "/v1/assets", None).await.ok(200);
    assert_eq!(assets.as_array().map(Vec::len), Some(1), "{assets}");
    let listed = stack.call("acme", "GET", "/v1/sources", None).await.ok(200);
    assert!(listed[0]["synced_ms"].as_i64().is_some(), "{listed}");

    // The schedule alone picks up a new object…
    let carphone = std::fs::read(samples.join("carphone_pristine.mp4")).expect("sample");
    s3_object(&stack, "footage", "q2/carphone.mp4", Some(carphone)).await;
    wait_indexed(&stack, 2).await;
    // …and removes a deleted one, sidecar included.
    let bikes_asset = stack
        .call("acme", "GET", "/v1/assets", None)
        .await
        .ok(200)
        .as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == "bikes.mp4").cloned())
        .expect("bikes asset");
    let bikes_id = bikes_asset["id"].as_str().expect("id").to_owned();
    s3_object(&stack, "footage", "q2/bikes.mp4", None).await;
    wait_indexed(&stack, 1).await;
    let gone = stack
        .call(
            "acme",
            "GET",
            &format!("/v1/assets/{bikes_id}/sidecar"),
            None,
        )
        .await;
    assert_eq!(gone.status, 404);

    // After a restart the stored source (URI + endpoint) and the environment's credentials
    // rebuild the connector; the schedule goes on.
    stack.stop();
    stack.start().await;
    let harbor = std::fs::read(samples.join("harbor_news.mp4")).expect("sample");
    s3_object(&stack, "footage", "q2/harbor.mp4", Some(harbor)).await;
    let assets = wait_indexed(&stack, 2).await;
    let keys: std::collections::BTreeSet<&str> = assets
        .as_array()
        .expect("assets")
        .iter()
        .filter_map(|a| a["key"].as_str())
        .collect();
    assert_eq!(keys, ["carphone.mp4", "harbor.mp4"].into_iter().collect());
}
