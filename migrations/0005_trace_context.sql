-- The W3C `traceparent` of the span that wrote an outbox row, sent as a NATS header when the row is
-- published (by its writer or by the relay), so the consumer's step joins the same trace.
ALTER TABLE outbox ADD COLUMN traceparent text;
