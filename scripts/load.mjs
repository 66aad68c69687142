#!/usr/bin/env node
// The load test (`make load`), in two parts, each on its own `wrangler dev`
// with the development policy (its server-side destinations, the
// advertising one gated on consent, pointed at the local fakes of their
// APIs), everything on 127.0.0.1:
// - a destination outage: concurrent clients sending batches of realistic
//   events while one destination (Mixpanel) answers 503 for part of the
//   run; requests/s, p50/p99 latency;
// - a flood: several write keys (WRITE_KEYS) sending at a normal rate
//   while one sends 20 times as much, against rate limits sized for the
//   normal keys: per key, requests sent, answered 200 and 429 (with
//   Retry-After); the flood must be refused with 429 before any engine
//   work (the Worker's one "phimask":"request" log line per request the
//   engine processed counts only the 200s) and the normal keys lose nothing.
// Each part counts per destination the events routed to it (what the
// engine makes of every request answered 200, under the policy) against
// what its API accepted, each event by its own ID there (Amplitude's
// insert_id, Mixpanel's $insert_id, the warehouse's messageId, GA4's and
// PostHog's masked IDs, unique per event here), once a sentinel batch sent
// after the drain has reached every destination: exit 1 on any event
// missing, repeated, or not routed there (a refused request's), on any
// normal key's request not answered 200, or on an engine line for a
// refused request. Bounded: CLIENTS × REQUESTS requests of BATCH events,
// then FLOOD_SECONDS of the flood, and time limits. With RESULTS=FILE,
// writes the figures there (`make load`: benches/load.md); PARTS=outage or
// PARTS=flood runs one part.
//   node scripts/load.mjs [CLIENTS] [REQUESTS] [BATCH]
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { startFakes, FAKE_CREDENTIALS } from "../www/dev/fakes.mjs";
import { Sanitizer } from "../www/dev/node.mjs";
import { freePort, root, sleep, startWranglerDev, until } from "../tests/js/worker-harness.mjs";

const [CLIENTS = 8, REQUESTS = 100, BATCH = 20] = process.argv.slice(2).map(Number);
const PARTS = (process.env.PARTS ?? "outage,flood").split(",");
const OUTAGE = { from: 1_000, to: 5_000, destination: "mixpanel", status: 503 };
const SEND_LIMIT_MS = 180_000;
const DRAIN_LIMIT_MS = 180_000;
const WRITE_KEY = "load-write-key";
const OPERATOR_KEY = "load-test-operator-key-0123456789abcdef";
const MASKING_KEY = "load-test-masking-key-0123456789abcdef0123";
// The flood: NORMAL_KEYS keys at NORMAL_RATE requests/s each, one key at
// 20 times that, for FLOOD_SECONDS, of FLOOD_BATCH events a request;
// both limits at twice what a normal key sends in a period.
const FLOOD = {
  normalKeys: ["load-key-clinic-a", "load-key-clinic-b", "load-key-clinic-c"],
  floodKey: "load-key-flooded",
  sentinelKey: "load-key-sentinel",
  normalRate: 2,
  factor: 20,
  seconds: Number(process.env.FLOOD_SECONDS ?? 30),
  batch: 10,
  period: 10,
};
FLOOD.limit = 2 * FLOOD.normalRate * FLOOD.period;

const examples = ["track-appointment", "track-order", "identify-patient", "page-condition", "group-practice"]
  .map((name) => JSON.parse(readFileSync(`${root}examples/events/${name}.json`, "utf8")));

/** A batch of realistic events, each with its own messageId and IDs. */
function batch(client, request, size = BATCH) {
  return Array.from({ length: size }, (_, i) => {
    const e = structuredClone(examples[(request + i) % examples.length]);
    const n = `${client}-${request}-${i}`;
    e.messageId = `load-${n}`;
    if (e.userId) e.userId = `patient-${n}`;
    e.anonymousId = `anon-${n}`;
    e.timestamp = new Date().toISOString();
    return e;
  });
}

const policy = JSON.parse(readFileSync(`${root}policies/development.json`, "utf8"));
// The events a destination's API receives, as its fake reads a body.
const formatOf = (d) => policy.destinations[d].format ?? "segment";
function eventsOf(format, text) {
  const body = format === "segment" && !text.trimStart().startsWith("{") ? text.split("\n").filter(Boolean).map((l) => JSON.parse(l)) : JSON.parse(text);
  if (format === "amplitude") return body.events;
  if (format === "mixpanel") return body;
  if (format === "ga4") return body.events.map((e) => ({ client_id: body.client_id, user_id: body.user_id, ...e }));
  return Array.isArray(body) ? body : body.batch;
}
// One event's ID at a destination: what the API deduplicates on, or
// (GA4, PostHog: none) its masked IDs, name and time.
const ID = {
  amplitude: (e) => e.insert_id,
  mixpanel: (e) => e.properties?.$insert_id,
  ga4: (e) => `${e.client_id}|${e.user_id}|${e.name}|${e.timestamp_micros}`,
  posthog: (e) => `${e.distinct_id}|${e.event}|${e.timestamp}`,
  segment: (e) => e.messageId,
  ndjson: (e) => e.messageId,
};
const idOf = (d, e) => String((ID[formatOf(d)] ?? ID.segment)(e));
// The engine as the Worker runs it, for the routing: which events go where.
const engine = new Sanitizer(policy, MASKING_KEY);
const destinations = engine.destinations();
/** Per destination, the IDs of the events `body` (a request the Worker answered 200) goes out as. */
function routed(body) {
  const { bodies } = engine.processRequest(Buffer.from(body), "batch");
  return Object.fromEntries(destinations.map((d) => [d, (bodies[d] ?? []).flatMap((text) => eventsOf(formatOf(d), text).map((e) => idOf(d, e)))]));
}

/** Fresh fakes and the Worker under wrangler dev sending to them, with `writeKeys` and `ratelimits`. */
async function start(writeKeys, ratelimits) {
  const fakes = await startFakes(await freePort(), { quiet: true });
  const local = structuredClone(policy);
  for (const d of Object.values(local.destinations)) d.endpoint &&= d.endpoint.replace("http://127.0.0.1:8788", fakes.url);
  const dev = await startWranglerDev(local, {
    PHI_MASKING_KEY: MASKING_KEY,
    WRITE_KEYS: writeKeys.join(","),
    QUEUE_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
    AUTH_AMPLITUDE: FAKE_CREDENTIALS.amplitude,
    AUTH_MIXPANEL: FAKE_CREDENTIALS.mixpanel,
    AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
    AUTH_POSTHOG: FAKE_CREDENTIALS.posthog,
    OPERATOR_KEY,
  }, { migrate: true, ...(ratelimits ? { ratelimits } : {}) });
  return { fakes, dev };
}

/**
 * The evidence ledger of the run (GET /evidence for today), once nothing
 * is in flight: per destination, its reconciliation beside what the
 * destination's API accepted; and the requests refused whole, by reason.
 */
async function ledgerOf(dev, fakes) {
  const day = new Date().toISOString().slice(0, 10);
  const get = async () => (await fetch(`${dev.url}/evidence?from=${day}&to=${day}`, { headers: { Authorization: `Bearer ${OPERATOR_KEY}` } })).json();
  let report = await get();
  const settled = (r) => r.reconciliation?.length === destinations.length && r.reconciliation.every((c) => c.in_flight <= 0);
  await until(async () => settled((report = await get())), "the ledger to settle", 60_000).catch(() => {});
  const rows = destinations.map((d) => {
    const c = report.reconciliation?.find((x) => x.destination === d) ?? {};
    return { destination: d, ...c, accepted: (fakes.received[d] ?? []).length };
  });
  const refused = Object.fromEntries((report.refused_requests ?? []).map((r) => [r.reason, r.requests]));
  return { rows, refused, ok: rows.every((r) => r.balanced === true && r.in_flight === 0 && r.delivered === r.accepted) };
}

/** The ledger's figures per destination as Markdown. */
function ledgerTable({ rows, ok }) {
  return [
    "The evidence ledger of the run (`GET /evidence`), once nothing was in flight, beside what each API accepted:",
    "",
    "| destination | received | not sent | delivered | dead-lettered | failed | in flight | its API accepted | balanced |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.destination} | ${r.received} | ${r.not_sent} | ${r.delivered} | ${r.dead_lettered} | ${r.failed} | ${r.in_flight} | ${r.accepted} | ${r.balanced && r.delivered === r.accepted ? "yes" : "**no**"} |`),
    "",
    ok ? "The ledger balances, and counts delivered exactly what each destination accepted." : "**The ledger does not balance, or disagrees with what a destination accepted.**",
  ];
}

const authOf = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

/** One request of a batch: { body, status, retryAfter, ms }. */
async function postOnce(dev, key, events) {
  const body = JSON.stringify({ batch: events });
  const t = performance.now();
  const res = await fetch(`${dev.url}/v1/batch`, { method: "POST", headers: { Authorization: authOf(key), "Content-Type": "application/json" }, body });
  await res.arrayBuffer();
  return { body, status: res.status, retryAfter: res.headers.get("retry-after"), ms: performance.now() - t };
}

/**
 * Per destination, the events routed there by the requests of `sent`
 * answered 200 against what its API accepted, once `sentinel` (a request
 * sent after them, answered 200) has arrived everywhere.
 */
async function account(fakes, sent, sendSentinel) {
  const expected = Object.fromEntries(destinations.map((d) => [d, new Map()]));
  const refused = Object.fromEntries(destinations.map((d) => [d, new Set()]));
  const tally = (list) => {
    for (const { body, status } of list) {
      for (const [d, keys] of Object.entries(routed(body))) {
        for (const k of keys) status === 200 ? expected[d].set(k, (expected[d].get(k) ?? 0) + 1) : refused[d].add(k);
      }
    }
  };
  tally(sent);
  const received = (d) => (fakes.received[d] ?? []).map((e) => idOf(d, e));
  const allArrived = () => destinations.every((d) => {
    const got = new Set(received(d));
    return [...expected[d].keys()].every((k) => got.has(k));
  });
  const drainStart = Date.now();
  await until(allArrived, "every destination to receive its events", DRAIN_LIMIT_MS).catch(() => {});
  const drainMs = Date.now() - drainStart;
  // A sentinel batch (each example once, so it reaches every destination)
  // after the drain: once it has arrived everywhere, a repeat or a late
  // event of the run queued before it would have too.
  const sentinel = await sendSentinel(batch("sentinel", 0, examples.length));
  tally([sentinel]);
  const sentinelIds = routed(sentinel.body);
  await until(() => destinations.every((d) => sentinelIds[d].every((k) => received(d).includes(k))), "the sentinel at every destination", 60_000).catch(() => {});

  const figures = Object.fromEntries(destinations.map((d) => {
    const got = received(d);
    const counts = new Map();
    for (const k of got) counts.set(k, (counts.get(k) ?? 0) + 1);
    const routedCount = [...expected[d].values()].reduce((n, c) => n + c, 0);
    return [d, {
      routed: routedCount,
      // Two events with one ID here: the count cannot tell them apart.
      ambiguous: routedCount - expected[d].size,
      accepted: got.length,
      missing: [...expected[d].keys()].filter((k) => !counts.has(k)).length,
      repeated: [...counts.values()].reduce((n, c) => n + c - 1, 0),
      unrouted: [...counts.keys()].filter((k) => !expected[d].has(k)).length,
      fromRefused: [...counts.keys()].filter((k) => refused[d].has(k) && !expected[d].has(k)).length,
    }];
  }));
  for (const [d, f] of Object.entries(figures)) {
    if (f.ambiguous) console.error(`${d}: ${f.ambiguous} events share an ID with another; the count cannot tell them apart`);
    if (f.fromRefused) console.error(`${d}: ${f.fromRefused} events of refused requests arrived`);
  }
  const exact = Object.values(figures).every((f) => faults(f) === 0);
  return { figures, exact, sentinel, allArrived: allArrived(), drainMs };
}
const faults = (f) => f.missing + f.repeated + f.unrouted + f.ambiguous;

/** The figures per destination as Markdown. */
function destinationTable(figures, exact) {
  return [
    "| destination | events routed | events its API accepted | missing | repeated | not routed there | exact |",
    "|---|---|---|---|---|---|---|",
    ...Object.entries(figures).map(([d, f]) => `| ${d} | ${f.routed} | ${f.accepted} | ${f.missing} | ${f.repeated} | ${f.unrouted} | ${faults(f) === 0 ? "yes" : "**no**"} |`),
    "",
    exact ? "No event lost, none delivered twice, none where it was not routed." : "**Events were lost, repeated or misrouted.**",
  ];
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
/** The lines of dev's output of one kind ("request", "rate limited"). */
const logLines = (dev, what) => dev.output().split("\n").filter((l) => l.includes(`"phimask":"${what}"`)).length;

/** Concurrent clients while a destination fails: the lines of the report, and whether it passed. */
async function outagePart() {
  const { fakes, dev } = await start([WRITE_KEY]);
  const latencies = [];
  const statuses = {};
  let sentEvents = 0;
  // The body of each request and the last answer it got.
  const sent = [];
  const started = Date.now();
  try {
    // The destination's outage, by time.
    const outage = [
      setTimeout(() => fakes.outage(OUTAGE.destination, OUTAGE.status), OUTAGE.from),
      setTimeout(() => fakes.outage(OUTAGE.destination, null), OUTAGE.to),
    ];
    /** Sends one batch as an SDK does: a 503 (queue refused) is sent again. */
    async function post(events) {
      let answer;
      for (let tries = 0; tries < 5; tries++) {
        answer = await postOnce(dev, WRITE_KEY, events);
        latencies.push(answer.ms);
        statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
        if (answer.status !== 503) break;
      }
      sent.push(answer);
      return answer;
    }
    await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
      for (let r = 0; r < REQUESTS && Date.now() - started < SEND_LIMIT_MS; r++) {
        const events = batch(client, r);
        await post(events);
        sentEvents += events.length;
      }
    }));
    const sendMs = Date.now() - started;
    outage.forEach(clearTimeout);
    fakes.outage(OUTAGE.destination, null);
    const run = sent.slice();
    const { figures, exact, allArrived, drainMs } = await account(fakes, run, post);
    const ledger = await ledgerOf(dev, fakes);

    latencies.sort((a, b) => a - b);
    const pct = (p) => percentile(latencies, p).toFixed(1);
    const requests = latencies.length;
    const mixpanelFailures = fakes.requests.filter((r) => r.name === OUTAGE.destination && r.status === OUTAGE.status).length;
    const refusedRequests = sent.filter((r) => r.status !== 200).length;
    const lines = [
      "## A destination outage",
      "",
      `- ${CLIENTS} concurrent clients, ${REQUESTS} requests each, ${BATCH} events a batch (${sentEvents} events, ${requests} requests with resends, and a sentinel batch); a 503 is sent again as SDKs do`,
      `- ${OUTAGE.destination} answered ${OUTAGE.status} from ${OUTAGE.from / 1000} s to ${OUTAGE.to / 1000} s of the run (${mixpanelFailures} requests refused)`,
      `- sending took ${(sendMs / 1000).toFixed(1)} s: **${(requests / (sendMs / 1000)).toFixed(1)} requests/s**, ${(sentEvents / (sendMs / 1000)).toFixed(0)} events/s`,
      `- latency to the client's answer: **p50 ${pct(50)} ms, p99 ${pct(99)} ms** (max ${latencies.at(-1).toFixed(1)} ms)`,
      `- answers: ${Object.entries(statuses).map(([s, n]) => `${n} × ${s}`).join(", ")}`,
      `- ${allArrived ? "every routed event delivered" : "**not every routed event delivered**"} ${(drainMs / 1000).toFixed(1)} s after the last request${refusedRequests ? `; **${refusedRequests} requests refused after 5 tries**` : ""}`,
      "",
      "Events routed to each destination (what the engine makes of every request answered 200, under the policy),",
      "against what its API accepted, by each event's ID there; counted once a sentinel batch sent after the run arrived everywhere:",
      "",
      ...destinationTable(figures, exact),
      "",
      ...ledgerTable(ledger),
      "",
    ];
    return { lines, ok: exact && ledger.ok && refusedRequests === 0 && sent.length === CLIENTS * REQUESTS + 1 };
  } finally {
    await dev.stop();
    await fakes.close();
  }
}

/**
 * The flood: each normal key sends NORMAL_RATE requests/s, the flooding
 * key 20 times that, each on a fixed schedule (a request does not wait for
 * the one before: a flood does not slow down for its answers); a 429 is
 * not sent again here, so its events must never arrive.
 */
async function floodPart() {
  const ratelimits = { RATE_LIMIT_CLIENT: { limit: FLOOD.limit, period: FLOOD.period }, RATE_LIMIT_KEY: { limit: FLOOD.limit, period: FLOOD.period } };
  const keys = [...FLOOD.normalKeys, FLOOD.floodKey];
  const { fakes, dev } = await start([...keys, FLOOD.sentinelKey], ratelimits);
  const perKey = Object.fromEntries(keys.map((k) => [k, { sent: 0, statuses: {}, retryAfter: new Set(), noRetryAfter: 0, latencies: [] }]));
  const sent = [];
  try {
    const requestLinesBefore = logLines(dev, "request");
    const limitedLinesBefore = logLines(dev, "rate limited");
    const started = Date.now();
    await Promise.all(keys.map(async (key, k) => {
      const rate = key === FLOOD.floodKey ? FLOOD.normalRate * FLOOD.factor : FLOOD.normalRate;
      const count = rate * FLOOD.seconds;
      const inFlight = [];
      for (let r = 0; r < count; r++) {
        const at = started + (r * 1000) / rate;
        if (at > Date.now()) await sleep(at - Date.now());
        const figures = perKey[key];
        figures.sent += 1;
        inFlight.push(postOnce(dev, key, batch(`flood${k}`, r, FLOOD.batch)).then((answer) => {
          figures.statuses[answer.status] = (figures.statuses[answer.status] ?? 0) + 1;
          figures.latencies.push(answer.ms);
          if (answer.status === 429) answer.retryAfter ? figures.retryAfter.add(answer.retryAfter) : (figures.noRetryAfter += 1);
          sent.push({ ...answer, key });
        }));
      }
      await Promise.all(inFlight);
    }));
    const sendMs = Date.now() - started;
    const { figures, exact, allArrived, drainMs, sentinel } = await account(fakes, sent.slice(), (events) => postOnce(dev, FLOOD.sentinelKey, events));
    const ledger = await ledgerOf(dev, fakes);
    const ok200 = sent.filter((s) => s.status === 200).length + (sentinel.status === 200 ? 1 : 0);
    const got429 = sent.filter((s) => s.status === 429).length;
    const requestLines = logLines(dev, "request") - requestLinesBefore;
    const limitedLines = logLines(dev, "rate limited") - limitedLinesBefore;
    const normalWhole = FLOOD.normalKeys.every((k) => perKey[k].statuses[200] === perKey[k].sent);
    const flooded = perKey[FLOOD.floodKey];
    const floodRefused = (flooded.statuses[429] ?? 0) > 0 && flooded.noRetryAfter === 0;

    const rows = keys.map((k) => {
      const f = perKey[k];
      const sorted = f.latencies.sort((a, b) => a - b);
      const other = Object.entries(f.statuses).filter(([s]) => s !== "200" && s !== "429").map(([s, n]) => `${n} × ${s}`).join(", ") || "0";
      const rate = k === FLOOD.floodKey ? FLOOD.normalRate * FLOOD.factor : FLOOD.normalRate;
      return `| ${k} (${k === FLOOD.floodKey ? "flooding" : "normal"}, ${rate}/s) | ${f.sent} | ${f.statuses[200] ?? 0} | ${f.statuses[429] ?? 0}${f.statuses[429] ? ` (Retry-After: ${[...f.retryAfter].join(", ") || "none"}${f.noRetryAfter ? `; **${f.noRetryAfter} without**` : ""})` : ""} | ${other} | ${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 99).toFixed(1)} ms |`;
    });
    const lines = [
      "## A flooding key",
      "",
      `- ${FLOOD.normalKeys.length} normal keys at ${FLOOD.normalRate} requests/s each and one key at ${FLOOD.factor}× that (${FLOOD.normalRate * FLOOD.factor} requests/s), for ${FLOOD.seconds} s, ${FLOOD.batch} events a batch, each key on a fixed schedule from one client; then a sentinel batch from a key of its own`,
      `- rate limits: \`RATE_LIMIT_CLIENT\` and \`RATE_LIMIT_KEY\` at ${FLOOD.limit} requests per ${FLOOD.period} s each (twice a normal key's rate); a 429 is not sent again here, so none of its events may arrive`,
      `- sending took ${(sendMs / 1000).toFixed(1)} s: ${(sent.length / (sendMs / 1000)).toFixed(1)} requests/s in all`,
      "",
      "| key | requests sent | 200 | 429 | other | p50 / p99 latency |",
      "|---|---|---|---|---|---|",
      ...rows,
      "",
      `- the Worker's log: **${requestLines} \`"phimask":"request"\` lines** (one per request the engine processed) for ${ok200} requests answered 200 (the sentinel's included), and ${limitedLines} \`"phimask":"rate limited"\` lines for ${got429} answers 429: ${requestLines === ok200 && limitedLines === got429 ? "no refused request reached the engine" : "**the counts differ**"}`,
      `- ${allArrived ? "every routed event delivered" : "**not every routed event delivered**"} ${(drainMs / 1000).toFixed(1)} s after the last request`,
      "",
      "Events routed to each destination by the requests answered 200, against what its API accepted (the flood's refused requests held",
      `${sent.filter((s) => s.status !== 200).length * FLOOD.batch} events, none of which may arrive), counted once the sentinel arrived everywhere:`,
      "",
      ...destinationTable(figures, exact),
      "",
      ...ledgerTable(ledger),
      `- the ledger's requests refused whole: ${ledger.refused.rate_limited ?? 0} rate limited, for ${got429} answers 429`,
      "",
    ];
    if (!normalWhole) console.error("a normal key's request was not answered 200");
    if (!floodRefused) console.error("the flooding key was not refused with 429 and Retry-After");
    if (requestLines !== ok200) console.error(`${requestLines} engine lines for ${ok200} requests answered 200`);
    return { lines, ok: exact && ledger.ok && (ledger.refused.rate_limited ?? 0) === got429 && normalWhole && floodRefused && requestLines === ok200 && limitedLines === got429 && sentinel.status === 200 };
  } finally {
    await dev.stop();
    await fakes.close();
  }
}

const parts = { outage: outagePart, flood: floodPart };
const report = [
  "# phimask load test",
  "",
  `Written by \`make load\` (scripts/load.mjs) on ${new Date().toISOString().slice(0, 10)}: the Worker under`,
  "`wrangler dev` (local queues) with the development policy, its six server-side destinations",
  "pointed at the local fakes of their APIs, all on 127.0.0.1;",
  `${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), Node ${process.version}.`,
  "",
];
let ok = true;
for (const name of PARTS) {
  if (!parts[name]) throw new Error(`no part ${name}: outage or flood`);
  const part = await parts[name]();
  report.push(...part.lines);
  ok &&= part.ok;
}
console.log(report.join("\n"));
if (process.env.RESULTS) writeFileSync(process.env.RESULTS, report.join("\n"));
process.exitCode = ok ? 0 : 1;
