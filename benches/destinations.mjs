// Benchmark of the Worker's one call per request (processRequest, on the
// Worker's own engine, pkg-worker/): a 500-event batch for N = 1, 2, 4, 8
// destinations in the native formats, against the target
// T(N) ≤ (1 + 0.3·(N − 1)) × T(1) (and N = 3, whose target is 8 ms per
// request in Node); and the bytes sent per event.
import { readFileSync } from "node:fs";
import { preparePolicy } from "../www/dev/node.mjs";
import * as edge from "../pkg-worker/phimask.js";

edge.initSync({ module: readFileSync(new URL("../pkg-worker/phimask_bg.wasm", import.meta.url)) });

export const FORMATS = ["amplitude", "mixpanel", "ga4", "posthog", "segment", "ndjson", "amplitude", "mixpanel"];
export const CREDENTIALS = {
  amplitude: "0123456789abcdef0123456789abcdef",
  mixpanel: "bench-project-secret",
  ga4: "G-BENCH1234:bench-api-secret",
  posthog: "phc_benchprojectkey123",
};

/** The production policy's lists, with N server-side destinations; with
 * `ownLists`, each has an allowlist entry of its own (so each is written
 * separately, sharing only masked values). The benchmark adds one rule to
 * the production lists: `notes` allowed and scanned by the detectors, as
 * the production policy had it when the old size build was measured, so
 * the corpus's scanned slices scan and the figures compare with its. */
export function policyWith(base, n, ownLists) {
  const destinations = {};
  for (let i = 0; i < n; i++) {
    destinations[`d${i}`] = {
      connection: "server-side", format: FORMATS[i], endpoint: `https://d${i}.example/in`,
      ...(ownLists ? { allowlists: { event_properties: { [`own_${i}`]: "allow" } } } : {}),
    };
  }
  const lists = base.allowlists ?? {};
  const allowlists = { ...lists, event_properties: { ...lists.event_properties, notes: { action: "allow", scan: true } } };
  return { ...base, allowlists, destinations };
}

/** A 500-event batch of typical events (about 900 bytes each): 40 users. */
export function batch500() {
  const events = [];
  for (let i = 0; i < 500; i++) {
    events.push({
      type: i % 10 === 9 ? "page" : "track", event: "Booked Cardiology Appointment", name: "Services",
      userId: `patient-${String(i % 40).padStart(6, "0")}`, anonymousId: `3f1c9a2e-7b1d-4f8e-9a55-${String(i % 40).padStart(12, "0")}`,
      messageId: `ajs-next-1732270000-${i}`, timestamp: "2026-11-22T14:05:11.000Z",
      properties: {
        appointment_type: "new-patient", department: "cardiology", provider: "Dr. Alan Grant", reason: "chest pain after exercise",
        email: `patient${i % 40}@example.com`, phone: "+1 617 555 0100", value: 250, currency: "USD", zip: "02118-3301",
        notes: "Please call me back about the referral",
      },
      context: {
        ip: "203.0.113.42", locale: "en-US", timezone: "America/New_York",
        library: { name: "analytics.js", version: "next-1.74.0" },
        page: { path: "/patients/004217/appointments/new", url: "https://portal.clinic.example/patients/004217/appointments/new?utm_source=mail" },
        traits: { email: `patient${i % 40}@example.com`, plan: "gold" },
      },
    });
  }
  return new TextEncoder().encode(JSON.stringify({ batch: events }));
}

/** Milliseconds per call of `fn`, over at least `minMs`, after a warm-up. */
export function msPerCall(fn, minMs) {
  for (let i = 0; i < 3; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < BigInt(minMs) * 1_000_000n) {
    fn();
    n += 1;
    elapsed = process.hrtime.bigint() - start;
  }
  return Number(elapsed) / 1e6 / n;
}

/** Rows of the N-destination table, and the 3-destination figure. The
 * configurations are measured in turns, round after round (medians of 7),
 * so the machine's slow spells fall on all of them alike. */
export function destinationRows(base, key) {
  const body = batch500();
  const configs = [];
  for (const ownLists of [false, true]) {
    for (const n of [1, 2, 3, 4, 8]) {
      const s = edge.Sanitizer.fromPrepared(preparePolicy(policyWith(base, n, ownLists)), key);
      for (let i = 0; i < n; i++) s.connect(`d${i}`, CREDENTIALS[FORMATS[i]] ?? null);
      const done = s.processRequest(body, "batch");
      if (done.accepted !== 500) throw new Error(`only ${done.accepted} events accepted`);
      configs.push({ n, ownLists, s, done, times: [] });
    }
  }
  for (let round = 0; round < 7; round++) {
    for (const c of configs) c.times.push(msPerCall(() => c.s.processRequest(body, "batch"), 200));
  }
  const rows = [];
  let t1;
  for (const { n, ownLists, s, done, times } of configs) {
    const ms = times.sort((a, b) => a - b)[3];
    if (n === 1) t1 = ms;
    const sent = Object.values(done.bodies).flat().reduce((sum, b) => sum + Buffer.byteLength(b), 0);
    const events = Object.values(done.report).reduce((sum, r) => sum + r.events, 0);
    rows.push({
      destinations: n, lists: ownLists ? "own each" : "shared", "ms per request": ms.toFixed(2),
      "µs per event": ((ms * 1000) / 500).toFixed(2), "T(N)/T(1)": (ms / t1).toFixed(2),
      target: (1 + 0.3 * (n - 1)).toFixed(2), "bytes sent per event": Math.round(sent / Math.max(events, 1)),
    });
    s.free();
  }
  return { rows, request: body.length };
}
