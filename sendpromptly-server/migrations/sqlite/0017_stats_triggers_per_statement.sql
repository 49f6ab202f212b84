-- Issue #26: on PostgreSQL, migration 0017 makes the events' analytics
-- triggers run once per statement over its transition tables. SQLite has
-- no statement triggers and its row triggers run inline in the writer's
-- statement: nothing to change here; the version is recorded so both
-- engines number their schemas alike.
SELECT 1;
