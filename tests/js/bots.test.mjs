// Bots at the edge: the JavaScript API's bot signals (strict, hostile
// objects refused), the Worker's signals from a browser's request only
// (User-Agent, request.cf.botManagement through Miniflare's `cf`, anything
// malformed there ignored), and the whole path under `wrangler dev`:
// headless Chromium (its user agent says HeadlessChrome, it sends Origin)
// dropped or flagged as the policy says, @segment/analytics-node (no
// Origin) still delivered. Events carry PHI no detector sees ("Jane Doe",
// "HIV positive"): a dropped bot's event must reach no destination fake.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { Analytics as SegmentNode } from "@segment/analytics-node";
import { Sanitizer } from "../../www/dev/node.mjs";
import { botSignalsOf, signalsOf } from "../../www/worker/signals.js";
import { launchChromium } from "./chromium.mjs";
import { bundle, startDestination, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "bots-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_bots_test";
const basic = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;
const PHI = "Jane Doe HIV positive";
const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const SITE = "https://clinic.example";

/** `flags` names `bot` in its context list, `plain` does not, `vault` is a BAA warehouse. */
const policyFor = (bots, dest) => ({
  version: 1, environment: "bots-test", hipaa: true, bots,
  allowlists: { event_properties: { plan: "allow", note: "allow" }, context: { locale: "allow" } },
  destinations: {
    flags: { connection: "server-side", endpoint: dest.flags.url, allowlists: { context: { bot: "allow" } } },
    plain: { connection: "server-side", endpoint: dest.plain.url },
    vault: { connection: "server-side", endpoint: dest.vault.url, restrict_phi: false, baa: true },
  },
});
const DESTINATIONS = ["flags", "plain", "vault"];

const track = (userId, extra = {}) => ({ type: "track", event: "Booked", userId, messageId: `m-${userId}`, properties: { plan: "pro", note: PHI }, ...extra });
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
/** Events of `userId` a destination received (in clear, or masked). */
const of = (d, userId) => d.delivered().filter((e) => e.userId === userId || e.userId === hmac(userId));
/** Whether anything of `userId`'s event is in what a destination was sent. */
const anyOf = (d, userId) => d.requests.some((r) => [`"${userId}"`, `"m-${userId}"`, hmac(userId), hmac(`m-${userId}`)].some((s) => r.body.includes(s)));

describe("the JavaScript API's bot signals", () => {
  const unused = { flags: { url: "https://f.example/" }, plain: { url: "https://p.example/" }, vault: { url: "https://v.example/" } };
  const drop = new Sanitizer(policyFor("drop", unused), KEY);
  const flag = new Sanitizer(policyFor("flag", unused), KEY);
  const event = track("u1", { context: { locale: "en-US", bot: PHI } });
  const text = JSON.stringify(event);
  const body = new TextEncoder().encode(JSON.stringify({ batch: [event, track("u2"), { type: "track", userId: "u3" }] }));
  const calls = (s, signals) => [
    () => s.sanitize(event, "plain", signals),
    () => s.sanitizeJson(text, "plain", signals),
    () => s.explain(event, signals),
    () => s.processRequest(body, "batch", undefined, signals),
  ];

  test("each signal drops the event under drop, at every entry point", () => {
    for (const signals of [{ userAgent: "curl/8.4.0" }, { botScore: 1 }, { botScore: 29 }, { verifiedBot: true }, { userAgent: CHROME, botScore: 12, gpc: false }]) {
      assert.equal(drop.sanitize(event, "plain", signals), null, JSON.stringify(signals));
      assert.equal(drop.sanitizeJson(text, "vault", signals), null);
      const explained = drop.explain(event, signals);
      for (const d of DESTINATIONS) {
        assert.equal(explained[d].code, "bot");
        assert.equal(explained[d].sent, false);
        assert.equal(explained[d].reason, 'not sent: a bot\'s event, and the policy\'s "bots" is "drop"');
      }
      const done = drop.processRequest(body, "batch", undefined, signals);
      // Accepted (the SDK must not send them again), sent nowhere; the bad event is still refused.
      assert.deepEqual([done.accepted, done.rejectedCount, done.bots], [2, 1, 2]);
      for (const d of DESTINATIONS) assert.deepEqual(done.bodies[d], []);
    }
    for (const signals of [undefined, {}, { userAgent: CHROME }, { botScore: 30 }, { botScore: 99 }, { verifiedBot: false }, { userAgent: null, botScore: null }]) {
      assert.notEqual(drop.sanitize(event, "plain", signals), null, JSON.stringify(signals));
      const done = drop.processRequest(body, "batch", undefined, signals);
      assert.deepEqual([done.accepted, done.bots, done.bodies.plain.length], [2, 0, 1]);
    }
  });

  test("explain says why, never the user agent", () => {
    assert.deepEqual(drop.explain(event, { userAgent: "curl/8.4.0 (Jane Doe)" }).plain.bot, { by: "userAgent", token: "curl/" });
    assert.deepEqual(drop.explain(event, { botScore: 7 }).plain.bot, { by: "botScore", score: 7 });
    assert.deepEqual(drop.explain(event, { verifiedBot: true }).plain.bot, { by: "verifiedBot" });
    const forwarded = { ...event, context: { userAgent: "Mozilla/5.0 (compatible; Googlebot/2.1) Jane Doe" } };
    const explained = drop.explain(forwarded);
    assert.deepEqual(explained.flags.bot, { by: "contextUserAgent", token: "googlebot" });
    assert.ok(!JSON.stringify(drop.explain(event, { userAgent: "curl/8.4.0 (Jane Doe)" })).includes("Jane"));
    assert.equal(drop.explain(event, { userAgent: CHROME }).plain.bot, undefined);
  });

  test("flag adds context.bot: true, and a client's own context.bot never passes", () => {
    const bot = JSON.parse(flag.sanitizeJson(text, "flags", { userAgent: "HeadlessChrome/131" }));
    assert.deepEqual(bot.context, { locale: "en-US", bot: true });
    const human = JSON.parse(flag.sanitizeJson(text, "flags", { userAgent: CHROME }));
    assert.deepEqual(human.context, { locale: "en-US" });
    assert.deepEqual(flag.sanitize(event, "plain", { botScore: 2 }).context, { locale: "en-US" });
    assert.equal(flag.sanitize(event, "vault", { botScore: 2 }).context.bot, true);
    assert.equal(flag.sanitize(event, "vault", {}).context.bot, undefined);
    const done = flag.processRequest(body, "batch", undefined, { verifiedBot: true });
    assert.equal(done.bots, 2);
    const sent = done.bodies.flags.flatMap((b) => JSON.parse(b).batch);
    assert.deepEqual(sent.map((e) => e.context), [{ locale: "en-US", bot: true }, { bot: true }]);
  });

  test("hostile signals objects throw invalid_signals, never read as no bot", () => {
    const hostile = {
      "a numeric userAgent": { userAgent: 5 },
      "a userAgent object": { userAgent: { toString: () => "curl/8" } },
      "a String object": { userAgent: new String("curl/8") },
      "a score as text": { botScore: "5" },
      "a score of 0": { botScore: 0 },
      "a score of 100": { botScore: 100 },
      "a fractional score": { botScore: 29.5 },
      "NaN": { botScore: NaN },
      "Infinity": { botScore: Infinity },
      "a negative score": { botScore: -1 },
      "a BigInt score": { botScore: 5n },
      "verifiedBot as text": { verifiedBot: "true" },
      "verifiedBot 1": { verifiedBot: 1 },
      "a misspelt key": { useragent: "curl/8" },
      "Cloudflare's own name": { score: 5 },
      "a getter that throws": Object.defineProperty({}, "botScore", { enumerable: true, get() { throw new Error("Jane Doe"); } }),
      "a hidden key": Object.defineProperty({}, "verifiedBot", { enumerable: false, value: "yes" }),
      "a symbol key": { [Symbol("verifiedBot")]: true },
      "a Map": new Map([["verifiedBot", true]]),
      "a class instance": new (class Signals { constructor() { this.verifiedBot = true; } })(),
      "an inherited key": Object.create({ verifiedBot: true }),
    };
    for (const [what, signals] of Object.entries(hostile)) {
      for (const [s, name] of [[drop, "drop"], [flag, "flag"]]) {
        for (const call of calls(s, signals)) {
          assert.throws(call, (e) => e.code === "invalid_signals" && !e.message.includes("Jane"), `${what} (${name})`);
        }
      }
    }
    assert.throws(() => drop.explain(event, { botScore: 0 }), { message: "signals.botScore must be an integer from 1 to 99" });
    assert.throws(() => drop.explain(event, { userAgent: 5 }), { message: "signals.userAgent must be a string" });
    assert.throws(() => drop.explain(event, { verifiedBot: "true" }), { message: "signals.verifiedBot must be true or false" });
    assert.throws(() => drop.explain(event, { BotScore: 5 }), { message: 'signals: unknown key "BotScore"; expected gpc, region, userAgent, botScore, verifiedBot' });
  });

  test("only the first kilobyte of a user agent is read, however long", () => {
    const long = `${"a".repeat(1024)} curl/8.4.0${"x".repeat(8 << 20)}`;
    assert.notEqual(drop.sanitize(event, "plain", { userAgent: long }), null);
    assert.equal(drop.sanitize(event, "plain", { userAgent: `${"a".repeat(1000)} curl/8` }), null);
    // Multi-byte characters are cut at a character, never mid-way.
    assert.notEqual(drop.sanitize(event, "plain", { userAgent: `${"é".repeat(600)} curl/8` }), null);
  });
});

describe("the Worker's bot signals (signals.js)", () => {
  const request = (headers, cf) => ({ headers: new Headers(headers), cf });

  test("only a browser's request (with Origin) carries them", () => {
    const cf = { botManagement: { score: 5, verifiedBot: true } };
    assert.deepEqual(signalsOf(request({ "User-Agent": "curl/8" }, cf)), { gpc: false });
    assert.deepEqual(signalsOf(request({ Origin: SITE, "User-Agent": "curl/8" }, cf)), { gpc: false, userAgent: "curl/8", botScore: 5, verifiedBot: true });
    assert.deepEqual(signalsOf(request({ Origin: "null" }, undefined)), { gpc: false });
  });

  test("malformed or hostile request.cf values are no signal, and never throw", () => {
    const throwing = { get botManagement() { throw new Error("no"); } };
    const proxy = new Proxy({}, { get() { throw new Error("no"); } });
    const scoreThrows = { botManagement: { get score() { throw new Error("no"); }, verifiedBot: true } };
    for (const [i, cf] of [undefined, null, "cf", 5, {}, throwing, proxy, scoreThrows, { botManagement: null }, { botManagement: "5" },
      { botManagement: { score: "5" } }, { botManagement: { score: 0 } }, { botManagement: { score: 100 } }, { botManagement: { score: 5.5 } },
      { botManagement: { score: -3 } }, { botManagement: { score: NaN } }, { botManagement: { score: [5] } }, { botManagement: { score: 5n } },
      { botManagement: { verifiedBot: "true" } }, { botManagement: { verifiedBot: 1 } }, { botManagement: { verifiedBot: false } }].entries()) {
      const got = botSignalsOf(request({ Origin: SITE, "User-Agent": CHROME }, cf));
      assert.deepEqual(got, { userAgent: CHROME }, `case ${i}`);
    }
    assert.deepEqual(botSignalsOf(request({ Origin: SITE }, { botManagement: { score: 99, verifiedBot: false } })), { botScore: 99 });
    assert.equal(botSignalsOf(request({ "User-Agent": `curl/8 ${"a".repeat(5000)}` })).userAgent.length, 1024);
  });
});

describe("bots at the edge Worker (Miniflare, request.cf.botManagement)", () => {
  const dest = {};
  let built;
  let worker;
  let n = 0;

  before(async () => {
    for (const d of DESTINATIONS) dest[d] = await startDestination();
    built = await bundle(policyFor("drop", dest));
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  /** Posts one track event; resolves to its userId once answered 200. */
  async function post(headers, cf, extra) {
    const userId = `mf-${++n}`;
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic, ...headers },
      body: JSON.stringify(track(userId, extra)),
      ...(cf && { cf }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { success: true });
    return userId;
  }

  /** Once a person's event sent after them has arrived everywhere: which of `users` each destination has. */
  async function settle(users) {
    const sentinel = await post({ Origin: SITE, "User-Agent": CHROME }, { botManagement: { score: 95 } });
    for (const d of DESTINATIONS) await until(() => of(dest[d], sentinel).length === 1, `the sentinel at ${d}`);
    return Object.fromEntries(users.map((u) => [u, DESTINATIONS.filter((d) => of(dest[d], u).length > 0)]));
  }

  test("a browser's request scored automated, or a verified bot, is answered 200 and sent nowhere", async () => {
    const browser = { Origin: SITE, "User-Agent": CHROME };
    const dropped = [
      await post(browser, { botManagement: { score: 5 } }),
      await post(browser, { botManagement: { score: 29 } }),
      await post(browser, { botManagement: { score: 90, verifiedBot: true } }),
      await post({ Origin: SITE, "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)" }, { botManagement: { score: 90 } }),
      // A server forwarding a crawler's visit: its event's own user agent.
      await post({}, undefined, { context: { userAgent: "facebookexternalhit/1.1" } }),
    ];
    const kept = [
      await post(browser, { botManagement: { score: 90 } }),
      await post(browser, { botManagement: { score: 30, verifiedBot: false } }),
      // A server's request: its user agent and Cloudflare's score are not the visitor's.
      await post({ "User-Agent": "curl/8.4.0" }, { botManagement: { score: 1 } }),
    ];
    const malformed = [
      { botManagement: { score: "5" } }, { botManagement: { score: 0 } }, { botManagement: { score: 5.5 } },
      { botManagement: { score: -1 } }, { botManagement: { verifiedBot: "true" } }, { botManagement: "automated" },
      { botManagement: null }, { botManagement: { score: 100 } },
    ];
    for (const cf of malformed) kept.push(await post(browser, cf));
    const got = await settle([...dropped, ...kept]);
    for (const u of dropped) assert.deepEqual(got[u], [], u);
    for (const u of kept) assert.deepEqual(got[u], DESTINATIONS, u);
    // Nothing of a dropped event anywhere.
    for (const d of DESTINATIONS) for (const u of dropped) assert.ok(!anyOf(dest[d], u), `${u} at ${d}`);
    // The log line counts them, and never holds a user agent.
    const lines = worker.logs.filter((l) => l.includes('"phimask":"request"')).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
    assert.equal(lines.filter((l) => l.bots === 1).length, dropped.length);
    assert.equal(lines.filter((l) => l.bots === undefined).length, lines.length - dropped.length, "no bots, no count");
    assert.ok(!worker.logs.join("\n").includes("Googlebot") && !worker.logs.join("\n").includes("Mozilla"));
  });
});

describe("bots through wrangler dev: headless Chromium and @segment/analytics-node", () => {
  const devs = {};
  const dest = {};
  let browser;
  let site;

  before(async () => {
    for (const mode of ["drop", "flag"]) {
      dest[mode] = {};
      for (const d of DESTINATIONS) dest[mode][d] = await startDestination();
      devs[mode] = await startWranglerDev(policyFor(mode, dest[mode]), { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
    }
    site = createServer((req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>clinic</title>"));
    await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    site?.close();
    for (const dev of Object.values(devs)) await dev?.stop();
    for (const group of Object.values(dest)) await Promise.all(Object.values(group).map((d) => d.close()));
  });

  /** The page posts one track event of `userId` to the Worker (another origin); resolves to its status, answer and user agent. */
  async function fromChromium(mode, userId) {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${site.address().port}/`);
      return await page.evaluate(async ({ url, auth, event }) => {
        const res = await fetch(`${url}/v1/track`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: auth }, body: JSON.stringify(event) });
        return { status: res.status, body: await res.json(), ua: navigator.userAgent };
      }, { url: devs[mode].url, auth: basic, event: track(userId, { context: { locale: "en-US", bot: false } }) });
    } finally {
      await page.close();
    }
  }

  /** analytics-node (no Origin) sends these events to `mode`'s Worker. */
  async function fromNode(mode, events) {
    const analytics = new SegmentNode({ writeKey: WRITE_KEY, host: devs[mode].url, path: "/v1/batch", flushInterval: 200, maxEventsInBatch: 10 });
    const errors = [];
    analytics.on("error", (e) => errors.push(e));
    for (const e of events) analytics.track(e);
    await analytics.closeAndFlush({ timeout: 10_000 });
    assert.deepEqual(errors, []);
  }

  test("drop: Chromium's events are answered 200 and reach no destination; analytics-node's are delivered", async () => {
    const first = await fromChromium("drop", "chromium-drop-1");
    assert.match(first.ua, /HeadlessChrome/);
    assert.deepEqual([first.status, first.body], [200, { success: true }]);
    assert.equal((await fromChromium("drop", "chromium-drop-2")).status, 200);
    await fromNode("drop", [
      { userId: "node-person", event: "Booked", messageId: "m-node-person", properties: { plan: "pro", note: PHI }, context: { userAgent: CHROME } },
      { userId: "node-crawler", event: "Booked", messageId: "m-node-crawler", properties: { plan: "pro", note: PHI }, context: { userAgent: "Mozilla/5.0 (compatible; bingbot/2.0)" } },
      { userId: "node-plain", event: "Booked", messageId: "m-node-plain", properties: { plan: "pro", note: PHI } },
    ]);
    const d = dest.drop;
    for (const name of DESTINATIONS) {
      await until(() => of(d[name], "node-person").length === 1 && of(d[name], "node-plain").length === 1, `analytics-node's events at ${name}`, 30_000);
    }
    for (const name of DESTINATIONS) {
      for (const u of ["chromium-drop-1", "chromium-drop-2", "node-crawler"]) assert.ok(!anyOf(d[name], u), `${u} at ${name}`);
    }
    const logged = devs.drop.output().split("\n").filter((l) => l.includes('"phimask":"request"'));
    assert.ok(logged.some((l) => l.includes('"bots":1')), logged.join("\n"));
  });

  test("flag: a destination listing bot receives context.bot true; the others the event without it", async () => {
    const answer = await fromChromium("flag", "chromium-flag");
    assert.deepEqual([answer.status, answer.body], [200, { success: true }]);
    await fromNode("flag", [{ userId: "node-flag-person", event: "Booked", messageId: "m-node-flag-person", properties: { plan: "pro", note: PHI }, context: { locale: "en-US", bot: true } }]);
    const d = dest.flag;
    for (const name of DESTINATIONS) {
      await until(() => of(d[name], "chromium-flag").length === 1 && of(d[name], "node-flag-person").length === 1, `both events at ${name}`, 30_000);
    }
    assert.deepEqual(of(d.flags, "chromium-flag")[0].context, { locale: "en-US", bot: true });
    assert.deepEqual(of(d.plain, "chromium-flag")[0].context, { locale: "en-US" });
    assert.equal(of(d.vault, "chromium-flag")[0].context.bot, true);
    // A server's person, whose client wrote bot: true: phimask owns the field.
    assert.deepEqual(of(d.flags, "node-flag-person")[0].context, { locale: "en-US" });
    assert.equal(of(d.vault, "node-flag-person")[0].context.bot, undefined);
  });
});
