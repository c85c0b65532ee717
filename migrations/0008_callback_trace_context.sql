-- The W3C `traceparent` of the step that recorded a callback delivery. Every attempt of the delivery
-- (the first, NAK'd retries, the ones the scheduler publishes when a parked retry is due or a message
-- was lost, and redeliveries through the API) continues that trace, however long after the step.
ALTER TABLE callback_deliveries ADD COLUMN traceparent text;
