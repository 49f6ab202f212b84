-- Bulk reprocess batches (outage recovery). A batch is a durable list of
-- items; the pacer moves pending items into the repair-callback outbox at the
-- batch's rate while fewer than `concurrency` of its callbacks are in flight.
-- Progress (delivered, failed, resolved) is derived from the items joined
-- with `deliveries` and `incidents`, not kept as counters.

CREATE TABLE reprocess_batches (
    id              TEXT PRIMARY KEY,                      -- rpb_…
    project_id      TEXT NOT NULL REFERENCES projects(id),
    state           TEXT NOT NULL CHECK (state IN ('running', 'completed', 'cancelled')),
    rate_per_second REAL NOT NULL,
    concurrency     INTEGER NOT NULL,
    started_by      TEXT NOT NULL,                         -- actor, e.g. console:alice@example.com
    note            TEXT,
    selection       TEXT NOT NULL,                         -- the request's selection (JSON), for the record
    next_send_at    INTEGER NOT NULL,                           -- pacing: the next item may start then
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX reprocess_batches_running ON reprocess_batches (next_send_at) WHERE state = 'running';
CREATE INDEX reprocess_batches_by_project ON reprocess_batches (project_id, created_at);

CREATE TABLE reprocess_batch_items (
    batch_id     TEXT NOT NULL REFERENCES reprocess_batches(id),
    position     INTEGER NOT NULL,
    incident_id  TEXT NOT NULL,
    event_type   TEXT,
    subject      TEXT,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'skipped', 'sent', 'cancelled')),
    reason       TEXT,
    reprocess_id TEXT,
    sent_at      INTEGER,
    PRIMARY KEY (batch_id, position)
);
CREATE INDEX reprocess_batch_items_pending ON reprocess_batch_items (batch_id, position) WHERE state = 'pending';
CREATE UNIQUE INDEX reprocess_batch_items_by_reprocess ON reprocess_batch_items (reprocess_id) WHERE reprocess_id IS NOT NULL;
