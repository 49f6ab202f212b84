-- Console sign-in sessions. The cookie carries a 256-bit random token; only
-- its SHA-256 is stored. Expiry is absolute (not sliding).

CREATE TABLE console_sessions (
    token_hash BYTEA PRIMARY KEY,                          -- SHA-256 of the cookie token
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- The overview chart counts events per day and failures per day.
CREATE INDEX timeline_by_kind_at ON timeline (kind, at);
CREATE INDEX events_by_created ON events (project_id, created_at);
