#!/usr/bin/env node
// The load test (`make load`): the Worker under `wrangler dev` with the
// development policy (its five server-side destinations pointed at the local fakes of
// their APIs), concurrent clients sending batches of realistic events,
// and one destination (Mixpanel) answering 503 for part of the run. Prints
// requests/s, p50/p99 latency, and per destination the events the Worker
// queued and the events its API accepted, which must be equal (exit 1 if
// not). Bounded: CLIENTS × REQUESTS requests of BATCH events, and a time
// limit; everything on 127.0.0.1. With RESULTS=FILE, writes the figures
// there (`make load`: benches/load.md).
//   node scripts/load.mjs [CLIENTS] [REQUESTS] [BATCH]
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { startFakes, FAKE_CREDENTIALS } from "../www/dev/fakes.mjs";
import { freePort, root, startWranglerDev, until } from "../tests/js/worker-harness.mjs";

const [CLIENTS = 8, REQUESTS = 100, BATCH = 20] = process.argv.slice(2).map(Number);
const OUTAGE = { from: 1_000, to: 5_000, destination: "mixpanel", status: 503 };
const SEND_LIMIT_MS = 180_000;
const DRAIN_LIMIT_MS = 180_000;
const WRITE_KEY = "load-write-key";

const examples = ["track-appointment", "track-order", "identify-patient", "page-condition", "group-practice"]
  .map((name) => JSON.parse(readFileSync(`${root}examples/events/${name}.json`, "utf8")));

/** A batch of realistic events, each with its own messageId and IDs. */
function batch(client, request) {
  return Array.from({ length: BATCH }, (_, i) => {
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
const dev = await startWranglerDev(policy, {
  PHI_MASKING_KEY: "load-test-masking-key-0123456789abcdef0123",
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
const started = Date.now();
try {
  // The destination's outage, by time.
  const outage = [
    setTimeout(() => fakes.outage(OUTAGE.destination, OUTAGE.status), OUTAGE.from),
    setTimeout(() => fakes.outage(OUTAGE.destination, null), OUTAGE.to),
  ];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
    for (let r = 0; r < REQUESTS && Date.now() - started < SEND_LIMIT_MS; r++) {
      const events = batch(client, r);
      const body = JSON.stringify({ batch: events });
      // As an SDK does: a 503 (queue refused) is sent again.
      for (let tries = 0; tries < 5; tries++) {
        const t = performance.now();
        const res = await fetch(`${dev.url}/v1/batch`, { method: "POST", headers: { Authorization: auth, "Content-Type": "application/json" }, body });
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status !== 503) break;
      }
      sentEvents += events.length;
    }
  }));
  const sendMs = Date.now() - started;
  outage.forEach(clearTimeout);
  fakes.outage(OUTAGE.destination, null);

  // What the Worker queued per destination (its request log lines), and
  // what each API accepted (unique events where the body names them).
  const queued = () => {
    const counts = {};
    for (const line of dev.output().split("\n")) {
      const i = line.indexOf('{"phimask":"request"');
      if (i < 0) continue;
      for (const [d, r] of Object.entries(JSON.parse(line.slice(i)).destinations)) counts[d] = (counts[d] ?? 0) + r.events;
    }
    return counts;
  };
  const delivered = () => Object.fromEntries(Object.keys(queued()).map((d) => [d, (fakes.received[d] ?? []).length]));
  const drainStart = Date.now();
  await until(() => Object.entries(queued()).every(([d, n]) => delivered()[d] >= n), "every destination to receive its events", DRAIN_LIMIT_MS).catch(() => {});
  const drainMs = Date.now() - drainStart;
  await new Promise((r) => setTimeout(r, 2000)); // anything more would be a repeat
  const q = queued();
  const got = delivered();

  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
  const requests = latencies.length;
  const rows = Object.keys(q).map((d) => `| ${d} | ${q[d]} | ${got[d]} | ${q[d] === got[d] ? "yes" : "**no**"} |`);
  const mixpanelFailures = fakes.requests.filter((r) => r.name === OUTAGE.destination && r.status === OUTAGE.status).length;
  const equal = Object.keys(q).every((d) => q[d] === got[d]);
  const lines = [
    "# phimask load test",
    "",
    `Written by \`make load\` (scripts/load.mjs) on ${new Date().toISOString().slice(0, 10)}: the Worker under`,
    "`wrangler dev` (local queues) with the development policy, its five server-side destinations",
    "pointed at the local fakes of their APIs, all on 127.0.0.1;",
    `${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), Node ${process.version}.`,
    "",
    `- ${CLIENTS} concurrent clients, ${REQUESTS} requests each, ${BATCH} events a batch (${sentEvents} events, ${requests} requests with resends); a 503 is sent again as SDKs do`,
    `- ${OUTAGE.destination} answered ${OUTAGE.status} from ${OUTAGE.from / 1000} s to ${OUTAGE.to / 1000} s of the run (${mixpanelFailures} requests refused)`,
    `- sending took ${(sendMs / 1000).toFixed(1)} s: **${(requests / (sendMs / 1000)).toFixed(1)} requests/s**, ${(sentEvents / (sendMs / 1000)).toFixed(0)} events/s`,
    `- latency to the client's answer: **p50 ${pct(50)} ms, p99 ${pct(99)} ms** (max ${latencies.at(-1).toFixed(1)} ms)`,
    `- answers: ${Object.entries(statuses).map(([s, n]) => `${n} × ${s}`).join(", ")}`,
    `- every queued event delivered ${(drainMs / 1000).toFixed(1)} s after the last request`,
    "",
    "| destination | events queued | events its API accepted | equal |",
    "|---|---|---|---|",
    ...rows,
    "",
    equal ? "No event lost, none delivered twice." : "**Events were lost or repeated.**",
    "",
  ];
  console.log(lines.join("\n"));
  if (process.env.RESULTS) writeFileSync(process.env.RESULTS, lines.join("\n"));
  process.exitCode = equal && (statuses[200] ?? 0) === CLIENTS * REQUESTS ? 0 : 1;
} finally {
  await dev.stop();
  await fakes.close();
}
