//! The JavaScript API (wasm-bindgen). The only module that knows about JS:
//! it turns JS values into text for the core and core errors into JS
//! `Error`s (with `code`, and `errors` for policy problems), in one place.

#[cfg(feature = "full")]
use std::cell::RefCell;

#[cfg(feature = "full")]
use js_sys::JSON;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::message::Describe;
use crate::policy::Problem;
use crate::Error;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A detector of `scan`. */
export type Detector = "email" | "ssn" | "phone" | "card" | "ip" | "date" | "id";
/** `true` (every detector but `id`), `false`, or a list of detectors. */
export type Scan = boolean | Detector[];
/** What an allowlist rule does with the value at its path. */
export type Action =
  | "allow" | "mask" | "drop" | "url" | "ip" | "zip3" | "year" | "age"
  | { action: "allow"; scan?: Scan; on_match?: "redact" | "mask" | "drop" }
  | { action: "mask"; normalize?: "email" | "phone" | "text" }
  | { action: "ip"; mode?: "truncate" | "zero" }
  | { action: "url"; query?: string[]; paths?: string[]; segments?: string[] | "*" }
  | { action: "drop" | "zip3" | "year" | "age" };
/** What happens to userId, anonymousId, groupId, previousId. */
export type IdentifierAction = "mask" | "allow" | "drop";
/** Path (`a.b`, `products[].sku`) to action. */
export type Allowlist = Record<string, Action>;
export interface Allowlists {
  /** `properties` of track, page and screen calls. */
  event_properties?: Allowlist;
  /** `traits` of identify calls, and `context.traits` of every call. */
  user_properties?: Allowlist;
  /** `traits` of group calls. */
  group_properties?: Allowlist;
  /** `context.*` (never `traits`). Defaults to the leaves library.name,
   * library.version, locale, timezone. */
  context?: Allowlist;
  /** Object members of `integrations` (`"Amplitude.session_id"`); its
   * boolean members always pass. */
  integrations?: Allowlist;
}
/** What an `events` map does with an event, page or screen name. */
export type NameRule = "allow" | "drop" | { rename: string };
/** Event (track), page and screen names to rules; `"*"` for the rest. */
export type EventsMap = Record<string, NameRule>;
/** A Segment call type. */
export type CallType = "track" | "identify" | "group" | "page" | "screen" | "alias";
export interface Destination {
  connection: "server-side" | "client-side";
  /** https URL the edge POSTs `{"batch": [...]}` to (server-side). */
  endpoint?: string;
  /** false only with `baa: true`: the destination gets events unchanged. */
  restrict_phi?: boolean;
  /** A Business Associate Agreement is signed with this destination:
   * `true`, or the register form with the day it was signed (YYYY-MM-DD)
   * and its contract reference (one line, at most 200 characters). */
  baa?: boolean | { signed: string; ref: string };
  /** Entries added to the environment's lists (same path: these win). */
  allowlists?: Allowlists;
  /** Entries added to the top-level `events` map (same name: these win). */
  events?: EventsMap;
  /** The call types it receives (default: all). */
  calls?: CallType[];
  /** Its name for `integrations` routing (default: the destination's name). */
  integration?: string;
  /** Its key scope: masks with a key derived for this name. */
  mask_scope?: string;
  /** What its endpoint speaks (default `segment`). */
  format?: "segment" | "amplitude" | "mixpanel" | "ga4" | "posthog" | "ndjson";
  /** Purposes (of the top-level `consent`) the visitor must have granted
   * for it to receive an event. */
  consent?: string[];
}
/** Whether a purpose the event says nothing of counts as granted. */
export type ConsentMode = "opt-in" | "opt-out";
/** Purposes the visitor grants or denies, and how undetermined ones count. */
export interface ConsentSection {
  /** Default "opt-in": a purpose the event says nothing of is denied. */
  mode?: ConsentMode;
  /** Purpose to the consent category ids (a CMP's, e.g. OneTrust `C0004`)
   * that stand for it in `context.consent.categoryPreferences` (Segment)
   * and `context.consentManagement` (RudderStack). */
  categories: Record<string, string[]>;
  /** Purposes a Global Privacy Control signal (Sec-GPC: 1) denies. */
  gpc?: string[];
  /** ISO 3166-2 codes (`US-WA`) or countries (`US`) to their mode. */
  regions?: Record<string, { mode: ConsentMode }>;
}
/** What a request says of the visitor beyond its events. */
export interface Signals {
  /** A Global Privacy Control signal (the Sec-GPC: 1 header). */
  gpc?: boolean;
  /** The visitor's region: `US-WA`, or a country `US` (any case). */
  region?: string;
  /** The request's User-Agent header (its first 1,024 bytes are read):
   * under the policy's `bots`, one of the documented list makes every
   * event of the request a bot's. */
  userAgent?: string;
  /** Cloudflare Bot Management's score (`request.cf.botManagement.score`),
   * an integer from 1 to 99: below 30 is automated, a bot. */
  botScore?: number;
  /** `request.cf.botManagement.verifiedBot`: a known bot. */
  verifiedBot?: boolean;
}
/** Why an event is a bot's: never the user agent itself. */
export interface BotVerdict {
  by: "userAgent" | "contextUserAgent" | "botScore" | "verifiedBot";
  /** The token of the documented list that matched a user agent. */
  token?: string;
  /** The bot score that was below 30. */
  score?: number;
}
/** The decision on one purpose a destination needs. */
export interface ConsentDecision {
  purpose: string;
  granted: boolean;
  /** What decided: `gpc`, the event's `categoryPreferences`,
   * `deniedConsentIds` or `allowedConsentIds`, or (undetermined) the
   * mode `opt-in` / `opt-out`. */
  by: "gpc" | "categoryPreferences" | "deniedConsentIds" | "allowedConsentIds" | "opt-in" | "opt-out" | "unread";
  /** The category id that decided. */
  id?: string;
  /** The region whose mode decided. */
  region?: string;
}
/** A phimask policy, version 1. */
export interface Policy {
  version: 1;
  environment: string;
  hipaa: boolean;
  identifiers?: {
    userId?: IdentifierAction;
    anonymousId?: IdentifierAction;
    groupId?: IdentifierAction;
    previousId?: IdentifierAction;
  };
  allowlists?: Allowlists;
  /** Names of track events and of pages and screens, for restricted destinations. */
  events?: EventsMap;
  /** Detectors for every `allow` rule that sets no `scan` of its own. */
  scan?: Scan;
  destinations: Record<string, Destination>;
  /** Purposes that gate destinations on the visitor's consent. */
  consent?: ConsentSection;
  /** What happens to a bot's events: sent nowhere (`drop`), sent with
   * `context.bot: true` for the lists to govern (`flag`), or handled like
   * any other (`allow`, the default). */
  bots?: "drop" | "flag" | "allow";
}
/** One problem of a policy, at its JSON path. */
export interface PolicyProblem { path: string; message: string; }
export interface ValidationResult {
  valid: boolean;
  errors: PolicyProblem[];
  warnings: PolicyProblem[];
}
/** A Segment-spec event. */
export interface SegmentEvent {
  type: CallType;
  [key: string]: unknown;
}
/** `code` of the Errors phimask throws. */
export type ErrorCode =
  | "invalid_policy" | "missing_key" | "key_too_short" | "invalid_key" | "unknown_destination"
  | "event_too_large" | "event_too_deep" | "invalid_json" | "event_not_object"
  | "missing_type" | "unknown_type" | "duplicate_key" | "invalid_integrations"
  | "incomplete_event" | "invalid_body" | "invalid_credential" | "batch_too_large"
  | "invalid_signals";
/** The engine's limits, for callers that read requests themselves. */
export interface Limits {
  /** Largest event, in bytes of JSON. */
  maxEventBytes: number;
  /** Largest batch request, in bytes of JSON. */
  maxBatchBytes: number;
  /** Deepest nesting of an event. */
  maxDepth: number;
  /** How many rejected events `processRequest` lists (100). */
  maxRejectedListed: number;
}
/** A tracking request read by `readRequest`: its write key, and each
 * event's JSON text, or why that event alone was refused. */
export interface TrackingRequest {
  writeKey?: string;
  events: Array<{ text: string } | { code: ErrorCode; error: string }>;
}
/** What one destination gets of an event, and why (paths, never values). */
export interface Explanation {
  sent: boolean;
  reason: string;
  code: "sanitized" | "unrestricted" | "client_side" | "call_type" | "routing" | "event_name" | "consent" | "bot";
  /** For a destination with `consent`: the decision on each purpose. */
  consent?: ConsentDecision[];
  /** When the policy looks for bots and the event is a bot's: why. */
  bot?: BotVerdict;
  dropped: string[];
  masked: string[];
  transformed: string[];
}
/** Where a destination's requests go: its URL (with any query parameters
 * its credential adds), `Authorization` header, and the member its
 * credential adds to a body. Holds the credential: never log it. */
export interface Target {
  url: string;
  authorization?: string;
  /** The JSON member (`"api_key":"…",`, Amplitude and PostHog) to insert
   * right after a body's opening `{` when sending it: `processRequest`'s
   * bodies carry no credential. */
  credentialMember?: string;
  format: "segment" | "amplitude" | "mixpanel" | "ga4" | "posthog" | "ndjson";
  /** False for a destination under a BAA (`restrict_phi: false`): its bodies keep PHI. */
  restricted: boolean;
}
/** What `processRequest` made of a tracking request. */
export interface Processed {
  writeKey?: string;
  /** Events sanitized for every destination. */
  accepted: number;
  /** Events refused, by index in the request; nothing of them is sent
   * (`event_too_large` also when it fits no body of one destination).
   * The first `maxRejectedListed` (100) only: `rejectedCount` has them all. */
  rejected: Array<{ index: number; code: ErrorCode; error: string }>;
  /** How many events were refused (`rejected` lists the first 100). */
  rejectedCount: number;
  /** Request bodies per destination in its format, without credentials
   * (Target's `credentialMember` is added when sending). */
  bodies: Record<string, string[]>;
  /** Per destination and body, the request indexes of its events. */
  events: Record<string, number[][]>;
  /** Per destination: events sent, paths dropped / masked / transformed in
   * them, events its format has no mapping for, accepted events not sent
   * to it for want of consent. */
  report: Record<string, { events: number; dropped: number; masked: number; transformed: number; unmapped: number; consent: number }>;
  /** Accepted events that are a bot's, under the policy's `bots`: sent
   * nowhere (`drop`) or flagged (`flag`). */
  bots: number;
  /** Per destination, what the delivery ledger counts: every event of the
   * request exactly once, sent or not sent with a reason. */
  ledger: Record<string, Ledger>;
  /** Paths in the accepted events that no rule of the policy names, with
   * the number of events each occurred in (`[key]` for a key that is not
   * a field name; at most 256, then `[more paths]`; never a value). */
  inventory: Array<[path: string, events: number]>;
}
/** Why an event was not sent to a destination. */
export type NotSent = "routing" | "call_type" | "event_name" | "consent" | "bot" | "unmapped" | "refused";
/** One destination's part of a request in the delivery ledger. */
export interface Ledger {
  /** Distinct labels: the call type (null: refused before it was known)
   * and the name as sent, only when the destination's `events` map lists
   * it (else null: names can be PHI). */
  labels: Array<[call: CallType | null, event: string | null]>;
  /** Parallel to `events`: per body, per event, its index in `labels`. */
  of: number[][];
  /** Events not sent: label index, reason, how many. */
  notSent: Array<[label: number, reason: NotSent, count: number]>;
}
/** Counts since the last `takeReport()`, by destination. */
export type Report = Record<string, { events: number; dropped: number; masked: number; transformed: number }>;
/** The Error phimask throws; `errors` lists a policy's problems. */
/** One line of a policy's BAA register (`Sanitizer.baaRegister()`):
 * `signed` and `ref` are null for `"baa": true`. */
export interface BaaEntry {
  destination: string;
  signed: string | null;
  ref: string | null;
}
export interface PhimaskError extends Error {
  code: ErrorCode;
  errors?: PolicyProblem[];
}
"#;

fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Reflect.set only fails on frozen or non-object targets, which these
    // freshly made objects are not.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// Sets `key` as an own, plain data property, whatever the name: the
/// keys of these objects are destination names from the policy, and
/// `Reflect.set` of `__proto__` would change the prototype instead.
fn define(target: &JsValue, key: &str, value: &JsValue) {
    let field: JsValue = Object::new().into();
    set(&field, "value", value);
    for flag in ["writable", "enumerable", "configurable"] {
        set(&field, flag, &JsValue::TRUE);
    }
    let (target, field): (&Object, &Object) = (target.unchecked_ref(), field.unchecked_ref());
    // Fails only on frozen or non-object targets, which these are not.
    let _ = Reflect::define_property(target, &JsValue::from_str(key), field);
}

/// One destination's ledger: `{labels, of, notSent}` (see the `Ledger`
/// type). `of` crosses as one typed array per body, as `events` does.
fn ledger_of(d: &crate::process::Delivery) -> JsValue {
    let text = |t: Option<&str>| t.map_or(JsValue::NULL, JsValue::from_str);
    let labels: Array = d
        .labels
        .iter()
        .map(|l| -> JsValue {
            let call = text(l.call.map(|c| c.name()));
            Array::of2(&call, &text(l.event.as_deref())).into()
        })
        .collect();
    let of: Array = d
        .labels_of
        .iter()
        .map(|list| -> JsValue { Array::from(&js_sys::Uint32Array::from(list.as_slice())).into() })
        .collect();
    let not_sent: Array = d
        .not_sent
        .iter()
        .map(|(label, why, n)| -> JsValue {
            let (label, why, n) = (
                JsValue::from(*label),
                JsValue::from_str(why.code()),
                JsValue::from(*n),
            );
            Array::of3(&label, &why, &n).into()
        })
        .collect();
    let out: JsValue = Object::new().into();
    set(&out, "labels", &labels);
    set(&out, "of", &of);
    set(&out, "notSent", &not_sent);
    out
}

fn problems(list: &[Problem]) -> Array {
    list.iter()
        .map(|p| {
            let o: JsValue = Object::new().into();
            set(&o, "path", &JsValue::from_str(&p.path));
            set(&o, "message", &JsValue::from_str(&p.message));
            o
        })
        .collect()
}

/// The one mapping of core errors to JS `Error`s.
fn js_error(e: &Error) -> JsValue {
    let err: JsValue = js_sys::Error::new(&e.message()).into();
    set(&err, "code", &JsValue::from_str(e.code()));
    if let Error::InvalidPolicy(list) = e {
        set(&err, "errors", &problems(list));
    }
    err
}

fn plain_error(code: &str, message: &str) -> JsValue {
    let err: JsValue = js_sys::Error::new(message).into();
    set(&err, "code", &JsValue::from_str(code));
    err
}

/// The keys a signals object may have.
const SIGNAL_KEYS: [&str; 5] = ["gpc", "region", "userAgent", "botScore", "verifiedBot"];

/// A request's signals, `{ gpc?, region?, userAgent?, botScore?,
/// verifiedBot? }` (absent: none). Anything else throws `invalid_signals`:
/// a misspelt key silently ignored would send what the visitor refused, or
/// a bot's events. Only a plain object's own keys count, all of them
/// (non-enumerable and symbol keys too), and a property that cannot be
/// read throws: a `Map`, a getter that throws or a key hidden from
/// `Object.keys` must never read as "no GPC".
fn signals(value: Option<&Object>) -> Result<(crate::Signals, crate::Agent), JsValue> {
    let bad = |message: &str| plain_error("invalid_signals", message);
    let Some(value) = value else {
        return Ok(Default::default());
    };
    let value: &JsValue = value;
    let plain = || {
        bad("signals must be an object { gpc: boolean, region: string, userAgent: string, botScore: number, verifiedBot: boolean }")
    };
    if !value.is_object() || Array::is_array(value) {
        return Err(plain());
    }
    let proto = Reflect::get_prototype_of(value).map_err(|_| plain())?;
    let object_proto = Reflect::get_prototype_of(&Object::new()).map_err(|_| plain())?;
    if !proto.is_null() && !Object::is(&proto, &object_proto) {
        return Err(plain());
    }
    let expected = SIGNAL_KEYS.join(", ");
    let keys = Reflect::own_keys(value).map_err(|_| plain())?;
    for key in keys.iter() {
        let Some(key) = key.as_string() else {
            return Err(bad(
                &["signals: unknown symbol key; expected ", &expected].concat()
            ));
        };
        if !SIGNAL_KEYS.contains(&key.as_str()) {
            return Err(bad(&[
                "signals: unknown key ",
                &crate::message::quoted(&key),
                "; expected ",
                &expected,
            ]
            .concat()));
        }
    }
    let get = |key: &str| {
        Reflect::get(value, &JsValue::from_str(key))
            .map_err(|_| bad(&["signals.", key, " could not be read"].concat()))
    };
    let flag = |key: &str| -> Result<bool, JsValue> {
        let v = get(key)?;
        if v.is_undefined() {
            return Ok(false);
        }
        v.as_bool()
            .ok_or_else(|| bad(&["signals.", key, " must be true or false"].concat()))
    };
    let gpc = flag("gpc")?;
    let region = get("region")?;
    let region = if region.is_undefined() || region.is_null() {
        None
    } else {
        let text = region
            .as_string()
            .ok_or_else(|| bad("signals.region must be a string"))?;
        Some(crate::Signals::region_code(&text).map_err(|m| bad(&["signals.", &m].concat()))?)
    };
    let user_agent = get("userAgent")?;
    let user_agent = if user_agent.is_undefined() || user_agent.is_null() {
        None
    } else if user_agent.is_string() {
        // Only the first kilobyte is read: no more crosses the boundary.
        let head =
            js_sys::JsString::from(user_agent).slice(0, crate::bots::MAX_USER_AGENT_BYTES as u32);
        let mut text = head.as_string().unwrap_or_default();
        let mut end = text.len().min(crate::bots::MAX_USER_AGENT_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        Some(text)
    } else {
        return Err(bad("signals.userAgent must be a string"));
    };
    let score = get("botScore")?;
    let score = if score.is_undefined() || score.is_null() {
        None
    } else {
        let n = score
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (1.0..=99.0).contains(n));
        let n = n.ok_or_else(|| bad("signals.botScore must be an integer from 1 to 99"))?;
        Some(crate::Agent::score_of(n as i64).map_err(|m| bad(&["signals.", &m].concat()))?)
    };
    let verified = flag("verifiedBot")?;
    Ok((
        crate::Signals { gpc, region },
        crate::Agent {
            user_agent,
            score,
            verified,
        },
    ))
}

/// A policy given as JSON text or as an object.
#[cfg(feature = "full")]
fn policy_text(policy: &JsValue) -> Option<String> {
    if let Some(text) = policy.as_string() {
        return Some(text);
    }
    if !policy.is_object() {
        return None;
    }
    JSON::stringify(policy).ok()?.as_string()
}

/// Validates a policy; never throws.
#[cfg(feature = "full")]
#[wasm_bindgen(js_name = validatePolicy, unchecked_return_type = "ValidationResult")]
pub fn validate_policy(
    #[wasm_bindgen(unchecked_param_type = "Policy | string")] policy: JsValue,
) -> JsValue {
    let report = match policy_text(&policy) {
        Some(text) => crate::validate_policy(&text).1,
        None => crate::Report {
            errors: vec![Problem {
                path: String::new(),
                message: "policy must be an object or JSON text".into(),
            }],
            warnings: Vec::new(),
        },
    };
    let out: JsValue = Object::new().into();
    set(&out, "valid", &JsValue::from_bool(report.is_valid()));
    set(&out, "errors", &problems(&report.errors));
    set(&out, "warnings", &problems(&report.warnings));
    out
}

/// Validates a policy and prepares it for `Sanitizer.fromPrepared` (the
/// edge Worker's build, which has no validator, loads only these). Throws
/// an Error listing every problem (`errors`).
#[cfg(feature = "full")]
#[wasm_bindgen(js_name = preparePolicy)]
pub fn prepare_policy(
    #[wasm_bindgen(unchecked_param_type = "Policy | string")] policy: JsValue,
) -> Result<Vec<u8>, JsValue> {
    let text = policy_text(&policy)
        .ok_or_else(|| plain_error("invalid_policy", "policy must be an object or JSON text"))?;
    crate::prepare_policy(&text).map_err(|e| js_error(&e))
}

/// The data map of a policy for a compliance review, as Markdown
/// (`"markdown"`, the default) or as one HTML page (`"html"`): the same
/// text as `phimask map`. Throws an Error listing every problem of an
/// invalid policy (`errors`).
#[cfg(feature = "full")]
#[wasm_bindgen(js_name = dataMap)]
pub fn data_map(
    #[wasm_bindgen(unchecked_param_type = "Policy | string")] policy: JsValue,
    #[wasm_bindgen(unchecked_param_type = "\"markdown\" | \"html\"")] format: JsValue,
) -> Result<String, JsValue> {
    let html = match format.as_string().as_deref() {
        None if format.is_undefined() => false,
        Some("markdown") => false,
        Some("html") => true,
        _ => {
            return Err(plain_error(
                "invalid_format",
                "data map format must be \"markdown\" or \"html\"",
            ))
        }
    };
    let text = policy_text(&policy)
        .ok_or_else(|| plain_error("invalid_policy", "policy must be an object or JSON text"))?;
    match crate::validate_policy(&text) {
        (Some(policy), report) => {
            let doc = crate::map::data_map(&policy, &report.warnings);
            Ok(if html { doc.html() } else { doc.markdown() })
        }
        (None, report) => Err(js_error(&Error::InvalidPolicy(report.errors))),
    }
}

/// The masking key argument: a string, or none.
fn key_text(key: &JsValue) -> Result<Option<String>, JsValue> {
    if key.is_undefined() || key.is_null() {
        return Ok(None);
    }
    key.as_string()
        .map(Some)
        .ok_or_else(|| plain_error("invalid_key", "masking key must be a string"))
}

/// The engine's limits: the one source for callers that check sizes
/// before handing a request over (the edge Worker).
#[wasm_bindgen(unchecked_return_type = "Limits")]
pub fn limits() -> JsValue {
    let out: JsValue = Object::new().into();
    let number = |n: usize| JsValue::from_f64(n as f64);
    set(&out, "maxEventBytes", &number(crate::MAX_EVENT_BYTES));
    set(
        &out,
        "maxBatchBytes",
        &number(crate::request::MAX_BATCH_BYTES),
    );
    set(&out, "maxDepth", &number(crate::MAX_DEPTH));
    set(&out, "maxRejectedListed", &number(MAX_REJECTED_LISTED));
    out
}

/// How many rejected events `processRequest` lists (`rejectedCount` has
/// them all).
const MAX_REJECTED_LISTED: usize = 100;

/// The write key a tracking request body carries (`writeKey` at its top
/// level, else a batch's first event's), by the same rules as
/// `processRequest` but without sanitizing or building any event, so a
/// request with a wrong key costs one read of its body. Throws as
/// `processRequest` does for a body that is not JSON text.
#[wasm_bindgen(js_name = requestWriteKey)]
pub fn request_write_key(body: &[u8], call: &str) -> Result<Option<String>, JsValue> {
    let call = parse_call(call)?;
    crate::request_write_key(body, call).map_err(|e| plain_error(e.code(), &e.message()))
}

/// The six call types, in Segment's order.
#[wasm_bindgen(js_name = callTypes, unchecked_return_type = "CallType[]")]
pub fn call_types() -> Array {
    crate::event::CallType::ALL
        .iter()
        .map(|c| JsValue::from_str(c.name()))
        .collect()
}

/// Reads the body of a tracking request: `call` is
/// `track` … `alias` (the path's type) or `batch`. Events keep their text
/// as written. Throws (`invalid_json`, `invalid_body`, `event_too_deep`, `duplicate_key`)
/// when the request as a whole is unusable.
#[cfg(feature = "full")]
#[wasm_bindgen(js_name = readRequest, unchecked_return_type = "TrackingRequest")]
pub fn read_request(body: &str, call: &str) -> Result<JsValue, JsValue> {
    let call = parse_call(call)?;
    let request =
        crate::read_request(body, call).map_err(|e| plain_error(e.code(), &e.message()))?;
    let out: JsValue = Object::new().into();
    if let Some(key) = &request.write_key {
        set(&out, "writeKey", &JsValue::from_str(key));
    }
    let events: Array = request
        .events
        .iter()
        .map(|event| {
            let o: JsValue = Object::new().into();
            match event {
                Ok(text) => set(&o, "text", &JsValue::from_str(text)),
                Err(e) => {
                    let e = Error::Event(e.clone());
                    set(&o, "code", &JsValue::from_str(e.code()));
                    set(&o, "error", &JsValue::from_str(&e.message()));
                }
            }
            o
        })
        .collect();
    set(&out, "events", &events);
    Ok(out)
}

/// Counts of one destination since the last `takeReport()`: events sent,
/// and paths dropped, masked and transformed.
#[cfg(feature = "full")]
type Counts = (String, u32, crate::report::Tally);

/// `{events, dropped, masked, transformed}`.
fn counts(events: u32, tally: crate::report::Tally) -> JsValue {
    let counts: JsValue = Object::new().into();
    set(&counts, "events", &JsValue::from(events));
    set(&counts, "dropped", &JsValue::from(tally.dropped));
    set(&counts, "masked", &JsValue::from(tally.masked));
    set(&counts, "transformed", &JsValue::from(tally.transformed));
    counts
}

/// A call of the tracking API: `track` … `alias` or `batch`.
fn parse_call(call: &str) -> Result<crate::Call, JsValue> {
    crate::Call::parse(call).ok_or_else(|| {
        plain_error(
            "unknown_type",
            &[
                "call must be one of ",
                &crate::event::CallType::list(),
                ", batch",
            ]
            .concat(),
        )
    })
}

/// A compiled policy with its masking key.
#[wasm_bindgen]
pub struct Sanitizer {
    inner: crate::Sanitizer,
    #[cfg(feature = "full")]
    report: RefCell<Vec<Counts>>,
}

/// An event object as JSON text (`JSON.stringify`).
#[cfg(feature = "full")]
fn event_text(event: &JsValue) -> Result<String, JsValue> {
    JSON::stringify(event)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| {
            plain_error(
                "event_not_object",
                "event must be a JSON-serializable object",
            )
        })
}

#[cfg(feature = "full")]
fn strings(list: &[String]) -> Array {
    list.iter().map(|s| JsValue::from_str(s)).collect()
}

#[wasm_bindgen]
impl Sanitizer {
    /// Validates and compiles the policy; throws an Error listing every
    /// problem (`errors`), or saying what is wrong with the key.
    #[cfg(feature = "full")]
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Policy | string")] policy: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | undefined | null")] key: JsValue,
    ) -> Result<Sanitizer, JsValue> {
        let text = policy_text(&policy).ok_or_else(|| {
            plain_error("invalid_policy", "policy must be an object or JSON text")
        })?;
        let key = key_text(&key)?;
        Self::wrap(crate::Sanitizer::new(
            &text,
            key.as_deref().map(str::as_bytes),
        ))
    }

    /// Compiles a policy made by `preparePolicy` (of this same build);
    /// throws `invalid_policy` for anything else, or as the constructor
    /// for the key.
    #[wasm_bindgen(js_name = fromPrepared)]
    pub fn from_prepared(
        prepared: &[u8],
        #[wasm_bindgen(unchecked_param_type = "string | undefined | null")] key: JsValue,
    ) -> Result<Sanitizer, JsValue> {
        let key = key_text(&key)?;
        Self::wrap(crate::Sanitizer::from_prepared(
            prepared,
            key.as_deref().map(str::as_bytes),
        ))
    }

    fn wrap(made: Result<crate::Sanitizer, Error>) -> Result<Sanitizer, JsValue> {
        made.map(|inner| Sanitizer {
            inner,
            #[cfg(feature = "full")]
            report: RefCell::new(Vec::new()),
        })
        .map_err(|e| js_error(&e))
    }

    /// Checks a destination's credential (its `AUTH_<NAME>` secret) for its
    /// format and places it: returns the URL and Authorization header its
    /// requests carry, and the member (`credentialMember`) the sender
    /// inserts after a body's opening `{` (the `api_key` of Amplitude and
    /// PostHog: `processRequest`'s bodies carry none, as they may be
    /// queued). Throws `invalid_credential` saying what the secret must
    /// be, never quoting it.
    #[wasm_bindgen(unchecked_return_type = "Target")]
    pub fn connect(
        &mut self,
        destination: &str,
        #[wasm_bindgen(unchecked_param_type = "string | undefined | null")] secret: JsValue,
    ) -> Result<JsValue, JsValue> {
        let secret = secret.as_string();
        let target = self
            .inner
            .connect(destination, secret.as_deref())
            .map_err(|e| js_error(&e))?;
        let out: JsValue = Object::new().into();
        set(&out, "url", &JsValue::from_str(&target.url));
        if let Some(auth) = &target.authorization {
            set(&out, "authorization", &JsValue::from_str(auth));
        }
        if let Some(member) = &target.body_member {
            set(&out, "credentialMember", &JsValue::from_str(member));
        }
        if let Some(format) = self.inner.format(destination) {
            set(&out, "format", &JsValue::from_str(format.name()));
        }
        // Bodies of a destination under a BAA still hold PHI.
        let restricted = self.inner.restricts(destination) == Some(true);
        set(&out, "restricted", &JsValue::from(restricted));
        Ok(out)
    }

    /// One tracking request in one call: the body's bytes (`call` is the
    /// path's type or `batch`) to every destination's request bodies, the
    /// rejected events and the counts. Throws (`invalid_json`,
    /// `invalid_body`, `event_too_deep`, `duplicate_key`) when the request
    /// as a whole is unusable. With `maxBodyBytes`, no body is larger than
    /// that. An event that alone fits no body of some destination is
    /// refused for all (`event_too_large`). Bodies carry no credential.
    #[wasm_bindgen(js_name = processRequest, unchecked_return_type = "Processed")]
    pub fn process_request(
        &self,
        body: &[u8],
        call: &str,
        #[wasm_bindgen(js_name = maxBodyBytes)] max_body_bytes: Option<u32>,
        #[wasm_bindgen(unchecked_optional_param_type = "Signals")] signals: Option<Object>,
    ) -> Result<JsValue, JsValue> {
        let call = parse_call(call)?;
        let (signals, agent) = self::signals(signals.as_ref())?;
        let max = max_body_bytes.map_or(usize::MAX, |m| m as usize);
        let done = self
            .inner
            .process_request_from(body, call, max, &signals, &agent)
            .map_err(|e| plain_error(e.code(), &e.message()))?;
        let out: JsValue = Object::new().into();
        if let Some(key) = &done.write_key {
            set(&out, "writeKey", &JsValue::from_str(key));
        }
        set(&out, "accepted", &JsValue::from(done.accepted as u32));
        // The first few only: a batch of 150,000 empty events must not
        // become 150,000 objects here, nor an answer 44 times its request.
        let rejected: Array = done
            .rejected
            .iter()
            .take(MAX_REJECTED_LISTED)
            .map(|(index, e)| {
                let o: JsValue = Object::new().into();
                set(&o, "index", &JsValue::from(*index as u32));
                set(&o, "code", &JsValue::from_str(e.code()));
                set(&o, "error", &JsValue::from_str(&e.message()));
                o
            })
            .collect();
        set(&out, "rejected", &rejected);
        set(
            &out,
            "rejectedCount",
            &JsValue::from(done.rejected.len() as u32),
        );
        let (bodies, events, report): (JsValue, JsValue, JsValue) = (
            Object::new().into(),
            Object::new().into(),
            Object::new().into(),
        );
        for d in &done.deliveries {
            let texts: Array = d.bodies.iter().map(|b| JsValue::from_str(b)).collect();
            define(&bodies, &d.destination, &texts);
            // Each list crosses as one typed array made a plain array in
            // JavaScript: a few calls per body rather than one per event.
            let mut numbers: Vec<u32> = Vec::new();
            let indexes: Array = d
                .events
                .iter()
                .map(|list| -> JsValue {
                    numbers.clear();
                    numbers.extend(list.iter().map(|&i| i as u32));
                    Array::from(&js_sys::Uint32Array::from(numbers.as_slice())).into()
                })
                .collect();
            define(&events, &d.destination, &indexes);
            let counts = counts(d.sent, d.tally);
            set(&counts, "unmapped", &JsValue::from(d.unmapped));
            set(&counts, "consent", &JsValue::from(d.consent));
            define(&report, &d.destination, &counts);
        }
        set(&out, "bodies", &bodies);
        set(&out, "events", &events);
        set(&out, "report", &report);
        set(&out, "bots", &JsValue::from(done.bots as u32));
        let ledger: JsValue = Object::new().into();
        for d in &done.deliveries {
            define(&ledger, &d.destination, &ledger_of(d));
        }
        set(&out, "ledger", &ledger);
        let inventory: Array = done
            .inventory
            .iter()
            .map(|(path, n)| -> JsValue {
                Array::of2(&JsValue::from_str(path), &JsValue::from(*n)).into()
            })
            .collect();
        set(&out, "inventory", &inventory);
        Ok(out)
    }

    /// Names of the server-side destinations the edge forwards to.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn destinations(&self) -> Array {
        self.inner.destinations().map(JsValue::from_str).collect()
    }

    /// The policy's BAA register: every destination under a BAA (client-
    /// side ones too), in policy order, with the day it was signed and
    /// its contract reference, or null for both with `"baa": true`.
    #[wasm_bindgen(js_name = baaRegister, unchecked_return_type = "BaaEntry[]")]
    pub fn baa_register(&self) -> Array {
        let text = |v: &Option<String>| v.as_deref().map_or(JsValue::NULL, JsValue::from_str);
        self.inner
            .baa_register()
            .iter()
            .map(|e| {
                let entry: JsValue = Object::new().into();
                set(&entry, "destination", &JsValue::from_str(&e.destination));
                set(&entry, "signed", &text(&e.signed));
                set(&entry, "ref", &text(&e.reference));
                entry
            })
            .collect::<Array>()
    }

    /// The format a destination's endpoint speaks (`segment` …), or
    /// undefined. (The Worker's build has it from `connect`.)
    #[cfg(feature = "full")]
    pub fn format(&self, destination: &str) -> Option<String> {
        self.inner.format(destination).map(|f| f.name().to_owned())
    }

    /// The endpoint URL of a destination, or undefined.
    #[cfg(feature = "full")]
    pub fn endpoint(&self, destination: &str) -> Option<String> {
        self.inner.endpoint(destination).map(str::to_owned)
    }

    /// Sanitizes an event object for `destination`: the object to send,
    /// or null when nothing may be sent. Throws on a bad event.
    #[cfg(feature = "full")]
    #[wasm_bindgen(unchecked_return_type = "SegmentEvent | null")]
    pub fn sanitize(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SegmentEvent")] event: JsValue,
        destination: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "Signals")] signals: Option<Object>,
    ) -> Result<JsValue, JsValue> {
        let (signals, agent) = self::signals(signals.as_ref())?;
        // JSON.stringify then JSON.parse is faster than converting the
        // object field by field across the boundary.
        let text = event_text(&event)?;
        match self
            .inner
            .sanitize_json_from(&text, destination, &signals, &agent)
        {
            Ok((Some(out), _)) => JSON::parse(&out),
            Ok((None, _)) => Ok(JsValue::NULL),
            Err(e) => Err(js_error(&e)),
        }
    }

    /// Sanitizes an event given as JSON text: the JSON text to send, or
    /// null when nothing may be sent. Throws on a bad event.
    #[cfg(feature = "full")]
    #[wasm_bindgen(js_name = sanitizeJson, unchecked_return_type = "string | null")]
    pub fn sanitize_json(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] event: JsValue,
        destination: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "Signals")] signals: Option<Object>,
    ) -> Result<JsValue, JsValue> {
        let (signals, agent) = self::signals(signals.as_ref())?;
        let text = event
            .as_string()
            .ok_or_else(|| plain_error("invalid_json", "event must be JSON text (a string)"))?;
        match self
            .inner
            .sanitize_json_from(&text, destination, &signals, &agent)
        {
            Ok((Some(out), tally)) => {
                let mut report = self.report.borrow_mut();
                match report.iter_mut().find(|(d, _, _)| d == destination) {
                    Some((_, events, sum)) => {
                        *events += 1;
                        sum.add(tally);
                    }
                    None => report.push((destination.to_owned(), 1, tally)),
                }
                Ok(JsValue::from_str(&out))
            }
            Ok((None, _)) => Ok(JsValue::NULL),
            Err(e) => Err(js_error(&e)),
        }
    }

    /// Counts since the last call, by destination: events `sanitizeJson`
    /// returned for it, and paths dropped, masked and transformed in them.
    #[cfg(feature = "full")]
    #[wasm_bindgen(js_name = takeReport, unchecked_return_type = "Report")]
    pub fn take_report(&self) -> JsValue {
        let out: JsValue = Object::new().into();
        for (destination, events, tally) in self.report.borrow_mut().drain(..) {
            define(&out, &destination, &counts(events, tally));
        }
        out
    }

    /// For each destination: whether the event is sent, why, and the paths
    /// dropped, masked and transformed (never values). Throws on a bad
    /// event.
    #[cfg(feature = "full")]
    #[wasm_bindgen(unchecked_return_type = "Record<string, Explanation>")]
    pub fn explain(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SegmentEvent | string")] event: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Signals")] signals: Option<Object>,
    ) -> Result<JsValue, JsValue> {
        let (signals, agent) = self::signals(signals.as_ref())?;
        let text = match event.as_string() {
            Some(text) => text,
            None => event_text(&event)?,
        };
        let all = self
            .inner
            .explain_from(&text, &signals, &agent)
            .map_err(|e| js_error(&e))?;
        let out: JsValue = Object::new().into();
        for e in all {
            let o: JsValue = Object::new().into();
            set(&o, "sent", &JsValue::from_bool(e.reason.sent()));
            set(&o, "reason", &JsValue::from_str(e.reason.text()));
            set(&o, "code", &JsValue::from_str(e.reason.code()));
            if !e.consent.is_empty() {
                let list: Array = e
                    .consent
                    .iter()
                    .map(|v| {
                        let c: JsValue = Object::new().into();
                        set(&c, "purpose", &JsValue::from_str(&v.purpose));
                        set(&c, "granted", &JsValue::from_bool(v.granted));
                        set(&c, "by", &JsValue::from_str(v.by.name()));
                        if let Some(id) = &v.id {
                            set(&c, "id", &JsValue::from_str(id));
                        }
                        if let Some(region) = &v.region {
                            set(&c, "region", &JsValue::from_str(region));
                        }
                        c
                    })
                    .collect();
                set(&o, "consent", &list);
            }
            if let Some(why) = e.bot {
                let b: JsValue = Object::new().into();
                set(&b, "by", &JsValue::from_str(why.by()));
                if let Some(token) = why.token() {
                    set(&b, "token", &JsValue::from_str(token));
                }
                if let Some(score) = why.score() {
                    set(&b, "score", &JsValue::from(score));
                }
                set(&o, "bot", &b);
            }
            set(&o, "dropped", &strings(&e.paths.dropped));
            set(&o, "masked", &strings(&e.paths.masked));
            set(&o, "transformed", &strings(&e.paths.transformed));
            define(&out, &e.destination, &o);
        }
        Ok(out)
    }
}
