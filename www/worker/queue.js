// Durable delivery through Cloudflare Queues. The Worker enqueues each
// destination's sanitized request bodies (binding DELIVERY) before it
// answers; its queue handler POSTs them:
// - delivered (2xx, or Mixpanel's partial import): acked;
// - 429, 5xx, a timeout or a network error: retried after 1, 2, 4 … s
//   (at most an hour), or what Retry-After asks if longer; after
//   DELIVERY_MAX_RETRIES retries, a dead letter;
// - Amplitude's 400 listing refused events: the rest sent again;
// - any other 4xx: a dead letter at once;
// - made under another policy, or for an endpoint or format the
//   destination no longer has: a dead letter (policy_changed), never sent;
// - a GA4 body with an event older than GA4's 72-hour backdating window:
//   a dead letter (outside_ga4_window), never sent into GA4's silent 2xx;
// - part of a request that was refused after part of it was queued (its
//   id is in DELIVERY_STATE's voided_requests): dropped, the client sent
//   it again.
// Dead letters go to the dead-letter queue (binding DEAD_LETTER) with
// their reason; dead-letters.js files them for operators to list and
// replay. A message holds one body for one destination, or a pack of up
// to PACK_BODIES of them, each sent on its own (a pack's failed bodies
// become letters of their own, those to retry one new pack): never the
// visitor's request, never a credential. Bodies of destinations under a
// BAA still hold PHI and are sealed (seal.js) before they enter the queue.
//
// DELIVERY message (sent as "v8", structured clone):
//   { to:       destination name
//     events:   [request index of each event of the body]
//     body:     Uint8Array, the body as sent (sealed: ciphertext and tag);
//               a pack's bodies joined by "\n", sealed as one
//     parts?:   a pack's events per body, in order (summing to events.length);
//               absent for one body
//     tries?:   attempts made before this message (a retried pack)
//     iv?:      Uint8Array(12), present when sealed
//     kid?:     key id of the sealing key (seal.js), present when sealed
//     policy:   hex SHA-256 of the prepared policy that made it
//     format:   the destination's format then (amplitude, ga4 …)
//     endpoint: hex SHA-256 of the destination's endpoint URL as the policy
//               names it (no credential)
//     req?:     request id, when the request took more than one sendBatch
//     forced?:  the policy hash an operator's forced replay sends it under
//     ledger?:  { day: YYYY-MM-DD received, labels: [[call, event]], of:
//               [label index per event] }: what ledger.js counts its
//               events under (no value: names only as the policy lists them) }
// A ledger message (ledger.js, kind "ledger") carries counts instead of a
// body; it is queued in the same sendBatch call as its request's bodies.
// DEAD_LETTER message: the same fields, and
//   { reason:   { code, … counts and statuses, never a value }
//     at:       ms since the epoch it was dead-lettered }
// Every message, envelope included, fits Queues' 128,000 bytes
// (messageBytes bounds its serialized size); see planCalls for sendBatch.

import { attempt, fetchSlots, forwarded, log } from "./forward.js";
import { eventsArray, keepEvents } from "./events-array.js";
import { dayOf, isDayText, labelOf, NO_LABEL, Rows } from "./ledger.js";
import { open, seal } from "./seal.js";

/**
 * A request's fan-out bounds, checked before anything is sealed or
 * queued; above any, 413 and nothing queued or sent. A queue takes 5,000
 * messages a second, and a Worker makes at most 1,000 subrequests per
 * invocation: per-user formats make one body per user (GA4), so a valid
 * batch of thousands of distinct visitors is packed (PACK_BODIES bodies
 * of one destination share a message) and still bounded, else it could
 * never be queued whole in time, and each retry would deliver again what
 * got through.
 */
/** Most queue messages one request may make. */
export const MAX_REQUEST_MESSAGES = 500;
/** Most bodies one request may make, over every destination, packed or not. */
export const MAX_REQUEST_BODIES = 20_000;
/** Most bodies one request may send directly (ctx.waitUntil, a subrequest each). */
export const MAX_DIRECT_BODIES = 500;
/**
 * Most bodies in one message ("a pack"). The consumer sends a pack's
 * bodies one by one: max_batch_size (wrangler.toml) x PACK_BODIES fetches
 * per invocation must stay under a Worker's 1,000 subrequests.
 */
export const PACK_BODIES = 50;

/** The number of bodies a processed request makes, over every destination. */
export function bodyCount(processed) {
  return Object.values(processed.bodies).reduce((n, list) => n + list.length, 0);
}

/** Queues' limit on one message, as serialized ("v8"). */
export const MESSAGE_BYTES = 128_000;
/** The largest body a message holds on the first try (worker.js lowers it when indexes need room). */
export const QUEUE_BODY_BYTES = 120_000;
// sendBatch takes at most 100 messages and 256 KB a call.
const CALL_COUNT = 100;
const CALL_BYTES = 250_000;
// Everything but body and events, serialized: keys, hashes, key id, iv,
// request id, a dead letter's reason and time, with room to spare.
const ENVELOPE_BYTES = 1_024;
// A message's events are request indexes; the smallest event a body can
// hold is "{}" and a separator.
const MIN_EVENT_BYTES = 3;
const MAX_INDEX_BYTES = 6;
// A pack's parts: an array's tags and a count per body, each count at
// most a request index's size.
const PARTS_BYTES = 16 + PACK_BODIES * MAX_INDEX_BYTES;
// `tries`: a key and a small integer.
const TRIES_BYTES = 16;
/** A body limit under which any message fits, whatever its events (the last resort). */
// Each event also has a ledger label index (at most an index's size); the
// labels themselves are measured (messageBytes), so a request whose
// messages still do not fit here is refused (413), never queued too large.
export const FLOOR_BODY_BYTES = Math.floor((MESSAGE_BYTES - 2 * ENVELOPE_BYTES - PARTS_BYTES - TRIES_BYTES) / (1 + (2 * MAX_INDEX_BYTES) / MIN_EVENT_BYTES));
// Messages of a request that takes more than one sendBatch wait this long
// before the consumer sees them: a failed later call voids the request in
// DELIVERY_STATE well before.
export const HOLD_SECONDS = 10;
const MAX_DELAY_S = 3600;
// Queues delay a message by at most 12 hours.
const MAX_RETRY_AFTER_S = 43_200;
/** Retries unless DELIVERY_MAX_RETRIES (the consumer's max_retries in wrangler.toml) is set. */
export const MAX_RETRIES = 20;
// GA4 takes events backdated by at most 72 hours; a minute's margin for
// the time the request takes to arrive.
export const GA4_WINDOW_MS = 72 * 3_600_000;
export const GA4_MARGIN_MS = 60_000;
// voided_requests rows outlive any message that could name them: queues
// keep messages at most 14 days.
const VOID_KEEP_MS = 15 * 86_400_000;

const enc = new TextEncoder();

/**
 * The same numbers in an array V8 serializes densely (messageBytes
 * counts them so). An array read from a queue message, or a slice of one,
 * has holes as far as V8 knows and is written as key-value pairs, about
 * twice the bytes: every array a message is made with goes through here.
 */
export const packedArray = (list) => (Array.isArray(list) ? list.map((x) => x) : list);

/** Bytes of one request index in V8's serialization: a tag and a zigzag varint. */
function indexBytes(i) {
  if (!Number.isInteger(i) || i < 0 || i > 0x3fff_ffff) return 10;
  let n = 1;
  for (let v = i * 2; v >= 0x80; v = Math.floor(v / 128)) n += 1;
  return 1 + n;
}

/**
 * An upper bound of a message's size as Queues measures it (V8
 * serialization of the whole message), a dead letter's reason included.
 */
export function messageBytes(m) {
  // A ledger message (ledger.js): strings at two bytes a character, at most, and room for tags.
  if (m?.kind === "ledger") return 2 * JSON.stringify(m).length + 256;
  const events = Array.isArray(m.events) ? m.events : [];
  let bytes = ENVELOPE_BYTES + 2 * String(m.to ?? "").length + (m.body?.byteLength ?? 0);
  for (const i of events) bytes += indexBytes(i);
  if (Array.isArray(m.parts)) {
    bytes += 16;
    for (const p of m.parts) bytes += indexBytes(p);
  }
  if (m.tries !== undefined) bytes += TRIES_BYTES;
  if (m.ledger) bytes += ledgerBytes(m.ledger);
  return bytes;
}

/** Bytes of a message's ledger labels as Queues measures them (strings at two bytes a character, at most). */
function ledgerBytes(ledger) {
  let bytes = 64;
  for (const l of Array.isArray(ledger.labels) ? ledger.labels : []) bytes += 16 + 2 * (String(l?.[0] ?? "").length + String(l?.[1] ?? "").length);
  for (const i of Array.isArray(ledger.of) ? ledger.of : []) bytes += indexBytes(i);
  return bytes;
}

/**
 * A message's ledger field for `events` (request indexes): `labels` as
 * { day, of(i) → [call, event] }; only the labels its events use.
 */
export function ledgerField(events, labels) {
  const table = [];
  // Keyed by the label's array: `labels.of` gives one array per label.
  const ids = new Map();
  const of = events.map((i) => {
    const l = labels.of(i);
    let n = ids.get(l);
    if (n === undefined) {
      n = table.length;
      ids.set(l, n);
      table.push(l);
    }
    return n;
  });
  return { day: labels.day, labels: table, of };
}

/** A queued message's labels ({ day, of }) back from its ledger field; "" labels and today when it has none. */
export function labelsOf(m) {
  const ledger = m?.ledger;
  const day = isDayText(ledger?.day) ? ledger.day : dayOf();
  const byIndex = new Map();
  const events = Array.isArray(m?.events) ? m.events : [];
  const table = Array.isArray(ledger?.labels) ? ledger.labels.map(labelOf) : [];
  events.forEach((i, k) => {
    const l = table[ledger?.of?.[k]];
    if (l) byIndex.set(i, l);
  });
  return { day, of: (i) => byIndex.get(i) ?? NO_LABEL };
}

/**
 * Whether every message fits; else the body limit to try next: the worst
 * ratio of index bytes to body bytes, applied to the room a message has.
 */
export function nextBodyLimit(messages, limit) {
  let ratio = 0;
  let fits = true;
  for (const m of messages) {
    const size = messageBytes(m);
    if (size > MESSAGE_BYTES) fits = false;
    const body = Math.max(1, m.body?.byteLength ?? 0);
    ratio = Math.max(ratio, (size - body - ENVELOPE_BYTES) / body);
  }
  if (fits) return null;
  const room = MESSAGE_BYTES - 2 * ENVELOPE_BYTES;
  return Math.max(FLOOR_BODY_BYTES, Math.min(limit - 1, Math.floor((room / (1 + ratio)) * 0.97)));
}

/** The endpoint as the policy names it (a GA4 target's credential query removed), hashed. */
export async function endpointId(url) {
  let text = String(url);
  try {
    const u = new URL(text);
    u.searchParams.delete("measurement_id");
    u.searchParams.delete("api_secret");
    text = u.href;
  } catch {
    // Not a URL: hashed as it is.
  }
  return hex(await crypto.subtle.digest("SHA-256", enc.encode(text)));
}

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** The endpoint hash of a destination (computed once per compiled policy). */
function endpointOf(to) {
  to.endpointId ??= endpointId(to.target.url);
  return to.endpointId;
}

/**
 * One queue message of a body for `to`, sealed when its destination is
 * not restricted. `compiled` holds the policy hash and the seal key.
 * `parts` (a pack: bodies joined by "\n") counts the events of each body.
 */
export async function message(to, text, events, compiled, parts, labels) {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  const m = { to: to.destination, events: packedArray(events), policy: compiled.policy, format: to.format, endpoint: await endpointOf(to) };
  if (parts) m.parts = packedArray(parts);
  if (labels) m.ledger = ledgerField(events, labels);
  if (to.target.restricted) return { ...m, body: bytes };
  return { ...m, ...(await seal(compiled.seal, { destination: to.destination, policy: compiled.policy }, bytes)) };
}

const NEWLINE = 0x0a;

/**
 * A destination's bodies (text or bytes; `indexes[i]` the request indexes
 * of body i's events) grouped into packs of consecutive bodies: at most
 * PACK_BODIES, and at most `limit` bytes joined by "\n". Compact JSON
 * never holds a raw newline, so the consumer can split a pack on it; a
 * body that does hold one (ndjson) is never packed: it goes alone.
 * Returns [{ bodies: [bytes], events: [[index]] }].
 */
export function packed(list, indexes, limit) {
  const packs = [];
  let open = null;
  let size = 0;
  for (const [i, text] of list.entries()) {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    if (bytes.includes(NEWLINE)) {
      packs.push({ bodies: [bytes], events: [indexes[i]] });
      open = null;
    } else if (open && open.bodies.length < PACK_BODIES && size + 1 + bytes.byteLength <= limit) {
      open.bodies.push(bytes);
      open.events.push(indexes[i]);
      size += 1 + bytes.byteLength;
    } else {
      open = { bodies: [bytes], events: [indexes[i]] };
      size = bytes.byteLength;
      packs.push(open);
    }
  }
  return packs;
}

/**
 * The queue message of a pack (packed()): one body as it is, several
 * joined by "\n" with their parts; `labels` ({ day, of }) label its events.
 */
export function packMessage(to, pack, compiled, labels) {
  if (pack.bodies.length === 1) return message(to, pack.bodies[0], pack.events[0], compiled, undefined, labels);
  const total = pack.bodies.reduce((n, b) => n + b.byteLength, pack.bodies.length - 1);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const [i, b] of pack.bodies.entries()) {
    if (i > 0) joined[at++] = NEWLINE;
    joined.set(b, at);
    at += b.byteLength;
  }
  return message(to, joined, pack.events.flat(), compiled, pack.events.map((e) => e.length), labels);
}

/**
 * Messages grouped into sendBatch calls within the count and size limits;
 * `of` gives the message of an item (replay groups its letters the same way).
 */
export function planCalls(items, of = (m) => m) {
  const calls = [];
  let call = [];
  let size = 0;
  for (const m of items) {
    const bytes = messageBytes(of(m));
    if (call.length === CALL_COUNT || (call.length > 0 && size + bytes > CALL_BYTES)) {
      calls.push(call);
      call = [];
      size = 0;
    }
    call.push(m);
    size += bytes;
  }
  if (call.length > 0) calls.push(call);
  return calls;
}

const send = (queue, call, delaySeconds) => queue.sendBatch(call.map((body) => ({ body, contentType: "v8", ...(delaySeconds ? { delaySeconds } : {}) })));

/**
 * Sends messages in as few sendBatch calls as the limits allow; rejects if
 * the queue refuses any. As "v8" (structured clone): bodies stay bytes.
 * For messages that are not a client's request (a consumer's rest, a
 * replay): a retry of them is the queue's own.
 */
export async function enqueue(queue, messages, delaySeconds = 0) {
  for (const call of planCalls(messages)) await send(queue, call, delaySeconds);
}

/**
 * Queues a client's request whole, or refuses it (rejects) leaving nothing
 * that will be sent. One sendBatch call is all or nothing. A request that
 * needs more calls gets an id in each message and its messages wait
 * HOLD_SECONDS; if a later call fails, the id is recorded in
 * DELIVERY_STATE (voided_requests) before the refusal, and the consumer
 * drops what was queued, so the client's retry duplicates nothing.
 */
export async function enqueueRequest(queue, db, messages) {
  const calls = planCalls(messages);
  if (calls.length <= 1) {
    if (calls.length === 1) await send(queue, calls[0]);
    return { calls: calls.length };
  }
  if (!db) throw Object.assign(new Error("no DELIVERY_STATE binding: a request of more than one sendBatch call cannot be made safe to retry"), { code: "no_delivery_state" });
  const req = crypto.randomUUID();
  for (const m of messages) m.req = req;
  let sent = 0;
  // Every call, and the void if one fails, must be done well before the
  // first call's messages are seen: a slow call is given up on (and the
  // request voided) at half the hold, even if it later succeeds.
  const deadline = Date.now() + (HOLD_SECONDS * 1000) / 2;
  try {
    for (const call of calls) {
      await within(send(queue, call, HOLD_SECONDS), deadline - Date.now());
      sent += 1;
    }
  } catch (e) {
    // Even a first call that threw is voided: nothing of it may be sent.
    try {
      await voidRequest(db, req);
    } catch (v) {
      log("error", { phimask: "request not voided: its retry may duplicate", calls: calls.length, sent, error: String(v?.message ?? v).slice(0, 200) });
    }
    throw e;
  }
  return { calls: calls.length, req };
}

/** `promise`, or a rejection after `ms` (at once when `ms` is not positive). */
function within(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("sendBatch took too long: the request is voided before its held messages are seen")), Math.max(0, ms));
  });
  promise.catch(() => {});
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function voidRequest(db, req) {
  const now = Date.now();
  await db.batch([
    db.prepare("INSERT OR IGNORE INTO voided_requests (id, at) VALUES (?, ?)").bind(req, now),
    db.prepare("DELETE FROM voided_requests WHERE at < ?").bind(now - VOID_KEEP_MS),
  ]);
}

/** Seconds before retry n (1, 2, 4 … an hour), or what Retry-After asked if longer. */
export function delay(attempts, retryAfterMs) {
  const backoff = Math.min(MAX_DELAY_S, 2 ** Math.min(attempts - 1, 12));
  return Math.min(MAX_RETRY_AFTER_S, Math.max(backoff, Math.ceil(retryAfterMs / 1000)));
}

/** Whether a message's request was voided; throws when DELIVERY_STATE cannot say. */
export async function voided(env, req) {
  if (!env.DELIVERY_STATE) throw new Error("no DELIVERY_STATE binding");
  return (await env.DELIVERY_STATE.prepare("SELECT 1 AS v FROM voided_requests WHERE id = ?").bind(req).first()) !== null;
}

/**
 * A GA4 body split by GA4's backdating window: null when every event is
 * inside it (or the body is not JSON); else { old, fresh } as { text,
 * indexes }, fresh null when none is. An event's time is its own
 * timestamp_micros, else the body's; without either, GA4 takes the time
 * it arrives.
 */
export function ga4Window(body, indexes, now = Date.now()) {
  let parsed;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return null;
  }
  if (!Array.isArray(parsed?.events)) return null;
  const oldest = (now - GA4_WINDOW_MS + GA4_MARGIN_MS) * 1000;
  const micros = (e) => (typeof e?.timestamp_micros === "number" ? e.timestamp_micros : parsed.timestamp_micros);
  const isOld = parsed.events.map((e) => typeof micros(e) === "number" && micros(e) < oldest);
  if (!isOld.includes(true)) return null;
  // Cut from the body as written (events-array.js), so numbers are not rewritten.
  const text = new TextDecoder().decode(body);
  if (eventsArray(text)?.items.length !== parsed.events.length) return null;
  const part = (old) => {
    if (!isOld.includes(old)) return null;
    return { text: keepEvents(text, (i) => isOld[i] === old), indexes: indexes.filter((_, i) => isOld[i] === old) };
  };
  return { old: part(true), fresh: part(false) };
}

/** The retries a message may have: DELIVERY_MAX_RETRIES, else MAX_RETRIES. */
function retriesOf(env) {
  const set = Number(env.DELIVERY_MAX_RETRIES);
  return Number.isInteger(set) && set >= 0 ? set : MAX_RETRIES;
}

/**
 * A pack's parts when they are well formed: at most PACK_BODIES positive
 * whole numbers that sum to the number of its events; else null.
 */
function partsOf(parts, events) {
  if (!Array.isArray(parts) || parts.length === 0 || parts.length > PACK_BODIES) return null;
  let sum = 0;
  for (const p of parts) {
    if (!Number.isSafeInteger(p) || p < 1) return null;
    sum += p;
  }
  return sum === events ? parts : null;
}

/** `body` cut at each "\n" into exactly `count` non-empty pieces; else null. */
function pieces(body, count) {
  const out = [];
  let from = 0;
  for (let i = 0; i <= body.byteLength; i++) {
    if (i < body.byteLength && body[i] !== NEWLINE) continue;
    if (i === from) return null;
    out.push(body.slice(from, i));
    from = i + 1;
  }
  return out.length === count ? out : null;
}

/**
 * Delivers one message of the DELIVERY queue: one body, or a pack of
 * several (parts), each body on its own, in `slots` (fetchSlots(), shared
 * by the messages of an invocation). `compiled` holds the destinations'
 * targets, the policy hash and the seal keys.
 *
 * A pack's outcome: the dead letters of its failed bodies first (each a
 * letter of its own), then the bodies to send again as one new pack
 * (delayed by the longest wait any of them asks, `tries` counting the
 * attempts so far), then the ack. When nothing was delivered and every
 * body is to be sent again as it was, the message itself is retried. If
 * a letter or the new pack cannot be queued, the message is retried: its
 * delivered bodies are then sent again (delivery is at least once:
 * destinations deduplicate on the masked IDs the bodies carry; GA4, which
 * has none, counts them twice).
 */
export async function consume(msg, env, compiled, slots = fetchSlots(), tally = () => {}) {
  const m = msg.body;
  // What the ledger counts of this message, given to `tally` only once it is acked.
  const labels = labelsOf(m);
  const counted = (rows) => tally(labels.day, m?.policy, rows);
  const to = compiled.targets.get(m?.to);
  const events = Array.isArray(m?.events) ? m.events : [];
  if (typeof m?.req === "string") {
    let gone;
    try {
      gone = await voided(env, m.req);
    } catch {
      // Not knowing whether the request was refused: not sent yet.
      return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
    }
    if (gone) {
      log("log", { phimask: "dropped: request refused and sent again", destination: String(m.to), events: events.length });
      return msg.ack();
    }
  }
  const letter = (reason) => deadLetter(msg, env, reason, labels, counted);
  if (!to || !ArrayBuffer.isView(m.body)) return letter({ code: to ? "unreadable_message" : "unknown_destination" });
  const pack = m.parts !== undefined;
  const parts = pack ? partsOf(m.parts, Array.isArray(m.events) ? events.length : -1) : [events.length];
  if (!parts) return letter({ code: "unreadable_message" });
  // A replay forced by an operator may send what another policy made, but
  // never to another endpoint or in another format.
  const policy = m.policy === compiled.policy || m.forced === compiled.policy;
  if (!policy || m.format !== to.format || m.endpoint !== (await endpointOf(to))) {
    return letter({ code: "policy_changed" });
  }
  let body = m.body;
  // Any iv, even a broken one, marks a sealed body (PHI, under a BAA):
  // never sent as it is, nor to a destination the policy now restricts.
  const sealed = m.iv !== undefined;
  if (sealed && to.target.restricted) return letter({ code: "restricted_now" });
  if (sealed) {
    try {
      body = await open([compiled.seal, compiled.previous], { destination: m.to, policy: m.policy, kid: m.kid }, m.iv, m.body);
    } catch {
      return letter({ code: compiled.seal || compiled.previous ? "undecryptable" : "no_queue_key" });
    }
  } else if (!to.target.restricted) {
    // A body under a BAA arrives sealed or not at all.
    return letter({ code: "not_sealed" });
  }
  const cut = pack ? pieces(body, parts.length) : [body];
  if (!cut) return letter({ code: "unreadable_message" });
  let at = 0;
  const bodies = cut.map((bytes, i) => ({ body: bytes, indexes: events.slice(at, (at += parts[i])) }));

  const tries = (Number.isSafeInteger(m.tries) && m.tries > 0 ? m.tries : 0) + msg.attempts;
  const outcomes = await Promise.all(bodies.map((part) => slots(() => settle(to, part, tries, retriesOf(env)))));
  const delivered = outcomes.filter((o) => o.delivered).length;
  const letters = outcomes.flatMap((o) => o.letters);
  const again = outcomes.filter((o) => o.again).map((o) => o.again);
  const wait = Math.max(0, ...again.map((a) => a.wait));
  if (pack) log("log", { phimask: "pack consumed", destination: m.to, parts: parts.length, events: events.length, delivered, deadLetters: letters.length, again: again.length, attempt: msg.attempts });
  if (delivered === 0 && letters.length === 0 && again.length === bodies.length && again.every((a) => a.unchanged)) {
    return msg.retry({ delaySeconds: wait });
  }
  try {
    // First the dead letters: a failure after them repeats a dead letter, never loses one.
    if (letters.length > 0) {
      // A single body that failed as it came: its letter is the message itself.
      const whole = !pack && letters.length === 1 && letters[0].unchanged;
      const made = whole ? [deadLetterOf(m, letters[0].reason)] : await Promise.all(letters.map(async (l) => deadLetterOf({ ...(await message(to, l.body, l.indexes, compiled, undefined, labels)), req: m.req }, l.reason)));
      await enqueue(env.DEAD_LETTER, made);
      for (const l of letters) log("error", { phimask: "dead letter", destination: m.to, events: l.indexes.length, reason: l.reason });
    }
    if (again.length > 0) {
      const next = [];
      for (const p of packed(again.map((a) => a.body), again.map((a) => a.indexes), Infinity)) next.push({ ...(await packMessage(to, p, compiled, labels)), tries });
      await enqueue(env.DELIVERY, next, wait);
    }
  } catch (e) {
    log("error", { phimask: "not all queued, will retry", destination: m.to, events: events.length, parts: parts.length, attempt: msg.attempts, error: String(e?.message ?? e).slice(0, 200) });
    return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
  }
  const rows = new Rows();
  for (const o of outcomes) {
    rows.addEach(m.to, o.delivered ?? [], labels.of, "delivered", "");
    rows.addEach(m.to, o.failed ?? [], labels.of, "failed", "refused_by_destination");
  }
  for (const l of letters) rows.addEach(m.to, l.indexes, labels.of, "dead_lettered", String(l.reason?.code ?? "unknown"));
  msg.ack();
  counted(rows);
}

/**
 * One body of a message, sent: { delivered }, { letters: [{ body,
 * indexes, reason, unchanged }] } for what is dead-lettered, and { again:
 * { body, indexes, wait, unchanged } } for what is to be sent again
 * (`unchanged`: the body as it came). `tries`: the attempts so far,
 * this one included.
 */
async function settle(to, part, tries, retries) {
  const { destination } = to;
  let { body, indexes } = part;
  const letters = [];
  let unchanged = true;
  if (to.format === "ga4") {
    // GA4 answers 2xx and drops events past its window: those are a dead
    // letter, never sent; the others of the body go on.
    const split = ga4Window(body, indexes);
    if (split) {
      letters.push({ body: split.old.text, indexes: split.old.indexes, reason: { code: "outside_ga4_window" }, unchanged: !split.fresh });
      if (!split.fresh) return { letters };
      ({ text: body, indexes } = split.fresh);
      unchanged = false;
    }
  }
  const out = await attempt(to, body, indexes);
  // Events the destination refused inside a body it otherwise took (or
  // would take without them): never sent again, no dead letter.
  const failed = out.refused ?? [];
  if (out.ok) {
    forwarded(destination, out, out.sent ?? indexes.length, tries);
    const refused = new Set(failed);
    return { delivered: indexes.filter((i) => !refused.has(i)), failed, letters };
  }
  // Amplitude took none of the body: the rest goes again.
  if (out.rest) return { letters, failed, again: { body: out.rest, indexes: out.indexes, wait: 0, unchanged: false } };
  if (out.retry && tries <= retries) {
    const wait = delay(tries, out.wait);
    log("error", { phimask: "delivery failed, will retry", destination, status: out.status, events: indexes.length, attempt: tries, delaySeconds: wait });
    return { letters, again: { body, indexes, wait, unchanged } };
  }
  const reason = out.retry ? { code: "retries_exhausted", status: out.status, attempts: tries } : { code: "refused", status: out.status, answer: out.answer };
  letters.push({ body, indexes, reason, unchanged });
  return { letters };
}

/** The dead letter of a message: its known fields only, with the reason. */
export function deadLetterOf(m, reason) {
  const letter = { to: m.to, events: packedArray(m.events), body: m.body };
  for (const k of ["parts", "tries", "iv", "kid", "policy", "format", "endpoint", "req", "forced", "ledger"]) if (m[k] !== undefined) letter[k] = m[k];
  if (Array.isArray(letter.parts)) letter.parts = packedArray(letter.parts);
  if (Array.isArray(letter.ledger?.of)) letter.ledger = { ...letter.ledger, of: packedArray(letter.ledger.of) };
  return { ...letter, reason, at: Date.now() };
}

/**
 * Moves a message to the dead-letter queue with its reason (no values),
 * then acks it and gives `counted` its events as dead-lettered.
 */
async function deadLetter(msg, env, reason, labels, counted) {
  const m = msg.body !== null && typeof msg.body === "object" ? msg.body : {};
  try {
    await enqueue(env.DEAD_LETTER, [deadLetterOf(m, reason)]);
  } catch {
    // Not lost: the queue gives it again (and at max_retries moves it itself).
    return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
  }
  log("error", { phimask: "dead letter", destination: String(m.to), events: Array.isArray(m.events) ? m.events.length : 0, reason });
  msg.ack();
  const rows = new Rows();
  rows.addEach(typeof m.to === "string" ? m.to : "", Array.isArray(m.events) ? m.events : [], labels.of, "dead_lettered", reason.code);
  counted(rows);
}
