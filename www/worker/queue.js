// Durable delivery through Cloudflare Queues. The Worker enqueues each
// destination's sanitized request bodies (binding DELIVERY) before it
// answers; its queue handler POSTs them:
// - delivered (2xx, or Mixpanel's partial import): acked;
// - 429, 5xx, a timeout or a network error: retried after 1, 2, 4 … s
//   (at most an hour), or what Retry-After asks if longer; after
//   DELIVERY_MAX_RETRIES retries, a dead letter;
// - Amplitude's 400 listing refused events: the rest enqueued anew;
// - any other 4xx: a dead letter at once.
// Dead letters go to the queue phimask-dead-letter (binding DEAD_LETTER)
// with their reason; dead-letters.js files them for operators to list
// and replay. A message holds one body for one destination: never the
// visitor's request. Bodies of destinations under a BAA still hold PHI and
// are sealed (seal.js) before they enter the queue.
//
// Message: { to: destination, events: [request index…], body: bytes,
//            iv?: bytes (sealed), reason?: why it is a dead letter, at? }

import { attempt, forwarded, log } from "./forward.js";
import { open, seal } from "./seal.js";

/** The largest body a message holds: 128 KB less the envelope and metadata. */
export const QUEUE_BODY_BYTES = 120_000;
// sendBatch takes at most 100 messages and 256 KB a call.
const BATCH_COUNT = 100;
const BATCH_BYTES = 240_000;
const MAX_DELAY_S = 3600;
// Queues delay a message by at most 12 hours.
const MAX_RETRY_AFTER_S = 43_200;
/** Retries unless DELIVERY_MAX_RETRIES (the consumer's max_retries in wrangler.toml) is set. */
export const MAX_RETRIES = 20;

const enc = new TextEncoder();

/** One queue message of a body for `to`, sealed when its destination is not restricted. */
export async function message(to, text, events, key) {
  const bytes = enc.encode(text);
  if (to.target.restricted) return { to: to.destination, events, body: bytes };
  return { to: to.destination, events, ...(await seal(key, to.destination, bytes)) };
}

/**
 * Sends messages in as few sendBatch calls as the limits allow; rejects if
 * the queue refuses any. As "v8" (structured clone): bodies stay bytes.
 */
export async function enqueue(queue, messages) {
  const calls = [];
  let batch = [];
  let size = 0;
  for (const m of messages) {
    const bytes = (m.body?.byteLength ?? 0) + 8 * (m.events?.length ?? 0) + 1024;
    if (batch.length === BATCH_COUNT || (batch.length > 0 && size + bytes > BATCH_BYTES)) {
      calls.push(batch);
      batch = [];
      size = 0;
    }
    batch.push({ body: m, contentType: "v8" });
    size += bytes;
  }
  if (batch.length > 0) calls.push(batch);
  await Promise.all(calls.map((b) => queue.sendBatch(b)));
}

/** Seconds before retry n (1, 2, 4 … an hour), or what Retry-After asked if longer. */
export function delay(attempts, retryAfterMs) {
  const backoff = Math.min(MAX_DELAY_S, 2 ** Math.min(attempts - 1, 12));
  return Math.min(MAX_RETRY_AFTER_S, Math.max(backoff, Math.ceil(retryAfterMs / 1000)));
}

/**
 * Delivers one message of the DELIVERY queue. `compiled` holds the
 * destinations' targets and the seal key.
 */
export async function consume(msg, env, compiled) {
  const m = msg.body;
  const to = compiled.targets.get(m?.to);
  const events = Array.isArray(m?.events) ? m.events : [];
  if (!to || !ArrayBuffer.isView(m.body)) return deadLetter(msg, env, { code: to ? "unreadable_message" : "unknown_destination" });
  let body = m.body;
  // Any iv, even a broken one, marks a sealed body (PHI, under a BAA):
  // never sent as it is, nor to a destination the policy now restricts.
  const sealed = m.iv !== undefined;
  if (sealed && to.target.restricted) return deadLetter(msg, env, { code: "restricted_now" });
  if (sealed) {
    try {
      body = await open(compiled.seal, m.to, m.iv, m.body);
    } catch {
      return deadLetter(msg, env, { code: compiled.seal ? "undecryptable" : "no_queue_key" });
    }
  } else if (!to.target.restricted) {
    // A body under a BAA arrives sealed or not at all.
    return deadLetter(msg, env, { code: "not_sealed" });
  }
  const out = await attempt(to, body, events);
  if (out.ok) {
    forwarded(m.to, out, out.sent ?? events.length, msg.attempts);
    return msg.ack();
  }
  if (out.rest) {
    // Amplitude took none of the body: the rest goes again, as a new message.
    try {
      await enqueue(env.DELIVERY, [await message(to, out.rest, out.indexes, compiled.seal)]);
      return msg.ack();
    } catch {
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

/** Moves a message to the dead-letter queue with its reason (no values), then acks it. */
async function deadLetter(msg, env, reason) {
  const m = msg.body !== null && typeof msg.body === "object" ? msg.body : {};
  try {
    await enqueue(env.DEAD_LETTER, [{ ...m, reason, at: Date.now() }]);
  } catch {
    // Not lost: the queue gives it again (and at max_retries moves it itself).
    return msg.retry({ delaySeconds: delay(msg.attempts, 0) });
  }
  log("error", { phimask: "dead letter", destination: String(m.to), events: Array.isArray(m.events) ? m.events.length : 0, reason });
  msg.ack();
}
