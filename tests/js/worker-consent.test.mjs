// The edge Worker's consent gates with the request's own signals, inside
// workerd (Miniflare on the bundle `wrangler deploy --dry-run` produces),
// sending to real HTTP servers on 127.0.0.1: the Sec-GPC header, the
// visitor's region from request.cf (Miniflare's `cf` option stands in for
// Cloudflare's), the consent stamps of Segment's and RudderStack's SDKs,
// and /.well-known/gpc.json. Allowlisted fields carry PHI no detector sees
// ("Jane Doe", "HIV positive"): a destination gated out must receive
// nothing of the event, the unrestricted BAA warehouse included.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { bundle, root, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "consent-test-masking-key-0123456789abcd";
const WRITE_KEY = "wk_consent_test";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");

/**
 * analytics and ads are restricted, gated on a purpose each; warehouse is
 * unrestricted (BAA) but gated on analytics; plain and archive (BAA) have
 * no gate. Everywhere but California, consent is opt-in; GPC denies
 * advertising; Mexico (a whole country) is opt-out.
 */
const policyWith = (dest, consent) => ({
  version: 1, environment: "consent-test", hipaa: true,
  allowlists: {
    // Allowed as they are: what they carry reaches a restricted destination in clear.
    event_properties: { plan: "allow", appointment_type: "allow", email: "mask" },
    user_properties: { plan: "allow" },
  },
  consent,
  destinations: {
    analytics: { connection: "server-side", endpoint: dest.analytics.url, consent: ["analytics"] },
    ads: { connection: "server-side", endpoint: dest.ads.url, consent: ["advertising"] },
    warehouse: { connection: "server-side", endpoint: dest.warehouse.url, restrict_phi: false, baa: true, consent: ["analytics"] },
    plain: { connection: "server-side", endpoint: dest.plain.url },
    archive: { connection: "server-side", endpoint: dest.archive.url, restrict_phi: false, baa: true },
  },
});
const CONSENT = {
  mode: "opt-in",
  categories: { analytics: ["C0002", "Analytics"], advertising: ["C0004", "Advertising"] },
  gpc: ["advertising"],
  regions: { "US-CA": { mode: "opt-out" }, "US-WA": { mode: "opt-in" }, MX: { mode: "opt-out" } },
};
const DESTINATIONS = ["analytics", "ads", "warehouse", "plain", "archive"];
const UNRESTRICTED = new Set(["warehouse", "archive"]);
/** request.cf with no location (Miniflare fills what a test leaves out from its Texas sample). */
const NOWHERE = { country: undefined, regionCode: undefined };

const segment = (prefs) => ({ consent: { categoryPreferences: prefs } });
const rudder = (allowed, denied) => ({ consentManagement: { allowedConsentIds: allowed, deniedConsentIds: denied, provider: "custom" } });
const GRANTED = segment({ C0001: true, C0002: true, C0004: true });

describe("consent signals at the edge Worker", () => {
  const dest = {};
  let built;
  let worker;
  let sanitizer;
  // Each destination's events the tests expect (by messageId as sent): at
  // the end, it must have received these and nothing else.
  const expected = Object.fromEntries(DESTINATIONS.map((d) => [d, new Set()]));
  // The event names of the test of many tiny events, which it checks itself.
  const tiny = new Set();
  let n = 0;

  async function post(path, body, { headers = {}, cf = NOWHERE } = {}) {
    const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic(WRITE_KEY), ...headers },
      body: JSON.stringify(body),
      cf,
    });
    return { status: res.status, body: await res.json() };
  }

  const idAt = (d, id) => (UNRESTRICTED.has(d) ? id : hmac(id));
  const received = (d, id) => dest[d].delivered().filter((e) => e.messageId === idAt(d, id));
  const requestLogs = () => worker.logs.filter((l) => l.includes('"phimask":"request"'));

  /**
   * Sends a granted event every destination takes, without GPC, and waits
   * until each has it: what the requests before it delivered has arrived.
   */
  async function sentinel() {
    const id = `sentinel-${++n}`;
    assert.equal((await post("/v1/track", { event: "Sentinel", userId: "u-sentinel", messageId: id, context: GRANTED })).status, 200);
    for (const d of DESTINATIONS) await until(() => received(d, id).length === 1, `the sentinel at ${d}`);
  }

  /**
   * Posts a track event carrying `context` and PHI in allowlisted fields,
   * with the request's `headers` and `cf`; checks that exactly the
   * destinations `to` received it, each the engine's own output for it
   * with `signals`, and that the request's report counts the others as
   * not sent for want of consent (when gated).
   */
  async function gated({ context, headers, cf, signals }, to) {
    const id = `consent-${++n}`;
    const event = {
      event: "Appointment Booked", userId: `patient-${n}`, messageId: id,
      properties: { plan: "Jane Doe", appointment_type: "HIV positive", email: "jane@example.com" },
      ...(context !== undefined && { context }),
    };
    const logs = requestLogs().length;
    const res = await post("/v1/track", event, { headers, cf });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(() => requestLogs().length > logs, "the request's report");
    const { destinations: report } = JSON.parse(requestLogs()[logs]);
    await sentinel();
    const text = JSON.stringify({ ...event, type: "track" });
    for (const d of DESTINATIONS) {
      const got = received(d, id);
      if (to.includes(d)) {
        expected[d].add(id);
        assert.equal(got.length, 1, `${d} receives it`);
        assert.deepEqual(got[0], JSON.parse(sanitizer.sanitizeJson(text, d, signals)), `${d}: the engine's output for these signals`);
        assert.equal(report[d].consent ?? 0, 0, `${d}: not counted as gated`);
      } else {
        assert.deepEqual(got, [], `${d} receives nothing`);
        assert.equal(sanitizer.sanitizeJson(text, d, signals), null, `${d}: the engine gates it too`);
        assert.equal(report[d].consent, 1, `${d}: counted as not sent for want of consent`);
      }
    }
  }

  before(async () => {
    for (const d of DESTINATIONS) dest[d] = await startDestination();
    const policy = policyWith(dest, CONSENT);
    sanitizer = new Sanitizer(policy, KEY);
    built = await bundle(policy);
    // With a queue key, the BAA destinations' bodies are queued (sealed) like the others'.
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, GPC_LAST_UPDATE: "2026-12-05", QUEUE_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64") });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  describe("the events' consent stamps", () => {
    test("all purposes granted (Segment's categoryPreferences): every destination", () =>
      gated({ context: GRANTED, signals: {} }, DESTINATIONS));

    test("analytics granted, advertising denied: not the ads destination", () =>
      gated({ context: segment({ C0002: true, C0004: false }), signals: {} }, ["analytics", "warehouse", "plain", "archive"]));

    test("RudderStack's allowed and denied ids: advertising granted, analytics denied", () =>
      gated({ context: rudder(["C0004"], ["C0002"]), signals: {} }, ["ads", "plain", "archive"]));

    test("no stamps outside any region's rule: opt-in, so only the ungated destinations", () =>
      gated({ signals: {} }, ["plain", "archive"]));

    test("malformed stamps count as absent or denied, never granted", async () => {
      // A string instead of an object, a string "true", ids of the wrong type or case.
      await gated({ context: { consent: { categoryPreferences: "C0002,C0004" } }, signals: {} }, ["plain", "archive"]);
      await gated({ context: segment({ C0002: "true", C0004: 1 }), signals: {} }, ["plain", "archive"]);
      await gated({ context: rudder("C0002", null), signals: {} }, ["plain", "archive"]);
      await gated({ context: rudder(["c0002", 4, { C0004: true }], []), signals: {} }, ["plain", "archive"]);
      // Segment grants, RudderStack denies: denied wins.
      await gated({ context: { ...segment({ C0002: true, C0004: true }), ...rudder(["C0002"], ["C0004"]) }, signals: {} }, ["analytics", "warehouse", "plain", "archive"]);
    });
  });

  describe("Sec-GPC", () => {
    test("Sec-GPC: 1 denies advertising even when the event grants it", () =>
      gated({ context: GRANTED, headers: { "Sec-GPC": "1" }, signals: { gpc: true } }, ["analytics", "warehouse", "plain", "archive"]));

    test("Sec-GPC with white space around 1 is a GPC signal", () =>
      gated({ context: GRANTED, headers: { "Sec-GPC": " 1 " }, signals: { gpc: true } }, ["analytics", "warehouse", "plain", "archive"]));

    test("Sec-GPC sent twice (joined: 1, 0) is a GPC signal: a denial in doubt", () =>
      gated({ context: GRANTED, headers: { "Sec-GPC": "0, 1" }, signals: { gpc: true } }, ["analytics", "warehouse", "plain", "archive"]));

    // Only the characters "1": not a number that equals one.
    for (const value of ["0", "yes", "true", "", "1;", "11", "0, 0", "01", "1.0", "+1", "0x1", "1e0", "0, 01"]) {
      test(`Sec-GPC: ${JSON.stringify(value)} is not a GPC signal`, () =>
        gated({ context: GRANTED, headers: { "Sec-GPC": value }, signals: {} }, DESTINATIONS));
    }

    test("GPC in the body or in other headers is not the visitor's signal", () =>
      gated({
        context: { ...GRANTED, gpc: true, "Sec-GPC": "1" },
        headers: { "X-Sec-GPC": "1", GPC: "1", DNT: "1" },
        signals: {},
      }, DESTINATIONS));
  });

  describe("the region from request.cf", () => {
    test("a Californian visitor without stamps reaches the gated destinations (opt-out), but not advertising under GPC", async () => {
      await gated({ cf: { country: "US", regionCode: "CA" }, signals: { region: "US-CA" } }, DESTINATIONS);
      await gated({ cf: { country: "US", regionCode: "CA" }, headers: { "Sec-GPC": "1" }, signals: { region: "US-CA", gpc: true } }, ["analytics", "warehouse", "plain", "archive"]);
      // An explicit denial still wins in an opt-out region.
      await gated({ cf: { country: "US", regionCode: "CA" }, context: segment({ C0002: false }), signals: { region: "US-CA" } }, ["ads", "plain", "archive"]);
    });

    test("Washington, Texas (the country has no rule) and an unknown place: opt-in", async () => {
      for (const [cf, region] of [[{ country: "US", regionCode: "WA" }, "US-WA"], [{ country: "US", regionCode: "TX" }, "US-TX"], [{ country: "DE", regionCode: undefined }, "DE"], [NOWHERE, undefined]]) {
        await gated({ cf, signals: region ? { region } : {} }, ["plain", "archive"]);
      }
    });

    test("a country's rule applies to its subdivisions and to the country alone", async () => {
      await gated({ cf: { country: "MX", regionCode: "CMX" }, signals: { region: "MX-CMX" } }, DESTINATIONS);
      await gated({ cf: { country: "MX", regionCode: undefined }, signals: { region: "MX" } }, DESTINATIONS);
    });

    test("a malformed regionCode leaves the country; a malformed country is no region; nothing crashes", async () => {
      // The country alone (Mexico: opt-out).
      for (const regionCode of ["C-MX", "CMXX", "", 7, null, "C MX", "ÇMX"]) {
        await gated({ cf: { country: "MX", regionCode }, signals: { region: "MX" } }, DESTINATIONS);
      }
      // No region: opt-in, even with California's regionCode.
      for (const country of ["Mexico", "M", "MEX", "M-", "", 52, null, ["MX"], { code: "MX" }, "ÜS"]) {
        await gated({ cf: { country, regionCode: "CA" }, signals: {} }, ["plain", "archive"]);
      }
    });

    test("lower-case cf codes are the same region", () =>
      gated({ cf: { country: "us", regionCode: "ca" }, signals: { region: "US-CA" } }, DESTINATIONS));

    test("location headers a client can send are not its region", () =>
      gated({
        cf: { country: "DE", regionCode: undefined },
        headers: { "CF-IPCountry": "US", "CF-Region-Code": "CA", "X-Region": "US-CA", "CF-Connecting-IP": "203.0.113.9" },
        context: { location: { country: "US", region: "CA" } },
        signals: { region: "DE" },
      }, ["plain", "archive"]));
  });

  test("a batch: each event gated on its own stamps, the request's GPC for all", async () => {
    const ids = [`batch-${++n}-a`, `batch-${n}-b`, `batch-${n}-c`];
    const events = [
      { type: "track", event: "Booked", userId: "p-a", messageId: ids[0], properties: { plan: "HIV positive" }, context: GRANTED },
      { type: "track", event: "Booked", userId: "p-b", messageId: ids[1], properties: { plan: "HIV positive" }, context: segment({ C0002: false, C0004: true }) },
      { type: "identify", userId: "p-c", messageId: ids[2], traits: { plan: "Jane Doe" } },
    ];
    const res = await post("/v1/batch", { batch: events }, { headers: { "Sec-GPC": "1" }, cf: { country: "US", regionCode: "CA" } });
    assert.equal(res.status, 200);
    await sentinel();
    const signals = { gpc: true, region: "US-CA" };
    for (const d of DESTINATIONS) {
      for (const [i, e] of events.entries()) {
        const out = sanitizer.sanitizeJson(JSON.stringify(e), d, signals);
        const got = received(d, ids[i]);
        if (out === null) assert.deepEqual(got, [], `${d} ${ids[i]}`);
        else {
          expected[d].add(ids[i]);
          assert.deepEqual(got, [JSON.parse(out)], `${d} ${ids[i]}`);
        }
      }
    }
    // GPC: no advertising at all; the second event denies analytics.
    assert.deepEqual(received("ads", ids[0]).concat(received("ads", ids[1]), received("ads", ids[2])), []);
    assert.deepEqual(received("warehouse", ids[1]), []);
    assert.equal(received("warehouse", ids[2]).length, 1, "California: undetermined analytics is granted");
  });

  test("a request whose bodies are made again smaller (many tiny events) keeps its signals", async () => {
    // 10,000 events of 45 bytes: their request indexes would not fit the
    // queue's messages beside 120,000-byte bodies, so the Worker has the
    // engine make them again with a smaller limit.
    const tag = `t${++n}`;
    tiny.add(tag);
    const events = Array.from({ length: 10_000 }, (_, i) => ({ type: "track", event: tag, userId: String(i) }));
    const requests = Object.fromEntries(DESTINATIONS.map((d) => [d, dest[d].requests.length]));
    const res = await post("/v1/batch", { batch: events }, { headers: { "Sec-GPC": "1" }, cf: { country: "US", regionCode: "CA" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const mine = (d) => dest[d].requests.slice(requests[d]).flatMap((r) => JSON.parse(r.body).batch).filter((e) => e.event === tag);
    // California: analytics granted (opt-out); GPC: advertising denied.
    // (A request queued in several calls is held for 10 s before delivery.)
    for (const d of ["analytics", "warehouse", "plain", "archive"]) await until(() => mine(d).length >= events.length, `${d} to receive the batch`, 30_000);
    await sentinel();
    for (const d of ["analytics", "warehouse", "plain", "archive"]) assert.equal(mine(d).length, events.length, d);
    assert.deepEqual(mine("ads"), []);
    const largest = Math.max(...dest.archive.requests.slice(requests.archive).map((r) => Buffer.byteLength(r.body)));
    assert.ok(largest < 118_000, `the bodies were made again smaller than 120,000 bytes (largest ${largest})`);
  });

  test("each destination received exactly the events its gates let through, and PHI only with them", async () => {
    await sentinel();
    for (const d of DESTINATIONS) {
      const ids = new Set([...expected[d]].map((id) => idAt(d, id)));
      const got = dest[d].delivered().filter((e) => e.userId !== "u-sentinel" && e.userId !== hmac("u-sentinel") && !tiny.has(e.event));
      assert.deepEqual(got.map((e) => e.messageId).sort(), [...ids].sort(), d);
      // Every "HIV positive" and "Jane Doe" a destination saw came with an event it was meant to get.
      const bodies = dest[d].requests.map((r) => r.body).join("\n");
      const expectedText = got.map((e) => JSON.stringify(e)).join("\n");
      for (const phi of ["HIV positive", "Jane Doe"]) {
        assert.equal(bodies.split(phi).length, expectedText.split(phi).length, `${d}: ${phi} only in the events it was meant to get`);
      }
    }
  });

  describe("/.well-known/gpc.json", () => {
    const get = (w, method = "GET") => w.mf.dispatchFetch("http://edge.test/.well-known/gpc.json", { method });

    test("says GPC is honoured, with the date of GPC_LAST_UPDATE", async () => {
      const res = await get(worker);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type"), /^application\/json/);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      assert.deepEqual(await res.json(), { gpc: true, lastUpdate: "2026-12-05" });
      const head = await get(worker, "HEAD");
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
      for (const method of ["POST", "PUT", "DELETE"]) {
        const refused = await get(worker, method);
        assert.equal(refused.status, 405, method);
        assert.equal(refused.headers.get("allow"), "GET, HEAD");
        await refused.arrayBuffer();
      }
      for (const path of ["/.well-known/gpc.json/", "/.well-known/GPC.json", "/.well-known/gpc.jsonx"]) {
        const other = await worker.mf.dispatchFetch(`http://edge.test${path}`);
        assert.equal(other.status, 404, path);
        await other.arrayBuffer();
      }
    });

    test("a policy whose GPC denies nothing says gpc false; a malformed GPC_LAST_UPDATE is left out", async () => {
      const noGpc = { ...CONSENT };
      delete noGpc.gpc;
      const other = await bundle(policyWith(dest, noGpc));
      try {
        for (const lastUpdate of ["2026-02-30", "2026-12-5", "05/12/2026", "2026-12-05T00:00:00Z", "", "yesterday"]) {
          const w = await startWorker(other.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, GPC_LAST_UPDATE: lastUpdate }, { queues: false });
          try {
            const res = await get(w);
            assert.equal(res.status, 200);
            assert.deepEqual(await res.json(), { gpc: false }, lastUpdate);
          } finally {
            await w.mf.dispose();
          }
        }
      } finally {
        other.cleanup();
      }
    });

    test("a policy whose GPC denies only purposes no destination needs says gpc false", async () => {
      const unused = { ...CONSENT, categories: { ...CONSENT.categories, sale: ["C0009"] }, gpc: ["sale"] };
      const other = await bundle(policyWith(dest, unused));
      const w = await startWorker(other.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, GPC_LAST_UPDATE: "2026-12-05" }, { queues: false });
      try {
        assert.deepEqual(await (await get(w)).json(), { gpc: false, lastUpdate: "2026-12-05" });
      } finally {
        await w.mf.dispose();
        other.cleanup();
      }
    });

    test("wrangler.toml sets GPC_LAST_UPDATE to a date in every environment", () => {
      const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
      const tables = toml.split(/^(?=\[)/m).filter((t) => /^\[(env\.\w+\.)?vars\]/.test(t));
      assert.deepEqual(tables.map((t) => /^\[(.*)\]/.exec(t)[1]), ["vars", "env.development.vars", "env.production.vars"]);
      for (const t of tables) assert.match(t, /^GPC_LAST_UPDATE = "\d{4}-\d{2}-\d{2}"$/m, t);
    });
  });
});
