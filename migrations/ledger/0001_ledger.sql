-- The evidence ledger (D1 binding LEDGER, database phimask-ledger-<env>):
-- counts and paths only, never a value. GET /evidence reads it.
-- Text columns that may be "none" hold '' (a primary key treats NULLs as
-- distinct, so '' lets counts add up in one row); the report shows null.
-- STRICT: a value of the wrong type is refused when written.

-- Counts per (day received, environment, policy, destination, call,
-- event name as sent, decision, reason). `day` is the UTC day the event
-- was received, also for its later delivery, so each day reconciles.
-- destination '*': a request refused whole (counted in requests).
CREATE TABLE IF NOT EXISTS ledger (
  day TEXT NOT NULL,            -- YYYY-MM-DD (UTC) the event was received
  environment TEXT NOT NULL,
  policy TEXT NOT NULL,         -- SHA-256 (hex) of the prepared policy; '' unknown
  destination TEXT NOT NULL,
  call TEXT NOT NULL,           -- track, page, ...; '' unknown (an unreadable event)
  event TEXT NOT NULL,          -- the name as sent, only when the policy lists it; else ''
  decision TEXT NOT NULL,       -- received, queued, direct, not_sent, delivered, dead_lettered, failed, replayed, refused_request
  reason TEXT NOT NULL,         -- why (not_sent, dead_lettered, failed, refused_request); else ''
  count INTEGER NOT NULL,
  PRIMARY KEY (day, environment, policy, destination, call, event, decision, reason)
) STRICT, WITHOUT ROWID;

-- Paths that arrived that no rule of the policy names (keys that do not
-- look like field names as [key]), per day: the first day a path was
-- seen is its smallest day.
CREATE TABLE IF NOT EXISTS inventory (
  environment TEXT NOT NULL,
  path TEXT NOT NULL,
  day TEXT NOT NULL,
  count INTEGER NOT NULL,       -- events it arrived in that day
  PRIMARY KEY (environment, path, day)
) STRICT, WITHOUT ROWID;

-- Each policy that made ledger rows, with its data map (Markdown, made
-- when the policy was prepared): the report shows every policy in force
-- over its range.
CREATE TABLE IF NOT EXISTS policies (
  sha256 TEXT NOT NULL,
  environment TEXT NOT NULL,
  first_seen TEXT NOT NULL,     -- YYYY-MM-DD
  last_seen TEXT NOT NULL,
  map_markdown TEXT,
  PRIMARY KEY (sha256, environment)
) STRICT;

-- Ledger messages already counted (a queue gives a message at least
-- once): their ids, kept 15 days (no message outlives the queue's 14).
CREATE TABLE IF NOT EXISTS applied (
  id TEXT PRIMARY KEY,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS applied_at ON applied (at);
