-- Issue #26: on PostgreSQL, migration 0016 rewrites the analytics
-- triggers' helper functions in PL/pgSQL so that they are planned once per
-- connection. SQLite's triggers compute the same buckets inline and its
-- prepared statements are cached by the connection: nothing to change
-- here; the version is recorded so both engines number their schemas
-- alike.
SELECT 1;
