// The playground: validates the policy and sanitizes the event for every
// server-side destination as the user types. Values are shown with
// textContent only, so event data can never become markup.
import init, { Sanitizer, validatePolicy } from "../pkg/phimask.js";

const $ = (id) => document.getElementById(id);

function item(cls, text) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  return li;
}

function where(p) {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

function render() {
  const problems = $("problems");
  const outputs = $("outputs");
  problems.replaceChildren();
  outputs.replaceChildren();
  const policy = $("policy").value;
  const report = validatePolicy(policy);
  for (const e of report.errors) problems.append(item("error", `error: ${where(e)}`));
  for (const w of report.warnings) problems.append(item("warning", `warning: ${where(w)}`));
  if (report.valid && report.warnings.length === 0) problems.append(item("ok", "valid, no warnings"));
  if (!report.valid) return;
  let sanitizer;
  try {
    sanitizer = new Sanitizer(policy, $("key").value || undefined);
  } catch (e) {
    problems.append(item("error", `error: ${e.message}`));
    return;
  }
  try {
    for (const name of sanitizer.destinations()) {
      const section = document.createElement("section");
      section.dataset.destination = name;
      const h = document.createElement("h3");
      h.textContent = name;
      const pre = document.createElement("pre");
      try {
        const out = sanitizer.sanitizeJson($("event").value, name);
        pre.textContent = out === null ? "(nothing sent)" : JSON.stringify(JSON.parse(out), null, 2);
      } catch (e) {
        pre.className = "refused";
        pre.textContent = `refused: ${e.message}`;
      }
      section.append(h, pre);
      outputs.append(section);
    }
  } finally {
    sanitizer.free();
  }
}

async function main() {
  await init();
  const [policy, event] = await Promise.all([
    fetch("../policies/development.json").then((r) => r.text()),
    fetch("../examples/events/track-appointment.json").then((r) => r.text()),
  ]);
  $("policy").value = policy;
  $("event").value = event;
  for (const id of ["policy", "event", "key"]) $(id).addEventListener("input", render);
  render();
  $("status").textContent = "ready";
}

main().catch((e) => {
  $("status").textContent = `failed to load: ${e.message}`;
});
