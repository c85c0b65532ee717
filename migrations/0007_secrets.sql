-- Webhook signing secrets are stored sealed, never in plain text: XChaCha20-Poly1305 under the operator's
-- key (PHLO_SECRET_KEY), bound to the account, as `sealed:v1:<key id>:<base64url>` (crates/store/src/
-- sealing.rs). Auth tokens stay as they were: SHA-256 only, since they are never shown again.
--
-- SQL cannot seal without the key, and the key never reaches the database, so this migration does not
-- convert the secrets written before it: the gateway and the callback service seal them when they start
-- (`callbacks::seal_stored_secrets`, which also re-seals values under a previous key after a key
-- rotation). From here on the constraints refuse plain text in every row written; `NOT VALID` leaves the
-- rows from before unchecked until then.
ALTER TABLE accounts
    ADD CONSTRAINT accounts_webhook_secret_sealed
        CHECK (webhook_secret IS NULL OR webhook_secret LIKE 'sealed:%') NOT VALID,
    ADD CONSTRAINT accounts_webhook_secret_previous_sealed
        CHECK (webhook_secret_previous IS NULL OR webhook_secret_previous LIKE 'sealed:%') NOT VALID;
