//! A job that holds the store's only connection across an await must not deadlock with its
//! own progress writes. `OneConnection` wraps the SQLite store in a one-permit semaphore (the
//! file store has a one-connection pool) and holds the permit for a while inside
//! `replace_segments`, as a slow transaction would; progress writes that wait for the permit
//! give up after a few seconds, as the pool's acquire timeout does. Before progress ran
//! beside the job (rather than in a select! arm that stopped polling the job), this failed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use heimdex_core::model::{
    Asset, AssetId, Job, JobId, Person, Segment, Source, SourceId, TenantId,
};
use heimdex_core::store::{AssetQuery, JobQuery, PersonsUpdate, Store, StoreError};
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::queue::LocalQueue;
use heimdex_server::store::SqliteStore;
use tokio::sync::Semaphore;

#[derive(Debug)]
struct OneConnection {
    inner: SqliteStore,
    permit: Semaphore,
}

impl OneConnection {
    async fn conn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StoreError> {
        tokio::time::timeout(Duration::from_secs(4), self.permit.acquire())
            .await
            .map_err(|_| StoreError::Unavailable {
                store: "one-connection",
                source: "timed out waiting for the connection".into(),
            })?
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[async_trait]
impl Store for OneConnection {
    async fn upsert_source(&self, s: &Source) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        self.inner.upsert_source(s).await
    }
    async fn get_source(&self, t: &TenantId, id: &SourceId) -> Result<Option<Source>, StoreError> {
        let _c = self.conn().await?;
        self.inner.get_source(t, id).await
    }
    async fn list_sources(&self, t: &TenantId) -> Result<Vec<Source>, StoreError> {
        let _c = self.conn().await?;
        self.inner.list_sources(t).await
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let _c = self.conn().await?;
        self.inner.tenants().await
    }
    async fn upsert_asset(&self, a: &Asset) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        self.inner.upsert_asset(a).await
    }
    async fn get_asset(&self, t: &TenantId, id: &AssetId) -> Result<Option<Asset>, StoreError> {
        let _c = self.conn().await?;
        self.inner.get_asset(t, id).await
    }
    async fn list_assets(&self, q: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let _c = self.conn().await?;
        self.inner.list_assets(q).await
    }
    async fn delete_asset(&self, t: &TenantId, id: &AssetId) -> Result<bool, StoreError> {
        let _c = self.conn().await?;
        self.inner.delete_asset(t, id).await
    }
    async fn create_job(&self, j: &Job) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        self.inner.create_job(j).await
    }
    async fn get_job(&self, t: &TenantId, id: &JobId) -> Result<Option<Job>, StoreError> {
        let _c = self.conn().await?;
        self.inner.get_job(t, id).await
    }
    async fn update_job(&self, j: &Job) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        self.inner.update_job(j).await
    }
    async fn list_jobs(&self, q: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let _c = self.conn().await?;
        self.inner.list_jobs(q).await
    }
    async fn replace_segments(
        &self,
        t: &TenantId,
        a: &AssetId,
        s: &[Segment],
    ) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        // A slow transaction: the connection is held across awaits for a while.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.inner.replace_segments(t, a, s).await
    }
    async fn list_segments(&self, t: &TenantId, a: &AssetId) -> Result<Vec<Segment>, StoreError> {
        let _c = self.conn().await?;
        self.inner.list_segments(t, a).await
    }
    async fn upsert_person(&self, p: &Person) -> Result<(), StoreError> {
        let _c = self.conn().await?;
        self.inner.upsert_person(p).await
    }
    async fn update_persons(
        &self,
        t: &TenantId,
        apply: &PersonsUpdate<'_>,
    ) -> Result<Vec<Person>, StoreError> {
        let _c = self.conn().await?;
        self.inner.update_persons(t, apply).await
    }
    async fn list_persons(&self, t: &TenantId) -> Result<Vec<Person>, StoreError> {
        let _c = self.conn().await?;
        self.inner.list_persons(t).await
    }
    async fn asset_counts(&self, t: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let _c = self.conn().await?;
        self.inner.asset_counts(t).await
    }
    async fn job_counts(&self, t: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let _c = self.conn().await?;
        self.inner.job_counts(t).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_writes_do_not_deadlock_with_a_job_holding_the_connection() {
    let samples = samples();
    let tmp = tempfile::tempdir().expect("tmp");
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    copy_samples(&samples, &lib, &["bikes.mp4"]);
    let sqlite = SqliteStore::in_memory().await.expect("store");
    let queue = LocalQueue::new(&sqlite, EngineConfig::default().retry)
        .await
        .expect("queue");
    let store = OneConnection {
        inner: sqlite,
        permit: Semaphore::new(1),
    };
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&media).expect("media");
    let engine = Engine::new(
        EngineConfig::default(),
        Arc::new(store),
        Arc::new(queue),
        Arc::new(heimdex_index::EmbeddedIndex::in_memory()),
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&media).expect("media")),
    );
    let t = TenantId::default_tenant();
    let src = engine.add_local_path(&t, &lib).await.expect("source");
    engine.scan(&t, &src.id).await.expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    assert_eq!(report.indexed, 1, "{report:?}");
    assert_eq!(report.retried, 0, "no progress write timed out: {report:?}");
}
