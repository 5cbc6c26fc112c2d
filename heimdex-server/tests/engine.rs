//! Engine behaviour through the library API: restarts, progress, retries, stage reuse.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::model::JobState;
use heimdex_core::queue::RetryPolicy;
use heimdex_core::sidecar::{CustomBlock, ExtractorInfo, TextSpan};
use heimdex_core::store::JobQuery;
use heimdex_server::engine::{
    Engine, EngineConfig, JobOutcome, ProgressEvent, ProgressSink, SilentProgress,
};

fn cfg() -> EngineConfig {
    EngineConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
        ..EngineConfig::default()
    }
}

/// Counts calls; fails the first `fail_first` of them; labels each keyframe.
#[derive(Debug)]
struct Counting {
    version: String,
    calls: AtomicU32,
    fail_first: u32,
}

impl Counting {
    fn new(version: &str, fail_first: u32) -> Arc<Self> {
        Arc::new(Self {
            version: version.into(),
            calls: AtomicU32::new(0),
            fail_first,
        })
    }
}

impl Extractor for Counting {
    fn info(&self) -> ExtractorInfo {
        ExtractorInfo {
            name: "test.counting".into(),
            version: self.version.clone(),
            model: None,
            params: None,
        }
    }
    fn needs(&self) -> Needs {
        Needs::keyframes()
    }
    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail_first {
            return Err(ExtractError::Failed(format!("transient failure {n}")));
        }
        assert!(
            !ctx.keyframes.is_empty(),
            "keyframes are handed to the stage"
        );
        let spans = ctx
            .keyframes
            .iter()
            .map(|k| TextSpan {
                start_s: k.time_s,
                end_s: k.time_s + 0.5,
                text: format!("zebracorn v{} {}x{}", self.version, k.width, k.height),
                tags: vec![],
            })
            .collect();
        Ok(StageData::Custom(CustomBlock {
            data: serde_json::json!({"n": n}),
            spans,
        }))
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressEvent>>);

impl ProgressSink for Recorder {
    fn event(&self, e: ProgressEvent) {
        self.0.lock().expect("lock").push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_no_job() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4", "carphone_pristine.mp4"]);
    let home = tmp.path().join("home");
    {
        let engine = Engine::open_embedded(&home, cfg(), None)
            .await
            .expect("open");
        let src = engine
            .add_local_path(&heimdex_core::TenantId::default_tenant(), &lib)
            .await
            .expect("source");
        let scan = engine
            .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
            .await
            .expect("scan");
        assert_eq!(scan.new, 2);
        // Dropped here, like a crash after queuing and before any work.
    }
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("reopen");
    engine
        .attach_stored_sources(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("attach");
    assert_eq!(
        engine.queue_depth().await.expect("depth"),
        2,
        "both jobs survived the restart"
    );
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 2);
    assert_eq!(engine.queue_depth().await.expect("depth"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_by_stage_and_percent() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    copy_samples(&samples, tmp.path(), &["bigbuckbunny.mp4"]);
    let engine = Engine::open_embedded(&tmp.path().join("home"), cfg(), None)
        .await
        .expect("open");
    let src = engine
        .add_local_path(
            &heimdex_core::TenantId::default_tenant(),
            &tmp.path().join("bigbuckbunny.mp4"),
        )
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    let rec = Arc::new(Recorder::default());
    engine.run_until_idle(rec.clone()).await.expect("run");
    let events = rec.0.lock().expect("lock").clone();
    let stages: Vec<(String, f32)> = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Stage { stage, percent, .. } => Some((stage.clone(), *percent)),
            _ => None,
        })
        .collect();
    for want in ["probe", "decode", "write", "index"] {
        assert!(
            stages.iter().any(|(s, _)| s == want),
            "stage {want} reported: {stages:?}"
        );
    }
    assert!(
        stages.windows(2).all(|w| w[1].1 >= w[0].1),
        "percent never goes back: {stages:?}"
    );
    assert_eq!(stages.last().map(|s| s.1), Some(100.0));
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::Finished {
            outcome: JobOutcome::Indexed { .. },
            ..
        })
    ));
    let jobs = engine
        .store()
        .list_jobs(&JobQuery::tenant(heimdex_core::TenantId::default_tenant()))
        .await
        .expect("jobs");
    assert_eq!(jobs[0].state, JobState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_and_persistent_ones_end_failed_with_reason() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    copy_samples(&samples, tmp.path(), &["carphone_pristine.mp4"]);
    let file = tmp.path().join("carphone_pristine.mp4");

    let flaky = Counting::new("1", 1);
    let engine = Engine::open_embedded(&tmp.path().join("home1"), cfg(), None)
        .await
        .expect("open")
        .with_extractor(flaky.clone());
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!((report.retried, report.indexed), (1, 1), "{report:?}");
    let jobs = engine
        .store()
        .list_jobs(&JobQuery::tenant(heimdex_core::TenantId::default_tenant()))
        .await
        .expect("jobs");
    assert_eq!(jobs[0].state, JobState::Completed);
    assert_eq!(jobs[0].attempts, 2);
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("transient failure 1"))
    );

    let broken = Counting::new("1", u32::MAX);
    let engine = Engine::open_embedded(&tmp.path().join("home2"), cfg(), None)
        .await
        .expect("open")
        .with_extractor(broken.clone());
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!((report.retried, report.failed), (2, 1), "{report:?}");
    assert_eq!(broken.calls.load(Ordering::SeqCst), 3);
    let status = engine
        .status(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("status");
    assert_eq!(status.failures.len(), 1);
    let reason = &status.failures[0].reason;
    assert!(
        reason.contains("test.counting") && reason.contains("gave up after 3 attempts"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_stage_output_is_searchable_and_reused_until_its_identity_changes() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    copy_samples(&samples, tmp.path(), &["bikes.mp4"]);
    let file = tmp.path().join("bikes.mp4");
    let home = tmp.path().join("home");

    let v1 = Counting::new("1", 0);
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("open")
        .with_extractor(v1.clone());
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(v1.calls.load(Ordering::SeqCst), 1);
    let req = heimdex_core::SearchRequest::new(heimdex_core::TenantId::default_tenant())
        .with_text("zebracorn");
    let moments = engine.search(&req).await.expect("search");
    assert!(!moments.is_empty(), "custom spans are searchable");
    // The version-1 text is findable now, so its absence after the v2 run below means
    // the stale documents were replaced, not that the query never matched.
    let v1_req = heimdex_core::SearchRequest::new(heimdex_core::TenantId::default_tenant())
        .with_text("\"zebracorn v1\"");
    assert!(
        !engine.search(&v1_req).await.expect("search").is_empty(),
        "the v1 output is searchable before the stage changes"
    );
    assert!(
        moments[0]
            .snippet
            .as_deref()
            .is_some_and(|s| s.contains("[zebracorn]"))
    );
    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("sidecar");
    assert_valid_sidecar(
        &sidecar_validator(),
        &serde_json::to_value(&sidecar).expect("json"),
    );
    drop(engine);

    // Same identity: a forced re-run of the job reuses the stored stage (no call).
    let again = Counting::new("1", 0);
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("open")
        .with_extractor(again.clone());
    engine
        .attach_stored_sources(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("attach");
    let asset = engine
        .asset_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("asset");
    engine
        .reindex_asset(&heimdex_core::TenantId::default_tenant(), &asset.id)
        .await
        .expect("requeue");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 1);
    assert_eq!(
        again.calls.load(Ordering::SeqCst),
        0,
        "unchanged stage is reused"
    );
    drop(engine);

    // New version of the stage: only it re-runs; its new output replaces the old.
    let v2 = Counting::new("2", 0);
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("open")
        .with_extractor(v2.clone());
    engine
        .attach_stored_sources(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("attach");
    engine
        .reindex_asset(&heimdex_core::TenantId::default_tenant(), &asset.id)
        .await
        .expect("requeue");
    engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(v2.calls.load(Ordering::SeqCst), 1);
    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("sidecar");
    assert_eq!(sidecar.extensions["test.counting"].extractor.version, "2");
    let req = heimdex_core::SearchRequest::new(heimdex_core::TenantId::default_tenant())
        .with_text("\"zebracorn v2\"");
    assert!(!engine.search(&req).await.expect("search").is_empty());
    assert!(
        engine.search(&v1_req).await.expect("search").is_empty(),
        "no stale documents"
    );
}

/// A stage that records calls, optionally fails its first call, and depends on others.
#[derive(Debug)]
struct Recording {
    name: String,
    version: String,
    after: Vec<String>,
    calls: AtomicU32,
    fail_first: u32,
}

impl Recording {
    fn new(name: &str, version: &str, after: &[&str], fail_first: u32) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            version: version.into(),
            after: after.iter().map(|s| (*s).to_owned()).collect(),
            calls: AtomicU32::new(0),
            fail_first,
        })
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Extractor for Recording {
    fn info(&self) -> ExtractorInfo {
        ExtractorInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            model: None,
            params: None,
        }
    }
    fn needs(&self) -> Needs {
        let mut n = Needs::keyframes();
        n.after = self.after.clone();
        n
    }
    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail_first {
            return Err(ExtractError::Failed(format!(
                "{} failed on call {n}",
                self.name
            )));
        }
        // Record what the stages it waits for produced, proving ordering.
        let seen: Vec<String> = self
            .after
            .iter()
            .filter_map(|a| {
                ctx.sidecar
                    .extensions
                    .get(a)
                    .map(|b| format!("{a}@{}", b.extractor.version))
            })
            .collect();
        Ok(StageData::Custom(CustomBlock {
            data: serde_json::json!({ "seen": seen }),
            spans: vec![TextSpan {
                start_s: 0.0,
                end_s: 1.0,
                text: format!("{} {}", self.name, self.version),
                tags: vec![],
            }],
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_resume_from_completed_stages_and_dependents_rerun_when_inputs_change() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    copy_samples(&samples, tmp.path(), &["carphone_pristine.mp4"]);
    let file = tmp.path().join("carphone_pristine.mp4");
    let home = tmp.path().join("home");

    // a: independent; b: fails once; c waits for a; d independent.
    let a = Recording::new("stage.a", "1", &[], 0);
    let b = Recording::new("stage.b", "1", &[], 1);
    let c = Recording::new("stage.c", "1", &["stage.a"], 0);
    let d = Recording::new("stage.d", "1", &[], 0);
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("open")
        .with_extractor(c.clone())
        .with_extractor(a.clone())
        .with_extractor(b.clone())
        .with_extractor(d.clone());
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!((report.retried, report.indexed), (1, 1), "{report:?}");
    // b failed on attempt 1 while a and d (same level) completed; the retry resumed from them.
    assert_eq!(
        (a.calls(), b.calls(), d.calls()),
        (1, 2, 1),
        "completed stages are not re-run"
    );
    // c ran after a (level 2), and only once.
    assert_eq!(c.calls(), 1);
    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("sidecar");
    assert_eq!(
        sidecar.extensions["stage.c"].data.data["seen"],
        serde_json::json!(["stage.a@1"])
    );
    let asset = engine
        .asset_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("asset");
    drop(engine);

    // Change a's version: a and its dependent c re-run; b and d are reused.
    let a2 = Recording::new("stage.a", "2", &[], 0);
    let (b2, c2, d2) = (
        Recording::new("stage.b", "1", &[], 0),
        Recording::new("stage.c", "1", &["stage.a"], 0),
        Recording::new("stage.d", "1", &[], 0),
    );
    let engine = Engine::open_embedded(&home, cfg(), None)
        .await
        .expect("open")
        .with_extractor(a2.clone())
        .with_extractor(b2.clone())
        .with_extractor(c2.clone())
        .with_extractor(d2.clone());
    engine
        .attach_stored_sources(&heimdex_core::TenantId::default_tenant())
        .await
        .expect("attach");
    engine
        .reindex_asset(&heimdex_core::TenantId::default_tenant(), &asset.id)
        .await
        .expect("requeue");
    engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(
        (a2.calls(), b2.calls(), c2.calls(), d2.calls()),
        (1, 0, 1, 0)
    );
    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), &file)
        .await
        .expect("sidecar");
    assert_eq!(
        sidecar.extensions["stage.c"].data.data["seen"],
        serde_json::json!(["stage.a@2"])
    );
}
