// Rate limits, with the Workers Rate Limiting binding, checked from a
// request's headers alone: before its write key is checked, before its
// body is read. RATE_LIMIT_CLIENT counts per (bucket, client IP) and
// RATE_LIMIT_KEY per bucket, where the bucket is the request's write key
// when it comes as HTTP Basic auth and is a configured key; else, with no
// Authorization header (a browser sending its key in the body), the
// request's Origin (normalized) when a key is bound to it, one bucket for every other
// Origin (a client can claim any: rotating them must not give it fresh
// buckets) and "none" without one; else (an unknown, malformed or
// oversized Authorization header) one bucket for unknown keys, so fake
// keys never get fresh buckets of their own. The client IP is
// CF-Connecting-IP, which Cloudflare sets; X-Forwarded-For and the like
// are the client's to invent and never used. An IPv6 client counts by its
// /64: one subscriber holds the whole network and may rotate through its
// addresses, which must not give it fresh allowances.
import { headerWriteKey, normalizedOrigin, writeKeyConfig } from "./keys.js";
import { fail } from "./respond.js";

export const LIMITERS = ["RATE_LIMIT_CLIENT", "RATE_LIMIT_KEY"];

/** Why the Worker refuses every event for want of its limiters, or null. */
export function rateLimitProblem(env) {
  const missing = LIMITERS.filter((name) => typeof env[name]?.limit !== "function");
  if (missing.length === 0) return null;
  return { code: "no_rate_limit", message: `not configured: no ${missing.join(" or ")} rate limit binding (ratelimits in wrangler.toml)` };
}

/**
 * Retry-After of a refusal: RATE_LIMIT_PERIOD, the period both bindings
 * declare (10 or 60); without it, 60, the longest a binding can have, so
 * a client never comes back early.
 */
export function retryAfter(env) {
  return env.RATE_LIMIT_PERIOD === "10" ? "10" : "60";
}

const encoder = new TextEncoder();

async function sha256(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The SHA-256 of each configured key, and the origins keys are bound to,
// per isolate, made again when the secrets change (keys.js parses them).
let known = { config: null, digests: new Set(), origins: new Set() };

async function configured(env) {
  const config = writeKeyConfig(env);
  if (known.config !== config) {
    const entries = config.entries ?? [];
    const origins = new Set(entries.flatMap((e) => [...(e.origins ?? [])]));
    known = { config, digests: new Set(await Promise.all(entries.map((e) => sha256(e.key)))), origins };
  }
  return known;
}

/**
 * The request's bucket: `{ kind, id, log }`. Keys are known by their
 * SHA-256 (compared as digests, so a key's bytes never meet a
 * comparison), and the bucket holds the digest, never the key.
 */
async function bucketOf(request, env) {
  const authorization = request.headers.get("Authorization");
  if (authorization !== null) {
    // Over keys.js's MAX_AUTHORIZATION it is malformed: not parsed.
    const { key } = headerWriteKey(request);
    if (key !== undefined) {
      const digest = await sha256(key);
      if ((await configured(env)).digests.has(digest)) return { kind: "key", id: `key\n${digest}`, log: { key_sha256: digest.slice(0, 8) } };
    }
    return { kind: "unknown key", id: "unknown", log: {} };
  }
  const header = request.headers.get("Origin");
  const normalized = normalizedOrigin(header);
  const origin = header === null ? "none" : normalized !== undefined && (await configured(env)).origins.has(normalized) ? normalized : "other";
  return { kind: "origin", id: `origin\n${origin}`, log: { origin } };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** An IPv6 address's eight 16-bit groups, or null when it is not one. */
function ipv6Groups(text) {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part, last) => {
    if (part === "") return [];
    const out = [];
    const pieces = part.split(":");
    for (const [i, p] of pieces.entries()) {
      const v4 = last && i === pieces.length - 1 ? IPV4.exec(p) : null;
      if (v4) {
        const b = v4.slice(1).map(Number);
        if (b.some((n) => n > 255)) return null;
        out.push(b[0] * 256 + b[1], b[2] * 256 + b[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
  if (!head || !tail) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const zeros = 8 - head.length - tail.length;
  return zeros >= 1 ? [...head, ...Array(zeros).fill(0), ...tail] : null;
}

/**
 * The client a limit counts, from CF-Connecting-IP: an IPv4 address as it
 * is; an IPv6 address by its /64 (the network one subscriber is given,
 * like one IPv4 address behind a home router), an IPv4-mapped one as its
 * IPv4 address; without the header "none"; anything else (never from
 * Cloudflare) one client for all such values, so inventing them gives no
 * fresh allowance.
 */
export function clientOf(header) {
  if (header === null) return "none";
  const text = header.trim();
  if (IPV4.test(text)) return text;
  const g = ipv6Groups(text);
  if (!g) return "unreadable";
  if (g.slice(0, 5).every((n) => n === 0) && g[5] === 0xffff) return `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
  return `${g.slice(0, 4).map((n) => n.toString(16)).join(":")}::/64`;
}

/**
 * The refusal of a request over a limit (429), or of any request when the
 * limiters are missing or fail (503); null when it may go on. The client's
 * limit is checked first and the key's only when it passes, so the
 * requests one client is refused never use up the key's allowance for
 * everyone else.
 */
export async function rateLimit(request, env) {
  const problem = rateLimitProblem(env);
  if (problem) return fail(503, problem.code, problem.message);
  const bucket = await bucketOf(request, env);
  const ip = clientOf(request.headers.get("CF-Connecting-IP"));
  const checks = [
    ["RATE_LIMIT_CLIENT", `${bucket.id}\n${ip}`, "too many requests from this client for this write key"],
    ["RATE_LIMIT_KEY", bucket.id, "too many requests for this write key"],
  ];
  for (const [name, text, why] of checks) {
    let outcome;
    try {
      // Hashed: a fixed length whatever the headers hold, and neither a
      // key nor an IP address in the limiter's storage.
      outcome = await env[name].limit({ key: await sha256(text) });
    } catch (e) {
      console.error(JSON.stringify({ phimask: "rate limit unavailable", limit: name, error: String(e?.message ?? e).slice(0, 120) }));
      return fail(503, "rate_limit_unavailable", "the rate limit could not be checked: send the request again", {}, { "Retry-After": "10" });
    }
    if (!outcome?.success) {
      // Never the key, never the IP address.
      console.log(JSON.stringify({ phimask: "rate limited", limit: name, bucket: bucket.kind, ...bucket.log }));
      const seconds = retryAfter(env);
      // Retry-After is no CORS-safelisted header: exposed, so browser SDKs can honour it.
      return fail(429, "rate_limited", `${why}: send them again after ${seconds} seconds`, {}, { "Retry-After": seconds, "Access-Control-Expose-Headers": "Retry-After" });
    }
  }
  return null;
}
