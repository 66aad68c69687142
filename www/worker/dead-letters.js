// Dead letters: the Worker consumes its dead-letter queue
// (phimask-dead-letter) and files each message in the KV namespace
// DEAD_LETTERS (kept 14 days, the longest a queue keeps a message), where
// an operator lists and replays them over HTTP with the OPERATOR_KEY
// secret as a bearer token:
//   GET  /dead-letters           id, destination, events, reason, time
//   POST /dead-letters/replay    enqueues them for delivery again (100 a call)
// What is filed is what the queue held: one destination's sanitized body,
// sealed when its destination is under a BAA; never a visitor's request.

import { known } from "./ingest.js";
import { enqueue } from "./queue.js";
import { fail, reply } from "./respond.js";
import { log } from "./forward.js";

const KEEP_SECONDS = 14 * 86_400;
const REPLAY_PER_CALL = 100;

// Bytes as stored (base64); anything else stays unreadable (null) and is
// never made into bytes, so the consumer refuses it again.
const stored = (v) => (ArrayBuffer.isView(v) ? btoa(Array.from(v, (b) => String.fromCharCode(b)).join("")) : null);
const restored = (v) => (typeof v === "string" ? Uint8Array.from(atob(v), (c) => c.charCodeAt(0)) : null);

// What the consumer checks before sending (queue.js): key id, policy,
// format and endpoint hashes, request id; strings only.
const envelope = (m) => Object.fromEntries(["kid", "policy", "format", "endpoint", "req"].filter((k) => typeof m[k] === "string").map((k) => [k, m[k]]));

/** Files a batch of the dead-letter queue in DEAD_LETTERS; a message not filed is retried. */
export async function file(batch, env) {
  await Promise.all(batch.messages.map(async (msg) => {
    const m = msg.body !== null && typeof msg.body === "object" ? msg.body : {};
    // Moved by the queue itself (max_retries reached while the handler failed): no reason of ours.
    const reason = m.reason ?? { code: "retries_exhausted" };
    const at = m.at ?? msg.timestamp?.getTime?.() ?? Date.now();
    const meta = { destination: String(m.to), events: Array.isArray(m.events) ? m.events.length : 0, reason, at };
    // KV keeps at most 1024 bytes of metadata; the whole reason is in the value.
    if (JSON.stringify(meta).length > 900) meta.reason = { code: reason.code, status: reason.status };
    try {
      const value = { to: m.to, events: m.events, body: stored(m.body), ...(m.iv !== undefined ? { iv: stored(m.iv) } : {}), ...envelope(m), reason, at };
      // Keys sort by time; the message id keeps them apart.
      await env.DEAD_LETTERS.put(`${String(at).padStart(15, "0")}-${msg.id}`, JSON.stringify(value), { metadata: meta, expirationTtl: KEEP_SECONDS });
      msg.ack();
    } catch (e) {
      log("error", { phimask: "dead letter not filed", destination: meta.destination, reason: e?.message ?? "no DEAD_LETTERS binding" });
      // The dead-letter queue retries up to 100 times, 5 minutes apart.
      msg.retry({ delaySeconds: 300 });
    }
  }));
}

/** GET /dead-letters and POST /dead-letters/replay, for the holder of OPERATOR_KEY. */
export async function operate(request, env, path) {
  if (!env.OPERATOR_KEY) return fail(503, "no_operator_key", "not configured: set the OPERATOR_KEY secret to list and replay dead letters");
  const token = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("Authorization") ?? "")?.[1];
  if (!token || !(await known(token, [env.OPERATOR_KEY]))) return fail(401, "invalid_operator_key", "missing or unknown operator key: send it as Authorization: Bearer OPERATOR_KEY");
  if (!env.DEAD_LETTERS) return fail(503, "no_dead_letter_store", "not configured: no DEAD_LETTERS KV namespace binding");
  const replay = path === "/dead-letters/replay";
  const method = replay ? "POST" : "GET";
  if (request.method !== method) return fail(405, "method_not_allowed", `method not allowed: use ${method}`, {}, { Allow: method });
  if (!replay) {
    const listed = await env.DEAD_LETTERS.list({ limit: 1000 });
    return reply(200, { deadLetters: listed.keys.map((k) => ({ id: k.name, ...k.metadata })), more: !listed.list_complete });
  }
  const listed = await env.DEAD_LETTERS.list({ limit: REPLAY_PER_CALL });
  const messages = [];
  const done = [];
  const unreadable = [];
  for (const { name } of listed.keys) {
    try {
      const value = await env.DEAD_LETTERS.get(name, "json");
      // null: expired meanwhile, nothing to replay.
      if (value) messages.push({ to: value.to, events: value.events, body: restored(value.body), ...(value.iv !== undefined ? { iv: restored(value.iv) } : {}), ...envelope(value) });
      done.push(name);
    } catch {
      unreadable.push(name); // kept for the operator to look at
    }
  }
  // All queued in as few calls as the limits allow, then removed from the store.
  try {
    await enqueue(env.DELIVERY, messages);
  } catch {
    return fail(503, "queue_unavailable", "the delivery queue refused the dead letters; none was removed from the store, send the replay again", { replayed: 0 });
  }
  await Promise.all(done.map((name) => env.DEAD_LETTERS.delete(name)));
  log("log", { phimask: "dead letters replayed", count: messages.length, unreadable: unreadable.length });
  return reply(200, { replayed: messages.length, unreadable, more: !listed.list_complete });
}
