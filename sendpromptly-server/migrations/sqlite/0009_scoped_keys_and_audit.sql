-- Scoped API keys and the audit log (issue #24).
--
-- `scopes` is a bit set (1 ingest, 2 read, 4 operate, 8 admin; admin implies
-- every other): keys made before scopes existed could do everything, so they
-- become admin (8). `used_classes` is the bit set of the endpoint classes a
-- key was used for, `last_used_at`/`last_used_class` its last use; they are
-- written at most once a minute per key, off the request path.
ALTER TABLE api_keys ADD COLUMN scopes INTEGER NOT NULL DEFAULT 8;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_class TEXT;
ALTER TABLE api_keys ADD COLUMN used_classes INTEGER NOT NULL DEFAULT 0;

-- Who changed what: one row per audited action, written in the change's own
-- transaction. No foreign key to projects: the trail outlives what it names.
-- `before_json`/`after_json` hold the redacted states (secrets as hints).
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    ip          TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_log_by_project ON audit_log (project_id, seq);
CREATE INDEX audit_log_by_at ON audit_log (at);
