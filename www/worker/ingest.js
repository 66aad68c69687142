// Reads one tracking request: the write key first (the Authorization
// header's, with its origin binding, before the body is read; else the
// body's, found without sanitizing anything), size limits, and (one engine
// call) the request bodies of every destination. An event that cannot be
// sanitized for every destination goes to none of them. Which keys exist
// and where each may be used: keys.js.
import { isTrap, limits, requestWriteKey, restartEngine } from "./engine.js";
import { discardBody, readBody } from "./body.js";
import { headerWriteKey, keyRefusal, writeKeyConfig } from "./keys.js";
import { fail } from "./respond.js";
import { signalsOf } from "./signals.js";

// worker.js (/health) and dead-letters.js (the operator key) read these here.
export { known, writeKeys } from "./keys.js";

/** The engine's limits: the one source of the 32 KB and 500 KB. */
const { maxEventBytes: MAX_EVENT_BYTES, maxBatchBytes: MAX_BATCH_BYTES } = limits();

/**
 * @returns {Promise<{response: Response} | {processed: import("../../pkg-worker/phimask.js").Processed}>}
 */
export async function ingest(request, env, call, sanitizer, maxBodyBytes) {
  const keys = writeKeyConfig(env);
  if (keys.problem) return { response: fail(503, keys.problem.code, keys.problem.message) };
  // A header that is there is used or refused, never passed over for the
  // body's key; its key and origin are checked before the body is read.
  const header = headerWriteKey(request);
  if (header.malformed) {
    await discardBody(request);
    return { response: fail(401, "invalid_authorization", 'malformed Authorization header: send the write key as HTTP Basic auth (user name, base64 of "KEY:"), or no Authorization header and writeKey in the body') };
  }
  if (header.key !== undefined) {
    const refusal = await keyRefusal(header.key, "header", request, keys);
    if (refusal) {
      await discardBody(request);
      return { response: fail(refusal.status, refusal.code, refusal.error) };
    }
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
  if (header.absent) {
    let bodyKey;
    try {
      bodyKey = requestWriteKey(body.bytes, call);
    } catch (e) {
      return { response: refused(e, call) };
    }
    if (bodyKey === undefined) {
      return { response: fail(401, "missing_write_key", "missing write key: send it as the HTTP Basic user name or as writeKey in the body") };
    }
    const refusal = await keyRefusal(bodyKey, "body", request, keys);
    if (refusal) return { response: fail(refusal.status, refusal.code, refusal.error) };
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
