// Write keys, and where each may be used. Browser keys (the WRITE_KEYS
// secret) are public: anyone can read one from a clinic's page, so one may
// be bound to the origins allowed to use it
// (`wk_web@https://www.clinic.example|https://clinic.example`). Server keys
// (SERVER_WRITE_KEYS) are secret: accepted only as HTTP Basic auth from a
// request no browser sent (no Origin header). A secret that does not parse
// refuses everything: a mistake in it must never widen access.
//
// Nothing here returns or logs a key or an origin list.

/** Bytes of a SHA-256 digest: the form keys are compared in. */
const DIGEST_BYTES = 32;

/**
 * An origin as written in WRITE_KEYS or sent as `Origin`:
 * scheme://host[:port] and nothing else — no path (not even "/"), query,
 * fragment, credentials, percent-escapes or spaces. Browsers send exactly
 * this form; anything else is refused rather than guessed at.
 */
const ORIGIN_SHAPE = /^https?:\/\/[^/?#@\\%\s]+$/i;

/**
 * `text` as the URL standard serializes its origin (scheme and host
 * lower-cased, a default port dropped, IDN hosts in punycode), or
 * undefined when it is not an http(s) origin of that shape.
 */
export function normalizedOrigin(text) {
  if (typeof text !== "string" || !ORIGIN_SHAPE.test(text)) return undefined;
  try {
    const url = new URL(text);
    if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/**
 * The origin a request was sent from: its `Origin` header, or without
 * one the origin of its `Referer`; undefined when neither names an
 * http(s) origin (`Origin: null`, a Referer that is not an absolute
 * http(s) URL, or one with credentials, which browsers never send).
 */
export function requestOrigin(request) {
  const origin = request.headers.get("Origin");
  if (origin !== null) return normalizedOrigin(origin);
  const referer = request.headers.get("Referer");
  if (referer === null) return undefined;
  try {
    const url = new URL(referer);
    if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
    if (url.username !== "" || url.password !== "") return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/** A key as written in a secret: no blank, control character, or the separators "@" and "|". */
const KEY_SHAPE = /^[^\s\p{Cc}@|]+$/u;

/** The refusal of a secret that does not parse: it names an entry by its place, never by its text. */
const misconfigured = (message) => ({
  problem: { code: "invalid_write_keys", message: `not configured: ${message}; nothing is accepted until it is fixed` },
});

/** The entries of a comma-separated secret, trimmed; blank entries ignored (a trailing comma). */
const entriesOf = (text) => String(text ?? "").split(",").map((e) => e.trim()).filter(Boolean);

/**
 * The write keys of both secrets: `{ entries: [{ key, kind, origins }] }`
 * (`origins` a Set of normalized origins, or null for an unbound browser
 * key), or `{ problem: { code, message } }` when the secrets refuse
 * everything.
 */
export function parseWriteKeys(browserText, serverText) {
  const entries = [];
  const seen = new Map();
  for (const [i, entry] of entriesOf(browserText).entries()) {
    const where = `entry ${i + 1} of WRITE_KEYS`;
    const at = entry.indexOf("@");
    const key = (at < 0 ? entry : entry.slice(0, at)).trim();
    if (key === "") return misconfigured(`${where} has no key (KEY or KEY@ORIGIN|ORIGIN…)`);
    if (!KEY_SHAPE.test(key)) return misconfigured(`${where} has a key with a blank, a control character or "|" in it`);
    let origins = null;
    if (at >= 0) {
      const listed = entry.slice(at + 1).split("|").map((o) => o.trim());
      if (listed.length === 1 && listed[0] === "") return misconfigured(`${where} has "@" and no origin after it`);
      origins = new Set();
      for (const [j, text] of listed.entries()) {
        const origin = normalizedOrigin(text);
        // A wildcard would parse as a literal host that never matches: say so.
        if (origin === undefined || text.includes("*")) {
          return misconfigured(`origin ${j + 1} of ${where} is not an origin: write scheme://host[:port] (http or https, no path, no trailing "/", no wildcard)`);
        }
        origins.add(origin);
      }
    }
    if (seen.has(key)) return misconfigured(`${where} repeats the key of ${seen.get(key).where}: list each key once, with all its origins`);
    seen.set(key, { where, kind: "browser" });
    entries.push({ key, kind: "browser", origins });
  }
  for (const [i, key] of entriesOf(serverText).entries()) {
    const where = `entry ${i + 1} of SERVER_WRITE_KEYS`;
    if (key.includes("@")) return misconfigured(`${where} has "@": server keys are not bound to origins (only browser keys in WRITE_KEYS are)`);
    if (!KEY_SHAPE.test(key) || key.includes(":")) return misconfigured(`${where} has a blank, a control character, "|" or ":" in it (it is sent as the HTTP Basic user name)`);
    if (seen.has(key)) {
      const first = seen.get(key);
      return misconfigured(first.kind === "browser"
        ? `${where} is also ${first.where}: a key is either a browser key or a server key, never both`
        : `${where} repeats the key of ${first.where}: list each key once`);
    }
    seen.set(key, { where, kind: "server" });
    entries.push({ key, kind: "server", origins: null });
  }
  if (entries.length === 0) {
    return { problem: { code: "no_write_keys", message: "not configured: set the WRITE_KEYS secret (browser write keys, comma-separated) or SERVER_WRITE_KEYS (server write keys)" } };
  }
  return { entries };
}

/** The last secrets parsed, and what they gave: a secret changes rarely, requests come often. */
let cached = { browser: undefined, server: undefined, config: null };

/** The parsed write keys of `env` (see parseWriteKeys), parsed once per value of the secrets. */
export function writeKeyConfig(env) {
  const browser = String(env.WRITE_KEYS ?? "");
  const server = String(env.SERVER_WRITE_KEYS ?? "");
  if (cached.config === null || cached.browser !== browser || cached.server !== server) {
    cached = { browser, server, config: parseWriteKeys(browser, server) };
  }
  return cached.config;
}

/**
 * Why the write-key secrets refuse every request, as `{ code, message }`
 * (`no_write_keys`, `invalid_write_keys`), or null when they are usable.
 * For /health's list of problems.
 */
export function writeKeyProblem(env) {
  return writeKeyConfig(env).problem ?? null;
}

/** Every key the Worker accepts (browser and server); none while the secrets are not usable. */
export function writeKeys(env) {
  const config = writeKeyConfig(env);
  return config.problem ? [] : config.entries.map((e) => e.key);
}

const sha256 = async (text) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

/** The digests of a config's keys, one after another, made once per config. */
function digestsOf(config) {
  config.digests ??= Promise.all(config.entries.map((e) => sha256(e.key))).then((list) => {
    const table = new Uint8Array(list.length * DIGEST_BYTES);
    list.forEach((d, i) => table.set(d, i * DIGEST_BYTES));
    return table;
  });
  return config.digests;
}

/**
 * The entry of `key`, or undefined. Digests are compared, every one of
 * them, without stopping at a match, so the time taken says nothing of
 * how much of a key was right or where it stands in the list.
 */
async function lookup(key, config) {
  const [k, table] = await Promise.all([sha256(key), digestsOf(config)]);
  let found = -1;
  for (let i = 0; i < config.entries.length; i++) {
    let diff = 0;
    for (let j = 0; j < DIGEST_BYTES; j++) diff |= k[j] ^ table[i * DIGEST_BYTES + j];
    found = diff === 0 ? i : found;
  }
  return found < 0 ? undefined : config.entries[found];
}

/** Whether `key` is one of `keys`, compared in constant time (the operator key uses it too). */
export async function known(key, keys) {
  const k = await sha256(key);
  let found = false;
  for (const candidate of keys) {
    const c = await sha256(candidate);
    let diff = 0;
    for (let i = 0; i < k.length; i++) diff |= k[i] ^ c[i];
    found = found || diff === 0;
  }
  return found;
}

/**
 * An Authorization header longer than this is malformed: a write key's is
 * far shorter, and the rate limits count a longer one as an unknown key's,
 * so a good key padded past it must never be accepted.
 */
export const MAX_AUTHORIZATION = 4096;

/**
 * The write key of the Authorization header: `{ key }`, `{ absent: true }`
 * without the header, or `{ malformed: true }` when it is not HTTP Basic
 * with a non-empty user name (another scheme, not base64, not UTF-8, over
 * MAX_AUTHORIZATION characters).
 */
export function headerWriteKey(request) {
  const header = request.headers.get("Authorization");
  if (header === null) return { absent: true };
  if (header.length > MAX_AUTHORIZATION) return { malformed: true };
  const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!m) return { malformed: true };
  try {
    const decoded = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)));
    const user = decoded.split(":")[0];
    return user === "" ? { malformed: true } : { key: user };
  } catch {
    return { malformed: true };
  }
}

/**
 * Whether `request` may use `key`, sent `from` "header" (HTTP Basic) or
 * "body" (`writeKey`): null when it may, else the refusal
 * `{ status, code, error }`. `config` is a usable writeKeyConfig.
 */
export async function keyRefusal(key, from, request, config) {
  const entry = await lookup(key, config);
  if (entry === undefined) return { status: 401, code: "invalid_write_key", error: "unknown write key" };
  if (entry.kind === "server") {
    if (from !== "header") {
      console.error(JSON.stringify({ phimask: "server write key refused", code: "server_key_in_body", note: "a server key was sent in a request body: if it came from a page or an app, it is public now; rotate it" }));
      return { status: 401, code: "server_key_in_body", error: "a server write key is accepted only as the HTTP Basic user name, never as writeKey in the body" };
    }
    if (request.headers.get("Origin") !== null) {
      console.error(JSON.stringify({ phimask: "server write key refused", code: "server_key_from_browser", note: "a server key was sent from a browser: it is public now; rotate it" }));
      return { status: 403, code: "server_key_from_browser", error: "a server write key is not accepted from a browser (a request with an Origin header): use a browser write key" };
    }
    return null;
  }
  if (entry.origins === null) return null;
  const origin = requestOrigin(request);
  if (origin === undefined || !entry.origins.has(origin)) {
    return { status: 403, code: "origin_not_allowed", error: "this write key is accepted only from the origins it is bound to, by the request's Origin header (or its Referer without one)" };
  }
  return null;
}
