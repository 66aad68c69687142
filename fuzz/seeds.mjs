// Seed corpora for the fuzz targets, from the test vectors, the example
// policies and events: fuzz/corpus/<target>/ (not committed; made anew by
// make fuzz and the test command).
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const seeds = { json_reader: [], request_reader: [], policy: [], sanitize: [] };
const vectors = readdirSync(`${root}tests/vectors`).filter((f) => f.endsWith(".json"));
for (const file of vectors) {
  const v = JSON.parse(readFileSync(`${root}tests/vectors/${file}`, "utf8"));
  if (v.policy) seeds.policy.push(JSON.stringify(v.policy));
  const events = [];
  for (const c of v.cases ?? []) {
    if (c.policy) seeds.policy.push(typeof c.policy === "string" ? c.policy : JSON.stringify(c.policy));
    if (c.event) events.push(JSON.stringify(c.event));
    if (typeof c.event_json === "string") events.push(c.event_json);
  }
  seeds.json_reader.push(...events);
  seeds.request_reader.push(...events, `{"writeKey":"wk","batch":[${events.filter((e) => e.startsWith("{")).join(",")}]}`);
}
for (const dir of ["policies", "examples/events"]) {
  for (const f of readdirSync(`${root}${dir}`)) {
    const text = readFileSync(`${root}${dir}/${f}`, "utf8");
    (dir === "policies" ? seeds.policy : seeds.json_reader).push(text);
  }
}
// The structured target reads choices from bytes: a few of each length.
for (let n = 1; n <= 64; n *= 2) seeds.sanitize.push(Buffer.from(Array.from({ length: n * 8 }, (_, i) => (i * 37 + n) & 0xff)));
for (const [target, list] of Object.entries(seeds)) {
  mkdirSync(`${root}fuzz/corpus/${target}`, { recursive: true });
  for (const seed of list) {
    const name = createHash("sha1").update(seed).digest("hex");
    writeFileSync(`${root}fuzz/corpus/${target}/${name}`, seed);
  }
  console.log(`${target}: ${list.length} seeds`);
}
