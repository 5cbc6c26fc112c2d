//! [`SqliteStore`]: the embedded [`Store`] on one SQLite file (sqlx, WAL mode).
//!
//! Schema (see `migrations/sqlite/`): `sources`, `assets`, `jobs` and `segments`, each keyed by
//! `(tenant, id)` (segments by `(tenant, asset, id)`); every statement filters by tenant, which
//! is how the store keeps tenants apart. Job state is stored flat (`state` name + `stage`,
//! `percent`, `reason`), timestamps as integer milliseconds, segment tags as a JSON array.
//!
//! There are no foreign keys between the tables on purpose: the [`Store`] contract lets a
//! caller create a job or segments before (or without) the asset, and the Postgres store must
//! behave the same. [`Store::delete_asset`] removes the dependent rows in one transaction.
//!
//! The same database also holds the persisted queue of [`crate::queue::LocalQueue`]
//! (`queue_messages`), which is why [`SqliteStore::pool`] is public.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use heimdex_core::model::{
    Asset, AssetId, AssetState, Job, JobId, Person, Segment, Source, SourceId, TenantId,
};
use heimdex_core::store::{AssetQuery, JobQuery, PersonsUpdate, Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use super::rows::{
    Columns, StoredRow, asset_from_row, counts_by_state, job_from_row, job_state_columns, limit,
    persons_from_rows, segment_from_row, source_from_row, to_i64,
};

/// The store's migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Backend name used in [`StoreError::Backend`].
const STORE: &str = "sqlite";
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file-backed pool: one. SQLite has one writer at a time anyway, and with
/// several connections in one process a connection whose read snapshot went stale fails its
/// write at once with "database is locked" (SQLITE_BUSY_SNAPSHOT is not retried by the busy
/// timeout; seen once in CI). One connection serialises this process's statements (each is
/// sub-millisecond next to media work); other processes are still waited for by the busy
/// timeout, and WAL lets them read while this one writes.
const FILE_POOL_SIZE: u32 = 1;
/// Optimistic retries of [`Store::update_job`] when another writer changed the state between
/// the read and the conditional write.
const UPDATE_RETRIES: usize = 8;

/// Private error of the SQLite backend; callers see [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
enum SqliteError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("running migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Value(String),
    #[error("job {0}: concurrent updates kept changing its state")]
    Contended(String),
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        let transient = matches!(&e, SqliteError::Sqlx(s) if is_transient(s));
        StoreError::backend(STORE, transient, e)
    }
}

/// Whether an sqlx error is worth retrying: the pool gave no connection in time, the file
/// could not be read, or another connection holds a lock (SQLITE_BUSY / SQLITE_LOCKED and
/// their extended codes).
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Shorthand: any sqlx error as a [`StoreError::Backend`].
fn db(e: sqlx::Error) -> StoreError {
    SqliteError::Sqlx(e).into()
}

/// The embedded [`Store`]: one SQLite database file (or an in-memory database for tests).
///
/// Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if missing, with parent directories) the database at `path`, in WAL mode
    /// with a busy timeout and foreign keys on, and apply pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| SqliteError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // Two processes opening a new database at once would both switch it to WAL and both
        // apply the first migration ("table sources already exists"): set up under an
        // exclusive lock on a file beside the database, released when this function returns
        // (or the process ends). Opening an existing database takes it only briefly.
        let _setting_up = lock_file(&path.with_extension("db-setup.lock")).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // WAL is a property of the database file. Switching to it takes an exclusive lock
        // that the busy timeout does not wait for, so it is done once, here, on a single
        // connection — not by every pooled connection, where a connection opened while
        // another one writes would fail with "database is locked".
        {
            let mut conn = options.clone().connect().await.map_err(db)?;
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await
                .map_err(db)?;
            if !mode.eq_ignore_ascii_case("wal") {
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut conn)
                    .await
                    .map_err(db)?;
            }
            conn.close().await.map_err(db)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::from_pool(pool).await
    }

    /// A fresh private in-memory database, for tests. It lives as long as this store (and its
    /// clones): the pool holds exactly one connection that is never closed, because every new
    /// connection to `:memory:` would see a different, empty database.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db)?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::from_pool(pool).await
    }

    /// Wrap an existing pool and apply pending migrations to it.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await.map_err(SqliteError::from)?;
        Ok(Self { pool })
    }

    /// The connection pool (shared with [`crate::queue::LocalQueue`]).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Close every connection, waiting for running statements to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Take an exclusive advisory lock on `path` (created if missing), waiting for it.
async fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|source| SqliteError::Io {
                path: path.clone(),
                source,
            })?;
        Ok::<_, StoreError>(file)
    })
    .await
    .map_err(|e| SqliteError::Value(format!("migration lock task: {e}")))?
}

// ---- row <-> model conversion (shared in `rows`) -----------------------------------------

impl StoredRow for SqliteRow {
    fn percent(&self) -> Result<Option<f32>, StoreError> {
        // Stored from an f32, so the narrowing is exact.
        Ok(self.opt_real("percent")?.map(|p| p as f32))
    }

    fn tags(&self) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(&self.text("tags")?)
            .map_err(|e| StoreError::Corrupt(format!("segment tags: {e}")))
    }

    fn centroid(&self) -> Result<Vec<f32>, StoreError> {
        serde_json::from_str(&self.text("centroid")?)
            .map_err(|e| StoreError::Corrupt(format!("person centroid: {e}")))
    }
}

// ---- the Store ------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_source(&self, source: &Source) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sources (tenant, id, kind, uri, cursor, options, synced_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant, id) DO UPDATE SET
                 kind = excluded.kind, uri = excluded.uri, cursor = excluded.cursor,
                 options = excluded.options, synced_ms = excluded.synced_ms",
        )
        .bind(source.tenant.as_str())
        .bind(source.id.as_str())
        .bind(&source.kind)
        .bind(&source.uri)
        .bind(source.cursor.as_deref())
        .bind(
            serde_json::to_string(&source.options)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .bind(source.synced_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_source(
        &self,
        tenant: &TenantId,
        id: &SourceId,
    ) -> Result<Option<Source>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, id, kind, uri, cursor, options, synced_ms FROM sources WHERE tenant = ?1 AND id = ?2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(source_from_row).transpose()
    }

    async fn list_sources(&self, tenant: &TenantId) -> Result<Vec<Source>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, id, kind, uri, cursor, options, synced_ms FROM sources WHERE tenant = ?1 ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(source_from_row).collect()
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT tenant FROM sources ORDER BY tenant")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(t,)| TenantId::new(t)).collect())
    }

    async fn upsert_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let sidecar = asset.sidecar.as_ref();
        sqlx::query(
            "INSERT INTO assets (tenant, id, source, object_key, version, size, state,
                 sidecar_location, sidecar_schema_version, sidecar_asset_version, duration_s,
                 updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (tenant, id) DO UPDATE SET
                 source = excluded.source, object_key = excluded.object_key,
                 version = excluded.version, size = excluded.size, state = excluded.state,
                 sidecar_location = excluded.sidecar_location,
                 sidecar_schema_version = excluded.sidecar_schema_version,
                 sidecar_asset_version = excluded.sidecar_asset_version,
                 duration_s = excluded.duration_s, updated_ms = excluded.updated_ms",
        )
        .bind(asset.tenant.as_str())
        .bind(asset.id.as_str())
        .bind(asset.source.as_str())
        .bind(&asset.key)
        .bind(&asset.version)
        .bind(to_i64("asset size", asset.size, SqliteError::Value)?)
        .bind(asset.state.as_str())
        .bind(sidecar.map(|s| s.location.as_str()))
        .bind(sidecar.map(|s| i64::from(s.schema_version)))
        .bind(sidecar.map(|s| s.asset_version.as_str()))
        .bind(asset.duration_s)
        .bind(asset.updated_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_asset(
        &self,
        tenant: &TenantId,
        id: &AssetId,
    ) -> Result<Option<Asset>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, id, source, object_key, version, size, state, sidecar_location,
                 sidecar_schema_version, sidecar_asset_version, duration_s, updated_ms
             FROM assets WHERE tenant = ?1 AND id = ?2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn list_assets(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, id, source, object_key, version, size, state, sidecar_location,
                 sidecar_schema_version, sidecar_asset_version, duration_s, updated_ms
             FROM assets
             WHERE tenant = ?1
               AND (?2 IS NULL OR source = ?2)
               AND (?3 IS NULL OR state = ?3)
               AND (?4 IS NULL OR id > ?4)
             ORDER BY id
             LIMIT ?5",
        )
        .bind(query.tenant.as_str())
        .bind(query.source.as_ref().map(SourceId::as_str))
        .bind(query.state.map(AssetState::as_str))
        .bind(query.after.as_ref().map(AssetId::as_str))
        .bind(limit(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(asset_from_row).collect()
    }

    async fn delete_asset(&self, tenant: &TenantId, id: &AssetId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let deleted = sqlx::query("DELETE FROM assets WHERE tenant = ?1 AND id = ?2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        sqlx::query("DELETE FROM jobs WHERE tenant = ?1 AND asset = ?2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM segments WHERE tenant = ?1 AND asset = ?2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        let (state, stage, percent, reason) = job_state_columns::<f64>(&job.state);
        sqlx::query(
            "INSERT INTO jobs (tenant, id, kind, asset, asset_version, state, stage, percent,
                 reason, attempts, last_error, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(job.tenant.as_str())
        .bind(job.id.as_str())
        .bind(job.kind.as_str())
        .bind(job.asset.as_str())
        .bind(&job.asset_version)
        .bind(state)
        .bind(stage)
        .bind(percent)
        .bind(reason)
        .bind(i64::from(job.attempts))
        .bind(job.last_error.as_deref())
        .bind(job.created_ms)
        .bind(job.updated_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query("SELECT * FROM jobs WHERE tenant = ?1 AND id = ?2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let (state, stage, percent, reason) = job_state_columns::<f64>(&job.state);
        // Optimistic concurrency: legality depends only on the current state's name, so the
        // write is conditional on that name; if another writer changed it in between, re-read.
        for _ in 0..UPDATE_RETRIES {
            let Some(current) = self.get_job(&job.tenant, &job.id).await? else {
                return Err(StoreError::NotFound {
                    entity: "job",
                    id: job.id.to_string(),
                });
            };
            if !current.state.can_transition_to(&job.state) {
                return Err(StoreError::InvalidTransition {
                    id: job.id.to_string(),
                    from: current.state.name(),
                    to: job.state.name(),
                });
            }
            let updated = sqlx::query(
                "UPDATE jobs SET state = ?1, stage = ?2, percent = ?3, reason = ?4,
                     attempts = ?5, last_error = ?6, updated_ms = ?7
                 WHERE tenant = ?8 AND id = ?9 AND state = ?10",
            )
            .bind(state)
            .bind(stage)
            .bind(percent)
            .bind(reason)
            .bind(i64::from(job.attempts))
            .bind(job.last_error.as_deref())
            .bind(job.updated_ms)
            .bind(job.tenant.as_str())
            .bind(job.id.as_str())
            .bind(current.state.name())
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
            if updated == 1 {
                return Ok(());
            }
        }
        Err(SqliteError::Contended(job.id.to_string()).into())
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs
             WHERE tenant = ?1
               AND (?2 IS NULL OR asset = ?2)
               AND (?3 IS NULL OR state = ?3)
             ORDER BY created_ms DESC, id DESC
             LIMIT ?4",
        )
        .bind(query.tenant.as_str())
        .bind(query.asset.as_ref().map(AssetId::as_str))
        .bind(query.state.as_deref())
        .bind(limit(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn replace_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
        segments: &[Segment],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM segments WHERE tenant = ?1 AND asset = ?2")
            .bind(tenant.as_str())
            .bind(asset.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for s in segments {
            let tags = serde_json::to_string(&s.tags)
                .map_err(|e| SqliteError::Value(format!("segment {} tags: {e}", s.id)))?;
            sqlx::query(
                "INSERT INTO segments (tenant, asset, id, kind, start_s, end_s, content,
                     thumbnail, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(tenant.as_str())
            .bind(asset.as_str())
            .bind(&s.id)
            .bind(s.kind.as_str())
            .bind(s.start_s)
            .bind(s.end_s)
            .bind(&s.text)
            .bind(s.thumbnail.as_deref())
            .bind(tags)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn list_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
    ) -> Result<Vec<Segment>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, start_s, end_s, content, thumbnail, tags FROM segments
             WHERE tenant = ?1 AND asset = ?2
             ORDER BY start_s, end_s, id",
        )
        .bind(tenant.as_str())
        .bind(asset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(segment_from_row).collect()
    }

    async fn upsert_person(&self, person: &Person) -> Result<(), StoreError> {
        person_upsert(person)?
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn update_persons(
        &self,
        tenant: &TenantId,
        apply: &PersonsUpdate<'_>,
    ) -> Result<Vec<Person>, StoreError> {
        // IMMEDIATE takes the database's write lock before reading, so two processes cannot
        // both read the same persons and then both write (the busy timeout waits for the
        // other's transaction to end).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let rows = select_persons(tenant)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let current = persons_from_rows(tenant, &rows)?;
        let changed = apply(&current);
        for p in &changed {
            if p.tenant != *tenant {
                return Err(SqliteError::Value(format!(
                    "person {} belongs to tenant {}, not {tenant}",
                    p.id, p.tenant
                ))
                .into());
            }
            person_upsert(p)?.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(changed)
    }

    async fn list_persons(&self, tenant: &TenantId) -> Result<Vec<Person>, StoreError> {
        let rows = select_persons(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        persons_from_rows(tenant, &rows)
    }

    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM assets WHERE tenant = ?1 GROUP BY state")
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let known = [AssetState::Pending, AssetState::Indexed, AssetState::Failed];
        counts_by_state(&rows, known.map(AssetState::as_str))
    }

    async fn job_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs WHERE tenant = ?1 GROUP BY state")
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        counts_by_state(&rows, ["pending", "processing", "completed", "failed"])
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn select_persons(tenant: &TenantId) -> SqliteQuery<'_> {
    sqlx::query(
        "SELECT id, name, centroid, faces, updated_ms FROM persons WHERE tenant = ?1 ORDER BY id",
    )
    .bind(tenant.as_str())
}

fn person_upsert(person: &Person) -> Result<SqliteQuery<'_>, StoreError> {
    let centroid = serde_json::to_string(&person.centroid)
        .map_err(|e| SqliteError::Value(format!("person {} centroid: {e}", person.id)))?;
    let faces = i64::try_from(person.faces)
        .map_err(|_| SqliteError::Value(format!("person {} faces out of range", person.id)))?;
    Ok(sqlx::query(
        "INSERT INTO persons (tenant, id, name, centroid, faces, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name,
             centroid = excluded.centroid, faces = excluded.faces,
             updated_ms = excluded.updated_ms",
    )
    .bind(person.tenant.as_str())
    .bind(&person.id)
    .bind(person.name.as_deref())
    .bind(centroid)
    .bind(faces)
    .bind(person.updated_ms))
}
