-- Sources keep their non-secret connector options (endpoint, region, …) and when they were
-- last synced.
ALTER TABLE sources ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN synced_ms INTEGER;
