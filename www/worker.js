// The phimask edge Worker: a Segment-compatible tracking API that sanitizes
// every event for every server-side destination of the bundled policy and
// forwards the results server-side. Nothing of the visitor's request but
// the sanitized events leaves the edge.
//
// The per-environment entry files (entry-development.js,
// entry-production.js) import their prepared policy (written by
// www/check-policy.mjs at build time) and call createWorker(policy).
import { callTypes, Sanitizer } from "./engine.js";
import { authSecret, deliver } from "./forward.js";
import { ingest } from "./ingest.js";
import { cors, reply } from "./respond.js";

/**
 * Segment call types by path segment: the engine's six, each also by its
 * first letter (/v1/t …). analytics.js posts batches to /v1/b; Segment's
 * HTTP API also names it /v1/import.
 */
const CALLS = Object.fromEntries([
  ...callTypes().flatMap((t) => [[t, t], [t[0], t]]),
  ["batch", "batch"], ["b", "batch"], ["import", "batch"],
]);

/**
 * Each destination's credential secret; none for names that share one
 * (`a-b` and `a.b`), so no destination is ever sent another's credential.
 */
function credentialSecrets(destinations) {
  const names = destinations.map(authSecret);
  const secrets = new Map();
  destinations.forEach((d, i) => {
    const shared = names.filter((n) => n === names[i]).length > 1;
    if (shared) console.error(JSON.stringify({ phimask: "credential not sent", destination: d, reason: `${names[i]} would be shared with another destination` }));
    secrets.set(d, shared ? null : names[i]);
  });
  return secrets;
}

/**
 * GET /health: the deployment as an operator checks it — environment, the
 * policy's hash, each destination with its format and whether its
 * credential secret is set, and whether the Worker's own secrets are set;
 * never a secret's value. 503 when the Worker accepts nothing, with why.
 */
function health(policy, hash, env, compiled) {
  const set = (name) => typeof env[name] === "string" && env[name] !== "";
  const body = {
    ok: !compiled.error,
    environment: policy.environment,
    policy: { version: 1, sha256: hash },
    secrets: { PHI_MASKING_KEY: set("PHI_MASKING_KEY"), WRITE_KEYS: set("WRITE_KEYS") },
    destinations: [...(compiled.targets?.values() ?? [])].map((t) => ({ name: t.destination, format: t.format, credential: t.secret ? set(t.secret) : false })),
  };
  if (compiled.error) body.error = { code: compiled.error.code, message: compiled.error.message };
  return reply(compiled.error ? 503 : 200, body);
}

/** The credential secrets as they stand, to notice when they change. */
function credentialKey(env) {
  return JSON.stringify(Object.keys(env).filter((k) => k.startsWith("AUTH_")).sort().map((k) => [k, env[k]]));
}

/**
 * The Worker for one prepared policy ({ environment, prepared }, base64).
 * The policy is compiled once per isolate (and again only if the masking
 * key or a credential secret changes), never per request.
 */
export function createWorker(policy) {
  const prepared = Uint8Array.from(atob(policy.prepared), (c) => c.charCodeAt(0));
  // A prepared policy ends with its SHA-256 (check-policy prints it).
  const hash = Array.from(prepared.subarray(-32), (b) => b.toString(16).padStart(2, "0")).join("");
  let compiled = null;

  function sanitizerFor(env) {
    // The same bindings as last time: nothing to compare.
    if (compiled?.env === env) return compiled;
    const key = env.PHI_MASKING_KEY;
    const credentials = credentialKey(env);
    if (compiled === null || compiled.key !== key || compiled.credentials !== credentials) {
      compiled?.sanitizer?.free();
      let sanitizer;
      try {
        sanitizer = Sanitizer.fromPrepared(prepared, key ?? null);
        const destinations = sanitizer.destinations();
        const secrets = credentialSecrets(destinations);
        // Each credential checked for its format here, once, not per
        // event; the targets hold them, so they are never logged.
        const targets = new Map(destinations.map((d) => {
          const secret = secrets.get(d);
          const target = sanitizer.connect(d, secret ? env[secret] ?? null : null);
          return [d, { destination: d, secret, format: target.format, target }];
        }));
        compiled = { key, credentials, sanitizer, targets };
        console.log(JSON.stringify({ phimask: "policy compiled", environment: policy.environment, destinations: destinations.map((d) => ({ name: d, format: targets.get(d).format })) }));
      } catch (e) {
        // Typically no PHI_MASKING_KEY or a destination's credential
        // missing: accept nothing, forward nothing.
        sanitizer?.free();
        compiled = { key, credentials, error: e };
        console.error(JSON.stringify({ phimask: "not configured", code: e.code, error: e.message }));
      }
    }
    compiled.env = env;
    return compiled;
  }

  return {
    async fetch(request, env, ctx) {
      const url = new URL(request.url);
      if (url.pathname === "/health") {
        if (request.method !== "GET") return reply(405, { success: false, code: "method_not_allowed", error: "method not allowed: use GET" }, { Allow: "GET" });
        return health(policy, hash, env, sanitizerFor(env));
      }
      const match = /^\/v1\/([a-z]+)$/.exec(url.pathname);
      const call = match && Object.hasOwn(CALLS, match[1]) ? CALLS[match[1]] : undefined;
      if (!call) return reply(404, { success: false, code: "not_found", error: "not found: use POST /v1/{track,identify,group,page,screen,alias,batch} (or /v1/{t,i,g,p,s,a,b,import})" });
      if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: cors() });
      if (request.method !== "POST") {
        return reply(405, { success: false, code: "method_not_allowed", error: "method not allowed: use POST" }, { Allow: "POST, OPTIONS" });
      }

      const { sanitizer, targets, error } = sanitizerFor(env);
      if (error) return reply(503, { success: false, code: error.code, error: error.message });
      const result = await ingest(request, env, call, sanitizer);
      if (result.response) return result.response;
      const { accepted, rejected, bodies, events, report } = result.processed;
      // One line per request: what each destination got, as counts.
      console.log(JSON.stringify({ phimask: "request", call, accepted, rejected: rejected.length, destinations: report }));
      for (const [destination, r] of Object.entries(report)) {
        if (r.oversize > 0) console.error(JSON.stringify({ phimask: "not sent: event over the body limit", destination, events: r.oversize }));
      }

      for (const [destination, list] of Object.entries(bodies)) {
        if (list.length > 0) ctx.waitUntil(deliver(targets.get(destination), list, events[destination]));
      }
      const body = { success: true };
      if (rejected.length > 0) {
        body.accepted = accepted;
        body.rejected = rejected;
      }
      return reply(200, body);
    },
  };
}
