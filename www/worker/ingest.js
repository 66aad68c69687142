// Reads one tracking request: the write key first (the Authorization
// header, else the body's, found without sanitizing anything), size
// limits, and (one engine call) the request bodies of every destination.
// An event that cannot be sanitized for every destination goes to none of
// them.
import { isTrap, limits, requestWriteKey, restartEngine } from "./engine.js";
import { discardBody, readBody } from "./body.js";
import { fail } from "./respond.js";
import { signalsOf } from "./signals.js";

/** The engine's limits: the one source of the 32 KB and 500 KB. */
const { maxEventBytes: MAX_EVENT_BYTES, maxBatchBytes: MAX_BATCH_BYTES } = limits();

/** The write keys of the WRITE_KEYS secret (comma-separated; blanks ignored). */
export function writeKeys(env) {
  return String(env.WRITE_KEYS ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
}

/**
 * @returns {Promise<{response: Response} | {processed: import("../../pkg-worker/phimask.js").Processed}>}
 */
export async function ingest(request, env, call, sanitizer, maxBodyBytes) {
  const keys = writeKeys(env);
  if (keys.length === 0) {
    return { response: fail(503, "no_write_keys", "not configured: set the WRITE_KEYS secret (comma-separated write keys)") };
  }
  // A header that is there is used or refused, never passed over for the body's key.
  const authorization = request.headers.get("Authorization");
  const headerKey = authorization === null ? undefined : basicAuthUser(authorization);
  if (authorization !== null && headerKey === undefined) {
    await discardBody(request);
    return { response: fail(401, "invalid_authorization", 'malformed Authorization header: send the write key as HTTP Basic auth (user name, base64 of "KEY:"), or no Authorization header and writeKey in the body') };
  }
  if (headerKey !== undefined && !(await known(headerKey, keys))) {
    await discardBody(request);
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

  // The body's key, before the engine sanitizes or builds anything: a
  // request without a valid key costs one read of its body.
  if (headerKey === undefined) {
    let bodyKey;
    try {
      bodyKey = requestWriteKey(body.bytes, call);
    } catch (e) {
      return { response: refused(e, call) };
    }
    if (bodyKey === undefined) {
      return { response: fail(401, "missing_write_key", "missing write key: send it as the HTTP Basic user name or as writeKey in the body") };
    }
    if (!(await known(bodyKey, keys))) return { response: fail(401, "invalid_write_key", "unknown write key") };
  }

  // One engine call: the bytes as read (no string made here), every
  // destination's request bodies back. Errors never quote the body. The
  // request's GPC signal and region decide the consent gates.
  const signals = signalsOf(request);
  let processed;
  try {
    processed = sanitizer.processRequest(body.bytes, call, maxBodyBytes, signals);
  } catch (e) {
    return { response: refused(e, call) };
  }

  const { accepted, rejected, rejectedCount } = processed;
  if (accepted === 0) {
    const [first] = rejected;
    if (!batch) return { response: fail(first.code === "event_too_large" ? 413 : 400, first.code, first.error) };
    return { response: fail(400, "no_event_accepted", "no event of the batch was accepted", { rejected, rejectedCount }) };
  }
  // The same request again with a smaller body limit, when its messages
  // would not fit the queue (worker.js).
  const rerun = (max) => {
    try {
      return { processed: sanitizer.processRequest(body.bytes, call, max, signals) };
    } catch (e) {
      return { response: refused(e, call) };
    }
  };
  return { processed, rerun };
}

/**
 * The answer to an engine call that threw: the engine's own refusal (it
 * has a code), or a trap, after which the engine gets a fresh instance
 * and the client is told to send the request again (SDKs retry a 5xx).
 */
function refused(e, call) {
  if (!isTrap(e)) return fail(e.code === "batch_too_large" ? 413 : 400, e.code, e.message);
  // The error's kind only: a trap's message is the runtime's, but
  // nothing of the request belongs in a log.
  const kind = e instanceof WebAssembly.RuntimeError ? `RuntimeError: ${String(e.message).slice(0, 80)}` : String(e?.name ?? typeof e);
  let restarted = true;
  try {
    restartEngine();
  } catch {
    restarted = false;
  }
  console.error(JSON.stringify({ phimask: restarted ? "engine trapped: a fresh instance was made" : "engine trapped: no fresh instance could be made", call, error: kind }));
  return fail(500, "engine_error", "the engine failed on this request: send it again");
}

/**
 * The user name of an HTTP Basic Authorization header (Segment's write
 * key), or undefined when the header is not one: another scheme, not
 * base64, not UTF-8, or an empty user name.
 */
function basicAuthUser(header) {
  const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!m) return undefined;
  try {
    const decoded = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)));
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
