// Durable delivery through Cloudflare Queues. The Worker enqueues each
// destination's sanitized request bodies (binding DELIVERY) before it
// answers; its queue handler POSTs them:
// - delivered (2xx, or Mixpanel's partial import): acked;
// - 429, 5xx, a timeout or a network error: retried after 1, 2, 4 … s
//   (at most an hour), or what Retry-After asks if longer; after
//   DELIVERY_MAX_RETRIES retries, a dead letter;
// - Amplitude's 400 listing refused events: the rest enqueued anew;
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
// replay. A message holds one body for one destination: never the
// visitor's request, never a credential. Bodies of destinations under a
// BAA still hold PHI and are sealed (seal.js) before they enter the queue.
//
// DELIVERY message (sent as "v8", structured clone):
//   { to:       destination name
//     events:   [request index of each event of the body]
//     body:     Uint8Array, the body as sent (sealed: ciphertext and tag)
//     iv?:      Uint8Array(12), present when sealed
//     kid?:     key id of the sealing key (seal.js), present when sealed
//     policy:   hex SHA-256 of the prepared policy that made it
//     format:   the destination's format then (amplitude, ga4 …)
//     endpoint: hex SHA-256 of the destination's endpoint URL as the policy
//               names it (no credential)
//     req?:     request id, when the request took more than one sendBatch
//     forced?:  the policy hash an operator's forced replay sends it under }
// DEAD_LETTER message: the same fields, and
//   { reason:   { code, … counts and statuses, never a value }
//     at:       ms since the epoch it was dead-lettered }
// Every message, envelope included, fits Queues' 128,000 bytes
// (messageBytes bounds its serialized size); see planCalls for sendBatch.

import { attempt, forwarded, log } from "./forward.js";
import { eventsArray, keepEvents } from "./events-array.js";
import { open, seal } from "./seal.js";

/**
 * Most request bodies (queue messages, or direct deliveries) one request
 * may make: a queue takes 5,000 messages a second, and a Worker makes at
 * most 1,000 subrequests per invocation. Per-user formats make one body
 * per user (GA4), so a valid batch of thousands of distinct visitors would
 * fan out past both: it can never be queued whole in time, and each retry
 * would deliver again what got through. Above this, 413, nothing queued.
 */
export const MAX_REQUEST_BODIES = 1_000;

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
/** A body limit under which any message fits, whatever its events (the last resort). */
export const FLOOR_BODY_BYTES = Math.floor((MESSAGE_BYTES - 2 * ENVELOPE_BYTES) / (1 + MAX_INDEX_BYTES / MIN_EVENT_BYTES));
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
  const events = Array.isArray(m.events) ? m.events : [];
  let bytes = ENVELOPE_BYTES + 2 * String(m.to ?? "").length + (m.body?.byteLength ?? 0);
  for (const i of events) bytes += indexBytes(i);
  return bytes;
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
 */
export async function message(to, text, events, compiled) {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  const m = { to: to.destination, events, policy: compiled.policy, format: to.format, endpoint: await endpointOf(to) };
  if (to.target.restricted) return { ...m, body: bytes };
  return { ...m, ...(await seal(compiled.seal, { destination: to.destination, policy: compiled.policy }, bytes)) };
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
export async function enqueue(queue, messages) {
  for (const call of planCalls(messages)) await send(queue, call);
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
async function voided(env, req) {
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

/**
 * Delivers one message of the DELIVERY queue. `compiled` holds the
 * destinations' targets, the policy hash and the seal keys.
 */
export async function consume(msg, env, compiled) {
  const m = msg.body;
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
  if (!to || !ArrayBuffer.isView(m.body)) return deadLetter(msg, env, { code: to ? "unreadable_message" : "unknown_destination" });
  // A replay forced by an operator may send what another policy made, but
  // never to another endpoint or in another format.
  const policy = m.policy === compiled.policy || m.forced === compiled.policy;
  if (!policy || m.format !== to.format || m.endpoint !== (await endpointOf(to))) {
    return deadLetter(msg, env, { code: "policy_changed" });
  }
  let body = m.body;
  // Any iv, even a broken one, marks a sealed body (PHI, under a BAA):
  // never sent as it is, nor to a destination the policy now restricts.
  const sealed = m.iv !== undefined;
  if (sealed && to.target.restricted) return deadLetter(msg, env, { code: "restricted_now" });
  if (sealed) {
    try {
      body = await open([compiled.seal, compiled.previous], { destination: m.to, policy: m.policy, kid: m.kid }, m.iv, m.body);
    } catch {
      return deadLetter(msg, env, { code: compiled.seal || compiled.previous ? "undecryptable" : "no_queue_key" });
    }
  } else if (!to.target.restricted) {
    // A body under a BAA arrives sealed or not at all.
    return deadLetter(msg, env, { code: "not_sealed" });
  }
  if (to.format === "ga4") {
    // GA4 answers 2xx and drops events past its window: those are a dead
    // letter; the others of the body go on, as a message of their own.
    const split = ga4Window(body, events);
    if (split && !split.fresh) return deadLetter(msg, env, { code: "outside_ga4_window" });
    if (split) {
      try {
        // First the dead letter: a failure after it repeats a dead letter, never a delivery.
        const old = await message(to, split.old.text, split.old.indexes, compiled);
        await enqueue(env.DEAD_LETTER, [deadLetterOf({ ...old, req: m.req }, { code: "outside_ga4_window" })]);
        log("error", { phimask: "dead letter", destination: m.to, events: split.old.indexes.length, reason: { code: "outside_ga4_window" } });
        await enqueue(env.DELIVERY, [await message(to, split.fresh.text, split.fresh.indexes, compiled)]);
        return msg.ack();
      } catch {
        return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
      }
    }
  }
  const out = await attempt(to, body, events);
  if (out.ok) {
    forwarded(m.to, out, out.sent ?? events.length, msg.attempts);
    return msg.ack();
  }
  if (out.rest) {
    // Amplitude took none of the body: the rest goes again, as a new message.
    try {
      await enqueue(env.DELIVERY, [await message(to, out.rest, out.indexes, compiled)]);
      return msg.ack();
    } catch (e) {
      log("error", { phimask: "rest not queued, will retry", destination: m.to, events: out.indexes.length, attempt: msg.attempts, error: String(e?.message ?? e).slice(0, 200) });
      return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
    }
  }
  const set = Number(env.DELIVERY_MAX_RETRIES);
  const retries = Number.isInteger(set) && set >= 0 ? set : MAX_RETRIES;
  if (out.retry && msg.attempts <= retries) {
    const delaySeconds = delay(msg.attempts, out.wait);
    log("error", { phimask: "delivery failed, will retry", destination: m.to, status: out.status, events: events.length, attempt: msg.attempts, delaySeconds });
    return msg.retry({ delaySeconds });
  }
  const reason = out.retry ? { code: "retries_exhausted", status: out.status, attempts: msg.attempts } : { code: "refused", status: out.status, answer: out.answer };
  return deadLetter(msg, env, reason);
}

/** The dead letter of a message: its known fields only, with the reason. */
export function deadLetterOf(m, reason) {
  const letter = { to: m.to, events: m.events, body: m.body };
  for (const k of ["iv", "kid", "policy", "format", "endpoint", "req", "forced"]) if (m[k] !== undefined) letter[k] = m[k];
  return { ...letter, reason, at: Date.now() };
}

/** Moves a message to the dead-letter queue with its reason (no values), then acks it. */
async function deadLetter(msg, env, reason) {
  const m = msg.body !== null && typeof msg.body === "object" ? msg.body : {};
  try {
    await enqueue(env.DEAD_LETTER, [deadLetterOf(m, reason)]);
  } catch {
    // Not lost: the queue gives it again (and at max_retries moves it itself).
    return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
  }
  log("error", { phimask: "dead letter", destination: String(m.to), events: Array.isArray(m.events) ? m.events.length : 0, reason });
  msg.ack();
}
