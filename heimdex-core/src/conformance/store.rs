//! Conformance suite for the [`Store`] trait.
//!
//! A backend's test file invokes [`store_conformance_tests!`](crate::store_conformance_tests)
//! with a factory returning a [`Fixture`](super::Fixture) of the store; that expands to one
//! `#[tokio::test]` per scenario. Each scenario works in its own random tenant(s), so it
//! neither sees nor disturbs other scenarios or data already in the store, and the suite can
//! run against a shared database.
//!
//! Scenarios:
//! - [`sources`]: upsert, get, list by id, cursor update by upsert.
//! - [`assets_upsert_get`]: insert, full replace, get of a missing asset.
//! - [`assets_list_paging`]: by tenant / source / state, keyset paging with `after` + `limit`.
//! - [`delete_asset_cascades`]: jobs and segments go with the asset; returns whether it existed.
//! - [`jobs_create_get_list`]: newest first, filters by asset and state, limit.
//! - [`job_state_machine`]: legal and illegal transitions, unknown job.
//! - [`job_failure_persists`]: `Failed{reason}`, attempts and last_error round trip.
//! - [`job_state_json_round_trip`]: `Processing{stage, percent}` through serde and the store.
//! - [`segments_replace_list`]: replace, ordered by start, replace again, empty.
//! - [`counts`]: asset and job counts by state name.
//! - [`tenant_isolation`]: tenant B neither sees nor changes tenant A's rows.
//! - [`persons`]: upsert (insert, rename, move centroid), list by id, per tenant.
//! - [`persons_update_is_atomic`]: concurrent read-modify-writes lose no update and mint no
//!   id twice; `apply` sees only its tenant.

use std::collections::BTreeMap;

use crate::model::{
    Asset, AssetId, AssetState, Job, JobId, JobKind, JobState, Person, Segment, SegmentKind,
    SidecarRef, Source, SourceId, TenantId,
};
use crate::store::{AssetQuery, JobQuery, Store, StoreError};

/// The Store scenarios, in order. Adding a scenario is one line here.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_scenarios {
    ($mode:ident $arg:expr, $attrs:tt) => {
        $crate::__conformance_expand! { $mode store, $arg, $attrs;
            sources,
            tenant_directory,
            assets_upsert_get,
            assets_list_paging,
            delete_asset_cascades,
            jobs_create_get_list,
            job_state_machine,
            job_failure_persists,
            job_state_json_round_trip,
            segments_replace_list,
            counts,
            tenant_isolation,
            persons,
            persons_update_is_atomic,
        }
    };
}

/// One `#[tokio::test]` per Store scenario. The argument is a factory, called once per
/// scenario, returning a future of a [`Fixture`](crate::conformance::Fixture) whose backend
/// implements [`Store`](crate::store::Store) (a function name, or `async || ...`). Invoke it
/// inside a module named after the backend, so a failure reads `sqlite_file::counts`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__store_scenarios! { tests $make, [$(#[$meta])*] }
    };
}

/// Every scenario in order on one store, which may already hold other data (a store shared
/// by the whole run, as a server database would be). Panics on the first failure.
pub async fn run_all(store: &dyn Store) {
    crate::__store_scenarios! { run store, [] }
}

fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

fn tenant(name: &str) -> TenantId {
    super::unique_tenant("conf-store", name)
}

/// A source in `tenant`.
fn source(tenant: &TenantId, id: &str) -> Source {
    Source {
        tenant: tenant.clone(),
        id: SourceId::new(id),
        kind: "local".into(),
        uri: format!("/archive/{id}"),
        cursor: None,
        options: [("region".to_owned(), "eu-west-1".to_owned())].into(),
        synced_ms: None,
    }
}

/// A pending asset at `key` of `source`, with a derived id.
fn asset(tenant: &TenantId, source: &str, key: &str) -> Asset {
    let source = SourceId::new(source);
    Asset {
        tenant: tenant.clone(),
        id: AssetId::derive(tenant, &source, key),
        source,
        key: key.into(),
        version: "v1".into(),
        size: 1_234_567,
        state: AssetState::Pending,
        sidecar: None,
        duration_s: None,
        updated_ms: 1_700_000_000_000,
    }
}

/// A pending job for `asset` created at `created_ms`.
fn job(tenant: &TenantId, asset: &AssetId, created_ms: i64) -> Job {
    Job {
        tenant: tenant.clone(),
        id: JobId::random(),
        kind: JobKind::IndexAsset,
        asset: asset.clone(),
        asset_version: "v1".into(),
        state: JobState::Pending,
        attempts: 0,
        last_error: None,
        created_ms,
        updated_ms: created_ms,
    }
}

fn segment(id: &str, kind: SegmentKind, start_s: f64, end_s: f64) -> Segment {
    Segment {
        id: id.into(),
        kind,
        start_s,
        end_s,
        text: format!("text of {id}"),
        thumbnail: Some(format!("thumbs/{id}.jpg")),
        tags: vec!["a".into(), format!("tag-{id}")],
    }
}

fn processing(stage: &str, percent: f32) -> JobState {
    JobState::Processing {
        stage: stage.into(),
        percent,
    }
}

fn ids(assets: &[Asset]) -> Vec<AssetId> {
    assets.iter().map(|a| a.id.clone()).collect()
}

fn count(map: &BTreeMap<String, u64>, state: &str) -> u64 {
    map.get(state).copied().unwrap_or(0)
}

/// Upsert, get, list (by id) and cursor update of sources.
pub async fn sources(store: &dyn Store) {
    let t = tenant("sources");
    assert!(
        ok(
            "get missing",
            store.get_source(&t, &SourceId::new("nope")).await
        )
        .is_none()
    );
    assert!(ok("list empty", store.list_sources(&t).await).is_empty());

    let b = source(&t, "b-drive");
    let a = source(&t, "a-folder");
    ok("upsert b", store.upsert_source(&b).await);
    ok("upsert a", store.upsert_source(&a).await);
    assert_eq!(
        ok("get a", store.get_source(&t, &a.id).await),
        Some(a.clone())
    );

    let list = ok("list", store.list_sources(&t).await);
    assert_eq!(list, vec![a.clone(), b.clone()], "sources are listed by id");

    // Cursor update = upsert of the full record.
    let mut a2 = a.clone();
    a2.cursor = Some("cursor-42".into());
    a2.uri = "/archive/moved".into();
    a2.synced_ms = Some(1_700_000_000_123);
    a2.options
        .insert("endpoint".into(), "http://127.0.0.1:9000".into());
    ok("upsert a2", store.upsert_source(&a2).await);
    assert_eq!(
        ok("get a2", store.get_source(&t, &a.id).await),
        Some(a2.clone())
    );
    // And back to no cursor.
    ok("upsert a", store.upsert_source(&a).await);
    assert_eq!(
        ok("get a again", store.get_source(&t, &a.id).await),
        Some(a)
    );
    assert_eq!(ok("list", store.list_sources(&t).await).len(), 2);
}

/// A tenant appears in the directory once it registers a source, once however many sources
/// it has; a tenant with nothing registered does not.
pub async fn tenant_directory(store: &dyn Store) {
    let t = tenant("dir");
    let idle = tenant("idle");
    assert!(
        !ok("tenants", store.tenants().await).contains(&t),
        "a new tenant is not listed before it registers a source"
    );
    ok("upsert a", store.upsert_source(&source(&t, "a")).await);
    ok("upsert b", store.upsert_source(&source(&t, "b")).await);
    let all = ok("tenants", store.tenants().await);
    assert_eq!(
        all.iter().filter(|x| **x == t).count(),
        1,
        "listed once: {all:?}"
    );
    assert!(
        !all.contains(&idle),
        "a tenant without sources is not listed"
    );
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "tenants are listed in id order");
}

/// Insert, full replace and get of assets.
pub async fn assets_upsert_get(store: &dyn Store) {
    let t = tenant("assets");
    let a = asset(&t, "src", "videos/sunset.mp4");
    assert!(ok("get missing", store.get_asset(&t, &a.id).await).is_none());

    ok("insert", store.upsert_asset(&a).await);
    assert_eq!(ok("get", store.get_asset(&t, &a.id).await), Some(a.clone()));

    // Full replace: every mutable field changes, optional fields become Some.
    let mut b = a.clone();
    b.version = "v2".into();
    b.size = 9_876_543_210; // more than 32 bits
    b.state = AssetState::Indexed;
    b.sidecar = Some(SidecarRef {
        location: "sidecars/abc.json".into(),
        schema_version: 1,
        asset_version: "v2".into(),
    });
    b.duration_s = Some(3_723.25);
    b.updated_ms = 1_700_000_999_000;
    ok("replace", store.upsert_asset(&b).await);
    assert_eq!(
        ok("get replaced", store.get_asset(&t, &a.id).await),
        Some(b.clone())
    );

    // And back: optional fields become None again.
    let mut c = b.clone();
    c.state = AssetState::Failed;
    c.sidecar = None;
    c.duration_s = None;
    ok("replace again", store.upsert_asset(&c).await);
    assert_eq!(
        ok("get replaced again", store.get_asset(&t, &a.id).await),
        Some(c)
    );
    let all = ok(
        "list",
        store.list_assets(&AssetQuery::tenant(t.clone())).await,
    );
    assert_eq!(all.len(), 1, "replace must not duplicate");
}

/// Listing by tenant, source and state, in id order, with keyset paging.
pub async fn assets_list_paging(store: &dyn Store) {
    let t = tenant("paging");
    let mut all = Vec::new();
    for i in 0..7 {
        let src = if i % 2 == 0 { "even" } else { "odd" };
        let mut a = asset(&t, src, &format!("clip-{i}.mov"));
        a.state = if i % 3 == 0 {
            AssetState::Indexed
        } else {
            AssetState::Pending
        };
        ok("upsert", store.upsert_asset(&a).await);
        all.push(a);
    }
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));

    let listed = ok(
        "list all",
        store.list_assets(&AssetQuery::tenant(t.clone())).await,
    );
    assert_eq!(listed, sorted, "all assets, full records, by id");

    // By source.
    let mut q = AssetQuery::tenant(t.clone());
    q.source = Some(SourceId::new("even"));
    let even = ok("list even", store.list_assets(&q).await);
    let want: Vec<_> = sorted
        .iter()
        .filter(|a| a.source.as_str() == "even")
        .cloned()
        .collect();
    assert_eq!(even, want, "filter by source");
    assert_eq!(even.len(), 4);

    // By state.
    let mut q = AssetQuery::tenant(t.clone());
    q.state = Some(AssetState::Indexed);
    let indexed = ok("list indexed", store.list_assets(&q).await);
    let want: Vec<_> = sorted
        .iter()
        .filter(|a| a.state == AssetState::Indexed)
        .cloned()
        .collect();
    assert_eq!(indexed, want, "filter by state");
    assert_eq!(indexed.len(), 3);

    // By source and state.
    let mut q = AssetQuery::tenant(t.clone());
    q.source = Some(SourceId::new("odd"));
    q.state = Some(AssetState::Pending);
    let got = ok("list odd pending", store.list_assets(&q).await);
    let want: Vec<_> = sorted
        .iter()
        .filter(|a| a.source.as_str() == "odd" && a.state == AssetState::Pending)
        .cloned()
        .collect();
    assert_eq!(got, want, "filter by source and state");

    // Keyset paging, 3 at a time.
    let mut pages = Vec::new();
    let mut after: Option<AssetId> = None;
    loop {
        let mut q = AssetQuery::tenant(t.clone());
        q.after = after.clone();
        q.limit = Some(3);
        let page = ok("page", store.list_assets(&q).await);
        assert!(page.len() <= 3, "page larger than limit");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|a| a.id.clone());
        pages.push(ids(&page));
        assert!(pages.len() <= 4, "paging does not terminate");
    }
    assert_eq!(pages.len(), 3, "7 assets in pages of 3");
    assert_eq!(
        pages.concat(),
        ids(&sorted),
        "pages concatenate to the full list"
    );

    // Paging combined with a filter.
    let mut q = AssetQuery::tenant(t.clone());
    q.source = Some(SourceId::new("even"));
    q.after = Some(even[1].id.clone());
    q.limit = Some(1);
    assert_eq!(
        ok("filtered page", store.list_assets(&q).await),
        vec![even[2].clone()]
    );

    // `after` past the end.
    let mut q = AssetQuery::tenant(t.clone());
    q.after = sorted.last().map(|a| a.id.clone());
    assert!(ok("after last", store.list_assets(&q).await).is_empty());
}

/// Deleting an asset removes its jobs and segments and says whether it existed.
pub async fn delete_asset_cascades(store: &dyn Store) {
    let t = tenant("delete");
    let gone = asset(&t, "src", "gone.mp4");
    let kept = asset(&t, "src", "kept.mp4");
    ok("upsert gone", store.upsert_asset(&gone).await);
    ok("upsert kept", store.upsert_asset(&kept).await);
    let j_gone = job(&t, &gone.id, 1_000);
    let j_kept = job(&t, &kept.id, 2_000);
    ok("job gone", store.create_job(&j_gone).await);
    ok("job kept", store.create_job(&j_kept).await);
    let segs = vec![segment("shot-1", SegmentKind::Shot, 0.0, 2.0)];
    ok(
        "segs gone",
        store.replace_segments(&t, &gone.id, &segs).await,
    );
    ok(
        "segs kept",
        store.replace_segments(&t, &kept.id, &segs).await,
    );

    assert!(
        ok("delete", store.delete_asset(&t, &gone.id).await),
        "existed"
    );
    assert!(ok("get deleted", store.get_asset(&t, &gone.id).await).is_none());
    assert!(ok("job of deleted", store.get_job(&t, &j_gone.id).await).is_none());
    assert!(
        ok(
            "segments of deleted",
            store.list_segments(&t, &gone.id).await
        )
        .is_empty()
    );
    let mut q = JobQuery::tenant(t.clone());
    q.asset = Some(gone.id.clone());
    assert!(ok("jobs of deleted", store.list_jobs(&q).await).is_empty());

    assert!(
        !ok("delete again", store.delete_asset(&t, &gone.id).await),
        "no longer exists"
    );
    assert!(
        !ok(
            "delete unknown",
            store.delete_asset(&t, &AssetId::new("unknown")).await
        ),
        "never existed"
    );

    // The other asset is untouched.
    assert_eq!(
        ok("get kept", store.get_asset(&t, &kept.id).await),
        Some(kept.clone())
    );
    assert_eq!(
        ok("job kept", store.get_job(&t, &j_kept.id).await),
        Some(j_kept)
    );
    assert_eq!(
        ok("segs kept", store.list_segments(&t, &kept.id).await),
        segs
    );
}

/// Create, get and list jobs: newest first, filters, limit.
pub async fn jobs_create_get_list(store: &dyn Store) {
    let t = tenant("jobs");
    let a = asset(&t, "src", "a.mp4");
    let b = asset(&t, "src", "b.mp4");
    ok("upsert a", store.upsert_asset(&a).await);
    ok("upsert b", store.upsert_asset(&b).await);
    assert!(ok("get missing", store.get_job(&t, &JobId::random()).await).is_none());
    assert!(
        ok(
            "list empty",
            store.list_jobs(&JobQuery::tenant(t.clone())).await
        )
        .is_empty()
    );

    let j1 = job(&t, &a.id, 1_000);
    let j2 = job(&t, &b.id, 2_000);
    let mut j3 = job(&t, &a.id, 3_000);
    j3.asset_version = "v2".into();
    // Created out of order: listing must order by creation time, not insertion.
    ok("create j2", store.create_job(&j2).await);
    ok("create j3", store.create_job(&j3).await);
    ok("create j1", store.create_job(&j1).await);
    assert_eq!(
        ok("get j3", store.get_job(&t, &j3.id).await),
        Some(j3.clone())
    );

    let all = ok("list", store.list_jobs(&JobQuery::tenant(t.clone())).await);
    assert_eq!(
        all,
        vec![j3.clone(), j2.clone(), j1.clone()],
        "newest first"
    );

    let mut q = JobQuery::tenant(t.clone());
    q.asset = Some(a.id.clone());
    assert_eq!(
        ok("by asset", store.list_jobs(&q).await),
        vec![j3.clone(), j1.clone()]
    );

    let mut q = JobQuery::tenant(t.clone());
    q.limit = Some(2);
    assert_eq!(
        ok("limit", store.list_jobs(&q).await),
        vec![j3.clone(), j2.clone()]
    );

    // By state.
    let mut j2p = j2.clone();
    j2p.state = processing("probe", 5.0);
    j2p.attempts = 1;
    j2p.updated_ms = 2_500;
    ok("update j2", store.update_job(&j2p).await);
    let mut q = JobQuery::tenant(t.clone());
    q.state = Some("processing".into());
    assert_eq!(ok("by state", store.list_jobs(&q).await), vec![j2p.clone()]);
    let mut q = JobQuery::tenant(t.clone());
    q.state = Some("pending".into());
    assert_eq!(
        ok("pending", store.list_jobs(&q).await),
        vec![j3.clone(), j1.clone()]
    );
    let mut q = JobQuery::tenant(t.clone());
    q.state = Some("pending".into());
    q.asset = Some(b.id.clone());
    assert!(ok("pending of b", store.list_jobs(&q).await).is_empty());
}

/// `update_job` follows [`JobState::can_transition_to`].
pub async fn job_state_machine(store: &dyn Store) {
    let t = tenant("machine");
    let a = asset(&t, "src", "m.mp4");
    ok("upsert", store.upsert_asset(&a).await);
    let mut j = job(&t, &a.id, 10_000);
    ok("create", store.create_job(&j).await);

    // Pending -> Completed is illegal.
    let mut bad = j.clone();
    bad.state = JobState::Completed;
    let err = store.update_job(&bad).await;
    assert!(
        matches!(
            err,
            Err(StoreError::InvalidTransition {
                from: "pending",
                to: "completed",
                ..
            })
        ),
        "pending -> completed must be InvalidTransition, got {err:?}"
    );
    assert_eq!(
        ok("unchanged", store.get_job(&t, &j.id).await),
        Some(j.clone())
    );

    // Pending -> Processing -> Processing(progress) -> Completed.
    j.state = processing("probe", 0.0);
    j.attempts = 1;
    j.updated_ms = 10_001;
    ok("to processing", store.update_job(&j).await);
    assert_eq!(ok("get", store.get_job(&t, &j.id).await), Some(j.clone()));
    j.state = processing("asr", 62.5);
    j.updated_ms = 10_002;
    ok("progress", store.update_job(&j).await);
    assert_eq!(ok("get", store.get_job(&t, &j.id).await), Some(j.clone()));
    j.state = JobState::Completed;
    j.updated_ms = 10_003;
    ok("complete", store.update_job(&j).await);
    assert_eq!(ok("get", store.get_job(&t, &j.id).await), Some(j.clone()));

    // Completed -> Processing is illegal, and nothing changes.
    let mut bad = j.clone();
    bad.state = processing("again", 1.0);
    bad.attempts = 7;
    bad.last_error = Some("should not be stored".into());
    let err = store.update_job(&bad).await;
    assert!(
        matches!(
            err,
            Err(StoreError::InvalidTransition {
                from: "completed",
                to: "processing",
                ..
            })
        ),
        "completed -> processing must be InvalidTransition, got {err:?}"
    );
    assert_eq!(
        ok("unchanged", store.get_job(&t, &j.id).await),
        Some(j.clone())
    );

    // Retry path: Processing -> Pending is legal.
    let mut r = job(&t, &a.id, 11_000);
    ok("create r", store.create_job(&r).await);
    r.state = processing("shots", 10.0);
    r.attempts = 1;
    ok("r processing", store.update_job(&r).await);
    r.state = JobState::Pending;
    r.last_error = Some("worker lost".into());
    ok("r retry", store.update_job(&r).await);
    assert_eq!(ok("get r", store.get_job(&t, &r.id).await), Some(r));

    // Unknown job.
    let ghost = job(&t, &a.id, 12_000);
    let err = store.update_job(&ghost).await;
    assert!(
        matches!(err, Err(StoreError::NotFound { entity: "job", .. })),
        "unknown job must be NotFound, got {err:?}"
    );
    assert!(ok("ghost not created", store.get_job(&t, &ghost.id).await).is_none());
}

/// `Failed{reason}`, attempts and last_error are stored and read back.
pub async fn job_failure_persists(store: &dyn Store) {
    let t = tenant("failure");
    let a = asset(&t, "src", "f.mp4");
    ok("upsert", store.upsert_asset(&a).await);
    let mut j = job(&t, &a.id, 20_000);
    ok("create", store.create_job(&j).await);
    j.state = processing("asr", 40.0);
    j.attempts = 1;
    ok("processing", store.update_job(&j).await);
    j.state = JobState::Pending;
    j.last_error = Some("asr: out of memory".into());
    ok("retry", store.update_job(&j).await);
    j.state = processing("asr", 40.0);
    j.attempts = 2;
    ok("processing 2", store.update_job(&j).await);
    j.state = JobState::Failed {
        reason: "asr: out of memory (attempt 2 of 2) — giving up ✗".into(),
    };
    j.last_error = Some("asr: out of memory again".into());
    j.updated_ms = 20_500;
    ok("fail", store.update_job(&j).await);
    let got = ok("get", store.get_job(&t, &j.id).await);
    assert_eq!(got, Some(j.clone()));

    // Pending -> Failed directly (e.g. the asset vanished) is legal too.
    let mut k = job(&t, &a.id, 21_000);
    ok("create k", store.create_job(&k).await);
    k.state = JobState::Failed {
        reason: "asset deleted at source".into(),
    };
    ok("k failed", store.update_job(&k).await);
    assert_eq!(ok("get k", store.get_job(&t, &k.id).await), Some(k));
}

/// `JobState::Processing{stage, percent}` survives serde JSON and the store unchanged.
pub async fn job_state_json_round_trip(store: &dyn Store) {
    let state = processing("vision: CLIP \"ViT-B/32\"", 33.333_332);
    let json = match serde_json::to_value(&state) {
        Ok(v) => v,
        Err(e) => panic!("serialize JobState: {e}"),
    };
    assert_eq!(json["state"], "processing");
    assert_eq!(json["stage"], "vision: CLIP \"ViT-B/32\"");
    let back: JobState = match serde_json::from_value(json) {
        Ok(v) => v,
        Err(e) => panic!("deserialize JobState: {e}"),
    };
    assert_eq!(back, state);

    let t = tenant("json");
    let a = asset(&t, "src", "j.mp4");
    ok("upsert", store.upsert_asset(&a).await);
    let mut j = job(&t, &a.id, 30_000);
    ok("create", store.create_job(&j).await);
    for (stage, percent) in [
        ("", 0.0f32),
        ("probe", 0.1),
        (" ünïcödé ", 99.99),
        ("done", 100.0),
    ] {
        j.state = processing(stage, percent);
        ok("update", store.update_job(&j).await);
        let got = ok("get", store.get_job(&t, &j.id).await);
        let Some(got) = got else {
            panic!("job vanished")
        };
        match &got.state {
            JobState::Processing {
                stage: s,
                percent: p,
            } => {
                assert_eq!(s, stage);
                assert_eq!(
                    p.to_bits(),
                    percent.to_bits(),
                    "percent must round-trip exactly"
                );
            }
            other => panic!("expected processing, got {other:?}"),
        }
        // The whole job also round-trips through JSON.
        let text = match serde_json::to_string(&got) {
            Ok(v) => v,
            Err(e) => panic!("serialize Job: {e}"),
        };
        let parsed: Job = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("deserialize Job: {e}"),
        };
        assert_eq!(parsed, got);
    }
}

/// Segments are replaced as a whole and listed by start time.
pub async fn segments_replace_list(store: &dyn Store) {
    let t = tenant("segments");
    let a = asset(&t, "src", "s.mp4");
    ok("upsert", store.upsert_asset(&a).await);
    assert!(ok("empty", store.list_segments(&t, &a.id).await).is_empty());

    let mut no_thumb = segment("asset", SegmentKind::Asset, 0.0, 120.0);
    no_thumb.thumbnail = None;
    no_thumb.tags = Vec::new();
    let first = vec![
        segment("shot-3", SegmentKind::Shot, 20.5, 31.0),
        segment("tr-1", SegmentKind::Transcript, 1.25, 9.0),
        no_thumb.clone(),
        segment("ocr-1", SegmentKind::Ocr, 5.0, 6.0),
        segment("x-1", SegmentKind::Custom, 100.0, 101.5),
    ];
    ok("replace", store.replace_segments(&t, &a.id, &first).await);
    let got = ok("list", store.list_segments(&t, &a.id).await);
    let starts: Vec<f64> = got.iter().map(|s| s.start_s).collect();
    assert_eq!(starts, vec![0.0, 1.25, 5.0, 20.5, 100.0], "by start time");
    let mut want = first.clone();
    want.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    assert_eq!(got, want, "segments round-trip exactly");

    // Replace with a different set: old ones are gone.
    let second = vec![
        segment("shot-1", SegmentKind::Shot, 3.0, 4.0),
        segment("shot-0", SegmentKind::Shot, 0.0, 3.0),
    ];
    ok(
        "replace 2",
        store.replace_segments(&t, &a.id, &second).await,
    );
    let got = ok("list 2", store.list_segments(&t, &a.id).await);
    assert_eq!(got, vec![second[1].clone(), second[0].clone()]);

    // Replace with nothing.
    ok(
        "replace empty",
        store.replace_segments(&t, &a.id, &[]).await,
    );
    assert!(ok("list empty", store.list_segments(&t, &a.id).await).is_empty());
}

/// Asset and job counts by state name.
pub async fn counts(store: &dyn Store) {
    let t = tenant("counts");
    let empty = ok("asset counts empty", store.asset_counts(&t).await);
    assert!(
        empty.values().all(|&n| n == 0),
        "fresh tenant has no assets: {empty:?}"
    );
    let empty = ok("job counts empty", store.job_counts(&t).await);
    assert!(
        empty.values().all(|&n| n == 0),
        "fresh tenant has no jobs: {empty:?}"
    );

    let states = [
        AssetState::Pending,
        AssetState::Pending,
        AssetState::Indexed,
        AssetState::Indexed,
        AssetState::Indexed,
        AssetState::Failed,
    ];
    let mut assets = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let mut a = asset(&t, "src", &format!("c{i}.mp4"));
        a.state = *s;
        ok("upsert", store.upsert_asset(&a).await);
        assets.push(a);
    }
    let ac = ok("asset counts", store.asset_counts(&t).await);
    assert_eq!(count(&ac, "pending"), 2, "{ac:?}");
    assert_eq!(count(&ac, "indexed"), 3, "{ac:?}");
    assert_eq!(count(&ac, "failed"), 1, "{ac:?}");
    assert_eq!(ac.values().sum::<u64>(), 6, "{ac:?}");

    // Jobs: 2 pending, 1 processing, 1 completed, 1 failed.
    let mut jobs = Vec::new();
    for (i, a) in assets.iter().take(5).enumerate() {
        let j = job(&t, &a.id, 40_000 + i as i64);
        ok("create", store.create_job(&j).await);
        jobs.push(j);
    }
    let mut p = jobs[2].clone();
    p.state = processing("shots", 50.0);
    ok("processing", store.update_job(&p).await);
    let mut c = jobs[3].clone();
    c.state = processing("shots", 50.0);
    ok("processing", store.update_job(&c).await);
    c.state = JobState::Completed;
    ok("completed", store.update_job(&c).await);
    let mut f = jobs[4].clone();
    f.state = JobState::Failed { reason: "x".into() };
    ok("failed", store.update_job(&f).await);
    let jc = ok("job counts", store.job_counts(&t).await);
    assert_eq!(count(&jc, "pending"), 2, "{jc:?}");
    assert_eq!(count(&jc, "processing"), 1, "{jc:?}");
    assert_eq!(count(&jc, "completed"), 1, "{jc:?}");
    assert_eq!(count(&jc, "failed"), 1, "{jc:?}");
    assert_eq!(jc.values().sum::<u64>(), 5, "{jc:?}");
}

/// Tenant B sees none of tenant A's rows and cannot change or delete them.
pub async fn tenant_isolation(store: &dyn Store) {
    let ta = tenant("iso-a");
    let tb = tenant("iso-b");

    // Tenant A's world. Ids are shared on purpose: a source and an asset id used by both.
    let src_a = source(&ta, "shared-source");
    ok("source a", store.upsert_source(&src_a).await);
    let mut asset_a = asset(&ta, "shared-source", "x.mp4");
    asset_a.id = AssetId::new("shared-asset-id");
    ok("asset a", store.upsert_asset(&asset_a).await);
    let job_a = job(&ta, &asset_a.id, 50_000);
    ok("job a", store.create_job(&job_a).await);
    let segs_a = vec![segment("shot-1", SegmentKind::Shot, 0.0, 1.0)];
    ok(
        "segs a",
        store.replace_segments(&ta, &asset_a.id, &segs_a).await,
    );

    // B sees nothing.
    assert!(ok("b get source", store.get_source(&tb, &src_a.id).await).is_none());
    assert!(ok("b list sources", store.list_sources(&tb).await).is_empty());
    assert!(ok("b get asset", store.get_asset(&tb, &asset_a.id).await).is_none());
    assert!(
        ok(
            "b list assets",
            store.list_assets(&AssetQuery::tenant(tb.clone())).await
        )
        .is_empty()
    );
    let mut q = AssetQuery::tenant(tb.clone());
    q.source = Some(src_a.id.clone());
    assert!(ok("b list assets by source", store.list_assets(&q).await).is_empty());
    assert!(ok("b get job", store.get_job(&tb, &job_a.id).await).is_none());
    assert!(
        ok(
            "b list jobs",
            store.list_jobs(&JobQuery::tenant(tb.clone())).await
        )
        .is_empty()
    );
    let mut q = JobQuery::tenant(tb.clone());
    q.asset = Some(asset_a.id.clone());
    assert!(ok("b list jobs by asset", store.list_jobs(&q).await).is_empty());
    assert!(ok("b segments", store.list_segments(&tb, &asset_a.id).await).is_empty());
    let ac = ok("b asset counts", store.asset_counts(&tb).await);
    assert!(ac.values().all(|&n| n == 0), "{ac:?}");
    let jc = ok("b job counts", store.job_counts(&tb).await);
    assert!(jc.values().all(|&n| n == 0), "{jc:?}");

    // B cannot update A's job (it does not exist for B).
    let mut hijack = job_a.clone();
    hijack.tenant = tb.clone();
    hijack.state = processing("evil", 1.0);
    let err = store.update_job(&hijack).await;
    assert!(
        matches!(err, Err(StoreError::NotFound { entity: "job", .. })),
        "B updating A's job must be NotFound, got {err:?}"
    );
    assert_eq!(
        ok("a job unchanged", store.get_job(&ta, &job_a.id).await),
        Some(job_a.clone())
    );

    // B cannot delete A's asset.
    assert!(
        !ok("b delete", store.delete_asset(&tb, &asset_a.id).await),
        "B must not see A's asset"
    );
    assert_eq!(
        ok("a asset kept", store.get_asset(&ta, &asset_a.id).await),
        Some(asset_a.clone())
    );
    assert_eq!(
        ok("a job kept", store.get_job(&ta, &job_a.id).await),
        Some(job_a.clone())
    );

    // B replacing segments of the same asset id touches only B's rows.
    ok(
        "b replace segs",
        store.replace_segments(&tb, &asset_a.id, &[]).await,
    );
    assert_eq!(
        ok("a segs kept", store.list_segments(&ta, &asset_a.id).await),
        segs_a
    );

    // B may use the same ids for its own rows without touching A's.
    let mut src_b = source(&tb, "shared-source");
    src_b.uri = "s3://b-bucket".into();
    ok("source b", store.upsert_source(&src_b).await);
    let mut asset_b = asset_a.clone();
    asset_b.tenant = tb.clone();
    asset_b.key = "b-owned.mp4".into();
    ok("asset b", store.upsert_asset(&asset_b).await);
    let mut job_b = job_a.clone();
    job_b.tenant = tb.clone();
    ok("job b (same id)", store.create_job(&job_b).await);
    assert_eq!(
        ok("a source kept", store.get_source(&ta, &src_a.id).await),
        Some(src_a.clone())
    );
    assert_eq!(
        ok("b source", store.get_source(&tb, &src_a.id).await),
        Some(src_b)
    );
    assert_eq!(
        ok("a asset kept", store.get_asset(&ta, &asset_a.id).await),
        Some(asset_a.clone())
    );
    assert_eq!(
        ok("b asset", store.get_asset(&tb, &asset_a.id).await),
        Some(asset_b)
    );

    // Deleting B's asset leaves A's asset, job and segments.
    let shared_id = asset_a.id.clone();
    assert!(ok(
        "b delete own",
        store.delete_asset(&tb, &shared_id).await
    ));
    assert!(ok("b job gone", store.get_job(&tb, &job_a.id).await).is_none());
    assert_eq!(
        ok("a asset kept", store.get_asset(&ta, &asset_a.id).await),
        Some(asset_a)
    );
    assert_eq!(
        ok("a job kept", store.get_job(&ta, &job_a.id).await),
        Some(job_a)
    );
    assert_eq!(
        ok("a segs kept", store.list_segments(&ta, &shared_id).await),
        segs_a
    );
}

/// Persons: insert, update (name, centroid, count), list by id, isolated per tenant.
pub async fn persons(store: &dyn Store) {
    let t = tenant("persons");
    let other = tenant("persons-other");
    let person = |id: &str, name: Option<&str>, c: Vec<f32>, faces: u64| Person {
        tenant: t.clone(),
        id: id.into(),
        name: name.map(str::to_owned),
        centroid: c,
        faces,
        updated_ms: 1_700_000_000_000,
    };
    assert!(store.list_persons(&t).await.expect("list").is_empty());
    store
        .upsert_person(&person("person-2", None, vec![0.5, -0.25], 1))
        .await
        .expect("insert");
    store
        .upsert_person(&person("person-1", None, vec![0.1, 0.2], 3))
        .await
        .expect("insert");
    let renamed = person("person-2", Some("Ada Lovelace"), vec![0.375, 0.125], 2);
    store.upsert_person(&renamed).await.expect("update");
    let all = store.list_persons(&t).await.expect("list");
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["person-1", "person-2"]
    );
    assert_eq!(all[1], renamed, "name, centroid and count replaced exactly");
    assert!(
        store.list_persons(&other).await.expect("list").is_empty(),
        "tenant isolation"
    );
}

/// [`Store::update_persons`] is one atomic read-modify-write: 16 concurrent calls that each
/// mint the next `person-N` id and add a face to a shared person end with 16 distinct new
/// persons and the shared count raised by exactly 16. `apply` sees only its tenant's persons.
pub async fn persons_update_is_atomic(store: &dyn Store) {
    let t = tenant("persons-atomic");
    let other = tenant("persons-atomic-other");
    let person = |tenant: &TenantId, id: &str, faces: u64| Person {
        tenant: tenant.clone(),
        id: id.into(),
        name: None,
        centroid: vec![0.0, 1.0],
        faces,
        updated_ms: 1,
    };
    ok(
        "seed",
        store.upsert_person(&person(&t, "person-0", 0)).await,
    );
    ok(
        "other",
        store.upsert_person(&person(&other, "person-9", 5)).await,
    );
    let calls = (0..16).map(|_| {
        let t = t.clone();
        async move {
            let apply = |current: &[Person]| {
                assert!(
                    current.iter().all(|p| p.tenant == t),
                    "apply sees another tenant's persons"
                );
                let next = current
                    .iter()
                    .filter_map(|p| p.id.strip_prefix("person-")?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
                    + 1;
                let mut shared = current
                    .iter()
                    .find(|p| p.id == "person-0")
                    .cloned()
                    .expect("shared person");
                shared.faces += 1;
                let mut minted = shared.clone();
                minted.id = format!("person-{next}");
                minted.faces = 1;
                vec![shared, minted]
            };
            ok("update_persons", store.update_persons(&t, &apply).await)
        }
    });
    let written = futures::future::join_all(calls).await;
    assert!(
        written.iter().all(|w| w.len() == 2),
        "returns what it wrote"
    );
    let all = ok("list", store.list_persons(&t).await);
    assert_eq!(all.len(), 17, "16 minted + the shared one: {all:?}");
    let ids: std::collections::BTreeSet<&str> = all.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 17, "no id minted twice");
    let shared = all.iter().find(|p| p.id == "person-0").expect("shared");
    assert_eq!(shared.faces, 16, "no increment lost");
    let others = ok("list other", store.list_persons(&other).await);
    assert_eq!(others.len(), 1, "the other tenant is untouched");
    assert_eq!(others[0].faces, 5);
    let nothing = ok(
        "no-op update",
        store.update_persons(&t, &|_| Vec::new()).await,
    );
    assert!(nothing.is_empty());
}
