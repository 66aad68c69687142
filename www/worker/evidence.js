// GET /evidence?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|markdown|html:
// the evidence report for a compliance review, for the holder of
// OPERATOR_KEY (Bearer; no CORS). Counts and paths only, never a value:
// the ledger (ledger.js) with its reconciliation, the requests refused
// whole, dead letters by reason, the inventory of paths no rule names,
// the BAA register and the data map of every policy in force over the
// range. `phimask evidence` fetches the same report.
import { answer, operatorRefusal, refuse } from "./dead-letters.js";
import { log } from "./forward.js";

export const EVIDENCE_PATH = "/evidence";
/** The longest range one report covers (a year, a leap year's included). */
export const MAX_DAYS = 366;
const FORMATS = new Set(["json", "markdown", "html"]);
const PARAMS = new Set(["from", "to", "format"]);
const DAY_MS = 86_400_000;
/** Most inventory paths one report lists (the newest first); `inventory_more` counts the rest. */
export const MAX_REPORT_PATHS = 1000;

/** Whether `value` is a calendar date written YYYY-MM-DD (no 2026-02-30). */
export function isDay(value) {
  const m = typeof value === "string" ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(value) : null;
  if (!m) return false;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return date.toISOString().slice(0, 10) === value;
}

/** The report's parameters, or a refusal saying what is wrong with them. */
function parameters(url) {
  const params = url.searchParams;
  for (const name of new Set(params.keys())) {
    if (!PARAMS.has(name)) return { refusal: refuse(400, "invalid_parameter", `unknown parameter (use from, to and format)`) };
    if (params.getAll(name).length > 1) return { refusal: refuse(400, "invalid_parameter", `${name} given more than once`) };
  }
  const from = params.get("from");
  const to = params.get("to");
  if (!isDay(from)) return { refusal: refuse(400, "invalid_from", "from must be a calendar date, YYYY-MM-DD (UTC)") };
  if (!isDay(to)) return { refusal: refuse(400, "invalid_to", "to must be a calendar date, YYYY-MM-DD (UTC)") };
  if (from > to) return { refusal: refuse(400, "invalid_range", "from is after to") };
  const days = (Date.parse(to) - Date.parse(from)) / DAY_MS + 1;
  if (days > MAX_DAYS) return { refusal: refuse(400, "invalid_range", `the range covers ${days} days, more than ${MAX_DAYS}: ask for a year at a time`) };
  const format = params.get("format") ?? "json";
  if (!FORMATS.has(format)) return { refusal: refuse(400, "invalid_format", "format must be json, markdown or html") };
  return { from, to, format };
}

/**
 * The report route. `context` is the Worker's ledger context
 * ({ environment, policy, baa, maps }).
 */
export async function evidence(request, env, context) {
  const refused = await operatorRefusal(request, env, "read the evidence report");
  if (refused) return refused;
  if (request.method !== "GET") return refuse(405, "method_not_allowed", "method not allowed: use GET", {}, { Allow: "GET" });
  const { refusal, from, to, format } = parameters(new URL(request.url));
  if (refusal) return refusal;
  if (!env.LEDGER) return refuse(503, "no_ledger", "not configured: no LEDGER D1 binding (d1_databases in wrangler.toml)");
  let report;
  try {
    report = await gather(env, context, from, to);
  } catch (e) {
    log("error", { phimask: "evidence report failed", error: String(e?.message ?? e).slice(0, 200) });
    return refuse(503, "ledger_unavailable", "the ledger (D1 LEDGER) could not be read: are its migrations applied? Send the request again");
  }
  const headers = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };
  if (format === "json") return answer(200, report, headers);
  if (format === "markdown") return new Response(markdown(report), { headers: { "Content-Type": "text/markdown; charset=utf-8", ...headers } });
  return new Response(html(report), {
    headers: { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'", ...headers },
  });
}

const none = (v) => (v === "" || v === undefined ? null : v);

/** The report as data (its JSON form). */
export async function gather(env, context, from, to) {
  const db = env.LEDGER;
  const { environment } = context;
  const [ledger, inventory, policies] = await db.batch([
    db.prepare(`SELECT day, policy, destination, call, event, decision, reason, SUM(count) AS count FROM ledger
      WHERE environment = ? AND day >= ? AND day <= ?
      GROUP BY day, policy, destination, call, event, decision, reason
      ORDER BY day, destination, call, event, decision, reason, policy`).bind(environment, from, to),
    db.prepare(`SELECT path, SUM(count) AS count,
        (SELECT MIN(f.day) FROM inventory f WHERE f.environment = i.environment AND f.path = i.path) AS first_seen,
        COUNT(*) OVER () AS paths
      FROM inventory i WHERE environment = ? AND day >= ? AND day <= ?
      GROUP BY path ORDER BY first_seen DESC, count DESC, path LIMIT ?`).bind(environment, from, to, MAX_REPORT_PATHS),
    db.prepare(`SELECT sha256, first_seen, last_seen, map_markdown FROM policies
      WHERE environment = ? AND first_seen <= ? AND last_seen >= ? ORDER BY first_seen, sha256`).bind(environment, to, from),
  ]);
  const rows = ledger.results.map((r) => ({
    day: r.day, policy: none(r.policy), destination: r.destination, call: none(r.call), event: none(r.event),
    decision: r.decision, reason: none(r.reason), count: r.count,
  }));
  const perDestination = rows.filter((r) => r.destination !== "*");
  const refusedRequests = rows.filter((r) => r.destination === "*" && r.decision === "refused_request").map((r) => ({ day: r.day, call: r.call, reason: r.reason, requests: r.count }));
  const deadLetters = new Map();
  for (const r of perDestination.filter((x) => x.decision === "dead_lettered")) {
    const key = `${r.destination}\u0000${r.reason}`;
    deadLetters.set(key, { destination: r.destination, reason: r.reason, events: (deadLetters.get(key)?.events ?? 0) + r.count });
  }
  const open = await openLetters(env);
  const inForce = policies.results.map((p) => ({ sha256: p.sha256, environment, first_seen: p.first_seen, last_seen: p.last_seen, current: p.sha256 === context.policy, data_map: p.map_markdown ?? null }));
  if (!inForce.some((p) => p.current)) {
    // Running now, with nothing counted under it in the range yet.
    inForce.push({ sha256: context.policy, environment, first_seen: null, last_seen: null, current: true, data_map: context.maps?.[context.policy]?.markdown ?? null });
  }
  return {
    report: "phimask evidence",
    environment,
    from,
    to,
    generated: new Date().toISOString(),
    policy: context.policy,
    policies: inForce,
    baa: context.baa ?? [],
    reconciliation: reconcile(perDestination),
    ledger: perDestination,
    refused_requests: refusedRequests,
    dead_letters: [...deadLetters.values()],
    dead_letters_open: open,
    inventory: inventory.results.map((p) => ({ path: p.path, count: p.count, first_seen: p.first_seen, new: p.first_seen >= from })),
    inventory_more: Math.max(0, (inventory.results[0]?.paths ?? 0) - inventory.results.length),
  };
}

/** The dead letters filed now (DELIVERY_STATE), by destination and reason; null when it cannot be read. */
async function openLetters(env) {
  if (!env.DELIVERY_STATE) return null;
  try {
    const { results } = await env.DELIVERY_STATE.prepare(
      "SELECT destination, reason, COUNT(*) AS letters, SUM(events) AS events FROM dead_letters GROUP BY destination, reason ORDER BY destination, reason",
    ).all();
    return results.map((r) => ({ destination: r.destination, reason: r.reason, letters: r.letters, events: r.events }));
  } catch {
    return null;
  }
}

const COLUMNS = ["received", "not_sent", "queued", "direct", "delivered", "dead_lettered", "failed", "replayed"];

/**
 * Per day and destination: received = delivered + dead_lettered (net of
 * replays) + failed + not_sent + in_flight, where in_flight is what went
 * into the queue (or out directly) and has no outcome yet. `balanced`:
 * every received event was either queued, sent directly or not sent,
 * and no more outcomes were counted than events went out.
 */
export function reconcile(rows) {
  const byKey = new Map();
  for (const r of rows) {
    const key = `${r.day}\u0000${r.destination}`;
    if (!byKey.has(key)) byKey.set(key, Object.fromEntries([["day", r.day], ["destination", r.destination], ...COLUMNS.map((c) => [c, 0])]));
    const line = byKey.get(key);
    if (Object.hasOwn(line, r.decision)) line[r.decision] += r.count;
  }
  return [...byKey.values()].map((c) => {
    const inFlight = c.queued + c.direct + c.replayed - c.delivered - c.dead_lettered - c.failed;
    return {
      day: c.day,
      destination: c.destination,
      received: c.received,
      delivered: c.delivered,
      dead_lettered: c.dead_lettered - c.replayed,
      failed: c.failed,
      not_sent: c.not_sent,
      in_flight: inFlight,
      queued: c.queued,
      direct: c.direct,
      replayed: c.replayed,
      balanced: c.received === c.queued + c.direct + c.not_sent && inFlight >= 0,
    };
  });
}

/**
 * The ledger as a reader takes it in: one line per day, destination,
 * call and event (and policy, when the range saw more than one), a
 * column per decision, each reason beside its count.
 */
export function ledgerLines(ledger) {
  const policies = new Set(ledger.map((l) => l.policy));
  const lines = new Map();
  for (const l of ledger) {
    const key = JSON.stringify([l.day, l.destination, l.call, l.event, l.policy]);
    if (!lines.has(key)) lines.set(key, { day: l.day, destination: l.destination, call: l.call, event: l.event, policy: l.policy, counts: {} });
    const by = (lines.get(key).counts[l.decision] ??= {});
    by[l.reason ?? ""] = (by[l.reason ?? ""] ?? 0) + l.count;
  }
  const cellOf = (by) => {
    if (!by) return 0;
    const total = Object.values(by).reduce((n, c) => n + c, 0);
    const reasons = Object.entries(by).filter(([r]) => r !== "").map(([r, c]) => `${r} ${c}`);
    return reasons.length === 0 ? total : `${total} (${reasons.join(", ")})`;
  };
  const head = ["day", "destination", "call", "event", "received", "queued or direct", "delivered", "dead-lettered", "failed", "replayed", "not sent"];
  if (policies.size > 1) head.push("policy");
  const rows = [...lines.values()].map((l) => {
    const sent = (l.counts.queued ? cellOf(l.counts.queued) : 0) + (l.counts.direct ? cellOf(l.counts.direct) : 0);
    const row = [l.day, l.destination, l.call, l.event, cellOf(l.counts.received), sent, cellOf(l.counts.delivered), cellOf(l.counts.dead_lettered), cellOf(l.counts.failed), cellOf(l.counts.replayed), cellOf(l.counts.not_sent)];
    if (policies.size > 1) row.push(l.policy ? l.policy.slice(0, 12) : null);
    return row;
  });
  return { head, rows };
}

// ---- Markdown ----

/** Text for a Markdown table cell: no line break, no column break, no markup (but the report's own, given as { markdown }). */
const cell = (v) => (v === null || v === undefined ? "—" : typeof v?.markdown === "string" ? v.markdown : String(v).replace(/[\r\n\u2028\u2029]+/g, " ").replace(/[\\|`*_<>[\]]/g, (c) => `\\${c}`));

function table(head, lines) {
  if (lines.length === 0) return "_None in this range._\n";
  return `| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|\n${lines.map((l) => `| ${l.map(cell).join(" | ")} |`).join("\n")}\n`;
}

export const TEXT = {
  intro: "This report shows what the phimask edge filter did with the analytics events it received, as counts and field paths only. It holds no event's values: no identifiers, no names, no property values. An event name appears only where the policy itself lists it; any other name is shown as —.",
  reconciliation: "For each day (UTC, the day the events were received) and destination: received = delivered + dead-lettered + failed + not sent + in flight. **Received**: events of accepted requests the destination was considered for. **Not sent**: the policy kept them from it (reasons in the ledger). **Delivered**: the destination's API accepted them. **Dead-lettered**: its API refused them or retries ran out; they are held for an operator (replayed ones are counted again when delivered). **Failed**: refused by the destination inside a body it otherwise took, or a direct delivery that failed; nothing is held. **In flight**: queued and not yet delivered or dead-lettered. **Balanced** says every received event is accounted for.",
  ledger: "Every count behind the reconciliation, per call type and event name as sent (— where the policy does not list the name). **Received** counts each event once per destination; **queued or direct** when it was sent on its way (direct: under a BAA, sent at once without the queue); **delivered**, **dead-lettered**, **failed** and **replayed** as above, with the reason beside its count; **not sent** with the policy's reason (routing: the event's integrations did not route it there; call_type: the destination does not take that call; event_name: the policy's events map drops the name; consent: a purpose it needs was not granted; bot: a bot's event under bots: drop; unmapped: its format has no mapping for the event; refused: the event was invalid or too large and went nowhere).",
  refused: "Requests refused whole (bad or missing write key, rate limited, too large, malformed, queue unavailable): none of their events was accepted, so they are counted in requests, not events. The senders' SDKs send most of them again.",
  deadLetters: "Events dead-lettered in the range, by destination and reason; and the dead letters held now (kept 14 days, replayable by an operator).",
  inventory: "Field paths that arrived in events and that no rule of the policy names, with the number of events each arrived in and the first day it was seen, newest first. Nothing under these paths was sent to any restricted destination; a new path may be a new field carrying PHI and is worth a look. Keys that do not look like field names are shown as [key]; [more paths] counts the events of paths beyond a day's first 1,000.",
  baa: "Destinations the policy says have a signed Business Associate Agreement, with when and under what reference, as the running policy records them.",
  policies: "Each policy (by SHA-256) that counted events in the range, with its data map: for each destination, which fields are sent and in what form.",
};

export function markdown(r) {
  const out = [];
  out.push(`# phimask evidence report: \`${cell(r.environment)}\`\n`);
  out.push(`From ${r.from} to ${r.to} (UTC days). Generated ${r.generated}. Policy running now: \`${r.policy}\`.\n`);
  out.push(`${TEXT.intro}\n`);
  out.push(`## Reconciliation\n\n${TEXT.reconciliation}\n`);
  out.push(table(["day", "destination", "received", "delivered", "dead-lettered", "failed", "not sent", "in flight", "balanced"],
    r.reconciliation.map((c) => [c.day, c.destination, c.received, c.delivered, c.dead_lettered, c.failed, c.not_sent, c.in_flight, c.balanced ? "yes" : { markdown: "**NO**" }])));
  out.push(`## Ledger\n\n${TEXT.ledger}\n`);
  const lines = ledgerLines(r.ledger);
  out.push(table(lines.head, lines.rows));
  out.push(`## Requests refused whole\n\n${TEXT.refused}\n`);
  out.push(table(["day", "call", "reason", "requests"], r.refused_requests.map((x) => [x.day, x.call, x.reason, x.requests])));
  out.push(`## Dead letters\n\n${TEXT.deadLetters}\n`);
  out.push(table(["destination", "reason", "events"], r.dead_letters.map((d) => [d.destination, d.reason, d.events])));
  out.push("Held now:\n");
  out.push(r.dead_letters_open === null ? "_The dead-letter store could not be read._\n" : table(["destination", "reason", "letters", "events"], r.dead_letters_open.map((d) => [d.destination, d.reason, d.letters, d.events])));
  out.push(`## Inventory of paths no rule names\n\n${TEXT.inventory}\n`);
  out.push(table(["path", "events", "first seen", "new in range"], r.inventory.map((p) => [p.path, p.count, p.first_seen, p.new ? "yes" : "no"])));
  if (r.inventory_more > 0) out.push(`And ${r.inventory_more} more paths, first seen earlier or in fewer events (the JSON form lists the same ${r.inventory.length}).\n`);
  out.push(`## BAA register\n\n${TEXT.baa}\n`);
  out.push(table(["destination", "signed", "reference"], r.baa.map((b) => [b.destination, b.signed ?? "no date recorded", b.ref])));
  out.push(`## Policies in force\n\n${TEXT.policies}\n`);
  for (const p of r.policies) {
    out.push(`### Policy \`${p.sha256}\`${p.current ? " (running now)" : ""}\n`);
    out.push(`First counted ${p.first_seen ?? "—"}, last counted ${p.last_seen ?? "—"}.\n`);
    // The data map as the engine wrote it, one heading level down.
    out.push(p.data_map ? `${p.data_map.replace(/^(#+) /gm, "###$1 ")}\n` : "_No data map was recorded for this policy._\n");
  }
  return out.join("\n");
}

// ---- HTML ----

const esc = (v) => (v === null || v === undefined ? "—" : String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`));

function htmlTable(head, lines) {
  if (lines.length === 0) return "<p><em>None in this range.</em></p>";
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${lines.map((l) => `<tr>${l.map((v) => `<td>${esc(v)}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

/** Markdown's **bold** as <strong>, the rest escaped. */
const prose = (text) => esc(text).replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");

export function html(r) {
  const parts = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>phimask evidence report: ${esc(r.environment)}, ${esc(r.from)} to ${esc(r.to)}</title>`);
  parts.push("<style>body{font:15px/1.5 system-ui,sans-serif;max-width:76rem;margin:2rem auto;padding:0 1rem;color:#111}table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left;vertical-align:top}th{background:#eee}td.no{color:#a00;font-weight:bold}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem;border:1px solid #ddd}</style></head><body>");
  parts.push(`<h1>phimask evidence report: <code>${esc(r.environment)}</code></h1>`);
  parts.push(`<p>From ${esc(r.from)} to ${esc(r.to)} (UTC days). Generated ${esc(r.generated)}. Policy running now: <code>${esc(r.policy)}</code>.</p><p>${prose(TEXT.intro)}</p>`);
  parts.push(`<h2>Reconciliation</h2><p>${prose(TEXT.reconciliation)}</p>`);
  parts.push(htmlTable(["day", "destination", "received", "delivered", "dead-lettered", "failed", "not sent", "in flight", "balanced"],
    r.reconciliation.map((c) => [c.day, c.destination, c.received, c.delivered, c.dead_lettered, c.failed, c.not_sent, c.in_flight, c.balanced ? "yes" : "NO"])).replace(/<td>NO<\/td>/g, '<td class="no">NO</td>'));
  parts.push(`<h2>Ledger</h2><p>${prose(TEXT.ledger)}</p>`);
  const lines = ledgerLines(r.ledger);
  parts.push(htmlTable(lines.head, lines.rows));
  parts.push(`<h2>Requests refused whole</h2><p>${prose(TEXT.refused)}</p>`);
  parts.push(htmlTable(["day", "call", "reason", "requests"], r.refused_requests.map((x) => [x.day, x.call, x.reason, x.requests])));
  parts.push(`<h2>Dead letters</h2><p>${prose(TEXT.deadLetters)}</p>`);
  parts.push(htmlTable(["destination", "reason", "events"], r.dead_letters.map((d) => [d.destination, d.reason, d.events])));
  parts.push("<p>Held now:</p>");
  parts.push(r.dead_letters_open === null ? "<p><em>The dead-letter store could not be read.</em></p>" : htmlTable(["destination", "reason", "letters", "events"], r.dead_letters_open.map((d) => [d.destination, d.reason, d.letters, d.events])));
  parts.push(`<h2>Inventory of paths no rule names</h2><p>${prose(TEXT.inventory)}</p>`);
  parts.push(htmlTable(["path", "events", "first seen", "new in range"], r.inventory.map((p) => [p.path, p.count, p.first_seen, p.new ? "yes" : "no"])));
  if (r.inventory_more > 0) parts.push(`<p>And ${esc(r.inventory_more)} more paths, first seen earlier or in fewer events.</p>`);
  parts.push(`<h2>BAA register</h2><p>${prose(TEXT.baa)}</p>`);
  parts.push(htmlTable(["destination", "signed", "reference"], r.baa.map((b) => [b.destination, b.signed ?? "no date recorded", b.ref])));
  parts.push(`<h2>Policies in force</h2><p>${prose(TEXT.policies)}</p>`);
  for (const p of r.policies) {
    parts.push(`<h3>Policy <code>${esc(p.sha256)}</code>${p.current ? " (running now)" : ""}</h3><p>First counted ${esc(p.first_seen)}, last counted ${esc(p.last_seen)}.</p>`);
    parts.push(p.data_map ? `<details open><summary>Data map</summary><pre>${esc(p.data_map)}</pre></details>` : "<p><em>No data map was recorded for this policy.</em></p>");
  }
  parts.push("</body></html>\n");
  return parts.join("\n");
}
