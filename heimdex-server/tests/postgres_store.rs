//! `PostgresStore` against the shared `Store` conformance suite (one test per scenario:
//! `postgres::counts`, ...), plus raw SQL run as the application role to show that tenant
//! isolation is enforced by row-level security, not by the store's `WHERE` clauses.
//!
//! Needs a Postgres server: `HEIMDEX_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) names a role that may create databases and roles.
//! Without one the tests fail, saying so; CI always has one. Each test creates its own
//! database, owned by a fresh non-superuser owner role, and a fresh login role in
//! `heimdex_app`, and drops all three at the end, so tests (and test processes) run
//! concurrently without touching each other's or anyone else's data.

#![cfg(feature = "postgres")]

use std::str::FromStr;

use heimdex_core::conformance::Fixture;
use heimdex_core::model::{
    Asset, AssetId, AssetState, Job, JobId, JobKind, JobState, Person, Segment, SegmentKind,
    Source, SourceId, TenantId,
};
use heimdex_core::store::{Store, StoreError};
use heimdex_server::store::postgres::{APP_ROLE, TENANT_TABLES};
use heimdex_server::store::{PostgresConfig, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of one test, with its owner and application login roles; dropped with them
/// when this value is dropped.
struct TestDb {
    base: PgConnectOptions,
    name: String,
    owner: String,
    app: String,
    password: String,
}

impl TestDb {
    /// Create the roles and the (empty, unmigrated) database.
    async fn create() -> Self {
        let url = std::env::var("HEIMDEX_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let base = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("HEIMDEX_TEST_PG_URL is not a Postgres URL: {e}"));
        let mut admin = base.connect().await.unwrap_or_else(|e| {
            panic!(
                "cannot reach Postgres at {}:{} as {} ({e}); the Postgres store tests need a \
                 server: set HEIMDEX_TEST_PG_URL, or start the local one with \
                 `pg_ctlcluster --skip-systemctl-redirect 15 main start`",
                base.get_host(),
                base.get_port(),
                base.get_username()
            )
        });
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db = Self {
            name: format!("heimdex_test_{}", &id[..16]),
            owner: format!("heimdex_test_owner_{}", &id[..16]),
            app: format!("heimdex_test_app_{}", &id[..16]),
            password: uuid::Uuid::new_v4().simple().to_string(),
            base,
        };
        // The owner is no superuser, so FORCE ROW LEVEL SECURITY applies to it; it needs
        // CREATEROLE only for creating heimdex_app when the cluster has none yet.
        for sql in [
            format!(
                "CREATE ROLE {} LOGIN CREATEROLE PASSWORD '{}'",
                db.owner, db.password
            ),
            format!("CREATE DATABASE {} OWNER {}", db.name, db.owner),
            format!("CREATE ROLE {} LOGIN PASSWORD '{}'", db.app, db.password),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        admin.close().await.expect("close");
        db
    }

    fn url_as(&self, role: &str, password: Option<&str>) -> String {
        let mut options = self.base.clone().username(role).database(&self.name);
        if let Some(password) = password {
            options = options.password(password);
        }
        options.to_url_lossy().to_string()
    }

    /// The application login role (member of heimdex_app once [`Self::migrate`] ran).
    fn app_url(&self) -> String {
        self.url_as(&self.app, Some(&self.password))
    }

    /// The schema owner (runs the migrations).
    fn owner_url(&self) -> String {
        self.url_as(&self.owner, Some(&self.password))
    }

    /// The role of `HEIMDEX_TEST_PG_URL` (a superuser here), on this database.
    fn superuser_url(&self) -> String {
        self.base
            .clone()
            .database(&self.name)
            .to_url_lossy()
            .to_string()
    }

    async fn connect_as(&self, url: &str) -> PgConnection {
        PgConnectOptions::from_str(url)
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    /// Run the migrations as the owner, then make the application login role a member of
    /// heimdex_app (which exists from then on).
    async fn migrate(&self) {
        PostgresStore::migrate(&self.owner_url())
            .await
            .expect("migrate as owner");
        let mut su = self.connect_as(&self.superuser_url()).await;
        sqlx::raw_sql(AssertSqlSafe(format!("GRANT {APP_ROLE} TO {}", self.app)))
            .execute(&mut su)
            .await
            .expect("grant heimdex_app");
        su.close().await.expect("close");
    }

    /// The store as the server runs it: migrations through the admin URL (a no-op after
    /// [`Self::migrate`], which must come first for the grant), data through the app role.
    async fn store(&self) -> PostgresStore {
        let config = PostgresConfig::new(self.app_url()).with_admin_url(self.owner_url());
        PostgresStore::connect(&config)
            .await
            .expect("connect as app")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let base = self.base.clone();
        let statements = [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.app),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ];
        // Drop may run inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let mut admin = base.connect().await.map_err(|e| e.to_string())?;
                for sql in statements {
                    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                        .execute(&mut admin)
                        .await
                        .map_err(|e| format!("{sql}: {e}"))?;
                }
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: cleaning up test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: cleaning up test database {} panicked", self.name),
        }
    }
}

/// A fresh database per scenario (the scenarios would also pass on a shared one).
async fn pg_store() -> Fixture<PostgresStore> {
    let db = TestDb::create().await;
    db.migrate().await;
    let store = db.store().await;
    Fixture::new(store).keep(db)
}

mod postgres {
    use super::*;
    heimdex_core::store_conformance_tests!(pg_store);
}

/// All scenarios twice on one database that already holds another tenant's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shared_by_all_scenarios() {
    let fixture = pg_store().await;
    let store = fixture.backend();
    let (other, _) = seed(store, "someone-else").await;
    let before = snapshot(store, &other).await;
    heimdex_core::conformance::store::run_all(store).await;
    heimdex_core::conformance::store::run_all(store).await;
    assert_eq!(
        snapshot(store, &other).await,
        before,
        "the other tenant's rows are untouched"
    );
}

// ---- raw SQL as the application role -----------------------------------------------------

/// One row in each of the five tables for a new tenant `name-<random>`; returns the tenant
/// and its asset.
async fn seed(store: &PostgresStore, name: &str) -> (TenantId, AssetId) {
    let tenant = TenantId::new(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    let source = SourceId::new("folder");
    let asset = Asset {
        tenant: tenant.clone(),
        id: AssetId::derive(&tenant, &source, "a.mp4"),
        source: source.clone(),
        key: "a.mp4".into(),
        version: "v1".into(),
        size: 1,
        state: AssetState::Pending,
        sidecar: None,
        duration_s: None,
        updated_ms: 1,
    };
    store
        .upsert_source(&Source {
            tenant: tenant.clone(),
            id: source,
            kind: "local".into(),
            uri: "/archive".into(),
            cursor: None,
            options: Default::default(),
            synced_ms: None,
        })
        .await
        .expect("source");
    store.upsert_asset(&asset).await.expect("asset");
    store
        .create_job(&Job {
            tenant: tenant.clone(),
            id: JobId::random(),
            kind: JobKind::IndexAsset,
            asset: asset.id.clone(),
            asset_version: "v1".into(),
            state: JobState::Pending,
            attempts: 0,
            last_error: None,
            created_ms: 1,
            updated_ms: 1,
        })
        .await
        .expect("job");
    let segment = Segment {
        id: "shot-1".into(),
        kind: SegmentKind::Shot,
        start_s: 0.0,
        end_s: 1.0,
        text: "a sunset".into(),
        thumbnail: None,
        tags: vec!["sky".into()],
    };
    store
        .replace_segments(&tenant, &asset.id, &[segment])
        .await
        .expect("segments");
    store
        .upsert_person(&Person {
            tenant: tenant.clone(),
            id: "person-1".into(),
            name: None,
            centroid: vec![0.5, -0.25],
            faces: 1,
            updated_ms: 1,
        })
        .await
        .expect("person");
    (tenant, asset.id)
}

/// Everything the store shows of `tenant`, for before/after comparisons.
async fn snapshot(store: &PostgresStore, tenant: &TenantId) -> String {
    let assets = store
        .list_assets(&heimdex_core::store::AssetQuery::tenant(tenant.clone()))
        .await
        .expect("assets");
    let mut segments = Vec::new();
    for a in &assets {
        segments.push(store.list_segments(tenant, &a.id).await.expect("segments"));
    }
    format!(
        "{:?} {assets:?} {:?} {segments:?} {:?}",
        store.list_sources(tenant).await.expect("sources"),
        store
            .list_jobs(&heimdex_core::store::JobQuery::tenant(tenant.clone()))
            .await
            .expect("jobs"),
        store.list_persons(tenant).await.expect("persons"),
    )
}

/// A row of `tenant` for `table`, as raw SQL with `$1` the tenant.
fn insert_sql(table: &str) -> &'static str {
    match table {
        "sources" => {
            "INSERT INTO sources (tenant, id, kind, uri) VALUES ($1, 'raw', 'local', '/x')"
        }
        "assets" => {
            "INSERT INTO assets (tenant, id, source, object_key, version, size, state, updated_ms)
             VALUES ($1, 'raw', 'folder', 'raw.mp4', 'v1', 1, 'pending', 1)"
        }
        "jobs" => {
            "INSERT INTO jobs (tenant, id, kind, asset, asset_version, state, attempts,
                 created_ms, updated_ms)
             VALUES ($1, 'raw', 'index_asset', 'raw', 'v1', 'pending', 0, 1, 1)"
        }
        "segments" => {
            "INSERT INTO segments (tenant, asset, id, kind, start_s, end_s, content, tags)
             VALUES ($1, 'raw', 'raw', 'shot', 0, 1, 'raw', '{}')"
        }
        "persons" => {
            "INSERT INTO persons (tenant, id, centroid, faces, updated_ms)
             VALUES ($1, 'raw', '{1}', 1, 1)"
        }
        other => panic!("no insert for {other}"),
    }
}

/// Row count of `table` for each tenant as a superuser sees it (RLS does not apply).
async fn true_count(db: &TestDb, table: &str, tenant: &TenantId) -> i64 {
    let mut su = db.connect_as(&db.superuser_url()).await;
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE tenant = $1"
    )))
    .bind(tenant.as_str())
    .fetch_one(&mut su)
    .await
    .expect("count as superuser");
    su.close().await.expect("close");
    n
}

async fn count_all(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

/// Whether `e` is Postgres refusing a row under a row-level security policy.
fn is_rls_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42501")
        && d.message().contains("row-level security"))
}

/// (a) With no tenant set, the application role sees and changes no row of any table,
/// though rows exist — also after an earlier transaction's SET LOCAL has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_without_tenant_sees_nothing() {
    let db = TestDb::create().await;
    db.migrate().await;
    let store = db.store().await;
    let (a, _) = seed(&store, "a").await;
    let (b, _) = seed(&store, "b").await;
    let mut app = db.connect_as(&db.app_url()).await;
    // A transaction that set a tenant and ended leaves the setting '' in this session.
    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('heimdex.tenant', $1, true)")
        .bind(a.as_str())
        .execute(&mut *tx)
        .await
        .expect("set tenant");
    tx.commit().await.expect("commit");
    for table in TENANT_TABLES {
        for t in [&a, &b] {
            assert_eq!(
                true_count(&db, table, t).await,
                1,
                "{table} has a row of {t}"
            );
        }
        assert_eq!(
            count_all(&mut app, table).await,
            0,
            "{table}: no tenant set, nothing visible"
        );
        let updated = sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET id = id")))
            .execute(&mut app)
            .await
            .expect("update")
            .rows_affected();
        assert_eq!(updated, 0, "{table}: no tenant set, nothing updated");
        let deleted = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut app)
            .await
            .expect("delete")
            .rows_affected();
        assert_eq!(deleted, 0, "{table}: no tenant set, nothing deleted");
        let inserted = sqlx::query(insert_sql(table))
            .bind(a.as_str())
            .execute(&mut app)
            .await;
        assert!(
            inserted.as_ref().is_err_and(is_rls_violation),
            "{table}: no tenant set, insert refused: {inserted:?}"
        );
        for t in [&a, &b] {
            assert_eq!(
                true_count(&db, table, t).await,
                1,
                "{table}: {t} kept its row"
            );
        }
    }
    app.close().await.expect("close");
}

/// (b) With tenant A set, the application role sees only A's rows; inserting a row of B,
/// moving a row to B, updating or deleting B's rows all fail or touch nothing — with no
/// tenant filter in the SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_with_tenant_sees_and_changes_only_its_rows() {
    let db = TestDb::create().await;
    db.migrate().await;
    let store = db.store().await;
    let (a, _) = seed(&store, "a").await;
    let (b, _) = seed(&store, "b").await;
    let b_before = snapshot(&store, &b).await;
    let mut app = db.connect_as(&db.app_url()).await;
    for table in TENANT_TABLES {
        let mut tx = app.begin().await.expect("begin");
        sqlx::query("SELECT set_config('heimdex.tenant', $1, true)")
            .bind(a.as_str())
            .execute(&mut *tx)
            .await
            .expect("set tenant");
        let tenants: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT tenant FROM {table}")))
                .fetch_all(&mut *tx)
                .await
                .expect("select");
        assert_eq!(tenants, [a.to_string()], "{table}: only A's row");
        // Updates and deletes aimed at B's rows find none.
        for sql in [
            format!("UPDATE {table} SET id = id WHERE tenant = $1"),
            format!("DELETE FROM {table} WHERE tenant = $1"),
        ] {
            let n = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(b.as_str())
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .rows_affected();
            assert_eq!(n, 0, "{sql}: B's rows are out of reach");
        }
        // An unfiltered update reaches A's row only.
        let n = sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET id = id")))
            .execute(&mut *tx)
            .await
            .expect("update all")
            .rows_affected();
        assert_eq!(n, 1, "{table}: an unfiltered update touches only A's row");
        // Writing a row of B fails the WITH CHECK part of the policy; each attempt in a
        // savepoint, since a failed statement aborts the transaction.
        for (what, sql) in [
            ("insert of a B row", insert_sql(table).to_owned()),
            (
                "move of A's row to B",
                format!("UPDATE {table} SET tenant = $1"),
            ),
        ] {
            let mut sp = tx.begin().await.expect("savepoint");
            let r = sqlx::query(AssertSqlSafe(sql))
                .bind(b.as_str())
                .execute(&mut *sp)
                .await;
            assert!(
                r.as_ref().is_err_and(is_rls_violation),
                "{table}: {what} must violate the policy: {r:?}"
            );
            sp.rollback().await.expect("rollback savepoint");
        }
        tx.rollback().await.expect("rollback");
    }
    app.close().await.expect("close");
    assert_eq!(snapshot(&store, &b).await, b_before, "B's rows unchanged");
    for table in TENANT_TABLES {
        assert_eq!(
            true_count(&db, table, &b).await,
            1,
            "{table}: B kept its row"
        );
    }
}

/// (c) The application role is no superuser, has no BYPASSRLS (nor can it SET ROLE to one
/// that has), owns no table nor can act as the owner, and may only SELECT, INSERT, UPDATE and
/// DELETE; every table has RLS enabled and forced with the tenant policy. And because it is
/// forced, even the (non-superuser) owner sees nothing without a tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_role_owns_nothing_and_cannot_bypass_rls() {
    let db = TestDb::create().await;
    db.migrate().await;
    let store = db.store().await;
    seed(&store, "a").await;
    let mut su = db.connect_as(&db.superuser_url()).await;
    for role in [db.app.as_str(), APP_ROLE] {
        let row = sqlx::query(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles
             WHERE rolname = $1",
        )
        .bind(role)
        .fetch_one(&mut su)
        .await
        .expect("pg_roles");
        for attr in ["rolsuper", "rolbypassrls", "rolcreaterole", "rolcreatedb"] {
            assert!(!row.get::<bool, _>(attr), "{role} must not have {attr}");
        }
    }
    let can_reach_bypass: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE (r.rolsuper OR r.rolbypassrls)
                        AND pg_has_role($1, r.oid, 'MEMBER'))",
    )
    .bind(&db.app)
    .fetch_one(&mut su)
    .await
    .expect("membership");
    assert!(!can_reach_bypass, "app role reaches a BYPASSRLS role");
    let in_group: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(&db.app)
        .bind(APP_ROLE)
        .fetch_one(&mut su)
        .await
        .expect("group");
    assert!(in_group, "app role is in {APP_ROLE}");
    for table in TENANT_TABLES {
        let row = sqlx::query(
            "SELECT pg_get_userbyid(c.relowner)::text AS owner,
                 pg_has_role($2, c.relowner, 'MEMBER') AS app_is_owner,
                 c.relrowsecurity, c.relforcerowsecurity
             FROM pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(table)
        .bind(&db.app)
        .fetch_one(&mut su)
        .await
        .expect("pg_class");
        assert_eq!(row.get::<String, _>("owner"), db.owner, "{table} owner");
        assert!(
            !row.get::<bool, _>("app_is_owner"),
            "{table}: app acts as owner"
        );
        assert!(row.get::<bool, _>("relrowsecurity"), "{table}: RLS enabled");
        assert!(
            row.get::<bool, _>("relforcerowsecurity"),
            "{table}: RLS forced"
        );
        for (privilege, granted) in [
            ("SELECT", true),
            ("INSERT", true),
            ("UPDATE", true),
            ("DELETE", true),
            ("TRUNCATE", false),
            ("REFERENCES", false),
            ("TRIGGER", false),
        ] {
            let has: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2, $3)")
                .bind(&db.app)
                .bind(table)
                .bind(privilege)
                .fetch_one(&mut su)
                .await
                .expect("privilege");
            assert_eq!(has, granted, "{table}: app {privilege}");
        }
        let policies: Vec<(String, String, String)> =
            sqlx::query_as("SELECT cmd, qual, with_check FROM pg_policies WHERE tablename = $1")
                .bind(table)
                .fetch_all(&mut su)
                .await
                .expect("pg_policies");
        assert_eq!(policies.len(), 1, "{table}: one policy");
        let (cmd, using, check) = &policies[0];
        assert_eq!(cmd, "ALL", "{table}: the policy covers every command");
        for expr in [using, check] {
            assert!(
                expr.contains("current_setting('heimdex.tenant'"),
                "{table}: policy reads heimdex.tenant: {expr}"
            );
        }
    }
    su.close().await.expect("close");
    let mut owner = db.connect_as(&db.owner_url()).await;
    for table in TENANT_TABLES {
        assert_eq!(
            count_all(&mut owner, table).await,
            0,
            "{table}: FORCE applies the policy to the owner too"
        );
    }
    owner.close().await.expect("close");
}

/// `connect` refuses roles that would bypass the policies (a superuser, the tables' owner)
/// and a database that was never migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_roles_that_bypass_rls() {
    let db = TestDb::create().await;
    let unmigrated = PostgresStore::connect(&PostgresConfig::new(db.app_url())).await;
    let err = unmigrated.expect_err("unmigrated database");
    assert!(
        err.to_string().contains("run the migrations"),
        "unmigrated: {err}"
    );
    db.migrate().await;
    for (who, url, expect) in [
        ("superuser", db.superuser_url(), "BYPASSRLS"),
        ("owner", db.owner_url(), "owner"),
    ] {
        let r = PostgresStore::connect(&PostgresConfig::new(url)).await;
        let err = r.expect_err(who);
        assert!(
            matches!(err, StoreError::Backend { .. }) && err.to_string().contains(expect),
            "{who}: {err}"
        );
    }
    PostgresStore::connect(&PostgresConfig::new(db.app_url()))
        .await
        .expect("the app role is accepted");
}

/// (d) Two stores (two pools, as two processes would have) minting persons at once: every
/// update lands, no id is minted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_persons_is_atomic_across_pools() {
    let db = TestDb::create().await;
    db.migrate().await;
    let a = db.store().await;
    let b = db.store().await;
    let tenant = TenantId::new(format!("t-{}", uuid::Uuid::new_v4().simple()));
    let mint = {
        let tenant = tenant.clone();
        move |current: &[Person]| {
            vec![Person {
                tenant: tenant.clone(),
                id: format!("person-{}", current.len() + 1),
                name: None,
                centroid: vec![1.0],
                faces: 1,
                updated_ms: 1,
            }]
        }
    };
    let run = |store: PostgresStore| {
        let tenant = tenant.clone();
        let mint = mint.clone();
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

/// Several servers starting at once on a fresh database: the migrations run once, every
/// startup succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_startups_migrate_once() {
    let db = TestDb::create().await;
    let owner = db.owner_url();
    let runs = (0..4).map(|_| PostgresStore::migrate(&owner));
    for r in futures::future::join_all(runs).await {
        r.expect("concurrent migrate");
    }
    let mut su = db.connect_as(&db.superuser_url()).await;
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE NOT success")
        .fetch_one(&mut su)
        .await
        .expect("migrations table");
    assert_eq!(failed, 0, "no migration failed");
    for table in TENANT_TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut su)
            .await
            .expect("to_regclass");
        assert!(exists, "{table} exists");
    }
    su.close().await.expect("close");
}

/// An unreachable server is `Unavailable` (retry later), not a generic backend error.
#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let mut config = PostgresConfig::new("postgres://heimdex@127.0.0.1:1/heimdex");
    config.acquire_timeout = std::time::Duration::from_secs(2);
    let err = PostgresStore::connect(&config)
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "want Unavailable, got {err:?}"
    );
}
