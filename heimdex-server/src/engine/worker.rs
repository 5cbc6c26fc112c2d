//! Job execution: reserve, run the pipeline once, write sidecar + thumbnails, index, settle.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use heimdex_connectors::RangeReader;
use heimdex_core::ErrorKind;
use heimdex_core::extractor::{
    ExtractContext, Extractor, FrameRef, StageData, apply_stage, provided_names, stage_levels,
};
use heimdex_core::model::{Asset, AssetId, AssetState, Job, JobState, SidecarRef, TenantId};
use heimdex_core::queue::{Delivery, NackOutcome};
use heimdex_core::segments;
use heimdex_core::sidecar::{ExtractorInfo, Keyframe, Sidecar, SidecarAsset, StageBlock};
use heimdex_core::time_util::now_ms;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Engine, EngineError};

/// A progress event for a UI (CLI progress bar, logs).
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// A job started on the asset at `key`.
    Started {
        /// Asset key.
        key: String,
    },
    /// The job is at `stage`, `percent` of the whole job.
    Stage {
        /// Asset key.
        key: String,
        /// Stage name.
        stage: String,
        /// 0..=100 of the whole job.
        percent: f32,
    },
    /// The job ended.
    Finished {
        /// Asset key.
        key: String,
        /// How.
        outcome: JobOutcome,
    },
}

/// Receives [`ProgressEvent`]s. Called from worker threads; must be cheap.
pub trait ProgressSink: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// A sink that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct SilentProgress;

impl ProgressSink for SilentProgress {
    fn event(&self, _: ProgressEvent) {}
}

/// How one job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Indexed.
    Indexed {
        /// Shots found.
        shots: usize,
        /// Media duration.
        duration_s: f64,
        /// True when nothing had to be recomputed.
        reused: bool,
    },
    /// Failed for good.
    Failed {
        /// Why.
        reason: String,
    },
    /// Failed; will be retried.
    Retrying {
        /// Why.
        reason: String,
        /// Delay before the retry.
        after: Duration,
    },
    /// Nothing to do (superseded or already settled).
    Skipped,
    /// Interrupted by a shutdown and given back to the queue for another worker.
    HandedBack,
}

/// Totals of one [`Engine::run_until_idle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs that indexed their asset.
    pub indexed: u64,
    /// Jobs that failed for good.
    pub failed: u64,
    /// Failures that were scheduled for retry.
    pub retried: u64,
    /// Jobs with nothing to do.
    pub skipped: u64,
    /// Jobs interrupted by a shutdown and handed back.
    pub handed_back: u64,
}

/// The media-store folder of a tenant: every sidecar and thumbnail of the tenant lives
/// under it (the tenant id is one encoded path segment, so no id can reach into another's).
/// What a job's look at its object found.
enum Look {
    /// The object is gone.
    Gone,
    /// The source could not be asked; the job goes on and fails with the source's reason.
    Unknown,
    /// Two looks agreed and it was not modified within the settle window.
    Stable(heimdex_core::ObjectMeta),
    /// Still changing after every look (its last version).
    StillChanging(String),
}

pub(crate) fn tenant_prefix(tenant: &TenantId) -> ObjectPath {
    ObjectPath::from_iter([tenant.as_str()])
}

/// Where an asset's sidecar lives in the media store.
pub(crate) fn sidecar_location(tenant: &TenantId, asset: &AssetId) -> ObjectPath {
    ObjectPath::from_iter([
        tenant.as_str(),
        "sidecars",
        format!("{asset}.json").as_str(),
    ])
}

/// The folder of an asset's thumbnails.
pub(crate) fn thumbnails_prefix(tenant: &TenantId, asset: &AssetId) -> ObjectPath {
    ObjectPath::from_iter([tenant.as_str(), "thumbs", asset.as_str()])
}

pub(crate) fn thumbnail_location(tenant: &TenantId, asset: &AssetId, shot: u32) -> String {
    thumbnails_prefix(tenant, asset)
        .join(format!("shot-{shot:05}.jpg").as_str())
        .to_string()
}

/// Delete an asset's sidecar and thumbnails.
pub(crate) async fn delete_media(
    media: &dyn ObjectStore,
    tenant: &TenantId,
    asset: &AssetId,
) -> Result<(), EngineError> {
    let prefix = thumbnails_prefix(tenant, asset);
    let mut listing = media.list(Some(&prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(EngineError::media)?;
        ignore_missing(media.delete(&meta.location).await)?;
    }
    ignore_missing(media.delete(&sidecar_location(tenant, asset)).await)
}

fn ignore_missing(r: Result<(), object_store::Error>) -> Result<(), EngineError> {
    match r {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(EngineError::media(e)),
    }
}

/// Live progress of one job, shared between the blocking pipeline thread and the async side.
#[derive(Debug, Clone)]
struct Live {
    stage: String,
    percent: f32,
}

/// Map the pipeline's own progress onto the whole job: probe 0–5 %, decode 5–85 %,
/// extractors 85–95 %, writing and indexing 95–100 %.
fn job_percent(stage: &str, stage_percent: f32) -> f32 {
    let p = stage_percent.clamp(0.0, 100.0) / 100.0;
    match stage {
        "probe" => 5.0 * p,
        "decode" => 5.0 + 80.0 * p,
        "write" => 95.0 + 3.0 * p,
        "index" => 98.0 + 2.0 * p,
        _ => 85.0 + 10.0 * p,
    }
}

struct Computed {
    sidecar: Sidecar,
    thumbnails: Vec<(String, Vec<u8>)>,
    reused: bool,
    /// The first stage failure; `sidecar` then holds every stage that did complete, so a
    /// retry resumes from them.
    failure: Option<EngineError>,
}

/// Tells workers to stop: they take no new job, and a job in progress gets
/// [`WorkerOptions::grace`] to finish before it is handed back to the queue (unprocessed, its
/// attempt not counted) for another worker.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal and its trigger: `send(true)` on the sender stops the workers.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self { rx })
    }

    /// A signal that never fires.
    pub fn never() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Keep the sender alive for the life of the program, so `changed` never resolves.
        std::mem::forget(tx);
        Self { rx }
    }

    /// Whether stopping was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once stopping is asked for (at once if it already was).
    pub async fn triggered(&mut self) {
        // A dropped sender means no one can ask any more: wait forever.
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How workers run.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Stop when the queue has nothing ready, delayed or in flight (the CLI), or keep
    /// polling for work until shut down (a server).
    pub until_idle: bool,
    /// How long to wait between polls of an empty queue.
    pub poll: Duration,
    /// How long a job in progress may run on after shutdown before it is handed back.
    pub grace: Duration,
    /// How often the index is flushed while workers run (it is always flushed at the end),
    /// so a process killed after hours of work loses at most this much of the index (and
    /// even that is restored from the sidecars by the next writer).
    pub flush_every: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            until_idle: true,
            poll: Duration::from_millis(100),
            grace: Duration::from_secs(10),
            flush_every: Duration::from_secs(60),
        }
    }
}

impl Engine {
    /// Process jobs until the queue has nothing ready, delayed or in flight, running up to
    /// `concurrency` jobs at once. Flushes the index at the end.
    pub async fn run_until_idle(
        &self,
        sink: Arc<dyn ProgressSink>,
    ) -> Result<RunReport, EngineError> {
        self.run_workers(sink, WorkerOptions::default(), Shutdown::never())
            .await
    }

    /// Run `concurrency` workers on the queue, for every tenant: each job is processed for
    /// the tenant its message names. Returns when the queue is idle (with
    /// [`WorkerOptions::until_idle`]) or after `shutdown` fired and the jobs in progress
    /// finished or were handed back. Flushes the index at the end.
    pub async fn run_workers(
        &self,
        sink: Arc<dyn ProgressSink>,
        options: WorkerOptions,
        shutdown: Shutdown,
    ) -> Result<RunReport, EngineError> {
        let report = StdMutex::new(RunReport::default());
        let workers = (0..self.cfg.concurrency.max(1))
            .map(|_| self.worker_loop(sink.as_ref(), &report, &options, shutdown.clone()));
        let mut all = Box::pin(futures::future::join_all(workers));
        let mut flush = tokio::time::interval(options.flush_every);
        flush.tick().await;
        let results = loop {
            tokio::select! {
                results = &mut all => break results,
                _ = flush.tick() => {
                    if let Err(e) = self.index.flush().await {
                        tracing::warn!(error = %e, "periodic index flush failed; retrying later");
                    }
                }
            }
        };
        drop(all);
        self.index.flush().await?;
        for r in results {
            r?;
        }
        Ok(report.into_inner().unwrap_or_default())
    }

    async fn worker_loop(
        &self,
        sink: &dyn ProgressSink,
        report: &StdMutex<RunReport>,
        options: &WorkerOptions,
        mut shutdown: Shutdown,
    ) -> Result<(), EngineError> {
        // A server's workers outlive a backend that is down for a while (`Unavailable`: Redis
        // restarting, Postgres connections terminated) and a delivery whose lease was lost
        // (`Conflict`: a stale receipt, e.g. after Redis lost its data): the job is left to
        // its lease or to the reconcile, which deliver it again. A run until idle (the CLI)
        // stops at the first error as before.
        let survive = |e: EngineError| -> Result<(), EngineError> {
            if options.until_idle
                || !matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Conflict)
            {
                return Err(e);
            }
            tracing::warn!(error = %e, "worker: backend error; retrying");
            Ok(())
        };
        let pause = options.poll.max(Duration::from_millis(500));
        while !shutdown.is_triggered() {
            let reserved = match self.queue.reserve(self.cfg.visibility).await {
                Ok(r) => r,
                Err(e) => {
                    survive(e.into())?;
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.triggered() => {}
                    }
                    continue;
                }
            };
            match reserved {
                Some(delivery) => {
                    let result = {
                        let work = self.process(&delivery, sink);
                        tokio::pin!(work);
                        tokio::select! {
                            r = &mut work => r,
                            () = shutdown.triggered() => {
                                match tokio::time::timeout(options.grace, &mut work).await {
                                    Ok(r) => r,
                                    Err(_) => {
                                        // `work` is never polled again (and dropped at the
                                        // end of this block): the job stops at its current
                                        // await; its pipeline thread ends on its own and
                                        // its results are discarded.
                                        self.hand_back(&delivery)
                                            .await
                                            .map(|()| JobOutcome::HandedBack)
                                    }
                                }
                            }
                        }
                    };
                    let outcome = match result {
                        Ok(outcome) => outcome,
                        Err(e) => {
                            survive(e)?;
                            tokio::select! {
                                () = tokio::time::sleep(pause) => {}
                                () = shutdown.triggered() => {}
                            }
                            continue;
                        }
                    };
                    if let Ok(mut r) = report.lock() {
                        match outcome {
                            JobOutcome::Indexed { .. } => r.indexed += 1,
                            JobOutcome::Failed { .. } => r.failed += 1,
                            JobOutcome::Retrying { .. } => r.retried += 1,
                            JobOutcome::Skipped => r.skipped += 1,
                            JobOutcome::HandedBack => r.handed_back += 1,
                        }
                    }
                }
                None => {
                    if options.until_idle {
                        let stats = self.queue.stats().await?;
                        if stats.ready + stats.delayed + stats.in_flight == 0 {
                            return Ok(());
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(options.poll) => {}
                        () = shutdown.triggered() => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Give an interrupted job back: the Store shows it pending again, the Queue delivers it
    /// to the next worker without counting this attempt.
    async fn hand_back(&self, delivery: &Delivery) -> Result<(), EngineError> {
        let tenant = &delivery.message.tenant;
        if let Some(mut job) = self.store.get_job(tenant, &delivery.message.job).await?
            && matches!(job.state, JobState::Processing { .. })
        {
            self.set_job(&mut job, JobState::Pending).await?;
        }
        match self.queue.release(delivery).await {
            // The lease ran out meanwhile: the queue redelivers it anyway.
            Ok(()) | Err(heimdex_core::QueueError::StaleReceipt { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Run one delivered job to its end and settle it with the queue.
    pub async fn process(
        &self,
        delivery: &Delivery,
        sink: &dyn ProgressSink,
    ) -> Result<JobOutcome, EngineError> {
        // The job's tenant is the message's: one worker serves every tenant of its queue.
        let tenant = delivery.message.tenant.clone();
        let Some(mut job) = self.store.get_job(&tenant, &delivery.message.job).await? else {
            self.queue.ack(delivery).await?;
            return Ok(JobOutcome::Skipped);
        };
        if job.state.is_terminal() {
            self.queue.ack(delivery).await?;
            return Ok(JobOutcome::Skipped);
        }
        let Some(asset) = self.store.get_asset(&tenant, &job.asset).await? else {
            self.queue.ack(delivery).await?;
            return Ok(JobOutcome::Skipped);
        };
        job.attempts = delivery.attempt;
        if asset.version != job.asset_version {
            // A newer scan queued a newer job for this asset.
            self.set_job(
                &mut job,
                JobState::Processing {
                    stage: "superseded".into(),
                    percent: 100.0,
                },
            )
            .await?;
            self.set_job(&mut job, JobState::Completed).await?;
            self.queue.ack(delivery).await?;
            return Ok(JobOutcome::Skipped);
        }
        // Look at the object again before reading it: gone since the scan → it leaves
        // everything; changed since the scan or still being written → wait until it is
        // stable, then index the version that is there.
        let asset = match self.look_until_stable(&asset).await {
            Look::Gone => {
                self.remove_asset(&tenant, &asset.id).await?;
                self.queue.ack(delivery).await?;
                tracing::info!(asset = %asset.key, "gone from its source: removed");
                return Ok(JobOutcome::Skipped);
            }
            // A source that cannot be reached fails the job below, with its reason.
            Look::Unknown => asset,
            Look::Stable(meta) if meta.version != asset.version => {
                tracing::info!(asset = %asset.key, from = %asset.version, to = %meta.version,
                    "changed since the scan: indexing the current version");
                let mut current = asset.clone();
                current.version = meta.version;
                current.size = meta.size;
                current.updated_ms = now_ms();
                self.store.upsert_asset(&current).await?;
                job.asset_version = current.version.clone();
                current
            }
            Look::Stable(_) => asset,
            Look::StillChanging(version) => {
                let reason = format!(
                    "{} is still changing (version {version}); retried once it is stable",
                    asset.key
                );
                let outcome = match self.queue.nack(delivery, &reason).await? {
                    NackOutcome::Retry { after } => {
                        job.last_error = Some(reason.clone());
                        self.set_job(&mut job, JobState::Pending).await?;
                        JobOutcome::Retrying { reason, after }
                    }
                    NackOutcome::DeadLettered => {
                        self.set_job(
                            &mut job,
                            JobState::Failed {
                                reason: reason.clone(),
                            },
                        )
                        .await?;
                        JobOutcome::Failed { reason }
                    }
                };
                return Ok(outcome);
            }
        };
        sink.event(ProgressEvent::Started {
            key: asset.key.clone(),
        });
        self.set_job(
            &mut job,
            JobState::Processing {
                stage: "probe".into(),
                percent: 0.0,
            },
        )
        .await?;

        let live = Arc::new(StdMutex::new(Live {
            stage: "probe".into(),
            percent: 0.0,
        }));
        let work = self.index_asset(&asset, Arc::clone(&live), sink);
        // Lease extension and progress run as a second future polled together with the job
        // (not in a select! arm, whose body would run while the job is not polled): the job
        // may hold the store's one SQLite connection across an await, and a progress write
        // waiting for it must not stop the job from finishing with it.
        let heartbeat = async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last_lease = Instant::now();
            let mut last_saved = (String::from("probe"), 0.0f32);
            loop {
                tick.tick().await;
                if last_lease.elapsed() >= self.cfg.visibility / 3 {
                    self.queue.extend(delivery, self.cfg.visibility).await?;
                    last_lease = Instant::now();
                }
                let now = live.lock().map(|l| l.clone()).ok();
                if let Some(l) = now
                    && (l.stage != last_saved.0 || l.percent - last_saved.1 >= 5.0)
                {
                    last_saved = (l.stage.clone(), l.percent);
                    let state = JobState::Processing {
                        stage: l.stage,
                        percent: l.percent,
                    };
                    self.set_job(&mut job, state).await?;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), EngineError>(())
        };
        let result = tokio::select! {
            r = work => r,
            beat = heartbeat => {
                // The heartbeat only ends by failing (a lost lease, the store): the job's
                // outcome can no longer be recorded, so the delivery is left to expire.
                beat?;
                unreachable!("the heartbeat loop only ends with an error")
            }
        };

        let live_stage = live.lock().map(|l| l.stage.clone()).unwrap_or_default();
        let outcome = match result {
            Ok((shots, duration_s, reused)) => {
                self.set_job(&mut job, JobState::Completed).await?;
                self.queue.ack(delivery).await?;
                JobOutcome::Indexed {
                    shots,
                    duration_s,
                    reused,
                }
            }
            Err(e) => {
                let reason = match &e {
                    // The message already names the failing stage.
                    EngineError::Extractor { .. } => e.to_string(),
                    _ => format!("{live_stage}: {e}"),
                };
                job.last_error = Some(reason.clone());
                let outcome = if e.is_permanent() {
                    self.queue.ack(delivery).await?;
                    JobOutcome::Failed {
                        reason: reason.clone(),
                    }
                } else {
                    match self.queue.nack(delivery, &reason).await? {
                        NackOutcome::Retry { after } => JobOutcome::Retrying {
                            reason: reason.clone(),
                            after,
                        },
                        NackOutcome::DeadLettered => JobOutcome::Failed {
                            reason: format!(
                                "{reason} (gave up after {} attempts)",
                                delivery.attempt
                            ),
                        },
                    }
                };
                match &outcome {
                    JobOutcome::Retrying { .. } => {
                        self.set_job(&mut job, JobState::Pending).await?
                    }
                    JobOutcome::Failed { reason } => {
                        self.set_job(
                            &mut job,
                            JobState::Failed {
                                reason: reason.clone(),
                            },
                        )
                        .await?;
                        let mut failed = asset.clone();
                        failed.state = AssetState::Failed;
                        failed.updated_ms = now_ms();
                        self.store.upsert_asset(&failed).await?;
                    }
                    _ => {}
                }
                tracing::warn!(asset = %asset.key, %reason, "job failed");
                outcome
            }
        };
        sink.event(ProgressEvent::Finished {
            key: asset.key.clone(),
            outcome: outcome.clone(),
        });
        Ok(outcome)
    }

    /// Look at the object of `asset` until two looks agree on its version and it was last
    /// modified at least [`EngineConfig::settle`] ago (the scan's look counts as the first).
    async fn look_until_stable(&self, asset: &Asset) -> Look {
        const MAX_LOOKS: u32 = 10;
        let Ok(connector) = self.connector(&asset.tenant, &asset.source).await else {
            return Look::Unknown;
        };
        let settle = self.cfg.settle;
        let mut previous = asset.version.clone();
        for look in 0..MAX_LOOKS {
            let meta = match connector.stat(&asset.key).await {
                Ok(m) => m,
                Err(heimdex_core::ConnectorError::NotFound { .. }) => return Look::Gone,
                Err(_) => return Look::Unknown,
            };
            let age = meta
                .modified_ms
                .map(|m| Duration::from_millis(now_ms().saturating_sub(m).max(0) as u64));
            let fresh = age.is_some_and(|a| a < settle);
            if meta.version == previous && !fresh {
                return Look::Stable(meta);
            }
            if settle.is_zero() {
                return Look::Stable(meta);
            }
            tracing::debug!(asset = %asset.key, look, version = %meta.version, "not stable yet");
            // Wait out the rest of the window of a fresh file, else a whole window.
            let pause = match age {
                Some(a) if fresh && meta.version == previous => settle - a,
                _ => settle,
            };
            tokio::time::sleep(pause.max(Duration::from_millis(20))).await;
            previous = meta.version;
        }
        Look::StillChanging(previous)
    }

    async fn set_job(&self, job: &mut Job, state: JobState) -> Result<(), EngineError> {
        job.state = state;
        job.updated_ms = now_ms();
        self.store.update_job(job).await?;
        Ok(())
    }

    /// Compute (or reuse) the sidecar of `asset`, store it with its thumbnails, and index it.
    /// Returns (shots, duration, reused).
    async fn index_asset(
        &self,
        asset: &Asset,
        live: Arc<StdMutex<Live>>,
        sink: &dyn ProgressSink,
    ) -> Result<(usize, f64, bool), EngineError> {
        let report = |stage: &str, stage_percent: f32| {
            let percent = job_percent(stage, stage_percent);
            if let Ok(mut l) = live.lock() {
                l.stage = stage.to_owned();
                l.percent = percent;
            }
            sink.event(ProgressEvent::Stage {
                key: asset.key.clone(),
                stage: stage.to_owned(),
                percent,
            });
        };
        // A previous sidecar (complete, or partial from a failed attempt) lets unchanged
        // stages be reused.
        let previous = self.sidecar(&asset.tenant, &asset.id).await.ok();
        let computed = self.compute(asset, previous, &report).await?;
        let Computed {
            mut sidecar,
            thumbnails,
            reused,
            failure,
        } = computed;
        if !reused {
            self.assign_persons(&asset.tenant, &mut sidecar).await?;
        }

        report("write", 0.0);
        if !reused {
            delete_media(self.media.as_ref(), &asset.tenant, &asset.id).await?;
            let media = &self.media;
            let mut puts =
                futures::stream::iter(thumbnails.into_iter().map(|(loc, bytes)| async move {
                    media
                        .put(&ObjectPath::from(loc), PutPayload::from(bytes))
                        .await
                        .map_err(EngineError::media)
                }))
                .buffer_unordered(8);
            while let Some(r) = puts.next().await {
                r?;
            }
            self.media
                .put(
                    &sidecar_location(&asset.tenant, &asset.id),
                    PutPayload::from(sidecar.to_json_pretty()),
                )
                .await
                .map_err(EngineError::media)?;
        }

        if let Some(e) = failure {
            return Err(e);
        }

        report("index", 0.0);
        let path = self
            .display_path(&asset.tenant, &asset.source, &asset.key)
            .await?;
        self.index_sidecar(asset, &path, &sidecar).await?;

        let shots = sidecar
            .shots
            .as_ref()
            .map(|s| s.data.shots.len())
            .unwrap_or(0);
        let duration = sidecar.duration_s().unwrap_or(0.0);
        let mut done = asset.clone();
        done.state = AssetState::Indexed;
        done.duration_s = sidecar.duration_s();
        done.sidecar = Some(SidecarRef {
            location: sidecar_location(&asset.tenant, &asset.id).to_string(),
            schema_version: sidecar.schema_version,
            asset_version: sidecar.asset.version.clone(),
        });
        done.updated_ms = now_ms();
        self.store.upsert_asset(&done).await?;
        report("index", 100.0);
        Ok((shots, duration, reused))
    }

    /// Make the index hold exactly the documents `sidecar` yields for `asset` (and the Store
    /// its segments): the one place documents are derived, shared by jobs, `reindex` and
    /// repairs, so every path writes identical documents. Returns how many.
    pub(crate) async fn index_sidecar(
        &self,
        asset: &Asset,
        path: &str,
        sidecar: &Sidecar,
    ) -> Result<usize, EngineError> {
        let segs = segments::from_sidecar(sidecar);
        self.store
            .replace_segments(&asset.tenant, &asset.id, &segs)
            .await?;
        let mut docs = segments::index_docs(&asset.tenant, &asset.source, &asset.id, path, &segs);
        segments::attach_vectors(&mut docs, sidecar);
        segments::apply_meta(&mut docs, sidecar);
        self.index.delete_asset(&asset.tenant, &asset.id).await?;
        self.index.upsert(&docs).await?;
        Ok(docs.len())
    }

    /// The decode settings of a job: the configured ones, with mid-shot frame sampling on
    /// when a stage reads samples (on-screen text, visual tags) and the interval is not zero
    /// (`HEIMDEX_SAMPLE_INTERVAL_S=0` turns it off: keyframes only, faster).
    pub(crate) fn analyze_options(&self) -> heimdex_pipeline::AnalyzeOptions {
        let mut opts = self.cfg.analyze.clone();
        opts.sample_frames |=
            opts.sample_interval_s > 0.0 && self.extractors.iter().any(|e| e.needs().samples);
        opts
    }

    /// Run the media stages and extractors that are not already current in `previous`.
    async fn compute(
        &self,
        asset: &Asset,
        previous: Option<Sidecar>,
        report: &(dyn Fn(&str, f32) + Sync),
    ) -> Result<Computed, EngineError> {
        let opts = self.analyze_options();
        let media_info = media_stage_infos(&opts);
        let extractor_infos: Vec<ExtractorInfo> =
            self.extractors.iter().map(|e| e.info()).collect();
        // A sidecar of another version of the bytes, or from other media-stage settings
        // (shots, keyframes), cannot be reused at all.
        let previous = previous.filter(|p| {
            p.asset.version == asset.version && media_info.iter().take(2).all(|i| p.has_stage(i))
        });
        if let Some(prev) = &previous {
            let all_current = media_info.iter().all(|i| prev.has_stage(i))
                && extractor_infos.iter().all(|i| prev.has_stage(i));
            if all_current {
                return Ok(Computed {
                    sidecar: prev.clone(),
                    thumbnails: Vec::new(),
                    reused: true,
                    failure: None,
                });
            }
        }

        let connector = self.connector(&asset.tenant, &asset.source).await?;
        let handle = tokio::runtime::Handle::current();
        let block = self.cfg.read_block;
        let key = asset.key.clone();
        let version = asset.version.clone();
        let size = asset.size;
        // The reporting closure is not 'static; forward progress through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, f32)>();
        let extractors = self.extractors.clone();
        let sidecar_asset = SidecarAsset {
            id: asset.id.to_string(),
            tenant: asset.tenant.to_string(),
            source: asset.source.to_string(),
            key: asset.key.clone(),
            version: asset.version.clone(),
            size: asset.size,
        };
        let asset_id = asset.id.clone();
        let tenant = asset.tenant.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<Computed, EngineError> {
            // Read only the version this job indexes: a replacement mid-read fails the read
            // (transient), and the retry indexes the new version.
            let reader =
                RangeReader::new(connector, key, size, block, handle).with_version(version);
            let started = Instant::now();
            let progress_tx = tx.clone();
            let analysis = heimdex_pipeline::analyze(Box::new(reader), &opts, &mut |p| {
                let _ = progress_tx.send((p.stage.to_owned(), p.percent));
            })?;
            let media_ms = started.elapsed().as_millis() as u64;
            let [probe_info, shots_info, audio_info] = media_stage_infos(&opts);
            let mut sidecar = Sidecar::new(sidecar_asset);
            sidecar.technical = Some(StageBlock::new(probe_info, 0, analysis.technical.clone()));
            let mut shots = analysis.shots.clone();
            let mut thumbnails = Vec::with_capacity(analysis.keyframes.len());
            for kf in &analysis.keyframes {
                let loc = thumbnail_location(&tenant, &asset_id, kf.shot_index);
                if let Some(shot) = shots.shots.get_mut(kf.shot_index as usize) {
                    shot.keyframe = Some(Keyframe {
                        time_s: kf.time_s,
                        frame: kf.frame,
                        thumbnail: loc.clone(),
                        width: kf.thumb_width,
                        height: kf.thumb_height,
                    });
                    if shot.descriptors.is_empty() {
                        shot.descriptors = kf.descriptors.clone();
                    }
                }
                thumbnails.push((loc, kf.thumbnail_jpeg.clone()));
            }
            sidecar.shots = Some(StageBlock::new(shots_info, media_ms, shots));
            if let Some(audio) = &analysis.audio {
                sidecar.audio = Some(StageBlock::new(audio_info, 0, audio.summary()));
            }
            let frames: Vec<FrameRef<'_>> = analysis.frames();
            let samples: Vec<FrameRef<'_>> = analysis.sample_frames();
            let failure = run_stages(
                &extractors,
                previous.as_ref(),
                &mut sidecar,
                Decoded {
                    keyframes: &frames,
                    samples: &samples,
                    audio: analysis.audio.as_ref().map(|a| a.samples.as_slice()),
                },
                &tx,
            );
            Ok(Computed {
                sidecar,
                thumbnails,
                reused: false,
                failure,
            })
        });
        tokio::pin!(task);
        loop {
            tokio::select! {
                r = &mut task => {
                    while let Ok((stage, p)) = rx.try_recv() { report(&stage, p); }
                    return r.map_err(|e| EngineError::Task(e.to_string()))?;
                }
                Some((stage, p)) = rx.recv() => report(&stage, p),
            }
        }
    }
}

/// Version of the built-in media stages' semantics; bump it when their output changes so
/// re-indexing recomputes them.
/// 2: frames upright (display-matrix rotation), audio-only files analysed.
pub(crate) const MEDIA_STAGES_VERSION: &str = "2";

/// Identities of the built-in media stages (probe, shots/keyframes, audio).
pub(crate) fn media_stage_infos(opts: &heimdex_pipeline::AnalyzeOptions) -> [ExtractorInfo; 3] {
    let version = MEDIA_STAGES_VERSION.to_owned();
    [
        ExtractorInfo {
            name: "ffmpeg.probe".into(),
            version: version.clone(),
            model: None,
            params: None,
        },
        ExtractorInfo {
            name: "shots.content-hsv".into(),
            version: version.clone(),
            model: None,
            params: Some(format!(
                "{};thumb_width={};jpeg_quality={}",
                opts.params_string(),
                opts.thumbnail_max_width,
                opts.jpeg_quality
            )),
        },
        ExtractorInfo {
            name: "ffmpeg.audio16k".into(),
            version,
            model: None,
            params: Some(format!("decode_audio={}", opts.decode_audio)),
        },
    ]
}

/// Run the extractors level by level (see [`stage_levels`]); stages of one level run
/// concurrently on scoped threads. Stages already current in `previous` are copied instead of
/// run. Returns the first failure; the outputs of every stage that completed are in `sidecar`.
/// What the single decode pass produced for the stages.
#[derive(Clone, Copy)]
struct Decoded<'a> {
    keyframes: &'a [FrameRef<'a>],
    samples: &'a [FrameRef<'a>],
    audio: Option<&'a [f32]>,
}

fn run_stages(
    extractors: &[Arc<dyn Extractor>],
    previous: Option<&Sidecar>,
    sidecar: &mut Sidecar,
    decoded: Decoded<'_>,
    tx: &tokio::sync::mpsc::UnboundedSender<(String, f32)>,
) -> Option<EngineError> {
    let n = extractors.len();
    // Per-stage percent; the reported figure is their mean, so it never goes back.
    let table = StdMutex::new(vec![0.0f32; n]);
    let report = |i: usize, name: &str, p: f32| {
        if let Ok(mut t) = table.lock() {
            t[i] = t[i].max(p.clamp(0.0, 100.0));
            let mean = t.iter().sum::<f32>() / n.max(1) as f32;
            let _ = tx.send((name.to_owned(), mean));
        }
    };
    // Names of stages that ran in this job: a stage that waits for one of them must re-run
    // too, even if its own identity is unchanged (its input changed).
    let mut ran: Vec<String> = Vec::new();
    for level in stage_levels(extractors) {
        let mut to_run = Vec::new();
        for i in level {
            let info = extractors[i].info();
            let input_changed = extractors[i].needs().after.iter().any(|a| ran.contains(a));
            match previous.filter(|p| !input_changed && p.has_stage(&info)) {
                Some(prev) => {
                    copy_stage(prev, sidecar, &info);
                    report(i, &info.name, 100.0);
                }
                None => to_run.push(i),
            }
        }
        let current: &Sidecar = sidecar;
        let results: Vec<(ExtractorInfo, Result<StageData, EngineError>, u64)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = to_run
                    .iter()
                    .map(|&i| {
                        let ex = &extractors[i];
                        let report = &report;
                        scope.spawn(move || {
                            let info = ex.info();
                            let needs = ex.needs();
                            let name = info.name.clone();
                            let progress = move |p: f32| report(i, &name, p);
                            let kfs: &[FrameRef<'_>] = if needs.keyframes {
                                decoded.keyframes
                            } else {
                                &[]
                            };
                            let samples: &[FrameRef<'_>] =
                                if needs.samples { decoded.samples } else { &[] };
                            let ctx = ExtractContext::new(
                                current,
                                kfs,
                                decoded.audio.filter(|_| needs.audio_16k),
                                &progress,
                            )
                            .with_samples(samples);
                            let t = Instant::now();
                            let out = ex.extract(&ctx).map_err(|source| EngineError::Extractor {
                                name: info.name.clone(),
                                source,
                            });
                            report(i, &info.name, 100.0);
                            (info, out, t.elapsed().as_millis() as u64)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(&to_run)
                    .map(|(h, &i)| {
                        h.join().unwrap_or_else(|_| {
                            let info = extractors[i].info();
                            let err = EngineError::Task(format!("stage {} panicked", info.name));
                            (info, Err(err), 0)
                        })
                    })
                    .collect()
            });
        for &i in &to_run {
            ran.extend(provided_names(extractors[i].as_ref()));
        }
        let mut failure = None;
        for (info, out, ms) in results {
            match out {
                Ok(data) => apply_stage(sidecar, info, ms, data),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_some() {
            return failure;
        }
    }
    None
}

fn copy_stage(from: &Sidecar, to: &mut Sidecar, info: &ExtractorInfo) {
    let same = |b: &ExtractorInfo| b == info;
    if from.transcript.as_ref().is_some_and(|b| same(&b.extractor)) {
        to.transcript = from.transcript.clone();
    }
    if from.ocr.as_ref().is_some_and(|b| same(&b.extractor)) {
        to.ocr = from.ocr.clone();
    }
    if from.faces.as_ref().is_some_and(|b| same(&b.extractor)) {
        to.faces = from.faces.clone();
    }
    if from.visual.as_ref().is_some_and(|b| same(&b.extractor)) {
        to.visual = from.visual.clone();
    }
    for (name, block) in &from.embeddings {
        if same(&block.extractor) {
            to.embeddings.insert(name.clone(), block.clone());
        }
    }
    for (name, block) in &from.extensions {
        if same(&block.extractor) {
            to.extensions.insert(name.clone(), block.clone());
        }
    }
}
