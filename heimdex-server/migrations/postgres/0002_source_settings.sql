-- Sources keep their non-secret connector options (endpoint, region, …) and when they were
-- last synced. Row-level security of `sources` covers the new columns as it is.
ALTER TABLE sources ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN synced_ms BIGINT;

-- The tenant directory: which tenants have registered a source, so that a scheduler and
-- worker-only processes can walk every tenant (reconcile the queue, scheduled syncs).
-- Tenant ids only, no tenant data, hence no row-level security; the application may read
-- it and add to it, never change or remove a row.
CREATE TABLE tenant_directory (
    tenant     TEXT COLLATE "C" PRIMARY KEY CHECK (tenant <> ''),
    created_ms BIGINT NOT NULL
);
GRANT SELECT, INSERT ON tenant_directory TO heimdex_app;
-- Tenants registered before this migration. `sources` forces row-level security, so this
-- sees them only when the migration runs as a superuser or a BYPASSRLS role (as the admin
-- connection usually does); otherwise they are added on their next source registration.
INSERT INTO tenant_directory (tenant, created_ms)
    SELECT DISTINCT tenant, (extract(epoch FROM now()) * 1000)::BIGINT FROM sources
    ON CONFLICT DO NOTHING;
