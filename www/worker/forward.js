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
// counts, request indexes and field names, never values or credentials.

import { concat } from "./body.js";

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
 * indexes } when the destination took none but would take `rest` (the
 * body without the events it refused); { status, ok, partial } when it
 * imported all but those it refused; else { status } (refused, with
 * `answer`: the shape of its JSON answer, no values).
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
  const answer = await readAnswer(res);
  const refused = status !== 400 ? new Map() : format === "amplitude" ? amplitudeRefused(answer) : format === "mixpanel" ? mixpanelRefused(answer) : new Map();
  if (refused.size > 0) {
    logRefused(destination, status, indexes, refused);
    if (format === "mixpanel") return { status, ok: true, partial: true, sent: indexes.length - refused.size };
    const kept = indexes.filter((_, i) => !refused.has(i));
    if (kept.length > 0 && kept.length < indexes.length) return { status, rest: withoutEvents(body, refused), indexes: kept };
  }
  return { status, answer: shape(answer) };
}

/**
 * Delivers each body (`events[i]`: the request indexes of body i's events)
 * now, with retries within the time the request may run on: for bodies no
 * queue may hold (a destination under a BAA without QUEUE_ENCRYPTION_KEY).
 */
export async function deliver(to, bodies, events) {
  const started = Date.now();
  await Promise.all(bodies.map((body, i) => send(to, body, events[i], started)));
}

async function send(to, body, indexes, started) {
  const { destination } = to;
  let out;
  let wait = 0;
  let tries = 0;
  while (tries < ATTEMPTS) {
    tries += 1;
    if (tries > 1) {
      wait = Math.max(wait, BACKOFF_MS * 2 ** (tries - 2));
      if (Date.now() + wait - started > WINDOW_MS) {
        log("error", { phimask: "forward failed", destination, status: out.status, events: indexes.length, attempts: tries - 1, reason: "retry would end after the delivery window" });
        return;
      }
      await sleep(wait);
    }
    out = await attempt(to, body, indexes, DIRECT_TIMEOUT_MS);
    wait = out.wait ?? 0;
    if (out.ok) return forwarded(destination, out, out.sent ?? indexes.length, tries);
    if (out.rest) {
      // A smaller body: its own attempts.
      ({ rest: body, indexes } = out);
      tries = 0;
    } else if (!out.retry) break; // the destination refused the body: retrying will not help
  }
  log("error", { phimask: "forward failed", destination, status: out.status, events: indexes.length, attempts: tries });
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

/** The answer's JSON, read up to MAX_ANSWER_BYTES, or null. */
async function readAnswer(res) {
  try {
    const reader = res.body?.getReader();
    if (!reader) return null;
    const chunks = [];
    let size = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      size += r.value.byteLength;
      if (size > MAX_ANSWER_BYTES) return await reader.cancel().then(() => null);
      chunks.push(r.value);
    }
    return JSON.parse(new TextDecoder().decode(concat(chunks, size)));
  } catch {
    return null;
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

/** Logs refused events by request index and field, never values. */
function logRefused(destination, status, indexes, refused) {
  const events = [...refused]
    .filter(([i]) => i >= 0 && i < indexes.length)
    .map(([i, fields]) => ({ index: indexes[i], fields: fields.slice(0, 10).map((f) => String(f).slice(0, 100)) }));
  log("error", { phimask: "events refused by destination", destination, status, events });
}

/** An Amplitude body without the refused events (numbers re-serialized by JSON.stringify). */
function withoutEvents(body, refused) {
  const parsed = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body));
  parsed.events = parsed.events.filter((_, i) => !refused.has(i));
  return JSON.stringify(parsed);
}

/**
 * The shape of a destination's JSON answer, for a dead letter's reason:
 * its keys (two levels, 10 a level, 40 characters each) with the type of
 * each value, never a value, which could quote what was sent.
 */
export function shape(answer, depth = 0) {
  if (Array.isArray(answer)) return "array";
  if (answer === null || typeof answer !== "object") return answer === null ? "null" : typeof answer;
  if (depth >= 2) return "object";
  return Object.fromEntries(Object.keys(answer).slice(0, 10).map((k) => [k.slice(0, 40), shape(answer[k], depth + 1)]));
}

export function log(level, record) {
  console[level](JSON.stringify(record));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
