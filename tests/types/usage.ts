// Type-checked (never run) by `tsc -p tests/types`: the package's
// TypeScript types describe the policy and the results, and reject
// policies that cannot be valid.
import init, {
  callTypes,
  dataMap,
  limits,
  preparePolicy,
  readRequest,
  Sanitizer,
  validatePolicy,
  type BaaEntry,
  type Ledger,
  type NotSent,
  type CallType,
  type ConsentDecision,
  type Explanation,
  type Report,
  type Limits,
  type PhimaskError,
  type Policy,
  type PolicyProblem,
  type SegmentEvent,
  type Signals,
  type TrackingRequest,
  type ValidationResult,
} from "../../pkg/phimask.js";

export async function usage(): Promise<void> {
  await init();
  const policy: Policy = {
    version: 1,
    environment: "production",
    hipaa: true,
    identifiers: { userId: "mask", anonymousId: "drop" },
    allowlists: {
      event_properties: {
        plan: "allow", email: { action: "mask", normalize: "email" }, "products[].sku": "allow",
        zip: "zip3", dob: "year", age: "age", notes: { action: "allow", scan: ["email", "ssn"], on_match: "mask" },
      },
      user_properties: { email: "mask" },
      context: { locale: "allow", ip: { action: "ip", mode: "zero" }, "page.url": { action: "url", query: ["utm_*"], paths: ["/patients/:id"], segments: ["patients", "book"] }, "page.path": { action: "url", segments: "*" } },
      integrations: { "Amplitude.session_id": "allow" },
    },
    scan: true,
    events: { "Appointment Booked": "allow", "Viewed HIV Testing": { rename: "Viewed Service Page" }, "*": "drop" },
    destinations: {
      amplitude: { connection: "server-side", endpoint: "https://api2.amplitude.example/batch", calls: ["track", "page"], integration: "Amplitude" },
      warehouse: { connection: "server-side", endpoint: "https://w.example/", restrict_phi: false, baa: true },
      ads: { connection: "server-side", endpoint: "https://ads.example/", consent: ["advertising"] },
      lake: { connection: "server-side", endpoint: "https://l.example/", restrict_phi: false, baa: { signed: "2026-01-15", ref: "MSA-2026-014" } },
    },
    consent: {
      mode: "opt-in",
      categories: { advertising: ["C0004", "Advertising"] },
      gpc: ["advertising"],
      regions: { "US-CA": { mode: "opt-out" } },
    },
  };
  const result: ValidationResult = validatePolicy(policy);
  const problems: PolicyProblem[] = [...result.errors, ...result.warnings];
  problems.map((p) => `${p.path}: ${p.message}`);
  const fromText: ValidationResult = validatePolicy(JSON.stringify(policy));
  const map: string = dataMap(policy, "html");
  // @ts-expect-error: the data map is Markdown or HTML only
  dataMap(policy, "pdf");
  void fromText.valid;
  void map;

  const l: Limits = limits();
  void l.maxEventBytes;
  const types: CallType[] = callTypes();
  void types;

  const s = new Sanitizer(policy, "a masking key of at least 32 bytes....");
  // The Worker's way in: a policy prepared at build time.
  const prepared: Uint8Array = preparePolicy(policy);
  const edge: Sanitizer = Sanitizer.fromPrepared(prepared, null);
  const edgeNames: string[] = edge.destinations();
  const register: BaaEntry[] = edge.baaRegister();
  const signed: string | null = register[0].signed;
  void signed;
  const names: string[] = s.destinations();
  const why: Record<string, Explanation> = s.explain({ type: "track", event: "E", userId: "u" });
  const dropped: string[] = why.amplitude.dropped;
  const counts: Report = s.takeReport();
  void [dropped, counts];
  const endpoint: string | undefined = s.endpoint("amplitude");
  const event: SegmentEvent = { type: "track", event: "Signed Up", properties: { plan: "pro" } };
  const out: SegmentEvent | null = s.sanitize(event, names[0]);
  const text: string | null = s.sanitizeJson(JSON.stringify(event), "amplitude");
  void [endpoint, out, text];
  // The request's signals: GPC and the visitor's region, last and optional.
  const signals: Signals = { gpc: true, region: "US-CA" };
  const gated: string | null = s.sanitizeJson(JSON.stringify(event), "ads", signals);
  const decisions: ConsentDecision[] | undefined = s.explain(event, signals).ads.consent;
  const code: Explanation["code"] = s.explain(event).ads.code;
  const kept: number = s.processRequest(new Uint8Array(), "track", undefined, signals).report.ads.consent;
  const done = s.processRequest(new Uint8Array(), "batch", undefined);
  const ledger: Ledger = done.ledger.ads;
  const [call, name]: [CallType | null, string | null] = ledger.labels[0];
  const [label, reason, count]: [number, NotSent, number] = ledger.notSent[0];
  const first: number = ledger.of[0][0];
  const [path, events]: [string, number] = done.inventory[0];
  void [gated, decisions, code, kept, call, name, label, reason, count, first, path, events];
  // @ts-expect-error: reasons are the documented codes
  const wrong: NotSent = "rate_limited";
  void wrong;
  // @ts-expect-error: gpc is a boolean
  s.sanitizeJson("{}", "ads", { gpc: "1" });
  // @ts-expect-error: signals have gpc and region only
  s.explain(event, { GPC: true });
  try {
    new Sanitizer("{}", undefined);
  } catch (e) {
    const err = e as PhimaskError;
    const code: "invalid_policy" | string = err.code;
    const listed: PolicyProblem[] | undefined = err.errors;
    void [code, listed];
  }
  const req: TrackingRequest = readRequest('{"batch":[]}', "batch");
  const key: string | undefined = req.writeKey;
  for (const ev of req.events) {
    if ("text" in ev) s.sanitizeJson(ev.text, "amplitude");
    else void [ev.code, ev.error];
  }
  void key;
  s.free();

  // @ts-expect-error: only version 1 exists
  const v2: Policy = { version: 2, environment: "x", hipaa: true, destinations: {} };
  // @ts-expect-error: actions are "allow" or "mask"
  const typo: Policy = { version: 1, environment: "x", hipaa: true, allowlists: { event_properties: { a: "alow" } }, destinations: {} };
  // @ts-expect-error: connection is "server-side" or "client-side"
  const conn: Policy = { version: 1, environment: "x", hipaa: true, destinations: { a: { connection: "server" } } };
  // @ts-expect-error: unknown list
  const list: Policy = { version: 1, environment: "x", hipaa: true, allowlists: { page_properties: {} }, destinations: {} };
  // @ts-expect-error: hipaa is required
  const noHipaa: Policy = { version: 1, environment: "x", destinations: {} };
  // @ts-expect-error: events need a known type
  const badEvent: SegmentEvent = { type: "purchase" };
  // @ts-expect-error: normalize is email, phone or text
  const badNormalize: Policy = { version: 1, environment: "x", hipaa: true, allowlists: { event_properties: { a: { action: "mask", normalize: "zip" } } }, destinations: {} };
  void badNormalize;
  // @ts-expect-error: calls are call types
  const badCalls: Policy = { version: 1, environment: "x", hipaa: true, destinations: { a: { connection: "server-side", calls: ["purchase"] } } };
  // @ts-expect-error: a name rule is "allow", "drop" or a rename
  const badName: Policy = { version: 1, environment: "x", hipaa: true, events: { E: "keep" }, destinations: {} };
  // @ts-expect-error: a consent mode is "opt-in" or "opt-out"
  const badMode: Policy = { version: 1, environment: "x", hipaa: true, consent: { mode: "opt-maybe", categories: {} }, destinations: {} };
  void [v2, typo, conn, list, noHipaa, badEvent, badCalls, badName, badMode];
}
