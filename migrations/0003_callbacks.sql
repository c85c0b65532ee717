-- Event callbacks (DESIGN §7): every callback a step emits is a delivery, retried on a schedule by the
-- callback service; every attempt is logged.

-- Per-account Standard Webhooks signing secrets: `whsec_` + base64 of 32 random bytes. New accounts get
-- one when they are created; accounts from before this migration get one when first needed (generated
-- by the services, so no extension such as pgcrypto is required). After a rotation the previous secret
-- still signs (a second signature in `webhook-signature`) until `webhook_secret_previous_until`.
ALTER TABLE accounts
    ADD COLUMN webhook_secret                text,
    ADD COLUMN webhook_secret_previous       text,
    ADD COLUMN webhook_secret_previous_until timestamptz,
    ADD COLUMN webhook_secret_rotated_at     timestamptz;

CREATE TABLE callback_deliveries (
    -- UUID v7, and the `webhook-id` header: the same on every attempt and every redelivery.
    id                uuid PRIMARY KEY,
    run_id            uuid NOT NULL REFERENCES runs (id),
    account_id        uuid NOT NULL REFERENCES accounts (id),
    phlo_id           uuid NOT NULL REFERENCES phlos (id),
    node_id           uuid NOT NULL,
    node_name         text NOT NULL,
    node_type         text NOT NULL,
    event             text NOT NULL,
    url               text NOT NULL,
    method            text NOT NULL CHECK (method IN ('POST', 'GET')),
    -- The Standard Webhooks body `{type, timestamp, data}`. `json`, not `jsonb`: it is sent (and signed)
    -- byte for byte as recorded, with its keys in their order.
    payload           json NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    -- Attempts made so far (the in-flight one included), over every round.
    attempts          int NOT NULL DEFAULT 0,
    -- Attempts made before the current round: a redelivery starts the retry schedule again.
    round_start       int NOT NULL DEFAULT 0,
    redeliveries      int NOT NULL DEFAULT 0,
    -- When the next attempt is due (pending only).
    next_attempt_at   timestamptz,
    -- While an attempt is in flight: when its claim lapses. Still set after that means its process died.
    lease_until       timestamptz,
    -- A message for the next attempt is in NATS (published, or NAK'd with a delay). False when a long
    -- retry delay parked the delivery in Postgres: the scheduler publishes it when it is due.
    queued            boolean NOT NULL DEFAULT true,
    last_status_code  int,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz
);
CREATE INDEX callback_deliveries_by_run ON callback_deliveries (run_id, created_at, id);
CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at) WHERE status = 'pending';

-- One row per attempt, written when the attempt starts (`in_progress`) and completed with its result:
-- delivered, retry, failed, dead, disabled (410 Gone), or interrupted (its process died).
CREATE TABLE callback_attempts (
    delivery_id  uuid NOT NULL REFERENCES callback_deliveries (id),
    attempt      int NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL,
    status_code  int,
    latency_ms   int,
    error        text,
    -- The start of the response body, as text.
    response     text,
    PRIMARY KEY (delivery_id, attempt)
);

-- URLs that answered 410 Gone: no further callback of the PHLO is sent to them. Redelivering a
-- delivery to the URL through the API enables it again.
CREATE TABLE disabled_callback_urls (
    phlo_id      uuid NOT NULL REFERENCES phlos (id),
    url          text NOT NULL,
    delivery_id  uuid NOT NULL,
    disabled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phlo_id, url)
);
