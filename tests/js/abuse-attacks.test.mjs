// Attacks on the edge's abuse protection, as a hostile client makes them,
// inside workerd (Miniflare; the rate limits also under `wrangler dev`)
// against real HTTP destinations on 127.0.0.1:
// - rate limits: rotating IPv6 addresses inside one /64, spellings of one
//   address, of a bound origin and of one key's Authorization header,
//   a good key padded past 4 KB, invented client addresses, and 50
//   requests at once: no fresh
//   allowance for any of them, exactly the limit let through, exactly
//   what was let through delivered;
// - keys: an IDN origin and its look-alikes, a header key and a body key
//   that disagree (the header decides; a body key never reaches a
//   destination);
// - fan-out at its bound: 20,000 bodies queued whole, each visitor once
//   per destination; 20,001 refused 413 with nothing queued;
// - bots under "flag": a server's request with a crawler's User-Agent is
//   not judged by it, a browser's is; PHI forged into context.bot (an
//   event's own, a batch's shared, an escaped key) reaches no destination,
//   not even one under a BAA.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { clientOf } from "../../www/worker/ratelimit.js";
import { bundle, sleep, startDestination, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const MASKING_KEY = "abuse-attacks-masking-key-0123456789abcdef";
const PHI = "Jane Doe HIV positive";
const basic = (key, password = "") => `Basic ${Buffer.from(`${key}:${password}`).toString("base64")}`;

/** Waits, if need be, for a fresh window of the limiter (fixed windows), so a burst never straddles two. */
async function freshWindow(period, needMs) {
  const into = Date.now() % (period * 1000);
  if (into > period * 1000 - needMs) await sleep(period * 1000 - into + 50);
}

describe("rate limits against a hostile client", () => {
  // 3 requests per (bucket, client) and 6 per bucket a minute.
  const LIMITS = { RATE_LIMIT_CLIENT: { limit: 3, period: 60 }, RATE_LIMIT_KEY: { limit: 6, period: 60 } };
  const KEYS = Array.from({ length: 8 }, (_, i) => `wk_attack_${i}`);
  let dest;
  let built;
  let worker;
  let n = 0;

  before(async () => {
    dest = await startDestination();
    built = await bundle({
      version: 1, environment: "abuse-attacks", hipaa: true,
      allowlists: { event_properties: { n: "allow" } },
      events: { "*": "allow" },
      // Under a BAA: messageId arrives as sent, to count deliveries by.
      destinations: { warehouse: { connection: "server-side", endpoint: dest.url, restrict_phi: false, baa: true } },
    });
    worker = await startWorker(built.script, {
      PHI_MASKING_KEY: MASKING_KEY,
      WRITE_KEYS: [...KEYS, "wk_attack_site@https://clinic.example"].join(","),
    }, { ratelimits: LIMITS });
  });

  after(async () => {
    await worker?.mf.dispose();
    await dest?.close();
    built?.cleanup();
  });

  /** One track event; resolves to { status, headers, code, messageId }. */
  async function send({ key, ip, headers = {}, bodyKey } = {}) {
    const messageId = `attack-${++n}`;
    const payload = { type: "track", event: "Probe", userId: `u-${n}`, messageId, properties: { n } };
    if (bodyKey) payload.writeKey = bodyKey;
    const res = await fetch(`${worker.url}v1/track`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(key && { Authorization: basic(key) }), ...(ip !== undefined && { "CF-Connecting-IP": ip }), ...headers },
      body: JSON.stringify(payload),
    });
    const body = await res.json();
    return { status: res.status, headers: res.headers, code: body.code, messageId };
  }

  const delivered = () => dest.delivered().map((e) => e.messageId);

  test("the client an address is: IPv6 by its /64, IPv4-mapped as IPv4, anything unreadable one client", () => {
    assert.equal(clientOf("203.0.113.5"), "203.0.113.5");
    assert.equal(clientOf(null), "none");
    const one = clientOf("2001:db8:1:2::7");
    for (const same of ["2001:db8:1:2::8", "2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:0db8:0001:0002:0:0:0:1", " 2001:db8:1:2::9 ", "2001:db8:1:2:a:b:198.51.100.1"]) {
      assert.equal(clientOf(same), one, same);
    }
    for (const other of ["2001:db8:1:3::7", "2001:db8:2:2::7", "2001:db9:1:2::7"]) assert.notEqual(clientOf(other), one, other);
    assert.equal(clientOf("::ffff:203.0.113.5"), "203.0.113.5");
    assert.equal(clientOf("::ffff:cb00:7105"), "203.0.113.5");
    for (const junk of ["garbage", "1.2.3.4.5", "2001:db8::1::2", "2001:db8:1:2:3:4:5:6:7", "fe80::1%eth0", "", "::ffff:300.1.1.1"]) {
      assert.equal(clientOf(junk), "unreadable", junk);
    }
  });

  test("rotating addresses inside one IPv6 /64 gives no fresh allowance; another /64 is another client", async () => {
    await freshWindow(60, 15_000);
    const key = KEYS[0];
    const statuses = [];
    for (let i = 1; i <= 5; i++) statuses.push((await send({ key, ip: `2001:db8:77:1::${i.toString(16)}` })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429], "one /64 is one client");
    // The same /64 written otherwise: still that client.
    assert.equal((await send({ key, ip: "2001:0DB8:0077:0001:dead:beef:0:1" })).status, 429);
    assert.equal((await send({ key, ip: "2001:db8:77:2::1" })).status, 200, "another /64");
    // IPv4-mapped: the IPv4 client.
    for (let i = 0; i < 3; i++) assert.equal((await send({ key: KEYS[1], ip: "203.0.113.77" })).status, 200);
    assert.equal((await send({ key: KEYS[1], ip: "::ffff:203.0.113.77" })).status, 429);
  });

  test("invented client addresses (never Cloudflare's) share one client", async () => {
    await freshWindow(60, 15_000);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await send({ key: KEYS[2], ip: `not-an-ip-${i}` })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  });

  test("spellings of one key's Authorization header, and of a bound origin, share one bucket", async () => {
    await freshWindow(60, 15_000);
    const ip = "203.0.113.80";
    const key = KEYS[3];
    const spellings = [
      basic(key),
      `basic ${Buffer.from(`${key}:`).toString("base64")}`,
      basic(key, "a password"),
      `Basic   ${Buffer.from(`${key}:x`).toString("base64")}  `,
    ];
    const statuses = [];
    for (const authorization of spellings) statuses.push((await send({ ip, headers: { Authorization: authorization } })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    // A key in the body from a bound origin, its Origin spelt three ways: one bucket.
    const origins = ["https://clinic.example", "HTTPS://CLINIC.EXAMPLE", "https://clinic.example:443", "https://Clinic.Example"];
    const byOrigin = [];
    for (const origin of origins) byOrigin.push((await send({ ip: "203.0.113.81", bodyKey: "wk_attack_site", headers: { Origin: origin } })).status);
    assert.deepEqual(byOrigin, [200, 200, 200, 429]);
  });

  test("a good key in an oversized Authorization header gets no second allowance: refused, like any header over 4 KB", async () => {
    await freshWindow(60, 15_000);
    const ip = "203.0.113.90";
    const key = KEYS[7];
    const padded = basic(key, "p".repeat(4096));
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await send({ key, ip })).status);
    // The key's own allowance for this client is used up; a padded header must not reach another.
    for (let i = 0; i < 2; i++) {
      const r = await send({ ip, headers: { Authorization: padded } });
      statuses.push(r.status === 401 ? r.code : r.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, "invalid_authorization", "invalid_authorization"]);
  });

  test("50 requests at once: exactly the limits let through, each 429 readable, exactly those delivered", async () => {
    await freshWindow(60, 20_000);
    // One client: its own limit (3).
    const one = await Promise.all(Array.from({ length: 50 }, () => send({ key: KEYS[4], ip: "198.51.100.200" })));
    // Fifty clients of another key: the key's limit (6).
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => send({ key: KEYS[5], ip: `198.51.100.${i}` })));
    for (const [what, list, limit] of [["one client", one, 3], ["fifty clients", many, 6]]) {
      const ok = list.filter((r) => r.status === 200);
      const refused = list.filter((r) => r.status !== 200);
      assert.equal(ok.length, limit, `${what}: ${ok.length} let through`);
      for (const r of refused) {
        assert.equal(r.status, 429, what);
        assert.equal(r.code, "rate_limited", what);
        assert.equal(r.headers.get("retry-after"), "60", what);
        assert.equal(r.headers.get("access-control-allow-origin"), "*", what);
      }
    }
    // A sentinel (its own key), then exactly the accepted ones are there.
    const s = await send({ key: KEYS[6], ip: "198.51.100.201" });
    assert.equal(s.status, 200);
    await until(() => delivered().includes(s.messageId), "the sentinel");
    for (const r of [...one, ...many]) {
      assert.equal(delivered().filter((m) => m === r.messageId).length, r.status === 200 ? 1 : 0, `${r.messageId} (${r.status})`);
    }
  });
});

describe("keys: IDN origins and disagreeing keys", () => {
  const OPEN = "wk_attack_open";
  const IDN = "wk_attack_idn";
  const SERVER = "sk_attack_server";
  let dest;
  let built;
  let worker;
  let n = 0;

  before(async () => {
    dest = await startDestination();
    built = await bundle({
      version: 1, environment: "abuse-attacks", hipaa: true,
      events: { "*": "allow" },
      // Under a BAA: properties pass whole, so a key that leaked into one would show.
      destinations: { vault: { connection: "server-side", endpoint: dest.url, restrict_phi: false, baa: true } },
    });
    worker = await startWorker(built.script, {
      PHI_MASKING_KEY: MASKING_KEY,
      // The origin written in Unicode in the secret; browsers send it in punycode.
      WRITE_KEYS: `${OPEN},${IDN}@https://bücher.example`,
      SERVER_WRITE_KEYS: SERVER,
    });
  });

  after(async () => {
    await worker?.mf.dispose();
    await dest?.close();
    built?.cleanup();
  });

  async function send(headers, bodyKey) {
    const messageId = `keys-${++n}`;
    const event = { type: "track", event: "Probe", userId: `u-${messageId}`, messageId, properties: { note: "x", nested: { writeKey: bodyKey ?? "none" } } };
    if (bodyKey) event.writeKey = bodyKey;
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify({ batch: [event], ...(bodyKey && { writeKey: bodyKey }) }),
    });
    return { status: res.status, code: (await res.json()).code, messageId };
  }

  test("a key bound to an IDN origin: accepted from its punycode Origin, 403 from look-alikes", async () => {
    const ok = await send({ Authorization: basic(IDN), Origin: "https://xn--bcher-kva.example" });
    assert.equal(ok.status, 200, ok.code);
    for (const origin of ["https://bucher.example", "https://xn--bcher-kva.example.", "https://xn--bcher-kva.example.evil.test", "http://xn--bcher-kva.example", "https://xn--bcher-kva.example/"]) {
      const r = await send({ Authorization: basic(IDN), Origin: origin });
      assert.deepEqual([r.status, r.code], [403, "origin_not_allowed"], origin);
    }
    await until(() => dest.delivered().some((e) => e.messageId === ok.messageId), "the accepted event");
  });

  test("a header key and a body key that disagree: the header decides, and the body's key reaches no destination", async () => {
    // A server key (a secret) pasted into the body beside a good header key.
    const a = await send({ Authorization: basic(OPEN) }, SERVER);
    assert.equal(a.status, 200, a.code);
    // A server key in the header, a browser key in the body.
    const b = await send({ Authorization: basic(SERVER) }, IDN);
    assert.equal(b.status, 200, b.code);
    // A bound key in the header from the wrong origin, an unbound one in the body: refused.
    const c = await send({ Authorization: basic(IDN), Origin: "https://evil.test" }, OPEN);
    assert.deepEqual([c.status, c.code], [403, "origin_not_allowed"]);
    await until(() => [a, b].every((r) => dest.delivered().some((e) => e.messageId === r.messageId)), "both accepted events");
    assert.ok(!dest.delivered().some((e) => e.messageId === c.messageId));
    const all = dest.requests.map((r) => r.body).join("\n");
    for (const key of [SERVER, IDN]) assert.ok(!all.includes(key), `${key} reached the destination`);
  });
});

describe("bots under flag, through the Worker", () => {
  const WEB = "wk_attack_bots";
  const SERVER = "sk_attack_bots";
  let flags;
  let vault;
  let built;
  let worker;
  let n = 0;

  before(async () => {
    flags = await startDestination();
    vault = await startDestination();
    built = await bundle({
      version: 1, environment: "abuse-attacks", hipaa: true, bots: "flag",
      events: { "*": "allow" },
      allowlists: { event_properties: { plan: "allow" } },
      destinations: {
        flags: { connection: "server-side", endpoint: flags.url, allowlists: { context: { bot: "allow" } } },
        vault: { connection: "server-side", endpoint: vault.url, restrict_phi: false, baa: true },
      },
    });
    worker = await startWorker(built.script, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: WEB, SERVER_WRITE_KEYS: SERVER });
  });

  after(async () => {
    await worker?.mf.dispose();
    await flags?.close();
    await vault?.close();
    built?.cleanup();
  });

  /** POSTs a raw batch body; resolves to the marker its event's messageId carries. */
  async function send(headers, body) {
    const marker = `bots-${++n}`;
    const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: body.replaceAll("MARKER", marker),
    });
    assert.equal(res.status, 200, await res.text());
    return marker;
  }

  /** The context each destination received for the event of `marker` (the restricted one masks messageId: found by plan). */
  async function contexts(marker) {
    const at = () => ({ vault: vault.delivered().find((e) => e.messageId === marker), flags: flags.delivered().find((e) => e.properties?.plan === marker) });
    await until(() => at().vault && at().flags, `${marker} at both destinations`);
    const { vault: v, flags: f } = at();
    return { vault: v.context ?? {}, flags: f.context ?? {} };
  }

  const event = (context) => `{"type":"track","event":"Probe","userId":"u","messageId":"MARKER","properties":{"plan":"MARKER"}${context ? `,"context":${context}` : ""}}`;
  const CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
  const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

  test("a server's request is not judged by its crawler User-Agent header; a browser's is", async () => {
    const server = await send({ Authorization: basic(SERVER), "User-Agent": CRAWLER }, `{"batch":[${event(`{"userAgent":"${CHROME}"}`)}]}`);
    const browser = await send({ Authorization: basic(WEB), Origin: "https://clinic.example", "User-Agent": CRAWLER }, `{"batch":[${event()}]}`);
    // A server forwarding a crawler's visit: judged by the event's own user agent.
    const forwarded = await send({ Authorization: basic(SERVER), "User-Agent": CHROME }, `{"batch":[${event(`{"userAgent":"${CRAWLER}"}`)}]}`);
    assert.equal((await contexts(server)).flags.bot, undefined);
    assert.equal((await contexts(browser)).flags.bot, true);
    assert.equal((await contexts(forwarded)).flags.bot, true);
  });

  test("PHI forged into context.bot, by any spelling or place, reaches no destination, not even under a BAA", async () => {
    const forged = [
      `{"batch":[${event(`{"bot":"${PHI}"}`)}]}`,
      `{"batch":[${event(`{"b\\u006ft":"${PHI}"}`)}]}`,
      `{"batch":[${event(`{"bot":{"name":"${PHI}","bot":false}}`)}]}`,
      `{"batch":[${event()}],"context":{"bot":"${PHI}"}}`,
      `{"batch":[${event(`{"locale":"en","bot":false}`)}],"context":{"bot":"${PHI}"}}`,
    ];
    for (const body of forged) {
      for (const headers of [{ Authorization: basic(WEB), Origin: "https://clinic.example", "User-Agent": CHROME }, { Authorization: basic(WEB), Origin: "https://clinic.example", "User-Agent": "curl/8.4.0" }]) {
        const marker = await send(headers, body);
        const got = await contexts(marker);
        const bot = headers["User-Agent"].startsWith("curl") ? true : undefined;
        assert.equal(got.vault.bot, bot, body);
        assert.equal(got.flags.bot, bot, body);
      }
    }
    for (const d of [flags, vault]) assert.ok(!d.requests.some((r) => r.body.includes("Jane")), "PHI reached a destination");
  });
});

describe("fan-out right at the bound: 20,000 bodies queued whole, 20,001 refused with nothing queued", () => {
  const GA4_CREDENTIAL = "G-ATTACK123:attack-api-secret";
  const WRITE_KEY = "wk_attack_fan_out";
  // One visitor per event: GA4 makes one body each.
  const visitors = (n, tag) => Array.from({ length: n }, (_, i) => ({ type: "page", anonymousId: `${tag}-${i}` }));

  /** The Worker with `count` GA4 destinations, its delivery queue read by a spy (nothing is sent). */
  async function start(count, more = {}) {
    const names = Array.from({ length: count }, (_, i) => `ga${i}`);
    const built = await bundle({
      version: 1, environment: "abuse-attacks", hipaa: true,
      allowlists: { event_properties: { a: "allow" } },
      destinations: { ...Object.fromEntries(names.map((n) => [n, { connection: "server-side", format: "ga4", endpoint: `http://127.0.0.1:9/${n}/mp/collect` }])), ...more },
    });
    const worker = await startWorker(built.script, {
      PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: WRITE_KEY,
      ...Object.fromEntries(names.map((n) => [`AUTH_${n.toUpperCase()}`, GA4_CREDENTIAL])),
    }, { spy: true });
    const post = async (events) => {
      const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
        method: "POST",
        headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
        body: JSON.stringify({ batch: events }),
      });
      return { status: res.status, body: await res.json() };
    };
    return { worker, post, stop: async () => { await worker.mf.dispose(); built.cleanup(); } };
  }

  /** Bodies in the spy's messages: a pack's parts, else one. */
  const bodiesIn = (messages) => messages.reduce((n, m) => n + (Array.isArray(m.parts) ? m.parts.length : 1), 0);

  test("4 GA4 destinations x 5,000 visitors = 20,000 bodies: accepted, every body queued once", { timeout: 120_000 }, async () => {
    const { worker, post, stop } = await start(4);
    try {
      const res = await post(visitors(5_000, "edge"));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const [line] = worker.logs.filter((l) => l.includes('"phimask":"request"')).map((l) => JSON.parse(l));
      assert.ok(line.messages <= 500, `${line.messages} messages`);
      await until(async () => (await worker.queued()).length === line.messages, "every message at the spy", 60_000);
      const queued = await worker.queued();
      assert.equal(bodiesIn(queued), 20_000);
      // Each destination's events, each visitor once.
      for (let d = 0; d < 4; d++) {
        const events = queued.filter((m) => m.to === `ga${d}`).flatMap((m) => m.events).sort((a, b) => a - b);
        assert.deepEqual(events, Array.from({ length: 5_000 }, (_, i) => i), `ga${d}`);
      }
    } finally {
      await stop();
    }
  });

  test("a pretty-printed batch: bodies holding its raw newlines go alone, GA4's are packed, and every piece is one visitor's body", { timeout: 60_000 }, async () => {
    const { worker, stop } = await start(1, { seg: { connection: "server-side", endpoint: "http://127.0.0.1:9/seg" } });
    try {
      // Newlines and carriage returns between tokens, inside the values a
      // Segment body copies as written: a newline-split pack would cut it.
      const events = visitors(120, "pretty").map((e, i) => ({ ...e, properties: { a: { n: [i, i + 1] } } }));
      const text = `{"batch":[\n${events.map((e) => JSON.stringify(e, null, 2).replaceAll("\n", "\r\n")).join(",\n")}\n]}`;
      const res = await worker.mf.dispatchFetch("http://edge.test/v1/batch", {
        method: "POST",
        headers: { Authorization: basic(WRITE_KEY), "Content-Type": "application/json" },
        body: text,
      });
      assert.equal(res.status, 200, await res.text());
      const [line] = worker.logs.filter((l) => l.includes('"phimask":"request"')).map((l) => JSON.parse(l));
      await until(async () => (await worker.queued()).length === line.messages, "every message at the spy");
      const queued = await worker.queued();
      const bytes = (m) => Buffer.from(m.body.base64, "base64").toString("utf8");
      const seg = queued.filter((m) => m.to === "seg");
      assert.ok(seg.length >= 1 && seg.every((m) => m.parts === undefined), "the Segment body is never packed");
      assert.ok(seg.some((m) => bytes(m).includes("\n")), "it holds the batch's raw newlines");
      assert.equal(seg.flatMap((m) => JSON.parse(bytes(m)).batch).length, 120);
      const ga = queued.filter((m) => m.to === "ga0");
      assert.ok(ga.some((m) => Array.isArray(m.parts)), "GA4's bodies are packed");
      const clients = [];
      for (const m of ga) {
        const pieces = bytes(m).split("\n");
        assert.equal(pieces.length, m.parts?.length ?? 1);
        for (const piece of pieces) {
          const body = JSON.parse(piece);
          assert.equal(body.events.length, 1);
          clients.push(body.client_id);
        }
      }
      assert.equal(new Set(clients).size, 120, "each visitor in a body of its own, once");
    } finally {
      await stop();
    }
  });

  test("3 GA4 destinations x 6,667 visitors = 20,001 bodies: 413 too_many_bodies, nothing queued", { timeout: 120_000 }, async () => {
    const { worker, post, stop } = await start(3);
    try {
      const res = await post(visitors(6_667, "over"));
      assert.equal(res.status, 413, JSON.stringify(res.body));
      assert.equal(res.body.code, "too_many_bodies");
      assert.ok(!JSON.stringify(res.body).includes("over-"), "no value echoed");
      // A sentinel after it: once its messages are at the spy, anything queued before would be too.
      const ok = await post(visitors(1, "sentinel"));
      assert.equal(ok.status, 200);
      await until(async () => (await worker.queued()).length === 3, "the sentinel's three messages");
      await sleep(500);
      const queued = await worker.queued();
      assert.equal(queued.length, 3, "only the sentinel's");
      assert.deepEqual(queued.map((m) => m.events), [[0], [0], [0]]);
    } finally {
      await stop();
    }
  });
});

describe("rate limits under wrangler dev: IPv6 rotation and 50 requests at once", () => {
  let dest;
  let dev;

  before(async () => {
    dest = await startDestination();
    dev = await startWranglerDev({
      version: 1, environment: "abuse-attacks-dev", hipaa: true,
      events: { "*": "allow" },
      destinations: { warehouse: { connection: "server-side", endpoint: dest.url, restrict_phi: false, baa: true } },
    }, { PHI_MASKING_KEY: MASKING_KEY, WRITE_KEYS: "wk_dev_a,wk_dev_b,wk_dev_c" }, {
      ratelimits: { RATE_LIMIT_CLIENT: { limit: 3, period: 60 }, RATE_LIMIT_KEY: { limit: 8, period: 60 } },
    });
  });

  after(async () => {
    await dev?.stop();
    await dest?.close();
  });

  let n = 0;
  const send = async (key, ip) => {
    const messageId = `dev-${++n}`;
    const res = await fetch(`${dev.url}/v1/track`, {
      method: "POST",
      headers: { Authorization: basic(key), "CF-Connecting-IP": ip, "Content-Type": "application/json" },
      body: JSON.stringify({ type: "track", event: "Probe", userId: `u-${messageId}`, messageId }),
    });
    await res.arrayBuffer();
    return { status: res.status, messageId };
  };

  test("one /64 is one client; 50 at once from one client or from fifty: exactly the limits, exactly those delivered", { timeout: 60_000 }, async () => {
    await freshWindow(60, 25_000);
    const rotation = [];
    for (let i = 1; i <= 5; i++) rotation.push((await send("wk_dev_a", `2001:db8:66:1::${i}`)).status);
    assert.deepEqual(rotation, [200, 200, 200, 429, 429]);
    assert.equal((await send("wk_dev_a", "2001:db8:66:2::1")).status, 200, "another /64");
    const one = await Promise.all(Array.from({ length: 50 }, () => send("wk_dev_b", "198.51.100.9")));
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => send("wk_dev_c", `198.51.100.${100 + i}`)));
    assert.equal(one.filter((r) => r.status === 200).length, 3);
    assert.equal(many.filter((r) => r.status === 200).length, 8);
    for (const r of [...one, ...many]) assert.ok([200, 429].includes(r.status), String(r.status));
    const accepted = [...one, ...many].filter((r) => r.status === 200).map((r) => r.messageId);
    await until(() => accepted.every((m) => dest.delivered().some((e) => e.messageId === m)), "the accepted events");
    const sentinel = await send("wk_dev_a", "203.0.113.200");
    assert.equal(sentinel.status, 200);
    await until(() => dest.delivered().some((e) => e.messageId === sentinel.messageId), "the sentinel");
    const got = dest.delivered().map((e) => e.messageId).filter((m) => [...one, ...many].some((r) => r.messageId === m));
    assert.deepEqual(got.sort(), accepted.sort(), "exactly the accepted, each once");
  });
});
