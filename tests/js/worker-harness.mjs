// Runs the edge Worker as it ships: bundled by `wrangler deploy --dry-run`
// with a test policy, then started in workerd through Miniflare, sending
// to real HTTP servers on 127.0.0.1.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { preparedModule } from "../../www/dev/prepared-module.mjs";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const wrangler = join(root, "node_modules/.bin/wrangler");
const run = promisify(execFile);

export const quietEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  NO_COLOR: "1",
  FORCE_COLOR: "0",
};

/** Runs wrangler; resolves to { code, output }. */
export async function runWrangler(args, cwd) {
  try {
    const { stdout, stderr } = await run(wrangler, args, { cwd, env: quietEnv, maxBuffer: 1 << 24 });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    return { code: e.code ?? 1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/**
 * A directory with a Worker entry bound to `policy` (prepared as the build
 * command prepares it) and its wrangler.toml.
 */
function workerDir(policy, name, alter = (text) => text, ratelimits, { spyEngine = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  writeFileSync(join(dir, "policy.js"), alter(preparedModule(JSON.stringify(policy), "a test policy")));
  // spyEngine: each processRequest call (the engine's work on a request) logs a line.
  const spy = spyEngine
    ? `import { Sanitizer } from ${JSON.stringify(join(root, "www/worker/engine.js"))};\nconst processRequest = Sanitizer.prototype.processRequest;\nSanitizer.prototype.processRequest = function (...args) {\n  console.log(JSON.stringify({ phimaskTest: "engine call" }));\n  return processRequest.apply(this, args);\n};\n`
    : "";
  writeFileSync(
    join(dir, "entry.js"),
    `${spy}import policy from "./policy.js";\nimport { createWorker } from ${JSON.stringify(join(root, "www/worker/worker.js"))};\nexport default createWorker(policy);\n`,
  );
  writeFileSync(join(dir, "wrangler.toml"), `name = "${name}"\nmain = "entry.js"\ncompatibility_date = "2026-04-26"\nsend_metrics = false\n\n${shippedQueues(ratelimits)}`);
  return dir;
}

/**
 * The top-level queues, D1 database, rate limits and vars of the shipped
 * wrangler.toml; `ratelimits` ({ NAME: { limit, period } }) in place of
 * its rate limits, with RATE_LIMIT_PERIOD set to their period.
 */
function shippedQueues(ratelimits) {
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
  let text = toml.slice(toml.indexOf("[[queues.producers]]"), toml.indexOf("[dev]"));
  if (ratelimits) {
    const tables = Object.entries(ratelimits).map(([name, { limit, period }], i) =>
      `[[ratelimits]]\nname = "${name}"\nnamespace_id = "${9001 + i}"\n[ratelimits.simple]\nlimit = ${limit}\nperiod = ${period}\n\n`).join("");
    text = text.replace(/\[\[ratelimits\]\][\s\S]*?(?=\[vars\])/, tables);
    const [first] = Object.values(ratelimits);
    if (first) text = text.replace(/^RATE_LIMIT_PERIOD = .*$/m, `RATE_LIMIT_PERIOD = "${first.period}"`);
  }
  return text;
}

/**
 * The rate limits a Worker gets here (Miniflare or wrangler dev) unless
 * a test sets its own: higher than anything but the rate limit tests and
 * a flood reaches.
 */
export const ROOMY_RATELIMITS = { RATE_LIMIT_CLIENT: { limit: 1_000_000, period: 60 }, RATE_LIMIT_KEY: { limit: 1_000_000, period: 60 } };

/**
 * Bundles the Worker with `policy` the way `wrangler deploy` does;
 * `alter` may change the prepared policy module's text first, and
 * `alterBundle` the bundled script's text after.
 */
export async function bundle(policy, alter, alterBundle) {
  const dir = workerDir(policy, "phimask-test", alter);
  const { code, output } = await runWrangler(["deploy", "--dry-run", "--outdir", "dist"], dir);
  if (code !== 0) throw new Error(`wrangler failed:\n${output}`);
  const script = join(dir, "dist/entry.js");
  if (alterBundle) writeFileSync(script, alterBundle(readFileSync(script, "utf8")));
  return { dir, script, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The queues of wrangler.toml: the Worker's producers and its consumers' settings. */
export const DELIVERY_QUEUE = "phimask-delivery-development";
export const DEAD_LETTER_QUEUE = "phimask-dead-letter-development";

// Reads a queue's messages in place of the Worker's consumer, and answers
// GET with them (bytes as base64), to show what a queue holds.
const SPY = `
const seen = [];
const b64 = (bytes) => { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); };
const plain = (v) => v instanceof Uint8Array ? { base64: b64(v) } : Array.isArray(v) ? v.map(plain) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;
export default {
  async queue(batch) { for (const m of batch.messages) { seen.push(plain(m.body)); m.ack(); } },
  async fetch() { return Response.json(seen); },
};`;

// Stands in for a queue that refuses messages (as Queues does over its
// limits): sendBatch and send throw.
const REFUSER = `
import { WorkerEntrypoint } from "cloudflare:workers";
export class Queue extends WorkerEntrypoint {
  sendBatch() { throw new Error("Queue sendBatch failed: Too Many Requests"); }
  send() { throw new Error("Queue send failed: Too Many Requests"); }
}
export default { fetch() { return new Response(null, { status: 404 }); } };`;

// Stands in for a rate limit binding that fails ("throws") or answers
// nothing at all ("answers nothing").
const brokenLimiter = (how) => `
import { WorkerEntrypoint } from "cloudflare:workers";
export class Limiter extends WorkerEntrypoint {
  async limit() { ${how === "throws" ? 'throw new Error("rate limiter unavailable");' : "return undefined;"} }
}
export default { fetch() { return new Response(null, { status: 404 }); } };`;

// Stands in for a queue that takes the first sendBatch call (forwarding
// it to the real delivery queue) and refuses the second, 1.5 s later;
// later calls are taken again. GET answers how many delivery messages each call it took held.
const secondRefuser = (ms) => `
import { WorkerEntrypoint } from "cloudflare:workers";
const calls = [];
export class Queue extends WorkerEntrypoint {
  async sendBatch(messages, options) {
    // Delivery messages only: a request's ledger message rides in its last call.
    calls.push(messages.filter((m) => m.body?.kind !== "ledger").length);
    // Refused slowly: time enough for a consumer to see the first call's
    // messages if they were not held back.
    if (calls.length === 2) {
      await new Promise((resolve) => setTimeout(resolve, ${ms}));
      throw new Error("Queue sendBatch failed: Too Many Requests");
    }
    // Arrays read back from RPC have holes as far as V8 knows, and would be
    // serialized twice as large: packed again, as the Worker sends them.
    const packed = (v) => Array.isArray(v) ? v.map(packed) : v && typeof v === "object" && !ArrayBuffer.isView(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, packed(x)])) : v;
    await this.env.REAL.sendBatch(messages.map((m) => ({ ...m, body: packed(m.body) })), options);
  }
  async send(body, options) { await this.sendBatch([{ body, ...options }]); }
}
export default { fetch() { return Response.json(calls); } };`;

/**
 * Starts the bundled Worker in workerd, with the queues and D1 database
 * wrangler.toml declares (local, in memory; every migration applied). Logs are collected in
 * `logs`; `url` is where it listens on 127.0.0.1 (for a browser to reach
 * it). Options: `maxRetries` (of the delivery queue, 3 unless set),
 * `spy: true` to have a spy Worker consume the delivery queue instead
 * (`queued()` resolves to the messages it read), `queues: false` for none,
 * `refusingQueue: true` for a DELIVERY whose sendBatch always throws,
 * `refusingQueue: "second"` for one that refuses only its second call
 * (after 1.5 s; "slow-second": after 12 s, longer than the Worker holds
 * a request's messages)
 * (`calls()` resolves to the message count of each call it saw).
 * `without: ["DELIVERY_STATE", …]` to leave those bindings out.
 * `ratelimits: { RATE_LIMIT_KEY: { limit, period }, … }` for the rate
 * limit bindings (ROOMY_RATELIMITS unless set; RATE_LIMIT_PERIOD is set to
 * their period). `brokenLimiters: { RATE_LIMIT_KEY: "throws" | "answers
 * nothing" }` puts a limiter that fails so in place of those bindings.
 */
export async function startWorker(script, bindings, { maxRetries = 3, spy = false, queues = true, refusingQueue = false, without = [], ratelimits = ROOMY_RATELIMITS, brokenLimiters = {} } = {}) {
  const logs = [];
  const collect = (stream) => {
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => logs.push(...chunk.split("\n").filter(Boolean)));
  };
  const delivery = { maxBatchSize: 10, maxBatchTimeout: 0.1, maxRetries, deadLetterQueue: DEAD_LETTER_QUEUE };
  const workers = [{
    name: "phimask",
    modules: true,
    scriptPath: script,
    // Module names are relative to this root; workerd refuses "..".
    modulesRoot: dirname(script),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2026-04-26",
    bindings: { DELIVERY_MAX_RETRIES: String(maxRetries), RATE_LIMIT_PERIOD: String(Object.values(ratelimits)[0]?.period ?? 60), ...bindings },
    ratelimits: Object.fromEntries(Object.entries(ratelimits).map(([name, simple]) => [name, { simple }])),
    ...(queues && {
      queueProducers: { DEAD_LETTER: DEAD_LETTER_QUEUE, ...(!refusingQueue && { DELIVERY: DELIVERY_QUEUE }) },
      queueConsumers: {
        ...(!spy && { [DELIVERY_QUEUE]: delivery }),
        [DEAD_LETTER_QUEUE]: { maxBatchSize: 10, maxBatchTimeout: 0.1, maxRetries: 100 },
      },
      d1Databases: { DELIVERY_STATE: "phimask-delivery-state-test", LEDGER: "phimask-ledger-test" },
    }),
    ...(refusingQueue && { serviceBindings: { DELIVERY: { name: "refuser", entrypoint: "Queue" } } }),
  }];
  for (const [i, [name, how]] of Object.entries(brokenLimiters).entries()) {
    const [w] = workers;
    delete w.ratelimits[name];
    w.serviceBindings = { ...w.serviceBindings, [name]: { name: `limiter-${i}`, entrypoint: "Limiter" } };
    workers.push({ name: `limiter-${i}`, modules: true, script: brokenLimiter(how), compatibilityDate: "2026-04-26" });
  }
  for (const name of without) {
    const [w] = workers;
    for (const group of ["bindings", "queueProducers", "kvNamespaces", "d1Databases", "ratelimits"]) {
      if (Array.isArray(w[group])) w[group] = w[group].filter((n) => n !== name);
      else if (w[group]) delete w[group][name];
    }
  }
  // "slow-second": the second call stalls longer than the Worker holds a request's messages.
  if (refusingQueue === "second" || refusingQueue === "slow-second") {
    workers.push({ name: "refuser", modules: true, script: secondRefuser(refusingQueue === "second" ? 1500 : 12_000), compatibilityDate: "2026-04-26", queueProducers: { REAL: DELIVERY_QUEUE } });
  }
  else if (refusingQueue) workers.push({ name: "refuser", modules: true, script: REFUSER, compatibilityDate: "2026-04-26" });
  if (spy) workers.push({ name: "spy", modules: true, script: SPY, compatibilityDate: "2026-04-26", queueConsumers: { [DELIVERY_QUEUE]: delivery } });
  const mf = new Miniflare({
    workers,
    host: "127.0.0.1",
    port: 0,
    cf: false,
    handleRuntimeStdio: (stdout, stderr) => {
      collect(stdout);
      collect(stderr);
    },
  });
  const url = await mf.ready;
  if (queues && !without.includes("DELIVERY_STATE")) await migrate(await mf.getD1Database("DELIVERY_STATE"));
  if (queues && !without.includes("LEDGER")) await migrate(await mf.getD1Database("LEDGER"), "migrations/ledger");
  // The delivery messages the spy read; with { ledger: true }, the ledger messages among them too.
  const queued = async ({ ledger = false } = {}) => (await (await mf.getWorker("spy")).fetch("http://spy/")).json().then((all) => all.filter((m) => ledger || m.kind !== "ledger"));
  const calls = async () => (await (await mf.getWorker("refuser")).fetch("http://refuser/")).json();
  return { mf, logs, url, queued, calls };
}

/** Applies `folder`/*.sql in order, as `wrangler d1 migrations apply` does. */
export async function migrate(db, folder = "migrations") {
  const dir = join(root, folder);
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    const statements = readFileSync(join(dir, file), "utf8").replace(/--.*$/gm, "").split(";").map((s) => s.trim()).filter(Boolean);
    for (const sql of statements) await db.prepare(sql).run();
  }
}

/**
 * A destination on 127.0.0.1 (on `port` if given). `plan` gives the
 * answer to each request in turn (the last one repeats): a status, "hang"
 * to hold the request until release(), or { status, headers }.
 */
export async function startDestination(plan = [200], port = 0) {
  const requests = [];
  const held = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const answer = plan[Math.min(requests.length, plan.length - 1)];
      const { status, headers = {} } = typeof answer === "object" ? answer : { status: answer };
      requests.push({ method: req.method, path: req.url, headers: req.headers, body, status, at: Date.now() });
      if (status === "hang") {
        held.push(res);
        return;
      }
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(status === 200 ? '{"success":true}' : "{}");
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/batch`;
  return {
    url,
    requests,
    /** Events of the requests answered 200. */
    delivered: () => requests.filter((r) => r.status === 200).flatMap((r) => JSON.parse(r.body).batch),
    /** Answers from now on (the last one repeats). */
    answer: (next) => plan.splice(0, plan.length, ...Array(requests.length).fill(null), ...next),
    release: () => held.splice(0).forEach((res) => res.writeHead(200).end("{}")),
    close: () => {
      for (const res of held.splice(0)) res.destroy();
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A URL on 127.0.0.1 where nothing listens. */
export async function closedUrl() {
  return `http://127.0.0.1:${await freePort()}/batch`;
}

/** Waits until `check()` is true; fails after `ms` (a limit, not a measurement). */
export async function until(check, what, ms = 15_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Peak resident memory (VmHWM, bytes) of the workerd processes this test
 * process started, by pid. Linux only (/proc).
 */
export function workerdPeakMemory() {
  const parentOf = (pid) => {
    try {
      return Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
    } catch {
      return 0;
    }
  };
  const descends = (pid) => {
    for (let p = pid; p > 1; p = parentOf(p)) if (p === process.pid) return true;
    return false;
  };
  const peaks = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (!/^Name:\s+workerd$/m.test(status) || !descends(Number(entry))) continue;
      peaks.set(Number(entry), Number(/^VmHWM:\s+(\d+) kB/m.exec(status)[1]) * 1024);
    } catch {
      // The process ended meanwhile.
    }
  }
  return peaks;
}

/**
 * The shipped wrangler.toml's tables, in order: `[{ name, values }]`, for
 * the subset of TOML it uses ([table], [[array]], key = value).
 */
export function wranglerTables() {
  const tables = [];
  let current = null;
  for (const line of readFileSync(join(root, "wrangler.toml"), "utf8").split("\n")) {
    const header = /^\[(\[)?([^\]]+)\]\]?\s*$/.exec(line);
    if (header) tables.push((current = { name: header[2], values: {} }));
    const pair = /^(\w+)\s*=\s*(.+)$/.exec(line);
    if (pair && current) current.values[pair[1]] = JSON.parse(pair[2].replace(/^"(.*)"$/, (_, v) => JSON.stringify(v)));
  }
  return tables;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The Worker with `policy` under `wrangler dev` (what `make run` runs), in
 * a directory of its own with `vars` as its .dev.vars. Resolves to
 * { url, output(), stop() }. `ratelimits` ({ NAME: { limit, period } })
 * in place of wrangler.toml's rate limits: ROOMY_RATELIMITS unless set,
 * so a test or a load run about something else is never refused 429.
 * `migrate: true` applies migrations/ and migrations/ledger/ to its local
 * D1 databases first.
 * `spyEngine: true`: each call of the engine's processRequest logs
 * {"phimaskTest":"engine call"}.
 */
export async function startWranglerDev(policy, vars, { ratelimits = ROOMY_RATELIMITS, migrate = false, spyEngine = false } = {}) {
  const dir = workerDir(policy, "phimask-dev-test", undefined, ratelimits, { spyEngine });
  writeFileSync(join(dir, ".dev.vars"), Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n"));
  if (migrate) {
    // DELIVERY_STATE's tables, as `make run` applies them: a request of
    // more than one sendBatch call is held and checked against them.
    symlinkSync(join(root, "migrations"), join(dir, "migrations"));
    for (const db of ["DELIVERY_STATE", "LEDGER"]) {
      const { code, output } = await runWrangler(["d1", "migrations", "apply", db, "--local"], dir);
      if (code !== 0) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`wrangler d1 migrations apply failed:\n${output}`);
      }
    }
  }
  return wranglerDevIn(dir, () => rmSync(dir, { recursive: true, force: true }));
}

/**
 * `wrangler dev` in `dir` (its wrangler.toml) on free ports of 127.0.0.1;
 * `cleanup` runs once it has stopped. Resolves to { url, output(), stop() }.
 * A port free when chosen may be taken before wrangler binds it (test
 * files run side by side): then it starts again on others, up to 3 times.
 */
export async function wranglerDevIn(dir, cleanup = () => {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      const dev = await wranglerDevOnce(dir);
      return { ...dev, stop: async () => { await dev.stop(); cleanup(); } };
    } catch (e) {
      if (attempt < 3 && /Address already in use/.test(e.message)) continue;
      cleanup();
      throw e;
    }
  }
}

async function wranglerDevOnce(dir) {
  const port = await freePort();
  const inspector = await freePort();
  const child = spawn(wrangler, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector), "--show-interactive-dev-session=false"], {
    cwd: dir, env: quietEnv, detached: true, stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  for (const s of [child.stdout, child.stderr]) s.on("data", (c) => (output += c));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid, "SIGTERM");
      await exited;
    }
  };
  try {
    await until(() => output.includes(`Ready on http://127.0.0.1:${port}`) || child.exitCode !== null, "wrangler dev to be ready", 60_000);
    if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${output}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, stop };
}

/**
 * A pass-through proxy on 127.0.0.1 to `target`, recording each request's
 * method, path and Content-Encoding; `failNext(n)` answers the next n POSTs
 * with 503 itself (with CORS, so a browser sees the status).
 */
export async function startProxy(target) {
  const seen = [];
  let failures = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      seen.push({ method: req.method, path: req.url, encoding: req.headers["content-encoding"], retry: req.headers["x-retry-count"] });
      if (req.method === "POST" && failures > 0) {
        failures -= 1;
        res.writeHead(503, { "content-type": "application/json", "access-control-allow-origin": "*" }).end('{"success":false}');
        return;
      }
      const headers = { ...req.headers };
      delete headers.host;
      try {
        const answer = await fetch(target + req.url, {
          method: req.method,
          headers,
          body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
        });
        const back = Object.fromEntries(answer.headers);
        delete back["content-length"];
        delete back["content-encoding"];
        res.writeHead(answer.status, back);
        res.end(Buffer.from(await answer.arrayBuffer()));
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    failNext: (n) => (failures = n),
    close: () => {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
