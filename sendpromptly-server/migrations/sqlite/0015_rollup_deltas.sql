-- Issue #26: on PostgreSQL, migration 0015 makes the analytics triggers
-- append deltas that a background fold moves into the rollup, so that
-- concurrent writers never deadlock on the rollup rows. SQLite has one
-- writer at a time and cannot deadlock: it keeps 0012's triggers, which
-- upsert `stats_hist` and `slo_slots` directly. Nothing to change here;
-- the version is recorded so both engines number their schemas alike.
SELECT 1;
