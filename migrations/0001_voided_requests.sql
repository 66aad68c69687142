-- Requests refused after part of their bodies were queued (the queue took
-- one sendBatch call and refused a later one): the consumer drops their
-- messages (each carries the request id as `req`) instead of sending
-- them, so a client's retry never duplicates. Rows older than 15 days are
-- removed as new ones are added: no message outlives the queue's 14 days.
CREATE TABLE IF NOT EXISTS voided_requests (
  id TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS voided_requests_at ON voided_requests (at);
