-- Scoped API keys and the audit log (issue #24); see the SQLite file for
-- the meaning of each column.
ALTER TABLE api_keys ADD COLUMN scopes BIGINT NOT NULL DEFAULT 8;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_class TEXT;
ALTER TABLE api_keys ADD COLUMN used_classes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE audit_log (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT COLLATE "C" NOT NULL UNIQUE,
    project_id  TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    ip          TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT
);
CREATE INDEX audit_log_by_project ON audit_log (project_id, seq);
CREATE INDEX audit_log_by_at ON audit_log (at);
