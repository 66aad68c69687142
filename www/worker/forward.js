// Sends a destination one request body the engine made for it, server
// side, in its format, and reads its API's answer (attempt), and delivers
// bodies directly with retries where no queue holds them (deliver):
// - 2xx: delivered.
// - 429, 5xx, a timeout or a network error: to be retried, waiting at
//   least what Retry-After asks.
// - Amplitude's 400 listing refused events: those are logged and the rest
//   is to be sent again (Amplitude took none of the body).
// - Mixpanel's 400 with failed_records: those are logged; the rest was
//   imported, so nothing is sent again.
// - Any other 4xx: the destination refused the body; not retried.
// Only Content-Type and the destination's own credential go along: none of
// the visitor's headers. Bodies as made, queued and dead-lettered carry
// no credential: a body credential (Amplitude's and PostHog's api_key) is
// inserted just before the POST. Logs name the destination, status,
// counts, request indexes and the field names a destination's API
// documents, never values, an answer's other keys, or credentials.

import { concat } from "./body.js";
import { keepEvents } from "./events-array.js";

const ATTEMPTS = 4;
const BACKOFF_MS = 200;
// A queued body waits longer for an answer (a timed-out attempt may
// have arrived, and is sent again) than one sent directly.
const TIMEOUT_MS = 10_000;
const DIRECT_TIMEOUT_MS = 5_000;
// Direct attempts fit in the 30 s that ctx.waitUntil may run after the
// response: a Retry-After beyond what is left is not waited for.
const WINDOW_MS = 25_000;
// Enough of an error answer to read the events it lists.
const MAX_ANSWER_BYTES = 256 * 1024;

/**
 * The Worker secret holding a destination's credential: AUTH_<NAME>, the
 * name upper-cased with anything but letters and digits as "_"
 * (amplitude-eu → AUTH_AMPLITUDE_EU).
 */
export function authSecret(destination) {
  return `AUTH_${destination.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

const CONTENT_TYPES = { ndjson: "application/x-ndjson" };

/**
 * `body` (text or bytes, a JSON object) with `member` (the target's
 * credentialMember, `"api_key":"…",`) inserted after its opening `{`;
 * `body` itself when there is none to add.
 */
export function withCredential(body, member) {
  if (!member) return body;
  if (typeof body === "string") return body.startsWith("{") ? `{${member}${body.slice(1)}` : body;
  if (body[0] !== 0x7b) return body;
  const added = new TextEncoder().encode(member);
  const out = new Uint8Array(body.byteLength + added.byteLength);
  out[0] = 0x7b;
  out.set(added, 1);
  out.set(body.subarray(1), 1 + added.byteLength);
  return out;
}

/**
 * One POST of `body` (text or bytes, without credential) whose events have
 * the request indexes `indexes`. `to` is { destination, format, target:
 * { url, authorization, credentialMember } }.
 * Resolves to { status, ok } when delivered; { status, retry, wait } for a
 * failure worth retrying (wait: ms Retry-After asks); { status, rest,
 * indexes, refused } when the destination took none but would take `rest`
 * (the body without the events it refused, their request indexes in
 * `refused`); { status, ok, partial, sent, refused } when it imported all
 * but those; else { status } (refused, with
 * `answer`: counts of its answer, no key or value of it but a format's
 * documented ones).
 */
export async function attempt(to, body, indexes, timeout = TIMEOUT_MS) {
  const { destination, format, target } = to;
  const headers = { "Content-Type": CONTENT_TYPES[format] ?? "application/json" };
  if (target.authorization) headers.Authorization = target.authorization;
  let res;
  try {
    res = await fetch(target.url, { method: "POST", headers, body: withCredential(body, target.credentialMember), signal: AbortSignal.timeout(timeout) });
  } catch (e) {
    return { status: e?.name === "TimeoutError" ? "timeout" : "network error", retry: true, wait: 0 };
  }
  const { status } = res;
  if (res.ok || status === 429 || status >= 500) {
    const wait = retryAfter(res.headers.get("Retry-After"));
    await res.body?.cancel();
    return res.ok ? { status, ok: true } : { status, retry: true, wait };
  }
  const { json: answer, bytes } = await readAnswer(res);
  const refused = status !== 400 ? new Map() : format === "amplitude" ? amplitudeRefused(answer) : format === "mixpanel" ? mixpanelRefused(answer) : new Map();
  if (refused.size > 0) {
    logRefused(destination, format, status, indexes, refused);
    // The request indexes of the events it refused (the ledger counts them).
    const gone = indexes.filter((_, i) => refused.has(i));
    if (format === "mixpanel") return { status, ok: true, partial: true, sent: indexes.length - gone.length, refused: gone };
    const kept = indexes.filter((_, i) => !refused.has(i));
    if (kept.length > 0 && kept.length < indexes.length) return { status, rest: withoutEvents(body, refused), indexes: kept, refused: gone };
  }
  return { status, answer: shape(answer, bytes, format) };
}

/**
 * Delivers each body (`events[i]`: the request indexes of body i's events)
 * now, with retries within the time the request may run on: for bodies no
 * queue may hold (a destination under a BAA without QUEUE_ENCRYPTION_KEY).
 */
export async function deliver(to, bodies, events, slots = fetchSlots()) {
  const started = Date.now();
  return Promise.all(bodies.map((body, i) => slots(() => send(to, body, events[i], started))));
}

/**
 * How many bodies are sent at once in one invocation: a Worker keeps at
 * most 6 connections open at a time, and a fetch waiting for one would
 * spend its timeout waiting.
 */
const FETCHES = 6;

/**
 * Fetch slots for one invocation (the consumer's, or a request's direct
 * deliveries): `slots(fn)` runs `fn`
 * once fewer than `n` run, so its fetch's timeout starts when it is sent.
 */
export function fetchSlots(n = FETCHES) {
  let free = n;
  const waiting = [];
  return async (fn) => {
    if (free > 0) free -= 1;
    else await new Promise((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free += 1;
    }
  };
}

/**
 * One body sent directly, with retries: resolves to { delivered, failed }
 * (request indexes), each failed one as [index, reason].
 */
async function send(to, body, indexes, started) {
  const { destination } = to;
  let out;
  let wait = 0;
  let tries = 0;
  const failed = [];
  const fail = (list, reason) => failed.push(...list.map((i) => [i, reason]));
  while (tries < ATTEMPTS) {
    tries += 1;
    if (tries > 1) {
      wait = Math.max(wait, BACKOFF_MS * 2 ** (tries - 2));
      if (Date.now() + wait - started > WINDOW_MS) {
        log("error", { phimask: "forward failed", destination, status: out.status, events: indexes.length, attempts: tries - 1, reason: "retry would end after the delivery window" });
        fail(indexes, "retries_exhausted");
        return { delivered: [], failed };
      }
      await sleep(wait);
    }
    out = await attempt(to, body, indexes, DIRECT_TIMEOUT_MS);
    wait = out.wait ?? 0;
    fail(out.refused ?? [], "refused_by_destination");
    if (out.ok) {
      forwarded(destination, out, out.sent ?? indexes.length, tries);
      const refused = new Set(out.refused ?? []);
      return { delivered: indexes.filter((i) => !refused.has(i)), failed };
    }
    if (out.rest) {
      // A smaller body: its own attempts.
      ({ rest: body, indexes } = out);
      tries = 0;
    } else if (!out.retry) break; // the destination refused the body: retrying will not help
  }
  log("error", { phimask: "forward failed", destination, status: out.status, events: indexes.length, attempts: tries });
  fail(indexes, out.retry ? "retries_exhausted" : "refused");
  return { delivered: [], failed };
}

/** Logs a delivered body. */
export function forwarded(destination, out, events, attempt) {
  log("log", { phimask: "forwarded", destination, status: out.status, events, attempt, ...(out.partial ? { partial: true } : {}) });
}

/** Milliseconds to wait for a Retry-After (seconds or an HTTP date); 0 without one. */
export function retryAfter(value) {
  if (value === null || value === undefined) return 0;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? 0 : Math.max(0, date - Date.now());
}

/** The answer's JSON (null when it is none) and its size, read up to MAX_ANSWER_BYTES. */
async function readAnswer(res) {
  let size = 0;
  try {
    const reader = res.body?.getReader();
    if (!reader) return { json: null, bytes: 0 };
    const chunks = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      size += r.value.byteLength;
      if (size > MAX_ANSWER_BYTES) return await reader.cancel().then(() => ({ json: null, bytes: size }));
      chunks.push(r.value);
    }
    return { json: JSON.parse(new TextDecoder().decode(concat(chunks, size))), bytes: size };
  } catch {
    return { json: null, bytes: size };
  }
}

/**
 * Amplitude's 400: `events_with_invalid_fields` / `events_with_missing_fields`
 * map field names to body indexes. Returns Map(index → [field, ...]).
 */
function amplitudeRefused(answer) {
  const refused = new Map();
  for (const key of ["events_with_invalid_fields", "events_with_missing_fields"]) {
    const byField = answer?.[key];
    if (!byField || typeof byField !== "object") continue;
    for (const [field, list] of Object.entries(byField)) {
      if (!Array.isArray(list)) continue;
      for (const i of list) if (Number.isInteger(i)) refused.set(i, [...(refused.get(i) ?? []), field]);
    }
  }
  return refused;
}

/** Mixpanel's 400 (strict=1): `failed_records` [{index, field, message}]. */
function mixpanelRefused(answer) {
  const refused = new Map();
  const list = Array.isArray(answer?.failed_records) ? answer.failed_records : [];
  for (const r of list) {
    // The field only: Mixpanel's messages may quote the refused value.
    if (Number.isInteger(r?.index)) refused.set(r.index, [typeof r.field === "string" ? r.field : "unknown"]);
  }
  return refused;
}

/** Logs refused events by request index and field (a field the format documents, else "other"), never values. */
function logRefused(destination, format, status, indexes, refused) {
  const known = EVENT_FIELDS[format] ?? new Set();
  const events = [...refused]
    .filter(([i]) => i >= 0 && i < indexes.length)
    .map(([i, fields]) => ({ index: indexes[i], fields: fields.slice(0, 10).map((f) => (known.has(f) ? f : "other")) }));
  log("error", { phimask: "events refused by destination", destination, status, events });
}

/** An Amplitude body without the refused events (numbers re-serialized by JSON.stringify). */
function withoutEvents(body, refused) {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  // As written: never larger than the body, numbers as the engine wrote them.
  return keepEvents(text, (i) => !refused.has(i)) ?? text;
}

// What a destination's answer may name: its API's documented fields.
// Anything else (a key or a field an answer quotes) can be text of the
// events sent, and is counted, never kept.
const EVENT_FIELDS = {
  amplitude: new Set(["user_id", "device_id", "event_type", "time", "event_properties", "user_properties", "groups", "group_properties", "app_version", "platform", "os_name", "os_version", "device_brand", "device_manufacturer", "device_model", "carrier", "country", "region", "city", "dma", "language", "price", "quantity", "revenue", "productId", "revenueType", "location_lat", "location_lng", "ip", "idfa", "idfv", "adid", "android_id", "event_id", "session_id", "insert_id", "plan", "library"]),
  mixpanel: new Set(["event", "properties", "properties.time", "properties.distinct_id", "properties.$insert_id", "properties.token", "time", "distinct_id", "$insert_id"]),
};
const ANSWER_KEYS = {
  amplitude: ["code", "error", "missing_field", "events_with_invalid_fields", "events_with_missing_fields", "events_with_invalid_id_lengths", "silenced_events", "silenced_devices", "throttled_devices", "throttled_users", "throttled_events", "exceeded_daily_quota_devices", "exceeded_daily_quota_users", "eps_threshold", "server_upload_time", "payload_size_bytes", "events_ingested"],
  mixpanel: ["code", "error", "status", "num_records_imported", "failed_records"],
  posthog: ["type", "code", "detail", "attr", "status"],
  segment: ["success", "message", "code"],
  ga4: ["validationMessages"],
  ndjson: [],
};

/**
 * What a dead letter's reason keeps of a destination's answer: its type,
 * size and number of keys, and which of its format's documented top-level
 * keys it has; never another key, nor any value (either could quote
 * what was sent).
 */
export function shape(answer, bytes, format) {
  const type = answer === null ? "none" : Array.isArray(answer) ? "array" : typeof answer;
  const out = { type, bytes };
  if (type === "object") {
    const keys = Object.keys(answer);
    out.keys = keys.length;
    out.known = (ANSWER_KEYS[format] ?? []).filter((k) => Object.hasOwn(answer, k));
  }
  return out;
}

export function log(level, record) {
  console[level](JSON.stringify(record));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
