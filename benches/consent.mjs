// Benchmark of consent gating on the Worker's one call per request
// (processRequest, pkg-worker/): the 500-event batch for 3 destinations
// without consent, then with each destination gated on a purpose and every
// event stamped as Segment's consent tools stamp it (each event's consent
// read and decided once for all destinations): everything granted, and
// advertising denied (one destination gets nothing). Medians of 7 rounds
// taken in turns.
import { preparePolicy } from "../www/dev/node.mjs";
import * as edge from "../pkg-worker/phimask.js";
import { batch500, CREDENTIALS, FORMATS, msPerCall, policyWith } from "./destinations.mjs";

const CONSENT = {
  categories: { analytics: ["C0002", "Analytics"], advertising: ["C0004", "Advertising"] },
  gpc: ["advertising"],
  regions: { "US-CA": { mode: "opt-out" } },
};

/** The batch with each event's context stamped with `preferences`. */
function stamped(preferences) {
  const { batch } = JSON.parse(new TextDecoder().decode(batch500()));
  for (const e of batch) e.context = { ...e.context, consent: { categoryPreferences: preferences } };
  return new TextEncoder().encode(JSON.stringify({ batch }));
}

export function consentRows(base, key) {
  const plain = policyWith(base, 3, false);
  const gated = structuredClone(plain);
  gated.consent = CONSENT;
  gated.destinations.d0.consent = ["analytics"];
  gated.destinations.d1.consent = ["analytics"];
  gated.destinations.d2.consent = ["analytics", "advertising"];
  const configs = [
    { name: "no consent section", policy: plain, body: stamped({ C0002: true, C0004: true }) },
    { name: "3 gated, all granted", policy: gated, body: stamped({ C0002: true, C0004: true }) },
    { name: "3 gated, advertising denied", policy: gated, body: stamped({ C0002: true, C0004: false }) },
    { name: "3 gated, GPC, region US-CA", policy: gated, body: stamped({ C0002: true, C0004: true }), signals: { gpc: true, region: "US-CA" } },
  ];
  for (const c of configs) {
    c.s = edge.Sanitizer.fromPrepared(preparePolicy(c.policy), key);
    for (let i = 0; i < 3; i++) c.s.connect(`d${i}`, CREDENTIALS[FORMATS[i]] ?? null);
    c.done = c.s.processRequest(c.body, "batch", undefined, c.signals);
    if (c.done.accepted !== 500) throw new Error(`${c.name}: only ${c.done.accepted} events accepted`);
    c.times = [];
  }
  for (let round = 0; round < 7; round++) {
    for (const c of configs) c.times.push(msPerCall(() => c.s.processRequest(c.body, "batch", undefined, c.signals), 200));
  }
  const base0 = configs[0].times.sort((a, b) => a - b)[3];
  return configs.map((c) => {
    const ms = c.times.sort((a, b) => a - b)[3];
    const sent = Object.values(c.done.report).reduce((n, r) => n + r.events, 0);
    const kept = Object.values(c.done.report).reduce((n, r) => n + r.consent, 0);
    c.s.free();
    return { policy: c.name, "ms per request": ms.toFixed(2), "× no consent": (ms / base0).toFixed(2), "events sent": sent, "kept back by consent": kept };
  });
}
