//! Two tenants through the library API on one set of backends (one store, one queue, one
//! index, one media store), as the server will run them: each sees only its own assets,
//! jobs, persons, documents and search hits, and a queue message is always processed for the
//! tenant it names.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use heimdex_core::SearchRequest;
use heimdex_core::model::{JobId, Person, TenantId};
use heimdex_core::queue::QueueMessage;
use heimdex_core::store::JobQuery;
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::queue::LocalQueue;
use heimdex_server::store::SqliteStore;

async fn shared_engine(media: &std::path::Path) -> Engine {
    let store = SqliteStore::in_memory().await.expect("store");
    let queue = LocalQueue::new(&store, EngineConfig::default().retry)
        .await
        .expect("queue");
    let index = heimdex_index::EmbeddedIndex::in_memory();
    std::fs::create_dir_all(media).expect("media dir");
    let media = object_store::local::LocalFileSystem::new_with_prefix(media).expect("media");
    Engine::new(
        EngineConfig::default(),
        Arc::new(store),
        Arc::new(queue),
        Arc::new(index),
        Arc::new(media),
    )
}

fn ids<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    items.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_see_only_their_own() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib_a = tmp.path().join("a");
    let lib_b = tmp.path().join("b");
    std::fs::create_dir_all(&lib_a).expect("mkdir");
    std::fs::create_dir_all(&lib_b).expect("mkdir");
    copy_samples(&samples, &lib_a, &["bikes.mp4"]);
    std::fs::copy(samples.join("bikes.mp4"), lib_a.join("ampersand.mp4")).expect("copy");
    std::fs::copy(
        samples.join("carphone_pristine.mp4"),
        lib_b.join("bluebird.mp4"),
    )
    .expect("copy");
    // The same folder registered by both tenants: separate sources, assets and media.
    copy_samples(&samples, &lib_b, &["bikes.mp4"]);
    let engine = shared_engine(&tmp.path().join("media")).await;
    let a = TenantId::new("tenant-a");
    let b = TenantId::new("tenant-b");

    let src_a = engine.add_local_path(&a, &lib_a).await.expect("source a");
    let src_b = engine.add_local_path(&b, &lib_b).await.expect("source b");
    engine.scan(&a, &src_a.id).await.expect("scan a");
    engine.scan(&b, &src_b.id).await.expect("scan b");
    // One worker pool serves both tenants, each job for the tenant its message names.
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 4, "{report:?}");

    let assets_a = engine.assets(&a).await.expect("assets a");
    let assets_b = engine.assets(&b).await.expect("assets b");
    assert_eq!(
        ids(assets_a.iter().map(|x| x.key.as_str())),
        ids(["ampersand.mp4", "bikes.mp4"])
    );
    assert_eq!(
        ids(assets_b.iter().map(|x| x.key.as_str())),
        ids(["bikes.mp4", "bluebird.mp4"])
    );
    assert!(assets_a.iter().all(|x| x.tenant == a));
    assert!(assets_b.iter().all(|x| x.tenant == b));
    // The same key in both tenants is two assets with two sidecars.
    let bikes_a = assets_a
        .iter()
        .find(|x| x.key == "bikes.mp4")
        .expect("a bikes");
    let bikes_b = assets_b
        .iter()
        .find(|x| x.key == "bikes.mp4")
        .expect("b bikes");
    assert_ne!(bikes_a.id, bikes_b.id);
    assert_eq!(
        engine
            .sidecar(&a, &bikes_a.id)
            .await
            .expect("sidecar")
            .asset
            .tenant,
        "tenant-a"
    );
    assert!(
        engine.sidecar(&b, &bikes_a.id).await.is_err(),
        "tenant B cannot read tenant A's sidecar by id"
    );
    assert!(
        std::fs::read_dir(tmp.path().join("media/tenant-a/thumbs"))
            .expect("a thumbs")
            .count()
            == 2
    );

    // Search hits and documents.
    let hits = |t: &TenantId, q: &str| {
        let engine = &engine;
        let req = SearchRequest::new(t.clone()).with_text(q).with_limit(20);
        async move { engine.search(&req).await.expect("search") }
    };
    assert!(!hits(&a, "ampersand").await.is_empty());
    assert!(
        hits(&b, "ampersand").await.is_empty(),
        "B never finds A's file"
    );
    assert!(
        hits(&a, "bluebird").await.is_empty(),
        "A never finds B's file"
    );
    for m in hits(&b, "bikes").await {
        assert!(m.path.starts_with(lib_b.to_str().expect("utf8")), "{m:?}");
    }
    let status_a = engine.status(&a).await.expect("status a");
    let status_b = engine.status(&b).await.expect("status b");
    assert!(status_a.index_documents > 0 && status_b.index_documents > 0);
    assert_eq!(status_a.assets.get("indexed"), Some(&2));
    assert_eq!(status_b.assets.get("indexed"), Some(&2));

    // Persons and jobs.
    let person = Person {
        tenant: a.clone(),
        id: "person-1".into(),
        name: Some("Ada".into()),
        centroid: vec![0.0; 4],
        faces: 1,
        updated_ms: 1,
    };
    engine.store().upsert_person(&person).await.expect("person");
    assert_eq!(engine.persons(&a).await.expect("persons a").len(), 1);
    assert!(engine.persons(&b).await.expect("persons b").is_empty());
    assert!(
        engine.name_person(&b, "person-1", "Mallory").await.is_err(),
        "B cannot rename A's person"
    );
    assert_eq!(
        engine.persons(&a).await.expect("persons a")[0]
            .name
            .as_deref(),
        Some("Ada")
    );
    let jobs_a = engine
        .store()
        .list_jobs(&JobQuery::tenant(a.clone()))
        .await
        .expect("jobs a");
    assert_eq!(jobs_a.len(), 2);
    assert!(jobs_a.iter().all(|j| j.tenant == a));

    // A message of tenant B naming a job id of tenant A is processed as B's: B has no such
    // job, so it is acknowledged and nothing of A's changes.
    let before = engine
        .store()
        .get_job(&a, &jobs_a[0].id)
        .await
        .expect("get");
    engine
        .queue()
        .enqueue(&QueueMessage {
            tenant: b.clone(),
            job: jobs_a[0].id.clone(),
        })
        .await
        .expect("enqueue");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.skipped, 1, "{report:?}");
    assert_eq!(report.indexed, 0, "{report:?}");
    let after = engine
        .store()
        .get_job(&a, &jobs_a[0].id)
        .await
        .expect("get");
    assert_eq!(before, after, "A's job untouched by B's message");
    assert!(
        engine
            .store()
            .get_job(&b, &JobId::new(jobs_a[0].id.to_string()))
            .await
            .expect("get")
            .is_none()
    );

    // Removing B's copy of bikes leaves A's.
    engine.remove_asset(&b, &bikes_b.id).await.expect("remove");
    assert!(engine.sidecar(&a, &bikes_a.id).await.is_ok());
    assert!(!hits(&a, "bikes").await.is_empty());
    assert!(engine.check(&a, None).await.expect("check a").is_clean());
    assert!(engine.check(&b, None).await.expect("check b").is_clean());
}
