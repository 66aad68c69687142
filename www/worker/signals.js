// What a request says of the visitor beside its events, for the engine's
// consent gates: a Global Privacy Control signal (the Sec-GPC header) and
// the region Cloudflare located the visitor in (request.cf). GPC is "1"
// (the spec's only value); a header sent twice arrives joined by commas,
// and any "1" among its values counts (a denial in doubt). A region only
// when it is well-formed (the engine refuses a malformed one, and a
// request must never fail for what Cloudflare put in request.cf).
//
// For the policy's `bots`: the User-Agent header and Cloudflare Bot
// Management's verdict (request.cf.botManagement, where the zone has it),
// only for a browser's request (one with an Origin header). A server's
// request carries its SDK's user agent and Bot Management scores every
// server as automated: its events are judged by their own
// context.userAgent, which server-side SDKs fill with the visitor's.

/** A country code (ISO 3166-1 alpha-2; Cloudflare also uses T1, XX). */
const COUNTRY = /^[A-Za-z0-9]{2}$/;
/** A subdivision code, the part of ISO 3166-2 after the country's dash. */
const SUBDIVISION = /^[A-Za-z0-9]{1,3}$/;

/** As much of a User-Agent as the engine reads. */
const USER_AGENT_CHARS = 1024;

/**
 * `{ gpc, region?, userAgent?, botScore?, verifiedBot? }` for
 * `processRequest`: region `US-CA`, `US` or absent; the bot signals only
 * for a request with an Origin header.
 */
export function signalsOf(request) {
  const signals = { gpc: gpcOf(request.headers) };
  const region = regionOf(request.cf);
  if (region !== undefined) signals.region = region;
  if (request.headers.has("Origin")) Object.assign(signals, botSignalsOf(request));
  return signals;
}

/**
 * `{ userAgent?, botScore?, verifiedBot? }`: the User-Agent header (its
 * first kilobyte), and from request.cf.botManagement a score that is an
 * integer from 1 to 99 and a verifiedBot that is `true`. Anything else
 * there, or a cf that throws, is no signal.
 */
export function botSignalsOf(request) {
  const out = {};
  const ua = request.headers.get("User-Agent");
  if (ua !== null) out.userAgent = ua.slice(0, USER_AGENT_CHARS);
  let score;
  let verified;
  try {
    const management = request.cf?.botManagement;
    score = management?.score;
    verified = management?.verifiedBot;
  } catch {
    return out;
  }
  if (Number.isInteger(score) && score >= 1 && score <= 99) out.botScore = score;
  if (verified === true) out.verifiedBot = true;
  return out;
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
