-- Persons: archive-wide face clusters with stable ids and optional names.
CREATE TABLE persons (
    tenant     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    name       TEXT,
    centroid   TEXT    NOT NULL, -- JSON array of f32
    faces      INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
