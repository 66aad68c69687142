// Consent in the playground: the request's signals (Sec-GPC and region),
// stamping a consent object into the event as Segment's and RudderStack's
// SDKs do, and a destination card's list of the purposes it needs, each
// granted or denied and by what, as the engine's explain decided them.
import { code, el } from "./playground-dom.js";

/** The signals argument of every explain and sanitize call: what the
 * Worker reads from the Sec-GPC header and request.cf. An empty region is
 * none; the engine judges whether a region is valid. */
export function signalsOf(gpc, region) {
  const signals = { gpc };
  if (region.trim() !== "") signals.region = region.trim();
  return signals;
}

/** The policy's purposes and their ids, [{ purpose, ids }], or [] when
 * the policy has no consent categories. */
export function purposesOf(policy) {
  const categories = policy?.consent?.categories;
  if (categories === null || typeof categories !== "object") return [];
  return Object.entries(categories).map(([purpose, ids]) => ({ purpose, ids: Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [] }));
}

/** Regions offered besides the policy's own: three states whose privacy
 * laws differ, a country, and one abroad. */
const REGIONS = ["US-WA", "US-CA", "US-TX", "US", "DE"];

/** The region field's suggestions, each with the mode the policy gives
 * it. */
export function regionOptions(policy) {
  const regions = policy?.consent?.regions ?? {};
  return [...new Set([...Object.keys(regions), ...REGIONS])].map((r) =>
    el("option", { value: r, label: regions[r]?.mode ? `${regions[r].mode} in this policy` : "the policy's mode" }));
}

/** A checkbox per id the policy's purposes name (an id two purposes share
 * once), ticked as in `ticked`, which they keep up to date. */
export function idBoxes(purposes, ticked) {
  if (purposes.length === 0) return [el("span", { class: "hint", textContent: "The policy has no consent categories: a stamp carries no ids." })];
  const shown = new Set();
  const groups = purposes.map(({ purpose, ids }) => {
    const boxes = [];
    for (const id of ids) {
      if (shown.has(id)) continue;
      shown.add(id);
      const box = el("input", { type: "checkbox", checked: ticked.has(id), dataset: { id } });
      box.addEventListener("change", () => (box.checked ? ticked.add(id) : ticked.delete(id)));
      boxes.push(el("label", { class: "check" }, box, code(id), " "));
    }
    return el("span", { class: "purpose" }, code(purpose), ": ", ...boxes);
  });
  return [el("span", { textContent: "Granted ids (ticked):" }), ...groups];
}

/** For the ids ticked in `granted`, which ids a stamp says true and which
 * false: a ticked id is granted; a purpose with no id ticked is denied
 * under all its ids. A purpose with one id ticked leaves its other ids
 * out, as a consent manager sends its own ids only (and any id present
 * and not granted would deny the purpose). */
export function choicesOf(purposes, granted) {
  const allowed = [];
  const denied = [];
  for (const { ids } of purposes) {
    const ticked = ids.filter((id) => granted.has(id));
    for (const id of ticked) if (!allowed.includes(id)) allowed.push(id);
    if (ticked.length === 0) for (const id of ids) if (!denied.includes(id)) denied.push(id);
  }
  return { allowed, denied: denied.filter((id) => !allowed.includes(id)) };
}

/**
 * The event text with consent stamped into its context, as the SDKs do:
 * "segment" sets `context.consent.categoryPreferences` ({ id: bool },
 * @segment/analytics-consent-tools), "rudderstack" sets
 * `context.consentManagement` (@rudderstack/analytics-js's consent
 * management), "remove" deletes both. Throws an Error saying why when the
 * event is not an object with an object context (it is not changed).
 */
export function stamp(eventText, kind, { allowed = [], denied = [] } = {}) {
  let event;
  try {
    event = JSON.parse(eventText);
  } catch {
    throw new Error("the event is not valid JSON: fix it first, or stamp onto an example");
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) throw new Error("the event is not a JSON object");
  const context = event.context ?? {};
  if (context === null || typeof context !== "object" || Array.isArray(context)) throw new Error("the event's context is not an object: fix it by hand");
  if (kind === "segment") {
    const categoryPreferences = Object.fromEntries([...allowed.map((id) => [id, true]), ...denied.map((id) => [id, false])]);
    const consent = context.consent !== null && typeof context.consent === "object" && !Array.isArray(context.consent) ? context.consent : {};
    context.consent = { ...consent, categoryPreferences };
  } else if (kind === "rudderstack") {
    context.consentManagement = { allowedConsentIds: allowed, deniedConsentIds: denied, provider: "custom", resolutionStrategy: "and" };
  } else {
    delete context.consent;
    delete context.consentManagement;
  }
  if (Object.keys(context).length > 0) event.context = context;
  else delete event.context;
  return JSON.stringify(event, null, 2);
}

/** Why a purpose was decided so, in words, after its `by`. */
function why(d) {
  switch (d.by) {
    case "gpc":
      return "the request's Sec-GPC: 1";
    case "opt-in":
    case "opt-out":
      return `the event says nothing, and ${d.region ? `region ${d.region} is` : "the policy is"} ${d.by}`;
    default:
      return d.granted ? `the event grants ${d.id}` : `the event does not grant ${d.id}`;
  }
}

/** A card's consent block, from explain's `consent` for the destination:
 * nothing for a destination that needs no consent. */
export function consentBlock(decisions) {
  if (!Array.isArray(decisions)) return null;
  const gated = decisions.some((d) => !d.granted);
  const items = decisions.map((d) =>
    el("li", { class: d.granted ? "granted" : "denied", dataset: { purpose: d.purpose, granted: String(d.granted), by: d.by, ...(d.id !== undefined && { id: d.id }), ...(d.region !== undefined && { region: d.region }) } },
      code(d.purpose), " ",
      el("span", { class: `mark ${d.granted ? "mark-passed" : "mark-dropped"}`, textContent: d.granted ? "granted" : "denied" }),
      " by ", code(d.by), ...(d.id !== undefined ? [" ", code(d.id)] : []),
      el("span", { class: "hint", textContent: ` (${why(d)})` })));
  return el("div", { class: gated ? "consent gated" : "consent", dataset: { gated: String(gated) } },
    el("p", { class: "consent-head", textContent: gated ? "Gated by consent: it gets nothing unless every purpose it needs is granted." : "Consent: every purpose it needs is granted." }),
    el("ul", {}, ...items));
}
