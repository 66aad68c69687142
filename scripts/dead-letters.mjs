#!/usr/bin/env node
// Lists or replays the edge Worker's dead letters (GET /dead-letters,
// POST /dead-letters/replay), authenticated with the Worker's OPERATOR_KEY:
//   node scripts/dead-letters.mjs list   [URL]
//   node scripts/dead-letters.mjs replay [URL]
// URL is the Worker's (http://127.0.0.1:8787, `make run`, unless given);
// the key comes from PHIMASK_OPERATOR_KEY, or for a local Worker from
// OPERATOR_KEY in .dev.vars. Exit status: 0 done, 1 the Worker refused, 2
// bad usage.
import { readFileSync } from "node:fs";

const [command, url = "http://127.0.0.1:8787"] = process.argv.slice(2);
if (!["list", "replay"].includes(command)) {
  console.error("usage: node scripts/dead-letters.mjs list|replay [URL]");
  process.exit(2);
}

function operatorKey() {
  if (process.env.PHIMASK_OPERATOR_KEY) return process.env.PHIMASK_OPERATOR_KEY;
  try {
    const vars = readFileSync(new URL("../.dev.vars", import.meta.url), "utf8");
    const line = /^OPERATOR_KEY\s*=\s*(.*)$/m.exec(vars)?.[1]?.trim();
    return line?.startsWith('"') ? JSON.parse(line) : line;
  } catch {
    return undefined;
  }
}

const key = operatorKey();
if (!key) {
  console.error("dead-letters: set PHIMASK_OPERATOR_KEY to the Worker's OPERATOR_KEY");
  process.exit(2);
}

async function call(path, method) {
  const res = await fetch(new URL(path, url), { method, headers: { Authorization: `Bearer ${key}` } }).catch((e) => {
    console.error(`dead-letters: cannot reach the Worker at ${url}: ${e.cause?.code ?? e.message}`);
    process.exit(1);
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    console.error(`dead-letters: ${res.status} ${body.code ?? ""}: ${body.error ?? "no answer"}`);
    process.exit(1);
  }
  return body;
}

if (command === "list") {
  const { deadLetters, more } = await call("/dead-letters", "GET");
  for (const d of deadLetters) {
    const reason = [d.reason?.code, d.reason?.status].filter((x) => x !== undefined).join(" ");
    console.log(`${new Date(d.at).toISOString()}  ${d.destination}  ${d.events} events  ${reason}  ${d.id}`);
  }
  console.log(`${deadLetters.length} dead letters${more ? " (more not listed)" : ""}`);
} else {
  let total = 0;
  const unreadable = new Set();
  for (let more = true; more; ) {
    const answer = await call("/dead-letters/replay", "POST");
    total += answer.replayed;
    for (const id of answer.unreadable ?? []) unreadable.add(id);
    more = answer.more && answer.replayed > 0;
  }
  console.log(`replayed ${total} dead letters: queued for delivery again`);
  if (unreadable.size > 0) console.log(`not replayed, unreadable in the store: ${[...unreadable].join(", ")}`);
}
