// The evidence ledger: counts and paths, never a value, in the D1
// database LEDGER (migrations/ledger/). What a request did is counted by
// a "ledger message" queued in the same sendBatch call as its bodies, so
// the counts are there exactly when the bodies are; the consumer writes
// those messages and its own outcomes (delivered, dead-lettered, refused
// by the destination) in one D1 batch per invocation. Requests refused
// whole are counted apart (destination "*", in requests), written a
// batch at a time. evidence.js reads it all back as the report.
//
// A row: [destination, call, event, decision, reason, count], under a
// (day, environment, policy). `call` and `event` come from the engine's
// labels: the call type, and the event name as sent only when the policy
// lists it (else ""). Decisions:
//   received       every event of a request answered 200, per destination
//   not_sent       the policy did not send it there (reason: routing,
//                  call_type, event_name, consent, bot, unmapped, refused)
//   queued         its body entered the delivery queue
//   direct         its body was sent at once (under a BAA, no queue key)
//   delivered      the destination took it
//   dead_lettered  filed as a dead letter (reason: the letter's code)
//   failed         refused by the destination inside a body it otherwise
//                  took, or a direct delivery that failed: no dead letter
//   replayed       a dead letter re-queued by an operator
//   refused_request  a request refused whole (destination "*"; reason:
//                  the answer's code; counted in requests)
import { log } from "./forward.js";

/** Kind of a DELIVERY message that carries ledger rows rather than a body. */
export const LEDGER_KIND = "ledger";
// Ledger messages stay well under Queues' 128,000 bytes.
const LEDGER_MESSAGE_BYTES = 100_000;
// applied rows outlive any message that could be given again (14 days).
const APPLIED_KEEP_MS = 15 * 86_400_000;
/**
 * Most distinct inventory paths one environment keeps a day; the events
 * of paths beyond them are counted under MORE_PATHS. Senders choose the
 * keys (a browser's write key is public): without a bound, fresh names
 * would grow D1 and the report without end.
 */
export const MAX_DAY_PATHS = 1000;
/** Where the engine, and the day's bound, count the paths beyond their caps. */
export const MORE_PATHS = "[more paths]";

/** The UTC day of `ms` as YYYY-MM-DD. */
export const dayOf = (ms = Date.now()) => new Date(ms).toISOString().slice(0, 10);

/** The label of an event the ledger knows nothing of: no call, no name. */
export const NO_LABEL = Object.freeze(["", ""]);

/** A label ([call, event]) as the engine or a queue message gave it, "" for what is not text. */
export const labelOf = (l) => (Array.isArray(l) ? [typeof l[0] === "string" ? l[0] : "", typeof l[1] === "string" ? l[1] : ""] : NO_LABEL);

const HASH = /^[0-9a-f]{64}$/;
/** A policy hash as the ledger files it: hex SHA-256, else "" (unknown). */
export const policyOf = (v) => (typeof v === "string" && HASH.test(v) ? v : "");

/** A destination's labels of a processed request, each one array (its identity stands for it). */
const labelsFor = (l) => (Array.isArray(l?.labels) ? l.labels.map(labelOf) : []);

/**
 * A destination's labels of one processed request: `of(i)` the label
 * ([call, event], "" for none) of request index `i` among the events in
 * its bodies.
 */
export function sentLabels(processed, destination) {
  const l = processed.ledger?.[destination];
  const labels = labelsFor(l);
  const byIndex = new Map();
  const events = processed.events?.[destination] ?? [];
  events.forEach((list, b) => list.forEach((index, k) => byIndex.set(index, labels[l?.of?.[b]?.[k]] ?? NO_LABEL)));
  return (i) => byIndex.get(i) ?? NO_LABEL;
}

/**
 * The rows of a request answered 200: per server-side destination and
 * label, received, not_sent (by reason) and queued or direct. `direct`:
 * the destinations whose bodies go out at once.
 */
export function requestRows(processed, direct) {
  const rows = new Rows();
  for (const [destination, list] of Object.entries(processed.events ?? {})) {
    const l = processed.ledger?.[destination];
    const labels = labelsFor(l);
    const how = direct.has(destination) ? "direct" : "queued";
    // Summed per label first: a row's key is made once per label, not per event.
    const sent = new Map();
    list.forEach((events, b) => events.forEach((_, k) => {
      const at = l?.of?.[b]?.[k];
      sent.set(at, (sent.get(at) ?? 0) + 1);
    }));
    for (const [at, count] of sent) {
      const [call, event] = labels[at] ?? NO_LABEL;
      rows.add(destination, call, event, "received", "", count);
      rows.add(destination, call, event, how, "", count);
    }
    for (const [at, reason, count] of Array.isArray(l?.notSent) ? l.notSent : []) {
      const [call, event] = labels[at] ?? NO_LABEL;
      rows.add(destination, call, event, "received", "", count);
      rows.add(destination, call, event, "not_sent", String(reason), count);
    }
  }
  return rows.list();
}

/** Rows summed by key as they are added. */
export class Rows {
  constructor() {
    this.map = new Map();
  }

  add(destination, call, event, decision, reason, count) {
    if (!(count > 0)) return;
    const row = [String(destination), call ?? "", event ?? "", decision, reason ?? "", count];
    const key = JSON.stringify(row.slice(0, 5));
    const had = this.map.get(key);
    if (had) had[5] += count;
    else this.map.set(key, row);
  }

  /** Counts each request index of `indexes` under its label (`of`). */
  addEach(destination, indexes, of, decision, reason) {
    for (const i of indexes) this.add(destination, ...of(i), decision, reason, 1);
  }

  list() {
    return [...this.map.values()];
  }

  get size() {
    return this.map.size;
  }
}

/**
 * Ledger messages for an entry ({ day, environment, policy, rows,
 * inventory }), each under LEDGER_MESSAGE_BYTES, each with its own id
 * (the consumer counts an id once).
 */
export function ledgerMessages({ day, environment, policy, rows = [], inventory = [] }) {
  const messages = [];
  let open = null;
  let size = 0;
  const start = () => {
    open = { kind: LEDGER_KIND, id: crypto.randomUUID(), day, environment, policy, rows: [], inventory: [] };
    messages.push(open);
    size = 512;
  };
  const put = (list, item) => {
    const bytes = 2 * JSON.stringify(item).length + 16;
    if (!open || size + bytes > LEDGER_MESSAGE_BYTES) start();
    open[list].push(item);
    size += bytes;
  };
  for (const r of rows) put("rows", r);
  for (const p of inventory) put("inventory", p);
  return messages;
}

/** Whether a queue message is a ledger message. */
export const isLedgerMessage = (m) => m !== null && typeof m === "object" && m.kind === LEDGER_KIND;

/** Whether `v` is written YYYY-MM-DD (a queue message's day; evidence.js checks calendar dates). */
export const isDayText = (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v);
const short = (v, max = 200) => (typeof v === "string" ? v.slice(0, max) : "");
const count = (n) => (Number.isSafeInteger(n) && n > 0 ? n : 0);

/**
 * An entry checked field by field (it came through a queue): rows with a
 * bad count or decision are left out. Returns null when nothing is left.
 */
export function checkedEntry(m) {
  if (!isLedgerMessage(m) || !isDayText(m.day)) return null;
  const rows = (Array.isArray(m.rows) ? m.rows : [])
    .filter((r) => Array.isArray(r) && r.length === 6 && count(r[5]) > 0 && DECISIONS.has(r[3]))
    .map((r) => [short(r[0]), short(r[1], 16), short(r[2]), r[3], short(r[4], 64), r[5]]);
  const inventory = (Array.isArray(m.inventory) ? m.inventory : [])
    .filter((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && count(p[1]) > 0)
    .map((p) => [short(p[0], 256), p[1]]);
  return {
    id: typeof m.id === "string" ? short(m.id, 64) : null,
    day: m.day,
    environment: short(m.environment, 64),
    policy: policyOf(m.policy),
    rows,
    inventory,
  };
}

export const DECISIONS = new Set(["received", "not_sent", "queued", "direct", "delivered", "dead_lettered", "failed", "replayed", "refused_request"]);

const UPSERT_ROWS = `INSERT INTO ledger (day, environment, policy, destination, call, event, decision, reason, count)
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'),
         json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'),
         json_extract(value, '$[8]')
  FROM json_each(?) WHERE true
  ON CONFLICT (day, environment, policy, destination, call, event, decision, reason) DO UPDATE SET count = count + excluded.count`;
const UPSERT_INVENTORY = `INSERT INTO inventory (environment, path, day, count)
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]')
  FROM json_each(?) WHERE true
  ON CONFLICT (environment, path, day) DO UPDATE SET count = count + excluded.count`;
const UPSERT_POLICY = `INSERT INTO policies (sha256, environment, first_seen, last_seen, map_markdown) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (sha256, environment) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
    map_markdown = coalesce(map_markdown, excluded.map_markdown)`;

/**
 * Writes entries in one D1 batch (a transaction): their rows and
 * inventory summed, the policies they name (`maps`: the running policy's
 * data map, { [hash]: { markdown } }), and the ids of those with one, so an entry
 * given twice is counted once. Rejects when D1 does.
 */
export async function writeEntries(db, entries, maps = {}) {
  if (!db) throw new Error("no LEDGER binding");
  // An id given twice in one batch (the queue gave a message again) counts once.
  const seen = new Set();
  let list = entries.filter((e) => e && (e.rows.length > 0 || e.inventory.length > 0) && (!e.id || (!seen.has(e.id) && seen.add(e.id))));
  const ids = list.map((e) => e.id).filter(Boolean);
  if (ids.length > 0) {
    const { results } = await db.prepare("SELECT id FROM applied WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(ids)).all();
    const done = new Set(results.map((r) => r.id));
    list = list.filter((e) => !e.id || !done.has(e.id));
  }
  if (list.length === 0) return 0;
  const rows = new Map();
  const inventory = new Map();
  const policies = new Map();
  for (const e of list) {
    for (const r of e.rows) {
      const key = JSON.stringify([e.day, e.environment, e.policy, ...r.slice(0, 5)]);
      rows.set(key, (rows.get(key) ?? 0) + r[5]);
    }
    for (const [path, n] of e.inventory) {
      const key = JSON.stringify([e.environment, path, e.day]);
      inventory.set(key, (inventory.get(key) ?? 0) + n);
    }
    if (e.policy) {
      const key = `${e.policy} ${e.environment}`;
      const p = policies.get(key);
      if (!p) policies.set(key, { sha256: e.policy, environment: e.environment, first: e.day, last: e.day });
      else {
        if (e.day < p.first) p.first = e.day;
        if (e.day > p.last) p.last = e.day;
      }
    }
  }
  await boundInventory(db, inventory);
  const now = Date.now();
  const statements = [];
  if (rows.size > 0) statements.push(db.prepare(UPSERT_ROWS).bind(JSON.stringify([...rows].map(([k, n]) => [...JSON.parse(k), n]))));
  if (inventory.size > 0) statements.push(db.prepare(UPSERT_INVENTORY).bind(JSON.stringify([...inventory].map(([k, n]) => [...JSON.parse(k), n]))));
  for (const p of policies.values()) {
    const map = maps[p.sha256] ?? {};
    statements.push(db.prepare(UPSERT_POLICY).bind(p.sha256, p.environment, p.first, p.last, map.markdown ?? null));
  }
  const fresh = list.map((e) => e.id).filter(Boolean);
  if (fresh.length > 0) {
    statements.push(db.prepare("INSERT OR IGNORE INTO applied (id, at) SELECT value, ? FROM json_each(?)").bind(now, JSON.stringify(fresh)));
    statements.push(db.prepare("DELETE FROM applied WHERE at < ?").bind(now - APPLIED_KEEP_MS));
  }
  await db.batch(statements);
  return list.length;
}

/**
 * Keeps each (environment, day) at MAX_DAY_PATHS distinct paths:
 * `inventory` (Map of [environment, path, day] as JSON → count) loses
 * the new paths beyond the bound, their counts added to MORE_PATHS (which
 * the bound leaves room for).
 */
async function boundInventory(db, inventory) {
  const days = new Map();
  for (const key of inventory.keys()) {
    const [environment, path, day] = JSON.parse(key);
    const head = JSON.stringify([environment, day]);
    if (!days.has(head)) days.set(head, []);
    days.get(head).push(path);
  }
  for (const [head, paths] of days) {
    const [environment, day] = JSON.parse(head);
    const [{ results: [held] }, { results: known }] = await db.batch([
      db.prepare("SELECT COUNT(*) AS n FROM inventory WHERE environment = ? AND day = ?").bind(environment, day),
      db.prepare("SELECT path FROM inventory WHERE environment = ? AND day = ? AND path IN (SELECT value FROM json_each(?))").bind(environment, day, JSON.stringify(paths)),
    ]);
    const there = new Set(known.map((r) => r.path));
    let room = MAX_DAY_PATHS - 1 - held.n;
    const more = JSON.stringify([environment, MORE_PATHS, day]);
    for (const path of paths) {
      if (path === MORE_PATHS || there.has(path)) continue;
      if (room > 0) {
        room -= 1;
        continue;
      }
      const key = JSON.stringify([environment, path, day]);
      inventory.set(more, (inventory.get(more) ?? 0) + inventory.get(key));
      inventory.delete(key);
    }
  }
}

/**
 * Records an entry now: written to LEDGER, else queued as a ledger
 * message for the consumer to write later; logged (counts only) when
 * neither takes it.
 */
export async function record(env, entry, maps) {
  if (entry.rows.length === 0 && entry.inventory.length === 0) return;
  try {
    await writeEntries(env.LEDGER, [entry], maps);
    return;
  } catch (e) {
    log("error", { phimask: "ledger not written, queued instead", rows: entry.rows.length, error: short(String(e?.message ?? e)) });
  }
  try {
    // One call each: a ledger message may be most of a call's 256 KB.
    for (const body of ledgerMessages(entry)) await env.DELIVERY.send(body, { contentType: "v8" });
  } catch (e) {
    log("error", { phimask: "ledger counts lost", rows: entry.rows.length, events: entry.rows.reduce((n, r) => n + r[5], 0), error: short(String(e?.message ?? e)) });
  }
}

/**
 * Requests refused whole, counted per isolate and written a batch at a
 * time: one D1 write in flight, whatever the flood.
 */
export class Refusals {
  constructor() {
    this.pending = new Map();
    this.flushing = null;
  }

  /** Counts a refused request; `ctx.waitUntil` keeps the write going after the answer. */
  add(ctx, env, context, call, code) {
    if (!env.LEDGER) return;
    const key = JSON.stringify([dayOf(), context.environment, context.policy, call, code]);
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    if (!this.flushing) {
      this.flushing = this.flush(env, context.maps).finally(() => {
        this.flushing = null;
      });
    }
    ctx?.waitUntil?.(this.flushing);
  }

  async flush(env, maps) {
    while (this.pending.size > 0) {
      const taken = [...this.pending];
      this.pending.clear();
      const byDay = new Map();
      for (const [key, n] of taken) {
        const [day, environment, policy, call, code] = JSON.parse(key);
        const head = JSON.stringify([day, environment, policy]);
        if (!byDay.has(head)) byDay.set(head, { id: null, day, environment, policy, rows: [], inventory: [] });
        byDay.get(head).rows.push(["*", call, "", "refused_request", code, n]);
      }
      try {
        await writeEntries(env.LEDGER, [...byDay.values()], maps);
      } catch (e) {
        log("error", { phimask: "refused requests not counted", requests: taken.reduce((n, [, c]) => n + c, 0), error: short(String(e?.message ?? e)) });
      }
    }
  }
}
