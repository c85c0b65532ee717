-- Members of multiparty calls and conference bridges, as the trigger API sees them: by address (the
-- phone number or SIP URI the SDK names in `/members/{member_address}`), with the state the seed's
-- actions move them through.
CREATE TABLE room_members (
    id           bigserial PRIMARY KEY,
    phlo_id      uuid NOT NULL,
    node_id      uuid NOT NULL,
    node_type    text NOT NULL CHECK (node_type IN ('multi_party_call', 'conference_bridge')),
    room         text NOT NULL,
    run_id       uuid NOT NULL REFERENCES runs (id),
    address      text NOT NULL,
    role         text NOT NULL,
    call_uuid    text,
    member_id    text,
    state        text NOT NULL CHECK (state IN ('joining', 'in_call', 'on_hold', 'transferring', 'left')),
    -- What happens when this member joins: `unhold_customers` after a cold transfer.
    on_join      text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_members_by_address ON room_members (phlo_id, node_id, address, updated_at DESC);
CREATE INDEX room_members_by_room ON room_members (room, state);
