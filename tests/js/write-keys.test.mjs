// Write keys have kinds, inside workerd (Miniflare on the bundle `wrangler
// deploy --dry-run` produces) and under `wrangler dev`, sending to a real
// HTTP server on 127.0.0.1:
// - a browser key (WRITE_KEYS) is taken from anywhere, or, bound to
//   origins (`KEY@ORIGIN|ORIGIN`), only from a request whose Origin (else
//   Referer) is one of them, compared as the URL standard normalizes them;
// - a server key (SERVER_WRITE_KEYS) only as HTTP Basic auth from a
//   request without Origin: 401 in a body, 403 from a browser;
// - a secret that does not parse refuses everything (503), never widens;
// - a header key is refused before the body is read, a body key before
//   the engine runs: a refused request never reaches processRequest (the
//   bundled engine logs each call it gets, with the request's case
//   marker) and nothing of it reaches the destination;
// - no answer or log echoes a key or an origin list; refusals carry CORS,
//   and pages in Chromium read them.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { parseWriteKeys } from "../../www/worker/keys.js";
import { launchChromium } from "./chromium.mjs";
import { bundle, startDestination, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "write-keys-test-masking-key-0123456789abcd";
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const basic = (user, password = "") => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

const OPEN = "wk_open_test";
const WEB = "wk_web_test";
const LOCAL = "wk_local_test";
const SERVER = "sk_server_test";
// Uppercase and a default port in the secret: compared once normalized.
const WRITE_KEYS = `${OPEN}, ${WEB}@https://www.clinic.example|HTTPS://Clinic.Example:443, ${LOCAL}@http://127.0.0.1:8443`;
const SERVER_WRITE_KEYS = SERVER;
/** What no answer or log may ever hold: the keys, the origins of the secret. */
const SECRETS = [OPEN, WEB, LOCAL, SERVER, "clinic.example", "Clinic.Example", "127.0.0.1:8443"];

let dest;
let policy;
let built;

before(async () => {
  dest = await startDestination();
  policy = {
    version: 1, environment: "test", hipaa: true,
    allowlists: { event_properties: { plan: "allow" } },
    destinations: { analytics: { connection: "server-side", endpoint: dest.url } },
  };
  // The bundled engine logs every processRequest call with the case
  // marker of its body ("case-12"), so a test sees which requests
  // reached it.
  built = await bundle(policy, undefined, (text) => {
    const at = /processRequest\(body, call, maxBodyBytes, signals\) \{\n/.exec(text);
    const spy = `console.log(JSON.stringify({ phimaskTest: "engine call", marker: (new TextDecoder().decode(body).match(/case-[0-9]+|sentinel-[0-9]+/) ?? ["none"])[0] }));\n`;
    return text.slice(0, at.index + at[0].length) + spy + text.slice(at.index + at[0].length);
  });
});

after(async () => {
  await dest?.close();
  built?.cleanup();
});

/** POSTs to the Worker in workerd. */
async function send(worker, path, body, headers = {}) {
  const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : null, headers: res.headers };
}

const track = (userId, extra = {}) => ({ type: "track", event: "Booked", userId, properties: { plan: "gold" }, ...extra });
/** The events the destination received for `userId` (masked, or, if it ever leaked so, as sent). */
const got = (userId) => dest.delivered().filter((e) => e.userId === hmac(userId) || e.userId === userId);
/** The case markers the engine was called with. */
const engineCalls = (worker) => worker.logs.filter((l) => l.includes('"phimaskTest":"engine call"')).map((l) => JSON.parse(l).marker);

/** Asserts a refusal: its status and code, JSON with CORS, and nothing secret in it. */
function assertRefused(res, status, code, what) {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.equal(res.body.success, false, what);
  assert.equal(res.body.code, code, what);
  assert.equal(typeof res.body.error, "string", what);
  assert.equal(res.headers.get("access-control-allow-origin"), "*", `${what}: a browser can read the refusal`);
  for (const s of SECRETS) assert.ok(!res.text.includes(s), `${what}: the answer echoes ${s}`);
}

describe("write keys by kind and origin, in workerd", () => {
  let worker;
  let n = 0;
  let sentinels = 0;

  before(async () => {
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS, SERVER_WRITE_KEYS });
  });
  after(async () => {
    await worker?.mf.dispose();
  });

  /** One case: its body carries a fresh marker (in messageId and userId) and, if given, `writeKey`. */
  async function attempt({ headers = {}, bodyKey, batch = false }) {
    const marker = `case-${++n}`;
    const event = track(`u-${marker}`, { messageId: marker });
    const body = batch
      ? { batch: [{ ...event, ...(bodyKey !== undefined && { writeKey: bodyKey }) }] }
      : { ...event, ...(bodyKey !== undefined && { writeKey: bodyKey }) };
    const res = await send(worker, batch ? "/v1/batch" : "/v1/track", body, headers);
    return { ...res, marker };
  }

  /**
   * An accepted request after the cases, through the engine and to the
   * destination: whatever an earlier request would have made the engine
   * log or the destination receive has happened by then.
   */
  async function sentinel() {
    const marker = `sentinel-${++sentinels}`;
    const res = await send(worker, "/v1/track", track(`u-${marker}`, { messageId: marker }), { Authorization: basic(OPEN) });
    assert.equal(res.status, 200, res.text);
    await until(() => got(`u-${marker}`).length === 1 && engineCalls(worker).includes(marker), "the sentinel");
  }

  /** Every refused case: the engine never saw it, the destination got nothing of it. */
  async function assertNothingOf(markers) {
    await sentinel();
    const calls = engineCalls(worker);
    for (const m of markers) {
      assert.ok(!calls.includes(m), `${m} reached the engine`);
      assert.equal(got(`u-${m}`).length, 0, `${m} reached the destination`);
      assert.ok(!dest.requests.some((r) => r.body.includes(hmac(`u-${m}`)) || r.body.includes(m)), `${m} reached the destination`);
    }
  }

  test("accepted: an unbound browser key from anywhere, a bound one from its origins (normalized), a server key as Basic auth without Origin", async () => {
    const cases = [
      ["unbound key, Basic, no Origin", { headers: { Authorization: basic(OPEN) } }],
      // An auth scheme's name is case-insensitive (RFC 9110): a client writing "basic" is not refused.
      ["unbound key, the scheme written \"basic\"", { headers: { Authorization: basic(OPEN).replace("Basic", "basic") } }],
      ["server key, the scheme written \"BASIC\"", { headers: { Authorization: basic(SERVER).replace("Basic", "BASIC") } }],
      ["unbound key, Basic, any Origin", { headers: { Authorization: basic(OPEN), Origin: "https://evil.test" } }],
      ["unbound key in the body, any Origin", { bodyKey: OPEN, headers: { Origin: "https://evil.test" } }],
      ["unbound key in a batch's event, no Origin", { bodyKey: OPEN, batch: true }],
      ["bound key, Basic, Origin listed", { headers: { Authorization: basic(WEB), Origin: "https://www.clinic.example" } }],
      ["bound key, Basic, the second origin (listed upper-case with :443)", { headers: { Authorization: basic(WEB), Origin: "https://clinic.example" } }],
      ["bound key, Origin with an upper-case scheme and host", { headers: { Authorization: basic(WEB), Origin: "HTTPS://WWW.CLINIC.EXAMPLE" } }],
      ["bound key, Origin with the default port", { headers: { Authorization: basic(WEB), Origin: "https://clinic.example:443" } }],
      ["bound key, no Origin, Referer of a listed origin", { headers: { Authorization: basic(WEB), Referer: "https://www.clinic.example/book?step=2#top" } }],
      ["bound key in the body, Origin listed", { bodyKey: WEB, headers: { Origin: "https://clinic.example" } }],
      ["bound key in a batch's event, Referer listed", { bodyKey: WEB, batch: true, headers: { Referer: "https://clinic.example/" } }],
      ["bound key with a port, Origin with that port", { headers: { Authorization: basic(LOCAL), Origin: "http://127.0.0.1:8443" } }],
      ["server key, Basic, no Origin", { headers: { Authorization: basic(SERVER) } }],
      ["server key, Basic, no Origin, with a password and a Referer", { headers: { Authorization: basic(SERVER, "ignored"), Referer: "https://evil.test/" } }],
    ];
    const markers = [];
    for (const [what, c] of cases) {
      const res = await attempt(c);
      assert.equal(res.status, 200, `${what}: ${res.text}`);
      assert.deepEqual(res.body, { success: true }, what);
      markers.push(res.marker);
    }
    for (const m of markers) await until(() => got(`u-${m}`).length === 1 && engineCalls(worker).includes(m), `${m} at the destination`);
    const calls = engineCalls(worker);
    for (const m of markers) assert.equal(calls.filter((c) => c === m).length, 1, `${m}: one engine call`);
  });

  test("a bound key from anywhere else: 403 origin_not_allowed (look-alikes, scheme, port, path, null, Referer tricks), before the engine", async () => {
    const web = (headers) => ({ headers: { Authorization: basic(WEB), ...headers } });
    const cases = [
      ["no Origin and no Referer", web({})],
      ["Origin: null", web({ Origin: "null" })],
      ["Origin: null with a listed Referer (Origin decides)", web({ Origin: "null", Referer: "https://clinic.example/" })],
      ["another Origin with a listed Referer", web({ Origin: "https://evil.test", Referer: "https://clinic.example/" })],
      ["Origin with a trailing slash", web({ Origin: "https://clinic.example/" })],
      ["Origin with a path", web({ Origin: "https://clinic.example/book" })],
      ["a look-alike host (suffix)", web({ Origin: "https://clinic.example.evil.test" })],
      ["a look-alike host (prefix)", web({ Origin: "https://evilclinic.example" })],
      ["a sub-domain not listed", web({ Origin: "https://portal.clinic.example" })],
      ["http instead of https", web({ Origin: "http://clinic.example" })],
      ["another port", web({ Origin: "https://clinic.example:8443" })],
      ["credentials in Origin", web({ Origin: "https://clinic.example@evil.test" })],
      ["two origins in one header", web({ Origin: "https://clinic.example, https://evil.test" })],
      ["a percent-escaped host", web({ Origin: "https://clinic%2Eexample" })],
      ["Referer that is not a URL", web({ Referer: "clinic.example" })],
      ["a relative Referer", web({ Referer: "/book" })],
      ["Referer with credentials", web({ Referer: "https://user:pass@clinic.example/book" })],
      ["Referer whose credentials look like the host", web({ Referer: "https://clinic.example@evil.test/book" })],
      ["Referer naming the origin in its query", web({ Referer: "https://evil.test/?r=https://clinic.example" })],
      ["Referer of another scheme", web({ Referer: "file:///clinic.example/index.html" })],
      ["the port-bound key without its port", { headers: { Authorization: basic(LOCAL), Origin: "http://127.0.0.1" } }],
      ["the port-bound key on another port", { headers: { Authorization: basic(LOCAL), Origin: "http://127.0.0.1:8444" } }],
      ["the port-bound key over https", { headers: { Authorization: basic(LOCAL), Origin: "https://127.0.0.1:8443" } }],
      ["bound key in the body, no Origin", { bodyKey: WEB }],
      ["bound key in the body, another Origin", { bodyKey: WEB, headers: { Origin: "https://evil.test" } }],
      ["bound key in a batch's event, a look-alike Referer", { bodyKey: WEB, batch: true, headers: { Referer: "https://clinic.example.evil.test/" } }],
    ];
    const markers = [];
    for (const [what, c] of cases) {
      const res = await attempt(c);
      assertRefused(res, 403, "origin_not_allowed", what);
      markers.push(res.marker);
    }
    await assertNothingOf(markers);
  });

  test("server keys: 401 server_key_in_body, 403 server_key_from_browser; a key with an origin glued on is unknown", async () => {
    const cases = [
      ["server key in the body", { bodyKey: SERVER }, 401, "server_key_in_body"],
      ["server key in the body, with an Origin", { bodyKey: SERVER, headers: { Origin: "https://clinic.example" } }, 401, "server_key_in_body"],
      ["server key in a batch's event", { bodyKey: SERVER, batch: true }, 401, "server_key_in_body"],
      ["server key, Basic, from a browser", { headers: { Authorization: basic(SERVER), Origin: "https://clinic.example" } }, 403, "server_key_from_browser"],
      ["server key, Basic, Origin: null", { headers: { Authorization: basic(SERVER), Origin: "null" } }, 403, "server_key_from_browser"],
      ["server key upper-cased", { headers: { Authorization: basic(SERVER.toUpperCase()) } }, 401, "invalid_write_key"],
      ["a bound key with its origin in the Basic user", { headers: { Authorization: basic(`${WEB}@https://clinic.example`), Origin: "https://clinic.example" } }, 401, "invalid_write_key"],
      ["an unbound key followed by @ in the Basic user", { headers: { Authorization: basic(`${OPEN}@`) } }, 401, "invalid_write_key"],
      ["the server key followed by @ in the Basic user", { headers: { Authorization: basic(`${SERVER}@https://clinic.example`) } }, 401, "invalid_write_key"],
      ["a bound key with its origin in the body", { bodyKey: `${WEB}@https://clinic.example`, headers: { Origin: "https://clinic.example" } }, 401, "invalid_write_key"],
      ["the whole secret as the key", { bodyKey: WRITE_KEYS }, 401, "invalid_write_key"],
      ["a wrong Basic key and a good body key", { bodyKey: OPEN, headers: { Authorization: basic("wrong-key") } }, 401, "invalid_write_key"],
      ["a refused Basic key is not passed over for the body's", { bodyKey: OPEN, headers: { Authorization: basic(WEB), Origin: "https://evil.test" } }, 403, "origin_not_allowed"],
    ];
    const markers = [];
    for (const [what, c, status, code] of cases) {
      const res = await attempt(c);
      assertRefused(res, status, code, what);
      markers.push(res.marker);
    }
    await assertNothingOf(markers);
    // The operator learns a server key is exposed, without the key.
    const said = () => worker.logs.filter((l) => l.includes("server write key refused")).map((l) => JSON.parse(l).code);
    await until(() => said().length >= 5, "the server-key log lines");
    assert.deepEqual(said().sort(), ["server_key_from_browser", "server_key_from_browser", "server_key_in_body", "server_key_in_body", "server_key_in_body"]);
  });

  test("a header key is refused before the body is read (403 or 401, not the body's 413, 415 or 400); an unknown encoding before the size", async () => {
    const refused = { Authorization: basic(WEB), Origin: "https://evil.test" };
    const server = { Authorization: basic(SERVER), Origin: "https://clinic.example" };
    const cases = [
      ["over the limit by Content-Length", refused, JSON.stringify(track("u-big", { properties: { pad: "x".repeat(40_000) } })), {}, 403, "origin_not_allowed"],
      ["an unsupported encoding", refused, "{}", { "Content-Encoding": "br" }, 403, "origin_not_allowed"],
      ["a body that does not inflate", refused, "not gzip at all", { "Content-Encoding": "gzip" }, 403, "origin_not_allowed"],
      ["a server key from a browser, not JSON", server, "{not json", {}, 403, "server_key_from_browser"],
      ["an unknown key, a gzip bomb", { Authorization: basic("nope") }, gzipSync(Buffer.alloc(50 * 1024 * 1024)), { "Content-Encoding": "gzip" }, 401, "invalid_write_key"],
    ];
    for (const [what, headers, body, extra, status, code] of cases) {
      const res = await send(worker, "/v1/track", body, { ...headers, ...extra });
      assertRefused(res, status, code, what);
    }
    // A body key is read first: the same over-limit body with one is 413.
    const big = await send(worker, "/v1/track", JSON.stringify(track("u-big", { writeKey: WEB, properties: { pad: "x".repeat(40_000) } })), { Origin: "https://evil.test" });
    assertRefused(big, 413, "event_too_large", "a body key in an over-limit body");
    // A good key, a body over the limit in an encoding phimask does not
    // read: 415 first, since sending it smaller would not help.
    // Over HTTP, so the request declares its Content-Length.
    const res = await fetch(new URL("/v1/track", worker.url), {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic(OPEN), "Content-Encoding": "br" },
      body: JSON.stringify(track("u-big", { properties: { pad: "x".repeat(40_000) } })),
    });
    const text = await res.text();
    assertRefused({ status: res.status, text, body: JSON.parse(text), headers: res.headers }, 415, "unsupported_encoding", "an unsupported encoding over the limit");
  });

  test("CORS preflights stay open to every origin; no log holds a key or an origin of the secret", async () => {
    const pre = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "OPTIONS",
      headers: { Origin: "https://evil.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    const logs = worker.logs.join("\n");
    for (const s of SECRETS) assert.ok(!logs.includes(s), `a log holds ${s}`);
  });
});

describe("the secrets as operators write them, in workerd", () => {
  test("blanks around entries, keys, '@' and '|', and empty entries: the keys work as written", async () => {
    const w = await startWorker(built.script, {
      PHI_MASKING_KEY: KEY,
      WRITE_KEYS: `\n  ${OPEN} ,, ${WEB} @ https://www.clinic.example |  https://clinic.example ,\n`,
      SERVER_WRITE_KEYS: ` ${SERVER} ,\t`,
    });
    try {
      const ok = [
        [{ Authorization: basic(OPEN) }, "u-ws-open"],
        [{ Authorization: basic(WEB), Origin: "https://clinic.example" }, "u-ws-web"],
        [{ Authorization: basic(SERVER) }, "u-ws-server"],
      ];
      for (const [headers, userId] of ok) assert.equal((await send(w, "/v1/track", track(userId), headers)).status, 200, userId);
      assertRefused(await send(w, "/v1/track", track("u-ws-refused"), { Authorization: basic(WEB), Origin: "https://evil.test" }), 403, "origin_not_allowed", "another origin");
      // A key is never matched with its blanks.
      assertRefused(await send(w, "/v1/track", track("u-ws-blank", { writeKey: ` ${OPEN}` })), 401, "invalid_write_key", "a key with a blank");
      for (const [, userId] of ok) await until(() => got(userId).length === 1, userId);
      assert.equal((await (await w.mf.dispatchFetch("http://edge.test/health")).json()).ok, true);
    } finally {
      await w.mf.dispose();
    }
  });

  test("thousands of entries: each bound key only from its own origin; a repeated key among them refuses everything", async () => {
    const count = 4000;
    const entries = Array.from({ length: count }, (_, i) => `wk_many_${i}@https://site-${i}.example|https://www.site-${i}.example`);
    const servers = Array.from({ length: 1000 }, (_, i) => `sk_many_${i}`);
    const w = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: entries.join(","), SERVER_WRITE_KEYS: servers.join(",") });
    try {
      const cases = [
        [{ Authorization: basic(`wk_many_${count - 1}`), Origin: `https://site-${count - 1}.example` }, 200],
        [{ Authorization: basic("wk_many_0"), Origin: "https://www.site-0.example" }, 200],
        [{ Authorization: basic("wk_many_2000"), Origin: "https://site-2000.example" }, 200],
        [{ Authorization: basic("sk_many_999") }, 200],
        [{ Authorization: basic(`wk_many_${count - 1}`), Origin: `https://site-${count - 2}.example` }, 403, "origin_not_allowed"],
        [{ Authorization: basic("wk_many_1"), Origin: "https://site-10.example" }, 403, "origin_not_allowed"],
        [{ Authorization: basic(`wk_many_${count}`), Origin: `https://site-${count}.example` }, 401, "invalid_write_key"],
        [{ Authorization: basic("sk_many_5"), Origin: "https://site-5.example" }, 403, "server_key_from_browser"],
      ];
      for (const [i, [headers, status, code]] of cases.entries()) {
        const res = await send(w, "/v1/track", track(`u-many-${i}`), headers);
        if (status === 200) assert.equal(res.status, 200, res.text);
        else assert.deepEqual([res.status, res.body.code], [status, code], `case ${i}`);
      }
      for (const i of [0, 1, 2, 3]) await until(() => got(`u-many-${i}`).length === 1, `case ${i}`);
      for (const i of [4, 5, 6, 7]) assert.equal(got(`u-many-${i}`).length, 0);
    } finally {
      await w.mf.dispose();
    }
    // The same list with one key repeated far down, with another origin:
    // taking either entry would widen that key, so nothing is accepted.
    const repeated = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: [...entries, "wk_many_7@https://evil.test"].join(",") });
    try {
      const health = await repeated.mf.dispatchFetch("http://edge.test/health");
      assert.equal(health.status, 503);
      for (const headers of [{ Origin: "https://site-7.example" }, { Origin: "https://evil.test" }]) {
        const res = await send(repeated, "/v1/track", track("u-many-repeated"), { Authorization: basic("wk_many_7"), ...headers });
        assert.equal(res.status, 503, res.text);
      }
      assert.equal(got("u-many-repeated").length, 0);
    } finally {
      await repeated.mf.dispose();
    }
  });

  // Each one would widen a key, or drop a binding, if taken any other way
  // than refusing everything; with what the refusal must say of it.
  const MALFORMED = [
    ["an empty key before '@'", { WRITE_KEYS: `${OPEN}, @https://clinic.example` }, "has no key"],
    ["'@' with nothing after", { WRITE_KEYS: `${OPEN}, ${WEB}@` }, "has \"@\" and no origin after it"],
    ["'@' with blanks after", { WRITE_KEYS: `${OPEN}, ${WEB}@   ` }, "has \"@\" and no origin after it"],
    ["an origin with a trailing slash", { WRITE_KEYS: `${OPEN}, ${WEB}@https://clinic.example/` }, "is not an origin"],
    ["an origin with a path", { WRITE_KEYS: `${OPEN}, ${WEB}@https://clinic.example/book` }, "is not an origin"],
    ["an origin without a scheme", { WRITE_KEYS: `${OPEN}, ${WEB}@clinic.example` }, "is not an origin"],
    ["an origin of another scheme", { WRITE_KEYS: `${OPEN}, ${WEB}@ftp://clinic.example` }, "is not an origin"],
    ["a wildcard origin", { WRITE_KEYS: `${OPEN}, ${WEB}@https://*.clinic.example` }, "is not an origin"],
    ["an empty origin after '|'", { WRITE_KEYS: `${OPEN}, ${WEB}@https://clinic.example|` }, "is not an origin"],
    ["a port out of range", { WRITE_KEYS: `${OPEN}, ${WEB}@https://clinic.example:99999` }, "is not an origin"],
    ["a key listed unbound and bound", { WRITE_KEYS: `${OPEN}, ${WEB}, ${WEB}@https://clinic.example` }, "entry 3 of WRITE_KEYS repeats the key of entry 2 of WRITE_KEYS"],
    ["a key with a blank inside", { WRITE_KEYS: `${OPEN}, wk web@https://clinic.example` }, "entry 2 of WRITE_KEYS has a key with a blank"],
    ["a key in both secrets", { WRITE_KEYS: `${OPEN}, ${WEB}@https://clinic.example`, SERVER_WRITE_KEYS: `${SERVER}, ${OPEN}` }, "entry 2 of SERVER_WRITE_KEYS is also entry 1 of WRITE_KEYS"],
    ["a server key bound to an origin", { WRITE_KEYS: OPEN, SERVER_WRITE_KEYS: `${SERVER}@https://clinic.example` }, "entry 1 of SERVER_WRITE_KEYS has \"@\": server keys are not bound to origins"],
  ];

  test("a malformed secret refuses everything with 503 (and /health says 503): nothing is accepted, nothing echoed", async () => {
    for (const [what, secrets] of MALFORMED) {
      const w = await startWorker(built.script, { PHI_MASKING_KEY: KEY, ...secrets });
      try {
        const health = await w.mf.dispatchFetch("http://edge.test/health");
        const text = await health.text();
        assert.equal(health.status, 503, what);
        assert.equal(JSON.parse(text).ok, false, what);
        for (const s of SECRETS) assert.ok(!text.includes(s), `${what}: /health echoes ${s}`);
        // Keys that a lenient reading would take: none is.
        const tries = [
          { Authorization: basic(OPEN) },
          { Authorization: basic(WEB), Origin: "https://clinic.example" },
          { Authorization: basic(WEB), Origin: "https://evil.test" },
          { Authorization: basic(SERVER) },
        ];
        for (const headers of tries) {
          const res = await send(w, "/v1/track", track("u-malformed"), headers);
          assert.equal(res.status, 503, `${what}: ${res.text}`);
          // /health's own list, and so the tracking routes, name what is
          // wrong with the write keys.
          assert.equal(res.body.code, "invalid_write_keys", `${what}: ${res.body.code}`);
          assert.equal(res.headers.get("access-control-allow-origin"), "*");
          for (const s of SECRETS) assert.ok(!res.text.includes(s), `${what}: the answer echoes ${s}`);
        }
        const logs = w.logs.join("\n");
        for (const s of SECRETS) assert.ok(!logs.includes(s), `${what}: a log holds ${s}`);
      } finally {
        await w.mf.dispose();
      }
    }
    assert.equal(got("u-malformed").length, 0);
  });

  test("what a malformed secret is refused with names the entry and the mistake, never its text", () => {
    for (const [what, { WRITE_KEYS: browser, SERVER_WRITE_KEYS: server }, mistake] of MALFORMED) {
      const { entries, problem } = parseWriteKeys(browser, server);
      assert.equal(entries, undefined, what);
      assert.equal(problem.code, "invalid_write_keys", what);
      assert.match(problem.message, /^not configured: .*(entry \d+ of (SERVER_)?WRITE_KEYS)/, what);
      // The operator is told which mistake to fix, not just that there is one.
      assert.ok(problem.message.includes(mistake), `${what}: ${problem.message}`);
      for (const s of SECRETS) assert.ok(!problem.message.includes(s), `${what}: ${problem.message}`);
    }
    assert.equal(parseWriteKeys(" , ", "").problem.code, "no_write_keys");
    assert.equal(parseWriteKeys("", ` ${SERVER} `).entries.length, 1, "server keys alone are a configuration");
  });
});

describe("under wrangler dev", () => {
  let dev;

  before(async () => {
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: KEY, WRITE_KEYS: `${WEB}@https://www.clinic.example|https://clinic.example`, SERVER_WRITE_KEYS: SERVER });
  });
  after(async () => {
    await dev?.stop();
  });

  const post = async (userId, headers) => {
    const res = await fetch(`${dev.url}/v1/track`, { method: "POST", headers: { "Content-Type": "text/plain", ...headers }, body: JSON.stringify(track(userId)) });
    const text = await res.text();
    return { status: res.status, text, body: JSON.parse(text), headers: res.headers };
  };

  test("a bound browser key: accepted from its origin, 403 from another and from a look-alike; a server key only without Origin", async () => {
    assert.equal((await post("u-dev-allowed", { Authorization: basic(WEB), Origin: "https://clinic.example" })).status, 200);
    assertRefused(await post("u-dev-other", { Authorization: basic(WEB), Origin: "https://evil.test" }), 403, "origin_not_allowed", "another origin");
    assertRefused(await post("u-dev-lookalike", { Authorization: basic(WEB), Origin: "https://clinic.example.evil.test" }), 403, "origin_not_allowed", "a look-alike");
    assertRefused(await post("u-dev-server-browser", { Authorization: basic(SERVER), Origin: "https://clinic.example" }), 403, "server_key_from_browser", "a server key from a browser");
    assert.equal((await post("u-dev-server", { Authorization: basic(SERVER) })).status, 200);
    await until(() => got("u-dev-allowed").length === 1 && got("u-dev-server").length === 1, "the accepted events", 30_000);
    for (const u of ["u-dev-other", "u-dev-lookalike", "u-dev-server-browser"]) assert.equal(got(u).length, 0, u);
    const output = dev.output();
    for (const s of [WEB, SERVER, "https://www.clinic.example|"]) assert.ok(!output.includes(s), `wrangler dev's output holds ${s}`);
  });
});

describe("from pages in Chromium", () => {
  let worker;
  let browser;
  const sites = [];
  const pages = {};

  before(async () => {
    // Two sites on two origins (ports) of 127.0.0.1; the key is bound to the first.
    for (let i = 0; i < 2; i++) {
      const site = createServer((req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>a clinic's site</title>"));
      await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
      sites.push(site);
    }
    const [clinic, other] = sites.map((site) => `http://127.0.0.1:${site.address().port}`);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: `${WEB}@${clinic}`, SERVER_WRITE_KEYS: SERVER });
    browser = await launchChromium();
    for (const [name, origin] of [["clinic", clinic], ["other", other]]) {
      pages[name] = await browser.newPage();
      await pages[name].goto(`${origin}/`);
    }
  });
  after(async () => {
    await browser?.close();
    for (const site of sites) site.close();
    await worker?.mf.dispose();
  });

  /** fetch() from a page: { status, body } or { error } when the browser blocks it. */
  const from = (name, init) => pages[name].evaluate(async ({ url, init }) => {
    try {
      const res = await fetch(url, init);
      return { status: res.status, body: await res.json() };
    } catch (e) {
      return { error: String(e) };
    }
  }, { url: new URL("/v1/track", worker.url).href, init });
  // analytics.js: text/plain, the key in the body, no preflight.
  const ajs = (userId) => ({ method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ ...track(userId), writeKey: WEB }), keepalive: true });
  // RudderStack's SDK: Basic auth and JSON, preflighted.
  const basicAuth = (userId, key = WEB) => ({ method: "POST", headers: { Authorization: basic(key), "Content-Type": "application/json" }, body: JSON.stringify(track(userId)) });

  test("a bound key: accepted from its origin, 403 origin_not_allowed (readable) from another; a server key 403 from either", async () => {
    assert.deepEqual(await from("clinic", ajs("u-page-ajs")), { status: 200, body: { success: true } });
    assert.deepEqual(await from("clinic", basicAuth("u-page-basic")), { status: 200, body: { success: true } });
    for (const [name, init, code] of [
      ["other", ajs("u-other-ajs"), "origin_not_allowed"],
      ["other", basicAuth("u-other-basic"), "origin_not_allowed"],
      ["clinic", basicAuth("u-page-server", SERVER), "server_key_from_browser"],
      ["other", basicAuth("u-other-server", SERVER), "server_key_from_browser"],
    ]) {
      const res = await from(name, init);
      assert.equal(res.status, 403, `${name}: ${JSON.stringify(res)}`);
      assert.equal(res.body.code, code);
    }
    await until(() => got("u-page-ajs").length === 1 && got("u-page-basic").length === 1, "the clinic's events");
    // Sent after the refusals, and arrived: nothing of them would come later.
    assert.equal((await from("clinic", ajs("u-page-last"))).status, 200);
    await until(() => got("u-page-last").length === 1, "the last event");
    for (const u of ["u-other-ajs", "u-other-basic", "u-page-server", "u-other-server"]) assert.equal(got(u).length, 0, u);
  });
});
