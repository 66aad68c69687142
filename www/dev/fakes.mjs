// Local fakes of the destinations' APIs, for `make run` and the tests. Each
// checks a request the way its API documents (required fields, types,
// limits, credentials) and answers as the API does, partial answers
// included:
//   POST /<name>/2/httpapi   Amplitude HTTP V2
//   POST /<name>/import      Mixpanel /import (strict=1)
//   POST /<name>/mp/collect  GA4 Measurement Protocol
//   POST /<name>/batch/      PostHog /batch/
//   POST /<name>             a Segment batch ({"batch": [...]}) or NDJSON
// What each received is kept by <name> (GET / shows it all); what broke an
// API's rules is kept in `problems` (GA4 answers 2xx regardless, as the real
// one does). `throttle(name, n, retryAfter)` makes the next n requests of a
// destination answer 429, `fail(name, n, status)` answer that status,
// `outage(name, status)` answer it until `outage(name, null)`.

import { createServer } from "node:http";

/** The credentials the fakes accept (the development secrets). */
export const FAKE_CREDENTIALS = {
  amplitude: "0123456789abcdef0123456789abcdef",
  mixpanel: "dev-mixpanel-secret",
  ga4: { measurement_id: "G-DEV12345", api_secret: "dev-ga4-api-secret" },
  posthog: "phc_devprojectkey12345",
};

const GA4_RESERVED = new Set(("ad_activeview ad_click ad_exposure ad_impression ad_query ad_reward adunit_exposure app_background " +
  "app_clear_data app_exception app_install app_remove app_store_refund app_store_subscription_cancel app_store_subscription_convert " +
  "app_store_subscription_renew app_update app_upgrade click dynamic_link_app_open dynamic_link_app_update dynamic_link_first_open " +
  "error file_download first_open first_visit form_start form_submit in_app_purchase notification_dismiss notification_foreground " +
  "notification_open notification_receive os_update page_view screen_view scroll session_start session_start_with_rollout " +
  "user_engagement video_complete video_progress video_start view_search_results").split(" "));
const GA4_NAME = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
const GA4_PREFIXES = ["_", "firebase_", "ga_", "google_", "gtag."];
const MIXPANEL_PLACEHOLDERS = new Set(["anon", "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", "0", "-1", "00000000-0000-0000-0000-000000000000", "<nil>", "[]", "{}", "lmy47d", "false", "true"]);

/** A body as printed: indented JSON (NDJSON: one line each), credentials hidden. */
function printable(api, text) {
  try {
    if (api === "segment" && !text.trimStart().startsWith("{")) return text.trimEnd();
    const body = JSON.parse(text);
    if (body && typeof body.api_key === "string") body.api_key = "(credential)";
    return JSON.stringify(body, null, 2);
  } catch {
    return `(${Buffer.byteLength(text)} bytes, not JSON)`;
  }
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const json = (status, body) => ({ status, body: JSON.stringify(body) });

/** Amplitude HTTP V2 (/2/httpapi). */
function amplitude(req, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { answer: json(400, { code: 400, error: "Invalid JSON request body" }) };
  }
  if (!req.headers["content-type"]?.startsWith("application/json")) return { answer: json(400, { code: 400, error: "Content-Type must be application/json" }) };
  if (Buffer.byteLength(text) > 1_000_000) return { answer: json(413, { code: 413, error: "Payload too large" }) };
  if (typeof body?.api_key !== "string") return { answer: json(400, { code: 400, error: "Request missing required field", missing_field: "api_key" }) };
  if (body.api_key !== FAKE_CREDENTIALS.amplitude) return { answer: json(400, { code: 400, error: "Invalid API key" }) };
  if (!Array.isArray(body.events) || body.events.length === 0) return { answer: json(400, { code: 400, error: "Request missing required field", missing_field: "events" }) };
  if (body.events.length > 2000) return { answer: json(413, { code: 413, error: "Too many events in batch" }) };
  const invalid = {};
  const missing = {};
  const note = (map, field, i) => (map[field] ??= []).push(i);
  body.events.forEach((e, i) => {
    if (!isObject(e)) return note(invalid, "event", i);
    if (typeof e.event_type !== "string" || e.event_type === "") note(missing, "event_type", i);
    if (e.user_id === undefined && e.device_id === undefined) note(missing, "user_id", i);
    for (const id of ["user_id", "device_id"]) {
      // Amplitude's default minimum ID length is 5.
      if (e[id] !== undefined && (typeof e[id] !== "string" || e[id].length < 5)) note(invalid, id, i);
    }
    if (e.time !== undefined && !Number.isInteger(e.time)) note(invalid, "time", i);
    if (e.insert_id !== undefined && typeof e.insert_id !== "string") note(invalid, "insert_id", i);
    for (const o of ["event_properties", "user_properties"]) if (e[o] !== undefined && !isObject(e[o])) note(invalid, o, i);
  });
  if (Object.keys(invalid).length + Object.keys(missing).length > 0) {
    // Amplitude takes none of a body it answers 400.
    return { answer: json(400, { code: 400, error: "Request has invalid or missing fields", events_with_invalid_fields: invalid, events_with_missing_fields: missing }) };
  }
  return { events: body.events, answer: json(200, { code: 200, events_ingested: body.events.length, payload_size_bytes: Buffer.byteLength(text), server_upload_time: Date.now() }) };
}

/** Mixpanel /import with strict=1 and HTTP Basic auth. */
function mixpanel(req, text, url) {
  const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
  const user = auth ? Buffer.from(auth[1], "base64").toString("utf8").split(":")[0] : "";
  if (user !== FAKE_CREDENTIALS.mixpanel) return { answer: json(401, { code: 401, error: "Invalid credentials", status: "error" }) };
  if (url.searchParams.get("strict") !== "1") return { problem: "strict=1 missing", answer: json(200, { code: 200, num_records_imported: 0, status: "OK" }) };
  if (Buffer.byteLength(text) > 2_000_000) return { answer: json(413, { code: 413, error: "request body too large", status: "error" }) };
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { answer: json(400, { code: 400, error: "unable to parse request body", status: "Bad Request" }) };
  }
  if (!Array.isArray(body) || body.length === 0 || body.length > 2000) return { answer: json(400, { code: 400, error: "body must be an array of 1 to 2000 events", status: "Bad Request" }) };
  const failed = [];
  const now = Date.now();
  body.forEach((e, index) => {
    const p = e?.properties;
    const fail = (field, message) => failed.push({ index, $insert_id: p?.$insert_id, field, message });
    if (typeof e?.event !== "string" || e.event === "") return fail("event", "'event' must be a non-empty string");
    if (!isObject(p)) return fail("properties", "'properties' must be an object");
    const time = typeof p.time === "number" && p.time < 1e11 ? p.time * 1000 : p.time;
    if (!Number.isInteger(p.time) || time < Date.UTC(1971, 0, 1) || time > now + 3_600_000) return fail("properties.time", "'properties.time' is invalid: must be specified as seconds or milliseconds since epoch, after 1971 and at most 1 hour in the future");
    if (typeof p.distinct_id !== "string" || MIXPANEL_PLACEHOLDERS.has(p.distinct_id.toLowerCase())) return fail("properties.distinct_id", "'properties.distinct_id' is invalid");
    if (typeof p.$insert_id !== "string" || !/^[A-Za-z0-9-]{1,36}$/.test(p.$insert_id)) return fail("properties.$insert_id", "'properties.$insert_id' is invalid");
  });
  const events = body.filter((_, i) => !failed.some((f) => f.index === i));
  if (failed.length > 0) {
    // The rest is imported: a 400 is a partial success.
    return { events, answer: json(400, { code: 400, error: "some data points in the request failed validation", failed_records: failed, num_records_imported: events.length, status: "Bad Request" }) };
  }
  return { events, answer: json(200, { code: 200, num_records_imported: events.length, status: "OK" }) };
}

/** GA4 Measurement Protocol (/mp/collect): answers 204 whatever it holds. */
function ga4(req, text, url) {
  const problems = [];
  const ok = { status: 204, body: "" };
  if (url.searchParams.get("measurement_id") !== FAKE_CREDENTIALS.ga4.measurement_id || url.searchParams.get("api_secret") !== FAKE_CREDENTIALS.ga4.api_secret) {
    return { problem: "measurement_id or api_secret wrong", answer: ok };
  }
  if (Buffer.byteLength(text) >= 130_000) problems.push("body of 130 kB or more");
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { problem: "not JSON", answer: ok };
  }
  if (typeof body?.client_id !== "string" || body.client_id === "") problems.push("client_id missing");
  if (body.user_id !== undefined && (typeof body.user_id !== "string" || body.user_id.length > 256)) problems.push("user_id invalid");
  if (!Array.isArray(body.events) || body.events.length === 0 || body.events.length > 25) problems.push("events must hold 1 to 25 events");
  for (const e of body.events ?? []) {
    if (!GA4_NAME.test(e?.name ?? "") || GA4_RESERVED.has(e.name) || GA4_PREFIXES.some((p) => e.name.startsWith(p))) problems.push(`event name ${JSON.stringify(e?.name)}`);
    const params = e?.params ?? {};
    if (!isObject(params) || Object.keys(params).length > 25) problems.push("params: an object of at most 25");
    for (const [k, v] of Object.entries(params)) {
      if (!GA4_NAME.test(k) || GA4_PREFIXES.some((p) => k.startsWith(p))) problems.push(`param name ${JSON.stringify(k)}`);
      if (!(typeof v === "number" || (typeof v === "string" && [...v].length <= 100))) problems.push(`param ${k}: a number or a string of at most 100 characters`);
    }
    if (e.timestamp_micros !== undefined && !Number.isInteger(e.timestamp_micros)) problems.push("timestamp_micros must be an integer");
  }
  const events = problems.length === 0 ? body.events.map((e) => ({ client_id: body.client_id, user_id: body.user_id, ...e })) : [];
  return { events, problem: problems.join("; ") || undefined, answer: ok };
}

/** PostHog /batch/. */
function posthog(req, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { answer: json(400, { type: "validation_error", code: "invalid_payload", detail: "Malformed request data" }) };
  }
  if (body?.api_key !== FAKE_CREDENTIALS.posthog) return { answer: json(401, { type: "authentication_error", code: "invalid_api_key", detail: "Project API key invalid" }) };
  if (!Array.isArray(body.batch) || body.batch.length === 0) return { answer: json(400, { type: "validation_error", code: "invalid_payload", detail: "batch must be a non-empty array" }) };
  for (const e of body.batch) {
    if (typeof e?.event !== "string" || typeof e.distinct_id !== "string" || e.distinct_id === "" || !isObject(e.properties ?? {})) {
      return { answer: json(400, { type: "validation_error", code: "invalid_payload", detail: "each event needs event, distinct_id and properties" }) };
    }
    if (e.timestamp !== undefined && Number.isNaN(Date.parse(e.timestamp))) return { answer: json(400, { type: "validation_error", code: "invalid_payload", detail: "timestamp must be ISO 8601" }) };
  }
  return { events: body.batch, answer: json(200, { status: 1 }) };
}

/** A Segment batch, or NDJSON. */
function segment(req, text) {
  if (req.headers["content-type"] === "application/x-ndjson") {
    try {
      return { events: text.split("\n").filter(Boolean).map((l) => JSON.parse(l)), answer: json(200, { success: true }) };
    } catch {
      return { answer: json(400, { success: false }) };
    }
  }
  let batch;
  try {
    batch = JSON.parse(text).batch;
  } catch {
    batch = null;
  }
  if (!Array.isArray(batch)) return { answer: json(400, { success: false }) };
  return { events: batch, answer: json(200, { success: true }) };
}

const APIS = [
  [/^\/([^/]+)\/2\/httpapi$/, "amplitude", amplitude],
  [/^\/([^/]+)\/import$/, "mixpanel", mixpanel],
  [/^\/([^/]+)\/mp\/collect$/, "ga4", ga4],
  [/^\/([^/]+)\/batch\/$/, "posthog", posthog],
  [/^\/([^/]+)$/, "segment", segment],
];

/**
 * Starts the fakes on 127.0.0.1:`port` (0: any). Resolves to { server,
 * url, received, requests, problems, throttle, fail, close }.
 */
export function startFakes(port = 8788, { quiet = false } = {}) {
  const received = {};
  const problems = {};
  const requests = [];
  const scripted = {};
  const down = {};
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received, null, 2));
      return;
    }
    const route = APIS.map(([re, api, check]) => [re.exec(url.pathname), api, check]).find(([m]) => m);
    if (req.method !== "POST" || !route) {
      res.writeHead(404).end();
      return;
    }
    const [[, raw], api, check] = route;
    const name = decodeURIComponent(raw);
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const script = down[name] ? { status: down[name], body: `{"code":${down[name]},"error":"down"}` } : scripted[name]?.shift();
      const result = script ? { answer: script } : check(req, text, url);
      requests.push({ name, api, path: req.url, headers: req.headers, body: text, status: result.answer.status, answer: result.answer.body, at: Date.now() });
      if (result.problem) (problems[name] ??= []).push(result.problem);
      if (result.events?.length) (received[name] ??= []).push(...result.events);
      if (!quiet) {
        const headers = Object.keys(req.headers).sort().join(", ");
        const n = result.events?.length ?? 0;
        console.log(`\n[${name}] ${api} body, ${n} event${n === 1 ? "" : "s"} accepted, answered ${result.answer.status} (headers: ${headers})`);
        if (result.problem) console.log(`[${name}] does not follow the ${api} API: ${result.problem}`);
        console.log(printable(api, text));
        if (result.answer.status >= 300) console.log(`[${name}] answer: ${result.answer.body}`);
      }
      res.writeHead(result.answer.status, { "content-type": "application/json", ...result.answer.headers }).end(result.answer.body);
    });
  });
  const push = (name, n, answer) => {
    (scripted[name] ??= []).push(...Array.from({ length: n }, () => answer));
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({
        server,
        url: `http://127.0.0.1:${server.address().port}`,
        received,
        requests,
        problems,
        /** The next n requests to `name` answer 429 with Retry-After (seconds). */
        throttle: (name, n, retryAfter) => push(name, n, { status: 429, headers: retryAfter === undefined ? {} : { "Retry-After": String(retryAfter) }, body: '{"code":429,"error":"Too many requests for some devices and users"}' }),
        /** Every request to `name` answers `status` until outage(name, null). */
        outage: (name, status) => (down[name] = status),
        /** The next n requests to `name` answer `status`. */
        fail: (name, n, status) => push(name, n, { status, body: `{"code":${status},"error":"scripted"}` }),
        close: () => {
          server.closeAllConnections?.();
          return new Promise((r) => server.close(r));
        },
      }),
    );
  });
}
