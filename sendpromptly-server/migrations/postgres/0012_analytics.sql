-- Issue #25: time-to-effect analytics and the fulfilment SLO.
--
-- `stats_hist` is a rollup maintained at write time by the triggers below,
-- in the same transaction as the event or incident write: per (project,
-- metric, UTC day, event type) a log-bucket histogram of durations in
-- milliseconds, plus plain counters (bucket 0). A duration v >= 0 falls in
-- bucket e * 128 + (v >> e), where e is the number of k >= 1 with
-- v >= 128 * 2^k: exact below 256 ms, then 128 buckets per doubling
-- (relative width <= 1/128; the bucket's midpoint is within 0.4 % of any
-- value in it). docs/analytics.md describes each metric.
--   tte      receipt -> first success (day of receipt)
--   lag      provider occurred_at -> receipt (day of receipt; only events whose provider time is known)
--   ttr      incident opened -> resolved, first resolution (day of opening)
--   received, incidents, repaired_reprocess, repaired_manual, resolved_other: counters (bucket 0)
--
-- `slo_objectives` holds each event type's SLO; `slo_slots` counts, per
-- 5-minute slot of receipt, the events received and those that succeeded
-- within the type's threshold as it stood when the success was applied.
-- `slo_alerts` remembers the burn episode already alerted (one alert per
-- episode, across instances).

CREATE TABLE stats_hist (
    project_id TEXT COLLATE "C" NOT NULL,
    metric     TEXT NOT NULL,
    day        BIGINT NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    bucket     BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project_id, metric, day, event_type, bucket)
);

CREATE TABLE slo_objectives (
    project_id        TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    event_type        TEXT COLLATE "C" NOT NULL,
    objective_ppm     BIGINT NOT NULL,
    threshold_seconds BIGINT NOT NULL,
    window_days       BIGINT NOT NULL,
    PRIMARY KEY (project_id, event_type)
);

CREATE TABLE slo_slots (
    project_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    slot       BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    good       BIGINT NOT NULL,
    PRIMARY KEY (project_id, event_type, slot)
);

CREATE TABLE slo_alerts (
    project_id  TEXT COLLATE "C" NOT NULL,
    event_type  TEXT COLLATE "C" NOT NULL,
    burning     BIGINT NOT NULL,
    started_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, event_type)
);

-- The bucket of a duration in milliseconds (the rule above).
CREATE FUNCTION sp_stats_bucket(v BIGINT) RETURNS BIGINT LANGUAGE SQL IMMUTABLE AS $$
    SELECT (e * 128 + (v >> e))::BIGINT FROM (SELECT (v >= 256)::int + (v >= 512)::int + (v >= 1024)::int + (v >= 2048)::int + (v >= 4096)::int + (v >= 8192)::int + (v >= 16384)::int + (v >= 32768)::int + (v >= 65536)::int + (v >= 131072)::int + (v >= 262144)::int + (v >= 524288)::int + (v >= 1048576)::int + (v >= 2097152)::int + (v >= 4194304)::int + (v >= 8388608)::int + (v >= 16777216)::int + (v >= 33554432)::int + (v >= 67108864)::int + (v >= 134217728)::int + (v >= 268435456)::int + (v >= 536870912)::int + (v >= 1073741824)::int + (v >= 2147483648)::int + (v >= 4294967296)::int + (v >= 8589934592)::int + (v >= 17179869184)::int + (v >= 34359738368)::int + (v >= 68719476736)::int + (v >= 137438953472)::int + (v >= 274877906944)::int + (v >= 549755813888)::int + (v >= 1099511627776)::int + (v >= 2199023255552)::int + (v >= 4398046511104)::int AS e) s
$$;

CREATE FUNCTION sp_stats_bump(p TEXT, m TEXT, d BIGINT, et TEXT, b BIGINT) RETURNS VOID
LANGUAGE SQL AS $$
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    VALUES (p, m, d, et, b, 1)
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = stats_hist.n + 1
$$;

CREATE FUNCTION sp_stats_events() RETURNS TRIGGER LANGUAGE plpgsql AS $$
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
        INSERT INTO slo_slots (project_id, event_type, slot, received, good)
        VALUES (NEW.project_id, v_type, v_slot, 1, 0)
        ON CONFLICT (project_id, event_type, slot) DO UPDATE SET received = slo_slots.received + 1;
    END IF;
    IF NEW.state = 'succeeded'
        AND (TG_OP = 'INSERT' OR OLD.state <> 'succeeded' OR OLD.received_at IS NULL) THEN
        v_ms := GREATEST(0, NEW.updated_at - NEW.received_at);
        PERFORM sp_stats_bump(NEW.project_id, 'tte', v_day, v_type, sp_stats_bucket(v_ms));
        INSERT INTO slo_slots (project_id, event_type, slot, received, good)
        VALUES (NEW.project_id, v_type, v_slot, 0, COALESCE((SELECT (v_ms <= o.threshold_seconds * 1000)::INT
            FROM slo_objectives o WHERE o.project_id = NEW.project_id AND o.event_type = v_type), 0))
        ON CONFLICT (project_id, event_type, slot) DO UPDATE SET good = slo_slots.good + excluded.good;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER stats_events_insert AFTER INSERT ON events FOR EACH ROW
WHEN (NEW.received_at IS NOT NULL) EXECUTE FUNCTION sp_stats_events();
CREATE TRIGGER stats_events_update AFTER UPDATE ON events FOR EACH ROW
WHEN (NEW.received_at IS NOT NULL AND (OLD.received_at IS NULL
    OR (NEW.state = 'succeeded' AND OLD.state <> 'succeeded')))
EXECUTE FUNCTION sp_stats_events();

CREATE FUNCTION sp_stats_incidents() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    v_day BIGINT;
    r JSON;
BEGIN
    v_day := NEW.opened_at - NEW.opened_at % 86400000;
    IF TG_OP = 'INSERT' THEN
        PERFORM sp_stats_bump(NEW.project_id, 'incidents', v_day, COALESCE(NEW.event_type, ''), 0);
        RETURN NULL;
    END IF;
    SELECT record::json INTO r FROM events WHERE pk = NEW.event_pk;
    IF (r -> 'incident' ->> 'reopen_count')::BIGINT = 0 THEN
        PERFORM sp_stats_bump(NEW.project_id, 'ttr', v_day, COALESCE(NEW.event_type, ''),
            sp_stats_bucket(GREATEST(0, NEW.updated_at - NEW.opened_at)));
        PERFORM sp_stats_bump(NEW.project_id, CASE
            WHEN r -> 'incident' ->> 'resolution' = 'manual' THEN 'repaired_manual'
            WHEN (r -> 'incident' ->> 'reprocess_count')::BIGINT > 0 THEN 'repaired_reprocess'
            ELSE 'resolved_other' END, v_day, COALESCE(NEW.event_type, ''), 0);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER stats_incidents_insert AFTER INSERT ON incidents FOR EACH ROW
EXECUTE FUNCTION sp_stats_incidents();
CREATE TRIGGER stats_incidents_resolve AFTER UPDATE OF state ON incidents FOR EACH ROW
WHEN (OLD.state <> 'resolved' AND NEW.state = 'resolved') EXECUTE FUNCTION sp_stats_incidents();

