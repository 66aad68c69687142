// The phimask edge Worker: a Segment-compatible tracking API that sanitizes
// every event for every server-side destination of the bundled policy,
// enqueues the results (queue.js) and answers only once they are queued,
// and, as the queues' consumer, delivers them server-side. Nothing of the
// visitor's request but the sanitized events leaves the edge.
//
// The per-environment entry files (entry-development.js,
// entry-production.js) import their prepared policy (written by
// www/dev/check-policy.mjs at build time) and call createWorker(policy).
import { callTypes, engineGeneration, restartEngine, Sanitizer, warmUp } from "./engine.js";
import { file, operate, OPERATOR_PATHS } from "./dead-letters.js";
import { authSecret, deliver, fetchSlots, log } from "./forward.js";
import { ingest } from "./ingest.js";
import { writeKeyProblem } from "./keys.js";
import { rateLimit, rateLimitProblem } from "./ratelimit.js";
import { bodyCount, consume, enqueueRequest, FLOOR_BODY_BYTES, MAX_DIRECT_BODIES, MAX_REQUEST_BODIES, MAX_REQUEST_MESSAGES, nextBodyLimit, packed, packMessage, QUEUE_BODY_BYTES, voided } from "./queue.js";
import { codeOf, cors, fail, reply } from "./respond.js";
import { checkedEntry, dayOf, isLedgerMessage, ledgerMessages, policyOf, record, Refusals, requestRows, Rows, sentLabels, writeEntries } from "./ledger.js";
import { evidence, EVIDENCE_PATH, isDay } from "./evidence.js";
import { sealKey } from "./seal.js";

/**
 * A request's queue messages as packs (queue.js packed(): consecutive
 * bodies of one destination share a message, up to `limit` bytes), and
 * the bodies that go out directly (PHI without a seal key: never queued).
 */
function plan(processed, targets, compiled, limit, day) {
  const { bodies, events } = processed;
  const packs = [];
  const direct = [];
  let directBodies = 0;
  for (const [destination, list] of Object.entries(bodies)) {
    const to = targets.get(destination);
    if (list.length === 0) continue;
    // What the ledger counts each event under, carried by its message.
    const labels = { day, of: sentLabels(processed, destination) };
    if (!queued(to, compiled)) {
      direct.push([to, list, events[destination], labels]);
      directBodies += list.length;
    } else for (const pack of packed(list, events[destination], limit)) packs.push([to, pack, labels]);
  }
  return { packs, direct, directBodies };
}

/**
 * The request's messages, each fitting the queue with its envelope and
 * event indexes: bodies of many tiny events are made again, smaller (a
 * few tries from the measured ratio, then the limit any message fits).
 * The fan-out bounds are checked each time before anything is sealed: a
 * request over them costs nothing more.
 */
async function fitted(result, targets, compiled, day) {
  let { processed } = result;
  for (let limit = QUEUE_BODY_BYTES, round = 0; ; round += 1) {
    const bodies = bodyCount(processed);
    if (bodies > MAX_REQUEST_BODIES) {
      log("error", { phimask: "not queued: too many bodies for one request", bodies });
      return { response: fail(413, "too_many_bodies", `the batch fans out into ${bodies} request bodies, more than ${MAX_REQUEST_BODIES}: send fewer distinct users per batch`) };
    }
    const { packs, direct, directBodies } = plan(processed, targets, compiled, limit, day);
    if (packs.length > MAX_REQUEST_MESSAGES || directBodies > MAX_DIRECT_BODIES) {
      log("error", { phimask: "not queued: too many messages for one request", messages: packs.length, direct: directBodies });
      const [n, max, what] = packs.length > MAX_REQUEST_MESSAGES ? [packs.length, MAX_REQUEST_MESSAGES, "queue messages"] : [directBodies, MAX_DIRECT_BODIES, "direct deliveries"];
      return { response: fail(413, "too_many_messages", `the batch fans out into ${n} ${what}, more than ${max}: send fewer distinct users per batch`) };
    }
    const messages = await Promise.all(packs.map(([to, pack, labels]) => packMessage(to, pack, compiled, labels)));
    const next = nextBodyLimit(messages, limit);
    if (next === null) return { processed, planned: { messages, direct } };
    if (next >= limit) {
      log("error", { phimask: "not queued: a message would not fit the queue", messages: messages.length });
      return { response: fail(413, "batch_too_large", "the batch's events do not fit the delivery queue: send it in smaller batches") };
    }
    limit = round < 2 ? next : FLOOR_BODY_BYTES;
    const again = result.rerun(limit);
    if (again.response) return again;
    ({ processed } = again);
  }
}

/** Each environment's dead-letter queue: phimask-dead-letter-<environment>. */
const isDeadLetterQueue = (name) => /^phimask-dead-letter(-|$)/.test(name);

/**
 * Segment call types by path segment: the engine's six, each also by its
 * first letter (/v1/t …). analytics.js posts batches to /v1/b; Segment's
 * HTTP API also names it /v1/import.
 */
const CALLS = Object.fromEntries([
  ...callTypes().flatMap((t) => [[t, t], [t[0], t]]),
  ["batch", "batch"], ["b", "batch"], ["import", "batch"],
]);

/**
 * Each destination's credential secret; none for names that share one
 * (`a-b` and `a.b`), so no destination is ever sent another's credential.
 */
function credentialSecrets(destinations) {
  const names = destinations.map(authSecret);
  const secrets = new Map();
  destinations.forEach((d, i) => {
    const shared = names.filter((n) => n === names[i]).length > 1;
    if (shared) console.error(JSON.stringify({ phimask: "credential not sent", destination: d, reason: `${names[i]} would be shared with another destination` }));
    secrets.set(d, shared ? null : names[i]);
  });
  return secrets;
}

/**
 * Why the Worker would refuse every event, as `{ code, message }`, in the
 * order a request meets them; none when it accepts events. /health and
 * the tracking routes both go by this list, so health never says 200
 * while events are refused.
 */
function problems(env, compiled) {
  const list = [];
  const limits = rateLimitProblem(env);
  if (limits) list.push(limits);
  if (compiled.error) list.push({ code: compiled.error.code ?? "not_configured", message: compiled.error.message });
  if (!env.DELIVERY) list.push({ code: "no_delivery_queue", message: "not configured: no DELIVERY queue binding (queues.producers in wrangler.toml)" });
  if (!env.DELIVERY_STATE) list.push({ code: "no_delivery_state", message: "not configured: no DELIVERY_STATE D1 binding (d1_databases in wrangler.toml)" });
  // No event is taken that the evidence ledger cannot count.
  if (!env.LEDGER) list.push({ code: "no_ledger", message: "not configured: no LEDGER D1 binding (d1_databases in wrangler.toml): the evidence ledger" });
  const keys = writeKeyProblem(env);
  if (keys) list.push(keys);
  return list;
}

/**
 * GET /health: the deployment as an operator checks it — environment, the
 * policy's hash, each destination with its format and whether its
 * credential secret is set, and whether the Worker's own secrets and
 * bindings are set; never a secret's value. 503 whenever events would be
 * refused, each reason in `problems` (the first also as `error`).
 */
function health(policy, hash, env, compiled) {
  const set = (name) => typeof env[name] === "string" && env[name] !== "";
  const refusing = problems(env, compiled);
  const body = {
    ok: refusing.length === 0,
    environment: policy.environment,
    policy: { version: 1, sha256: hash },
    secrets: Object.fromEntries(["PHI_MASKING_KEY", "WRITE_KEYS", "SERVER_WRITE_KEYS", "QUEUE_ENCRYPTION_KEY", "QUEUE_ENCRYPTION_KEY_PREVIOUS", "OPERATOR_KEY"].map((k) => [k, set(k)])),
    queues: { DELIVERY: !!env.DELIVERY, DEAD_LETTER: !!env.DEAD_LETTER },
    databases: { DELIVERY_STATE: !!env.DELIVERY_STATE, LEDGER: !!env.LEDGER },
    // delivery "direct": under a BAA without QUEUE_ENCRYPTION_KEY, sent at once, never queued.
    destinations: [...(compiled.targets?.values() ?? [])].map((t) => ({ name: t.destination, format: t.format, credential: t.secret ? set(t.secret) : false, delivery: queued(t, compiled) ? "queue" : "direct" })),
  };
  if (refusing.length > 0) {
    body.problems = refusing;
    body.error = refusing[0];
  }
  return reply(refusing.length > 0 ? 503 : 200, body);
}

// A ledger message D1 did not take is given again this much later (after
// the queue's max_retries, the dead-letter queue's consumer writes it).
const LEDGER_RETRY_SECONDS = 10;

/**
 * Writes a consumer invocation's ledger: its ledger messages (acked once
 * written, retried if not; dropped when their request was voided) and
 * the outcomes of its deliveries (queued as a ledger message when D1
 * does not take them).
 */
async function settleLedger(env, messages, outcomes, maps) {
  const entries = [];
  const take = [];
  for (const msg of messages) {
    if (typeof msg.body.req === "string") {
      let gone;
      try {
        gone = await voided(env, msg.body.req);
      } catch {
        msg.retry({ delaySeconds: LEDGER_RETRY_SECONDS });
        continue;
      }
      // Its request was refused and sent again: its counts never happened.
      if (gone) {
        msg.ack();
        continue;
      }
    }
    const entry = checkedEntry(msg.body);
    if (entry) entries.push(entry);
    take.push(msg);
  }
  try {
    await writeEntries(env.LEDGER, [...entries, ...outcomes.filter((o) => o.rows.length > 0)], maps);
    for (const msg of take) msg.ack();
  } catch (e) {
    log("error", { phimask: "ledger not written, will retry", messages: take.length, error: String(e?.message ?? e).slice(0, 200) });
    for (const msg of take) msg.retry({ delaySeconds: LEDGER_RETRY_SECONDS });
    for (const o of outcomes) await record(env, o, maps);
  }
}

/** Whether a destination's bodies go through the queue (sealed if they hold PHI). */
const queued = (t, compiled) => t.target.restricted || !!compiled.seal;

/** The credential secrets and queue key as they stand, to notice when they change. */
function credentialKey(env) {
  return JSON.stringify(Object.keys(env).filter((k) => k.startsWith("AUTH_") || k === "QUEUE_ENCRYPTION_KEY" || k === "QUEUE_ENCRYPTION_KEY_PREVIOUS").sort().map((k) => [k, env[k]]));
}

/** Where a site says whether it honours Global Privacy Control (the GPC spec's well-known resource). */
const GPC_PATH = "/.well-known/gpc.json";

/**
 * The GPC support resource: `gpc` true when the policy's consent section
 * has GPC deny a purpose (worked out when the policy was prepared), and
 * `lastUpdate` from GPC_LAST_UPDATE when it is a real YYYY-MM-DD date.
 */
function gpcSupport(policy, env) {
  const body = { gpc: policy.gpc === true };
  if (isDay(env.GPC_LAST_UPDATE)) body.lastUpdate = env.GPC_LAST_UPDATE;
  return body;
}

/**
 * The Worker for one prepared policy ({ environment, prepared: base64, gpc }).
 * The policy is compiled once per isolate (and again only if the masking
 * key or a credential secret changes), never per request.
 */
export function createWorker(policy) {
  const prepared = Uint8Array.from(atob(policy.prepared), (c) => c.charCodeAt(0));
  // A prepared policy ends with its SHA-256 (check-policy prints it).
  const hash = Array.from(prepared.subarray(-32), (b) => b.toString(16).padStart(2, "0")).join("");
  warmUp(prepared);
  let compiled = null;
  // What the ledger files this Worker's counts under, and its policy's
  // data map (made at build time) for the report.
  const context = { environment: policy.environment, policy: hash, baa: Array.isArray(policy.baa) ? policy.baa : null, maps: { [hash]: { markdown: policy.map?.markdown ?? null } } };
  const refusals = new Refusals();

  /** A tracking request (POST /v1/<call>) answered; a refusal is counted in the ledger. */
  async function track(request, env, ctx, call) {
    const response = await accept(request, env, ctx, call);
    if (response.status !== 200) refusals.add(ctx, env, context, call, codeOf(response));
    return response;
  }

  async function accept(request, env, ctx, call) {
    // From the headers alone: a refused request's body is never read.
    const limited = await rateLimit(request, env);
    if (limited) return limited;

    const compiled = sanitizerFor(env);
    const { sanitizer, targets } = compiled;
    // Refused for the first reason /health gives (the same list).
    const [problem] = problems(env, compiled);
    if (problem) return fail(503, problem.code, problem.message);
    const result = await ingest(request, env, call, sanitizer, QUEUE_BODY_BYTES);
    if (result.response) return result.response;
    const day = dayOf();
    const fit = await fitted(result, targets, compiled, day);
    if (fit.response) return fit.response;
    const { processed, planned } = fit;
    const { accepted, rejected, rejectedCount, report } = processed;
    // Made again smaller, a batch's events may all be too large now.
    if (accepted === 0) return fail(413, "batch_too_large", "no event of the batch fits the delivery queue once sanitized: send smaller events");
    const { messages, direct } = planned;
    // The request's counts travel in the same sendBatch call as its
    // bodies: counted exactly when they are queued.
    const rows = requestRows(processed, new Set(direct.map(([to]) => to.destination)));
    const ledger = ledgerMessages({ day, environment: context.environment, policy: hash, rows, inventory: processed.inventory ?? [] });
    try {
      await enqueueRequest(env.DELIVERY, env.DELIVERY_STATE, [...messages, ...ledger]);
    } catch (e) {
      log("error", { phimask: "not queued", messages: messages.length, error: String(e?.message ?? e).slice(0, 200) });
      return fail(503, "queue_unavailable", "the delivery queue did not take the events: send them again", {}, { "Retry-After": "5" });
    }
    // One line per request taken: what each destination gets, and the
    // queue messages and direct deliveries it made, as counts; bots only
    // when some event was a bot's.
    const bots = processed.bots > 0 ? { bots: processed.bots } : {};
    console.log(JSON.stringify({ phimask: "request", call, accepted, rejected: rejectedCount, ...bots, messages: messages.length, direct: direct.reduce((n, [, list]) => n + list.length, 0), destinations: report }));
    if (direct.length > 0) ctx.waitUntil(sendDirect(env, direct, day));
    const body = { success: true };
    // rejected lists the first 100 (the answer stays small); rejectedCount has them all.
    if (rejectedCount > 0) {
      body.accepted = accepted;
      body.rejected = rejected;
      body.rejectedCount = rejectedCount;
    }
    return reply(200, body);
  }

  /** Direct deliveries (six at a time over every destination), their outcomes counted in the ledger. */
  async function sendDirect(env, direct, day) {
    const slots = fetchSlots();
    const rows = new Rows();
    await Promise.all(direct.map(async ([to, list, indexes, labels]) => {
      for (const { delivered, failed } of await deliver(to, list, indexes, slots)) {
        rows.addEach(to.destination, delivered, labels.of, "delivered", "");
        for (const [i, reason] of failed) rows.add(to.destination, ...labels.of(i), "failed", reason, 1);
      }
    }));
    await record(env, { id: null, day, environment: context.environment, policy: hash, rows: rows.list(), inventory: [] }, context.maps);
  }

  function sanitizerFor(env) {
    // After an engine trap: the old instance's sanitizer is dropped (never
    // freed: its pointer means nothing in the fresh instance) and the
    // policy compiled again.
    if (compiled !== null && compiled.generation !== engineGeneration()) compiled = null;
    // The same bindings as last time: nothing to compare.
    if (compiled?.env === env) return compiled;
    const key = env.PHI_MASKING_KEY;
    const credentials = credentialKey(env);
    if (compiled === null || compiled.key !== key || compiled.credentials !== credentials) {
      compiled?.sanitizer?.free();
      let sanitizer;
      try {
        sanitizer = Sanitizer.fromPrepared(prepared, key ?? null);
        const destinations = sanitizer.destinations();
        const secrets = credentialSecrets(destinations);
        // Each credential checked for its format here, once, not per
        // event; the targets hold them, so they are never logged.
        const targets = new Map(destinations.map((d) => {
          const secret = secrets.get(d);
          const target = sanitizer.connect(d, secret ? env[secret] ?? null : null);
          return [d, { destination: d, secret, format: target.format, target }];
        }));
        const seal = sealKey(env.QUEUE_ENCRYPTION_KEY);
        const previous = sealKey(env.QUEUE_ENCRYPTION_KEY_PREVIOUS, "QUEUE_ENCRYPTION_KEY_PREVIOUS");
        compiled = { key, credentials, sanitizer, targets, policy: hash, seal, previous, generation: engineGeneration() };
        console.log(JSON.stringify({ phimask: "policy compiled", environment: policy.environment, destinations: destinations.map((d) => ({ name: d, format: targets.get(d).format })) }));
      } catch (e) {
        // Typically no PHI_MASKING_KEY, a destination's credential
        // missing or a bad QUEUE_ENCRYPTION_KEY: accept nothing, forward
        // nothing. A trap while compiling: a fresh instance, and the
        // next request compiles again on it.
        if (e instanceof WebAssembly.RuntimeError) {
          restartEngine();
          compiled = { key, credentials, error: { code: "engine_error", message: "the engine failed compiling the policy: send the request again" }, generation: -1 };
          console.error(JSON.stringify({ phimask: "engine trapped: a fresh instance was made", call: "compile", error: `RuntimeError: ${String(e.message).slice(0, 80)}` }));
          return compiled;
        }
        sanitizer?.free();
        compiled = { key, credentials, error: e, generation: engineGeneration() };
        console.error(JSON.stringify({ phimask: "not configured", code: e.code, error: e.message }));
      }
    }
    compiled.env = env;
    return compiled;
  }

  return {
    async fetch(request, env, ctx) {
      const url = new URL(request.url);
      // Exact paths only: /dead-lettersX or /dead-letters/ is not an operator route.
      if (OPERATOR_PATHS.has(url.pathname)) return operate(request, env, url.pathname, hash, sanitizerFor(env), context);
      if (url.pathname === EVIDENCE_PATH) return evidence(request, env, context);
      if (url.pathname === "/health") {
        if (request.method !== "GET" && request.method !== "HEAD") {
          return reply(405, { success: false, code: "method_not_allowed", error: "method not allowed: use GET or HEAD" }, { Allow: "GET, HEAD" });
        }
        const answer = health(policy, hash, env, sanitizerFor(env));
        // HEAD: the same status and headers, no body.
        return request.method === "HEAD" ? new Response(null, { status: answer.status, headers: answer.headers }) : answer;
      }
      if (url.pathname === GPC_PATH) {
        if (request.method !== "GET" && request.method !== "HEAD") {
          return reply(405, { success: false, code: "method_not_allowed", error: "method not allowed: use GET or HEAD" }, { Allow: "GET, HEAD" });
        }
        const answer = reply(200, gpcSupport(policy, env));
        return request.method === "HEAD" ? new Response(null, { status: answer.status, headers: answer.headers }) : answer;
      }
      const match = /^\/v1\/([a-z]+)$/.exec(url.pathname);
      const call = match && Object.hasOwn(CALLS, match[1]) ? CALLS[match[1]] : undefined;
      if (!call) return reply(404, { success: false, code: "not_found", error: "not found: use POST /v1/{track,identify,group,page,screen,alias,batch} (or /v1/{t,i,g,p,s,a,b,import})" });
      if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: cors() });
      if (request.method !== "POST") {
        return reply(405, { success: false, code: "method_not_allowed", error: "method not allowed: use POST" }, { Allow: "POST, OPTIONS" });
      }
      return track(request, env, ctx, call);
    },

    /** The queues' consumer: delivers DELIVERY's messages, files dead letters. */
    async queue(batch, env) {
      if (isDeadLetterQueue(batch.queue)) return file(batch, env, context);
      const compiled = sanitizerFor(env);
      if (compiled.error) {
        // Not configured (yet): nothing is sent, nothing is lost.
        log("error", { phimask: "delivery paused: not configured", code: compiled.error.code, messages: batch.messages.length });
        return batch.retryAll({ delaySeconds: 60 });
      }
      const ledger = batch.messages.filter((msg) => isLedgerMessage(msg.body));
      // One set of fetch slots for the invocation: a Worker keeps 6 connections open at a time.
      const slots = fetchSlots();
      // What the deliveries did, by (day, policy): written with the
      // ledger messages in one D1 batch.
      const outcomes = new Map();
      const tally = (day, policy, rows) => {
        const key = `${day} ${policy}`;
        if (!outcomes.has(key)) outcomes.set(key, { id: null, day, environment: context.environment, policy: policyOf(policy), rows: new Rows(), inventory: [] });
        const into = outcomes.get(key).rows;
        for (const r of rows.list()) into.add(...r);
      };
      await Promise.all(batch.messages.filter((msg) => !isLedgerMessage(msg.body)).map((msg) => consume(msg, env, compiled, slots, tally)));
      await settleLedger(env, ledger, [...outcomes.values()].map((o) => ({ ...o, rows: o.rows.list() })), context.maps);
    },
  };
}
