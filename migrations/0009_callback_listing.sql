-- The account's callback deliveries across runs (`GET /v1/callbacks`), in the order they last changed,
-- with a cursor a client can tail (`phlo callbacks tail`).
--
-- The order is the id of the transaction that last wrote the delivery (`change_xid`), not a timestamp
-- or a sequence: `now()` and `nextval()` are taken before commit, so a transaction that commits late
-- lands behind a cursor that already moved past it, and the tail skips it. Transaction ids have the same
-- problem, but it can be closed: every transaction with an id below the oldest one still running
-- (`pg_snapshot_xmin(pg_current_snapshot())`) has ended, so the listing only returns changes below that
-- horizon, and a cursor at or below it never has anything committed behind it later. The price is that
-- a change waits to be listed while an older transaction is still open (normally milliseconds: the step
-- and callback transactions are short).
--
-- Rows from before this migration get 0: all of them committed long ago.
ALTER TABLE callback_deliveries ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';

CREATE FUNCTION callback_deliveries_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER callback_deliveries_stamp_change BEFORE INSERT OR UPDATE ON callback_deliveries
    FOR EACH ROW EXECUTE FUNCTION callback_deliveries_stamp_change();

-- An attempt's row is written with its delivery's (claim, finish) except when an attempt finishes after
-- its lease lapsed and a later attempt took over: then only the attempt changes. Its delivery is touched
-- at commit so that result is listed too. Deferred, so in the usual case the delivery was already
-- written by the same transaction and the update matches nothing (no extra row version).
CREATE FUNCTION callback_attempts_touch_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE callback_deliveries SET change_xid = pg_current_xact_id(), updated_at = now()
    WHERE id = NEW.delivery_id AND change_xid <> pg_current_xact_id();
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER callback_attempts_touch_delivery AFTER INSERT OR UPDATE ON callback_attempts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION callback_attempts_touch_delivery();

CREATE INDEX callback_deliveries_by_change ON callback_deliveries (account_id, change_xid, id);
