// Sends one destination the request bodies the engine made for it, server
// side, in its format, and reads its API's answers:
// - 2xx: delivered.
// - 429, 5xx, a timeout or a network error: retried with exponential
//   backoff, waiting at least what Retry-After asks.
// - Amplitude's 400 listing refused events: those are logged and the rest
//   is sent again (Amplitude took none of the body).
// - Mixpanel's 400 with failed_records: those are logged; the rest was
//   imported, so nothing is sent again.
// - Any other 4xx: the destination refused the body; logged, not retried.
// Only Content-Type and the destination's own credential go along: none of
// the visitor's headers. Logs name the destination, status, counts,
// request indexes and field names, never values or credentials.

import { concat } from "./body.js";

const ATTEMPTS = 4;
const BACKOFF_MS = 200;
const TIMEOUT_MS = 5_000;
// All attempts fit in the 30 s that ctx.waitUntil may run after the
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
 * Sends each body (`events[i]`: the request indexes of body i's events).
 * `to` is { destination, format, target: { url, authorization } }.
 */
export async function deliver(to, bodies, events) {
  const started = Date.now();
  await Promise.all(bodies.map((body, i) => send(to, body, events[i], started)));
}

async function send(to, body, indexes, started) {
  const { destination, format, target } = to;
  const headers = { "Content-Type": CONTENT_TYPES[format] ?? "application/json" };
  if (target.authorization) headers.Authorization = target.authorization;
  let status = "no response";
  let wait = 0;
  let attempt = 0;
  while (attempt < ATTEMPTS) {
    attempt += 1;
    if (attempt > 1) {
      wait = Math.max(wait, BACKOFF_MS * 2 ** (attempt - 2));
      if (Date.now() + wait - started > WINDOW_MS) {
        log("error", { phimask: "forward failed", destination, status, events: indexes.length, attempts: attempt - 1, reason: "retry would end after the delivery window" });
        return;
      }
      await sleep(wait);
    }
    wait = 0;
    let res;
    try {
      res = await fetch(target.url, { method: "POST", headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (e) {
      status = e?.name === "TimeoutError" ? "timeout" : "network error";
      continue;
    }
    status = res.status;
    if (res.ok) {
      await res.body?.cancel();
      log("log", { phimask: "forwarded", destination, status, events: indexes.length, attempt });
      return;
    }
    if (res.status === 429 || res.status >= 500) {
      wait = retryAfter(res.headers.get("Retry-After"));
      await res.body?.cancel();
      continue;
    }
    const answer = await readAnswer(res);
    if (res.status === 400 && format === "amplitude") {
      const refused = amplitudeRefused(answer);
      if (refused.size > 0) {
        logRefused(destination, status, indexes, refused);
        const kept = indexes.filter((_, i) => !refused.has(i));
        if (kept.length === 0) return;
        if (kept.length < indexes.length) {
          body = withoutEvents(body, refused);
          indexes = kept;
          attempt = 0; // a smaller body: its own attempts
          continue;
        }
      }
    }
    if (res.status === 400 && format === "mixpanel") {
      const refused = mixpanelRefused(answer);
      if (refused.size > 0) {
        logRefused(destination, status, indexes, refused);
        log("log", { phimask: "forwarded", destination, status, events: indexes.length - refused.size, attempt, partial: true });
        return;
      }
    }
    break; // the destination refused the body: retrying will not help
  }
  log("error", { phimask: "forward failed", destination, status, events: indexes.length, attempts: attempt });
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
  const parsed = JSON.parse(body);
  parsed.events = parsed.events.filter((_, i) => !refused.has(i));
  return JSON.stringify(parsed);
}

function log(level, record) {
  console[level](JSON.stringify(record));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
