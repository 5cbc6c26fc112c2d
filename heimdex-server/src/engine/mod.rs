//! The engine: wires Connector → Store → Queue → pipeline → sidecar → Index, and answers
//! searches with moments.
//!
//! ```text
//! scan:   Connector::changes(cursor) ─▶ Store (asset, job) ─▶ Queue
//! worker: Queue::reserve ─▶ RangeReader (ranged reads) ─▶ heimdex_pipeline::analyze (decode once)
//!         ─▶ thumbnails + extractors ─▶ sidecar JSON (object store) ─▶ segments ─▶ Index
//! search: Index::search ─▶ merge hits into moments
//! ```
//!
//! The engine holds trait objects only, so the embedded default (SQLite, in-process queue,
//! in-process index, local files) and the server stack are the same code with different
//! backends.
//!
//! # Tenancy
//! Every entry point acts for an explicit tenant: a [`TenantId`] argument, or the tenant of
//! the [`SearchRequest`]. There is no "current tenant": a worker takes the tenant from the
//! job it reserved, connectors are keyed by (tenant, source), sidecars and thumbnails live
//! under a per-tenant prefix of the media store, and the Store and Index scope every call.
//! The embedded CLI acts for [`TenantId::default_tenant`].

mod error;
mod home;
mod persons;
mod query_batch;
mod query_cache;
mod repair;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use heimdex_core::connector::Change;
use heimdex_core::index::{SearchHit, SearchRequest};
use heimdex_core::model::{
    Asset, AssetId, AssetState, Job, JobId, JobKind, JobState, Source, SourceId, TenantId, hex,
};
use heimdex_core::moments::{Moment, merge_hits};
use heimdex_core::queue::{QueueMessage, RetryPolicy};
use heimdex_core::sidecar::Sidecar;
use heimdex_core::store::{AssetQuery, JobQuery};
use heimdex_core::{Connector, Extractor, Index, IndexError, QueryEncoder, Queue, Store};
use heimdex_pipeline::AnalyzeOptions;
use object_store::ObjectStore;
#[cfg(feature = "embedded")]
use object_store::local::LocalFileSystem;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

pub use error::EngineError;
pub use home::{HomeLock, LockHolder};
pub use persons::PERSON_THRESHOLD;
pub use repair::{CheckReport, ReindexReport, RepairReport};
pub use worker::{
    JobOutcome, ProgressEvent, ProgressSink, RunReport, Shutdown, SilentProgress, WorkerOptions,
};

#[cfg(feature = "embedded")]
use crate::queue::LocalQueue;
#[cfg(feature = "embedded")]
use crate::store::SqliteStore;

/// Settings of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Pipeline settings.
    pub analyze: AnalyzeOptions,
    /// Jobs processed concurrently by [`Engine::run_until_idle`].
    pub concurrency: usize,
    /// Lease of a reserved job; extended while the job runs.
    pub visibility: Duration,
    /// First block size of ranged reads (blocks grow to 8× on sequential reads). 256 KiB:
    /// probing a 25 MB 1080p MP4 from S3 reads 1.3 % of it with the index at the end (1 MiB
    /// read 7.6 %), and the whole pipeline reads 1.002× the file in 16 requests (`cargo bench
    /// --bench connectors`).
    pub read_block: u64,
    /// Retries of failed jobs (bad media fails at once, without retries).
    pub retry: RetryPolicy,
    /// Cosine similarity a hit found only by vector search must reach to be returned.
    pub min_vector_similarity: f32,
    /// How long an object must stay unchanged before it is ingested: a job looks at its
    /// object again before reading it, and an object whose version differs from the scan's,
    /// or that was modified less than this long ago, is looked at again after this pause,
    /// until two looks agree (a file still being copied or uploaded is not ingested half
    /// written). `HEIMDEX_SETTLE_MS`; zero turns the wait off.
    pub settle: Duration,
    /// Query vectors remembered (repeated queries, the next page of results, skip the
    /// encoder); 0 turns the cache off. `HEIMDEX_QUERY_CACHE`.
    pub query_cache: usize,
}

impl EngineConfig {
    /// `defaults` with the mid-shot sampling interval from `HEIMDEX_SAMPLE_INTERVAL_S`
    /// (seconds; `0` turns sampling off: on-screen text and visual tags read keyframes only).
    pub fn with_sampling_from_env(mut self) -> Result<Self, String> {
        if let Ok(v) = std::env::var("HEIMDEX_SAMPLE_INTERVAL_S") {
            let s: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "HEIMDEX_SAMPLE_INTERVAL_S={v}: expected seconds (0 turns sampling off)"
                    )
                })?;
            self.analyze.sample_interval_s = s;
        }
        Ok(self)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            analyze: AnalyzeOptions::default(),
            concurrency: 2,
            visibility: Duration::from_secs(120),
            read_block: 256 << 10,
            retry: RetryPolicy {
                max_attempts: 3,
                base_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(30),
            },
            min_vector_similarity: 0.35,
            settle: Duration::from_millis(1000),
            query_cache: 4096,
        }
    }
}

/// What a scan found and queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanReport {
    /// New assets queued.
    pub new: u64,
    /// Modified assets queued for re-indexing.
    pub modified: u64,
    /// Deleted assets removed from the index.
    pub deleted: u64,
    /// Jobs queued by this scan, in the order of the changes.
    pub jobs: Vec<JobId>,
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Assets by state.
    pub assets: BTreeMap<String, u64>,
    /// Jobs by state.
    pub jobs: BTreeMap<String, u64>,
    /// Documents in the index.
    pub index_documents: u64,
    /// Failed jobs with their asset key and reason, newest first.
    pub failures: Vec<Failure>,
}

/// A failed job, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// Asset key (path).
    pub key: String,
    /// Job id.
    pub job: String,
    /// Why it failed.
    pub reason: String,
    /// Deliveries made.
    pub attempts: u32,
}

/// The Heimdex engine.
#[derive(Debug)]
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) index: Arc<dyn Index>,
    /// Sidecars and thumbnails.
    pub(crate) media: Arc<dyn ObjectStore>,
    /// Local root of `media`, when it is a local directory (for printing thumbnail paths).
    pub(crate) media_root: Option<PathBuf>,
    pub(crate) extractors: Vec<Arc<dyn Extractor>>,
    /// Query encoders, each behind a batcher (concurrent queries share model calls).
    pub(crate) query_encoders: Vec<Arc<query_batch::QueryBatcher>>,
    /// Recently encoded query vectors.
    pub(crate) query_vectors: query_cache::QueryVectors,
    /// Connectors by (tenant, source).
    pub(crate) connectors: Mutex<BTreeMap<(TenantId, SourceId), Arc<dyn Connector>>>,
    /// Builds connectors from a source's kind and URI.
    pub(crate) registry: heimdex_connectors::ConnectorRegistry,
    /// The embedded home's writer lock, held while this engine lives (embedded writers only).
    pub(crate) _home_lock: Option<HomeLock>,
}

impl Engine {
    /// Assemble an engine from backends.
    pub fn new(
        cfg: EngineConfig,
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        index: Arc<dyn Index>,
        media: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            query_vectors: query_cache::QueryVectors::new(cfg.query_cache),
            cfg,
            store,
            queue,
            index,
            media,
            media_root: None,
            extractors: Vec::new(),
            query_encoders: Vec::new(),
            connectors: Mutex::new(BTreeMap::new()),
            registry: heimdex_connectors::ConnectorRegistry::default(),
            _home_lock: None,
        }
    }

    /// Use `registry` to build connectors for sources (the default knows local folders and
    /// files; add kinds to reach other storage).
    pub fn with_connector_registry(
        mut self,
        registry: heimdex_connectors::ConnectorRegistry,
    ) -> Self {
        self.registry = registry;
        self
    }

    /// The embedded default under `home`: `heimdex.db` (SQLite store + persisted queue),
    /// `index/` (embedded index), `media/` (sidecars and thumbnails).
    ///
    /// Without a lock the engine is a reader: it may search, show and report, and must not
    /// write the index (another process may be writing it; readers see its last flush). With
    /// the home's [`HomeLock`] it is the one writer: it loads the index after taking the
    /// lock, so it sees every document written before, and hands back jobs that a killed
    /// process left reserved.
    #[cfg(feature = "embedded")]
    pub async fn open_embedded(
        home: &Path,
        cfg: EngineConfig,
        lock: Option<HomeLock>,
    ) -> Result<Self, EngineError> {
        std::fs::create_dir_all(home).map_err(|e| EngineError::io(home, e))?;
        let store = SqliteStore::open(&home.join("heimdex.db")).await?;
        let queue = LocalQueue::new(&store, cfg.retry).await?;
        if lock.is_some() {
            let n = queue.reclaim_abandoned().await?;
            if n > 0 {
                tracing::info!(jobs = n, "handed back jobs of a process that stopped");
            }
        }
        let index_dir = home.join("index");
        let index =
            tokio::task::spawn_blocking(move || heimdex_index::EmbeddedIndex::open(index_dir))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))??;
        let media_dir = home.join("media");
        std::fs::create_dir_all(&media_dir).map_err(|e| EngineError::io(&media_dir, e))?;
        let media_dir = media_dir
            .canonicalize()
            .map_err(|e| EngineError::io(&media_dir, e))?;
        let media = LocalFileSystem::new_with_prefix(&media_dir).map_err(EngineError::media)?;
        let mut engine = Self::new(
            cfg,
            Arc::new(store),
            Arc::new(queue),
            Arc::new(index),
            Arc::new(media),
        );
        engine.media_root = Some(media_dir);
        engine._home_lock = lock;
        Ok(engine)
    }

    /// Print thumbnail paths under `root`, the local directory behind the media store.
    pub fn with_media_root(mut self, root: PathBuf) -> Self {
        self.media_root = Some(root);
        self
    }

    /// Hold `lock` (an embedded home's writer lock) for as long as this engine lives.
    pub fn with_home_lock(mut self, lock: HomeLock) -> Self {
        self._home_lock = Some(lock);
        self
    }

    /// Add an extractor that runs after the built-in media stages.
    pub fn with_extractor(mut self, extractor: Arc<dyn Extractor>) -> Self {
        self.extractors.push(extractor);
        self
    }

    /// Add a query encoder: keyword searches then also search its vector space (hybrid).
    pub fn with_query_encoder(mut self, encoder: Arc<dyn QueryEncoder>) -> Self {
        self.query_encoders
            .push(query_batch::QueryBatcher::new(encoder));
        self
    }

    /// The configured extractors, in configuration order.
    pub fn extractors(&self) -> &[Arc<dyn Extractor>] {
        &self.extractors
    }

    /// Query-vector cache: (hits, misses, vectors held).
    pub fn query_cache_stats(&self) -> (u64, u64, usize) {
        let (hits, misses) = self.query_vectors.stats();
        (hits, misses, self.query_vectors.len())
    }

    /// Query encoding: (encoder batches run, queries encoded in them), over every encoder.
    pub fn query_batch_stats(&self) -> (u64, u64) {
        self.query_encoders
            .iter()
            .map(|b| b.stats())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The index.
    pub fn index(&self) -> &Arc<dyn Index> {
        &self.index
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// Register a source of `tenant` backed by `connector` (idempotent) and remember the
    /// connector.
    pub async fn add_source(
        &self,
        tenant: &TenantId,
        id: SourceId,
        kind: &str,
        uri: &str,
        connector: Arc<dyn Connector>,
    ) -> Result<Source, EngineError> {
        let source = match self.store.get_source(tenant, &id).await? {
            Some(s) => s,
            None => {
                let s = Source {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    kind: kind.to_owned(),
                    uri: uri.to_owned(),
                    cursor: None,
                    options: Default::default(),
                    synced_ms: None,
                };
                self.store.upsert_source(&s).await?;
                s
            }
        };
        self.connectors
            .lock()
            .await
            .insert((tenant.clone(), id), connector);
        Ok(source)
    }

    /// Register a source of `tenant` from a URI (a local path or `file://` URI, or any
    /// scheme the registry has a connector for), building its connector with the registry.
    /// The source id is derived from the normalised URI, so adding the same place twice
    /// finds the same source.
    pub async fn add_source_uri(
        &self,
        tenant: &TenantId,
        uri: &str,
    ) -> Result<Source, EngineError> {
        let spec = heimdex_connectors::SourceSpec::parse(uri)?;
        self.add_source_spec(tenant, spec).await
    }

    /// Register a parsed source of `tenant` with its options. The connector is built with
    /// every option (credentials included); the source is stored with the options that are
    /// not secrets ([`SourceOptions::storable`](heimdex_connectors::SourceOptions::storable)),
    /// replacing those stored before when new ones are given, so it can be rebuilt after a
    /// restart with credentials from the environment.
    pub async fn add_source_spec(
        &self,
        tenant: &TenantId,
        spec: heimdex_connectors::SourceSpec,
    ) -> Result<Source, EngineError> {
        let connector = self.registry.build(&spec)?;
        let id = source_id(spec.kind(), spec.uri());
        let storable = spec.options().storable();
        let source = match self.store.get_source(tenant, &id).await? {
            Some(mut s) => {
                if !storable.is_empty() && s.options != storable {
                    s.options = storable;
                    self.store.upsert_source(&s).await?;
                }
                s
            }
            None => {
                let s = Source {
                    tenant: tenant.clone(),
                    id: id.clone(),
                    kind: spec.kind().to_owned(),
                    uri: spec.uri().to_owned(),
                    cursor: None,
                    options: storable,
                    synced_ms: None,
                };
                self.store.upsert_source(&s).await?;
                s
            }
        };
        self.connectors
            .lock()
            .await
            .insert((tenant.clone(), id), connector);
        Ok(source)
    }

    /// Register a local folder or single file as a source of `tenant`.
    pub async fn add_local_path(
        &self,
        tenant: &TenantId,
        path: &Path,
    ) -> Result<Source, EngineError> {
        let abs = path.canonicalize().map_err(|e| EngineError::io(path, e))?;
        self.add_source_uri(tenant, &abs.display().to_string())
            .await
    }

    /// Re-attach connectors for every stored source of `tenant` (after a restart). Sources
    /// whose place is gone (a deleted folder) are left detached: scanning them is an error.
    pub async fn attach_stored_sources(&self, tenant: &TenantId) -> Result<(), EngineError> {
        for s in self.store.list_sources(tenant).await? {
            let key = (tenant.clone(), s.id.clone());
            if self.connectors.lock().await.contains_key(&key) {
                continue;
            }
            let built = heimdex_connectors::SourceSpec::stored(&s.kind, &s.uri)
                .and_then(|spec| self.registry.build(&spec.with_options(s.options.clone())));
            match built {
                Ok(c) => {
                    self.connectors.lock().await.insert(key, c);
                }
                Err(e) => tracing::debug!(source = %s.id, error = %e, "source not attached"),
            }
        }
        Ok(())
    }

    pub(crate) async fn connector(
        &self,
        tenant: &TenantId,
        source: &SourceId,
    ) -> Result<Arc<dyn Connector>, EngineError> {
        if let Some(c) = self
            .connectors
            .lock()
            .await
            .get(&(tenant.clone(), source.clone()))
        {
            return Ok(Arc::clone(c));
        }
        self.attach_stored_sources(tenant).await?;
        self.connectors
            .lock()
            .await
            .get(&(tenant.clone(), source.clone()))
            .cloned()
            .ok_or_else(|| EngineError::UnknownSource(source.to_string()))
    }

    /// Detect changes in `source` since its last scan: queue new and modified assets, remove
    /// deleted ones from store, index and media. Unchanged assets cost nothing.
    pub async fn scan(
        &self,
        tenant: &TenantId,
        source: &SourceId,
    ) -> Result<ScanReport, EngineError> {
        let tenant = tenant.clone();
        let mut src = self
            .store
            .get_source(&tenant, source)
            .await?
            .ok_or_else(|| EngineError::UnknownSource(source.to_string()))?;
        let connector = self.connector(&tenant, source).await?;
        let changes = connector.changes(src.cursor.as_deref()).await?;
        let mut report = ScanReport::default();
        for change in &changes.changes {
            match change {
                Change::New(meta) | Change::Modified(meta) => {
                    if matches!(change, Change::New(_)) {
                        report.new += 1;
                    } else {
                        report.modified += 1;
                    }
                    let id = AssetId::derive(&tenant, source, &meta.key);
                    let previous = self.store.get_asset(&tenant, &id).await?;
                    let asset = Asset {
                        tenant: tenant.clone(),
                        id: id.clone(),
                        source: source.clone(),
                        key: meta.key.clone(),
                        version: meta.version.clone(),
                        size: meta.size,
                        state: AssetState::Pending,
                        sidecar: previous.as_ref().and_then(|p| p.sidecar.clone()),
                        duration_s: previous.as_ref().and_then(|p| p.duration_s),
                        updated_ms: heimdex_core::time_util::now_ms(),
                    };
                    self.store.upsert_asset(&asset).await?;
                    let job = self.enqueue_index_job(&asset).await?;
                    report.jobs.push(job);
                }
                Change::Deleted { key } => {
                    report.deleted += 1;
                    let id = AssetId::derive(&tenant, source, key);
                    self.remove_asset(&tenant, &id).await?;
                }
            }
        }
        src.cursor = Some(changes.cursor);
        src.synced_ms = Some(heimdex_core::time_util::now_ms());
        self.store.upsert_source(&src).await?;
        if report.deleted > 0 {
            self.index.flush().await?;
        }
        Ok(report)
    }

    /// Create a job in the Store, then enqueue it. The two steps are not one transaction;
    /// a crash between them leaves a pending job the queue does not know, which
    /// [`reconcile`](Self::reconcile) (run by every writer at start) enqueues again.
    async fn enqueue_index_job(&self, asset: &Asset) -> Result<JobId, EngineError> {
        let now = heimdex_core::time_util::now_ms();
        let job = Job {
            tenant: asset.tenant.clone(),
            id: JobId::random(),
            kind: JobKind::IndexAsset,
            asset: asset.id.clone(),
            asset_version: asset.version.clone(),
            state: JobState::Pending,
            attempts: 0,
            last_error: None,
            created_ms: now,
            updated_ms: now,
        };
        self.store.create_job(&job).await?;
        self.queue
            .enqueue(&QueueMessage {
                tenant: job.tenant.clone(),
                job: job.id.clone(),
            })
            .await?;
        Ok(job.id)
    }

    /// Queue a job to re-index one asset now. Stages whose identity is unchanged are reused;
    /// stages whose extractor, version, model or parameters changed re-run.
    pub async fn reindex_asset(
        &self,
        tenant: &TenantId,
        id: &AssetId,
    ) -> Result<JobId, EngineError> {
        let asset = self
            .store
            .get_asset(tenant, id)
            .await?
            .ok_or_else(|| EngineError::NotIndexed(id.to_string()))?;
        self.enqueue_index_job(&asset).await
    }

    /// Remove an asset everywhere: index documents, sidecar and thumbnails, store rows.
    pub async fn remove_asset(&self, tenant: &TenantId, id: &AssetId) -> Result<(), EngineError> {
        self.index.delete_asset(tenant, id).await?;
        worker::delete_media(self.media.as_ref(), tenant, id).await?;
        self.store.delete_asset(tenant, id).await?;
        Ok(())
    }

    /// Search and merge the hits into moments (at most `request.limit` of them).
    ///
    /// A text query without a vector is also encoded by the query encoder of the `text`
    /// space, if one is configured, making the search hybrid (keyword + meaning, fused).
    /// If the index has no vectors of that space yet, the search stays keyword-only.
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<Moment>, EngineError> {
        self.search_excluding(request, None).await
    }

    /// [`search`](Self::search) leaving out one segment (`(asset, segment id)`).
    async fn search_excluding(
        &self,
        request: &SearchRequest,
        exclude: Option<(&AssetId, &str)>,
    ) -> Result<Vec<Moment>, EngineError> {
        let want = request.limit.max(1);
        // Fetch more hits than moments: neighbouring hits of one asset merge into one moment.
        let fetch = request
            .clone()
            .with_limit((want + request.offset) * 4)
            .with_offset(0);
        let keyword_only = fetch.clone();
        let mut fetch = fetch;
        let encoder = self.query_encoders.iter().find(|e| e.space() == "text");
        if let (Some(text), None, Some(enc)) = (&fetch.text, &fetch.vector, encoder) {
            let vector = match self.query_vectors.get("text", text) {
                Some(v) => v,
                None => {
                    let v = enc
                        .encode(text)
                        .await
                        .map_err(|source| EngineError::Extractor {
                            name: "query encoder".into(),
                            source,
                        })?;
                    let v = Arc::new(v);
                    self.query_vectors.put("text", text, Arc::clone(&v));
                    v
                }
            };
            fetch = fetch.with_vector("text", vector.as_ref().clone());
        }
        let hits: Vec<SearchHit> = match self.index.search(&fetch).await {
            // No document has vectors of the query's space yet (indexed without models):
            // the text alone still answers.
            Err(IndexError::UnknownSpace { .. })
                if keyword_only.text.is_some() && keyword_only.vector.is_none() =>
            {
                self.index.search(&keyword_only).await?
            }
            other => other?,
        };
        // Vector search always returns nearest neighbours, related or not: a hit that matched
        // by meaning only must be similar enough to count.
        let min = self.cfg.min_vector_similarity;
        let hits: Vec<SearchHit> = hits
            .into_iter()
            .filter(|h| {
                h.signals
                    .iter()
                    .any(|s| s.signal == "keyword" || s.score >= min)
            })
            .filter(|h| exclude.is_none_or(|(a, seg)| !(h.doc.asset == *a && h.doc.segment == seg)))
            .map(|mut h| {
                // A hit found by meaning only has no highlighted terms: show its text.
                if h.snippet.is_none() && !h.doc.text.trim().is_empty() {
                    h.snippet = Some(excerpt(&h.doc.text, 160));
                }
                h
            })
            .collect();
        let moments = merge_hits(&hits, 0.0);
        Ok(moments
            .into_iter()
            .skip(request.offset)
            .take(want)
            .collect())
    }

    /// "More like this": moments similar in meaning (or look, when image vectors exist) to
    /// the moment of `asset` at `at_s` seconds. Uses the stored vector of the segment at that
    /// time (image space first, then text) as the query; the segment itself is left out.
    pub async fn more_like(
        &self,
        asset: &AssetId,
        at_s: f64,
        request: &SearchRequest,
    ) -> Result<Vec<Moment>, EngineError> {
        let sidecar = self.sidecar(&request.tenant, asset).await?;
        let mut best: Option<(&str, &heimdex_core::sidecar::EmbeddingVector)> = None;
        for space in ["image", "text"] {
            let found = sidecar
                .embeddings
                .values()
                .flat_map(|b| &b.data.vectors)
                .filter(|v| v.space == space && v.start_s <= at_s && at_s <= v.end_s)
                // The narrowest segment covering the time is the most specific.
                .min_by(|a, b| (a.end_s - a.start_s).total_cmp(&(b.end_s - b.start_s)));
            if let Some(v) = found {
                best = Some((space, v));
                break;
            }
        }
        let Some((space, v)) = best else {
            return Err(EngineError::NoMomentAt {
                key: sidecar.asset.key.clone(),
                at_s,
            });
        };
        let skip = v.segment.clone().unwrap_or_default();
        let mut req = request.clone();
        req.text = None;
        let req = req.with_vector(space, v.vector.clone());
        self.search_excluding(&req, Some((asset, &skip))).await
    }

    /// The stored sidecar of the asset at local `path` (a file that was indexed).
    pub async fn sidecar_for_path(
        &self,
        tenant: &TenantId,
        path: &Path,
    ) -> Result<Sidecar, EngineError> {
        let asset = self.asset_for_path(tenant, path).await?;
        self.sidecar(tenant, &asset.id).await
    }

    /// Find the asset of a local file path among the registered sources of `tenant`.
    pub async fn asset_for_path(
        &self,
        tenant: &TenantId,
        path: &Path,
    ) -> Result<Asset, EngineError> {
        let abs = path.canonicalize().map_err(|e| EngineError::io(path, e))?;
        for s in self.store.list_sources(tenant).await? {
            let root = PathBuf::from(&s.uri);
            let key = if s.kind == "local-file" {
                (root == abs).then(|| {
                    abs.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
            } else {
                abs.strip_prefix(&root).ok().map(|rel| {
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })
            };
            if let Some(key) = key {
                let id = AssetId::derive(tenant, &s.id, &key);
                if let Some(a) = self.store.get_asset(tenant, &id).await? {
                    return Ok(a);
                }
            }
        }
        Err(EngineError::NotIndexed(abs.display().to_string()))
    }

    /// The path users know an asset by: for local sources the absolute file path, otherwise
    /// `source-uri/key`.
    pub async fn display_path(
        &self,
        tenant: &TenantId,
        source: &SourceId,
        key: &str,
    ) -> Result<String, EngineError> {
        let src = self
            .store
            .get_source(tenant, source)
            .await?
            .ok_or_else(|| EngineError::UnknownSource(source.to_string()))?;
        Ok(source_display_path(&src, key))
    }

    /// Read an asset's sidecar.
    pub async fn sidecar(&self, tenant: &TenantId, id: &AssetId) -> Result<Sidecar, EngineError> {
        let location = worker::sidecar_location(tenant, id);
        let bytes = match object_store::ObjectStoreExt::get(self.media.as_ref(), &location).await {
            Ok(r) => r.bytes().await.map_err(EngineError::media)?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(EngineError::NoSidecar(id.to_string()));
            }
            Err(e) => return Err(EngineError::media(e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Corrupt(format!("sidecar {location}: {e}")))
    }

    /// Local file path of a media object (thumbnail), when media is a local directory.
    pub fn media_path(&self, location: &str) -> Option<PathBuf> {
        self.media_root.as_ref().map(|r| r.join(location))
    }

    /// Counts of assets and jobs by state, index size, and failures with reasons.
    pub async fn status(&self, tenant: &TenantId) -> Result<Status, EngineError> {
        let mut failures = Vec::new();
        let mut q = JobQuery::tenant(tenant.clone());
        q.state = Some("failed".into());
        for job in self.store.list_jobs(&q).await? {
            let key = match self.store.get_asset(tenant, &job.asset).await? {
                Some(a) => a.key,
                None => continue,
            };
            if let JobState::Failed { reason } = &job.state {
                failures.push(Failure {
                    key,
                    job: job.id.to_string(),
                    reason: reason.clone(),
                    attempts: job.attempts,
                });
            }
        }
        Ok(Status {
            assets: self.store.asset_counts(tenant).await?,
            jobs: self.store.job_counts(tenant).await?,
            index_documents: self.index.count(tenant).await?,
            failures,
        })
    }

    /// Messages waiting or in flight in the queue.
    pub async fn queue_depth(&self) -> Result<u64, EngineError> {
        let s = self.queue.stats().await?;
        Ok(s.ready + s.delayed + s.in_flight)
    }

    /// The sources of `tenant`, by id.
    pub async fn sources(&self, tenant: &TenantId) -> Result<Vec<Source>, EngineError> {
        Ok(self.store.list_sources(tenant).await?)
    }

    /// One source of `tenant`.
    pub async fn source(&self, tenant: &TenantId, id: &SourceId) -> Result<Source, EngineError> {
        self.store
            .get_source(tenant, id)
            .await?
            .ok_or_else(|| EngineError::UnknownSource(id.to_string()))
    }

    /// One asset of `tenant`.
    pub async fn asset(&self, tenant: &TenantId, id: &AssetId) -> Result<Asset, EngineError> {
        self.store
            .get_asset(tenant, id)
            .await?
            .ok_or_else(|| EngineError::NotIndexed(id.to_string()))
    }

    /// A page of `tenant`'s assets (ids after `after`, at most `limit`).
    pub async fn assets_page(
        &self,
        tenant: &TenantId,
        after: Option<AssetId>,
        limit: u32,
    ) -> Result<Vec<Asset>, EngineError> {
        let mut q = AssetQuery::tenant(tenant.clone());
        q.after = after;
        q.limit = Some(limit);
        Ok(self.store.list_assets(&q).await?)
    }

    /// One job of `tenant`.
    pub async fn job(&self, tenant: &TenantId, id: &JobId) -> Result<Job, EngineError> {
        self.store
            .get_job(tenant, id)
            .await?
            .ok_or_else(|| EngineError::UnknownJob(id.to_string()))
    }

    /// `tenant`'s jobs, newest first (optionally of one state, at most `limit`).
    pub async fn jobs(
        &self,
        tenant: &TenantId,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, EngineError> {
        let mut q = JobQuery::tenant(tenant.clone());
        q.state = state.map(str::to_owned);
        q.limit = Some(limit);
        Ok(self.store.list_jobs(&q).await?)
    }

    /// The JPEG thumbnail of shot `shot` of an asset of `tenant`.
    pub async fn thumbnail(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
        shot: u32,
    ) -> Result<bytes::Bytes, EngineError> {
        let location = worker::thumbnail_location(tenant, asset, shot);
        match object_store::ObjectStoreExt::get(self.media.as_ref(), &location.as_str().into())
            .await
        {
            Ok(r) => r.bytes().await.map_err(EngineError::media),
            Err(object_store::Error::NotFound { .. }) => Err(EngineError::NoThumbnail {
                asset: asset.to_string(),
                shot,
            }),
            Err(e) => Err(EngineError::media(e)),
        }
    }

    /// Check the store, queue, index and media store answer (for health checks): the name
    /// of each with its error, empty when all are fine.
    pub async fn health(&self) -> BTreeMap<&'static str, Result<(), String>> {
        let probe = TenantId::new("__health__");
        let mut out = BTreeMap::new();
        out.insert(
            "store",
            self.store
                .list_sources(&probe)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        );
        out.insert(
            "queue",
            self.queue
                .stats()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        );
        out.insert(
            "index",
            self.index
                .count(&probe)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        );
        let media = object_store::ObjectStoreExt::head(
            self.media.as_ref(),
            &worker::tenant_prefix(&probe).join("probe"),
        )
        .await;
        out.insert(
            "media",
            match media {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        );
        out
    }

    /// All assets of `tenant` (for listings).
    pub async fn assets(&self, tenant: &TenantId) -> Result<Vec<Asset>, EngineError> {
        let mut out = Vec::new();
        let mut q = AssetQuery::tenant(tenant.clone());
        loop {
            let page = self.store.list_assets(&q).await?;
            let Some(last) = page.last() else { break };
            q.after = Some(last.id.clone());
            out.extend(page);
        }
        Ok(out)
    }
}

/// The path users know an asset by (see [`Engine::display_path`]).
pub(crate) fn source_display_path(src: &Source, key: &str) -> String {
    match src.kind.as_str() {
        "local-file" => src.uri.clone(),
        "local" => Path::new(&src.uri).join(key).display().to_string(),
        _ => format!("{}/{key}", src.uri.trim_end_matches('/')),
    }
}

/// The first `max` characters of `text` (at a word boundary), with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

/// The source id of a local folder or file: `local-` + 12 hex digits of SHA-256 of its
/// absolute path, so re-adding the same path finds the same source.
pub fn local_source_id(absolute_path: &str) -> SourceId {
    source_id("local", absolute_path)
}

/// The source id of a source of `kind` at its normalised `uri`: the kind (local folders and
/// files share `local`), `-`, and 12 hex digits of SHA-256 of the URI. Re-adding the same
/// place finds the same source.
pub fn source_id(kind: &str, uri: &str) -> SourceId {
    let prefix = if kind.starts_with("local") {
        "local"
    } else {
        kind
    };
    let digest = Sha256::digest(uri.as_bytes());
    SourceId::new(format!("{prefix}-{}", &hex(&digest)[..12]))
}
