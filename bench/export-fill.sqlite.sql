-- Fills a SendPromptly SQLite database with __N__ more incidents, set-based
-- (one statement per table, a recursive CTE), for bench/export.sh and
-- sendpromptly-server/tests/export.rs. Each new incident is a copy of the
-- most recently opened one (the template: a real incident made through the
-- API) under a new event id (evt_fill_<n>), subject (cus_fill_<n mod 100>)
-- and incident id (inc_fill_<n>), opened one millisecond apart, with a copy
-- of the template's timeline. The copies' timeline rows carry no chain hash
-- (they were not written by SendPromptly): `verify-timelines` reports them.
CREATE TEMP TABLE template AS
    SELECT e.pk, e.project_id, e.provider, e.event_type, e.state, e.record,
           e.received_at, e.created_at, e.updated_at,
           i.kind, i.state AS incident_state, i.opened_at
    FROM incidents i JOIN events e ON e.pk = i.event_pk
    ORDER BY i.opened_at DESC, i.id DESC LIMIT 1;
INSERT INTO events (project_id, provider, event_id, event_type, subject, state, record,
                    due_at, received_at, created_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < __N__)
SELECT t.project_id, t.provider, printf('evt_fill_%07d', n.i), t.event_type,
       printf('cus_fill_%02d', n.i % 100), t.state,
       json_set(t.record, '$.event_id', printf('evt_fill_%07d', n.i),
                '$.subject', printf('cus_fill_%02d', n.i % 100),
                '$.incident.id', printf('inc_fill_%07d', n.i)),
       NULL, t.received_at, t.created_at, t.updated_at
FROM n, template t;
INSERT INTO incidents (id, project_id, event_pk, kind, state, provider, event_id, event_type,
                       subject, opened_at, updated_at)
SELECT 'inc_fill_' || substr(e.event_id, 10), e.project_id, e.pk, t.kind, t.incident_state,
       e.provider, e.event_id, e.event_type, e.subject,
       t.opened_at - 1000000000 + CAST(substr(e.event_id, 10) AS INTEGER), e.updated_at
FROM events e, template t
WHERE e.event_id LIKE 'evt_fill_%' AND e.project_id = t.project_id
  AND NOT EXISTS (SELECT 1 FROM incidents x WHERE x.event_pk = e.pk);
INSERT INTO timeline (event_pk, at, kind, actor, detail)
SELECT e.pk, tl.at, tl.kind, tl.actor, tl.detail
FROM events e, template t JOIN timeline tl ON tl.event_pk = t.pk
WHERE e.event_id LIKE 'evt_fill_%' AND e.project_id = t.project_id
  AND NOT EXISTS (SELECT 1 FROM timeline x WHERE x.event_pk = e.pk)
ORDER BY e.pk, tl.seq;
DROP TABLE template;
