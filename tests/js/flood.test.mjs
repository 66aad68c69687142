// A flood under `wrangler dev`: one write key sending 20 times as many
// requests as another, with spoofed client addresses, alongside a flood of
// made-up keys, against limits of 8 requests per 10 s. The flooding key
// gets exactly its limit's worth through and 429s with Retry-After and
// CORS for the rest; the normal key's requests are all answered 200; the
// destination receives exactly the events of the requests answered 200,
// each once; and the Worker's one log line per request taken, and the
// engine's own calls (each logged here), count only those, never a 429
// or a 401 (refused before any engine work). `make load` does the same at
// scale (scripts/load.mjs).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sleep, startDestination, startWranglerDev, until } from "./worker-harness.mjs";

const MASKING_KEY = "flood-test-masking-key-0123456789abcdef";
const NORMAL = "wk_flood_normal";
const FLOOD = "wk_flood_flood";
const SENTINEL = "wk_flood_sentinel";
const LIMIT = 8;
const PERIOD = 10;
const NORMAL_REQUESTS = 4;
const FLOOD_REQUESTS = NORMAL_REQUESTS * 20;
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

describe("a flooding key under wrangler dev", () => {
  let dest;
  let dev;

  before(async () => {
    dest = await startDestination();
    const policy = {
      version: 1, environment: "flood-test", hipaa: true,
      allowlists: { event_properties: { n: "allow", key: "allow" } },
      events: { "Flood Probe": "allow", "*": "drop" },
      destinations: { warehouse: { connection: "server-side", endpoint: dest.url, restrict_phi: false, baa: true } },
    };
    const limits = { RATE_LIMIT_CLIENT: { limit: LIMIT, period: PERIOD }, RATE_LIMIT_KEY: { limit: LIMIT, period: PERIOD } };
    // The engine's own calls are logged: "no engine work" is counted where it would be done.
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: [NORMAL, FLOOD, SENTINEL].join(",") }, { ratelimits: limits, spyEngine: true });
  });

  after(async () => {
    await dev?.stop();
    await dest?.close();
  });

  let n = 0;
  /** One batch of 3 events; resolves to { key, status, headers, body, ids }. */
  async function send(key, headers = {}) {
    const ids = [1, 2, 3].map(() => `flood-${++n}`);
    const batch = ids.map((messageId, i) => ({ type: "track", event: "Flood Probe", userId: `u-${messageId}`, messageId, properties: { n: i, key: key.slice(0, 12) } }));
    const res = await fetch(`${dev.url}/v1/batch`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: basic(key), ...headers },
      body: JSON.stringify({ batch }),
    });
    return { key, status: res.status, headers: res.headers, text: await res.text(), ids };
  }
  const lines = (what) => dev.output().split("\n").filter((l) => l.includes(`"phimask":"${what}"`)).length;
  const engineCalls = () => dev.output().split("\n").filter((l) => l.includes('"phimaskTest":"engine call"')).length;

  test("the flood gets its limit's worth and 429s with Retry-After and CORS; the normal key loses nothing; only accepted events arrive, and only they reach the engine", { timeout: 120_000 }, async () => {
    // The burst inside one window of the limiter (fixed windows): a wait, never a measurement.
    const into = Date.now() % (PERIOD * 1000);
    if (into > PERIOD * 1000 - 7_000) await sleep(PERIOD * 1000 - into + 50);
    const requestsBefore = lines("request");
    const limitedBefore = lines("rate limited");
    const engineBefore = engineCalls();

    // The normal key: one request at a time, spread over the burst.
    const normal = (async () => {
      const out = [];
      for (let i = 0; i < NORMAL_REQUESTS; i++) {
        out.push(await send(NORMAL));
        await sleep(200);
      }
      return out;
    })();
    // The flood: 20 times as many, 10 at a time, each claiming another
    // client address in every header a client can set.
    const flood = (async () => {
      const out = [];
      for (let i = 0; i < FLOOD_REQUESTS; i += 10) {
        out.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => {
          const spoof = `10.9.${i}.${j}`;
          return send(FLOOD, { "CF-Connecting-IP": spoof, "X-Forwarded-For": spoof, "X-Real-IP": spoof, "True-Client-IP": spoof, Forwarded: `for=${spoof}` });
        }))));
      }
      return out;
    })();
    // Made-up keys, one per request: one bucket for every unknown key, so
    // they are refused 401 and then 429, never accepted, never a fresh allowance.
    const fakes = Promise.all(Array.from({ length: 20 }, (_, i) => send(`wk_made_up_${i}_${"x".repeat(i)}`)));
    const [normalAnswers, floodAnswers, fakeAnswers] = await Promise.all([normal, flood, fakes]);

    assert.deepEqual(normalAnswers.map((a) => a.status), Array(NORMAL_REQUESTS).fill(200), "the normal key loses nothing");
    const floodAccepted = floodAnswers.filter((a) => a.status === 200);
    const floodRefused = floodAnswers.filter((a) => a.status === 429);
    assert.equal(floodAccepted.length, LIMIT, "the flooding key gets its limit's worth, spoofed addresses or not");
    assert.equal(floodRefused.length, FLOOD_REQUESTS - LIMIT, "and a 429 for every other request");
    for (const a of floodRefused) {
      assert.equal(a.headers.get("retry-after"), String(PERIOD), "Retry-After: the limit's period");
      assert.equal(a.headers.get("access-control-allow-origin"), "*", "a browser may read the 429");
      assert.match(a.headers.get("access-control-expose-headers") ?? "", /\bretry-after\b/i, "and its Retry-After");
      const body = JSON.parse(a.text);
      assert.equal(body.success, false);
      assert.equal(body.code, "rate_limited");
      assert.doesNotMatch(a.text, /wk_flood|10\.9\./, "no key, no address in the answer");
    }
    assert.ok(fakeAnswers.every((a) => a.status === 401 || a.status === 429), JSON.stringify(fakeAnswers.map((a) => a.status)));
    assert.equal(fakeAnswers.filter((a) => a.status === 401).length, LIMIT, "made-up keys share one bucket");

    // A sentinel after the burst: once it has arrived, anything of the
    // burst that was queued has too.
    const sentinel = await send(SENTINEL);
    assert.equal(sentinel.status, 200, sentinel.text);
    await until(() => dest.delivered().some((e) => e.messageId === sentinel.ids[0]), "the sentinel at the destination", 60_000);
    const accepted = [...normalAnswers, ...floodAccepted, sentinel];
    const expected = accepted.flatMap((a) => a.ids).sort();
    await until(() => dest.delivered().length >= expected.length, "the accepted events", 30_000);
    const delivered = dest.delivered().map((e) => e.messageId).sort();
    assert.deepEqual(delivered, expected, "exactly the events of the requests answered 200, each once");

    // wrangler dev prints a request's log lines after its answer: wait for
    // the accepted ones' and the 429s', then count exactly.
    const refusedLines = floodRefused.length + fakeAnswers.filter((a) => a.status === 429).length;
    await until(() => lines("request") - requestsBefore >= accepted.length && engineCalls() - engineBefore >= accepted.length && lines("rate limited") - limitedBefore >= refusedLines, "the log lines", 30_000);
    // The engine's one line per request it processed: the accepted ones,
    // none of the 429s (each logged as refused instead) or the 401s.
    assert.equal(lines("request") - requestsBefore, accepted.length, "one engine line per accepted request, none for a refused one");
    // And the engine itself was called once per accepted request: never for a 429 or a 401.
    assert.equal(engineCalls() - engineBefore, accepted.length, "one engine call per accepted request, none for a refused one");
    const refused429 = floodRefused.length + fakeAnswers.filter((a) => a.status === 429).length;
    assert.equal(lines("rate limited") - limitedBefore, refused429, "each 429 logged as refused");
    const output = dev.output();
    for (const secret of [NORMAL, FLOOD, SENTINEL]) assert.ok(!output.includes(secret), "no log holds a write key");
  });
});
