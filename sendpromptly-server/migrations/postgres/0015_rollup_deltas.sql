-- Issue #26: analytics rollups that cannot deadlock.
--
-- Before, the triggers of 0012 upserted `stats_hist` and `slo_slots` row by
-- row, in whatever order a transaction's rows arrived: two transactions
-- bumping the same rollup rows in opposite orders (two group writers, two
-- instances with mixed event types) waited on each other's row locks and
-- PostgreSQL broke the cycle after `deadlock_timeout`, aborting one.
--
-- Now the triggers only *append* a delta row to an insert-only table
-- (`stats_delta`, `slo_delta`): no unique key, so an insert never waits on
-- another transaction's row and writers share no lock through the rollup.
-- The reads (`GET /v1/stats`, the SLO burn loop) sum the folded rows and
-- the deltas not folded yet in one statement, so they see one snapshot:
-- a delta is counted exactly once, before or after its fold. A background
-- fold (`sendpromptly-server/src/rollup_fold.rs`) moves a bounded batch of
-- deltas into `stats_hist`/`slo_slots` in one transaction (`DELETE …
-- RETURNING`, summed per key, upserted in key order) under
-- `pg_try_advisory_xact_lock`, so one instance folds at a time and the
-- rollup rows have a single writer; a crash mid-fold rolls the whole
-- transaction back (nothing lost, nothing counted twice). Rollup rows
-- already stored stay as they are and keep being counted.
--
-- Why not bump the counters from the group in key order instead: every
-- writer of events and incidents (group commit, one-by-one applies, the
-- sweeper, resolve/reprocess, retention's updates) would have to sort and
-- batch its bumps, and two instances would still serialise on the hot
-- rollup rows (one per project, day and type) for the length of their
-- transactions. Appending costs one heap insert per delta and locks
-- nothing shared.
--
-- SQLite keeps 0012's triggers: one writer at a time cannot deadlock.

CREATE TABLE stats_delta (
    project_id TEXT COLLATE "C" NOT NULL,
    metric     TEXT NOT NULL,
    day        BIGINT NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    bucket     BIGINT NOT NULL,
    n          BIGINT NOT NULL
);

CREATE TABLE slo_delta (
    project_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    slot       BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    good       BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION sp_stats_bump(p TEXT, m TEXT, d BIGINT, et TEXT, b BIGINT) RETURNS VOID
LANGUAGE SQL AS $$
    INSERT INTO stats_delta (project_id, metric, day, event_type, bucket, n)
    VALUES (p, m, d, et, b, 1)
$$;

CREATE OR REPLACE FUNCTION sp_stats_events() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    v_day BIGINT;
    v_slot BIGINT;
    v_type TEXT;
    v_ms BIGINT;
    v_occ TEXT;
BEGIN
    v_type := COALESCE(NEW.event_type, '');
    v_day := NEW.received_at - NEW.received_at % 86400000;
    v_slot := NEW.received_at - NEW.received_at % 300000;
    IF TG_OP = 'INSERT' OR OLD.received_at IS NULL THEN
        PERFORM sp_stats_bump(NEW.project_id, 'received', v_day, v_type, 0);
        v_occ := NEW.record::json ->> 'occurred_at';
        IF v_occ IS NOT NULL THEN
            v_ms := GREATEST(0, NEW.received_at - round(extract(epoch FROM v_occ::timestamptz) * 1000)::BIGINT);
            PERFORM sp_stats_bump(NEW.project_id, 'lag', v_day, v_type, sp_stats_bucket(v_ms));
        END IF;
        INSERT INTO slo_delta (project_id, event_type, slot, received, good)
        VALUES (NEW.project_id, v_type, v_slot, 1, 0);
    END IF;
    IF NEW.state = 'succeeded'
        AND (TG_OP = 'INSERT' OR OLD.state <> 'succeeded' OR OLD.received_at IS NULL) THEN
        v_ms := GREATEST(0, NEW.updated_at - NEW.received_at);
        PERFORM sp_stats_bump(NEW.project_id, 'tte', v_day, v_type, sp_stats_bucket(v_ms));
        -- A success outside the threshold (or without an SLO) adds nothing.
        INSERT INTO slo_delta (project_id, event_type, slot, received, good)
        SELECT NEW.project_id, v_type, v_slot, 0, 1 FROM slo_objectives o
        WHERE o.project_id = NEW.project_id AND o.event_type = v_type
          AND v_ms <= o.threshold_seconds * 1000;
    END IF;
    RETURN NULL;
END
$$;
