// Sends one destination its sanitized events as Segment batches of at most
// 500 KB each, server side, with retries. Only Content-Type (and the destination's own
// credential, if its secret is set) goes along: none of the visitor's
// headers (Cookie, User-Agent, Referer, X-Forwarded-For, CF-Connecting-IP).
// Logs name the destination, status and event count, never event values.

import { limits } from "./engine.js";

/** Segment's limit on a batch request: no body sent is larger. */
export const MAX_BODY_BYTES = limits().maxBatchBytes;
const ATTEMPTS = 4;
const BACKOFF_MS = 200;
// All attempts (4 × 5 s + 1.4 s of backoff) fit in the 30 s that
// ctx.waitUntil may run after the response.
const TIMEOUT_MS = 5_000;

/**
 * The Worker secret holding a destination's credential, sent as its
 * Authorization header: AUTH_<NAME>, the name upper-cased with anything
 * but letters and digits as "_" (amplitude → AUTH_AMPLITUDE).
 */
export function authSecret(destination) {
  return `AUTH_${destination.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * The events as `{"batch": [...]}` bodies of at most MAX_BODY_BYTES each
 * (masked values are longer than the clear ones, so a request within the
 * limit can sanitize to more than it). An event too large for any body is
 * left out and counted in `oversize`.
 */
export function batchBodies(events) {
  const encoder = new TextEncoder();
  const frame = '{"batch":[]}'.length;
  const bodies = [];
  let current = [];
  let size = frame;
  let oversize = 0;
  for (const event of events) {
    const bytes = encoder.encode(event).byteLength;
    if (frame + bytes > MAX_BODY_BYTES) {
      oversize += 1;
      continue;
    }
    if (current.length > 0 && size + 1 + bytes > MAX_BODY_BYTES) {
      bodies.push(current);
      current = [];
      size = frame;
    }
    size += bytes + (current.length > 0 ? 1 : 0);
    current.push(event);
  }
  if (current.length > 0) bodies.push(current);
  return { bodies: bodies.map((b) => ({ body: `{"batch":[${b.join(",")}]}`, events: b.length })), oversize };
}

/** Sends every event, in as many bodies as the size limit needs. */
export async function forward(destination, endpoint, events, auth) {
  const { bodies, oversize } = batchBodies(events);
  if (oversize > 0) log("error", { phimask: "not sent: event over the body limit", destination, events: oversize, limit: MAX_BODY_BYTES });
  await Promise.all(bodies.map(({ body, events: count }) => send(destination, endpoint, body, count, auth)));
}

async function send(destination, endpoint, body, count, auth) {
  const headers = { "Content-Type": "application/json" };
  if (typeof auth === "string" && auth !== "") headers.Authorization = auth;
  let status = "no response";
  let attempt = 0;
  while (attempt < ATTEMPTS) {
    attempt += 1;
    if (attempt > 1) await sleep(BACKOFF_MS * 2 ** (attempt - 2));
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await res.body?.cancel();
      status = res.status;
      if (res.ok) {
        log("log", { phimask: "forwarded", destination, status, events: count, attempt });
        return;
      }
      if (res.status < 500 && res.status !== 429) break; // the destination refused: retrying will not help
    } catch (e) {
      status = e?.name === "TimeoutError" ? "timeout" : "network error";
    }
  }
  log("error", { phimask: "forward failed", destination, status, events: count, attempts: attempt });
}

function log(level, record) {
  console[level](JSON.stringify(record));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
