// The generated corpus of the benchmark and of the differential test:
// events of 300 bytes to 32 KB in realistic and adversarial shapes, each
// with values the production policy masks, transforms, scans or drops.
// Deterministic for a seed, so a run can be repeated exactly.

/** A small seeded PRNG (mulberry32): [0, 1). */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (rnd, xs) => xs[Math.floor(rnd() * xs.length)];
const digits = (rnd, n) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join("");
const WORDS = ["appointment", "follow-up", "cardiology", "referral", "insurance", "portal", "reminder", "visit", "lab", "results", "pharmacy", "refill", "the", "after", "please", "call", "about", "next", "week"];
const sentence = (rnd, n) => Array.from({ length: n }, () => pick(rnd, WORDS)).join(" ");

/** The Segment fields every event has, for user `u` of 40. */
function envelope(rnd, type, u, i) {
  const event = { type, userId: `patient-${String(u).padStart(6, "0")}`, anonymousId: `3f1c9a2e-7b1d-4f8e-9a55-${String(u).padStart(12, "0")}`, messageId: `ajs-next-1732270000-${i}`, timestamp: "2026-11-22T14:05:11.000Z" };
  if (type === "track") event.event = pick(rnd, ["Booked Cardiology Appointment", "Order Completed", "HIV Testing", "Unlisted Event"]);
  if (type === "page") event.name = "Services";
  return event;
}

function context(rnd, u) {
  return {
    ip: `203.0.113.${u}`, locale: "en-US", timezone: "America/New_York", userAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15",
    library: { name: "analytics.js", version: "next-1.74.0" },
    page: { path: `/patients/${digits(rnd, 6)}/appointments/new`, url: `https://portal.clinic.example/patients/${digits(rnd, 6)}/appointments/new?utm_source=mail&email=p${u}%40example.com`, referrer: "https://search.example/?q=chest+pain" },
    traits: { email: `patient${u}@example.com`, plan: "gold", diagnosis: "I20.9" },
  };
}

/** A realistic event of about `bytes` bytes: the typical properties, then
 * a cart (products[] whose sku and quantity are allowed) to reach the size. */
function realistic(rnd, bytes, i) {
  const u = Math.floor(rnd() * 40);
  const type = pick(rnd, ["track", "track", "track", "page", "identify"]);
  const event = envelope(rnd, type, u, i);
  if (type === "identify") {
    event.traits = { email: `patient${u}@example.com`, plan: "gold", birthday: "1984-03-12", address: { postalCode: "02118", street: "12 Main St" }, signup_year: 2024 };
  } else {
    event.properties = bytes < 600 ? { plan: "basic", email: `patient${u}@example.com`, value: 40, notes: sentence(rnd, 3) } : {
      appointment_type: "new-patient", department: "cardiology", provider: "Dr. Alan Grant", reason: sentence(rnd, 4),
      email: `patient${u}@example.com`, phone: `+1 617 555 ${digits(rnd, 4)}`, value: 250, currency: "USD", zip: "02118-3301",
      notes: rnd() < 0.3 ? `Please call me back at 617-555-${digits(rnd, 4)}` : sentence(rnd, 8),
    };
  }
  if (bytes >= 600) event.context = context(rnd, u);
  const grow = event.properties ?? event.traits;
  grow.products = [];
  let text = JSON.stringify(event);
  while (text.length < bytes - 120) {
    for (let p = 0; p < 4; p++) grow.products.push({ sku: `SKU-${digits(rnd, 6)}`, quantity: 1 + Math.floor(rnd() * 3), name: sentence(rnd, 3), price: Number((rnd() * 100).toFixed(2)) });
    text = JSON.stringify(event);
  }
  if (grow.products.length === 0) delete grow.products;
  return event;
}

/** Adversarial shapes (all within the engine's limits): what costs the
 * reader or an action most per byte. */
const ADVERSARIAL = {
  // Thousands of unlisted keys: each costs one lookup and a skip.
  wide(rnd, bytes, i) {
    const event = envelope(rnd, "track", i % 40, i);
    event.properties = { plan: "basic" };
    // Measured every 32 keys: stringifying after each would be quadratic.
    for (let k = 0; k % 32 || JSON.stringify(event).length < bytes - 320; k++) event.properties[`k${k}`] = k % 3 ? digits(rnd, 3) : k;
    return event;
  },
  // An unlisted subtree nested to the depth limit, repeated: skipped whole.
  deep(rnd, bytes, i) {
    const event = envelope(rnd, "track", i % 40, i);
    event.properties = { plan: "basic", history: [] };
    const nest = () => {
      let v = { note: sentence(rnd, 2) };
      for (let d = 0; d < 58; d++) v = d % 2 ? { x: v, n: d } : [v, d];
      return v;
    };
    do event.properties.history.push(nest());
    while (JSON.stringify(event).length < bytes - 500);
    return event;
  },
  // Escapes in every string: keys, allowed and dropped values, scanned text.
  escapes(rnd, bytes, i) {
    const event = envelope(rnd, "track", i % 40, i);
    const esc = (s) => s.replace(/[aeo]/g, (c) => ({ a: "\u00e4", e: "\u00e9", o: "\u00f6" })[c]) + '\t"quoted"\\';
    event.properties = { department: esc("cardiology"), notes: esc(sentence(rnd, 6)) };
    const step = bytes > 4096 ? 4 : 1;
    for (let k = 0; k % step || text(ADVERSARIAL.escapes, event).length < bytes - 200 * step; k++) {
      event.properties[esc(`key${k}`)] = esc(sentence(rnd, 3));
      event.properties.notes += esc(` ${pick(rnd, WORDS)}`);
    }
    return event;
  },
  // A long scanned text full of near misses for the detectors (digit runs,
  // @ signs, dotted numbers), with some real matches.
  scan(rnd, bytes, i) {
    const event = envelope(rnd, "track", i % 40, i);
    event.event = "Order Completed";
    let notes = "";
    while (notes.length < bytes - 400) {
      notes += pick(rnd, [`ref ${digits(rnd, 3)}-${digits(rnd, 2)}-${digits(rnd, 3)} `, `a@b ${digits(rnd, 4)}.${digits(rnd, 2)} `, `1.2.3.${digits(rnd, 3)}.4 `, `(${digits(rnd, 3)}) ${digits(rnd, 2)} `, `call 617-555-${digits(rnd, 4)} `, `${sentence(rnd, 2)} `]);
    }
    event.properties = { notes, plan: "basic" };
    return event;
  },
  // Distinct masked values: ids, and arrays of emails (a mask rule masks
  // each element) that differ in every event.
  masked(rnd, bytes, i) {
    const event = envelope(rnd, "identify", i, i);
    event.userId = `patient-${digits(rnd, 12)}`;
    event.anonymousId = `anon-${digits(rnd, 16)}`;
    event.traits = { email: [], plan: "gold" };
    event.context = { traits: { email: `q${digits(rnd, 8)}@example.com` }, ip: `198.51.100.${i % 250}` };
    const step = bytes > 4096 ? 8 : 1;
    for (let k = 0; k % step || JSON.stringify(event).length < bytes - 30 * step; k++) event.traits.email.push(`P${digits(rnd, 8)}@Example.com`);
    return event;
  },
};

export const SIZES = [300, 1024, 4096, 32000];

/** Compact JSON text; for `escapes`, every non-ASCII character written as
 * a \u escape (JSON.stringify leaves them as they are). */
function text(make, event) {
  const json = JSON.stringify(event);
  if (make !== ADVERSARIAL.escapes) return json;
  return json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The corpus: per slice (shape and size), events totalling about
 * `budget` bytes (at least 8), as compact JSON text. */
export function corpus(seed = 1, budget = 256 * 1024) {
  const rnd = random(seed);
  const slices = [];
  const add = (shape, kind, bytes, make) => {
    const events = [];
    let total = 0;
    for (let i = 0; events.length < 8 || total < budget; i++) {
      const json = text(make, make(rnd, bytes, i));
      events.push(json);
      total += json.length;
    }
    slices.push({ shape, kind, bytes, events });
  };
  for (const bytes of SIZES) add("realistic", "realistic", bytes, realistic);
  for (const [shape, make] of Object.entries(ADVERSARIAL)) {
    for (const bytes of [1024, 32000]) add(shape, "adversarial", bytes, make);
  }
  return slices;
}

/** Thousands of varied events for the differential test: every shape and
 * size, with random sizes between. */
export function varied(seed, count) {
  const rnd = random(seed);
  const shapes = [realistic, ...Object.values(ADVERSARIAL)];
  return Array.from({ length: count }, (_, i) => {
    const make = pick(rnd, shapes);
    return text(make, make(rnd, 200 + Math.floor(rnd() ** 3 * 8000), i));
  });
}
