// What a request says of the visitor beside its events, for the engine's
// consent gates: a Global Privacy Control signal (the Sec-GPC header) and
// the region Cloudflare located the visitor in (request.cf). GPC is "1"
// (the spec's only value); a header sent twice arrives joined by commas,
// and any "1" among its values counts (a denial in doubt). A region only
// when it is well-formed (the engine refuses a malformed one, and a
// request must never fail for what Cloudflare put in request.cf).

/** A country code (ISO 3166-1 alpha-2; Cloudflare also uses T1, XX). */
const COUNTRY = /^[A-Za-z0-9]{2}$/;
/** A subdivision code, the part of ISO 3166-2 after the country's dash. */
const SUBDIVISION = /^[A-Za-z0-9]{1,3}$/;

/** `{ gpc, region? }` for `processRequest`: region `US-CA`, `US` or absent. */
export function signalsOf(request) {
  const signals = { gpc: gpcOf(request.headers) };
  const region = regionOf(request.cf);
  if (region !== undefined) signals.region = region;
  return signals;
}

/** Whether the visitor sent a GPC signal: `Sec-GPC: 1`, once or among repeats. */
export function gpcOf(headers) {
  const value = headers.get("Sec-GPC");
  return value !== null && value.split(",").some((v) => v.trim() === "1");
}

/**
 * The visitor's region from request.cf: `country-regionCode` when both are
 * well-formed, the country alone when only it is, undefined otherwise.
 */
export function regionOf(cf) {
  let country;
  let subdivision;
  try {
    country = cf?.country;
    subdivision = cf?.regionCode;
  } catch {
    // A cf whose properties throw: no region.
    return undefined;
  }
  if (typeof country !== "string" || !COUNTRY.test(country)) return undefined;
  const upper = country.toUpperCase();
  if (typeof subdivision === "string" && SUBDIVISION.test(subdivision)) return `${upper}-${subdivision.toUpperCase()}`;
  return upper;
}
