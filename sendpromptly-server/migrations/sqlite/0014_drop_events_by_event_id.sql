-- Issue #26: `events_by_event_id (project_id, event_id, pk)` duplicated the
-- unique key (project_id, provider, event_id) for the one query that filters
-- by event id without a provider; that query now lists the providers and
-- uses the unique key. One index fewer on a random key: a quarter less WAL
-- per new event, and fewer bytes on disk per event.
DROP INDEX IF EXISTS events_by_event_id;
