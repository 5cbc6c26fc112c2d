//! The Store is the truth; the index is derived and can always be rebuilt.
//!
//! - [`Engine::reconcile`] re-enqueues every unfinished job the Store knows (enqueueing is
//!   idempotent), closing the gap a crash leaves between writing a job and enqueueing it.
//! - [`Engine::check`] compares the Store with the Index and the media store: indexed
//!   assets without documents, documents of assets the Store does not know, indexed assets
//!   without a sidecar, sidecars and thumbnails of assets the Store does not know.
//! - [`Engine::repair`] fixes what `check` found: documents are rebuilt from the stored
//!   sidecars (no model runs), orphans are deleted, assets without a sidecar are queued.
//! - [`Engine::reindex`] rebuilds the whole index of a tenant from its sidecars.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use heimdex_core::model::{Asset, AssetId, AssetState, SourceId, TenantId};
use heimdex_core::queue::QueueMessage;
use heimdex_core::store::JobQuery;
use object_store::ObjectStoreExt;

use super::worker::{sidecar_location, tenant_prefix};
use super::{Engine, EngineError, source_display_path};

/// What [`Engine::check`] found. Empty lists mean the Store, Index and media agree.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Assets looked at.
    pub assets_checked: u64,
    /// Assets the Store says are indexed whose documents the Index lacks.
    pub missing_documents: Vec<AssetId>,
    /// Assets with documents in the Index that the Store does not know.
    pub orphan_documents: Vec<AssetId>,
    /// Assets the Store says are indexed whose sidecar is missing.
    pub missing_sidecars: Vec<AssetId>,
    /// Media objects (sidecars, thumbnails) of assets the Store does not know.
    pub orphan_media: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is out of place.
    pub fn is_clean(&self) -> bool {
        self.missing_documents.is_empty()
            && self.orphan_documents.is_empty()
            && self.missing_sidecars.is_empty()
            && self.orphan_media.is_empty()
    }
}

/// What [`Engine::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// Assets whose documents were rebuilt from their sidecars.
    pub documents_restored: u64,
    /// Assets whose orphan documents were deleted.
    pub documents_removed: u64,
    /// Assets queued for extraction again (their sidecar was missing).
    pub assets_requeued: u64,
    /// Orphan media objects deleted.
    pub media_removed: u64,
}

/// What [`Engine::reindex`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReindexReport {
    /// Assets whose documents were rebuilt.
    pub assets: u64,
    /// Documents written.
    pub documents: u64,
    /// Indexed assets without a sidecar, queued for extraction instead.
    pub requeued: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Sidecars read at once while rebuilding.
const READ_AHEAD: usize = 8;

impl Engine {
    /// Enqueue every pending or processing job of `tenant` again. Enqueueing a job the queue
    /// already holds does nothing, so this only adds what a crash lost between the Store and
    /// the Queue. A job the queue dead-lettered without a worker recording it (its lease ran
    /// out on the last attempt: the job killed its worker every time) is recorded as failed
    /// with the queue's reason instead of being revived. Returns how many jobs were looked at.
    pub async fn reconcile(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        let dead: BTreeMap<_, _> = self
            .queue
            .dead_letters()
            .await?
            .into_iter()
            .filter(|d| d.message.tenant == *tenant)
            .map(|d| (d.message.job.clone(), d))
            .collect();
        let mut n = 0;
        for state in ["pending", "processing"] {
            let mut q = JobQuery::tenant(tenant.clone());
            q.state = Some(state.into());
            q.limit = Some(u32::MAX);
            for mut job in self.store.list_jobs(&q).await? {
                if let Some(d) = dead.get(&job.id) {
                    let reason = format!(
                        "{} (gave up after {} attempts)",
                        if d.reason.is_empty() {
                            "the worker stopped during the job"
                        } else {
                            d.reason.as_str()
                        },
                        d.attempts
                    );
                    tracing::warn!(%tenant, job = %job.id, %reason, "dead-lettered by the queue: failed");
                    job.attempts = d.attempts;
                    job.last_error = Some(reason.clone());
                    job.state = heimdex_core::model::JobState::Failed { reason };
                    job.updated_ms = heimdex_core::time_util::now_ms();
                    self.store.update_job(&job).await?;
                    if let Some(mut asset) = self.store.get_asset(tenant, &job.asset).await?
                        && asset.version == job.asset_version
                        && asset.state != AssetState::Indexed
                    {
                        asset.state = AssetState::Failed;
                        asset.updated_ms = job.updated_ms;
                        self.store.upsert_asset(&asset).await?;
                    }
                    n += 1;
                    continue;
                }
                self.queue
                    .enqueue(&QueueMessage {
                        tenant: tenant.clone(),
                        job: job.id.clone(),
                    })
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Compare the Store with the Index and the media store for `tenant` (only the assets of
    /// `sources` when given; orphans are looked for only when checking every source).
    pub async fn check(
        &self,
        tenant: &TenantId,
        sources: Option<&[SourceId]>,
    ) -> Result<CheckReport, EngineError> {
        let assets = self.assets(tenant).await?;
        let in_scope = |a: &Asset| sources.is_none_or(|s| s.contains(&a.source));
        let counts = self.index.asset_counts(tenant).await?;
        let mut report = CheckReport::default();
        // A whole-tenant check lists the media store once (it needs every object to find
        // orphans); a check of some sources (every `index` run) asks only for the sidecars
        // of their indexed assets instead of listing every thumbnail of the tenant.
        let media = match sources {
            None => Some(self.media_objects(tenant).await?),
            Some(_) => None,
        };
        let indexed: Vec<&Asset> = assets
            .iter()
            .filter(|a| in_scope(a))
            .inspect(|_| report.assets_checked += 1)
            .filter(|a| a.state == AssetState::Indexed)
            .collect();
        let sidecars: BTreeSet<AssetId> = match &media {
            Some(objects) => objects
                .iter()
                .filter(|(asset, location)| {
                    *location == sidecar_location(tenant, asset).to_string()
                })
                .map(|(asset, _)| asset.clone())
                .collect(),
            None => self.sidecars_present(tenant, &indexed).await?,
        };
        for a in indexed {
            if !sidecars.contains(&a.id) {
                report.missing_sidecars.push(a.id.clone());
            } else if counts.get(&a.id).copied().unwrap_or(0) == 0 {
                report.missing_documents.push(a.id.clone());
            }
        }
        if let Some(objects) = media {
            let known: BTreeSet<&AssetId> = assets.iter().map(|a| &a.id).collect();
            report.orphan_documents = counts
                .keys()
                .filter(|id| !known.contains(id))
                .cloned()
                .collect();
            report.orphan_media = objects
                .into_iter()
                .filter(|(asset, _)| !known.contains(asset))
                .map(|(_, location)| location)
                .collect();
        }
        Ok(report)
    }

    /// Fix what [`check`](Self::check) found (see the module docs), then flush the index.
    pub async fn repair(
        &self,
        tenant: &TenantId,
        found: &CheckReport,
    ) -> Result<RepairReport, EngineError> {
        let mut report = RepairReport::default();
        let restore: Vec<Asset> = self.assets_by_id(tenant, &found.missing_documents).await?;
        report.documents_restored = self.rebuild(tenant, &restore).await?.0;
        for id in &found.orphan_documents {
            self.index.delete_asset(tenant, id).await?;
            report.documents_removed += 1;
        }
        for id in &found.missing_sidecars {
            self.reindex_asset(tenant, id).await?;
            report.assets_requeued += 1;
        }
        for location in &found.orphan_media {
            match self.media.delete(&location.as_str().into()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => report.media_removed += 1,
                Err(e) => return Err(EngineError::media(e)),
            }
        }
        self.index.flush().await?;
        Ok(report)
    }

    /// Rebuild every document of `tenant` from the stored sidecars, without running any
    /// extraction: the index afterwards holds exactly what jobs would have written. Assets
    /// the Store does not list lose their documents; indexed assets without a sidecar are
    /// queued for extraction. Flushes the index.
    pub async fn reindex(&self, tenant: &TenantId) -> Result<ReindexReport, EngineError> {
        let started = Instant::now();
        let assets = self.assets(tenant).await?;
        let known: BTreeSet<&AssetId> = assets.iter().map(|a| &a.id).collect();
        for id in self.index.asset_counts(tenant).await?.keys() {
            if !known.contains(id) {
                self.index.delete_asset(tenant, id).await?;
            }
        }
        let indexed: Vec<Asset> = assets
            .iter()
            .filter(|a| a.state == AssetState::Indexed)
            .cloned()
            .collect();
        let (rebuilt, documents, requeued) = self.rebuild(tenant, &indexed).await?;
        self.index.flush().await?;
        Ok(ReindexReport {
            assets: rebuilt,
            documents,
            requeued,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Re-derive the documents of `assets` from their sidecars. Returns (assets rebuilt,
    /// documents written, assets queued because their sidecar was missing).
    async fn rebuild(
        &self,
        tenant: &TenantId,
        assets: &[Asset],
    ) -> Result<(u64, u64, u64), EngineError> {
        let sources: BTreeMap<SourceId, heimdex_core::Source> = self
            .store
            .list_sources(tenant)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let mut reads = futures::stream::iter(assets.iter().map(|a| async move {
            let sidecar = self.sidecar(tenant, &a.id).await;
            (a, sidecar)
        }))
        .buffered(READ_AHEAD);
        let (mut rebuilt, mut documents, mut requeued) = (0, 0, 0);
        while let Some((asset, sidecar)) = reads.next().await {
            match sidecar {
                Ok(sidecar) => {
                    let path = match sources.get(&asset.source) {
                        Some(src) => source_display_path(src, &asset.key),
                        None => asset.key.clone(),
                    };
                    documents += self.index_sidecar(asset, &path, &sidecar).await? as u64;
                    rebuilt += 1;
                }
                Err(EngineError::NoSidecar(_)) => {
                    self.reindex_asset(tenant, &asset.id).await?;
                    requeued += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((rebuilt, documents, requeued))
    }

    async fn assets_by_id(
        &self,
        tenant: &TenantId,
        ids: &[AssetId],
    ) -> Result<Vec<Asset>, EngineError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.store.get_asset(tenant, id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Which of `assets` have a sidecar in the media store (one `head` each, a few at once).
    async fn sidecars_present(
        &self,
        tenant: &TenantId,
        assets: &[&Asset],
    ) -> Result<BTreeSet<AssetId>, EngineError> {
        let mut heads = futures::stream::iter(assets.iter().map(|a| async move {
            let found = self.media.head(&sidecar_location(tenant, &a.id)).await;
            (a.id.clone(), found)
        }))
        .buffer_unordered(READ_AHEAD);
        let mut present = BTreeSet::new();
        while let Some((id, found)) = heads.next().await {
            match found {
                Ok(_) => {
                    present.insert(id);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(EngineError::media(e)),
            }
        }
        Ok(present)
    }

    /// Every media object of `tenant` with the asset it belongs to
    /// (`TENANT/sidecars/ASSET.json`, `TENANT/thumbs/ASSET/…`).
    async fn media_objects(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(AssetId, String)>, EngineError> {
        let prefix = tenant_prefix(tenant);
        let metas: Vec<object_store::ObjectMeta> = self
            .media
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(EngineError::media)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let parts: Vec<String> = m
                    .location
                    .prefix_match(&prefix)?
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                let asset = match parts.as_slice() {
                    [kind, file] if kind == "sidecars" => file.strip_suffix(".json")?.to_owned(),
                    [kind, asset, ..] if kind == "thumbs" => asset.clone(),
                    _ => return None,
                };
                Some((AssetId::new(asset), m.location.to_string()))
            })
            .collect())
    }
}
