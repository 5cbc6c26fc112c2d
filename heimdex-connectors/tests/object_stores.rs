//! The object-store connectors against real emulators from the package registries, started by
//! the tests: S3 on moto (`moto_server`, PyPI `moto[server]`), Azure Blob on Azurite (npm
//! `azurite`) and HTTP/WebDAV on wsgidav (PyPI `wsgidav` + `cheroot`). `make deps` installs
//! them; a missing one fails its tests saying so (never a silent skip).
//!
//! Each test process starts at most one emulator of each kind (on a free port, killed when
//! the process ends) and every scenario uses a fresh bucket, container or folder, so
//! scenarios are independent and run in parallel (nextest: one process per test).
//!
//! Google Cloud Storage (its own JSON-API connector) runs against `gcp-storage-emulator` in
//! tests/gcs.rs.

#![cfg(all(feature = "s3", feature = "azure", feature = "http"))]

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use heimdex_connectors::object::{self, ObjectStoreConnector};
use heimdex_connectors::{ConnectorRegistry, RangeReader, SourceSpec};
use heimdex_core::Connector;
use heimdex_core::ConnectorError;
use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::connector::{ConnectorFixture, fake_mp4};
use heimdex_core::connector::{ListRequest, list_all};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

// ---------------------------------------------------------------------------------------
// Emulator processes (tests/support/emulators.rs)
// ---------------------------------------------------------------------------------------

#[path = "support/emulators.rs"]
mod emulators;
use emulators::{Emulator, free_port, missing, on_path, start, unique};

/// A minimal HTTP/1.1 request to 127.0.0.1:`port`; the status code and body.
fn raw_http(port: u16, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

// ---------------------------------------------------------------------------------------
// S3 on moto
// ---------------------------------------------------------------------------------------

fn moto() -> &'static Emulator {
    static MOTO: OnceLock<Emulator> = OnceLock::new();
    MOTO.get_or_init(|| {
        let bin =
            on_path("moto_server").unwrap_or_else(|| missing("moto_server (PyPI moto[server])"));
        start("moto", &bin, &["-H", "127.0.0.1", "-p", "{port}"], None)
    })
}

fn s3_spec(bucket: &str, prefix: &str) -> SourceSpec {
    let uri = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    SourceSpec::parse(&uri).unwrap().with_options([
        ("endpoint", format!("http://127.0.0.1:{}", moto().port)),
        ("allow_http", "true".into()),
        ("region", "us-east-1".into()),
        ("access_key_id", "test".into()),
        ("secret_access_key", "test".into()),
    ])
}

fn create_bucket(bucket: &str) {
    let (status, body) = raw_http(moto().port, "PUT", &format!("/{bucket}"), &[]);
    assert_eq!(status, 200, "create bucket {bucket}: {body}");
}

/// A fresh bucket with its connector (rooted at `prefix`) and a raw store to write with.
struct S3Bucket {
    connector: ObjectStoreConnector,
    raw: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3Bucket {
    fn new(prefix: &str) -> Self {
        let bucket = unique("hx");
        create_bucket(&bucket);
        let connector = object::s3::build(&s3_spec(&bucket, prefix)).expect("s3 connector");
        let raw = Arc::clone(connector.store());
        Self {
            connector,
            raw,
            prefix: prefix.to_owned(),
        }
    }
}

fn full(prefix: &str, key: &str) -> Path {
    if prefix.is_empty() {
        Path::parse(key).unwrap()
    } else {
        Path::parse(format!("{prefix}/{key}")).unwrap()
    }
}

#[async_trait]
impl ConnectorFixture for S3Bucket {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        self.raw
            .put(&full(&self.prefix, key), PutPayload::from(bytes.to_vec()))
            .await
            .expect("put");
    }
    async fn delete(&self, key: &str) {
        self.raw
            .delete(&full(&self.prefix, key))
            .await
            .expect("delete");
    }
    fn lists_by_content(&self) -> bool {
        false
    }
}

async fn s3_bucket() -> Fixture<S3Bucket> {
    Fixture::new(S3Bucket::new("videos/2024"))
}

async fn s3_whole_bucket() -> Fixture<S3Bucket> {
    Fixture::new(S3Bucket::new(""))
}

mod s3_prefixed {
    use super::*;
    heimdex_core::connector_conformance_tests!(s3_bucket);
}

mod s3_whole {
    use super::*;
    heimdex_core::connector_conformance_tests!(s3_whole_bucket);
}

// ---------------------------------------------------------------------------------------
// Azure Blob on Azurite
// ---------------------------------------------------------------------------------------

const AZ_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented by Microsoft).
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite() -> &'static Emulator {
    static AZURITE: OnceLock<Emulator> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let npm_prefix = std::env::var_os("HEIMDEX_NPM_PREFIX")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/heimdex-npm"))
            });
        let bin = npm_prefix
            .map(|p| p.join("node_modules/.bin/azurite-blob"))
            .filter(|p| p.is_file())
            .or_else(|| on_path("azurite-blob"))
            .unwrap_or_else(|| missing("azurite-blob (npm azurite)"));
        let dir = std::env::temp_dir().join(unique("heimdex-azurite"));
        std::fs::create_dir_all(&dir).unwrap();
        start(
            "azurite",
            &bin,
            &[
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "{port}",
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
            ],
            Some(&dir),
        )
    })
}

fn az_spec(container: &str, prefix: &str, key: &str) -> SourceSpec {
    SourceSpec::parse(&format!("az://{container}/{prefix}"))
        .unwrap()
        .with_options([
            ("account", AZ_ACCOUNT.to_owned()),
            ("access_key", key.to_owned()),
            (
                "endpoint",
                format!("http://127.0.0.1:{}/{AZ_ACCOUNT}", azurite().port),
            ),
            ("allow_http", "true".to_owned()),
        ])
}

/// Create a container with a Shared Key signed `PUT ?restype=container`.
fn create_container(container: &str) {
    let date = http_date(SystemTime::now());
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{container}\nrestype:container"
    );
    let key = b64::decode(AZ_KEY);
    let sig = b64::encode(&hmac_sha256(&key, to_sign.as_bytes()));
    let (status, body) = raw_http(
        azurite().port,
        "PUT",
        &format!("/{AZ_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.into()),
            ("Authorization", format!("SharedKey {AZ_ACCOUNT}:{sig}")),
        ],
    );
    assert_eq!(status, 201, "create container {container}: {body}");
}

struct AzContainer {
    connector: ObjectStoreConnector,
    raw: Arc<dyn ObjectStore>,
    prefix: String,
}

#[async_trait]
impl ConnectorFixture for AzContainer {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        self.raw
            .put(&full(&self.prefix, key), PutPayload::from(bytes.to_vec()))
            .await
            .expect("put");
    }
    async fn delete(&self, key: &str) {
        self.raw
            .delete(&full(&self.prefix, key))
            .await
            .expect("delete");
    }
    fn lists_by_content(&self) -> bool {
        false
    }
}

async fn az_container() -> Fixture<AzContainer> {
    let container = unique("hx");
    create_container(&container);
    let connector =
        object::azure::build(&az_spec(&container, "media", AZ_KEY)).expect("azure connector");
    let raw = Arc::clone(connector.store());
    Fixture::new(AzContainer {
        connector,
        raw,
        prefix: "media".into(),
    })
}

mod azure_blob {
    use super::*;
    heimdex_core::connector_conformance_tests!(az_container);
}

// ---------------------------------------------------------------------------------------
// HTTP / WebDAV on wsgidav
// ---------------------------------------------------------------------------------------

/// wsgidav serving a temp dir of this process; each scenario gets a sub-folder.
struct Dav {
    emulator: Emulator,
    root: PathBuf,
}

fn dav() -> &'static Dav {
    static DAV: OnceLock<Dav> = OnceLock::new();
    DAV.get_or_init(|| {
        let bin = on_path("wsgidav").unwrap_or_else(|| missing("wsgidav (PyPI wsgidav, cheroot)"));
        let root = std::env::temp_dir().join(unique("heimdex-dav"));
        std::fs::create_dir_all(&root).unwrap();
        let emulator = start(
            "wsgidav",
            &bin,
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--root",
                root.to_str().unwrap(),
                "--auth",
                "anonymous",
                "--no-config",
                "-q",
            ],
            Some(&root),
        );
        Dav { emulator, root }
    })
}

struct DavFolder {
    dir: PathBuf,
    connector: Arc<dyn Connector>,
}

impl DavFolder {
    fn new(options: &[(&str, &str)]) -> Self {
        let name = unique("f");
        let dir = dav().root.join(&name).join("my videos");
        std::fs::create_dir_all(&dir).unwrap();
        let spec = SourceSpec::parse(&format!(
            "http://127.0.0.1:{}/{name}/my%20videos/",
            dav().emulator.port
        ))
        .unwrap()
        .with_options(options.iter().copied());
        let connector = ConnectorRegistry::default()
            .build(&spec)
            .expect("http connector");
        Self { dir, connector }
    }
}

#[async_trait]
impl ConnectorFixture for DavFolder {
    fn connector(&self) -> &dyn Connector {
        self.connector.as_ref()
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A new file (new inode), so wsgidav's ETag changes even within one mtime second.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, bytes).unwrap();
    }
    async fn delete(&self, key: &str) {
        std::fs::remove_file(self.dir.join(key)).expect("delete");
    }
    fn lists_by_content(&self) -> bool {
        false
    }
}

async fn dav_folder() -> Fixture<DavFolder> {
    Fixture::new(DavFolder::new(&[]))
}

mod http_webdav {
    use super::*;
    heimdex_core::connector_conformance_tests!(dav_folder);
}

// ---------------------------------------------------------------------------------------
// Backend specifics
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_not_found() {
    let c = object::s3::build(&s3_spec(&unique("missing"), "p")).unwrap();
    let err = c.list(ListRequest::default()).await.expect_err("list");
    assert!(
        matches!(&err, ConnectorError::NotFound { key } if key.starts_with("s3://missing-")),
        "{err:?}"
    );
    let err = c.stat("a.mp4").await.expect_err("stat");
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
}

/// moto accepts any credentials unless IAM checks are on; they are enabled with an
/// environment variable for the whole server, so this test runs a moto of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_are_permission_denied() {
    let bin = on_path("moto_server").unwrap_or_else(|| missing("moto_server"));
    // INITIAL_NO_AUTH_ACTION_COUNT=0: every request is authenticated against moto's IAM,
    // which knows no keys yet.
    let emu = {
        // The variable is set on the child only (through env), not on this process.
        let wrapper = std::env::temp_dir().join(unique("heimdex-moto-auth"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nINITIAL_NO_AUTH_ACTION_COUNT=0 exec {} \"$@\"\n",
                bin.display()
            ),
        )
        .unwrap();
        let _ = Command::new("chmod").arg("+x").arg(&wrapper).status();
        let emu = start(
            "moto-auth",
            &wrapper,
            &["-H", "127.0.0.1", "-p", "{port}"],
            None,
        );
        let _ = std::fs::remove_file(&wrapper);
        emu
    };
    let spec = SourceSpec::parse("s3://some-bucket/p")
        .unwrap()
        .with_options([
            ("endpoint", format!("http://127.0.0.1:{}", emu.port)),
            ("allow_http", "true".into()),
            ("region", "us-east-1".into()),
            ("access_key_id", "AKIAWRONG".into()),
            ("secret_access_key", "wrong".into()),
        ]);
    let c = object::s3::build(&spec).unwrap();
    let err = c.list(ListRequest::default()).await.expect_err("list");
    assert!(
        matches!(
            err,
            ConnectorError::PermissionDenied {
                connector: "s3",
                ..
            }
        ),
        "{err:?}"
    );
    let err = c.read_range("a.mp4", 0..10).await.expect_err("read");
    assert!(
        matches!(err, ConnectorError::PermissionDenied { .. }),
        "{err:?}"
    );
}

/// Keys with spaces, `#`, `%`, `+` and non-ASCII letters list, stat and read as written, on S3,
/// Azure and WebDAV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_keys_round_trip() {
    let keys = ["a b/c#1.mp4", "100%/x+y.mov", "été/日本.mkv"];
    let s3 = S3Bucket::new("p q");
    let az = az_container().await;
    let dav = DavFolder::new(&[]);
    let fixtures: [&dyn ConnectorFixture; 3] = [&s3, az.backend(), &dav];
    for f in fixtures {
        for (i, k) in keys.iter().enumerate() {
            f.put(k, &fake_mp4(10 + i, i as u8)).await;
        }
        let all = list_all(f.connector(), None).await.unwrap();
        let mut want: Vec<&str> = keys.to_vec();
        want.sort();
        assert_eq!(all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), want);
        for (i, k) in keys.iter().enumerate() {
            let m = f.connector().stat(k).await.unwrap();
            assert_eq!(m.size, fake_mp4(10 + i, 0).len() as u64, "{k}");
            let got = f
                .connector()
                .read_range_checked(k, 0..12, &m.version)
                .await
                .unwrap();
            assert_eq!(got, &fake_mp4(10 + i, i as u8)[..12], "{k}");
        }
    }
}

/// Nothing listens at the endpoint: after the retries the options allow, `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_are_unavailable() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let retry = [("max_retries", "1"), ("retry_timeout", "2s")];
    let s3 = SourceSpec::parse("s3://b/p").unwrap().with_options(
        [
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "a"),
            ("secret_access_key", "s"),
        ]
        .into_iter()
        .chain(retry),
    );
    let http = SourceSpec::parse(&format!("{endpoint}/videos/"))
        .unwrap()
        .with_options(retry);
    let registry = ConnectorRegistry::default();
    for spec in [s3, http] {
        let c = registry.build(&spec).unwrap();
        let started = Instant::now();
        let err = c.list(ListRequest::default()).await.expect_err("list");
        assert!(
            matches!(err, ConnectorError::Unavailable { .. }),
            "{}: {err:?}",
            spec.uri()
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        let err = c.read_range("a.mp4", 0..1).await.expect_err("read");
        assert!(
            matches!(err, ConnectorError::Unavailable { .. }),
            "{}: {err:?}",
            spec.uri()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_missing_container_and_wrong_key() {
    let c = object::azure::build(&az_spec(&unique("missing"), "p", AZ_KEY)).unwrap();
    let err = c.list(ListRequest::default()).await.expect_err("list");
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");

    let container = unique("hx");
    create_container(&container);
    let good = object::azure::build(&az_spec(&container, "p", AZ_KEY)).unwrap();
    good.store()
        .put(
            &Path::parse("p/a.mp4").unwrap(),
            PutPayload::from_static(b"0123456789"),
        )
        .await
        .unwrap();
    assert_eq!(good.stat("a.mp4").await.unwrap().size, 10);
    let wrong_key = b64::encode(&[7u8; 64]);
    let bad = object::azure::build(&az_spec(&container, "p", &wrong_key)).unwrap();
    for err in [
        bad.list(ListRequest::default()).await.expect_err("list"),
        bad.stat("a.mp4").await.expect_err("stat"),
        bad.read_range("a.mp4", 0..4).await.expect_err("read"),
    ] {
        assert!(
            matches!(
                err,
                ConnectorError::PermissionDenied {
                    connector: "azure",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

fn sample(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEIMDEX_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples"));
    let p = dir.join(name);
    assert!(p.is_file(), "{} missing: run `make samples`", p.display());
    p
}

/// A RangeReader over S3 reads a real sample video exactly, seeking like a demuxer; a probe
/// of the head and the tail reads only a few blocks of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_range_reader_reads_a_real_video_exactly() {
    let bytes = std::fs::read(sample("bikes.mp4")).unwrap();
    let f = S3Bucket::new("clips");
    f.put("bikes.mp4", &bytes).await;
    let conn: Arc<dyn Connector> = Arc::new(f.connector.clone());
    let meta = conn.stat("bikes.mp4").await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let handle = tokio::runtime::Handle::current();
    let expected = bytes.clone();
    let (probe_bytes, probe_requests) = tokio::task::spawn_blocking(move || {
        // Probe-like: the first 64 KiB, then the last 64 KiB.
        let mut r = RangeReader::new(
            Arc::clone(&conn),
            "bikes.mp4",
            meta.size,
            64 * 1024,
            handle.clone(),
        )
        .with_version(meta.version.clone());
        let stats = r.stats();
        let mut head = vec![0u8; 64 * 1024];
        r.read_exact(&mut head).unwrap();
        assert_eq!(head, expected[..head.len()]);
        r.seek(SeekFrom::End(-64 * 1024)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, expected[expected.len() - tail.len()..]);
        let probe = (stats.bytes(), stats.request_count());

        // Everything, sequentially.
        let mut all = RangeReader::new(conn, "bikes.mp4", meta.size, 64 * 1024, handle)
            .with_version(meta.version);
        let mut got = Vec::new();
        all.read_to_end(&mut got).unwrap();
        assert!(got == expected, "whole file differs");
        probe
    })
    .await
    .unwrap();
    eprintln!(
        "probe-like read of a {} byte video over S3: {probe_bytes} bytes in {probe_requests} requests",
        bytes.len()
    );
    assert!(probe_bytes <= 3 * 64 * 1024, "{probe_bytes}");
}

/// Counts the requests a store sends: list requests and object GETs.
#[derive(Debug, Clone, Default)]
struct Counting {
    lists: Arc<AtomicU64>,
    gets: Arc<AtomicU64>,
    heads: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    counts: Counting,
}

impl HttpConnector for Counting {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService {
            inner,
            counts: self.clone(),
        }))
    }
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let query = req.uri().query().unwrap_or_default();
        let counter = match req.method().as_str() {
            "GET" if query.contains("list-type=2") => Some(&self.counts.lists),
            "GET" => Some(&self.counts.gets),
            "HEAD" => Some(&self.counts.heads),
            _ => None,
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.execute(req).await
    }
}

/// Listing 1,000 objects (plus 200 non-videos) is one list request and reads no content; a
/// second page resumes after the token with one more request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_1000_objects_is_one_request_and_reads_nothing() {
    let bucket = unique("hx");
    create_bucket(&bucket);
    let spec = s3_spec(&bucket, "many");
    let counts = Counting::default();
    let store = object::s3::builder(spec.authority(), spec.options())
        .unwrap()
        .with_http_connector(counts.clone())
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    // Write through a separate client so the counts are the connector's only.
    let writer = object::s3::build(&spec).unwrap();
    let body = PutPayload::from_static(b"\0\0\0\x18ftypisom");
    let names: Vec<String> = (0..1000)
        .map(|i| format!("many/d{}/clip{i:04}.mp4", i % 7))
        .chain((0..200).map(|i| format!("many/notes{i:03}.txt")))
        .collect();
    use futures::StreamExt;
    let puts: Vec<_> = futures::stream::iter(names.iter().map(|n| {
        let p = Path::parse(n).unwrap();
        let store = Arc::clone(writer.store());
        let body = body.clone();
        async move { store.put(&p, body).await }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    puts.into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("puts");

    // 1,200 keys are two S3 pages of 1,000: a full connector page of 1,000 ends with the
    // first S3 page, without fetching the second.
    let c = ObjectStoreConnector::new("s3", Arc::clone(&store), "many", spec.uri());
    let page = c.list(ListRequest::with_page_size(1000)).await.unwrap();
    assert_eq!(page.objects.len(), 1000);
    let mut keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let sorted = {
        let mut k = keys.clone();
        k.sort();
        k
    };
    assert_eq!(keys, sorted, "key order");
    keys.dedup();
    assert_eq!(keys.len(), 1000);
    let lists_first = counts.lists.load(Ordering::Relaxed);
    let mut req = ListRequest::with_page_size(1000);
    req.page_token = page.next_page_token.clone();
    let next = c.list(req).await.unwrap();
    let all = list_all(&c, None).await.unwrap();
    let lists_total = counts.lists.load(Ordering::Relaxed);
    eprintln!(
        "1,000 videos + 200 other objects: first page {lists_first} list request(s); \
         token page + full default listing {} more; object GETs {}, HEADs {}",
        lists_total - lists_first,
        counts.gets.load(Ordering::Relaxed),
        counts.heads.load(Ordering::Relaxed)
    );
    assert!(next.objects.is_empty() && next.next_page_token.is_none());
    assert_eq!(all.len(), 1000);
    assert_eq!(
        lists_first, 1,
        "one list request for the first 1,000 objects"
    );
    // The token page: 1 request (the 200 non-videos after the last video key, so an empty
    // last page); the default page size (5,000) lists all 1,200 keys in 2 requests.
    assert_eq!(lists_total, 4);
    assert_eq!(counts.gets.load(Ordering::Relaxed), 0, "no content read");
    assert_eq!(
        counts.heads.load(Ordering::Relaxed),
        0,
        "no HEAD while listing"
    );

    // Changes are listing only, too.
    let before = counts.lists.load(Ordering::Relaxed);
    let set = c.changes(None).await.unwrap();
    assert_eq!(set.changes.len(), 1000);
    assert_eq!(counts.lists.load(Ordering::Relaxed) - before, 2);
    assert_eq!(counts.gets.load(Ordering::Relaxed), 0);
}

/// An HTTP URI naming one file is a one-object source; a folder on a server without WebDAV
/// is NotSupported unless `files` names its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_single_file_and_named_files() {
    let f = DavFolder::new(&[]);
    let data = fake_mp4(5000, 3);
    f.put("a b.mp4", &data).await;
    f.put("c.mov", &fake_mp4(10, 1)).await;
    f.put("skip.txt", b"x").await;
    let folder_uri = {
        let rel = f.dir.strip_prefix(&dav().root).unwrap();
        let rel = rel.to_str().unwrap().replace(' ', "%20");
        format!("http://127.0.0.1:{}/{rel}/", dav().emulator.port)
    };
    let registry = ConnectorRegistry::default();

    let (_, one) = registry.open(&format!("{folder_uri}a%20b.mp4")).unwrap();
    let all = list_all(one.as_ref(), None).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a b.mp4"]
    );
    assert_eq!(all[0].size, data.len() as u64);
    assert_eq!(
        one.read_range("a b.mp4", 100..200).await.unwrap(),
        &data[100..200]
    );
    assert!(matches!(
        one.stat("c.mov").await,
        Err(ConnectorError::NotFound { .. })
    ));

    let named = registry
        .build(
            &SourceSpec::parse(&folder_uri)
                .unwrap()
                .with_option("files", "c.mov,a b.mp4,gone.mp4,skip.txt"),
        )
        .unwrap();
    let all = list_all(named.as_ref(), None).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a b.mp4", "c.mov"]
    );
    let v = all[1].version.clone();
    assert_eq!(
        named.read_range_checked("c.mov", 0..4, &v).await.unwrap(),
        &fake_mp4(10, 1)[..4]
    );
}

/// A plain web server (no PROPFIND): listing a folder is NotSupported, saying what to do;
/// one file still reads by range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_folder_without_webdav_is_not_supported() {
    let python = on_path("python3").unwrap_or_else(|| missing("python3"));
    let dir = std::env::temp_dir().join(unique("heimdex-plain-http"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.mp4"), fake_mp4(100, 1)).unwrap();
    let emu = start(
        "http.server",
        &python,
        &["-m", "http.server", "--bind", "127.0.0.1", "{port}"],
        Some(&dir),
    );
    let registry = ConnectorRegistry::default();
    let (_, folder) = registry
        .open(&format!("http://127.0.0.1:{}/", emu.port))
        .unwrap();
    let err = folder.list(ListRequest::default()).await.expect_err("list");
    match &err {
        ConnectorError::NotSupported {
            connector,
            operation,
        } => {
            assert_eq!(*connector, "http");
            assert!(operation.contains("PROPFIND") && operation.contains("files"));
        }
        other => panic!("expected NotSupported, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Small helpers: HMAC-SHA256, base64, HTTP dates (for Azurite's Shared Key)
// ---------------------------------------------------------------------------------------

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

mod b64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.len();
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= n {
                    out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        out
    }
}

/// `Tue, 01 Dec 2026 02:00:24 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[weekday as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn helpers_are_right() {
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(1_796_090_424)),
        "Tue, 01 Dec 2026 02:00:24 GMT"
    );
    assert_eq!(b64::encode(b"hello"), "aGVsbG8=");
    assert_eq!(b64::decode("aGVsbG8="), b"hello");
    assert_eq!(b64::decode(&b64::encode(&[0, 1, 2, 255])), [0, 1, 2, 255]);
    // RFC 4231 test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        mac.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
