-- Issue #26: the analytics triggers' helper functions in PL/pgSQL, so their
-- statements are planned once per connection instead of on every call.
--
-- `sp_stats_bucket` and `sp_stats_bump` were SQL-language functions that
-- PostgreSQL cannot inline (a FROM clause; an INSERT), and before
-- PostgreSQL 18 such a function parses and plans its body again for every
-- statement that calls it: the triggers call them once or twice per event
-- row. Measured on the ingest benchmark (pg_stat_statements, 32
-- connections): `sp_stats_bump(…, sp_stats_bucket(v_ms))` took 0.17 ms per
-- call against 0.016 ms for a bump without a bucket, ~22 % of the group
-- writer's time. PL/pgSQL keeps each statement's plan for the session and
-- evaluates simple expressions without the executor.
--
-- Same results: `sp_stats_bucket` counts the thresholds 256·2^k (k = 0…34)
-- at or below `v`, as 0012's sum of 35 comparisons did and as
-- `sendpromptly_core::stats::bucket_of` computes (test:
-- `store_postgres.rs::the_bucket_function_matches_the_core`).

CREATE OR REPLACE FUNCTION sp_stats_bucket(v BIGINT) RETURNS BIGINT
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e INT := 0;
BEGIN
    WHILE e < 35 AND v >= (256::BIGINT << e) LOOP
        e := e + 1;
    END LOOP;
    RETURN e * 128 + (v >> e);
END
$$;

CREATE OR REPLACE FUNCTION sp_stats_bump(p TEXT, m TEXT, d BIGINT, et TEXT, b BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_delta (project_id, metric, day, event_type, bucket, n)
    VALUES (p, m, d, et, b, 1);
END
$$;
