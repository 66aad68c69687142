// Runs the edge Worker as it ships: bundled by `wrangler deploy --dry-run`
// with a test policy, then started in workerd through Miniflare, sending
// to real HTTP servers on 127.0.0.1.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";

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

/** Bundles the Worker with `policy` the way `wrangler deploy` does. */
export async function bundle(policy) {
  const dir = mkdtempSync(join(tmpdir(), "phimask-worker-"));
  writeFileSync(join(dir, "policy.json"), JSON.stringify(policy));
  writeFileSync(
    join(dir, "entry.js"),
    `import policy from "./policy.json";\nimport { createWorker } from ${JSON.stringify(join(root, "www/worker.js"))};\nexport default createWorker(policy);\n`,
  );
  writeFileSync(join(dir, "wrangler.toml"), 'name = "phimask-test"\nmain = "entry.js"\ncompatibility_date = "2026-04-26"\nsend_metrics = false\n');
  const { code, output } = await runWrangler(["deploy", "--dry-run", "--outdir", "dist"], dir);
  if (code !== 0) throw new Error(`wrangler failed:\n${output}`);
  return { dir, script: join(dir, "dist/entry.js"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts the bundled Worker in workerd. Logs are collected in `logs`;
 * `url` is where it listens on 127.0.0.1 (for a browser to reach it).
 */
export async function startWorker(script, bindings) {
  const logs = [];
  const collect = (stream) => {
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => logs.push(...chunk.split("\n").filter(Boolean)));
  };
  const mf = new Miniflare({
    modules: true,
    scriptPath: script,
    // Module names are relative to this root; workerd refuses "..".
    modulesRoot: dirname(script),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2026-04-26",
    bindings,
    host: "127.0.0.1",
    port: 0,
    cf: false,
    handleRuntimeStdio: (stdout, stderr) => {
      collect(stdout);
      collect(stderr);
    },
  });
  const url = await mf.ready;
  return { mf, logs, url };
}

/**
 * A destination on 127.0.0.1. `plan` gives the status of each request in
 * turn (the last one repeats); "hang" holds the request until release().
 */
export async function startDestination(plan = [200]) {
  const requests = [];
  const held = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const status = plan[Math.min(requests.length, plan.length - 1)];
      requests.push({ method: req.method, path: req.url, headers: req.headers, body, status, at: Date.now() });
      if (status === "hang") {
        held.push(res);
        return;
      }
      res.writeHead(status, { "content-type": "application/json" }).end(status === 200 ? '{"success":true}' : "{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/batch`;
  return {
    url,
    requests,
    /** Events of the requests answered 200. */
    delivered: () => requests.filter((r) => r.status === 200).flatMap((r) => JSON.parse(r.body).batch),
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
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/batch`;
}

/** Waits until `check()` is true; fails after `ms` (a limit, not a measurement). */
export async function until(check, what, ms = 15_000) {
  const end = Date.now() + ms;
  while (!check()) {
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
