//! `SqliteStore` against the shared `Store` conformance suite, in memory and on a file (one
//! test per scenario: `sqlite_in_memory::counts`, `sqlite_file::counts`, ...), plus
//! persistence across reopening the file.

use heimdex_core::conformance::Fixture;
use heimdex_core::model::{Asset, AssetId, AssetState, SourceId, TenantId};
use heimdex_core::store::Store;
use heimdex_server::store::SqliteStore;

async fn in_memory_store() -> Fixture<SqliteStore> {
    Fixture::new(SqliteStore::in_memory().await.expect("in-memory store"))
}

/// One file store shared by nothing else; the scenarios would also pass on a shared one
/// (each works in its own random tenant).
async fn file_store() -> Fixture<SqliteStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("nested/dir/heimdex.db"))
        .await
        .expect("open file store");
    Fixture::new(store).keep(dir)
}

mod sqlite_in_memory {
    use super::*;
    heimdex_core::store_conformance_tests!(in_memory_store);
}

mod sqlite_file {
    use super::*;
    heimdex_core::store_conformance_tests!(file_store);
}

/// All scenarios on one file store that already holds rows of another tenant and of
/// earlier scenarios: the suite must not assume an empty store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_shared_by_all_scenarios() {
    let fixture = file_store().await;
    let store = fixture.backend();
    let other = TenantId::new("someone-else");
    let source = SourceId::new("folder");
    let asset = Asset {
        tenant: other.clone(),
        id: AssetId::derive(&other, &source, "x.mp4"),
        source,
        key: "x.mp4".into(),
        version: "v1".into(),
        size: 1,
        state: AssetState::Pending,
        sidecar: None,
        duration_s: None,
        updated_ms: 1,
    };
    store.upsert_asset(&asset).await.expect("upsert");
    heimdex_core::conformance::store::run_all(store).await;
    heimdex_core::conformance::store::run_all(store).await;
    assert_eq!(
        store.get_asset(&other, &asset.id).await.expect("get"),
        Some(asset),
        "the other tenant's row is untouched"
    );
}

#[tokio::test]
async fn sqlite_file_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("heimdex.db");
    let tenant = TenantId::default_tenant();
    let source = SourceId::new("folder");
    let asset = Asset {
        tenant: tenant.clone(),
        id: AssetId::derive(&tenant, &source, "a.mp4"),
        source,
        key: "a.mp4".into(),
        version: "v1".into(),
        size: 42,
        state: AssetState::Indexed,
        sidecar: None,
        duration_s: Some(12.5),
        updated_ms: 1,
    };
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.upsert_asset(&asset).await.expect("upsert");
        store.close().await;
    }
    // Opening again runs the migrations again: they must be a no-op.
    let store = SqliteStore::open(&path).await.expect("reopen");
    let got = store.get_asset(&tenant, &asset.id).await.expect("get");
    assert_eq!(got, Some(asset));
}

/// Two stores on one file (two processes, as far as SQLite can tell) assigning persons at
/// once: every update lands, no id is minted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_update_persons_is_atomic_across_connections() {
    use heimdex_core::model::Person;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("heimdex.db");
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    let tenant = TenantId::new("t");
    let mint = |current: &[Person]| {
        let next = current.len() + 1;
        vec![Person {
            tenant: TenantId::new("t"),
            id: format!("person-{next}"),
            name: None,
            centroid: vec![1.0],
            faces: 1,
            updated_ms: 1,
        }]
    };
    let run = |store: SqliteStore| {
        let tenant = tenant.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store.update_persons(&tenant, &mint).await.expect("update");
            }
        })
    };
    let (ra, rb) = tokio::join!(run(a.clone()), run(b.clone()));
    ra.expect("task a");
    rb.expect("task b");
    let persons = a.list_persons(&tenant).await.expect("list");
    assert_eq!(persons.len(), 40, "40 distinct persons, none overwritten");
}
