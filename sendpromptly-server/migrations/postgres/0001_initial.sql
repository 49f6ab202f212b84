-- SendPromptly PostgreSQL schema, version 1.
-- The same tables as the SQLite schema. Every time is a BIGINT of unix
-- milliseconds (UTC), exactly as the core's Timestamp holds it, so leases
-- compare exactly; JSON documents are TEXT written and read by the server
-- (the event record is the source of truth, the other columns are indexed
-- copies of it). Ids that lists order by use the "C" collation (byte
-- order), whatever the database's locale.

CREATE TABLE projects (
    id                       TEXT COLLATE "C" PRIMARY KEY,
    name                     TEXT NOT NULL UNIQUE,
    repair_url               TEXT,
    default_deadline_seconds BIGINT NOT NULL,
    deadlines_by_event_type  TEXT NOT NULL DEFAULT '{}',   -- JSON object: event type -> seconds
    alert_channels           TEXT NOT NULL DEFAULT '[]',   -- JSON array
    proof_show_metadata      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    key_hash   BYTEA NOT NULL UNIQUE,                      -- SHA-256 of the key
    prefix     TEXT NOT NULL,
    name       TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);

CREATE TABLE signing_secrets (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX signing_secrets_by_project ON signing_secrets (project_id, id);

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,                    -- stored lower-case
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- One row per (project, provider, event_id).
CREATE TABLE events (
    pk          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT,
    subject     TEXT,
    state       TEXT NOT NULL,
    record      TEXT NOT NULL,                             -- JSON of the core's EventRecord
    due_at      BIGINT,                                    -- record.next_due_at()
    received_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, provider, event_id)
);
-- The sweeper's queue: only rows with something due are in it.
CREATE INDEX events_due ON events (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX events_by_project ON events (project_id, pk);
CREATE INDEX events_by_subject ON events (project_id, subject, pk);
CREATE INDEX events_by_state ON events (project_id, state, pk);
CREATE INDEX events_by_event_id ON events (project_id, event_id, pk);

-- A copy of record.incident for listing, rewritten on every event write.
CREATE TABLE incidents (
    id         TEXT COLLATE "C" PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    event_pk   BIGINT NOT NULL UNIQUE REFERENCES events(pk),
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT,
    subject    TEXT,
    opened_at  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX incidents_list ON incidents (project_id, opened_at DESC, id DESC);
CREATE INDEX incidents_by_state ON incidents (project_id, state, opened_at DESC, id DESC);
CREATE INDEX incidents_by_subject ON incidents (project_id, subject, opened_at DESC, id DESC);

-- Append-only.
CREATE TABLE timeline (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_pk BIGINT NOT NULL REFERENCES events(pk),
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    detail   TEXT NOT NULL                                 -- JSON object
);
CREATE INDEX timeline_by_event ON timeline (event_pk, seq);

-- The repair-callback outbox.
CREATE TABLE deliveries (
    reprocess_id    TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    event_pk        BIGINT NOT NULL REFERENCES events(pk),
    incident_id     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'gave_up', 'cancelled')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_pk);

CREATE TABLE proof_links (
    id         TEXT COLLATE "C" PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    token_hash  BYTEA NOT NULL UNIQUE,                     -- SHA-256 of the token
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX proof_links_by_incident ON proof_links (project_id, incident_id, created_at);

CREATE TABLE idempotency_keys (
    project_id   TEXT NOT NULL REFERENCES projects(id),
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       BIGINT,                                   -- NULL while the first request runs
    response     BYTEA,
    locked_until BIGINT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
