// Dead letters: the Worker consumes its dead-letter queue
// (phimask-dead-letter-<env>) and files each message in the D1 database
// DELIVERY_STATE (table dead_letters, migrations/0002_dead_letters.sql;
// kept 14 days). D1 is strongly consistent, so a letter is claimed before
// it is re-queued and two replays never send it twice. An operator lists
// and replays them over HTTP with the OPERATOR_KEY secret as a bearer
// token (exact routes, no CORS: a browser page never reaches them):
//   GET  /dead-letters            pages through every letter (cursor)
//   POST /dead-letters/replay     re-queues those the policy still sends
// What is filed is what the queue held: one destination's sanitized body
// (or a pack of its bodies, with their parts: a letter of the whole
// message, such as policy_changed), sealed when its destination is under
// a BAA; never a visitor's request. A replayed pack is queued as a pack.

import { known } from "./ingest.js";
import { enqueue, labelsOf, planCalls } from "./queue.js";
import { log } from "./forward.js";
import { checkedEntry, isLedgerMessage, policyOf, record, Rows, writeEntries } from "./ledger.js";

const KEEP_MS = 14 * 86_400_000;
/** A claim older than this is abandoned (its replay died between claim and removal). */
export const CLAIM_MS = 5 * 60_000;
const LIST_LIMIT = 1000;
const REPLAY_LIMIT = 100;
const MAX_IDS = 100;
const MAX_TEXT = 200;
const MAX_REQUEST_BYTES = 65_536;
/** Bytes of an operator key: a bearer token anyone may guess at must be long. */
export const OPERATOR_KEY_BYTES = 32;
// One sendBatch call: at most 100 messages and 256 KB (envelopes are
// measured as stored, base64, which is larger than the message itself).
const ANSWER_CHARS = 2000;

// ---- the stored envelope: the message as the queue held it ----

const base64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};

/** The message as JSON text; bytes (body, iv) as {"$bytes": base64}. */
export function encodeEnvelope(message) {
  return JSON.stringify(message, function (key, value) {
    const raw = this[key];
    return ArrayBuffer.isView(raw) ? { $bytes: base64(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)) } : value;
  });
}

/** The message back from its stored text; throws on anything damaged. */
export function decodeEnvelope(text) {
  return JSON.parse(text, (key, value) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 && typeof value.$bytes === "string") {
      return Uint8Array.from(atob(value.$bytes), (c) => c.charCodeAt(0));
    }
    return value;
  });
}

// ---- filing: the dead-letter queue's consumer ----

const text = (v, max = MAX_TEXT) => String(v).slice(0, max);

/** A row of dead_letters for one message of the dead-letter queue. */
function row(msg, now) {
  const m = msg.body !== null && typeof msg.body === "object" && !Array.isArray(msg.body) ? msg.body : { body: msg.body };
  // Moved by the queue itself (max_retries reached while the handler failed): no reason of ours.
  const reason = m.reason !== null && typeof m.reason === "object" ? m.reason : { code: "retries_exhausted" };
  const at = Number.isSafeInteger(m.at) ? m.at : msg.timestamp?.getTime?.() ?? now;
  const { reason: _r, at: _a, ...message } = m;
  let envelope;
  try {
    envelope = encodeEnvelope(message);
  } catch {
    // Not JSON-able (a cycle, a BigInt): kept, listed, never replayed.
    envelope = "null";
  }
  const status = Number.isSafeInteger(reason.status) ? reason.status : typeof reason.status === "string" ? text(reason.status, 40) : null;
  let answer = reason.answer === undefined ? null : JSON.stringify(reason.answer);
  if (answer !== null && answer.length > ANSWER_CHARS) answer = JSON.stringify({ truncated: true });
  return [
    text(msg.id), now, at, typeof m.to === "string" ? text(m.to) : "", Array.isArray(m.events) ? m.events.length : 0,
    text(reason.code ?? "unknown", 64), status, Number.isSafeInteger(reason.attempts) ? reason.attempts : null, answer,
    policyOf(m.policy) || null, m.iv !== undefined ? 1 : 0, envelope,
  ];
}

const INSERT = `INSERT INTO dead_letters (id, filed, at, destination, events, reason, status, attempts, answer, policy, sealed, envelope)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`;

/**
 * Files a batch of the dead-letter queue in DELIVERY_STATE; a message not
 * filed is retried. `context` ({ environment, maps }) is the ledger's:
 * a letter the queue moved itself was not counted yet, and a ledger
 * message moved here is written, never filed.
 */
export async function file(batch, env, context) {
  const db = env.DELIVERY_STATE;
  const now = Date.now();
  // Retention is housekeeping: its failure never holds a letter back.
  await forget(db, now).catch(() => {});
  await Promise.all(batch.messages.map(async (msg) => {
    if (isLedgerMessage(msg.body)) {
      try {
        const entry = checkedEntry(msg.body);
        if (entry) await writeEntries(env.LEDGER, [entry], context?.maps);
        msg.ack();
      } catch {
        msg.retry({ delaySeconds: 300 });
      }
      return;
    }
    try {
      // The same queue message again (delivery is at least once) is filed once.
      const filed = await db.prepare(INSERT).bind(...row(msg, now)).run();
      msg.ack();
      const m = msg.body;
      // Moved by the queue itself (no reason of ours): counted here, once.
      if (filed?.meta?.changes === 1 && m !== null && typeof m === "object" && (m.reason === null || typeof m.reason !== "object")) {
        const labels = labelsOf(m);
        const rows = new Rows();
        rows.addEach(typeof m.to === "string" ? m.to : "", Array.isArray(m.events) ? m.events : [], labels.of, "dead_lettered", "retries_exhausted");
        await record(env, { id: null, day: labels.day, environment: context?.environment ?? "", policy: policyOf(m.policy), rows: rows.list(), inventory: [] }, context?.maps);
      }
    } catch (e) {
      log("error", { phimask: "dead letter not filed", destination: text(msg.body?.to, 100), reason: text(e?.message ?? "no DELIVERY_STATE binding", 200) });
      // The dead-letter queue retries up to 100 times, 5 minutes apart.
      msg.retry({ delaySeconds: 300 });
    }
  }));
}

/** Removes letters filed more than 14 days ago (async: a missing binding rejects, never throws). */
const forget = async (db, now) => db.prepare("DELETE FROM dead_letters WHERE filed < ?").bind(now - KEEP_MS).run();

// ---- the operator's routes ----

/** JSON answers of the operator routes: no CORS (no browser page may read or send them), never cached. */
export function answer(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers } });
}

export const refuse = (status, code, error, extra = {}, headers = {}) => answer(status, { success: false, code, error, ...extra }, headers);

class BadRequest extends Error {
  constructor(code, message, status = 400) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/**
 * Why a request may not use an operator route (`what` it would do): no
 * or a short OPERATOR_KEY (503), a missing or wrong bearer token (401);
 * null for the key's holder.
 */
export async function operatorRefusal(request, env, what) {
  const key = env.OPERATOR_KEY;
  if (typeof key !== "string" || key === "") return refuse(503, "no_operator_key", `not configured: set the OPERATOR_KEY secret (at least 32 bytes: openssl rand -base64 32) to ${what}`);
  if (new TextEncoder().encode(key).length < OPERATOR_KEY_BYTES) {
    return refuse(503, "operator_key_too_short", `not configured: OPERATOR_KEY must be at least ${OPERATOR_KEY_BYTES} bytes (openssl rand -base64 32); the operator routes stay closed until it is`);
  }
  const token = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("Authorization") ?? "")?.[1];
  if (!token || !(await known(token, [key]))) return refuse(401, "invalid_operator_key", "missing or unknown operator key: send it as Authorization: Bearer OPERATOR_KEY");
  return null;
}

/** The paths operate() answers; anything else (a prefix, a suffix) is not one. */
export const OPERATOR_PATHS = new Set(["/dead-letters", "/dead-letters/replay"]);

/**
 * GET /dead-letters and POST /dead-letters/replay, for the holder of
 * OPERATOR_KEY. `hash` is the current policy's SHA-256 (hex); `compiled`
 * holds its targets (which destinations exist, which are restricted).
 */
export async function operate(request, env, path, hash, compiled, context) {
  const refused = await operatorRefusal(request, env, "list and replay dead letters");
  if (refused) return refused;
  const replay = path === "/dead-letters/replay";
  const method = replay ? "POST" : "GET";
  if (request.method !== method) return refuse(405, "method_not_allowed", `method not allowed: use ${method}`, {}, { Allow: method });
  const db = env.DELIVERY_STATE;
  if (!db) return refuse(503, "no_dead_letter_store", "not configured: no DELIVERY_STATE D1 database binding (d1_databases in wrangler.toml)");
  try {
    if (!replay) return await list(db, new URL(request.url).searchParams, hash);
    if (compiled?.error || !compiled?.targets) return refuse(503, compiled?.error?.code ?? "not_configured", "not configured: the policy is not compiled, so nothing can be replayed (see GET /health)");
    return await replayLetters(db, env, await selection(request), hash, compiled.targets, context);
  } catch (e) {
    if (e instanceof BadRequest) return refuse(e.status, e.code, e.message);
    log("error", { phimask: "dead-letter store failed", error: text(e?.message ?? e) });
    return refuse(503, "dead_letter_store_unavailable", "the dead-letter store (D1 DELIVERY_STATE) failed: are its migrations applied? Nothing was changed by a failed call; send it again");
  }
}

// ---- selection: cursor, limit, filters ----

/** A cursor: the (filed, id) of the last letter a page held, opaque to callers. */
const cursorOf = (filed, id) => btoa(JSON.stringify([filed, id])).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function parseCursor(v) {
  if (v === undefined || v === null || v === "") return null;
  const bad = () => new BadRequest("invalid_cursor", "invalid cursor: pass back the cursor of the previous answer, unchanged");
  if (typeof v !== "string" || v.length > 400 || !/^[A-Za-z0-9_-]+$/.test(v)) throw bad();
  let pair;
  try {
    pair = JSON.parse(atob(v.replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    throw bad();
  }
  if (!Array.isArray(pair) || pair.length !== 2 || !Number.isSafeInteger(pair[0]) || pair[0] < 0 || typeof pair[1] !== "string" || pair[1].length > MAX_TEXT) throw bad();
  return pair;
}

function parseLimit(v, max) {
  if (v === undefined || v === null || v === "") return max;
  const n = typeof v === "number" ? v : /^\d{1,7}$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new BadRequest("invalid_limit", `invalid limit: a whole number from 1 to ${max}`);
  return n;
}

/** `before`: only letters filed before it (ms since the epoch); a run passes back the first answer's. */
function parseBefore(v, now) {
  if (v === undefined || v === null || v === "") return now;
  const n = typeof v === "number" ? v : /^\d{1,16}$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new BadRequest("invalid_before", "invalid before: a time in milliseconds since the epoch, as a previous answer's `before`");
  return n;
}

function parseText(v, name) {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v === "" || v.length > MAX_TEXT) throw new BadRequest(`invalid_${name}`, `invalid ${name}: a string of 1 to ${MAX_TEXT} characters`);
  return v;
}

function parseIds(v) {
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_IDS || !v.every((id) => typeof id === "string" && id !== "" && id.length <= MAX_TEXT)) {
    throw new BadRequest("invalid_ids", `invalid ids: a list of 1 to ${MAX_IDS} dead-letter ids (strings), as GET /dead-letters lists them`);
  }
  return v;
}

/** The WHERE clause of a page and its bound values (never text of the request in the SQL itself). */
function where({ before, cursor, reason, destination, ids }) {
  const terms = ["filed < ?"];
  const values = [before];
  if (cursor) {
    terms.push("(filed, id) > (?, ?)");
    values.push(...cursor);
  }
  if (reason !== null) {
    terms.push("reason = ?");
    values.push(reason);
  }
  if (destination !== null) {
    terms.push("destination = ?");
    values.push(destination);
  }
  if (ids !== null) {
    terms.push("id IN (SELECT value FROM json_each(?))");
    values.push(JSON.stringify(ids));
  }
  return { sql: terms.join(" AND "), values };
}

/** One page of rows (limit + 1 read, to know whether more follow). */
async function page(db, columns, select) {
  const { sql, values } = where(select);
  const { results } = await db.prepare(`SELECT ${columns} FROM dead_letters WHERE ${sql} ORDER BY filed, id LIMIT ?`).bind(...values, select.limit + 1).all();
  const more = results.length > select.limit;
  const rows = more ? results.slice(0, select.limit) : results;
  const last = rows.at(-1);
  return { rows, more, cursor: more ? cursorOf(last.filed, last.id) : null };
}

// ---- listing ----

/** A row as the operator sees it: no body, no value. */
function listed(r, hash, now) {
  const reason = { code: r.reason };
  if (r.status !== null) reason.status = r.status;
  if (r.attempts !== null) reason.attempts = r.attempts;
  if (r.answer !== null) reason.answer = JSON.parse(r.answer);
  return {
    id: r.id, destination: r.destination, events: r.events, reason, at: r.at, filed: r.filed,
    policy: r.policy, currentPolicy: r.policy === hash, sealed: r.sealed === 1,
    ...(r.parts > 0 && { parts: r.parts }),
    ...(r.claim !== null && now - r.claimed < CLAIM_MS && { claimed: true }),
  };
}

async function list(db, params, hash) {
  const now = Date.now();
  await forget(db, now);
  const select = {
    before: parseBefore(params.get("before"), now),
    cursor: parseCursor(params.get("cursor")),
    limit: parseLimit(params.get("limit"), LIST_LIMIT),
    reason: parseText(params.get("reason"), "reason"),
    destination: parseText(params.get("destination"), "destination"),
    ids: params.has("id") ? parseIds(params.getAll("id")) : null,
  };
  // parts: how many bodies a pack's letter holds (none for one body).
  const parts = "CASE WHEN json_valid(envelope) THEN json_array_length(envelope, '$.parts') END AS parts";
  const { rows, more, cursor } = await page(db, `id, filed, at, destination, events, reason, status, attempts, answer, policy, sealed, claim, claimed, ${parts}`, select);
  const deadLetters = rows.map((r) => {
    try {
      return listed(r, hash, now);
    } catch {
      // A damaged row is named, not a reason to stop the listing.
      return { id: r.id, filed: r.filed, unreadable: true };
    }
  });
  return answer(200, { deadLetters, more, cursor, before: select.before, policy: hash });
}

// ---- replay ----

/** Reads a replay's JSON body (at most 64 KB): { ids?, reason?, destination?, force?, cursor?, before?, limit? }. */
async function selection(request) {
  const declared = Number(request.headers.get("Content-Length"));
  if (declared > MAX_REQUEST_BYTES) throw new BadRequest("body_too_large", `body too large: at most ${MAX_REQUEST_BYTES} bytes`, 413);
  const chunks = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_REQUEST_BYTES) {
        await reader.cancel().catch(() => {});
        throw new BadRequest("body_too_large", `body too large: at most ${MAX_REQUEST_BYTES} bytes`, 413);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  const source = new TextDecoder().decode(bytes).trim();
  let body = {};
  if (source !== "") {
    try {
      body = JSON.parse(source);
    } catch {
      throw new BadRequest("invalid_body", "invalid body: a JSON object { ids?, reason?, destination?, force?, cursor?, before?, limit? }");
    }
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new BadRequest("invalid_body", "invalid body: a JSON object { ids?, reason?, destination?, force?, cursor?, before?, limit? }");
  // A misspelt selector must not widen the selection to every letter.
  const unknown = Object.keys(body).filter((k) => !["ids", "reason", "destination", "force", "cursor", "before", "limit"].includes(k));
  if (unknown.length > 0) throw new BadRequest("invalid_body", `invalid body: unknown key ${JSON.stringify(unknown[0].slice(0, 40))}; the keys are ids, reason, destination, force, cursor, before, limit`);
  if (body.force !== undefined && typeof body.force !== "boolean") throw new BadRequest("invalid_force", "invalid force: true or false");
  if (body.limit !== undefined && typeof body.limit !== "number") throw new BadRequest("invalid_limit", `invalid limit: a whole number from 1 to ${REPLAY_LIMIT}`);
  if (body.before !== undefined && typeof body.before !== "number") throw new BadRequest("invalid_before", "invalid before: a time in milliseconds since the epoch, as a previous answer's `before`");
  return {
    ids: parseIds(body.ids),
    reason: parseText(body.reason, "reason"),
    destination: parseText(body.destination, "destination"),
    force: body.force === true,
    cursor: parseCursor(body.cursor),
    rawBefore: body.before,
    limit: parseLimit(body.limit, REPLAY_LIMIT),
  };
}

/**
 * Why a letter may not be re-queued now, or null. Never, even forced: a
 * destination the policy no longer has, or a sealed body (PHI) for one the
 * policy now restricts. A letter made under another (or an unknown)
 * policy only when forced.
 */
function refusal(r, hash, targets, force) {
  const to = targets.get(r.destination);
  if (!to) return "unknown_destination";
  if (r.sealed === 1 && to.target.restricted) return "restricted_now";
  if (r.policy !== hash && !force) return "policy_changed";
  return null;
}

async function replayLetters(db, env, select, hash, targets, context) {
  const now = Date.now();
  select.before = parseBefore(select.rawBefore, now);
  await forget(db, now);
  const { rows, more, cursor } = await page(db, "id, filed, destination, policy, sealed", select);
  const skipped = [];
  const candidates = [];
  for (const r of rows) {
    const why = refusal(r, hash, targets, select.force);
    if (why) skipped.push({ id: r.id, destination: r.destination, reason: why });
    else candidates.push(r);
  }
  const base = { skipped, unreadable: [], more, cursor, before: select.before, policy: hash };
  if (candidates.length === 0) return answer(200, { replayed: [], ...base });

  // Claimed in one statement (D1 is strongly consistent): a letter
  // another replay holds is not taken, so it is never queued twice.
  const claim = crypto.randomUUID();
  const ids = JSON.stringify(candidates.map((r) => r.id));
  const { results: taken } = await db.prepare(
    "UPDATE dead_letters SET claim = ?, claimed = ? WHERE id IN (SELECT value FROM json_each(?)) AND (claim IS NULL OR claimed < ?) RETURNING id, destination, sealed, envelope",
  ).bind(claim, now, ids, now - CLAIM_MS).all();
  const mine = new Set(taken.map((t) => t.id));
  for (const r of candidates) if (!mine.has(r.id)) skipped.push({ id: r.id, destination: r.destination, reason: "claimed" });

  const items = [];
  const release = [];
  for (const t of taken) {
    const message = readable(t);
    if (!message) {
      base.unreadable.push(t.id);
      release.push(t.id);
      continue;
    }
    // Forced: the operator vouches that the body may go under the current
    // policy. Its own policy hash stays: a sealed body opens only with it.
    if (select.force && message.policy !== hash) message.forced = hash;
    // A replay starts its retries afresh.
    delete message.tries;
    items.push({ id: t.id, message });
  }
  const replayed = [];
  let refused = false;
  // Each group is exactly one sendBatch call of enqueue: queued whole or not at all.
  for (const group of planCalls(items, (i) => i.message)) {
    try {
      await enqueue(env.DELIVERY, group.map((i) => i.message));
      replayed.push(...group.map((i) => i.id));
      await countReplayed(env, group.map((i) => i.message), context);
    } catch (e) {
      refused = true;
      release.push(...group.map((i) => i.id));
      log("error", { phimask: "dead letters not replayed: the queue refused", count: group.length, error: text(e?.message ?? e) });
    }
  }
  // Removed only once queued again; what was not queued is released for a later replay.
  if (replayed.length > 0) await db.prepare("DELETE FROM dead_letters WHERE claim = ? AND id IN (SELECT value FROM json_each(?))").bind(claim, JSON.stringify(replayed)).run();
  if (release.length > 0) await db.prepare("UPDATE dead_letters SET claim = NULL, claimed = NULL WHERE claim = ? AND id IN (SELECT value FROM json_each(?))").bind(claim, JSON.stringify(release)).run();
  log("log", { phimask: "dead letters replayed", count: replayed.length, skipped: skipped.length, unreadable: base.unreadable.length, forced: select.force });
  if (refused) {
    return refuse(503, "queue_unavailable", "the delivery queue refused some dead letters: they are still in the store, unclaimed; send the replay again", { replayed, ...base });
  }
  return answer(200, { replayed, ...base });
}

/** Counts re-queued letters' events as replayed in the ledger, under the day and policy each was made. */
async function countReplayed(env, messages, context) {
  const entries = new Map();
  for (const m of messages) {
    const labels = labelsOf(m);
    const policy = policyOf(m.policy);
    const key = `${labels.day} ${policy}`;
    if (!entries.has(key)) entries.set(key, { day: labels.day, policy, rows: new Rows() });
    entries.get(key).rows.addEach(m.to, Array.isArray(m.events) ? m.events : [], labels.of, "replayed", "");
  }
  for (const e of entries.values()) {
    await record(env, { id: null, day: e.day, environment: context?.environment ?? "", policy: e.policy, rows: e.rows.list(), inventory: [] }, context?.maps);
  }
}

/** A claimed row's message, or null when its envelope is damaged or disagrees with its row. */
function readable(t) {
  let m;
  try {
    m = decodeEnvelope(t.envelope);
  } catch {
    return null;
  }
  if (m === null || typeof m !== "object" || Array.isArray(m)) return null;
  // The checks of refusal() were made on the row: the message must be what the row says.
  if (m.to !== t.destination || (m.iv !== undefined ? 1 : 0) !== t.sealed) return null;
  return m;
}
