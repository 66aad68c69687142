// Reads a request body within a limit of bytes, inflating gzip and deflate
// bodies (RudderStack's SDKs gzip by default) with the limit counted on the
// decompressed bytes as they come out. Reading stops at the limit and the
// refusal is answered at once; a compression bomb is never inflated whole:
// workerd's DecompressionStream inflates each written chunk at once,
// ignoring backpressure, so the input is fed in slices. What a client is
// still sending of a refused body is read and dropped within a small
// bound before the answer (discard), then the rest is cancelled.

/**
 * Compressed bytes written to the decompressor at a time; what each write
 * inflated is read before the next. Deflate inflates at most about
 * 1032:1, so one write makes at most ~4 MB of output past the limit.
 * Measured by `make bench` (benches/inflate.mjs) inside workerd: 64-byte
 * slices made a 500 KB stored-deflate body cost ~160 ms, 4 KB slices
 * ~5 ms; a 100 KB bomb is refused in ~3 ms with ~13 MB of peak memory
 * (without reading between writes, it was inflated whole: ~290 MB).
 */
export const SLICE = 4096;

/** Content-Encoding values and the DecompressionStream format of each. */
const FORMATS = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate" };

/**
 * Compressed data over the limit cannot inflate to less than it by more
 * than the format's framing: a gzip header may carry a name and a comment
 * of any length, which are not data, so this is generous.
 */
const FRAMING = 1024;

/**
 * What is read and dropped of a refused body before its answer, at most:
 * a client still sending a body a little over the limit gets its answer
 * (a 413 it will not retry) rather than a reset connection (which SDKs
 * retry; workerd cannot read a request after its response), and a client
 * sending more, or sending slowly, is cut off. Nothing of it is kept or
 * inflated.
 */
const DISCARD_BYTES = 4 * 1024 * 1024;
const DISCARD_MS = 1_000;

/**
 * The body's bytes, decompressed, or why not:
 * `{ bytes }`, or `{ error: "too_large" | "unsupported_encoding" | "bad_encoding" }`.
 * Refused, what is left of the body is discarded (see DISCARD_BYTES).
 * `slice` is for the benchmark.
 */
export async function readBody(request, limit, { slice = SLICE } = {}) {
  const encoding = (request.headers.get("Content-Encoding") ?? "").trim().toLowerCase();
  const identity = encoding === "" || encoding === "identity";
  if (!identity && !Object.hasOwn(FORMATS, encoding)) {
    await discardBody(request);
    return { error: "unsupported_encoding" };
  }
  // A declared length over the limit is refused before a byte is kept.
  const declared = Number(request.headers.get("Content-Length") ?? NaN);
  if (declared > (identity ? limit : limit + FRAMING)) {
    await discardBody(request);
    return { error: "too_large" };
  }
  if (!request.body) return identity ? { bytes: new Uint8Array(0) } : { error: "bad_encoding" };
  const reader = request.body.getReader();
  const read = identity ? await readLimited(reader, limit) : await inflate(reader, FORMATS[encoding], limit, slice);
  if (read.error) await discard(reader);
  return read;
}

/** Discards a request's body, unread, before it is refused (see DISCARD_BYTES). */
export async function discardBody(request) {
  if (request.body && !request.bodyUsed) await discard(request.body.getReader());
}

/** Reads and drops at most DISCARD_BYTES for at most DISCARD_MS, then cancels the rest. */
async function discard(reader) {
  let timer;
  const timeUp = new Promise((resolve) => (timer = setTimeout(resolve, DISCARD_MS, null)));
  try {
    for (let size = 0; size <= DISCARD_BYTES; ) {
      const next = await Promise.race([reader.read(), timeUp]);
      if (next === null || next.done) return;
      size += next.value.byteLength;
    }
  } catch {
    // The client went away: nothing to discard.
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

/** The reader's bytes, or too_large as soon as they are over `limit`. */
async function readLimited(reader, limit) {
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) return { error: "too_large" };
    chunks.push(value);
  }
  return { bytes: concat(chunks, size) };
}

/**
 * The inflated body, or why not. Stops as soon as the compressed input or
 * the inflated output is over the limit: the writer is aborted and the
 * output cancelled, nothing waited for (the input is left to discard).
 */
async function inflate(input, format, limit, slice) {
  const stream = new DecompressionStream(format);
  const writer = stream.writable.getWriter();
  const output = stream.readable.getReader();
  const chunks = [];
  let size = 0;
  let over = false;
  let stop;
  const stopped = new Promise((resolve) => (stop = resolve));
  // Reads the decompressed output as it comes; at the limit it cancels
  // the output (a pending write then fails) and stops the feeding.
  const collecting = (async () => {
    for (;;) {
      const { done, value } = await output.read();
      if (done) return;
      size += value.byteLength;
      if (size > limit) {
        over = true;
        stop();
        output.cancel().catch(() => {});
        return;
      }
      chunks.push(value);
    }
  })();
  collecting.catch(() => {});

  let compressed = 0;
  let broken = false;
  try {
    for (;;) {
      // A client still sending is not waited for once the output is over.
      const next = await Promise.race([input.read(), stopped.then(() => null)]);
      if (next === null || next.done) break;
      const { value } = next;
      compressed += value.byteLength;
      if (compressed > limit + FRAMING) {
        over = true;
        break;
      }
      for (let at = 0; at < value.byteLength && !over; at += slice) {
        await writer.write(value.subarray(at, at + slice));
        // What the write inflated is read (and counted) before the next.
        await turn();
      }
      if (over) break;
    }
    if (!over) {
      await writer.close();
      await collecting;
    }
  } catch {
    broken = true;
  }
  if (over || broken) {
    writer.abort().catch(() => {});
    output.cancel().catch(() => {});
  }
  if (over) return { error: "too_large" };
  if (broken) return { error: "bad_encoding" };
  return { bytes: concat(chunks, size) };
}

/** One turn of the event loop: the decompressor's output reaches the reader
 * (setImmediate where there is one: Node clamps setTimeout to 1 ms). */
const turn = typeof setImmediate === "function" ? () => new Promise((resolve) => setImmediate(resolve)) : () => new Promise((resolve) => setTimeout(resolve, 0));

/** The chunks as one array of `size` bytes. */
export function concat(chunks, size) {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
