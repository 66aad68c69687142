// Reads one tracking request: size limits, write key, and (one engine
// call) the request bodies of every destination. An event that cannot be
// sanitized for every destination goes to none of them.
import { limits } from "./engine.js";
import { readBody } from "./body.js";
import { fail } from "./respond.js";

/** The engine's limits: the one source of the 32 KB and 500 KB. */
const { maxEventBytes: MAX_EVENT_BYTES, maxBatchBytes: MAX_BATCH_BYTES } = limits();

/**
 * @returns {{response: Response} | {processed: import("../../pkg-worker/phimask.js").Processed}}
 */
export async function ingest(request, env, call, sanitizer, maxBodyBytes) {
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
  // One engine call: the bytes as read (no string made here), every
  // destination's request bodies back. Errors never quote the body.
  let processed;
  try {
    processed = sanitizer.processRequest(body.bytes, batch ? "batch" : call, maxBodyBytes);
  } catch (e) {
    return { response: fail(e.code === "batch_too_large" ? 413 : 400, e.code ?? "invalid_body", e.message) };
  }

  const writeKey = headerKey ?? processed.writeKey;
  if (writeKey === undefined) {
    return { response: fail(401, "missing_write_key", "missing write key: send it as the HTTP Basic user name or as writeKey in the body") };
  }
  if (headerKey === undefined && !(await known(writeKey, keys))) {
    return { response: fail(401, "invalid_write_key", "unknown write key") };
  }

  const { accepted, rejected } = processed;
  if (accepted === 0) {
    const [first] = rejected;
    if (!batch) return { response: fail(first.code === "event_too_large" ? 413 : 400, first.code, first.error) };
    return { response: fail(400, "no_event_accepted", "no event of the batch was accepted", { rejected }) };
  }
  // The same request again with a smaller body limit, when its messages
  // would not fit the queue (worker.js).
  return { processed, rerun: (max) => sanitizer.processRequest(body.bytes, batch ? "batch" : call, max) };
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
export async function known(key, keys) {
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
