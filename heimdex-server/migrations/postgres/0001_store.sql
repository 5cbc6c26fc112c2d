-- Heimdex server store: sources, assets, jobs, segments, persons, with row-level security.
--
-- Run by the admin (owner) connection only (HEIMDEX_DATABASE_ADMIN_URL). The API and the
-- workers connect as a member of `heimdex_app`, which owns nothing, has no BYPASSRLS and may
-- only SELECT / INSERT / UPDATE / DELETE (no TRUNCATE, which would skip the policies).
--
-- Isolation: every table has row-level security ENABLEd (applies to heimdex_app) and FORCEd
-- (applies to the owner too, unless it is a superuser or has BYPASSRLS), with one policy for
-- every command: a row is visible and writable only when its tenant equals the transaction's
-- `heimdex.tenant` setting, which PostgresStore sets with set_config(.., true) (SET LOCAL)
-- at the start of each transaction. Unset, the setting reads as NULL; after a SET LOCAL has
-- ended it reads as '' for the rest of the session — NULLIF maps that to NULL too, and a
-- comparison with NULL matches no row: a query with no tenant sees and changes nothing.
--
-- Ids are COLLATE "C" so listing "by id" is byte order (Rust's String order, as in SQLite)
-- whatever the database's locale. Timestamps are milliseconds since the Unix epoch. There
-- are no foreign keys on purpose (see store/sqlite.rs): a job or segments may exist before
-- or without their asset.

-- The application group role. Roles are cluster-wide, so another database of the cluster
-- may have created it already, possibly at this very moment (advisory locks are per
-- database and do not help here): a concurrent creation shows as unique_violation.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'heimdex_app') THEN
        CREATE ROLE heimdex_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE sources (
    tenant TEXT COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id     TEXT COLLATE "C" NOT NULL,
    kind   TEXT NOT NULL,
    uri    TEXT NOT NULL,
    cursor TEXT,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE assets (
    tenant                 TEXT COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id                     TEXT COLLATE "C" NOT NULL,
    source                 TEXT COLLATE "C" NOT NULL,
    object_key             TEXT NOT NULL,
    version                TEXT NOT NULL,
    size                   BIGINT NOT NULL,
    state                  TEXT NOT NULL,
    sidecar_location       TEXT,
    sidecar_schema_version BIGINT,
    sidecar_asset_version  TEXT,
    duration_s             DOUBLE PRECISION,
    updated_ms             BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX assets_by_source ON assets (tenant, source, id);
CREATE INDEX assets_by_state ON assets (tenant, state, id);

-- Job state is stored flat: `state` is JobState::name(); `stage`/`percent` are set for
-- `processing` (percent is the f32 itself, REAL, so it round-trips exactly), `reason` for
-- `failed`.
CREATE TABLE jobs (
    tenant        TEXT COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id            TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL,
    asset         TEXT COLLATE "C" NOT NULL,
    asset_version TEXT NOT NULL,
    state         TEXT NOT NULL,
    stage         TEXT,
    percent       REAL,
    reason        TEXT,
    attempts      BIGINT NOT NULL,
    last_error    TEXT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX jobs_by_created ON jobs (tenant, created_ms DESC, id DESC);
CREATE INDEX jobs_by_asset ON jobs (tenant, asset, created_ms DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (tenant, state, created_ms DESC, id DESC);

CREATE TABLE segments (
    tenant    TEXT COLLATE "C" NOT NULL CHECK (tenant <> ''),
    asset     TEXT COLLATE "C" NOT NULL,
    id        TEXT COLLATE "C" NOT NULL,
    kind      TEXT NOT NULL,
    start_s   DOUBLE PRECISION NOT NULL,
    end_s     DOUBLE PRECISION NOT NULL,
    content   TEXT NOT NULL,
    thumbnail TEXT,
    tags      TEXT[] NOT NULL,
    PRIMARY KEY (tenant, asset, id)
);

CREATE INDEX segments_by_start ON segments (tenant, asset, start_s, end_s, id);

-- Persons: archive-wide face clusters with stable ids and optional names.
CREATE TABLE persons (
    tenant     TEXT COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id         TEXT COLLATE "C" NOT NULL,
    name       TEXT,
    centroid   REAL[] NOT NULL,
    faces      BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Row-level security: the same policy on every tenant table.
ALTER TABLE sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE sources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sources
    USING (tenant = NULLIF(current_setting('heimdex.tenant', true), ''))
    WITH CHECK (tenant = NULLIF(current_setting('heimdex.tenant', true), ''));

ALTER TABLE assets ENABLE ROW LEVEL SECURITY;
ALTER TABLE assets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON assets
    USING (tenant = NULLIF(current_setting('heimdex.tenant', true), ''))
    WITH CHECK (tenant = NULLIF(current_setting('heimdex.tenant', true), ''));

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant = NULLIF(current_setting('heimdex.tenant', true), ''))
    WITH CHECK (tenant = NULLIF(current_setting('heimdex.tenant', true), ''));

ALTER TABLE segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE segments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON segments
    USING (tenant = NULLIF(current_setting('heimdex.tenant', true), ''))
    WITH CHECK (tenant = NULLIF(current_setting('heimdex.tenant', true), ''));

ALTER TABLE persons ENABLE ROW LEVEL SECURITY;
ALTER TABLE persons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON persons
    USING (tenant = NULLIF(current_setting('heimdex.tenant', true), ''))
    WITH CHECK (tenant = NULLIF(current_setting('heimdex.tenant', true), ''));

-- The application's privileges: data manipulation only, on these tables only.
GRANT SELECT, INSERT, UPDATE, DELETE ON sources, assets, jobs, segments, persons
    TO heimdex_app;
