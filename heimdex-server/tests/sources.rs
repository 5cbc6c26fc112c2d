//! Sources as the engine syncs them: files still being written wait until they are stable,
//! an object replaced while it is read is indexed again at its new version, stored sources
//! keep their settings (never their secrets) and when they were synced, the tenant directory,
//! and a job dead-lettered by the queue with no worker to record it is recorded as failed.

mod common;

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use heimdex_connectors::{ConnectorRegistry, LocalConnector, SourceSpec};
use heimdex_core::connector::{
    ChangeSet, Connector, ConnectorError, ListPage, ListRequest, ObjectMeta,
};
use heimdex_core::model::{JobState, TenantId};
use heimdex_core::queue::Queue;
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::queue::LocalQueue;
use heimdex_server::store::SqliteStore;

async fn engine(media: &Path, cfg: EngineConfig) -> (Engine, Arc<LocalQueue>) {
    let store = SqliteStore::in_memory().await.expect("store");
    let queue = Arc::new(LocalQueue::new(&store, cfg.retry).await.expect("queue"));
    std::fs::create_dir_all(media).expect("media dir");
    let media = object_store::local::LocalFileSystem::new_with_prefix(media).expect("media");
    let engine = Engine::new(
        cfg,
        Arc::new(store),
        queue.clone(),
        Arc::new(heimdex_index::EmbeddedIndex::in_memory()),
        Arc::new(media),
    );
    (engine, queue)
}

fn duration_of(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("duration")
}

/// A clip copied in slowly (eight pieces over two seconds) while the source is scanned and
/// its job runs: the job waits until the file stops changing and indexes the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_is_ingested_once_stable() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    let cfg = EngineConfig {
        settle: Duration::from_millis(600),
        ..EngineConfig::default()
    };
    let (engine, _) = engine(&tmp.path().join("media"), cfg).await;
    let t = TenantId::new("writer");

    let full = std::fs::read(samples.join("bikes.mp4")).expect("sample");
    let target = lib.join("arriving.mp4");
    let piece = full.len().div_ceil(8);
    let mut file = std::fs::File::create(&target).expect("create");
    file.write_all(&full[..piece]).expect("first piece");
    file.flush().expect("flush");
    let rest = full[piece..].to_vec();
    let writer = std::thread::spawn(move || {
        for chunk in rest.chunks(piece) {
            std::thread::sleep(Duration::from_millis(250));
            file.write_all(chunk).expect("piece");
            file.flush().expect("flush");
        }
    });

    let source = engine.add_local_path(&t, &lib).await.expect("source");
    let scan = engine.scan(&t, &source.id).await.expect("scan");
    assert_eq!(scan.new, 1, "the partial file is seen");
    let scanned = engine.assets(&t).await.expect("assets")[0].clone();
    assert!(
        scanned.size < full.len() as u64,
        "scanned mid-copy: {}",
        scanned.size
    );

    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    writer.join().expect("writer");
    assert_eq!((report.indexed, report.failed), (1, 0), "{report:?}");
    let asset = engine.assets(&t).await.expect("assets")[0].clone();
    assert_eq!(asset.size, full.len() as u64, "the whole file was indexed");
    let on_disk = LocalConnector::new(&lib)
        .expect("connector")
        .stat("arriving.mp4")
        .await
        .expect("stat");
    assert_eq!(asset.version, on_disk.version);
    let sidecar = engine.sidecar(&t, &asset.id).await.expect("sidecar");
    let want = duration_of(&samples.join("bikes.mp4"));
    let got = sidecar.duration_s().expect("duration");
    assert!((got - want).abs() < 0.2, "indexed {got} s of {want} s");
    assert_eq!(sidecar.asset.version, on_disk.version);
}

/// A local folder whose object is replaced by another clip right after the first block of
/// the first read: what an upload that overwrites a file mid-ingest looks like.
#[derive(Debug)]
struct SwapOnRead {
    inner: LocalConnector,
    dir: PathBuf,
    replacement: PathBuf,
    swapped: AtomicBool,
}

#[async_trait]
impl Connector for SwapOnRead {
    fn name(&self) -> &'static str {
        "swap"
    }
    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        self.inner.list(req).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError> {
        self.inner.stat(key).await
    }
    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        let bytes = self.inner.read_range(key, range).await?;
        if !self.swapped.swap(true, Ordering::SeqCst) {
            let path = self.dir.join(key);
            std::fs::remove_file(&path).expect("remove");
            std::fs::copy(&self.replacement, &path).expect("replace");
        }
        Ok(bytes)
    }
    async fn changes(&self, cursor: Option<&str>) -> Result<ChangeSet, ConnectorError> {
        self.inner.changes(cursor).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_replaced_mid_read_is_indexed_at_its_new_version() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4"]);
    // Old enough that the settle window does not delay it.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(lib.join("bikes.mp4"))
        .and_then(|f| f.set_modified(old))
        .expect("mtime");
    let cfg = EngineConfig {
        settle: Duration::ZERO,
        ..EngineConfig::default()
    };
    let (engine, _) = engine(&tmp.path().join("media"), cfg).await;
    let dir = lib.clone();
    let replacement = samples.join("carphone_pristine.mp4");
    let engine = engine.with_connector_registry(ConnectorRegistry::default().with(
        "swap",
        move |_: &SourceSpec| {
            Ok(Arc::new(SwapOnRead {
                inner: LocalConnector::new(&dir)?,
                dir: dir.clone(),
                replacement: replacement.clone(),
                swapped: AtomicBool::new(false),
            }) as Arc<dyn Connector>)
        },
    ));
    let t = TenantId::new("swapper");
    let source = engine
        .add_source_uri(&t, "swap://lib")
        .await
        .expect("source");
    engine.scan(&t, &source.id).await.expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!((report.indexed, report.failed), (1, 0), "{report:?}");
    assert_eq!(
        report.retried, 1,
        "the read of the replaced object failed once: {report:?}"
    );
    let jobs = engine.jobs(&t, None, 10).await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Completed);
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("changed while reading")),
        "the retry says why: {:?}",
        jobs[0].last_error
    );
    let asset = engine.assets(&t).await.expect("assets")[0].clone();
    let now = LocalConnector::new(&lib)
        .expect("connector")
        .stat("bikes.mp4")
        .await
        .expect("stat");
    assert_eq!(
        asset.version, now.version,
        "the new version is the one indexed"
    );
    let sidecar = engine.sidecar(&t, &asset.id).await.expect("sidecar");
    let want = duration_of(&samples.join("carphone_pristine.mp4"));
    let got = sidecar.duration_s().expect("duration");
    assert!(
        (got - want).abs() < 0.2,
        "indexed {got} s, the replacement has {want} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_sources_keep_settings_not_secrets_and_their_last_sync() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    let (engine, _) = engine(&tmp.path().join("media"), EngineConfig::default()).await;
    let t = TenantId::new("settings");
    let before = engine.store().tenants().await.expect("tenants");
    assert!(!before.contains(&t));
    let spec = SourceSpec::parse(lib.to_str().unwrap())
        .expect("spec")
        .with_options([("region", "eu-west-1"), ("secret_access_key", "hunter2")]);
    let source = engine.add_source_spec(&t, spec).await.expect("source");
    assert_eq!(source.synced_ms, None);
    assert_eq!(
        source.options.into_iter().collect::<Vec<_>>(),
        vec![("region".to_owned(), "eu-west-1".to_owned())]
    );
    let stored = engine.source(&t, &source.id).await.expect("stored");
    assert!(!format!("{stored:?}").contains("hunter2"), "{stored:?}");
    assert!(
        engine
            .store()
            .tenants()
            .await
            .expect("tenants")
            .contains(&t)
    );

    let started = heimdex_core::time_util::now_ms();
    engine.scan(&t, &source.id).await.expect("scan");
    let synced = engine
        .source(&t, &source.id)
        .await
        .expect("stored")
        .synced_ms;
    assert!(synced.is_some_and(|ms| ms >= started), "{synced:?}");
}

/// A worker that dies on the job's last attempt leaves the Store saying "processing" while
/// the queue dead-letters the message: the reconcile records the failure instead of
/// reviving the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_dead_lettered_without_its_worker_is_recorded_failed() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4"]);
    let mut cfg = EngineConfig::default();
    cfg.retry.max_attempts = 1;
    let (engine, queue) = engine(&tmp.path().join("media"), cfg).await;
    let t = TenantId::new("crashy");
    let source = engine.add_local_path(&t, &lib).await.expect("source");
    let scan = engine.scan(&t, &source.id).await.expect("scan");
    let job_id = scan.jobs[0].clone();

    // A worker takes the job, records it as processing, and is killed.
    let delivery = queue
        .reserve(Duration::from_millis(50))
        .await
        .expect("reserve")
        .expect("a message");
    assert_eq!(delivery.message.job, job_id);
    let mut job = engine
        .store()
        .get_job(&t, &job_id)
        .await
        .expect("get")
        .expect("job");
    job.state = JobState::Processing {
        stage: "decode".into(),
        percent: 40.0,
    };
    engine.store().update_job(&job).await.expect("processing");
    tokio::time::sleep(Duration::from_millis(120)).await;
    // The lease ran out on the last attempt: the queue dead-letters it.
    let stats = queue.stats().await.expect("stats");
    assert_eq!(stats.dead, 1, "{stats:?}");

    engine.reconcile(&t).await.expect("reconcile");
    let job = engine
        .store()
        .get_job(&t, &job_id)
        .await
        .expect("get")
        .expect("job");
    match &job.state {
        JobState::Failed { reason } => {
            assert!(reason.contains("gave up after 1 attempts"), "{reason}")
        }
        other => panic!("expected failed, got {other:?}"),
    }
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.ready, stats.delayed, stats.in_flight),
        (0, 0, 0),
        "not revived: {stats:?}"
    );
    let asset = engine.assets(&t).await.expect("assets")[0].clone();
    assert_eq!(asset.state, heimdex_core::model::AssetState::Failed);
    // A second reconcile finds nothing left to do.
    assert_eq!(engine.reconcile(&t).await.expect("again"), 0);
}
