// JSON responses of the edge Worker, with CORS for browser SDKs. Bodies
// never carry event values or secrets.

/** CORS headers: any origin may send events; no credentials are used. */
export function cors() {
  return {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    // AnonymousId and SentAt: RudderStack's browser SDK sends them;
    // X-Retry-Count: analytics.js sends it on retries. None is forwarded.
    "Access-Control-Allow-Headers": "Content-Type, Authorization, AnonymousId, SentAt, X-Retry-Count",
    "Access-Control-Max-Age": "86400",
    // Retry-After (429, 503) is no CORS-safelisted header: exposed, so a
    // browser SDK can read when to send again.
    "Access-Control-Expose-Headers": "Retry-After",
  };
}

export function reply(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...cors(), ...headers },
  });
}

// Each refusal's code, for the ledger to count refused requests by.
const codes = new WeakMap();

export function fail(status, code, error, extra = {}, headers = {}) {
  const response = reply(status, { success: false, code, error, ...extra }, headers);
  codes.set(response, code);
  return response;
}

/** The code `fail` gave a response; "unknown" for any other. */
export const codeOf = (response) => codes.get(response) ?? "unknown";
