-- Encryption at rest of signing secrets (`signing_secrets.secret`) and of
-- stored idempotent responses (`idempotency_keys.response`): the columns keep
-- their types and now hold `spenc1:<key id>:<ciphertext>` values. Existing
-- plaintext rows are sealed by start-up code after this migration
-- (`Store::reseal_signing_secrets`), because SQL has no access to the key.
--
-- Retention of resolved history (`--resolved-retention-days`) finds old,
-- finished events by their last change.
CREATE INDEX events_by_updated ON events (updated_at);
