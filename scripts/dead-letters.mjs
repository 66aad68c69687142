#!/usr/bin/env node
// Lists or replays the edge Worker's dead letters (GET /dead-letters,
// POST /dead-letters/replay), authenticated with the Worker's OPERATOR_KEY:
//   node scripts/dead-letters.mjs list   [--id ID]… [--reason CODE] [--destination D] [URL]
//   node scripts/dead-letters.mjs replay [--id ID]… [--reason CODE] [--destination D] [--force] [URL]
// Both page through every matching letter with the Worker's cursor, and
// only through letters filed before the run began (the Worker's `before`
// of the first answer): a replayed letter that fails again and is filed
// anew during the run is not sent again by it. `--limit N` sets the page
// size. URL is the Worker's (http://127.0.0.1:8787, `make run`, unless
// given); the key comes from PHIMASK_OPERATOR_KEY, or for a local Worker
// from OPERATOR_KEY in .dev.vars.
// Exit status: 0 done (replay: every selected letter queued again);
// 1 the Worker refused or could not be reached (a replay stops there:
// what it queued is out of the store, the rest is still in it); 2 bad
// usage or no key; 3 replay done, but some selected letters were left in
// the store (skipped or unreadable; each is printed with why).
import { readFileSync } from "node:fs";

const USAGE = "usage: node scripts/dead-letters.mjs list|replay [--id ID]… [--reason CODE] [--destination D] [--force] [--limit N] [URL]";

function usage(problem) {
  console.error(`dead-letters: ${problem}\n${USAGE}`);
  process.exit(2);
}

function parse(argv) {
  const [command, ...rest] = argv;
  if (!["list", "replay"].includes(command)) usage(command ? `unknown command ${command}` : "no command");
  const options = { command, ids: [], reason: undefined, destination: undefined, force: false, limit: undefined, url: undefined };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const value = () => {
      const v = rest[++i];
      if (v === undefined || v.startsWith("--")) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === "--id") options.ids.push(...value().split(",").filter(Boolean));
    else if (arg === "--reason") options.reason = value();
    else if (arg === "--destination") options.destination = value();
    else if (arg === "--limit") {
      const v = value();
      if (!/^\d{1,7}$/.test(v)) usage("--limit needs a whole number");
      options.limit = Number(v);
    }
    else if (arg === "--force" && command === "replay") options.force = true;
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else if (options.url === undefined) options.url = arg;
    else usage(`unexpected argument ${arg}`);
  }
  options.url ??= "http://127.0.0.1:8787";
  try {
    new URL(options.url);
  } catch {
    usage(`not a URL: ${options.url}`);
  }
  return options;
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

const options = parse(process.argv.slice(2));
const key = operatorKey();
if (!key) {
  console.error("dead-letters: set PHIMASK_OPERATOR_KEY to the Worker's OPERATOR_KEY");
  process.exit(2);
}

async function call(path, init) {
  const res = await fetch(new URL(path, options.url), { ...init, headers: { Authorization: `Bearer ${key}`, ...init.headers } }).catch((e) => {
    console.error(`dead-letters: cannot reach the Worker at ${options.url}: ${e.cause?.code ?? e.message}`);
    process.exit(1);
  });
  const body = await res.json().catch(() => ({}));
  return { ok: res.ok, status: res.status, body };
}

function refused({ status, body }) {
  console.error(`dead-letters: ${status} ${body.code ?? ""}: ${body.error ?? "no answer"}`);
}

/** The ids in calls of at most 100 (the Worker's limit), or one call with none. */
const idChunks = () => (options.ids.length === 0 ? [undefined] : Array.from({ length: Math.ceil(options.ids.length / 100) }, (_, i) => options.ids.slice(i * 100, i * 100 + 100)));

async function list() {
  let count = 0;
  let before;
  for (const ids of idChunks()) {
    let cursor;
    do {
      const query = new URLSearchParams();
      for (const [k, v] of Object.entries({ cursor, before, limit: options.limit, reason: options.reason, destination: options.destination })) if (v !== undefined) query.set(k, String(v));
      for (const id of ids ?? []) query.append("id", id);
      const answer = await call(`/dead-letters?${query}`, { method: "GET" });
      if (!answer.ok) {
        refused(answer);
        process.exit(1);
      }
      before ??= answer.body.before;
      for (const d of answer.body.deadLetters) {
        count += 1;
        if (d.unreadable) {
          console.log(`unreadable  ${d.id}`);
          continue;
        }
        const reason = [d.reason?.code, d.reason?.status].filter((x) => x !== undefined).join(" ");
        const policy = d.currentPolicy ? "current policy" : d.policy ? `policy ${d.policy.slice(0, 12)}` : "unknown policy";
        console.log(`${new Date(d.at).toISOString()}  ${d.destination}  ${d.events} events${d.parts > 0 ? ` in ${d.parts} bodies` : ""}  ${reason}  ${policy}${d.sealed ? "  sealed" : ""}${d.claimed ? "  being replayed" : ""}  ${d.id}`);
      }
      cursor = answer.body.cursor ?? undefined;
    } while (cursor !== undefined);
  }
  console.log(`${count} dead letters`);
}

async function replay() {
  let before;
  let total = 0;
  const left = [];
  for (const ids of idChunks()) {
    let cursor;
    do {
      const request = { ids, reason: options.reason, destination: options.destination, force: options.force || undefined, cursor, before, limit: options.limit };
      const answer = await call("/dead-letters/replay", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
      total += answer.body.replayed?.length ?? 0;
      if (!answer.ok) {
        refused(answer);
        console.error(`dead-letters: replayed ${total} dead letters before the Worker refused; the rest are still in the store`);
        process.exit(1);
      }
      // Only letters filed before the run began: none it re-queued comes back to it.
      before ??= answer.body.before;
      for (const s of answer.body.skipped) left.push(`skipped  ${s.id}  ${s.destination}: ${s.reason}`);
      for (const id of answer.body.unreadable) left.push(`unreadable  ${id}`);
      cursor = answer.body.cursor ?? undefined;
    } while (cursor !== undefined);
  }
  console.log(`replayed ${total} dead letters: queued for delivery again`);
  if (left.length > 0) {
    for (const line of left) console.log(line);
    console.log(`${left.length} dead letters not replayed, still in the store (policy_changed: replay with --force to send them under the current policy)`);
    process.exit(3);
  }
}

await (options.command === "list" ? list() : replay());
