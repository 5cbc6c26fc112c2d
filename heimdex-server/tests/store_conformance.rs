//! `SqliteStore` against the shared `Store` conformance suite, in memory and on a file, plus
//! persistence across reopening the file.

use heimdex_core::conformance::store as suite;
use heimdex_core::model::{Asset, AssetId, AssetState, SourceId, TenantId};
use heimdex_core::store::Store;
use heimdex_server::store::SqliteStore;

#[tokio::test]
async fn sqlite_in_memory_conformance() {
    let store = SqliteStore::in_memory().await.expect("in-memory store");
    suite::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("nested/dir/heimdex.db"))
        .await
        .expect("open file store");
    suite::run_all(&store).await;
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
