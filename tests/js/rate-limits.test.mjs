// Rate limits at the edge: RATE_LIMIT_CLIENT per (write key, client IP)
// and RATE_LIMIT_KEY per write key (the Origin, for a browser whose key is
// in the body), checked from the headers before the body is read. Over a
// limit: 429 rate_limited with Retry-After and CORS, nothing of the
// request delivered or processed. Under Miniflare with low limits, and
// under `wrangler dev` with real @segment/analytics-next in headless
// Chromium: a burst over the limit is retried on the 429 and arrives
// whole. Without its bindings the Worker refuses and /health says why;
// with a binding that fails or answers nothing, it refuses too.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { build } from "esbuild";
import { launchChromium } from "./chromium.mjs";
import { bundle, root, sleep, startDestination, startWorker, startWranglerDev, until, wranglerTables } from "./worker-harness.mjs";

const MASKING_KEY = "rate-limits-masking-key-0123456789abcdef";
// A key or two of its own for each test: a window holds what earlier tests sent.
const KEYS = Array.from({ length: 10 }, (_, i) => `wk_rl_${i}`);
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const policyFor = (endpoint) => ({
  version: 1, environment: "rate-limit-test", hipaa: true,
  allowlists: { event_properties: { n: "allow" } },
  events: { "Burst Event": "allow", "Rate Probe": "allow", "*": "drop" },
  destinations: { warehouse: { connection: "server-side", endpoint, restrict_phi: false, baa: true } },
});

/**
 * Waits, if need be, for a fresh window of the limiter (fixed windows of
 * `period` seconds, as the local binding counts), so a burst of a test
 * never straddles two windows: a wait, never a measurement.
 */
async function freshWindow(period, needMs) {
  const into = Date.now() % (period * 1000);
  if (into > period * 1000 - needMs) await sleep(period * 1000 - into + 50);
}

describe("rate limits under Miniflare", () => {
  // Low limits, a 60 s window: 3 requests per (key, IP), 5 per key.
  const LIMITS = { RATE_LIMIT_CLIENT: { limit: 3, period: 60 }, RATE_LIMIT_KEY: { limit: 5, period: 60 } };
  let dest;
  let built;
  let worker;
  let n = 0;

  /** Sends one track event; resolves to { status, headers, body, messageId }. */
  async function send({ key, ip, headers = {}, bodyKey = false, event = "Rate Probe" } = {}) {
    const messageId = `rl-${++n}`;
    const payload = { type: "track", event, userId: `u-${n}`, messageId, properties: { n } };
    if (bodyKey) payload.writeKey = bodyKey;
    const res = await fetch(`${worker.url}v1/track`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(key && { Authorization: basic(key) }), ...(ip && { "CF-Connecting-IP": ip }), ...headers },
      body: JSON.stringify(payload),
    });
    return { status: res.status, headers: res.headers, body: await res.json(), messageId };
  }
  const requestLines = () => worker.logs.filter((l) => l.includes('"phimask":"request"')).length;
  const delivered = () => dest.delivered().map((e) => e.messageId);
  /**
   * Sends a sentinel (its own key and IP) and waits for it: whatever an
   * earlier request would have delivered has arrived by then.
   */
  let sentinels = 0;
  async function sentinel() {
    const ip = `198.51.100.${++sentinels}`;
    // After a refused request whose body was never read, the Worker closes
    // that connection; a client reusing it meets a reset and sends again,
    // as SDKs do on a network error.
    const s = await send({ key: KEYS[5], ip }).catch((e) => {
      if (e?.cause?.code !== "ECONNRESET") throw e;
      return send({ key: KEYS[5], ip });
    });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    await until(() => delivered().includes(s.messageId), "the sentinel");
    return s;
  }

  before(async () => {
    dest = await startDestination();
    built = await bundle(policyFor(dest.url));
    // A key bound to https://clinic.example gives that Origin a bucket of its own.
    worker = await startWorker(built.script, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: [...KEYS, "wk_rl_site@https://clinic.example"].join(",") }, { ratelimits: LIMITS });
  });

  after(async () => {
    await worker?.mf.dispose();
    await dest?.close();
    built?.cleanup();
  });

  test("the 4th request of a key from one client is 429 with Retry-After and CORS; nothing of it is delivered or processed", async () => {
    await freshWindow(60, 15_000);
    const linesBefore = requestLines();
    const accepted = [];
    for (let i = 0; i < 3; i++) {
      const r = await send({ key: KEYS[0], ip: "203.0.113.1" });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      accepted.push(r.messageId);
    }
    const refused = await send({ key: KEYS[0], ip: "203.0.113.1" });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.success, false);
    assert.equal(refused.body.code, "rate_limited");
    assert.equal(refused.headers.get("retry-after"), "60", "the binding's period");
    assert.equal(refused.headers.get("access-control-allow-origin"), "*", "a browser may read the answer");
    assert.match(refused.headers.get("access-control-expose-headers") ?? "", /retry-after/i, "and its Retry-After");
    assert.doesNotMatch(JSON.stringify(refused.body), /wk_rl/);
    // Only the accepted events arrive, and only they were processed.
    await sentinel();
    for (const id of accepted) assert.ok(delivered().includes(id), id);
    assert.ok(!delivered().includes(refused.messageId), "a refused request reaches no destination");
    assert.equal(requestLines() - linesBefore, 3 + 1, "one engine log line per accepted request (and the sentinel's), none for the refused");
    // The refusal is logged without the key or the client's address.
    const line = worker.logs.find((l) => l.includes('"phimask":"rate limited"'));
    assert.ok(line, "the refusal is logged");
    assert.doesNotMatch(line, /wk_rl|203\.0\.113/);
  });

  test("another client of the key, and another key of the client, are not affected", async () => {
    await freshWindow(60, 15_000);
    for (let i = 0; i < 4; i++) await send({ key: KEYS[1], ip: "203.0.113.2" });
    assert.equal((await send({ key: KEYS[1], ip: "203.0.113.2" })).status, 429);
    assert.equal((await send({ key: KEYS[1], ip: "203.0.113.3" })).status, 200, "another client IP, the same key");
    assert.equal((await send({ key: KEYS[2], ip: "203.0.113.2" })).status, 200, "another key, the same client IP");
  });

  test("a client refused by its own limit does not use up the key's: RATE_LIMIT_KEY counts only what passed RATE_LIMIT_CLIENT", async () => {
    await freshWindow(60, 15_000);
    const flood = [];
    for (let i = 0; i < 10; i++) flood.push((await send({ key: KEYS[3], ip: "203.0.113.10" })).status);
    assert.deepEqual(flood, [200, 200, 200, ...Array(7).fill(429)]);
    // The key has had 3 of its 5: two more clients get one each, then the key's limit holds for everyone.
    assert.equal((await send({ key: KEYS[3], ip: "203.0.113.11" })).status, 200);
    assert.equal((await send({ key: KEYS[3], ip: "203.0.113.12" })).status, 200);
    const over = await send({ key: KEYS[3], ip: "203.0.113.13" });
    assert.equal(over.status, 429, "the key's own limit, for a client that sent nothing before");
    assert.equal(over.body.code, "rate_limited");
    assert.match(over.body.error, /for this write key/);
  });

  test("a refused request's body is never read: the 429 comes while the body is still being sent", { timeout: 30_000 }, async () => {
    await freshWindow(60, 15_000);
    for (let i = 0; i < 3; i++) assert.equal((await send({ key: KEYS[4], ip: "203.0.113.20" })).status, 200);
    // A body that never ends: a Worker that read it would never answer.
    let pulls = 0;
    const endless = new ReadableStream({
      async pull(controller) {
        pulls += 1;
        await sleep(50);
        controller.enqueue(new TextEncoder().encode(pulls === 1 ? '{"type":"track","event":"Rate Probe","userId":"u-endless","properties":{"pad":"' : "x".repeat(1024)));
      },
    });
    const res = await fetch(`${worker.url}v1/track`, {
      method: "POST", duplex: "half", body: endless,
      headers: { "Content-Type": "application/json", Authorization: basic(KEYS[4]), "CF-Connecting-IP": "203.0.113.20" },
    });
    assert.equal(res.status, 429);
    assert.equal((await res.json()).code, "rate_limited");
    await endless.cancel().catch(() => {});
    // A batch near the 500 KB limit, unread, still gets its 429, not a reset connection.
    const big = JSON.stringify({ batch: Array.from({ length: 3600 }, (_, i) => ({ type: "track", event: "Rate Probe", userId: `u-big-${i}`, properties: { n: i, pad: "x".repeat(60) } })) });
    assert.ok(big.length > 490_000);
    const refusedBig = await fetch(`${worker.url}v1/batch`, {
      method: "POST", body: big,
      headers: { "Content-Type": "application/json", Authorization: basic(KEYS[4]), "CF-Connecting-IP": "203.0.113.20" },
    });
    assert.equal(refusedBig.status, 429);
    assert.equal((await refusedBig.json()).code, "rate_limited");
    await sentinel();
    assert.ok(!dest.delivered().some((e) => String(e.userId).startsWith("u-big-") || e.userId === "u-endless"), "nothing of either reached the destination");
  });

  test("hostile headers: X-Forwarded-For and the like do not change the client, fake keys share one bucket, a huge Authorization header is refused", async () => {
    await freshWindow(60, 15_000);
    const ip = "203.0.113.30";
    // Spoofed forwarding headers: the same client (CF-Connecting-IP) all along.
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const spoof = `10.0.0.${i}`;
      statuses.push((await send({ key: KEYS[6], ip, headers: { "X-Forwarded-For": spoof, "X-Real-IP": spoof, "True-Client-IP": spoof, Forwarded: `for=${spoof}` } })).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);

    // Many distinct fake keys from one client: one bucket for unknown
    // keys, not a fresh one per fake key.
    const fake = [];
    for (let i = 0; i < 6; i++) fake.push((await send({ key: `wk_fake_${i}_${"z".repeat(i * 7)}`, ip: "203.0.113.31" })).status);
    assert.deepEqual(fake, [401, 401, 401, 429, 429, 429]);
    // A huge Authorization header (64 KB) counts in the same bucket and is refused cleanly.
    const huge = await send({ ip: "203.0.113.31", headers: { Authorization: `Basic ${"QUFB".repeat(16 * 1024)}` } });
    assert.equal(huge.status, 429);
    const hugeElsewhere = await send({ ip: "203.0.113.32", headers: { Authorization: `Basic ${"QUFB".repeat(16 * 1024)}` } });
    assert.equal(hugeElsewhere.status, 401, "from a fresh client: refused by the key check, no crash");
    assert.equal(hugeElsewhere.body.code, "invalid_authorization", "over 4 KB: malformed, whatever it holds");
    // The real key from that client is not affected by the fake keys.
    assert.equal((await send({ key: KEYS[7], ip: "203.0.113.31" })).status, 200);

    // Keys in the body (no Authorization header): bucketed by Origin (one
    // a key is bound to), so fake body keys from one client hit the limit too.
    const origin = "https://clinic.example";
    const body = [];
    for (let i = 0; i < 5; i++) body.push((await send({ bodyKey: `wk_body_fake_${i}`, ip: "203.0.113.33", headers: { Origin: origin } })).status);
    assert.deepEqual(body, [401, 401, 401, 429, 429]);
    const real = await send({ bodyKey: KEYS[8], ip: "203.0.113.33", headers: { Origin: origin } });
    assert.equal(real.status, 429, "the real body key shares its Origin's bucket: nothing is known of the key before the body");
    assert.equal(real.headers.get("access-control-allow-origin"), "*");
    assert.equal((await send({ bodyKey: KEYS[8], ip: "203.0.113.34", headers: { Origin: origin } })).status, 200, "another client of that Origin");
    assert.equal((await send({ bodyKey: KEYS[8], ip: "203.0.113.33" })).status, 200, "no Origin: the bucket \"none\"");
    // A client claiming a new Origin each time gets no fresh bucket:
    // origins no key is bound to share one.
    const rotating = [];
    for (let i = 0; i < 5; i++) rotating.push((await send({ bodyKey: KEYS[9], ip: "203.0.113.35", headers: { Origin: `https://site-${i}.example` } })).status);
    assert.deepEqual(rotating, [200, 200, 200, 429, 429]);
  });

  test("/health is 200 with both limiters bound", async () => {
    const res = await fetch(`${worker.url}health`);
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.problems, undefined);
  });
});

describe("without its rate limit bindings (an old wrangler.toml)", () => {
  for (const missing of ["RATE_LIMIT_KEY", "RATE_LIMIT_CLIENT"]) {
    test(`no ${missing}: every event refused with 503 no_rate_limit, and /health says so`, async () => {
      const dest = await startDestination();
      const built = await bundle(policyFor(dest.url));
      const worker = await startWorker(built.script, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: KEYS[0] }, { without: [missing] });
      try {
        const res = await fetch(`${worker.url}v1/track`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: basic(KEYS[0]) },
          body: JSON.stringify({ type: "track", event: "Rate Probe", userId: "u-1" }),
        });
        assert.equal(res.status, 503);
        const body = await res.json();
        assert.equal(body.code, "no_rate_limit");
        assert.match(body.error, new RegExp(missing));
        const health = await fetch(`${worker.url}health`);
        const report = await health.json();
        assert.equal(health.status, 503);
        assert.ok(report.problems.some((p) => p.code === "no_rate_limit"), JSON.stringify(report));
        assert.match(report.problems.find((p) => p.code === "no_rate_limit").message, new RegExp(missing));
        assert.equal(worker.logs.filter((l) => l.includes('"phimask":"request"')).length, 0, "nothing processed");
      } finally {
        await worker.mf.dispose();
        await dest.close();
        built.cleanup();
      }
    });
  }

  test("wrangler.toml declares both limiters in every environment, each with a period of 10 or 60 equal to RATE_LIMIT_PERIOD", () => {
    const tables = wranglerTables();
    const ids = new Map();
    for (const env of ["", "env.development.", "env.production."]) {
      const limits = [];
      tables.forEach((t, i) => {
        if (t.name === `${env}ratelimits`) limits.push({ ...t.values, simple: tables[i + 1].name === `${env}ratelimits.simple` ? tables[i + 1].values : undefined });
      });
      assert.deepEqual(limits.map((l) => l.name).sort(), ["RATE_LIMIT_CLIENT", "RATE_LIMIT_KEY"], env || "top level");
      const [vars] = tables.filter((t) => t.name === `${env}vars`).map((t) => t.values);
      for (const l of limits) {
        assert.ok([10, 60].includes(l.simple?.period), `${env}${l.name}: period 10 or 60`);
        assert.ok(Number.isInteger(l.simple.limit) && l.simple.limit > 0);
        assert.equal(vars.RATE_LIMIT_PERIOD, String(l.simple.period), `${env}RATE_LIMIT_PERIOD is the Retry-After`);
        assert.match(l.namespace_id, /^\d+$/);
        // The same id in two environments would share one counter between them.
        const worker = env === "env.production." ? "production" : "development";
        if (ids.has(l.namespace_id)) assert.equal(ids.get(l.namespace_id), `${worker}:${l.name}`, `namespace_id ${l.namespace_id} reused`);
        ids.set(l.namespace_id, `${worker}:${l.name}`);
      }
    }
  });
});

describe("rate limits under wrangler dev, with @segment/analytics-next in headless Chromium", () => {
  // 5 requests per 10 s, per client and per key.
  const LIMITS = { RATE_LIMIT_CLIENT: { limit: 5, period: 10 }, RATE_LIMIT_KEY: { limit: 5, period: 10 } };
  let dest;
  let dev;
  let site;
  let browser;

  before(async () => {
    dest = await startDestination();
    dev = await startWranglerDev(policyFor(dest.url), { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: KEYS.join(",") }, { ratelimits: LIMITS });
    const page = `
      import { AnalyticsBrowser } from "@segment/analytics-next";
      // count track calls at once, as a page firing events in a burst.
      window.burst = async ({ writeKey, apiHost, count }) => {
        const [analytics] = await AnalyticsBrowser.load(
          { writeKey, cdnSettings: { integrations: { "Segment.io": { apiKey: writeKey, apiHost, protocol: "http" } } } },
          { disableClientPersistence: true },
        );
        await Promise.all(Array.from({ length: count }, (_, n) => analytics.track("Burst Event", { n })));
        return "sent";
      };
      // What a page's own fetch sees of each answer, cross-origin.
      window.probe = async ({ url, writeKey, count }) => {
        const seen = [];
        for (let n = 0; n < count; n++) {
          const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Basic " + btoa(writeKey + ":") }, body: JSON.stringify({ type: "track", event: "Rate Probe", userId: "probe", properties: { n } }) });
          seen.push({ status: res.status, retryAfter: res.headers.get("Retry-After"), code: (await res.json()).code });
        }
        return seen;
      };`;
    const bundled = await build({
      stdin: { contents: page, resolveDir: join(root, "tests/js"), loader: "js" },
      bundle: true, format: "esm", platform: "browser", write: false, logLevel: "error",
    });
    const script = bundled.outputFiles[0].text;
    site = createServer((req, res) => {
      if (req.url === "/page.js") res.writeHead(200, { "content-type": "text/javascript" }).end(script);
      else res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><script type="module" src="/page.js"></script>');
    });
    await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    site?.close();
    await dev?.stop();
    await dest?.close();
  });

  const lines = (what) => dev.output().split("\n").filter((l) => l.includes(`"phimask":"${what}"`)).length;

  test("a page's cross-origin fetch reads the 6th request's 429, its code and its Retry-After", async () => {
    const requestsBefore = lines("request");
    const deliveredBefore = dest.delivered().length;
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      await page.waitForFunction(() => typeof window.probe === "function");
      await freshWindow(10, 4_000);
      const seen = await page.evaluate((o) => window.probe(o), { url: `${dev.url}/v1/track`, writeKey: KEYS[1], count: 6 });
      assert.deepEqual(seen.map((s) => s.status), [200, 200, 200, 200, 200, 429], JSON.stringify(seen));
      assert.deepEqual(seen[5], { status: 429, retryAfter: "10", code: "rate_limited" });
      // wrangler dev prints a request's line after its answer, and the
      // destination gets its events later still: the five accepted are
      // awaited here, so the next test does not count them as its own.
      await until(() => lines("request") - requestsBefore === 5 && dest.delivered().length - deliveredBefore === 5, "the five accepted requests' log lines and events", 30_000);
    } finally {
      await page.close();
    }
  });

  test("12 events at once, over a limit of 5 per 10 s: analytics-next retries each 429 after Retry-After, and all 12 arrive once", async () => {
    const requestsBefore = lines("request");
    const refusedBefore = lines("rate limited");
    const deliveredBefore = dest.delivered().length;
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      await page.waitForFunction(() => typeof window.burst === "function");
      const apiHost = `${dev.url.replace("http://", "")}/v1`;
      assert.equal(await page.evaluate((o) => window.burst(o), { writeKey: KEYS[0], apiHost, count: 12 }), "sent");
      const burst = () => dest.delivered().filter((e) => e.event === "Burst Event");
      await until(() => burst().length >= 12, "the 12 events at the destination", 120_000);
    } finally {
      await page.close();
    }
    const got = dest.delivered().filter((e) => e.event === "Burst Event").map((e) => e.properties.n).sort((a, b) => a - b);
    assert.deepEqual(got, Array.from({ length: 12 }, (_, i) => i), "each event once");
    assert.ok(lines("rate limited") - refusedBefore >= 7, "the limit refused the burst's excess");
    // wrangler dev prints a request's log line after its answer, at times
    // after the consumer has delivered its events: waited for, then exact.
    const accepted = dest.delivered().length - deliveredBefore;
    await until(() => lines("request") - requestsBefore >= accepted, "one engine line per accepted request", 20_000).catch(() => {});
    assert.equal(lines("request") - requestsBefore, accepted, "one engine line per accepted request, none for a refused one");
  });
});

describe("a rate limit binding that fails or answers nothing: refused, never let through", () => {
  const cases = [
    ["RATE_LIMIT_CLIENT", "throws", 503, "rate_limit_unavailable", "10"],
    ["RATE_LIMIT_KEY", "throws", 503, "rate_limit_unavailable", "10"],
    ["RATE_LIMIT_CLIENT", "answers nothing", 429, "rate_limited", "60"],
    ["RATE_LIMIT_KEY", "answers nothing", 429, "rate_limited", "60"],
  ];
  for (const [name, how, status, code, retryAfter] of cases) {
    test(`${name} ${how}: ${status} ${code} with Retry-After ${retryAfter}, nothing processed or delivered`, async () => {
      const dest = await startDestination();
      const built = await bundle(policyFor(dest.url));
      const worker = await startWorker(built.script, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: KEYS[0] }, { brokenLimiters: { [name]: how } });
      try {
        const res = await fetch(`${worker.url}v1/track`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: basic(KEYS[0]), "CF-Connecting-IP": "203.0.113.40" },
          body: JSON.stringify({ type: "track", event: "Rate Probe", userId: "u-broken-limiter", messageId: "m-broken-limiter" }),
        });
        const body = await res.json();
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(body.code, code);
        assert.equal(res.headers.get("retry-after"), retryAfter, "the client is told when to send it again");
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        assert.doesNotMatch(JSON.stringify(body), /wk_rl|203\.0\.113/);
        // The binding's failure is an operator's to see, never a reason to let the request through.
        if (how === "throws") assert.ok(worker.logs.some((l) => l.includes('"phimask":"rate limit unavailable"') && l.includes(name)), worker.logs.join("\n"));
        await sleep(500);
        assert.equal(worker.logs.filter((l) => l.includes('"phimask":"request"')).length, 0, "nothing processed");
        assert.equal(dest.delivered().length, 0, "nothing delivered");
      } finally {
        await worker.mf.dispose();
        await dest.close();
        built.cleanup();
      }
    });
  }
});
