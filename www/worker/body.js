// Reads a request body within a limit of bytes, inflating gzip and deflate
// bodies (RudderStack's SDKs gzip by default) with the limit counted on the
// decompressed bytes as they come out. Reading stops at the limit: the
// rest of an over-limit body is never read (the client gets its 413 at
// once), and a compression bomb is never inflated whole: workerd's
// DecompressionStream inflates each written chunk at once, ignoring
// backpressure, so the input is fed in slices.

/**
 * Compressed bytes written to the decompressor at a time. Deflate inflates
 * at most about 1032:1, so a slice makes at most ~4 MB of output before
 * the limit is checked again; smaller slices cost CPU on every body (a
 * 64-byte slice made a 500 KB stored-deflate body cost several times what
 * it costs here). Chosen by `make bench` (benches/inflate.mjs).
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
 * The body's bytes, decompressed, or why not:
 * `{ bytes }`, or `{ error: "too_large" | "unsupported_encoding" | "bad_encoding" }`.
 * `slice` is for the benchmark only.
 */
export async function readBody(request, limit, slice = SLICE) {
  const encoding = (request.headers.get("Content-Encoding") ?? "").trim().toLowerCase();
  const identity = encoding === "" || encoding === "identity";
  if (!identity && !Object.hasOwn(FORMATS, encoding)) {
    await request.body?.cancel().catch(() => {});
    return { error: "unsupported_encoding" };
  }
  // A declared length over the limit is refused before a byte is read.
  const declared = Number(request.headers.get("Content-Length") ?? NaN);
  if (declared > (identity ? limit : limit + FRAMING)) {
    await request.body?.cancel().catch(() => {});
    return { error: "too_large" };
  }
  if (identity) {
    const bytes = await readLimited(request.body, limit);
    return bytes === null ? { error: "too_large" } : { bytes };
  }
  return inflate(request.body, FORMATS[encoding], limit, slice);
}

/** The stream's bytes, or null as soon as they are over `limit` (the rest is not read). */
async function readLimited(body, limit) {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return concat(chunks, size);
}

/**
 * The inflated body, or why not. Stops as soon as the compressed input or
 * the inflated output is over the limit: the writer is aborted, the
 * output and the request body cancelled, nothing waited for.
 */
async function inflate(body, format, limit, slice) {
  if (!body) return { error: "bad_encoding" };
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

  const input = body.getReader();
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
    input.cancel().catch(() => {});
  }
  if (over) return { error: "too_large" };
  if (broken) return { error: "bad_encoding" };
  return { bytes: concat(chunks, size) };
}

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
