-- Heimdex in-process queue (LocalQueue), persisted next to the store so a restart loses no job.
--
-- One row per (tenant, job). `state`:
--   ready    deliverable once visible_at_ms <= now (later = waiting for a retry backoff)
--   reserved leased to a worker until visible_at_ms; after that it is deliverable again
--   dead     dead-lettered; `reason` holds the last failure
-- `attempt` counts deliveries; `receipt` identifies the current delivery; `seq` keeps FIFO
-- order among messages that became visible at the same time.

CREATE TABLE queue_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT    NOT NULL,
    job           TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('ready', 'reserved', 'dead')),
    attempt       INTEGER NOT NULL DEFAULT 0,
    visible_at_ms INTEGER NOT NULL,
    receipt       TEXT,
    reason        TEXT,
    enqueued_ms   INTEGER NOT NULL,
    dead_ms       INTEGER,
    UNIQUE (tenant, job)
) STRICT;

CREATE INDEX queue_messages_visible ON queue_messages (state, visible_at_ms, seq);
CREATE INDEX queue_messages_dead ON queue_messages (state, dead_ms, seq);
