// Sends one destination its sanitized events as a Segment batch, server
// side, with retries. Only Content-Type (and the destination's own
// credential, if its secret is set) goes along: none of the visitor's
// headers (Cookie, User-Agent, Referer, X-Forwarded-For, CF-Connecting-IP).
// Logs name the destination, status and event count, never event values.

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

export async function forward(destination, endpoint, events, auth) {
  const body = `{"batch":[${events.join(",")}]}`;
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
        log("log", { phimask: "forwarded", destination, status, events: events.length, attempt });
        return;
      }
      if (res.status < 500 && res.status !== 429) break; // the destination refused: retrying will not help
    } catch (e) {
      status = e?.name === "TimeoutError" ? "timeout" : "network error";
    }
  }
  log("error", { phimask: "forward failed", destination, status, events: events.length, attempts: attempt });
}

function log(level, record) {
  console[level](JSON.stringify(record));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
