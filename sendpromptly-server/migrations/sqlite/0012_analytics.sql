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
    project_id TEXT NOT NULL,
    metric     TEXT NOT NULL,
    day        INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    bucket     INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (project_id, metric, day, event_type, bucket)
) WITHOUT ROWID;

CREATE TABLE slo_objectives (
    project_id        TEXT NOT NULL REFERENCES projects(id),
    event_type        TEXT NOT NULL,
    objective_ppm     INTEGER NOT NULL,   -- 99.5 % = 995000
    threshold_seconds INTEGER NOT NULL,
    window_days       INTEGER NOT NULL,
    PRIMARY KEY (project_id, event_type)
);

CREATE TABLE slo_slots (
    project_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    slot       INTEGER NOT NULL,           -- start of the 5-minute slot of receipt (unix ms)
    received   INTEGER NOT NULL,
    good       INTEGER NOT NULL,
    PRIMARY KEY (project_id, event_type, slot)
) WITHOUT ROWID;

CREATE TABLE slo_alerts (
    project_id  TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    burning     INTEGER NOT NULL,          -- 1 while an episode lasts
    started_at  INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, event_type)
);

-- The receipt: counted once, when received_at is first set.
CREATE TRIGGER stats_receipt_insert AFTER INSERT ON events
WHEN NEW.received_at IS NOT NULL
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    VALUES (NEW.project_id, 'received', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), 0, 1)
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, 'lag', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), e * 128 + (v >> e), 1
    FROM (SELECT v, (v >= 256) + (v >= 512) + (v >= 1024) + (v >= 2048) + (v >= 4096) + (v >= 8192) + (v >= 16384) + (v >= 32768) + (v >= 65536) + (v >= 131072) + (v >= 262144) + (v >= 524288) + (v >= 1048576) + (v >= 2097152) + (v >= 4194304) + (v >= 8388608) + (v >= 16777216) + (v >= 33554432) + (v >= 67108864) + (v >= 134217728) + (v >= 268435456) + (v >= 536870912) + (v >= 1073741824) + (v >= 2147483648) + (v >= 4294967296) + (v >= 8589934592) + (v >= 17179869184) + (v >= 34359738368) + (v >= 68719476736) + (v >= 137438953472) + (v >= 274877906944) + (v >= 549755813888) + (v >= 1099511627776) + (v >= 2199023255552) + (v >= 4398046511104) AS e FROM (SELECT MAX(0, NEW.received_at - CAST(ROUND((julianday(json_extract(NEW.record, '$.occurred_at')) - 2440587.5) * 86400000) AS INTEGER)) AS v)) WHERE v IS NOT NULL
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO slo_slots (project_id, event_type, slot, received, good)
    VALUES (NEW.project_id, COALESCE(NEW.event_type, ''), NEW.received_at - NEW.received_at % 300000, 1, 0)
    ON CONFLICT (project_id, event_type, slot) DO UPDATE SET received = received + 1;
END;

CREATE TRIGGER stats_receipt_update AFTER UPDATE OF received_at ON events
WHEN OLD.received_at IS NULL AND NEW.received_at IS NOT NULL
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    VALUES (NEW.project_id, 'received', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), 0, 1)
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, 'lag', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), e * 128 + (v >> e), 1
    FROM (SELECT v, (v >= 256) + (v >= 512) + (v >= 1024) + (v >= 2048) + (v >= 4096) + (v >= 8192) + (v >= 16384) + (v >= 32768) + (v >= 65536) + (v >= 131072) + (v >= 262144) + (v >= 524288) + (v >= 1048576) + (v >= 2097152) + (v >= 4194304) + (v >= 8388608) + (v >= 16777216) + (v >= 33554432) + (v >= 67108864) + (v >= 134217728) + (v >= 268435456) + (v >= 536870912) + (v >= 1073741824) + (v >= 2147483648) + (v >= 4294967296) + (v >= 8589934592) + (v >= 17179869184) + (v >= 34359738368) + (v >= 68719476736) + (v >= 137438953472) + (v >= 274877906944) + (v >= 549755813888) + (v >= 1099511627776) + (v >= 2199023255552) + (v >= 4398046511104) AS e FROM (SELECT MAX(0, NEW.received_at - CAST(ROUND((julianday(json_extract(NEW.record, '$.occurred_at')) - 2440587.5) * 86400000) AS INTEGER)) AS v)) WHERE v IS NOT NULL
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO slo_slots (project_id, event_type, slot, received, good)
    VALUES (NEW.project_id, COALESCE(NEW.event_type, ''), NEW.received_at - NEW.received_at % 300000, 1, 0)
    ON CONFLICT (project_id, event_type, slot) DO UPDATE SET received = received + 1;
END;

-- The first success of a received event (success always wins, so once).
CREATE TRIGGER stats_success_insert AFTER INSERT ON events
WHEN NEW.state = 'succeeded' AND NEW.received_at IS NOT NULL
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, 'tte', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), e * 128 + (v >> e), 1
    FROM (SELECT v, (v >= 256) + (v >= 512) + (v >= 1024) + (v >= 2048) + (v >= 4096) + (v >= 8192) + (v >= 16384) + (v >= 32768) + (v >= 65536) + (v >= 131072) + (v >= 262144) + (v >= 524288) + (v >= 1048576) + (v >= 2097152) + (v >= 4194304) + (v >= 8388608) + (v >= 16777216) + (v >= 33554432) + (v >= 67108864) + (v >= 134217728) + (v >= 268435456) + (v >= 536870912) + (v >= 1073741824) + (v >= 2147483648) + (v >= 4294967296) + (v >= 8589934592) + (v >= 17179869184) + (v >= 34359738368) + (v >= 68719476736) + (v >= 137438953472) + (v >= 274877906944) + (v >= 549755813888) + (v >= 1099511627776) + (v >= 2199023255552) + (v >= 4398046511104) AS e FROM (SELECT MAX(0, NEW.updated_at - NEW.received_at) AS v)) WHERE v IS NOT NULL
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO slo_slots (project_id, event_type, slot, received, good)
    SELECT NEW.project_id, COALESCE(NEW.event_type, ''), NEW.received_at - NEW.received_at % 300000, 0,
        COALESCE((SELECT MAX(0, NEW.updated_at - NEW.received_at) <= o.threshold_seconds * 1000 FROM slo_objectives o
                  WHERE o.project_id = NEW.project_id AND o.event_type = NEW.event_type), 0)
    WHERE true
    ON CONFLICT (project_id, event_type, slot) DO UPDATE SET good = good + excluded.good;
END;

CREATE TRIGGER stats_success_update AFTER UPDATE ON events
WHEN NEW.state = 'succeeded' AND NEW.received_at IS NOT NULL
    AND (OLD.state <> 'succeeded' OR OLD.received_at IS NULL)
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, 'tte', NEW.received_at - NEW.received_at % 86400000, COALESCE(NEW.event_type, ''), e * 128 + (v >> e), 1
    FROM (SELECT v, (v >= 256) + (v >= 512) + (v >= 1024) + (v >= 2048) + (v >= 4096) + (v >= 8192) + (v >= 16384) + (v >= 32768) + (v >= 65536) + (v >= 131072) + (v >= 262144) + (v >= 524288) + (v >= 1048576) + (v >= 2097152) + (v >= 4194304) + (v >= 8388608) + (v >= 16777216) + (v >= 33554432) + (v >= 67108864) + (v >= 134217728) + (v >= 268435456) + (v >= 536870912) + (v >= 1073741824) + (v >= 2147483648) + (v >= 4294967296) + (v >= 8589934592) + (v >= 17179869184) + (v >= 34359738368) + (v >= 68719476736) + (v >= 137438953472) + (v >= 274877906944) + (v >= 549755813888) + (v >= 1099511627776) + (v >= 2199023255552) + (v >= 4398046511104) AS e FROM (SELECT MAX(0, NEW.updated_at - NEW.received_at) AS v)) WHERE v IS NOT NULL
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO slo_slots (project_id, event_type, slot, received, good)
    SELECT NEW.project_id, COALESCE(NEW.event_type, ''), NEW.received_at - NEW.received_at % 300000, 0,
        COALESCE((SELECT MAX(0, NEW.updated_at - NEW.received_at) <= o.threshold_seconds * 1000 FROM slo_objectives o
                  WHERE o.project_id = NEW.project_id AND o.event_type = NEW.event_type), 0)
    WHERE true
    ON CONFLICT (project_id, event_type, slot) DO UPDATE SET good = good + excluded.good;
END;

CREATE TRIGGER stats_incident_insert AFTER INSERT ON incidents
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    VALUES (NEW.project_id, 'incidents', NEW.opened_at - NEW.opened_at % 86400000, COALESCE(NEW.event_type, ''), 0, 1)
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
END;

-- The first resolution of an incident (a reopened incident's later
-- resolutions are not counted again).
CREATE TRIGGER stats_incident_resolve AFTER UPDATE OF state ON incidents
WHEN OLD.state <> 'resolved' AND NEW.state = 'resolved'
BEGIN
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, 'ttr', NEW.opened_at - NEW.opened_at % 86400000, COALESCE(NEW.event_type, ''), e * 128 + (v >> e), 1
    FROM (SELECT v, (v >= 256) + (v >= 512) + (v >= 1024) + (v >= 2048) + (v >= 4096) + (v >= 8192) + (v >= 16384) + (v >= 32768) + (v >= 65536) + (v >= 131072) + (v >= 262144) + (v >= 524288) + (v >= 1048576) + (v >= 2097152) + (v >= 4194304) + (v >= 8388608) + (v >= 16777216) + (v >= 33554432) + (v >= 67108864) + (v >= 134217728) + (v >= 268435456) + (v >= 536870912) + (v >= 1073741824) + (v >= 2147483648) + (v >= 4294967296) + (v >= 8589934592) + (v >= 17179869184) + (v >= 34359738368) + (v >= 68719476736) + (v >= 137438953472) + (v >= 274877906944) + (v >= 549755813888) + (v >= 1099511627776) + (v >= 2199023255552) + (v >= 4398046511104) AS e FROM (SELECT (SELECT MAX(0, NEW.updated_at - NEW.opened_at) FROM events WHERE pk = NEW.event_pk AND json_extract(record, '$.incident.reopen_count') = 0) AS v)) WHERE v IS NOT NULL
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO stats_hist (project_id, metric, day, event_type, bucket, n)
    SELECT NEW.project_id, CASE
        WHEN json_extract(r, '$.incident.resolution') = 'manual' THEN 'repaired_manual'
        WHEN json_extract(r, '$.incident.reprocess_count') > 0 THEN 'repaired_reprocess'
        ELSE 'resolved_other' END, NEW.opened_at - NEW.opened_at % 86400000, COALESCE(NEW.event_type, ''), 0, 1
    FROM (SELECT record AS r FROM events WHERE pk = NEW.event_pk
          AND json_extract(record, '$.incident.reopen_count') = 0) WHERE true
    ON CONFLICT (project_id, metric, day, event_type, bucket) DO UPDATE SET n = n + 1;
END;

