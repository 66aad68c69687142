// Reads a request body within a limit of bytes, inflating gzip and deflate
// bodies (RudderStack's SDKs gzip by default) with the limit counted on the
// decompressed bytes as they come out. A compression bomb is stopped at
// the limit, never inflated whole: workerd's DecompressionStream inflates
// each written chunk at once, so the input is fed in small slices.

/** Compressed bytes written to the decompressor at a time: at most about
 * 64 KB of output each (deflate's ratio is bounded near 1032:1). */
const SLICE = 64;

/** Content-Encoding values and the DecompressionStream format of each. */
const FORMATS = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate" };

/**
 * The body's bytes, decompressed, or why not:
 * `{ bytes }`, or `{ error: "too_large" | "unsupported_encoding" | "bad_encoding" }`.
 */
export async function readBody(request, limit) {
  const encoding = (request.headers.get("Content-Encoding") ?? "").trim().toLowerCase();
  if (encoding === "" || encoding === "identity") {
    const bytes = await readLimited(request.body, limit);
    return bytes === null ? { error: "too_large" } : { bytes };
  }
  if (!Object.hasOwn(FORMATS, encoding)) {
    await drain(request.body);
    return { error: "unsupported_encoding" };
  }
  return inflate(request.body, FORMATS[encoding], limit);
}

/**
 * The stream's bytes, or null when they are over `limit`. Past the limit
 * the rest is read and discarded, not kept: a client whose body is cut off
 * sees a network error and retries, where a 413 tells it to give up.
 */
async function readLimited(body, limit) {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size <= limit) chunks.push(value);
    else chunks.length = 0;
  }
  return size > limit ? null : concat(chunks, size);
}

async function inflate(body, format, limit) {
  if (!body) return { error: "bad_encoding" };
  const stream = new DecompressionStream(format);
  const writer = stream.writable.getWriter();
  const output = stream.readable.getReader();
  const chunks = [];
  let size = 0;
  let over = false;
  // Reads the decompressed output as it comes, and stops the stream at
  // the limit (the writer's pending write then fails).
  const collecting = (async () => {
    for (;;) {
      const { done, value } = await output.read();
      if (done) return;
      size += value.byteLength;
      if (size > limit) {
        over = true;
        await output.cancel().catch(() => {});
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
      const { done, value } = await input.read();
      if (done) break;
      compressed += value.byteLength;
      // Compressed data over the limit cannot inflate to less than it by
      // more than the format's few bytes of framing.
      if (compressed > limit + 1024) over = true;
      for (let at = 0; at < value.byteLength && !over; at += SLICE) {
        await writer.write(value.subarray(at, at + SLICE));
      }
      if (over) break;
    }
    if (!over) await writer.close();
    await collecting;
  } catch {
    broken = true;
  }
  if (over || broken) {
    await writer.abort().catch(() => {});
    await output.cancel().catch(() => {});
    await drainReader(input);
  }
  if (over) return { error: "too_large" };
  if (broken) return { error: "bad_encoding" };
  return { bytes: concat(chunks, size) };
}

async function drain(body) {
  if (body) await drainReader(body.getReader());
}

/** Reads the rest of a body and discards it (so the client gets its answer). */
async function drainReader(reader) {
  try {
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
    }
  } catch {
    // The client went away: nothing to answer.
  }
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
