-- Voice and SMS: phone numbers routed to PHLOs, the calls runs are on, and the XML each call runs next.

-- Incoming calls and SMS to `number` start the PHLO. A number belongs to one account.
CREATE TABLE numbers (
    number      text PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    phlo_id     uuid NOT NULL REFERENCES phlos (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_by_account ON numbers (account_id, number);

-- A call a run is on (the carrier's CallUUID), and the token that currently owns it.
CREATE TABLE calls (
    call_uuid    text PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES runs (id),
    token        int NOT NULL,
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_number  text NOT NULL,
    to_number    text NOT NULL,
    status       text NOT NULL CHECK (status IN ('ringing', 'in-progress', 'completed')),
    hangup_cause text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE INDEX calls_by_run ON calls (run_id);

-- The XML a call runs next. `version` grows with every instruction, so a webhook that resumed the run
-- can wait for "an instruction newer than the one I saw" and answer the carrier with it.
CREATE TABLE call_instructions (
    call_uuid   text PRIMARY KEY REFERENCES calls (call_uuid),
    version     bigint NOT NULL,
    run_id      uuid NOT NULL,
    token       int NOT NULL,
    wait_id     int,
    -- The engine's voice action behind the XML: screening prompts, wait music and the next attempt of a
    -- sequential dial are answered from it.
    action      jsonb,
    xml         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Carrier requests (place a call, send an SMS) already attempted: each is made at most once, so a
-- redelivered message never calls or texts someone twice. A request lost to a crash is resolved by
-- its wait's timer.
CREATE TABLE carrier_requests (
    msg_id      text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
