-- Dead letters, filed by the consumer of phimask-dead-letter-<env> and
-- listed and replayed by an operator (GET /dead-letters, POST
-- /dead-letters/replay). D1 is strongly consistent: a replay claims a
-- letter (claim IS NULL -> its token) before re-queueing it, so two
-- replays never send it twice. Kept 14 days after filing.
-- STRICT: a value of the wrong type is refused when written, so paging
-- by (filed, id) never meets a row it cannot order.
CREATE TABLE IF NOT EXISTS dead_letters (
  id TEXT PRIMARY KEY,          -- the dead-letter queue's message id
  filed INTEGER NOT NULL,       -- ms since the epoch when filed (paging, `before`, retention)
  at INTEGER NOT NULL,          -- ms since the epoch when it became a dead letter
  destination TEXT NOT NULL,
  events INTEGER NOT NULL,      -- how many events its body holds
  reason TEXT NOT NULL,         -- reason code (retries_exhausted, refused, ...)
  status ANY,                   -- the last HTTP status, or "network error"
  attempts INTEGER,
  answer TEXT,                  -- the answer's summary as JSON, never a value
  policy TEXT,                  -- SHA-256 (hex) of the policy it was made under; NULL: unknown
  sealed INTEGER NOT NULL,      -- 1: its body is sealed (PHI, under a BAA)
  envelope TEXT NOT NULL,       -- the queue message as it was, JSON, bytes as {"$bytes": base64}
  claim TEXT,                   -- the token of the replay re-queueing it
  claimed INTEGER               -- when it was claimed (ms); an old claim is abandoned
) STRICT;
CREATE INDEX IF NOT EXISTS dead_letters_by_filing ON dead_letters (filed, id);
