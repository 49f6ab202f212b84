-- The provider tap (issue #20): the provider's own copies of events, so an
-- event whose receipt never arrives opens a `missing_receipt` incident.
--
-- One row per event that has a provider copy, keyed by the core's
-- fingerprint: a second event id describing the same change (same
-- project, provider and fingerprint) is linked to the first event instead
-- of opening a second incident. `livemode` is false for test-mode copies.
CREATE TABLE provider_copies (
    event_pk    BIGINT PRIMARY KEY REFERENCES events(pk),
    project_id  TEXT NOT NULL REFERENCES projects(id),
    provider    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    livemode    BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX provider_copies_by_fingerprint
    ON provider_copies (project_id, provider, fingerprint);
CREATE INDEX provider_copies_test_mode ON provider_copies (project_id) WHERE NOT livemode;

-- Per project: the tap's settings (tracked event types, receipt grace) and
-- its secrets, each sealed like the signing secrets (`spenc1:…`):
-- the Stripe endpoint secrets (a JSON list, several during rotation), the
-- Shopify app client secret, the Stripe restricted API key (reconciler).
CREATE TABLE provider_tap_settings (
    project_id                TEXT PRIMARY KEY REFERENCES projects(id),
    tracked_event_types       TEXT,                  -- JSON array; NULL: the defaults
    receipt_grace_seconds     BIGINT NOT NULL,
    grace_by_event_type       TEXT NOT NULL DEFAULT '{}', -- JSON object: type -> seconds
    stripe_endpoint_secrets   TEXT,                  -- sealed JSON array of whsec_ strings
    shopify_client_secret     TEXT,                  -- sealed
    stripe_restricted_key     TEXT,                  -- sealed rk_live_/rk_test_ key
    updated_at                BIGINT NOT NULL
);
