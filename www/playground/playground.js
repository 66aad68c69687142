// The playground: checks the policy and explains the event for every
// destination as the user types — each field marked passed, masked,
// transformed or dropped, the body in the destination's own format, and
// the policy's data map, under the request's signals (Sec-GPC, region)
// and with the consent each gated destination needs. Event data and
// policy text are shown with textContent only (or in a sandboxed frame,
// for the map, whose HTML the engine escapes), so they never become
// markup; nothing leaves the page.
import init, { dataMap, Sanitizer, validatePolicy } from "../../pkg/phimask.js";
import { choicesOf, consentBlock, idBoxes, purposesOf, regionOptions, signalsOf, stamp } from "./playground-consent.js";
import { code, el } from "./playground-dom.js";
import { marks } from "./playground-marks.js";

const $ = (id) => document.getElementById(id);

/** Stand-in credentials of each format's form, so the page can show each
 * native body; they are not secrets and never leave the page. */
const PLACEHOLDER = {
  amplitude: "00000000000000000000000000000000",
  mixpanel: "playground-project-secret",
  ga4: "G-PLAYGROUND:playground-api-secret",
  posthog: "phc_playgroundprojectkey",
};

const show = (value) => (value === undefined ? "—" : JSON.stringify(value));
const where = (p) => (p.path ? [code(p.path), `: ${p.message}`] : [p.message]);

function renderProblems(report) {
  const items = [
    ...report.errors.map((e) => el("li", { class: "error", dataset: { path: e.path } }, "error: ", ...where(e))),
    ...report.warnings.map((w) => el("li", { class: "warning", dataset: { path: w.path } }, "warning: ", ...where(w))),
  ];
  if (items.length === 0) items.push(el("li", { class: "ok", textContent: "valid, no warnings" }));
  $("problems").replaceChildren(...items);
}

/** The body each server-side destination's endpoint would get (pretty
 * when JSON), from one processRequest of the event as a batch. */
function nativeBodies(sanitizer, eventText, signals) {
  const out = {};
  for (const name of sanitizer.destinations()) {
    const format = sanitizer.format(name);
    try {
      // Bodies carry no credential; the sender adds this member after `{`.
      const { credentialMember } = sanitizer.connect(name, PLACEHOLDER[format] ?? null);
      out[name] = { format, credentialMember };
    } catch (e) {
      out[name] = { format, text: `not sendable: ${e.message}` };
    }
  }
  let done;
  try {
    done = sanitizer.processRequest(new TextEncoder().encode(`{"batch":[${eventText}]}`), "batch", undefined, signals);
  } catch (e) {
    done = { bodies: {}, error: e.message };
  }
  for (const [name, body] of Object.entries(out)) {
    if (body.text !== undefined) continue;
    const made = done.bodies[name]?.[0];
    const text = made !== undefined && body.credentialMember ? `{${body.credentialMember}${made.slice(1)}` : made;
    if (done.error) body.text = `not sendable: ${done.error}`;
    else if (text === undefined) body.text = `(no ${body.format} body: its API has no place for this call)`;
    else {
      try {
        body.text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        body.text = text; // ndjson: one event a line
      }
    }
  }
  return out;
}

function destinationCard(sanitizer, name, explanation, event, eventText, signals, restricted, body) {
  const card = el("section", { class: "dest", dataset: { destination: name, code: explanation.code, sent: String(explanation.sent) } });
  const format = sanitizer.format(name);
  card.append(el("h3", {}, name,
    el("span", { class: "badge", textContent: format ? `${format} format` : "client-side" }),
    el("span", { class: "badge", textContent: restricted ? "restricted" : "unrestricted (BAA)" })));
  card.append(el("p", { class: explanation.sent ? "reason" : "reason not-sent", textContent: explanation.reason }));
  const consent = consentBlock(explanation.consent);
  if (consent) card.append(consent);
  if (!explanation.sent) return card;
  const sentText = sanitizer.sanitizeJson(eventText, name, signals);
  const sent = JSON.parse(sentText);
  const rows = marks(event, explanation, sent).map((r) =>
    el("tr", { class: `mark-${r.mark}`, dataset: { field: r.field, mark: r.mark } },
      el("td", {}, code(r.field)),
      el("td", { class: `mark mark-${r.mark}`, textContent: r.mark }),
      el("td", { class: "value-in" }, code(show(r.input))),
      el("td", {}, code(show(r.output)))));
  card.append(el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { class: "f", scope: "col", textContent: "field" }),
      el("th", { class: "m", scope: "col", textContent: "what happens" }),
      el("th", { scope: "col", textContent: "in the event" }),
      el("th", { scope: "col", textContent: "sent as" }))),
    el("tbody", {}, ...rows)));
  card.append(el("details", { class: "native" },
    el("summary", { textContent: `the ${body.format} body its endpoint gets` }),
    el("pre", { textContent: body.text })));
  card.append(el("details", { class: "sanitized" },
    el("summary", { textContent: "the sanitized event" }),
    el("pre", { textContent: JSON.stringify(sent, null, 2) })));
  return card;
}

let mapHtml = "";
/** The policy text the check and the map were last made of: typing in
 * the event or the key leaves both as they are. */
let checked = { text: null, report: null };
/** The consent ids ticked for the next stamp, kept across policy edits. */
const ticked = new Set();
let purposes = [];

/** The stamp's checkboxes and the region suggestions, from a valid
 * policy's consent section. */
function renderConsentControls(policyText) {
  let policy = null;
  try {
    policy = JSON.parse(policyText);
  } catch {
    // Valid for the engine yet not for JSON.parse: no consent controls.
  }
  purposes = purposesOf(policy);
  $("consent-ids").replaceChildren(...idBoxes(purposes, ticked));
  $("regions").replaceChildren(...regionOptions(policy));
}

function onStamp(kind) {
  try {
    $("event").value = stamp($("event").value, kind, choicesOf(purposes, ticked));
    $("stamp-status").textContent = "";
  } catch (e) {
    $("stamp-status").textContent = `not stamped: ${e.message}`;
  }
  render();
}

const NO_MAP = "<!doctype html><p style='font:14px system-ui;color:#566275'>The data map appears once the policy is valid.</p>";

function renderMap(policyText, valid) {
  const html = valid ? dataMap(policyText, "html") : "";
  // The frame reloads (and loses its scroll) only when the map changed.
  if (html === mapHtml && $("map").srcdoc) return;
  mapHtml = html;
  $("map").srcdoc = html || NO_MAP;
}

function render() {
  const policyText = $("policy").value;
  const eventText = $("event").value;
  if (checked.text !== policyText) {
    checked = { text: policyText, report: validatePolicy(policyText) };
    renderProblems(checked.report);
    renderMap(policyText, checked.report.valid);
    if (checked.report.valid) renderConsentControls(policyText);
  }
  const { report } = checked;
  const status = $("event-status");
  status.hidden = true;
  const signals = signalsOf($("gpc").checked, $("region").value);
  $("signals-status").textContent = "";
  $("region").removeAttribute("aria-invalid");
  if (!report.valid) {
    $("outputs").replaceChildren();
    return;
  }
  let sanitizer;
  try {
    sanitizer = new Sanitizer(policyText, $("key").value || undefined);
  } catch (e) {
    $("outputs").replaceChildren();
    status.textContent = `cannot sanitize: ${e.message}`;
    status.hidden = false;
    return;
  }
  try {
    let explained;
    try {
      explained = sanitizer.explain(eventText, signals);
    } catch (e) {
      $("outputs").replaceChildren();
      if (e.code === "invalid_signals") {
        // No region is not this region: show nothing rather than guess.
        $("region").setAttribute("aria-invalid", "true");
        $("signals-status").textContent = `region ${JSON.stringify(signals.region)} is not valid: ${e.message.replace(/^signals\.region /, "")}`;
        status.textContent = "no destination is shown until the region is valid (or empty)";
      } else status.textContent = `the event is refused, and sent to no destination: ${e.message}`;
      status.hidden = false;
      return;
    }
    const event = JSON.parse(eventText);
    const policy = JSON.parse(policyText);
    const bodies = nativeBodies(sanitizer, eventText, signals);
    const cards = Object.entries(explained).map(([name, explanation]) => {
      const restricted = policy.destinations[name]?.restrict_phi ?? policy.hipaa;
      return destinationCard(sanitizer, name, explanation, event, eventText, signals, restricted, bodies[name]);
    });
    $("outputs").replaceChildren(...cards);
  } finally {
    sanitizer.free();
  }
}

/** Saves text as a file from the page itself (a blob: URL, no request). */
function save(text, name, type) {
  if (!text) return;
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function load(path) {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.text();
}

async function main() {
  await init();
  const [policy, event] = await Promise.all([load("../../policies/development.json"), load("../../examples/events/track-appointment.json")]);
  $("policy").value = policy;
  $("event").value = event;
  for (const id of ["policy", "event", "key", "region"]) $(id).addEventListener("input", render);
  $("gpc").addEventListener("change", render);
  for (const kind of ["segment", "rudderstack", "remove"]) $(`stamp-${kind}`).addEventListener("click", () => onStamp(kind));
  // The examples are fetched on click, so what is typed is never sent:
  // these requests carry no more than the name of an example.
  $("examples").addEventListener("click", async (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.dataset.policy) $("policy").value = await load(`../../policies/${button.dataset.policy}.json`);
    if (button.dataset.event) $("event").value = await load(`../../examples/events/${button.dataset.event}.json`);
    render();
  });
  $("save-html").addEventListener("click", () => save(mapHtml, "phimask-data-map.html", "text/html"));
  $("save-markdown").addEventListener("click", () => save(mapHtml && dataMap(checked.text, "markdown"), "phimask-data-map.md", "text/markdown"));
  render();
  $("status").textContent = "ready";
}

main().catch((e) => {
  $("status").textContent = `failed to load: ${e.message}`;
});
