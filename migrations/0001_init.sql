-- The PHLO runner's schema. Postgres is the source of truth: runs, their tokens and steps, counters,
-- and the outbox and timers that drive the work queue.

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    auth_id     text NOT NULL UNIQUE,
    -- SHA-256 of the auth token. Tokens are 256-bit random, so a fast hash is enough (no dictionary to guess).
    token_hash  bytea NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phlos (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id),
    name             text NOT NULL,
    -- The revision new runs start on; `latest_revision` is the highest ever saved.
    revision         int NOT NULL,
    latest_revision  int NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phlos_by_account ON phlos (account_id, created_at DESC, id);

-- Immutable: an update is a new row.
CREATE TABLE phlo_revisions (
    phlo_id     uuid NOT NULL REFERENCES phlos (id),
    revision    int NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phlo_id, revision)
);

CREATE TABLE runs (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    phlo_id       uuid NOT NULL REFERENCES phlos (id),
    revision      int NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'completed', 'failed', 'cancelled', 'timed_out')),
    trigger_type  text NOT NULL CHECK (trigger_type IN ('api', 'call', 'sms')),
    trigger       jsonb NOT NULL,
    from_number   text,
    to_number     text,
    error         text,
    steps         int NOT NULL DEFAULT 0,
    next_token    int NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE INDEX runs_by_account ON runs (account_id, created_at DESC, id);
CREATE INDEX runs_by_phlo ON runs (phlo_id, created_at DESC);
CREATE INDEX runs_active ON runs (created_at) WHERE status = 'active';

-- A token is a position in the graph. `seq` is the sequence number its next step will get; a message
-- naming another seq (or a wait the token no longer has) is a duplicate or stale, and is dropped.
CREATE TABLE tokens (
    run_id        uuid NOT NULL REFERENCES runs (id),
    token         int NOT NULL,
    node_id       uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('ready', 'waiting', 'ended')),
    seq           int NOT NULL,
    wait_id       int,
    wait          jsonb,
    context       jsonb NOT NULL,
    repeats       int NOT NULL DEFAULT 0,
    ended_reason  text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, token)
);
CREATE INDEX tokens_ready ON tokens (updated_at) WHERE status = 'ready';

-- One row per applied step: the primary key is what makes a step exactly-once.
CREATE TABLE steps (
    run_id       uuid NOT NULL REFERENCES runs (id),
    token        int NOT NULL,
    seq          int NOT NULL,
    node_id      uuid NOT NULL,
    node_name    text NOT NULL,
    node_type    text NOT NULL,
    event        text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('done', 'wait', 'stop')),
    state        text,
    variables    jsonb NOT NULL,
    effects      jsonb NOT NULL,
    error        text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, token, seq)
);

-- `owner_id` is the run (scope run) or the PHLO (scope phlo).
CREATE TABLE counters (
    owner_id    uuid NOT NULL,
    node_id     uuid NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('run', 'phlo')),
    value       bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, node_id)
);

-- Messages committed with the state change that caused them; published after commit, deleted once
-- JetStream acknowledged them. Rows left behind by a crash are re-published by the relay.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    subject     text NOT NULL,
    msg_id      text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Durable timers of waits. Fired by any worker; a timer for a wait that has moved on is ignored.
CREATE TABLE timers (
    run_id   uuid NOT NULL REFERENCES runs (id),
    token    int NOT NULL,
    wait_id  int NOT NULL,
    fire_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, token, wait_id)
);
CREATE INDEX timers_due ON timers (fire_at);
