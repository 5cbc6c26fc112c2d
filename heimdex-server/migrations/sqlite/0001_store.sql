-- Heimdex embedded store: sources, assets, jobs, segments.
-- Every table is keyed by tenant first; every query filters by tenant.
-- Timestamps are milliseconds since the Unix epoch.

CREATE TABLE sources (
    tenant TEXT NOT NULL,
    id     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    uri    TEXT NOT NULL,
    cursor TEXT,
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE TABLE assets (
    tenant                 TEXT    NOT NULL,
    id                     TEXT    NOT NULL,
    source                 TEXT    NOT NULL,
    object_key             TEXT    NOT NULL,
    version                TEXT    NOT NULL,
    size                   INTEGER NOT NULL,
    state                  TEXT    NOT NULL,
    sidecar_location       TEXT,
    sidecar_schema_version INTEGER,
    sidecar_asset_version  TEXT,
    duration_s             REAL,
    updated_ms             INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE INDEX assets_by_source ON assets (tenant, source, id);
CREATE INDEX assets_by_state ON assets (tenant, state, id);

-- Job state is stored flat: `state` is JobState::name(); `stage`/`percent` are set for
-- `processing`, `reason` for `failed`.
CREATE TABLE jobs (
    tenant        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    asset         TEXT    NOT NULL,
    asset_version TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    stage         TEXT,
    percent       REAL,
    reason        TEXT,
    attempts      INTEGER NOT NULL,
    last_error    TEXT,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE INDEX jobs_by_created ON jobs (tenant, created_ms DESC, id DESC);
CREATE INDEX jobs_by_asset ON jobs (tenant, asset, created_ms DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (tenant, state, created_ms DESC, id DESC);

-- `tags` is a JSON array of strings.
CREATE TABLE segments (
    tenant    TEXT NOT NULL,
    asset     TEXT NOT NULL,
    id        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    start_s   REAL NOT NULL,
    end_s     REAL NOT NULL,
    content   TEXT NOT NULL,
    thumbnail TEXT,
    tags      TEXT NOT NULL,
    PRIMARY KEY (tenant, asset, id)
) STRICT;

CREATE INDEX segments_by_start ON segments (tenant, asset, start_s, end_s, id);
