// The edge Worker inside workerd (Miniflare on the bundle `wrangler deploy
// --dry-run` produces), sending to real HTTP servers on 127.0.0.1.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Sanitizer } from "../../www/dev/node.mjs";
import { preparedPolicy } from "../../www/dev/prepared-module.mjs";
import { bundle, closedUrl, startDestination, startWorker, until } from "./worker-harness.mjs";

const KEY = "worker-test-masking-key-0123456789abcdef";
const WRITE_KEY = "wk_test_1";
// The warehouse's own credential (a Worker secret), sent only to it.
const WAREHOUSE_AUTH = "Bearer warehouse-token-7f3a";
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

const event = {
  event: "Appointment Booked",
  userId: "patient-8812",
  anonymousId: "anon-77",
  messageId: "m-1",
  properties: { plan: "gold", email: "jane@example.com", reason: "chest pain", value: 250 },
  traits: { email: "jane@example.com", name: "Jane Doe" },
  context: { ip: "203.0.113.7", locale: "en-US", traits: { email: "jane@example.com", plan: "gold" } },
};
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
// The messageId a destination receives: masked (HMAC-SHA256 hex) for a
// restricted one, as sent for the warehouse (unrestricted, under a BAA).
const idFor = (d, id) => (d === "warehouse" ? id : hmac(id));
const nested = (n) => (n === 0 ? "jane" : [nested(n - 1)]);
const PHI = ["jane", "Jane", "patient-8812", "anon-77", "chest pain", "203.0.113.7"];

describe("edge worker", () => {
  const dest = {};
  let policy;
  let worker;
  let built;
  let sanitizer;

  async function post(path, body, headers = { Authorization: basic(WRITE_KEY) }) {
    const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  const expected = (ev, d) => JSON.parse(sanitizer.sanitizeJson(JSON.stringify(ev), d));
  const total = () => Object.values(dest).reduce((n, d) => n + d.requests.length, 0);
  const SERVER_SIDE = ["amplitude", "ads", "warehouse"];
  let sentinels = 0;
  /**
   * Sends a valid event every server-side destination takes (one request
   * each), after what a test sent, and waits until each has it: what an
   * earlier request would have delivered has arrived by then.
   */
  async function sentinel() {
    const id = `sentinel-${++sentinels}`;
    assert.equal((await post("/v1/track", { event: "Sentinel", userId: "u-sentinel", messageId: id })).status, 200);
    for (const d of SERVER_SIDE) await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, id)), `the sentinel at ${d}`);
  }
  /**
   * For a Worker that accepts nothing: a sentinel put on its delivery queue
   * (read by a spy, not delivered) after the refused requests; resolves
   * once the spy has it to what the queue held, which must be it alone.
   */
  async function queueSentinel(w) {
    const queue = await w.mf.getQueueProducer("DELIVERY", "phimask");
    await queue.send({ sentinel: true });
    await until(async () => (await w.queued()).some((m) => m.sentinel === true), "the queue's sentinel");
    return w.queued();
  }

  before(async () => {
    for (const name of ["amplitude", "ads", "warehouse", "ga4"]) dest[name] = await startDestination();
    policy = {
      version: 1, environment: "test", hipaa: true,
      allowlists: {
        event_properties: { plan: "allow", email: "mask" },
        user_properties: { email: "mask", plan: "allow" },
        group_properties: { name: "allow" },
      },
      destinations: {
        amplitude: { connection: "server-side", endpoint: dest.amplitude.url },
        ads: { connection: "server-side", endpoint: dest.ads.url, allowlists: { event_properties: { value: "allow" } } },
        warehouse: { connection: "server-side", endpoint: dest.warehouse.url, restrict_phi: false, baa: true },
        ga4: { connection: "client-side", endpoint: dest.ga4.url, restrict_phi: false, baa: true },
      },
    };
    sanitizer = new Sanitizer(policy, KEY);
    built = await bundle(policy);
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: `other-key, ${WRITE_KEY}`, AUTH_WAREHOUSE: WAREHOUSE_AUTH });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  const CALLS = [
    ["track", "t"], ["identify", "i"], ["group", "g"], ["page", "p"], ["screen", "s"], ["alias", "a"],
  ];
  for (const [type, short] of CALLS) {
    test(`POST /v1/${type} and /v1/${short}: each destination gets the engine's output for it`, async () => {
      const before = { amplitude: dest.amplitude.delivered().length, ads: dest.ads.delivered().length, warehouse: dest.warehouse.delivered().length };
      for (const path of [`/v1/${type}`, `/v1/${short}`]) {
        const ev = { ...event, messageId: `${type}-${path.slice(4)}`, groupId: "clinic-1", previousId: "anon-0" };
        // A group's traits are the group's (its name is allowed by the policy).
        if (type === "group") ev.traits = { ...event.traits, name: "Northside Clinic" };
        const res = await post(path, ev);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { success: true });
        const typed = { ...ev, type };
        for (const d of ["amplitude", "ads", "warehouse"]) {
          await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, ev.messageId)), `${d} to receive ${path}`);
          const got = dest[d].delivered().find((e) => e.messageId === idFor(d, ev.messageId));
          assert.deepEqual(got, expected(typed, d), `${d} ${path}`);
          if (d !== "warehouse") for (const phi of PHI) assert.ok(!JSON.stringify(got).includes(phi), `${d} got ${phi}`);
        }
      }
      for (const d of ["amplitude", "ads", "warehouse"]) assert.equal(dest[d].delivered().length, before[d] + 2, d);
    });
  }

  test("the path decides the type, whatever the body says", async () => {
    const res = await post("/v1/track", { ...event, type: "identify", messageId: "typed-by-path" });
    assert.equal(res.status, 200);
    // Every destination's copy awaited, so none is still on its way when
    // the next test counts requests.
    for (const d of ["amplitude", "ads", "warehouse"]) await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, "typed-by-path")), d);
    const got = dest.amplitude.delivered().find((e) => e.messageId === hmac("typed-by-path"));
    assert.equal(got.type, "track");
    assert.deepEqual(got.properties, { plan: "gold", email: sanitizer.sanitize({ type: "track", event: "E", userId: "u", properties: { email: "jane@example.com" } }, "amplitude").properties.email });
  });

  test("POST /v1/batch: one request per destination carrying all events; a bad event is rejected alone", async () => {
    const counts = Object.fromEntries(Object.entries(dest).map(([k, d]) => [k, d.requests.length]));
    const batch = [
      { ...event, type: "track", messageId: "b-1" },
      { type: "launch", messageId: "b-bad", properties: { email: "jane@example.com" } },
      { ...event, type: "identify", messageId: "b-2" },
      "not an event",
      { ...event, type: "page", name: "Home", messageId: "b-3", big: "x".repeat(40_000) },
    ];
    const res = await post("/v1/batch", { batch, writeKey: WRITE_KEY });
    assert.equal(res.status, 200);
    assert.equal(res.body.success, true);
    assert.equal(res.body.accepted, 2);
    assert.deepEqual(res.body.rejected.map((r) => [r.index, r.code]), [[1, "unknown_type"], [3, "event_not_object"], [4, "event_too_large"]]);
    assert.ok(!JSON.stringify(res.body).includes("jane"), "errors echo nothing of the events");
    // This batch's requests: those since the test began that carry its
    // first event (a request of an earlier test may land meanwhile).
    const ours = (d) => dest[d].requests.slice(counts[d]).filter((r) => JSON.parse(r.body).batch?.some((e) => e.messageId === idFor(d, "b-1")));
    for (const d of ["amplitude", "ads", "warehouse"]) {
      await until(() => ours(d).length > 0, `${d} batch`);
      const { batch: got } = JSON.parse(ours(d)[0].body);
      assert.deepEqual(got, [expected(batch[0], d), expected(batch[2], d)], d);
    }
    await sentinel();
    for (const d of ["amplitude", "ads", "warehouse"]) assert.equal(ours(d).length, 1, `${d}: one request`);
  });

  test("analytics.js batches (/v1/b, key in each event, text/plain) and /v1/import are batches", async () => {
    for (const path of ["/v1/b", "/v1/import"]) {
      const id = `batch-via-${path.slice(4)}`;
      const body = { batch: [{ ...event, type: "identify", messageId: id, writeKey: WRITE_KEY }], sentAt: "2026-11-22T14:05:11.000Z" };
      const res = await post(path, body, { "Content-Type": "text/plain" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      for (const d of ["amplitude", "ads", "warehouse"]) {
        await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, id)), `${d} to receive ${path}`);
        const { writeKey: _, ...sent } = body.batch[0];
        assert.deepEqual(dest[d].delivered().find((e) => e.messageId === idFor(d, id)), expected(sent, d));
      }
    }
  });

  test("a batch's own context applies to each of its events, under the event's own; its integrations only to events without their own", async () => {
    const body = {
      context: { locale: "fr-FR", timezone: "Europe/Paris", ip: "203.0.113.7" },
      integrations: { All: false, Amplitude: true, Warehouse: true },
      batch: [
        { ...event, type: "track", messageId: "shared-1", context: undefined },
        { ...event, type: "track", messageId: "shared-2", context: { locale: "en-US" }, integrations: { All: true } },
      ],
    };
    const res = await post("/v1/batch", body);
    assert.equal(res.status, 200);
    const merged = [
      { ...body.batch[0], context: body.context, integrations: body.integrations },
      { ...body.batch[1], context: { ...body.context, locale: "en-US" }, integrations: { All: true } },
    ];
    for (const d of ["amplitude", "warehouse"]) {
      await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, "shared-2")), d);
      for (const ev of merged) assert.deepEqual(dest[d].delivered().find((e) => e.messageId === idFor(d, ev.messageId)), expected(ev, d), d);
    }
    // Routing: the batch's All false keeps shared-1 from ads; shared-2's own
    // All true sends it there.
    await until(() => dest.ads.delivered().some((e) => e.messageId === hmac("shared-2")), "ads");
    assert.equal(dest.ads.delivered().some((e) => e.messageId === hmac("shared-1")), false);
    const amp = dest.amplitude.delivered().find((e) => e.messageId === hmac("shared-1"));
    assert.deepEqual(amp.context, { locale: "fr-FR", timezone: "Europe/Paris" }, "the shared IP is dropped like any other");
    const bad = await post("/v1/batch", { context: "fr-FR", batch: [{ ...event, type: "track" }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, "invalid_body");
    // "batch" twice: JSON.parse would take the last, so the engine refuses it.
    const one = JSON.stringify([{ ...event, type: "track", messageId: "dup-batch" }]);
    const twice = await post("/v1/batch", `{"batch":[],"batch":${one}}`);
    assert.equal(twice.status, 400);
    assert.equal(twice.body.code, "duplicate_key");
  });

  test("numbers reach destinations and masking exactly as the client wrote them", async () => {
    const body = '{"event":"E","messageId":"exact-numbers","userId":12345678901234567890,"properties":{"value":1.50,"email":1E+2}}';
    assert.equal((await post("/v1/track", body)).status, 200);
    const raw = async (d) => {
      await until(() => dest[d].requests.some((r) => r.body.includes(idFor(d, "exact-numbers"))), d);
      return dest[d].requests.find((r) => r.body.includes(idFor(d, "exact-numbers"))).body;
    };
    const amplitude = JSON.parse(await raw("amplitude")).batch[0];
    assert.equal(amplitude.userId, hmac("12345678901234567890"));
    assert.equal(amplitude.properties.email, hmac("1E+2"));
    assert.ok((await raw("ads")).includes('"value":1.50'), "allowed as written");
    assert.ok((await raw("warehouse")).includes('"userId":12345678901234567890'), "unchanged for the BAA destination");
  });

  test("nothing is sent to client-side destinations", async () => {
    await post("/v1/track", { ...event, messageId: "client-side-check" });
    await until(() => dest.warehouse.delivered().some((e) => e.messageId === "client-side-check"), "warehouse");
    await sentinel();
    for (const d of SERVER_SIDE) assert.equal(dest[d].delivered().filter((e) => e.messageId === idFor(d, "client-side-check")).length, 1, d);
    assert.equal(dest.ga4.requests.length, 0);
  });

  test("none of the visitor's headers, and not the write key, go to any destination", async () => {
    const visitor = {
      Authorization: basic(WRITE_KEY),
      Cookie: "session=visitor-cookie-123",
      "User-Agent": "VisitorBrowser/1.0 visitor-ua",
      Referer: "https://clinic.example/patients/8812?email=jane%40example.com",
      "X-Forwarded-For": "198.51.100.23",
      "CF-Connecting-IP": "198.51.100.24",
      "X-Real-IP": "198.51.100.25",
      Origin: "https://clinic.example",
      AnonymousId: Buffer.from("anon-visitor-99").toString("base64"),
    };
    const res = await post("/v1/track", { ...event, messageId: "headers-check", writeKey: WRITE_KEY }, visitor);
    assert.equal(res.status, 200);
    for (const d of ["amplitude", "ads", "warehouse"]) {
      await until(() => dest[d].delivered().some((e) => e.messageId === idFor(d, "headers-check")), d);
      const req = dest[d].requests.find((r) => r.body.includes(idFor(d, "headers-check")));
      const names = Object.keys(req.headers);
      for (const h of ["cookie", "user-agent", "referer", "x-forwarded-for", "cf-connecting-ip", "x-real-ip", "origin", "anonymousid"]) {
        assert.ok(!names.includes(h), `${d} got header ${h}`);
      }
      // Only the destination's own credential, never the visitor's.
      assert.equal(req.headers.authorization, d === "warehouse" ? WAREHOUSE_AUTH : undefined, d);
      const sent = JSON.stringify(req.headers) + req.body;
      for (const v of ["visitor-cookie-123", "visitor-ua", "198.51.100.2", "clinic.example/patients", WRITE_KEY, visitor.AnonymousId]) {
        assert.ok(!sent.includes(v), `${d} got ${v}`);
      }
      assert.equal(req.headers["content-type"], "application/json");
      assert.equal(req.method, "POST");
    }
  });

  test("write key: Basic auth or writeKey in the body; missing or unknown is 401", async () => {
    const before = total();
    const ok = await post("/v1/track", { ...event, writeKey: WRITE_KEY }, {});
    assert.equal(ok.status, 200);
    // analytics.js batches carry the key in each event.
    const inEvent = await post("/v1/batch", { batch: [{ ...event, type: "track", writeKey: WRITE_KEY }] }, {});
    assert.equal(inEvent.status, 200);
    await until(() => total() === before + 6, "the accepted events at three destinations");
    // Each refused request carries its own messageId: none may arrive.
    const cases = [
      [{}, { ...event, messageId: "refused-key-1" }, "missing_write_key"],
      [{ Authorization: basic("wrong-key") }, { ...event, messageId: "refused-key-2" }, "invalid_write_key"],
      [{}, { ...event, messageId: "refused-key-3", writeKey: "wrong-key" }, "invalid_write_key"],
      [{ Authorization: basic("wrong-key") }, { ...event, messageId: "refused-key-4", writeKey: WRITE_KEY }, "invalid_write_key"],
      [{}, { batch: [{ ...event, type: "track", messageId: "refused-key-5", writeKey: "wrong-key" }] }, "invalid_write_key"],
    ];
    for (const [headers, body, code] of cases) {
      const res = await post(body.batch ? "/v1/batch" : "/v1/track", body, headers);
      assert.equal(res.status, 401, code);
      assert.equal(res.body.code, code);
      assert.equal(res.body.success, false);
      assert.ok(!JSON.stringify(res.body).includes("wrong-key"));
    }
    await sentinel();
    assert.equal(total(), before + 6 + 3, "only the accepted requests and the sentinel were forwarded (to three destinations each)");
    for (const d of SERVER_SIDE) {
      for (const [, body] of cases) {
        const id = (body.batch?.[0] ?? body).messageId;
        assert.ok(!dest[d].requests.some((r) => r.body.includes(idFor(d, id))), `${d} got ${id}`);
      }
    }
  });

  test("bad requests: clear 4xx JSON errors that echo nothing, and nothing is forwarded", async () => {
    // Earlier tests' deliveries have all arrived once a sentinel has.
    await sentinel();
    const before = total();
    const since = Object.fromEntries(SERVER_SIDE.map((d) => [d, dest[d].requests.length]));
    const auth = { Authorization: basic(WRITE_KEY) };
    const cases = [
      ["/v1/track", '{"userId":"jane@example.com",', 400, "invalid_json"],
      ["/v1/track", '["jane@example.com"]', 400, "invalid_body"],
      ["/v1/track", JSON.stringify({ ...event, properties: { note: "jane ".repeat(7000) } }), 413, "event_too_large"],
      ["/v1/batch", JSON.stringify({ batch: Array.from({ length: 20 }, () => ({ ...event, type: "track", pad: "jane ".repeat(6000) })) }), 413, "batch_too_large"],
      // Far over the limits: the client still gets its answer, not a cut connection.
      ["/v1/track", JSON.stringify({ ...event, properties: { note: "jane ".repeat(400_000) } }), 413, "event_too_large"],
      ["/v1/batch", JSON.stringify({ batch: [{ ...event, type: "track", pad: "jane ".repeat(1_000_000) }] }), 413, "batch_too_large"],
      ["/v1/batch", JSON.stringify({ batch: { type: "track" } }), 400, "invalid_body"],
      ["/v1/batch", JSON.stringify({ batch: [] }), 400, "invalid_body"],
      ["/v1/batch", JSON.stringify({ batch: [{ type: "nope", userId: "jane@example.com" }] }), 400, "no_event_accepted"],
      ["/v1/identify", JSON.stringify({ traits: { a: nested(70) } }), 400, "event_too_deep"],
    ];
    for (const [path, body, status, code] of cases) {
      const res = await post(path, body, auth).catch((e) => assert.fail(`${code} (${body.length} bytes): ${e.message} ${e.cause ?? ""}`));
      assert.equal(res.status, status, `${code}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.code, code);
      assert.equal(res.body.success, false);
      assert.equal(typeof res.body.error, "string");
      assert.ok(!JSON.stringify(res.body).includes("jane"), JSON.stringify(res.body));
    }
    await sentinel();
    assert.equal(total(), before + 3, "only the sentinel, at three destinations");
    for (const d of SERVER_SIDE) {
      for (const r of dest[d].requests.slice(since[d])) assert.deepEqual(JSON.parse(r.body).batch.map((e) => e.event), ["Sentinel"], d);
    }
  });

  test("CORS preflight, other methods and paths", async () => {
    const pre = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "OPTIONS",
      headers: { Origin: "https://clinic.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, anonymousid" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.match(pre.headers.get("access-control-allow-methods"), /POST/);
    // What analytics.js, analytics-node and RudderStack's browser SDK send.
    const allowed = pre.headers.get("access-control-allow-headers").toLowerCase().split(/,\s*/);
    for (const h of ["authorization", "content-type", "anonymousid"]) assert.ok(allowed.includes(h), h);
    const get = await worker.mf.dispatchFetch("http://edge.test/v1/track");
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST, OPTIONS");
    assert.equal((await get.json()).code, "method_not_allowed");
    for (const path of ["/", "/v1", "/v1/purchase", "/v2/track", "/v1/track/x", "/v1/constructor", "/v1/__proto__"]) {
      const res = await worker.mf.dispatchFetch(`http://edge.test${path}`, { method: "POST", body: "{}" });
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).code, "not_found");
    }
    // analytics.js sends text/plain to avoid a preflight: accepted all the same.
    const res = await post("/v1/page", { ...event, name: "Home" }, { Authorization: basic(WRITE_KEY), "Content-Type": "text/plain" });
    assert.equal(res.status, 200);
  });

  test("GET /health: environment, the policy's hash, destinations with their format and credential, secrets set — never their values", async () => {
    const res = await worker.mf.dispatchFetch("http://edge.test/health");
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.deepEqual(JSON.parse(text), {
      ok: true,
      environment: "test",
      // The hash check-policy prints at build time for this policy.
      policy: { version: 1, sha256: preparedPolicy(JSON.stringify(policy), "a test policy").sha256 },
      secrets: { PHI_MASKING_KEY: true, WRITE_KEYS: true, SERVER_WRITE_KEYS: false, QUEUE_ENCRYPTION_KEY: false, QUEUE_ENCRYPTION_KEY_PREVIOUS: false, OPERATOR_KEY: false },
      queues: { DELIVERY: true, DEAD_LETTER: true },
      databases: { DELIVERY_STATE: true, LEDGER: true },
      // The warehouse is under a BAA and no QUEUE_ENCRYPTION_KEY is set:
      // its bodies (PHI) are never queued but sent at once.
      destinations: [
        { name: "amplitude", format: "segment", credential: false, delivery: "queue" },
        { name: "ads", format: "segment", credential: false, delivery: "queue" },
        { name: "warehouse", format: "segment", credential: true, delivery: "direct" },
      ],
    });
    for (const v of [KEY, WRITE_KEY, WAREHOUSE_AUTH, "other-key"]) assert.ok(!text.includes(v), "no secret's value");
    const post = await worker.mf.dispatchFetch("http://edge.test/health", { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  });

  test("logs name destination, status and count, never event values or keys", async () => {
    await until(() => worker.logs.some((l) => l.includes('"phimask":"forwarded"')), "a forward log");
    const text = worker.logs.join("\n");
    // After all the requests above, the policy was compiled once.
    const compiled = worker.logs.filter((l) => l.includes('"phimask":"policy compiled"'));
    assert.deepEqual(compiled.map((l) => JSON.parse(l)), [{ phimask: "policy compiled", environment: "test", destinations: ["amplitude", "ads", "warehouse"].map((name) => ({ name, format: "segment" })) }]);
    assert.match(text, /"destination":"amplitude","status":200,"events":1/);
    for (const v of ["jane", "patient-8812", KEY, WRITE_KEY, WAREHOUSE_AUTH]) assert.ok(!text.includes(v), v);
  });

  test("without PHI_MASKING_KEY (or with a short one) the worker accepts nothing and forwards nothing", async () => {
    for (const bindings of [{ WRITE_KEYS: WRITE_KEY }, { WRITE_KEYS: WRITE_KEY, PHI_MASKING_KEY: "too-short" }]) {
      const w = await startWorker(built.script, bindings, { spy: true });
      try {
        const before = total();
        const send = () =>
          w.mf.dispatchFetch("http://edge.test/v1/track", {
            method: "POST",
            headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
            body: JSON.stringify(event),
          });
        assert.equal((await (await send()).json()).success, false);
        const res = await send();
        assert.equal(res.status, 503);
        const body = await res.json();
        assert.equal(body.success, false);
        assert.match(body.code, /^(missing_key|key_too_short)$/);
        assert.match(body.error, /PHI_MASKING_KEY/);
        assert.ok(!JSON.stringify(body).includes("too-short"));
        // /health says why, and which secrets are set.
        const health = await w.mf.dispatchFetch("http://edge.test/health");
        assert.equal(health.status, 503);
        const status = await health.json();
        assert.equal(status.ok, false);
        assert.equal(status.error.code, body.code);
        assert.deepEqual(status.secrets, { PHI_MASKING_KEY: "PHI_MASKING_KEY" in bindings, WRITE_KEYS: true, SERVER_WRITE_KEYS: false, QUEUE_ENCRYPTION_KEY: false, QUEUE_ENCRYPTION_KEY_PREVIOUS: false, OPERATOR_KEY: false });
        assert.deepEqual(status.destinations, []);
        assert.ok(!JSON.stringify(status).includes("too-short"), "never the key");
        assert.deepEqual(await queueSentinel(w), [{ sentinel: true }], "nothing queued but the sentinel");
        assert.equal(total(), before);
        const said = w.logs.filter((l) => l.includes('"phimask":"not configured"'));
        assert.equal(said.length, 1, "the operator is told once");
        assert.ok(!said[0].includes("too-short"), "never the key");
      } finally {
        await w.mf.dispose();
      }
    }
  });

  test("a damaged prepared policy: the worker accepts nothing and forwards nothing", async () => {
    // One character of the prepared bytes changed (as a bad copy would).
    const damaged = await bundle(policy, (text) => text.replace(/prepared: "(.)/, (_, c) => `prepared: "${c === "A" ? "B" : "A"}`));
    const w = await startWorker(damaged.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY }, { spy: true });
    try {
      const before = total();
      const res = await w.mf.dispatchFetch("http://edge.test/v1/track", {
        method: "POST",
        headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
        body: JSON.stringify(event),
      });
      assert.equal(res.status, 503);
      const body = await res.json();
      assert.equal(body.code, "invalid_policy");
      assert.match(body.error, /prepare it again/);
      assert.deepEqual(await queueSentinel(w), [{ sentinel: true }], "nothing queued but the sentinel");
      assert.equal(total(), before);
    } finally {
      await w.mf.dispose();
      damaged.cleanup();
    }
  });

  test("without WRITE_KEYS the worker accepts nothing", async () => {
    const w = await startWorker(built.script, { PHI_MASKING_KEY: KEY });
    try {
      const res = await w.mf.dispatchFetch("http://edge.test/v1/track", {
        method: "POST",
        headers: { Authorization: basic(WRITE_KEY) },
        body: JSON.stringify(event),
      });
      assert.equal(res.status, 503);
      assert.equal((await res.json()).code, "no_write_keys");
    } finally {
      await w.mf.dispose();
    }
  });
});

// Destinations under a BAA, without QUEUE_ENCRYPTION_KEY: their bodies
// are never queued, but sent at once with retries while the request runs.
describe("edge worker: failing destinations, delivered directly", () => {
  let flaky;
  let hanging;
  let good;
  let down;
  let refusing;
  let throttling;
  let stuck;
  let built;
  let worker;

  before(async () => {
    flaky = await startDestination([500, 500, 200]);
    hanging = await startDestination(["hang"]);
    good = await startDestination();
    refusing = await startDestination([400]);
    throttling = await startDestination([429, 200]);
    stuck = await startDestination(["hang"]);
    down = await closedUrl();
    const baa = { restrict_phi: false, baa: true };
    built = await bundle({
      version: 1, environment: "test", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      destinations: {
        flaky: { connection: "server-side", endpoint: flaky.url, ...baa },
        down: { connection: "server-side", endpoint: down, ...baa },
        hanging: { connection: "server-side", endpoint: hanging.url, ...baa },
        good: { connection: "server-side", endpoint: good.url, ...baa },
        refusing: { connection: "server-side", endpoint: refusing.url, ...baa },
        throttling: { connection: "server-side", endpoint: throttling.url, ...baa },
        stuck: { connection: "server-side", endpoint: stuck.url, ...baa },
      },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all([flaky, hanging, good, refusing, throttling, stuck].map((d) => d?.close()));
    built?.cleanup();
  });

  test("retries: 500 twice then 200 delivers exactly once, 429 is retried, 400 is not; a down or hanging destination neither delays nor breaks the others", async () => {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "POST",
      headers: { Authorization: basic(WRITE_KEY) },
      body: JSON.stringify({ event: "E", userId: "u-1", messageId: "once", properties: { plan: "gold" } }),
    });
    // The client is answered while a destination still hangs.
    assert.equal(res.status, 200);
    await until(() => hanging.requests.length === 1, "the hanging destination to be called");
    // The good destination is served while the hanging one still holds.
    await until(() => good.delivered().length === 1, "the good destination");
    assert.equal(hanging.delivered().length, 0);
    // The flaky one after two 500s.
    await until(() => flaky.delivered().length === 1, "the flaky destination's third attempt");
    assert.deepEqual(flaky.requests.map((r) => r.status), [500, 500, 200]);
    // Exponential backoff: at least 0.2 s, then 0.4 s between attempts
    // (lower bounds; a few ms of timer slack allowed).
    const [a, b, c] = flaky.requests.map((r) => r.at);
    assert.ok(b - a >= 190, `first backoff ${b - a} ms`);
    assert.ok(c - b >= 390, `second backoff ${c - b} ms`);
    assert.ok(flaky.requests.every((r) => r.body === flaky.requests[0].body), "the same batch each time");
    // The down one gives up after its retries, and says so.
    await until(() => worker.logs.some((l) => l.includes('"phimask":"forward failed","destination":"down"')), "the failure log");
    const failure = JSON.parse(worker.logs.find((l) => l.includes('"destination":"down"')));
    assert.deepEqual(failure, { phimask: "forward failed", destination: "down", status: "network error", events: 1, attempts: 4 });
    // 429 is retried; another 4xx is not (the destination refused the batch).
    await until(() => throttling.delivered().length === 1, "the throttling destination's second attempt");
    assert.deepEqual(throttling.requests.map((r) => r.status), [429, 200]);
    await until(() => worker.logs.some((l) => l.includes('"destination":"refusing"')), "the refusal log");
    const refusal = JSON.parse(worker.logs.find((l) => l.includes('"destination":"refusing"')));
    assert.deepEqual(refusal, { phimask: "forward failed", destination: "refusing", status: 400, events: 1, attempts: 1 });
    hanging.release();
    // A sentinel to the destinations that answer: once it has arrived, a
    // retry of the first event would have too.
    const sentinel = { event: "E", userId: "u-1", messageId: "sentinel-direct", integrations: { All: false, flaky: true, good: true, refusing: true, throttling: true } };
    assert.equal((await worker.mf.dispatchFetch("http://edge.test/v1/track", { method: "POST", headers: { Authorization: basic(WRITE_KEY) }, body: JSON.stringify(sentinel) })).status, 200);
    const carrying = (d, id) => d.requests.filter((r) => JSON.parse(r.body).batch.some((e) => e.messageId === id));
    await until(() => [flaky, good, throttling].every((d) => d.delivered().some((e) => e.messageId === "sentinel-direct")) && carrying(refusing, "sentinel-direct").length === 1, "the sentinel");
    assert.equal(flaky.delivered().filter((e) => e.messageId === "once").length, 1, "exactly once");
    assert.equal(carrying(flaky, "once").length, 3, "two 500s, then delivered");
    assert.equal(carrying(good, "once").length, 1);
    assert.equal(carrying(throttling, "once").length, 2);
    assert.equal(carrying(refusing, "once").length, 1, "a 400 is not retried");
    assert.equal(carrying(hanging, "sentinel-direct").length, 0, "routing kept the sentinel from the others");
  });

  test("a destination that never answers is given up after 4 attempts of 5 s each, and said so", async () => {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "POST",
      headers: { Authorization: basic(WRITE_KEY) },
      body: JSON.stringify({ event: "E", userId: "u-2", messageId: "never-answered" }),
    });
    assert.equal(res.status, 200);
    const mine = () => stuck.requests.filter((r) => r.body.includes("never-answered"));
    await until(() => mine().length === 4, "four attempts", 40_000);
    // Each attempt waits out its 5 s timeout, then the backoff.
    const at = mine().map((r) => r.at);
    for (let i = 1; i < 4; i++) assert.ok(at[i] - at[i - 1] >= 5000 + 200 * 2 ** (i - 1) - 20, `attempt ${i + 1} after ${at[i] - at[i - 1]} ms`);
    await until(() => worker.logs.filter((l) => l.includes('"destination":"stuck"')).length === 2, "the timeout log of each request", 15_000);
    const failure = JSON.parse(worker.logs.filter((l) => l.includes('"destination":"stuck"')).at(-1));
    assert.deepEqual(failure, { phimask: "forward failed", destination: "stuck", status: "timeout", events: 1, attempts: 4 });
    // Each request's give-up line is written after its last attempt.
    assert.equal(mine().length, 4, "no fifth attempt");
  });
});

describe("edge worker: destinations' credentials", () => {
  const dest = {};
  let built;
  let worker;

  before(async () => {
    for (const name of ["crm", "crm-eu", "crm.eu"]) dest[name] = await startDestination();
    built = await bundle({
      version: 1, environment: "test", hipaa: true,
      destinations: Object.fromEntries(Object.entries(dest).map(([name, d]) => [name, { connection: "server-side", endpoint: d.url }])),
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WRITE_KEY, AUTH_CRM: "Basic crm-credential", AUTH_CRM_EU: "Basic eu-credential" });
  });

  after(async () => {
    await worker?.mf.dispose();
    await Promise.all(Object.values(dest).map((d) => d.close()));
    built?.cleanup();
  });

  test("each destination gets only its own AUTH_<NAME>; names that would share one get none", async () => {
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/track", {
      method: "POST",
      headers: { Authorization: basic(WRITE_KEY) },
      body: JSON.stringify({ event: "E", anonymousId: "a-1" }),
    });
    assert.equal(res.status, 200);
    for (const d of Object.values(dest)) await until(() => d.requests.length === 1, "every destination");
    assert.equal(dest.crm.requests[0].headers.authorization, "Basic crm-credential");
    assert.equal(dest["crm-eu"].requests[0].headers.authorization, undefined);
    assert.equal(dest["crm.eu"].requests[0].headers.authorization, undefined);
    const refused = worker.logs.filter((l) => l.includes('"phimask":"credential not sent"')).map((l) => JSON.parse(l).destination);
    assert.deepEqual(refused.sort(), ["crm-eu", "crm.eu"]);
    for (const v of ["crm-credential", "eu-credential"]) assert.ok(!worker.logs.join("\n").includes(v), "no credential in the logs");
  });
});
