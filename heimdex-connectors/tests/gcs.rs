//! The `gs://` connector (GCS JSON API) against `gcp-storage-emulator` (PyPI), started by the
//! tests (`gcp-storage-emulator start --in-memory` on a free port, one per test process;
//! `make deps` installs it, a missing one fails the tests saying so). Every scenario uses a
//! fresh bucket, created with the JSON API (`POST /storage/v1/b`); objects are written with
//! the JSON upload API (`POST /upload/storage/v1/b/{bucket}/o?uploadType=media`).
//!
//! What the emulator (2026.7.19) does differently from GCS, and how the connector copes
//! (`emulator_behaviour` below checks and prints it):
//! - `ifGenerationMatch` is ignored on media downloads (a stale generation still gets
//!   `206`), and downloads carry no `x-goog-generation` header: the connector then compares
//!   the generation with a metadata request after the read, so `read_range_checked` still
//!   reports `Changed`. On GCS the `412` (or the header) decides it in one request.
//! - `maxResults`, `pageToken` and `startOffset` are ignored: a listing answers every object
//!   under the prefix in one response, without `nextPageToken`. The connector's own page
//!   tokens still page correctly (keys at or before the token are dropped client-side).
//! - A range starting at the end of the object answers `206` with an empty body
//!   (`Content-Range: bytes 16-15/16`) instead of `416`: reported as `RangeOutOfBounds`
//!   from the `Content-Range` total.
//! - An empty body in a media upload crashes the handler (`len(None)`): the fixture writes
//!   empty objects with a multipart upload instead.
//! - Authorization headers are not checked.
//!
//! What the emulator cannot show (credentials, GCS paging, `412`, `x-goog-generation`, `416`,
//! a server ignoring `Range`, retries of 503s) runs at the end of this file against a small
//! fake with Google's semantics (tests/support/fake_gcs.rs).

#![cfg(feature = "gcs")]

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use heimdex_connectors::object::gcs::{self, GcsConfig, GcsConnector};
use heimdex_connectors::{ConnectorRegistry, RangeReader, SourceSpec};
use heimdex_core::Connector;
use heimdex_core::ConnectorError;
use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::connector::{ConnectorFixture, fake_mp4};
use heimdex_core::connector::{ListRequest, list_all};

#[path = "support/emulators.rs"]
mod emulators;
use emulators::{Emulator, free_port, missing, on_path, start, unique};

fn emulator() -> &'static Emulator {
    static GCS: OnceLock<Emulator> = OnceLock::new();
    GCS.get_or_init(|| {
        let bin = on_path("gcp-storage-emulator")
            .unwrap_or_else(|| missing("gcp-storage-emulator (PyPI gcp-storage-emulator)"));
        let dir = std::env::temp_dir().join(unique("heimdex-gcs"));
        std::fs::create_dir_all(&dir).unwrap();
        start(
            "gcp-storage-emulator",
            &bin,
            &[
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--in-memory",
            ],
            Some(&dir),
        )
    })
}

fn base() -> String {
    format!("http://127.0.0.1:{}", emulator().port)
}

/// Percent-encode a path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn spec(bucket: &str, prefix: &str) -> SourceSpec {
    SourceSpec::parse(&format!("gs://{bucket}/{prefix}"))
        .unwrap()
        .with_options([("endpoint", base()), ("skip_signature", "true".into())])
}

async fn create_bucket(http: &reqwest::Client, bucket: &str) {
    let resp = http
        .post(format!("{}/storage/v1/b?project=test", base()))
        .json(&serde_json::json!({ "name": bucket }))
        .send()
        .await
        .expect("create bucket");
    assert!(
        resp.status().is_success(),
        "create bucket {bucket}: {resp:?}"
    );
}

/// A fresh bucket with its connector (rooted at `prefix`) and a client to write with.
struct GcsBucket {
    connector: GcsConnector,
    http: reqwest::Client,
    bucket: String,
    prefix: String,
}

impl GcsBucket {
    async fn new(prefix: &str) -> Self {
        let http = reqwest::Client::new();
        let bucket = unique("hx");
        create_bucket(&http, &bucket).await;
        let connector = gcs::build(&spec(&bucket, prefix)).expect("gcs connector");
        Self {
            connector,
            http,
            bucket,
            prefix: prefix.to_owned(),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// The object resource GCS returns for `key`.
    async fn resource(&self, key: &str) -> serde_json::Value {
        self.http
            .get(format!(
                "{}/storage/v1/b/{}/o/{}",
                base(),
                self.bucket,
                enc(&self.name(key))
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[async_trait]
impl ConnectorFixture for GcsBucket {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        let upload = format!("{}/upload/storage/v1/b/{}/o", base(), self.bucket);
        let req = if bytes.is_empty() {
            // The emulator fails on an empty media upload (it reads no body as `None`): a
            // multipart upload (metadata + empty media part) creates the empty object.
            let body = format!(
                "--b0undary\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n\
                 --b0undary\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--b0undary--\r\n",
                serde_json::json!({ "name": self.name(key) })
            );
            self.http
                .post(format!("{upload}?uploadType=multipart"))
                .header("Content-Type", "multipart/related; boundary=b0undary")
                .body(body)
        } else {
            self.http
                .post(format!(
                    "{upload}?uploadType=media&name={}",
                    enc(&self.name(key))
                ))
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec())
        };
        let resp = req.send().await.expect("upload");
        assert!(resp.status().is_success(), "upload {key}: {resp:?}");
    }
    async fn delete(&self, key: &str) {
        let resp = self
            .http
            .delete(format!(
                "{}/storage/v1/b/{}/o/{}",
                base(),
                self.bucket,
                enc(&self.name(key))
            ))
            .send()
            .await
            .expect("delete");
        assert!(resp.status().is_success(), "delete {key}: {resp:?}");
    }
    fn lists_by_content(&self) -> bool {
        false
    }
}

async fn gcs_bucket() -> Fixture<GcsBucket> {
    Fixture::new(GcsBucket::new("videos/2024").await)
}

async fn gcs_whole_bucket() -> Fixture<GcsBucket> {
    Fixture::new(GcsBucket::new("").await)
}

mod gcs_prefixed {
    use super::*;
    heimdex_core::connector_conformance_tests!(gcs_bucket);
}

mod gcs_whole {
    use super::*;
    heimdex_core::connector_conformance_tests!(gcs_whole_bucket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_not_found() {
    let bucket = unique("missing");
    let c = gcs::build(&spec(&bucket, "p")).unwrap();
    let err = c.list(ListRequest::default()).await.expect_err("list");
    assert!(
        matches!(&err, ConnectorError::NotFound { key } if key == &format!("gs://{bucket}/p")),
        "{err:?}"
    );
    let err = c.stat("a.mp4").await.expect_err("stat");
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
    let err = c.read_range("a.mp4", 0..10).await.expect_err("read");
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
}

/// The registry builds `gs://` sources with this connector; `STORAGE_EMULATOR_HOST` (Google's
/// emulator convention) points it at the emulator without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_emulator_host() {
    let f = GcsBucket::new("p").await;
    f.put("a.mp4", &fake_mp4(10, 1)).await;
    let c = ConnectorRegistry::default()
        .build(&spec(&f.bucket, "p"))
        .unwrap();
    assert_eq!(c.name(), "gcs");
    assert_eq!(list_all(c.as_ref(), None).await.unwrap().len(), 1);

    let host = format!("127.0.0.1:{}", emulator().port);
    let plain = SourceSpec::parse(&format!("gs://{}/p", f.bucket)).unwrap();
    let config = GcsConfig::from_spec_and_env(&plain, |k| {
        (k == "STORAGE_EMULATOR_HOST").then(|| host.clone())
    })
    .unwrap();
    assert!(config.credentials.is_none());
    let c = GcsConnector::new(config, plain.uri()).unwrap();
    let all = list_all(&c, None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        c.read_range("a.mp4", 0..8).await.unwrap(),
        &fake_mp4(10, 1)[..8]
    );
}

fn sample(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEIMDEX_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples"));
    let p = dir.join(name);
    assert!(p.is_file(), "{} missing: run `make samples`", p.display());
    p
}

/// A RangeReader over GCS reads a real sample video exactly, seeking like a demuxer, with
/// checked reads of the listed generation; a probe of the head and the tail reads only a few
/// blocks of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reader_reads_a_real_video_exactly() {
    let bytes = std::fs::read(sample("bikes.mp4")).unwrap();
    let f = GcsBucket::new("clips").await;
    f.put("bikes.mp4", &bytes).await;
    let stats = f.connector.stats();
    let conn: Arc<dyn Connector> = Arc::new(f.connector);
    let meta = conn.stat("bikes.mp4").await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let handle = tokio::runtime::Handle::current();
    let expected = bytes.clone();
    let before = stats.media_bytes();
    let probe_bytes = tokio::task::spawn_blocking(move || {
        let mut r = RangeReader::new(
            Arc::clone(&conn),
            "bikes.mp4",
            meta.size,
            64 * 1024,
            handle.clone(),
        )
        .with_version(meta.version.clone());
        let probe = r.stats();
        let mut head = vec![0u8; 64 * 1024];
        r.read_exact(&mut head).unwrap();
        assert_eq!(head, expected[..head.len()]);
        r.seek(SeekFrom::End(-64 * 1024)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, expected[expected.len() - tail.len()..]);
        let probe_bytes = probe.bytes();

        let mut all = RangeReader::new(conn, "bikes.mp4", meta.size, 64 * 1024, handle)
            .with_version(meta.version);
        let mut got = Vec::new();
        all.read_to_end(&mut got).unwrap();
        assert!(got == expected, "whole file differs");
        probe_bytes
    })
    .await
    .unwrap();
    assert!(probe_bytes <= 3 * 64 * 1024, "{probe_bytes}");
    // Ranges are honoured: the media bytes received are the file once plus the probe.
    let received = stats.media_bytes() - before;
    assert!(
        received <= bytes.len() as u64 + 3 * 64 * 1024,
        "{received} bytes received for a {} byte file",
        bytes.len()
    );
}

/// A checked read of a replaced object is `Changed`, naming both generations; an unchecked
/// read returns the new bytes; reading the new generation works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_read_after_replacement_is_changed() {
    let f = GcsBucket::new("p").await;
    f.put("swap.mp4", &fake_mp4(1000, 1)).await;
    let v1 = f.connector.stat("swap.mp4").await.unwrap().version;
    assert_eq!(
        f.resource("swap.mp4").await["generation"].as_str(),
        Some(v1.as_str()),
        "version is the generation"
    );
    f.put("swap.mp4", &fake_mp4(2000, 2)).await;
    let v2 = f.connector.stat("swap.mp4").await.unwrap().version;
    assert_ne!(v1, v2);
    match f
        .connector
        .read_range_checked("swap.mp4", 0..100, &v1)
        .await
    {
        Err(ConnectorError::Changed {
            key,
            expected,
            found,
        }) => {
            assert_eq!((key.as_str(), expected.as_str()), ("swap.mp4", v1.as_str()));
            assert_eq!(found, v2);
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    // Empty ranges check the generation too.
    assert!(matches!(
        f.connector.read_range_checked("swap.mp4", 5..5, &v1).await,
        Err(ConnectorError::Changed { .. })
    ));
    assert_eq!(
        f.connector
            .read_range_checked("swap.mp4", 1990..3000, &v2)
            .await
            .unwrap(),
        &fake_mp4(2000, 2)[1990..]
    );
    assert_eq!(
        f.connector.read_range("swap.mp4", 30..40).await.unwrap(),
        &fake_mp4(2000, 2)[30..40]
    );
}

/// Keys with spaces, `#`, `%`, `+`, `?` and non-ASCII letters list, stat and read as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_keys_round_trip() {
    let keys = [
        "a b/c#1.mp4",
        "100%/x+y.mov",
        "été/日本.mkv",
        "q?/r&s=t.mp4",
    ];
    let f = GcsBucket::new("p q").await;
    for (i, k) in keys.iter().enumerate() {
        f.put(k, &fake_mp4(10 + i, i as u8)).await;
    }
    let all = list_all(&f.connector, None).await.unwrap();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    assert_eq!(all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), want);
    for (i, k) in keys.iter().enumerate() {
        let m = f.connector.stat(k).await.unwrap();
        assert_eq!(m.size, fake_mp4(10 + i, 0).len() as u64, "{k}");
        assert!(
            m.modified_ms.is_some_and(|t| t > 1_600_000_000_000),
            "{m:?}"
        );
        let got = f
            .connector
            .read_range_checked(k, 0..12, &m.version)
            .await
            .unwrap();
        assert_eq!(got, &fake_mp4(10 + i, i as u8)[..12], "{k}");
    }
}

/// Pages of 2 over 7 videos among other objects: each page has at most 2, all come once,
/// in order, and the last page says so without an extra empty page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_end_without_an_empty_page() {
    let f = GcsBucket::new("").await;
    for i in 0..7 {
        f.put(&format!("v{i}.mp4"), b"x").await;
        f.put(&format!("v{i}.txt"), b"x").await;
    }
    let mut token = None;
    let mut pages = Vec::new();
    loop {
        let mut req = ListRequest::with_page_size(2);
        req.page_token = token.take();
        let page = f.connector.list(req).await.unwrap();
        pages.push(page.objects.len());
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, [2, 2, 2, 1]);
}

/// Nothing listens at the endpoint: after the retries the options allow, `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_unavailable() {
    let spec = SourceSpec::parse("gs://b/p").unwrap().with_options([
        ("endpoint", format!("http://127.0.0.1:{}", free_port())),
        ("skip_signature", "true".into()),
        ("max_retries", "1".into()),
        ("retry_timeout", "2s".into()),
    ]);
    let c = gcs::build(&spec).unwrap();
    let started = Instant::now();
    let err = c.list(ListRequest::default()).await.expect_err("list");
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    let err = c.read_range("a.mp4", 0..1).await.expect_err("read");
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(c.stats().retries(), 2);
}

/// What the emulator supports of the JSON API features the connector uses (printed; see the
/// module docs). Only what the tests rely on is asserted: prefix filtering and `Range`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_behaviour() {
    let f = GcsBucket::new("").await;
    f.put("a.mp4", b"0123456789abcdef").await;
    f.put("b.mp4", b"x").await;
    f.put("c/d.mp4", b"x").await;
    let generation = f.resource("a.mp4").await["generation"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = format!("{}/storage/v1/b/{}/o", base(), f.bucket);
    let list = |q: &str| {
        let url = format!("{o}?{q}");
        let http = f.http.clone();
        async move {
            let v: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let names: Vec<String> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            (names, v.get("nextPageToken").is_some())
        }
    };
    let (names, _) = list("prefix=c%2F").await;
    assert_eq!(names, ["c/d.mp4"], "prefix");
    let (names, token) = list("maxResults=1").await;
    eprintln!(
        "maxResults=1: {} items, nextPageToken: {token}",
        names.len()
    );
    let (names, _) = list("startOffset=b.mp4").await;
    eprintln!("startOffset=b.mp4: {names:?}");
    let media = format!("{o}/a.mp4?alt=media");
    let r = f
        .http
        .get(&media)
        .header("Range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206, "Range");
    eprintln!(
        "media: x-goog-generation header: {:?}",
        r.headers().get("x-goog-generation")
    );
    assert_eq!(r.bytes().await.unwrap(), &b"2345"[..]);
    let stale = format!("{media}&ifGenerationMatch={}", generation.clone() + "1");
    let r = f
        .http
        .get(&stale)
        .header("Range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    eprintln!("ifGenerationMatch=<another generation>: {}", r.status());
    let r = f
        .http
        .get(&media)
        .header("Range", "bytes=16-20")
        .send()
        .await
        .unwrap();
    eprintln!(
        "Range past the end: {} Content-Range {:?}",
        r.status(),
        r.headers().get("content-range")
    );
}

// ---------------------------------------------------------------------------------------
// What the emulator lacks, on a fake with Google's semantics (tests/support/fake_gcs.rs)
// ---------------------------------------------------------------------------------------

#[path = "support/fake_gcs.rs"]
mod fake_gcs;
use fake_gcs::FakeGcs;

const TEST_KEY: &str = include_str!("fixtures/gdrive-test-key.pem");

/// A connector on the fake, authenticated with a service-account key (JWT bearer grant).
fn fake_connector(fake: &FakeGcs, prefix: &str, extra: &[(&str, &str)]) -> GcsConnector {
    let key = serde_json::json!({
        "type": "service_account",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": fake_gcs::SA_EMAIL,
        "token_uri": fake.token_uri(),
    })
    .to_string();
    let spec = SourceSpec::parse(&format!("gs://{}/{prefix}", fake_gcs::BUCKET))
        .unwrap()
        .with_options(
            [
                ("endpoint", fake.url.clone()),
                ("service_account_key", key),
                ("retry_timeout", "30s".to_owned()),
            ]
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string()))),
        );
    let config = GcsConfig::from_spec_and_env(&spec, |_| None).unwrap();
    let config = config.with_retry(heimdex_connectors::google::RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    });
    GcsConnector::new(config, spec.uri()).unwrap()
}

/// Service-account auth (one JWT grant, scope devstorage.read_only, bearer token on every
/// call); GCS paging (maxResults + pageToken, startOffset for the connector's tokens);
/// checked reads decided by the server (412, x-goog-generation) in one request; 416 past
/// the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gcs_paging_generations_and_auth() {
    let fake = FakeGcs::start().await;
    for i in 0..5 {
        fake.put(&format!("m/v{i}.mp4"), &fake_mp4(100, i));
        fake.put(&format!("m/n{i}.txt"), b"x");
    }
    fake.put("other/x.mp4", b"x");
    let c = fake_connector(&fake, "m", &[]);
    let mut token = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut req = ListRequest::with_page_size(2);
        req.page_token = token.take();
        let page = c.list(req).await.unwrap();
        pages += 1;
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4"]);
    assert_eq!(pages, 3);
    // The first page of 2 asks for 3 objects (n0..n2 sort first): it follows GCS's
    // nextPageToken until two videos and one more candidate are seen.
    assert!(fake.lock().lists >= 3);
    assert_eq!(fake.lock().jwt_grants, 1);

    let meta = c.stat("v1.mp4").await.unwrap();
    assert_eq!(meta.modified_ms, Some(1_796_090_400_123));
    let media = fake.lock().media;
    let metadata = fake.lock().metadata;
    let got = c
        .read_range_checked("v1.mp4", 10..20, &meta.version)
        .await
        .unwrap();
    assert_eq!(got, &fake_mp4(100, 1)[10..20]);
    assert_eq!(fake.lock().media - media, 1);
    assert_eq!(fake.lock().metadata, metadata, "x-goog-generation: no stat");

    let g2 = fake.put("m/v1.mp4", &fake_mp4(200, 9));
    match c.read_range_checked("v1.mp4", 10..20, &meta.version).await {
        Err(ConnectorError::Changed {
            expected, found, ..
        }) => {
            assert_eq!(expected, meta.version);
            assert_eq!(found, g2.to_string());
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    let err = c.read_range("v1.mp4", 500..600).await.expect_err("416");
    assert!(
        matches!(err, ConnectorError::RangeOutOfBounds { size, .. } if size == fake_mp4(200, 0).len() as u64),
        "{err:?}"
    );
    assert_eq!(fake.lock().jwt_grants, 1, "the token is cached");
}

/// A server that ignores `Range`: the asked bytes come back, the body stops being read once
/// they have arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gcs_ignoring_range_reads_only_what_it_needs() {
    let fake = FakeGcs::start().await;
    fake.lock().ignore_range = true;
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    fake.put("big.mp4", &data);
    let c = fake_connector(&fake, "", &[]);
    let stats = c.stats();
    assert_eq!(
        c.read_range("big.mp4", 100..200).await.unwrap(),
        &data[100..200]
    );
    assert_eq!(
        c.read_range("big.mp4", 50_000..50_010).await.unwrap(),
        &data[50_000..50_010]
    );
    let received = stats.media_bytes();
    assert!(received < 256 * 1024, "{received} bytes received");
    let err = c
        .read_range("big.mp4", 4_000_000..4_000_001)
        .await
        .expect_err("past end");
    assert!(
        matches!(err, ConnectorError::RangeOutOfBounds { .. }),
        "{err:?}"
    );
}

/// 503s are retried with backoff; a refused token is PermissionDenied; a missing bucket
/// NotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gcs_retries_and_errors() {
    let fake = FakeGcs::start().await;
    fake.put("a.mp4", b"0123456789");
    let c = fake_connector(&fake, "", &[]);
    fake.lock().fail_next = 2;
    assert_eq!(list_all(&c, None).await.unwrap().len(), 1);
    assert_eq!(c.stats().retries(), 2);
    fake.lock().fail_next = 10;
    let err = c.stat("a.mp4").await.expect_err("503s");
    assert!(matches!(err, ConnectorError::Unavailable { .. }), "{err:?}");
    fake.lock().fail_next = 0;

    let spec = SourceSpec::parse(&format!("gs://{}/", fake_gcs::BUCKET))
        .unwrap()
        .with_options([("endpoint", fake.url.as_str()), ("token", "wrong")]);
    let wrong = gcs::build(&spec).unwrap();
    let err = wrong.read_range("a.mp4", 0..4).await.expect_err("401");
    assert!(
        matches!(
            err,
            ConnectorError::PermissionDenied {
                connector: "gcs",
                ..
            }
        ),
        "{err:?}"
    );
    let spec = SourceSpec::parse("gs://nope/").unwrap().with_options([
        ("endpoint", fake.url.as_str()),
        ("token", fake_gcs::ACCESS_TOKEN),
    ]);
    let missing = gcs::build(&spec).unwrap();
    let err = missing.list(ListRequest::default()).await.expect_err("404");
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
}
