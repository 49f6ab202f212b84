-- The Stripe reconciler's state, one row per project (issue #20): how far
-- it has read Stripe's event list, the pass in progress (so a restart
-- resumes it), its last outcome, and the lease that lets one instance at a
-- time run a project's pass.
--
-- `watermark`, `pass_lower` and `pass_upper` are Stripe `created` values
-- (unix seconds); the other times are unix milliseconds, like every table.
CREATE TABLE stripe_reconcile (
    project_id      TEXT NOT NULL PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    -- The newest `created` fed by a finished pass; the next pass lists from
    -- it minus the overlap. NULL: never ran.
    watermark       BIGINT,
    -- The pass in progress: `created[gte]`, `created[lte]` and the last
    -- event id handled (`starting_after` on resume). NULL: none.
    pass_lower      BIGINT,
    pass_upper      BIGINT,
    pass_cursor     TEXT,
    pass_newest     BIGINT,
    -- Who runs the project's pass, and until when (a dead instance's lease
    -- runs out).
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_run_at     BIGINT,
    last_success_at BIGINT,
    last_error_kind TEXT,
    last_error      TEXT,
    events_fed      BIGINT NOT NULL DEFAULT 0
);
