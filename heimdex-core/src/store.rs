//! The [`Store`] trait: durable metadata (sources, assets, jobs, segments).

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::ErrorKind;
use crate::model::{
    Asset, AssetId, AssetState, Job, JobId, Person, Segment, Source, SourceId, TenantId,
};

/// Errors of any store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("{entity} not found: {id}")]
    NotFound {
        /// `asset`, `job`, `source`.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// A job state change that the state machine forbids.
    #[error("job {id}: illegal transition {from} -> {to}")]
    InvalidTransition {
        /// Job id.
        id: String,
        /// Current state name.
        from: &'static str,
        /// Requested state name.
        to: &'static str,
    },
    /// A stored value could not be decoded (corrupt or from a newer version).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend is unreachable, busy or timed out; retrying later may succeed.
    #[error("{store} unavailable: {source}")]
    Unavailable {
        /// Backend name.
        store: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other backend error.
    #[error("{store} error: {source}")]
    Backend {
        /// Backend name.
        store: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A backend's own error: [`StoreError::Unavailable`] when `transient` (retrying later
    /// may succeed), else [`StoreError::Backend`]. Backends decide `transient` from their
    /// typed errors and convert with this one function.
    pub fn backend(
        store: &'static str,
        transient: bool,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let source = Box::new(source);
        if transient {
            Self::Unavailable { store, source }
        } else {
            Self::Backend { store, source }
        }
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::InvalidTransition { .. } => ErrorKind::Conflict,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Corrupt(_) | Self::Backend { .. } => ErrorKind::Internal,
        }
    }
}

/// Which assets to list. Fields may be added.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssetQuery {
    /// Tenant (always required).
    pub tenant: TenantId,
    /// Only this source.
    pub source: Option<SourceId>,
    /// Only this state.
    pub state: Option<AssetState>,
    /// Keyset pagination: only ids greater than this.
    pub after: Option<AssetId>,
    /// Page size (default 1000).
    pub limit: Option<u32>,
}

impl AssetQuery {
    /// All assets of `tenant`.
    pub fn tenant(tenant: TenantId) -> Self {
        Self {
            tenant,
            source: None,
            state: None,
            after: None,
            limit: None,
        }
    }
}

/// Which jobs to list. Fields may be added.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobQuery {
    /// Tenant (always required).
    pub tenant: TenantId,
    /// Only jobs of this asset.
    pub asset: Option<AssetId>,
    /// Only jobs in this state (by [`crate::model::JobState::name`]).
    pub state: Option<String>,
    /// Maximum number, newest first (default 1000).
    pub limit: Option<u32>,
}

impl JobQuery {
    /// All jobs of `tenant`.
    pub fn tenant(tenant: TenantId) -> Self {
        Self {
            tenant,
            asset: None,
            state: None,
            limit: None,
        }
    }
}

/// The change function of [`Store::update_persons`]: current persons in, persons to write
/// out.
pub type PersonsUpdate<'a> = dyn Fn(&[Person]) -> Vec<Person> + Send + Sync + 'a;

/// Durable metadata.
///
/// # Contract
/// - Every call is scoped to one tenant; no call returns or changes another tenant's rows.
/// - `upsert_*` insert or fully replace by primary key ((tenant, id)).
/// - [`update_job`](Store::update_job) refuses transitions that
///   [`JobState::can_transition_to`](crate::model::JobState::can_transition_to) forbids with
///   [`StoreError::InvalidTransition`], and [`StoreError::NotFound`] for unknown jobs.
/// - [`delete_asset`](Store::delete_asset) removes the asset with its jobs and segments and
///   returns whether it existed.
/// - Listing is deterministic: assets by id, jobs newest first.
/// - [`update_persons`](Store::update_persons) is atomic across processes.
/// - A backend that is busy, unreachable or timed out answers [`StoreError::Unavailable`].
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Insert or replace a source.
    async fn upsert_source(&self, source: &Source) -> Result<(), StoreError>;
    /// One source.
    async fn get_source(
        &self,
        tenant: &TenantId,
        id: &SourceId,
    ) -> Result<Option<Source>, StoreError>;
    /// All sources of a tenant, by id.
    async fn list_sources(&self, tenant: &TenantId) -> Result<Vec<Source>, StoreError>;
    /// Every tenant that has registered a source, in id order: the tenant directory a
    /// scheduler or a worker process walks (reconcile, scheduled sync). It reveals tenant
    /// ids only, never a tenant's data.
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// Insert or replace an asset.
    async fn upsert_asset(&self, asset: &Asset) -> Result<(), StoreError>;
    /// One asset.
    async fn get_asset(&self, tenant: &TenantId, id: &AssetId)
    -> Result<Option<Asset>, StoreError>;
    /// A page of assets.
    async fn list_assets(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError>;
    /// Delete an asset, its jobs and its segments.
    async fn delete_asset(&self, tenant: &TenantId, id: &AssetId) -> Result<bool, StoreError>;

    /// Insert a new job.
    async fn create_job(&self, job: &Job) -> Result<(), StoreError>;
    /// One job.
    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> Result<Option<Job>, StoreError>;
    /// Replace a job's mutable fields (state, attempts, last_error), enforcing the state machine.
    async fn update_job(&self, job: &Job) -> Result<(), StoreError>;
    /// Jobs matching a query, newest first.
    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError>;

    /// Replace all segments of an asset.
    async fn replace_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
        segments: &[Segment],
    ) -> Result<(), StoreError>;
    /// Segments of an asset, by start time.
    async fn list_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
    ) -> Result<Vec<Segment>, StoreError>;

    /// Insert or replace a person (face cluster).
    async fn upsert_person(&self, person: &Person) -> Result<(), StoreError>;
    /// Atomically read, change and write a tenant's persons: `apply` receives every person
    /// of `tenant` (by id) and returns the persons to insert or replace. The read and the
    /// writes form one transaction that excludes every other `update_persons` of the tenant,
    /// in this process and in others, so concurrent workers agree on person ids. `apply` may
    /// be called more than once (a backend may retry a transaction that lost a race), so it
    /// must not have side effects beyond its return value. Returns the persons written.
    async fn update_persons(
        &self,
        tenant: &TenantId,
        apply: &PersonsUpdate<'_>,
    ) -> Result<Vec<Person>, StoreError>;
    /// All persons of a tenant, by id.
    async fn list_persons(&self, tenant: &TenantId) -> Result<Vec<Person>, StoreError>;

    /// Asset counts by state name.
    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError>;
    /// Job counts by state name.
    async fn job_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError>;
}
