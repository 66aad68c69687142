// Reads one tracking request: size limits, write key, JSON, and the
// sanitized events for each destination. An event that cannot be
// sanitized for every destination goes to none of them.
import { limits, readRequest } from "./engine.js";
import { readBody } from "./body.js";
import { fail } from "./respond.js";

/** The engine's limits: the one source of the 32 KB and 500 KB. */
const { maxEventBytes: MAX_EVENT_BYTES, maxBatchBytes: MAX_BATCH_BYTES } = limits();

/**
 * @returns {{response: Response} | {outgoing: Map<string, string[]>, accepted: number,
 *           rejected: {index: number, code: string, error: string}[], report: object}}
 */
export async function ingest(request, env, call, sanitizer, destinations) {
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
  const body = await readBody(request, limit);
  if (body.error === "too_large") return { response: tooLarge() };
  if (body.error === "unsupported_encoding") {
    return { response: fail(415, "unsupported_encoding", "unsupported Content-Encoding: send the body as is, or with gzip or deflate") };
  }
  if (body.error === "bad_encoding") {
    return { response: fail(400, "invalid_encoding", "request body does not decompress as its Content-Encoding says") };
  }
  const { bytes } = body;

  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { response: fail(400, "invalid_json", "request body is not valid UTF-8") };
  }
  // The engine reads the request itself, so each event reaches it as the
  // client wrote it (numbers exact); errors never quote the body.
  let parsed;
  try {
    parsed = readRequest(text, batch ? "batch" : call);
  } catch (e) {
    return { response: fail(400, e.code ?? "invalid_body", e.message) };
  }

  const writeKey = headerKey ?? parsed.writeKey;
  if (writeKey === undefined) {
    return { response: fail(401, "missing_write_key", "missing write key: send it as the HTTP Basic user name or as writeKey in the body") };
  }
  if (headerKey === undefined && !(await known(writeKey, keys))) {
    return { response: fail(401, "invalid_write_key", "unknown write key") };
  }

  const outgoing = new Map(destinations.map((d) => [d, []]));
  const rejected = [];
  let accepted = 0;
  sanitizer.takeReport(); // counts start with this request
  parsed.events.forEach((event, index) => {
    if (event.text === undefined) {
      rejected.push({ index, code: event.code, error: event.error });
      return;
    }
    try {
      const outs = destinations.map((d) => sanitizer.sanitizeJson(event.text, d));
      destinations.forEach((d, i) => outs[i] !== null && outgoing.get(d).push(outs[i]));
      accepted += 1;
    } catch (e) {
      rejected.push({ index, code: e.code ?? "invalid_event", error: e.message });
    }
  });
  for (const [d, list] of outgoing) if (list.length === 0) outgoing.delete(d);
  // Paths dropped, masked and transformed per destination: counts only.
  const report = sanitizer.takeReport();

  if (accepted === 0) {
    const [first] = rejected;
    if (!batch) return { response: fail(first.code === "event_too_large" ? 413 : 400, first.code, first.error) };
    return { response: fail(400, "no_event_accepted", "no event of the batch was accepted", { rejected }) };
  }
  return { outgoing, accepted, rejected, report };
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
