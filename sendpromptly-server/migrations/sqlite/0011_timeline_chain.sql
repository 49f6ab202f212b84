-- The tamper-evident timeline (sendpromptly-core's `chain` module, encoding v1).
-- Each entry recorded from now on carries its chain hash; each event keeps
-- its chain head (the last entry's hash) so an append needs no extra read.
-- Entries recorded before this migration stay unchained (hash NULL): the
-- seq up to which that is allowed is recorded once, here, so a hash
-- removed later from a newer entry is reported as a break.
ALTER TABLE timeline ADD COLUMN hash TEXT;
ALTER TABLE events ADD COLUMN chain_head TEXT;
CREATE TABLE timeline_chain (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    unchained_through BIGINT NOT NULL
);
INSERT INTO timeline_chain (id, unchained_through) SELECT 1, COALESCE(MAX(seq), 0) FROM timeline;
