// `phimask sanitize` on NDJSON exported event logs: the generated corpus's
// slices, each repeated to about 48 MB a file, sanitized for one
// destination to /dev/null; MB/s of input (median of 3 runs) per slice.
// Target: at least 50 MB/s on realistic events.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { corpus } from "./corpus.mjs";
import { policyWith } from "./destinations.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const SLICES = ["realistic 300", "realistic 1024", "realistic 32000", "wide 32000", "masked 1024", "masked 32000"];
const FILE_BYTES = 48e6;

export function cliRows(base, key) {
  execFileSync("cargo", ["build", "--release", "--quiet", "--bin", "phimask"], { cwd: root, stdio: "inherit" });
  const dir = `${root}dist/bench/cli`;
  mkdirSync(dir, { recursive: true });
  const policyFile = `${dir}/policy.json`;
  writeFileSync(policyFile, JSON.stringify(policyWith(base, 1, false)));
  const rows = [];
  for (const s of corpus(1).filter((s) => SLICES.includes(`${s.shape} ${s.bytes}`))) {
    const block = s.events.join("\n") + "\n";
    const file = `${dir}/${s.shape}-${s.bytes}.ndjson`;
    writeFileSync(file, block.repeat(Math.max(1, Math.round(FILE_BYTES / block.length))));
    const bytes = statSync(file).size;
    const seconds = [0, 1, 2].map(() => {
      const start = process.hrtime.bigint();
      const run = spawnSync(`${root}target/release/phimask`, ["sanitize", "--quiet", "-p", policyFile, "-d", "d0", "-o", "/dev/null", file], {
        env: { ...process.env, PHI_MASKING_KEY: key }, encoding: "utf8",
      });
      if (run.status !== 0) throw new Error(`phimask sanitize ${s.shape} ${s.bytes}: exit ${run.status}: ${run.stderr}`);
      return Number(process.hrtime.bigint() - start) / 1e9;
    }).sort((a, b) => a - b);
    rmSync(file);
    rows.push({ slice: `${s.shape} ${s.bytes}`, kind: s.kind, "MB": (bytes / 1e6).toFixed(1), "lines": Math.round(bytes / (block.length / s.events.length)), "s (median of 3)": seconds[1].toFixed(3), "MB/s": (bytes / 1e6 / seconds[1]).toFixed(1) });
  }
  return rows;
}

/** The target line: the slowest realistic slice against 50 MB/s. */
export function cliTarget(rows) {
  const realistic = rows.filter((r) => r.kind === "realistic");
  const worst = realistic.reduce((a, b) => (Number(a["MB/s"]) <= Number(b["MB/s"]) ? a : b));
  const rate = Number(worst["MB/s"]);
  return `phimask sanitize, NDJSON of realistic events (slowest slice, ${worst.slice}): ${rate} MB/s, target ≥ 50 — ${rate >= 50 ? "met" : `missed by ${((1 - rate / 50) * 100).toFixed(0)}%`}`;
}
