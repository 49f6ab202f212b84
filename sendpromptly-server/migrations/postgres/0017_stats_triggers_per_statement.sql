-- Issue #26: the events' analytics triggers run once per statement, over
-- its transition tables, instead of once per row.
--
-- A group commit inserts and updates its events in one statement each, and
-- 0015's row triggers then ran a PL/pgSQL function per row, which called
-- `sp_stats_bump` (another function, through a `SELECT`) once or twice and
-- inserted one `slo_delta` row or two: measured with pg_stat_statements on
-- the ingest benchmark, ~35 µs per event row, ~25 % of the group's
-- `INSERT INTO events`. The statement triggers below append the same deltas
-- with two set-based inserts per statement (`sp_stats_append`, one
-- data-modifying query), summed per rollup key: the reads and the fold sum the deltas (0015), so
-- one row with n = 3 counts as three rows with n = 1 did.
--
-- Same rows counted as the row triggers' `WHEN` clauses and body chose: on
-- insert, every event with `received_at` (received; lag when the record
-- has `occurred_at`; tte and the SLO's good count when it is already
-- succeeded); on update, an event receiving its first `received_at`
-- (received, lag) and an event becoming succeeded (tte, good). The
-- incidents' triggers stay per row (an incident opens or resolves far less
-- often than an event is written).
--
-- SQLite keeps its row triggers (it has no statement triggers).

DROP TRIGGER stats_events_insert ON events;
DROP TRIGGER stats_events_update ON events;
DROP FUNCTION sp_stats_events();

-- One event a statement counted: what its deltas are made of.
CREATE TYPE sp_counted_event AS (
    project_id      TEXT,
    event_type      TEXT,
    received_at     BIGINT,
    updated_at      BIGINT,
    -- The record's `occurred_at`, when it counts as received (for the lag).
    occurred_at     TEXT,
    counts_received BOOLEAN,
    counts_success  BOOLEAN
);

-- Appends the deltas of `counted` (0015's tables), summed per rollup key.
-- Planned once per connection: left to choose, PostgreSQL planned the
-- query anew on every call (a custom plan for each array, ~0.2 ms).
CREATE FUNCTION sp_stats_append(counted sp_counted_event[]) RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF cardinality(counted) = 0 THEN
        RETURN;
    END IF;
    WITH c AS (
        SELECT project_id, event_type, received_at, updated_at, occurred_at,
               counts_received, counts_success,
               received_at - received_at % 86400000 AS day,
               received_at - received_at % 300000 AS slot
        FROM unnest(counted)
    ), stats AS (
        INSERT INTO stats_delta (project_id, metric, day, event_type, bucket, n)
        SELECT project_id, metric, day, event_type, bucket, count(*) FROM (
            SELECT project_id, 'received' AS metric, day, event_type, 0::BIGINT AS bucket
            FROM c WHERE counts_received
            UNION ALL
            SELECT project_id, 'lag', day, event_type, sp_stats_bucket(GREATEST(0, received_at
                - round(extract(epoch FROM occurred_at::timestamptz) * 1000)::BIGINT))
            FROM c WHERE counts_received AND occurred_at IS NOT NULL
            UNION ALL
            SELECT project_id, 'tte', day, event_type,
                   sp_stats_bucket(GREATEST(0, updated_at - received_at))
            FROM c WHERE counts_success
        ) AS bumps
        GROUP BY project_id, metric, day, event_type, bucket
    )
    INSERT INTO slo_delta (project_id, event_type, slot, received, good)
    SELECT project_id, event_type, slot, sum(received), sum(good) FROM (
        SELECT project_id, event_type, slot, 1 AS received, 0 AS good
        FROM c WHERE counts_received
        UNION ALL
        -- A success outside the threshold (or without an SLO) adds nothing.
        SELECT c.project_id, c.event_type, c.slot, 0, 1
        FROM c JOIN slo_objectives o
          ON o.project_id = c.project_id AND o.event_type = c.event_type
        WHERE c.counts_success AND GREATEST(0, c.updated_at - c.received_at) <= o.threshold_seconds * 1000
    ) AS slots
    GROUP BY project_id, event_type, slot;
END
$$;

-- Inserted events: each one with `received_at` counts as received, and as
-- succeeded when it already is.
CREATE FUNCTION sp_stats_events_inserted() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sp_stats_append(ARRAY(
        SELECT ROW(n.project_id, COALESCE(n.event_type, ''), n.received_at, n.updated_at,
                   n.record::json ->> 'occurred_at', TRUE, n.state = 'succeeded')::sp_counted_event
        FROM new_rows n WHERE n.received_at IS NOT NULL));
    RETURN NULL;
END
$$;

-- Updated events: received when `received_at` is set for the first time,
-- succeeded when the state becomes `succeeded` (or is, on that first
-- receipt).
CREATE FUNCTION sp_stats_events_updated() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sp_stats_append(ARRAY(
        SELECT ROW(n.project_id, COALESCE(n.event_type, ''), n.received_at, n.updated_at,
                   CASE WHEN o.received_at IS NULL THEN n.record::json ->> 'occurred_at' END,
                   o.received_at IS NULL,
                   n.state = 'succeeded' AND (o.state <> 'succeeded' OR o.received_at IS NULL)
               )::sp_counted_event
        FROM new_rows n JOIN old_rows o ON o.pk = n.pk
        WHERE n.received_at IS NOT NULL
          AND (o.received_at IS NULL OR (n.state = 'succeeded' AND o.state <> 'succeeded'))));
    RETURN NULL;
END
$$;

CREATE TRIGGER stats_events_insert AFTER INSERT ON events
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sp_stats_events_inserted();
CREATE TRIGGER stats_events_update AFTER UPDATE ON events
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sp_stats_events_updated();
