-- The schema of the embedded store (`phlo dev`): the Postgres schema of migrations/0001–0009 as it
-- stands after them, in SQLite's terms. A change to the Postgres schema adds a migration here too.
--
-- Types: UUIDs are 16-byte BLOBs and timestamps RFC 3339 text in UTC (as sqlx writes them; they sort
-- in time order), JSON is text. `now()` is `strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')`.

CREATE TABLE accounts (
    id                            BLOB PRIMARY KEY,
    auth_id                       TEXT NOT NULL UNIQUE,
    token_hash                    BLOB NOT NULL,
    name                          TEXT NOT NULL DEFAULT '',
    created_at                    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    -- Named as in Postgres (migration 0007); GLOB, since SQLite's LIKE ignores case.
    webhook_secret                TEXT CONSTRAINT accounts_webhook_secret_sealed
        CHECK (webhook_secret IS NULL OR webhook_secret GLOB 'sealed:*'),
    webhook_secret_previous       TEXT CONSTRAINT accounts_webhook_secret_previous_sealed
        CHECK (webhook_secret_previous IS NULL OR webhook_secret_previous GLOB 'sealed:*'),
    webhook_secret_previous_until TEXT,
    webhook_secret_rotated_at     TEXT
);

CREATE TABLE phlos (
    id               BLOB PRIMARY KEY,
    account_id       BLOB NOT NULL REFERENCES accounts (id),
    name             TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    latest_revision  INTEGER NOT NULL,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX phlos_by_account ON phlos (account_id, created_at DESC, id);

CREATE TABLE phlo_revisions (
    phlo_id     BLOB NOT NULL REFERENCES phlos (id),
    revision    INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (phlo_id, revision)
);

CREATE TABLE runs (
    id            BLOB PRIMARY KEY,
    account_id    BLOB NOT NULL REFERENCES accounts (id),
    phlo_id       BLOB NOT NULL REFERENCES phlos (id),
    revision      INTEGER NOT NULL,
    status        TEXT NOT NULL
        CHECK (status IN ('queued', 'active', 'completed', 'failed', 'cancelled', 'timed_out')),
    trigger_type  TEXT NOT NULL CHECK (trigger_type IN ('api', 'call', 'sms')),
    trigger       TEXT NOT NULL,
    from_number   TEXT,
    to_number     TEXT,
    error         TEXT,
    steps         INTEGER NOT NULL DEFAULT 0,
    next_token    INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    ended_at      TEXT
);
CREATE INDEX runs_by_account ON runs (account_id, created_at DESC, id);
CREATE INDEX runs_by_phlo ON runs (phlo_id, created_at DESC);
CREATE INDEX runs_active ON runs (created_at) WHERE status = 'active';
CREATE INDEX runs_queued ON runs (account_id, created_at, id) WHERE status = 'queued';
CREATE INDEX runs_active_by_account ON runs (account_id) WHERE status = 'active';

CREATE TABLE tokens (
    run_id        BLOB NOT NULL REFERENCES runs (id),
    token         INTEGER NOT NULL,
    node_id       BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ready', 'waiting', 'ended')),
    seq           INTEGER NOT NULL,
    wait_id       INTEGER,
    wait          TEXT,
    context       TEXT NOT NULL,
    repeats       INTEGER NOT NULL DEFAULT 0,
    ended_reason  TEXT,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (run_id, token)
);
CREATE INDEX tokens_ready ON tokens (updated_at) WHERE status = 'ready';

CREATE TABLE steps (
    run_id       BLOB NOT NULL REFERENCES runs (id),
    token        INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    node_id      BLOB NOT NULL,
    node_name    TEXT NOT NULL,
    node_type    TEXT NOT NULL,
    event        TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('done', 'wait', 'stop')),
    state        TEXT,
    variables    TEXT NOT NULL,
    effects      TEXT NOT NULL,
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (run_id, token, seq)
);

CREATE TABLE counters (
    owner_id    BLOB NOT NULL,
    node_id     BLOB NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('run', 'phlo')),
    value       INTEGER NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (owner_id, node_id)
);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    payload      BLOB NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    traceparent  TEXT
);

CREATE TABLE timers (
    run_id   BLOB NOT NULL REFERENCES runs (id),
    token    INTEGER NOT NULL,
    wait_id  INTEGER NOT NULL,
    fire_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, token, wait_id)
);
CREATE INDEX timers_due ON timers (fire_at);

CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    phlo_id     BLOB NOT NULL REFERENCES phlos (id),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX numbers_by_account ON numbers (account_id, number);

CREATE TABLE calls (
    call_uuid    TEXT PRIMARY KEY,
    run_id       BLOB NOT NULL REFERENCES runs (id),
    token        INTEGER NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_number  TEXT NOT NULL,
    to_number    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ringing', 'in-progress', 'completed')),
    hangup_cause TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    ended_at     TEXT
);
CREATE INDEX calls_by_run ON calls (run_id);

CREATE TABLE call_instructions (
    call_uuid   TEXT PRIMARY KEY REFERENCES calls (call_uuid),
    version     INTEGER NOT NULL,
    run_id      BLOB NOT NULL,
    token       INTEGER NOT NULL,
    wait_id     INTEGER,
    action      TEXT,
    xml         TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE carrier_requests (
    msg_id      TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE callback_deliveries (
    id                BLOB PRIMARY KEY,
    run_id            BLOB NOT NULL REFERENCES runs (id),
    account_id        BLOB NOT NULL REFERENCES accounts (id),
    phlo_id           BLOB NOT NULL REFERENCES phlos (id),
    node_id           BLOB NOT NULL,
    node_name         TEXT NOT NULL,
    node_type         TEXT NOT NULL,
    event             TEXT NOT NULL,
    url               TEXT NOT NULL,
    method            TEXT NOT NULL CHECK (method IN ('POST', 'GET')),
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    round_start       INTEGER NOT NULL DEFAULT 0,
    redeliveries      INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT,
    lease_until       TEXT,
    queued            BOOLEAN NOT NULL DEFAULT 1,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    delivered_at      TEXT,
    traceparent       TEXT,
    -- The listing cursor (`GET /v1/callbacks`). Postgres stamps the writing transaction's id; SQLite
    -- has one writer at a time, so a counter stamped on every write already lists in commit order.
    change_xid        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX callback_deliveries_by_run ON callback_deliveries (run_id, created_at, id);
CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callback_deliveries_by_change ON callback_deliveries (account_id, change_xid, id);

CREATE TABLE callback_change_counter (
    only   INTEGER PRIMARY KEY CHECK (only = 1),
    value  INTEGER NOT NULL
);
INSERT INTO callback_change_counter (only, value) VALUES (1, 0);

CREATE TRIGGER callback_deliveries_stamp_insert AFTER INSERT ON callback_deliveries
BEGIN
    UPDATE callback_change_counter SET value = value + 1;
    UPDATE callback_deliveries SET change_xid = (SELECT value FROM callback_change_counter)
    WHERE id = NEW.id;
END;

-- `WHEN`: the trigger's own stamp must not fire it again.
CREATE TRIGGER callback_deliveries_stamp_update AFTER UPDATE ON callback_deliveries
WHEN NEW.change_xid = OLD.change_xid
BEGIN
    UPDATE callback_change_counter SET value = value + 1;
    UPDATE callback_deliveries SET change_xid = (SELECT value FROM callback_change_counter)
    WHERE id = NEW.id;
END;

CREATE TABLE callback_attempts (
    delivery_id  BLOB NOT NULL REFERENCES callback_deliveries (id),
    attempt      INTEGER NOT NULL,
    at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    outcome      TEXT NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER,
    error        TEXT,
    response     TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- An attempt's result changes its delivery's place in the listing, as in Postgres.
CREATE TRIGGER callback_attempts_touch_insert AFTER INSERT ON callback_attempts
BEGIN
    UPDATE callback_deliveries SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
    WHERE id = NEW.delivery_id;
END;
CREATE TRIGGER callback_attempts_touch_update AFTER UPDATE ON callback_attempts
BEGIN
    UPDATE callback_deliveries SET updated_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
    WHERE id = NEW.delivery_id;
END;

CREATE TABLE disabled_callback_urls (
    phlo_id      BLOB NOT NULL REFERENCES phlos (id),
    url          TEXT NOT NULL,
    delivery_id  BLOB NOT NULL,
    disabled_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (phlo_id, url)
);

CREATE TABLE room_members (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    phlo_id      BLOB NOT NULL,
    node_id      BLOB NOT NULL,
    node_type    TEXT NOT NULL CHECK (node_type IN ('multi_party_call', 'conference_bridge')),
    room         TEXT NOT NULL,
    run_id       BLOB NOT NULL REFERENCES runs (id),
    address      TEXT NOT NULL,
    role         TEXT NOT NULL,
    call_uuid    TEXT,
    member_id    TEXT,
    state        TEXT NOT NULL CHECK (state IN ('joining', 'in_call', 'on_hold', 'transferring', 'left')),
    on_join      TEXT,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX room_members_by_address ON room_members (phlo_id, node_id, address, updated_at DESC);
CREATE INDEX room_members_by_room ON room_members (room, state);

CREATE TABLE account_limits (
    account_id       BLOB PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    api_per_sec      REAL CHECK (api_per_sec >= 0),
    api_burst        INTEGER CHECK (api_burst >= 1),
    runs_per_sec     REAL CHECK (runs_per_sec >= 0),
    runs_burst       INTEGER CHECK (runs_burst >= 1),
    max_active_runs  INTEGER CHECK (max_active_runs >= 1),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
