//! [`PostgresStore`]: the server [`Store`] on Postgres (sqlx), with row-level security per
//! tenant.
//!
//! # Isolation
//!
//! Tenants are kept apart by the database, not by the application remembering a `WHERE`
//! clause. The migrations (`migrations/postgres/`) give every table (`sources`, `assets`,
//! `jobs`, `segments`, `persons`) `ENABLE` and `FORCE ROW LEVEL SECURITY` and one policy for
//! every command, `tenant = current_setting('heimdex.tenant', true)` (for both `USING` and
//! `WITH CHECK`). Every call of this store runs in one transaction that first does
//! `SELECT set_config('heimdex.tenant', $1, true)` (a `SET LOCAL`, gone at commit, so a pooled
//! connection never carries a tenant into its next use). A statement with no tenant set sees
//! and changes nothing; with tenant A set, a row of tenant B can be neither read, updated,
//! deleted nor inserted. The queries still filter by tenant, for the indexes; the tests in
//! `tests/postgres_store.rs` run raw SQL as the application role to show that isolation holds
//! without that filter.
//!
//! # Roles and configuration
//!
//! Two connections, two roles:
//!
//! - `HEIMDEX_DATABASE_URL` ([`PostgresConfig::url`]): what the API and the workers use. Its
//!   role must be a member of the group role `heimdex_app`, which the migrations create
//!   (`NOLOGIN`, no `BYPASSRLS`) and grant only `SELECT`, `INSERT`, `UPDATE`, `DELETE` on the
//!   five tables. [`PostgresStore::connect`] refuses a role that is a superuser, has (or can
//!   `SET ROLE` to a role with) `BYPASSRLS`, or can act as the tables' owner — any of which
//!   would switch the policies off — and a database whose tables lack row-level security.
//! - `HEIMDEX_DATABASE_ADMIN_URL` ([`PostgresConfig::admin_url`], optional): the owner of the
//!   schema, used only to run the migrations ([`PostgresStore::migrate`]). It needs
//!   `CREATEROLE` the first time (to create `heimdex_app`) unless that role already exists.
//!   Without it, `connect` expects the schema to be migrated already (for example by a
//!   separate deploy step) and says so if it is not.
//!
//! A typical setup, once, as a superuser:
//!
//! ```sql
//! CREATE ROLE heimdex_owner LOGIN PASSWORD '...' CREATEROLE;
//! CREATE DATABASE heimdex OWNER heimdex_owner;
//! -- first start with HEIMDEX_DATABASE_ADMIN_URL=postgres://heimdex_owner:...@host/heimdex
//! -- (creates heimdex_app, the tables and the policies), then:
//! CREATE ROLE heimdex_api LOGIN PASSWORD '...' IN ROLE heimdex_app;
//! -- HEIMDEX_DATABASE_URL=postgres://heimdex_api:...@host/heimdex
//! ```
//!
//! `heimdex_app` is cluster-wide: a login role in it may use the tables of every Heimdex
//! database of the cluster it can connect to (still under row-level security).
//!
//! Because `FORCE` makes the policies apply to the owner too (when it is not a superuser), an
//! operator inspecting data as `heimdex_owner` sets the tenant first:
//! `BEGIN; SELECT set_config('heimdex.tenant', 'acme', true); ...`.
//!
//! # Concurrency
//!
//! Startups may migrate at once: sqlx's migrator holds `pg_advisory_lock` (keyed by the
//! database name) on the one admin connection while it checks and applies migrations, and the
//! one cluster-wide step, creating `heimdex_app`, tolerates a concurrent creation.
//! [`Store::update_job`] locks the job row (`SELECT ... FOR UPDATE`) while it checks the state
//! machine, so concurrent updates of one job are serialised rather than retried.
//! [`Store::update_persons`] takes a transaction-scoped advisory lock per tenant, so read,
//! `apply` and writes exclude every other `update_persons` of the tenant in any process; a
//! transaction that still fails with a serialization failure or deadlock is retried (calling
//! `apply` again).
//!
//! # Errors
//!
//! Connection failures, pool timeouts, serialization failures and deadlocks (`40001`,
//! `40P01`), server shutdown or start-up (`57P01`–`57P03`), too many connections (`53300`),
//! lock and statement timeouts (`55P03`, `57014`) answer [`StoreError::Unavailable`]; the rest
//! [`StoreError::Backend`].

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use heimdex_core::model::{
    Asset, AssetId, AssetState, Job, JobId, Person, Segment, Source, SourceId, TenantId,
};
use heimdex_core::store::{AssetQuery, JobQuery, PersonsUpdate, Store, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};

use super::rows::{
    StoredRow, asset_from_row, col, counts_by_state, job_from_row, job_state_columns, limit,
    persons_from_rows, segment_from_row, source_from_row, to_i64,
};

/// The store's migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Environment variable naming the application role's connection URL.
pub const ENV_DATABASE_URL: &str = "HEIMDEX_DATABASE_URL";
/// Environment variable naming the admin (migrations) connection URL.
pub const ENV_DATABASE_ADMIN_URL: &str = "HEIMDEX_DATABASE_ADMIN_URL";
/// The group role the migrations create and grant the application's privileges to.
pub const APP_ROLE: &str = "heimdex_app";
/// The tables under row-level security.
pub const TENANT_TABLES: [&str; 5] = ["sources", "assets", "jobs", "segments", "persons"];

/// Backend name used in [`StoreError`].
const STORE: &str = "postgres";
/// Attempts of [`Store::update_persons`] when its transaction loses a serialization race.
const PERSONS_ATTEMPTS: usize = 5;
/// First key of the two-key advisory lock of [`Store::update_persons`] ("HDXP"); the second
/// key is a hash of the tenant. The two-key space is separate from the one-key space that
/// sqlx's migration lock uses.
const PERSONS_LOCK_CLASS: i32 = 0x4844_5850;

/// Private error of the Postgres backend; callers see [`StoreError`].
#[derive(Debug, thiserror::Error)]
enum PgError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("running migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Value(String),
    #[error("refusing to use this database: {0}")]
    Unsafe(String),
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        let transient = match &e {
            PgError::Sqlx(s) => is_transient(s),
            PgError::Migrate(sqlx::migrate::MigrateError::Execute(s)) => is_transient(s),
            _ => false,
        };
        StoreError::backend(STORE, transient, e)
    }
}

/// Whether an sqlx error is worth retrying: no connection (refused, dropped, pool timed out
/// or closed), or a server condition that passes (see the module docs for the SQLSTATEs).
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08")
                || matches!(
                    c.as_ref(),
                    "40001" | "40P01" | "53300" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
                )
        }),
        _ => false,
    }
}

/// Whether a transaction failed only because it lost a race with another one (serialization
/// failure or deadlock), so running it again may succeed.
fn lost_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

/// Shorthand: an sqlx error as a [`StoreError`].
fn db(e: sqlx::Error) -> StoreError {
    PgError::Sqlx(e).into()
}

/// How to reach the database. Fields may be added; build with [`PostgresConfig::new`] or
/// [`PostgresConfig::from_env`].
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The application role's URL (`HEIMDEX_DATABASE_URL`), e.g.
    /// `postgres://heimdex_api:secret@db:5432/heimdex`.
    pub url: String,
    /// The owner's URL for migrations (`HEIMDEX_DATABASE_ADMIN_URL`); `None`: the schema is
    /// migrated elsewhere.
    pub admin_url: Option<String>,
    /// Pool size (default 10).
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before answering
    /// [`StoreError::Unavailable`] (default 10 s).
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    /// The application role's URL, no migrations, default pool settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            admin_url: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// Also run the migrations through `admin_url` on connect.
    #[must_use]
    pub fn with_admin_url(mut self, admin_url: impl Into<String>) -> Self {
        self.admin_url = Some(admin_url.into());
        self
    }

    /// `HEIMDEX_DATABASE_URL` and, if set, `HEIMDEX_DATABASE_ADMIN_URL`; `None` when the
    /// former is unset or empty.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let mut config = Self::new(var(ENV_DATABASE_URL)?);
        config.admin_url = var(ENV_DATABASE_ADMIN_URL);
        Some(config)
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("admin_url", &self.admin_url.as_deref().map(redact))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// `url` with the password (if any) replaced by `***`, for logs.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// The server [`Store`]: Postgres with row-level security per tenant (see the module docs).
///
/// Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Run the migrations through `config.admin_url` (if set), then open a pool on
    /// `config.url` and check that its role cannot bypass row-level security and that the
    /// schema is in place.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        if let Some(admin_url) = &config.admin_url {
            Self::migrate(admin_url).await?;
        }
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(db)?
            .application_name("heimdex");
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(db)?;
        let store = Self { pool };
        store.check_isolation().await?;
        Ok(store)
    }

    /// Apply pending migrations through one connection to `admin_url` (the schema's owner).
    /// Safe to call from several processes at once: sqlx's migrator holds a Postgres advisory
    /// lock on that connection while it applies them, so the others wait and then find
    /// nothing to do.
    pub async fn migrate(admin_url: &str) -> Result<(), StoreError> {
        debug_assert!(MIGRATOR.locking, "migrations must hold the advisory lock");
        let options = PgConnectOptions::from_str(admin_url)
            .map_err(db)?
            .application_name("heimdex-migrate");
        let mut conn = options.connect().await.map_err(db)?;
        // On failure the connection is dropped, which closes it and so releases the lock.
        MIGRATOR.run(&mut conn).await.map_err(PgError::from)?;
        conn.close().await.map_err(db)?;
        Ok(())
    }

    /// Close every connection, waiting for running statements to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Refuse an application role that could bypass the policies, and a schema that is
    /// missing, not accessible or not under row-level security.
    async fn check_isolation(&self) -> Result<(), StoreError> {
        let row = sqlx::query(
            "WITH t AS (SELECT name, to_regclass(name) AS rel FROM unnest($1::text[]) AS name)
             SELECT current_user::text AS role,
                 EXISTS (SELECT 1 FROM pg_roles r
                         WHERE (r.rolsuper OR r.rolbypassrls)
                           AND pg_has_role(current_user, r.oid, 'MEMBER')) AS bypasses,
                 ARRAY(SELECT name FROM t WHERE rel IS NULL) AS missing,
                 ARRAY(SELECT t.name FROM t JOIN pg_class c ON c.oid = t.rel
                       WHERE pg_has_role(current_user, c.relowner, 'MEMBER')) AS owned,
                 ARRAY(SELECT t.name FROM t JOIN pg_class c ON c.oid = t.rel
                       WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity)) AS unprotected,
                 ARRAY(SELECT name FROM t WHERE rel IS NOT NULL AND NOT (
                       has_table_privilege(rel, 'SELECT') AND has_table_privilege(rel, 'INSERT')
                       AND has_table_privilege(rel, 'UPDATE')
                       AND has_table_privilege(rel, 'DELETE'))) AS denied",
        )
        .bind(TENANT_TABLES.as_slice())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let role: String = col(&row, "role")?;
        let list = |name: &str| -> Result<String, StoreError> {
            Ok(col::<Vec<String>, _>(&row, name)?.join(", "))
        };
        let problem = if col::<bool, _>(&row, "bypasses")? {
            format!(
                "role {role} is a superuser or can act with BYPASSRLS; connect as a member of \
                 {APP_ROLE} that is not"
            )
        } else if !list("missing")?.is_empty() {
            format!(
                "tables {} do not exist: run the migrations (set {ENV_DATABASE_ADMIN_URL})",
                list("missing")?
            )
        } else if !list("owned")?.is_empty() {
            format!(
                "role {role} can act as the owner of {}, so it could turn row-level security \
                 off; connect as a member of {APP_ROLE} that owns nothing",
                list("owned")?
            )
        } else if !list("unprotected")?.is_empty() {
            format!(
                "row-level security is not enabled and forced on {}",
                list("unprotected")?
            )
        } else if !list("denied")?.is_empty() {
            format!(
                "role {role} may not read and write {}: GRANT {APP_ROLE} TO {role}",
                list("denied")?
            )
        } else {
            return Ok(());
        };
        Err(PgError::Unsafe(problem).into())
    }

    /// A transaction acting for `tenant`: every row-level security policy reads this setting.
    async fn begin(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, StoreError> {
        if tenant.as_str().is_empty() {
            return Err(PgError::Value("the empty tenant id is not a tenant".into()).into());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT set_config('heimdex.tenant', $1, true)")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// One attempt of [`Store::update_persons`].
    async fn update_persons_once(
        &self,
        tenant: &TenantId,
        apply: &PersonsUpdate<'_>,
    ) -> Result<Vec<Person>, Attempt> {
        let mut tx = self.begin(tenant).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(PERSONS_LOCK_CLASS)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        let rows = select_persons(tenant).fetch_all(&mut *tx).await?;
        let current = persons_from_rows(tenant, &rows)?;
        let changed = apply(&current);
        for p in &changed {
            if p.tenant != *tenant {
                return Err(StoreError::from(PgError::Value(format!(
                    "person {} belongs to tenant {}, not {tenant}",
                    p.id, p.tenant
                )))
                .into());
            }
            person_upsert(p)?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// How an attempt of a retried transaction failed.
enum Attempt {
    /// It lost a race with another transaction (serialization failure, deadlock): run it
    /// again.
    Retry(sqlx::Error),
    /// Any other failure.
    Fail(StoreError),
}

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if lost_race(&e) {
            Self::Retry(e)
        } else {
            Self::Fail(db(e))
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Self::Fail(e)
    }
}

// ---- row <-> model conversion (shared in `rows`) -----------------------------------------

impl StoredRow for PgRow {
    fn percent(&self) -> Result<Option<f32>, StoreError> {
        col(self, "percent")
    }

    fn tags(&self) -> Result<Vec<String>, StoreError> {
        col(self, "tags")
    }

    fn centroid(&self) -> Result<Vec<f32>, StoreError> {
        col(self, "centroid")
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn select_persons(tenant: &TenantId) -> PgQuery<'_> {
    sqlx::query(
        "SELECT id, name, centroid, faces, updated_ms FROM persons WHERE tenant = $1 ORDER BY id",
    )
    .bind(tenant.as_str())
}

fn person_upsert(person: &Person) -> Result<PgQuery<'_>, StoreError> {
    let faces = i64::try_from(person.faces)
        .map_err(|_| PgError::Value(format!("person {} faces out of range", person.id)))?;
    Ok(sqlx::query(
        "INSERT INTO persons (tenant, id, name, centroid, faces, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant, id) DO UPDATE SET name = EXCLUDED.name,
             centroid = EXCLUDED.centroid, faces = EXCLUDED.faces,
             updated_ms = EXCLUDED.updated_ms",
    )
    .bind(person.tenant.as_str())
    .bind(&person.id)
    .bind(person.name.as_deref())
    .bind(&person.centroid)
    .bind(faces)
    .bind(person.updated_ms))
}

// ---- the Store ------------------------------------------------------------------------------

#[async_trait]
impl Store for PostgresStore {
    async fn upsert_source(&self, source: &Source) -> Result<(), StoreError> {
        let mut tx = self.begin(&source.tenant).await?;
        sqlx::query(
            "INSERT INTO sources (tenant, id, kind, uri, cursor, options, synced_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, id) DO UPDATE SET
                 kind = EXCLUDED.kind, uri = EXCLUDED.uri, cursor = EXCLUDED.cursor,
                 options = EXCLUDED.options, synced_ms = EXCLUDED.synced_ms",
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO tenant_directory (tenant, created_ms) VALUES ($1, $2)
             ON CONFLICT (tenant) DO NOTHING",
        )
        .bind(source.tenant.as_str())
        .bind(heimdex_core::time_util::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_source(
        &self,
        tenant: &TenantId,
        id: &SourceId,
    ) -> Result<Option<Source>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let row = sqlx::query(
            "SELECT tenant, id, kind, uri, cursor, options, synced_ms FROM sources WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(source_from_row).transpose()
    }

    async fn list_sources(&self, tenant: &TenantId) -> Result<Vec<Source>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let rows = sqlx::query(
            "SELECT tenant, id, kind, uri, cursor, options, synced_ms FROM sources WHERE tenant = $1 ORDER BY id",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(source_from_row).collect()
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        // The directory has no row-level security: it holds tenant ids only.
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT tenant FROM tenant_directory ORDER BY tenant")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(t,)| TenantId::new(t)).collect())
    }

    async fn upsert_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let sidecar = asset.sidecar.as_ref();
        let size = to_i64("asset size", asset.size, PgError::Value)?;
        let mut tx = self.begin(&asset.tenant).await?;
        sqlx::query(
            "INSERT INTO assets (tenant, id, source, object_key, version, size, state,
                 sidecar_location, sidecar_schema_version, sidecar_asset_version, duration_s,
                 updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (tenant, id) DO UPDATE SET
                 source = EXCLUDED.source, object_key = EXCLUDED.object_key,
                 version = EXCLUDED.version, size = EXCLUDED.size, state = EXCLUDED.state,
                 sidecar_location = EXCLUDED.sidecar_location,
                 sidecar_schema_version = EXCLUDED.sidecar_schema_version,
                 sidecar_asset_version = EXCLUDED.sidecar_asset_version,
                 duration_s = EXCLUDED.duration_s, updated_ms = EXCLUDED.updated_ms",
        )
        .bind(asset.tenant.as_str())
        .bind(asset.id.as_str())
        .bind(asset.source.as_str())
        .bind(&asset.key)
        .bind(&asset.version)
        .bind(size)
        .bind(asset.state.as_str())
        .bind(sidecar.map(|s| s.location.as_str()))
        .bind(sidecar.map(|s| i64::from(s.schema_version)))
        .bind(sidecar.map(|s| s.asset_version.as_str()))
        .bind(asset.duration_s)
        .bind(asset.updated_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_asset(
        &self,
        tenant: &TenantId,
        id: &AssetId,
    ) -> Result<Option<Asset>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let row = sqlx::query(
            "SELECT tenant, id, source, object_key, version, size, state, sidecar_location,
                 sidecar_schema_version, sidecar_asset_version, duration_s, updated_ms
             FROM assets WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn list_assets(&self, query: &AssetQuery) -> Result<Vec<Asset>, StoreError> {
        let mut tx = self.begin(&query.tenant).await?;
        let rows = sqlx::query(
            "SELECT tenant, id, source, object_key, version, size, state, sidecar_location,
                 sidecar_schema_version, sidecar_asset_version, duration_s, updated_ms
             FROM assets
             WHERE tenant = $1
               AND ($2::text IS NULL OR source = $2)
               AND ($3::text IS NULL OR state = $3)
               AND ($4::text IS NULL OR id > $4)
             ORDER BY id
             LIMIT $5",
        )
        .bind(query.tenant.as_str())
        .bind(query.source.as_ref().map(SourceId::as_str))
        .bind(query.state.map(AssetState::as_str))
        .bind(query.after.as_ref().map(AssetId::as_str))
        .bind(limit(query.limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(asset_from_row).collect()
    }

    async fn delete_asset(&self, tenant: &TenantId, id: &AssetId) -> Result<bool, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let deleted = sqlx::query("DELETE FROM assets WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        for delete in [
            "DELETE FROM jobs WHERE tenant = $1 AND asset = $2",
            "DELETE FROM segments WHERE tenant = $1 AND asset = $2",
        ] {
            sqlx::query(delete)
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        let (state, stage, percent, reason) = job_state_columns::<f32>(&job.state);
        let mut tx = self.begin(&job.tenant).await?;
        sqlx::query(
            "INSERT INTO jobs (tenant, id, kind, asset, asset_version, state, stage, percent,
                 reason, attempts, last_error, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_job(&self, tenant: &TenantId, id: &JobId) -> Result<Option<Job>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let row = sqlx::query("SELECT * FROM jobs WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        let (state, stage, percent, reason) = job_state_columns::<f32>(&job.state);
        // The row lock (FOR UPDATE) holds off every other writer of this job from the read
        // to the commit, so the transition is checked against the state it replaces; where
        // SQLite re-reads and retries a conditional write, Postgres waits for the lock.
        let mut tx = self.begin(&job.tenant).await?;
        let current = sqlx::query("SELECT * FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE")
            .bind(job.tenant.as_str())
            .bind(job.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(current) = current.as_ref().map(job_from_row).transpose()? else {
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
        sqlx::query(
            "UPDATE jobs SET state = $1, stage = $2, percent = $3, reason = $4,
                 attempts = $5, last_error = $6, updated_ms = $7
             WHERE tenant = $8 AND id = $9",
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.begin(&query.tenant).await?;
        let rows = sqlx::query(
            "SELECT * FROM jobs
             WHERE tenant = $1
               AND ($2::text IS NULL OR asset = $2)
               AND ($3::text IS NULL OR state = $3)
             ORDER BY created_ms DESC, id DESC
             LIMIT $4",
        )
        .bind(query.tenant.as_str())
        .bind(query.asset.as_ref().map(AssetId::as_str))
        .bind(query.state.as_deref())
        .bind(limit(query.limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn replace_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
        segments: &[Segment],
    ) -> Result<(), StoreError> {
        // One INSERT for all segments (column arrays through UNNEST), not one round trip per
        // segment. Each segment's tags travel as a JSON array, since arrays of arrays must be
        // rectangular, and are unpacked in order.
        let mut ids = Vec::with_capacity(segments.len());
        let mut kinds = Vec::with_capacity(segments.len());
        let mut starts = Vec::with_capacity(segments.len());
        let mut ends = Vec::with_capacity(segments.len());
        let mut contents = Vec::with_capacity(segments.len());
        let mut thumbnails = Vec::with_capacity(segments.len());
        let mut tags = Vec::with_capacity(segments.len());
        for s in segments {
            ids.push(s.id.as_str());
            kinds.push(s.kind.as_str());
            starts.push(s.start_s);
            ends.push(s.end_s);
            contents.push(s.text.as_str());
            thumbnails.push(s.thumbnail.as_deref());
            tags.push(
                serde_json::to_string(&s.tags)
                    .map_err(|e| PgError::Value(format!("segment {} tags: {e}", s.id)))?,
            );
        }
        let mut tx = self.begin(tenant).await?;
        sqlx::query("DELETE FROM segments WHERE tenant = $1 AND asset = $2")
            .bind(tenant.as_str())
            .bind(asset.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if !segments.is_empty() {
            sqlx::query(
                "INSERT INTO segments (tenant, asset, id, kind, start_s, end_s, content,
                     thumbnail, tags)
                 SELECT $1, $2, s.id, s.kind, s.start_s, s.end_s, s.content, s.thumbnail,
                     ARRAY(SELECT tag FROM jsonb_array_elements_text(s.tags::jsonb)
                           WITH ORDINALITY AS t(tag, n) ORDER BY n)
                 FROM UNNEST($3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[],
                             $8::text[], $9::text[])
                      AS s(id, kind, start_s, end_s, content, thumbnail, tags)",
            )
            .bind(tenant.as_str())
            .bind(asset.as_str())
            .bind(&ids)
            .bind(&kinds)
            .bind(&starts)
            .bind(&ends)
            .bind(&contents)
            .bind(&thumbnails)
            .bind(&tags)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn list_segments(
        &self,
        tenant: &TenantId,
        asset: &AssetId,
    ) -> Result<Vec<Segment>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let rows = sqlx::query(
            "SELECT id, kind, start_s, end_s, content, thumbnail, tags FROM segments
             WHERE tenant = $1 AND asset = $2
             ORDER BY start_s, end_s, id",
        )
        .bind(tenant.as_str())
        .bind(asset.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(segment_from_row).collect()
    }

    async fn upsert_person(&self, person: &Person) -> Result<(), StoreError> {
        let query = person_upsert(person)?;
        let mut tx = self.begin(&person.tenant).await?;
        query.execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn update_persons(
        &self,
        tenant: &TenantId,
        apply: &PersonsUpdate<'_>,
    ) -> Result<Vec<Person>, StoreError> {
        let mut attempt = 1;
        loop {
            match self.update_persons_once(tenant, apply).await {
                Ok(written) => return Ok(written),
                Err(Attempt::Retry(e)) if attempt < PERSONS_ATTEMPTS => {
                    tracing::debug!(%tenant, attempt, "update_persons lost a race, retrying: {e}");
                    attempt += 1;
                }
                Err(Attempt::Retry(e)) => return Err(db(e)),
                Err(Attempt::Fail(e)) => return Err(e),
            }
        }
    }

    async fn list_persons(&self, tenant: &TenantId) -> Result<Vec<Person>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let rows = select_persons(tenant)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        persons_from_rows(tenant, &rows)
    }

    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM assets WHERE tenant = $1 GROUP BY state")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let known = [AssetState::Pending, AssetState::Indexed, AssetState::Failed];
        counts_by_state(&rows, known.map(AssetState::as_str))
    }

    async fn job_counts(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut tx = self.begin(tenant).await?;
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs WHERE tenant = $1 GROUP BY state")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        counts_by_state(&rows, ["pending", "processing", "completed", "failed"])
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cr:et@db:5432/heimdex?sslmode=require"),
            "postgres://app:***@db:5432/heimdex?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app@db/heimdex"),
            "postgres://app@db/heimdex"
        );
        assert_eq!(redact("postgres://db/x@y"), "postgres://db/x@y");
        assert_eq!(redact("not a url"), "not a url");
    }
}
