#!/usr/bin/env node
// The load test (`make load`): the Worker under `wrangler dev` with the
// development policy (its server-side destinations (the advertising one gated on consent) pointed at the local fakes of
// their APIs), concurrent clients sending batches of realistic events,
// and one destination (Mixpanel) answering 503 for part of the run. Prints
// requests/s, p50/p99 latency, and per destination the events routed to it
// (what the engine makes of every request answered 200, under the policy)
// against what its API accepted, each event by its own ID there (Amplitude's
// insert_id, Mixpanel's $insert_id, the warehouse's messageId, GA4's and
// PostHog's masked IDs, unique per event here): exit 1 on any event
// missing, repeated, or not routed there (a refused request's). Counted
// once a sentinel batch sent after the drain has reached every destination.
// Bounded: CLIENTS × REQUESTS requests of BATCH events, and a time limit;
// everything on 127.0.0.1. With RESULTS=FILE, writes the figures there
// (`make load`: benches/load.md).
//   node scripts/load.mjs [CLIENTS] [REQUESTS] [BATCH]
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { startFakes, FAKE_CREDENTIALS } from "../www/dev/fakes.mjs";
import { Sanitizer } from "../www/dev/node.mjs";
import { freePort, root, startWranglerDev, until } from "../tests/js/worker-harness.mjs";

const [CLIENTS = 8, REQUESTS = 100, BATCH = 20] = process.argv.slice(2).map(Number);
const OUTAGE = { from: 1_000, to: 5_000, destination: "mixpanel", status: 503 };
const SEND_LIMIT_MS = 180_000;
const DRAIN_LIMIT_MS = 180_000;
const WRITE_KEY = "load-write-key";
const MASKING_KEY = "load-test-masking-key-0123456789abcdef0123";

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

const fakes = await startFakes(await freePort(), { quiet: true });
const policy = JSON.parse(readFileSync(`${root}policies/development.json`, "utf8"));
for (const d of Object.values(policy.destinations)) d.endpoint &&= d.endpoint.replace("http://127.0.0.1:8788", fakes.url);
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

const dev = await startWranglerDev(policy, {
  PHI_MASKING_KEY: MASKING_KEY,
  WRITE_KEYS: WRITE_KEY,
  QUEUE_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
  AUTH_AMPLITUDE: FAKE_CREDENTIALS.amplitude,
  AUTH_MIXPANEL: FAKE_CREDENTIALS.mixpanel,
  AUTH_GA4: `${FAKE_CREDENTIALS.ga4.measurement_id}:${FAKE_CREDENTIALS.ga4.api_secret}`,
  AUTH_POSTHOG: FAKE_CREDENTIALS.posthog,
});

const auth = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`;
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
    const body = JSON.stringify({ batch: events });
    let status;
    for (let tries = 0; tries < 5; tries++) {
      const t = performance.now();
      const res = await fetch(`${dev.url}/v1/batch`, { method: "POST", headers: { Authorization: auth, "Content-Type": "application/json" }, body });
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      status = res.status;
      if (status !== 503) break;
    }
    sent.push({ body, status });
    return { body, status };
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

  // What should arrive: each event of a request answered 200, at the
  // destinations the policy routes it to; and what a refused one held.
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
  const before = sent.length;
  const sentinel = await post(batch("sentinel", 0, examples.length));
  tally(sent.slice(before));
  const sentinelIds = routed(sentinel.body);
  await until(() => destinations.every((d) => sentinelIds[d].every((k) => received(d).includes(k))), "the sentinel at every destination", 60_000).catch(() => {});

  // Per destination: routed there, accepted by its API, and what is wrong.
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
  const faults = (f) => f.missing + f.repeated + f.unrouted + f.ambiguous;

  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
  const requests = latencies.length;
  const rows = Object.entries(figures).map(([d, f]) => `| ${d} | ${f.routed} | ${f.accepted} | ${f.missing} | ${f.repeated} | ${f.unrouted} | ${faults(f) === 0 ? "yes" : "**no**"} |`);
  const mixpanelFailures = fakes.requests.filter((r) => r.name === OUTAGE.destination && r.status === OUTAGE.status).length;
  const refusedRequests = sent.filter((r) => r.status !== 200).length;
  const exact = Object.values(figures).every((f) => faults(f) === 0);
  const lines = [
    "# phimask load test",
    "",
    `Written by \`make load\` (scripts/load.mjs) on ${new Date().toISOString().slice(0, 10)}: the Worker under`,
    "`wrangler dev` (local queues) with the development policy, its six server-side destinations",
    "pointed at the local fakes of their APIs, all on 127.0.0.1;",
    `${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), Node ${process.version}.`,
    "",
    `- ${CLIENTS} concurrent clients, ${REQUESTS} requests each, ${BATCH} events a batch (${sentEvents} events, ${requests} requests with resends, and a sentinel batch); a 503 is sent again as SDKs do`,
    `- ${OUTAGE.destination} answered ${OUTAGE.status} from ${OUTAGE.from / 1000} s to ${OUTAGE.to / 1000} s of the run (${mixpanelFailures} requests refused)`,
    `- sending took ${(sendMs / 1000).toFixed(1)} s: **${(requests / (sendMs / 1000)).toFixed(1)} requests/s**, ${(sentEvents / (sendMs / 1000)).toFixed(0)} events/s`,
    `- latency to the client's answer: **p50 ${pct(50)} ms, p99 ${pct(99)} ms** (max ${latencies.at(-1).toFixed(1)} ms)`,
    `- answers: ${Object.entries(statuses).map(([s, n]) => `${n} × ${s}`).join(", ")}`,
    `- ${allArrived() ? "every routed event delivered" : "**not every routed event delivered**"} ${(drainMs / 1000).toFixed(1)} s after the last request${refusedRequests ? `; **${refusedRequests} requests refused after 5 tries**` : ""}`,
    "",
    "Events routed to each destination (what the engine makes of every request answered 200, under the policy),",
    "against what its API accepted, by each event's ID there; counted once a sentinel batch sent after the run arrived everywhere:",
    "",
    "| destination | events routed | events its API accepted | missing | repeated | not routed there | exact |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    exact ? "No event lost, none delivered twice, none where it was not routed." : "**Events were lost, repeated or misrouted.**",
    "",
  ];
  console.log(lines.join("\n"));
  if (process.env.RESULTS) writeFileSync(process.env.RESULTS, lines.join("\n"));
  for (const [d, f] of Object.entries(figures)) {
    if (f.ambiguous) console.error(`${d}: ${f.ambiguous} events share an ID with another; the count cannot tell them apart`);
    if (f.fromRefused) console.error(`${d}: ${f.fromRefused} events of refused requests arrived`);
  }
  process.exitCode = exact && refusedRequests === 0 && sent.length === CLIENTS * REQUESTS + 1 ? 0 : 1;
} finally {
  await dev.stop();
  await fakes.close();
}
