-- Requests refused after part of their bodies were queued (the queue took
-- one sendBatch call and refused the next): the consumer drops their
-- messages instead of sending them, so a client's retry never duplicates.
CREATE TABLE IF NOT EXISTS voided_requests (
  id TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);
