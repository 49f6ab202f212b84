-- Console users, per-project roles and TOTP two-factor sign-in (issue #24).

-- A user can be disabled (every session ends at once: the session check
-- joins this column); the first user is the server-wide owner (admin of
-- every project, new ones included). The TOTP secret is sealed like the
-- signing secrets; `totp_enabled` once a code confirmed it; the last step
-- whose code was accepted refuses a replay.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN owner BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
UPDATE users SET owner = TRUE WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- Who may open which project, and as what: viewer, operator or admin.
CREATE TABLE project_members (
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);
-- An upgrade loses nothing: every existing user administers every project.
INSERT INTO project_members (project_id, user_id, role, created_at)
    SELECT p.id, u.id, 'admin', u.created_at FROM projects p CROSS JOIN users u;

-- One-time invitation and password-reset links (only the token's SHA-256).
CREATE TABLE user_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,                              -- invite | reset
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX user_tokens_by_user ON user_tokens (user_id);

-- TOTP recovery codes, SHA-256 each, usable once.
CREATE TABLE recovery_codes (
    user_id   TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Per-project console policy: members must have TOTP to open it.
CREATE TABLE project_console_policy (
    project_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES projects(id),
    require_2fa BOOLEAN NOT NULL DEFAULT FALSE
);

-- A session whose password was right but whose TOTP code is still due.
ALTER TABLE console_sessions ADD COLUMN pending_2fa BOOLEAN NOT NULL DEFAULT FALSE;
