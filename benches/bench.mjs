// Benchmark: µs per event for the example events, wasm (sanitizeJson and
// sanitize) against the JavaScript reference, and the package size.
//   make bench
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { Sanitizer } from "../www/node.mjs";
import { referenceSanitizer } from "./reference.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const KEY = "benchmark-key-0123456789abcdefghijklmnop";
const policy = JSON.parse(readFileSync(`${root}policies/production.json`, "utf8"));
const destination = "amplitude";
const sanitizer = new Sanitizer(policy, KEY);
const reference = referenceSanitizer(policy, destination, KEY);

function perCall(fn, minMs = 300) {
  for (let i = 0; i < 2000; i++) fn(); // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < BigInt(minMs) * 1_000_000n) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
    elapsed = process.hrtime.bigint() - start;
  }
  return Number(elapsed) / 1000 / n;
}

const dir = `${root}examples/events/`;
const rows = [];
for (const file of readdirSync(dir).sort()) {
  const text = JSON.stringify(JSON.parse(readFileSync(dir + file, "utf8")));
  const object = JSON.parse(text);
  const wasmOut = sanitizer.sanitizeJson(text, destination);
  if (wasmOut !== reference(text)) throw new Error(`${file}: the JavaScript reference disagrees with the engine`);
  const json = perCall(() => sanitizer.sanitizeJson(text, destination));
  const obj = perCall(() => sanitizer.sanitize(object, destination));
  const ref = perCall(() => reference(text));
  rows.push({ event: file, bytes: text.length, "sanitizeJson µs": json.toFixed(2), "sanitize(obj) µs": obj.toFixed(2), "JS reference µs": ref.toFixed(2), "JS/wasm": (ref / json).toFixed(2) });
}
console.table(rows);
const wasm = readFileSync(`${root}pkg/phimask_bg.wasm`);
const glue = readFileSync(`${root}pkg/phimask.js`);
console.log(`pkg/phimask_bg.wasm: ${wasm.length} bytes, ${gzipSync(wasm, { level: 9 }).length} gzipped`);
console.log(`pkg/phimask.js:      ${glue.length} bytes, ${gzipSync(glue, { level: 9 }).length} gzipped`);
