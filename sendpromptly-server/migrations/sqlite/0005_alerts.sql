-- The alert outbox: one row per message to send to one channel. Rows are
-- written in the same transaction as the state change that raised them
-- (incident opened, resolved, repair callback gave up) and delivered by the
-- alert sender (lease, send outside a transaction, finish), so no alert is
-- lost on restart.
--
-- Grouping: an `incident.opened` row starts as role `new`; the sender
-- decides when it first claims it: `single` (sent at once, opens a window
-- for its group key) or `held` (due when the window closes). When held rows
-- fall due, the oldest becomes the `digest` and carries every held row of
-- the same group and window; the others become state `grouped`.

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,                      -- alr_… (the webhook-id)
    project_id      TEXT NOT NULL REFERENCES projects(id),
    channel_index   INTEGER NOT NULL,                      -- position in alert_channels when raised
    channel         TEXT NOT NULL,                         -- the channel (JSON) when raised
    event           TEXT NOT NULL,                         -- incident.opened | incident.resolved | reprocess.failed
    group_key       TEXT NOT NULL,                         -- project, channel, alert event, event type
    role            TEXT NOT NULL CHECK (role IN ('new', 'single', 'held', 'digest')),
    incidents       TEXT NOT NULL,                         -- JSON array of the incidents' facts
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'gave_up', 'grouped')),
    digest_id       TEXT,                                  -- for `grouped` rows: the digest that carried it
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alerts_by_group ON alerts (group_key, created_at);
