// Reads one tracking request: size limits, write key, JSON, and the
// sanitized events for each destination. An event that cannot be
// sanitized for every destination goes to none of them.
import { fail } from "./respond.js";

export const MAX_EVENT_BYTES = 32 * 1024;
export const MAX_BATCH_BYTES = 500 * 1024;

/**
 * @returns {{response: Response} | {outgoing: Map<string, string[]>, accepted: number,
 *           rejected: {index: number, code: string, error: string}[]}}
 */
export async function ingest(request, env, call, sanitizer) {
  const keys = String(env.WRITE_KEYS ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.length === 0) {
    return { response: fail(503, "no_write_keys", "not configured: set the WRITE_KEYS secret (comma-separated write keys)") };
  }
  const headerKey = basicAuthUser(request.headers.get("Authorization"));
  if (headerKey !== undefined && !(await known(headerKey, keys))) {
    return { response: fail(401, "invalid_write_key", "unknown write key") };
  }

  const batch = call === "batch";
  const limit = batch ? MAX_BATCH_BYTES : MAX_EVENT_BYTES;
  const tooLarge = () =>
    batch
      ? fail(413, "batch_too_large", `batch is larger than ${MAX_BATCH_BYTES} bytes`)
      : fail(413, "event_too_large", `event is larger than ${MAX_EVENT_BYTES} bytes`);
  const bytes = await readLimited(request, limit);
  if (bytes === null) return { response: tooLarge() };

  let body;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    // JSON.parse's own message quotes the input: never pass it on.
    return { response: fail(400, "invalid_json", "request body is not valid UTF-8 JSON") };
  }
  if (!isObject(body)) return { response: fail(400, "invalid_body", "request body must be a JSON object") };

  const writeKey = headerKey ?? stringOr(body.writeKey) ?? (batch && Array.isArray(body.batch) ? stringOr(body.batch[0]?.writeKey) : undefined);
  if (writeKey === undefined) {
    return { response: fail(401, "missing_write_key", "missing write key: send it as the HTTP Basic user name or as writeKey in the body") };
  }
  if (headerKey === undefined && !(await known(writeKey, keys))) {
    return { response: fail(401, "invalid_write_key", "unknown write key") };
  }

  let events;
  if (batch) {
    if (!Array.isArray(body.batch)) return { response: fail(400, "invalid_body", 'batch requests need "batch": an array of events') };
    if (body.batch.length === 0) return { response: fail(400, "invalid_body", "batch has no events") };
    const shared = {};
    for (const key of SHARED) {
      if (body[key] === undefined) continue;
      if (!isObject(body[key])) return { response: fail(400, "invalid_body", `the batch's "${key}" must be an object`) };
      shared[key] = body[key];
    }
    events = body.batch.map((event) => (isObject(event) ? withShared(event, shared) : event));
  } else {
    events = [{ ...body, type: call }];
  }

  const destinations = sanitizer.destinations();
  const outgoing = new Map(destinations.map((d) => [d, []]));
  const rejected = [];
  let accepted = 0;
  events.forEach((event, index) => {
    if (!isObject(event)) {
      rejected.push({ index, code: "event_not_object", error: "event must be a JSON object" });
      return;
    }
    // The write key is this edge's credential: no destination gets it.
    const { writeKey: _, ...clean } = event;
    const text = JSON.stringify(clean);
    try {
      const outs = destinations.map((d) => sanitizer.sanitizeJson(text, d));
      destinations.forEach((d, i) => outs[i] !== null && outgoing.get(d).push(outs[i]));
      accepted += 1;
    } catch (e) {
      rejected.push({ index, code: e.code ?? "invalid_event", error: e.message });
    }
  });
  for (const [d, list] of outgoing) if (list.length === 0) outgoing.delete(d);

  if (accepted === 0) {
    const [first] = rejected;
    if (!batch) return { response: fail(first.code === "event_too_large" ? 413 : 400, first.code, first.error) };
    return { response: fail(400, "no_event_accepted", "no event of the batch was accepted", { rejected }) };
  }
  return { outgoing, accepted, rejected };
}

/** Segment: a batch's own context and integrations apply to all its events. */
const SHARED = ["context", "integrations"];

/** The event with the batch's shared objects under its own (its keys win). */
function withShared(event, shared) {
  const out = { ...event };
  for (const [key, value] of Object.entries(shared)) {
    if (out[key] === undefined) out[key] = value;
    else if (isObject(out[key])) out[key] = { ...value, ...out[key] };
  }
  return out;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function stringOr(v) {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The user name of an HTTP Basic Authorization header (Segment's write key). */
function basicAuthUser(header) {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!m) return undefined;
  try {
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)));
    const user = decoded.split(":")[0];
    return user === "" ? undefined : user;
  } catch {
    return undefined;
  }
}

/** Whether `key` is one of `keys`, compared in constant time. */
async function known(key, keys) {
  const enc = new TextEncoder();
  const digest = async (s) => new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(s)));
  const k = await digest(key);
  let found = false;
  for (const candidate of keys) {
    const c = await digest(candidate);
    let diff = 0;
    for (let i = 0; i < k.length; i++) diff |= k[i] ^ c[i];
    found = found || diff === 0;
  }
  return found;
}

/**
 * The request body, or null when it is over `limit` bytes. Past the limit
 * the rest is read and discarded, not kept: a client whose body is cut off
 * sees a network error and retries, where a 413 tells it to give up.
 */
async function readLimited(request, limit) {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size <= limit) chunks.push(value);
    else chunks.length = 0;
  }
  if (size > limit) return null;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
