//! Property tests for the invariants the README promises, over random events and
//! random policies:
//! - the output equals an independent reference model of the rules;
//! - no value under a path the destination's lists do not name comes out;
//! - masked values are HMAC hex and never contain the clear value;
//! - the same input gives the same output, byte for byte;
//! - no input, however malformed, panics or leaks.

mod common;

use phimask::{prepare_policy, Sanitizer};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEY: &str = "property-test-key-0123456789abcdefghij";
// "All" and "d" (the destination's name) exercise integrations routing;
// "x y" and "Jane Doe HIV positive" are keys that are not field names
// (PHI no detector sees), masked under `mask`.
const KEYS: [&str; 9] = [
    "a",
    "b",
    "email",
    "x y",
    "$u",
    "traits",
    "All",
    "d",
    "Jane Doe HIV positive",
];
const TYPES: [&str; 6] = ["track", "identify", "group", "page", "screen", "alias"];
const LISTS: [&str; 5] = [
    "event_properties",
    "user_properties",
    "group_properties",
    "context",
    "integrations",
];

/// A step of a concrete or rule path: a key, or into array elements.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Elem,
}

type Rules = Vec<(Vec<Step>, bool)>; // (steps, masks)

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(String::from)
}

/// Leaves; every string holds '@' and 'S', which hex digits never do, so a
/// string in the output shows exactly where a clear value went.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-999i64..999).prop_map(|n| json!(n)),
        // Markers end in "@" so that none is a substring of another.
        (0u32..1000).prop_map(|n| json!(format!("S@{n}@"))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn rule_path() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((key(), 0usize..2), 1..4).prop_map(|segments| {
        let mut steps = Vec::new();
        for (k, elems) in segments {
            steps.push(Step::Key(k));
            steps.extend(std::iter::repeat_n(Step::Elem, elems));
        }
        steps
    })
}

fn rules() -> impl Strategy<Value = Rules> {
    prop::collection::vec((rule_path(), any::<bool>()), 0..5)
}

fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Elem => out.push_str("[]"),
        }
    }
    out
}

fn list_json(rules: &Rules) -> Value {
    let mut map = Map::new();
    for (steps, masks) in rules {
        map.insert(
            path_text(steps),
            json!(if *masks { "mask" } else { "allow" }),
        );
    }
    Value::Object(map)
}

/// Policy rules may not name context.traits; keep them off the context list.
fn legal(list: usize, rules: Rules) -> Rules {
    rules
        .into_iter()
        .filter(|(s, _)| list != 3 || s[0] != Step::Key("traits".into()))
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    env: [Rules; 5],
    dest: [Rules; 5],
    ids: [u8; 4],
    /// No `context` list anywhere: the default context's shapes govern.
    default_context: bool,
    event: Value,
}

/// PHI no detector recognises: it must never reach the destination from a
/// default context leaf, a messageId or an integrations key.
const UNDETECTABLE: [&str; 4] = [
    "Jane Doe",
    "HIV positive",
    "jane-doe",
    "Jane.Doe-HIV-positive",
];

/// A string for a default context leaf: what SDKs send, near misses, and
/// undetectable PHI.
fn context_string() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "analytics.js",
        "@segment/analytics-node",
        "RudderLabs JavaScript SDK",
        "analytics-node ",
        "3.1.0",
        "npm:next-1.84.3",
        "1.0.0-beta.1",
        "1.2.3.4.5",
        "en-US",
        "zh-Hant-TW",
        "es-419",
        "en-us",
        "UTC",
        "Etc/GMT-14",
        "America/Argentina/Buenos_Aires",
        "Etc/Jane_Doe",
        "Jane Doe",
        "HIV positive",
        "jane-doe",
    ])
    .prop_map(|s| json!(s))
}

/// A `context` for the default rules: its four leaves (or not), each a
/// shaped string, hostile text or any value, and other members.
fn default_context() -> impl Strategy<Value = Value> {
    let leaf = || prop_oneof![3 => context_string(), 1 => value()];
    (
        prop::option::of(leaf()),
        prop::option::of(leaf()),
        prop::option::of(prop_oneof![4 => Just(()).prop_map(|_| json!({})), 1 => value()]),
        prop::option::of(leaf()),
        prop::option::of(leaf()),
        prop::option::of(value()),
    )
        .prop_map(|(name, version, library, locale, timezone, other)| {
            let mut ctx = Map::new();
            let mut lib = match library {
                Some(Value::Object(m)) => m,
                Some(other) => {
                    ctx.insert("library".into(), other);
                    Map::new()
                }
                None => Map::new(),
            };
            if let Some(v) = name {
                lib.insert("name".into(), v);
            }
            if let Some(v) = version {
                lib.insert("version".into(), v);
            }
            if !ctx.contains_key("library") {
                ctx.insert("library".into(), Value::Object(lib));
            }
            for (k, v) in [("locale", locale), ("timezone", timezone), ("ip", other)] {
                if let Some(v) = v {
                    ctx.insert(k.into(), v);
                }
            }
            Value::Object(ctx)
        })
}

fn case() -> impl Strategy<Value = Case> {
    let lists = || [rules(), rules(), rules(), rules(), rules()];
    (
        lists(),
        lists(),
        prop::array::uniform4(0u8..3),
        prop::sample::select(TYPES.to_vec()),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "properties",
                    "traits",
                    "context",
                    "userId",
                    "anonymousId",
                    "groupId",
                    "previousId",
                    "event",
                    "name",
                    "category",
                    "messageId",
                    "timestamp",
                    "channel",
                    "version",
                    "integrations",
                    "ssn",
                ]),
                value(),
            ),
            0..8,
        ),
        prop::option::of(value()),
        any::<prop::sample::Index>(),
        prop::bool::weighted(0.85),
        prop::option::of(default_context()),
        prop::option::of(prop::sample::select(UNDETECTABLE.to_vec())),
    )
        .prop_map(
            |(env, dest, ids, ty, members, ctx_traits, type_at, complete, default_ctx, phi)| {
                // `type` anywhere among the members: the lists of properties
                // and traits depend on it even when it comes after them.
                let mut event = Map::new();
                let type_at = type_at.index(members.len() + 1);
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i == type_at {
                        event.insert("type".into(), json!(ty));
                    }
                    event.insert(k.into(), v);
                }
                if !event.contains_key("type") {
                    event.insert("type".into(), json!(ty));
                }
                // Undetectable PHI as the messageId and as an integrations key.
                if let Some(phi) = phi {
                    event.insert("messageId".into(), json!(phi));
                    match event.get_mut("integrations") {
                        Some(Value::Object(switches)) => {
                            switches.insert(phi.into(), json!(true));
                        }
                        None => {
                            event.insert("integrations".into(), json!({ phi: true }));
                        }
                        Some(_) => {}
                    }
                }
                let default_context = default_ctx.is_some();
                if let Some(ctx) = default_ctx {
                    event.insert("context".into(), ctx);
                }
                if let (Some(t), Some(Value::Object(ctx))) = (ctx_traits, event.get_mut("context"))
                {
                    ctx.insert("traits".into(), t);
                }
                // Most events carry what their call requires (the rest test
                // the refusals); a member already there of the wrong type stays.
                if complete {
                    let required: &[&str] = match ty {
                        "track" => &["anonymousId", "event"],
                        "group" => &["anonymousId", "groupId"],
                        "alias" => &["anonymousId", "previousId"],
                        _ => &["anonymousId"],
                    };
                    for (i, key) in required.iter().enumerate() {
                        event
                            .entry(*key)
                            .or_insert_with(|| json!(format!("S@{}@", 1000 + i)));
                    }
                }
                let legalize = |lists: [Rules; 5]| {
                    let mut i = 0;
                    lists.map(|r| {
                        i += 1;
                        legal(i - 1, r)
                    })
                };
                let (env, mut dest) = (legalize(env), legalize(dest));
                if default_context {
                    dest[3].clear();
                }
                Case {
                    env,
                    dest,
                    ids,
                    default_context,
                    event: Value::Object(event),
                }
            },
        )
}

const ID_KEYS: [&str; 4] = ["userId", "anonymousId", "groupId", "previousId"];
const ID_ACTIONS: [&str; 3] = ["mask", "allow", "drop"];

fn policy(c: &Case) -> String {
    let lists = |r: &[Rules; 5]| {
        let mut m = Map::new();
        for (i, name) in LISTS.iter().enumerate() {
            if !(c.default_context && *name == "context") {
                m.insert((*name).into(), list_json(&r[i]));
            }
        }
        Value::Object(m)
    };
    let ids: Map<String, Value> = ID_KEYS
        .iter()
        .zip(c.ids)
        .map(|(k, a)| ((*k).to_string(), json!(ID_ACTIONS[a as usize])))
        .collect();
    json!({
        "version": 1, "environment": "test", "hipaa": true,
        "identifiers": ids,
        "allowlists": lists(&c.env),
        "destinations": {
            "d": { "connection": "server-side", "endpoint": "https://d.example/",
                   "allowlists": lists(&c.dest) }
        }
    })
    .to_string()
}

/// The environment's rules with the destination's added (same path: the
/// destination's action).
fn merged(c: &Case, list: usize) -> Rules {
    let mut out = c.env[list].clone();
    // JSON objects keep the last of duplicate paths; so does the policy.
    let dedup = |rules: &Rules| {
        let mut seen: Rules = Vec::new();
        for (s, m) in rules {
            match seen.iter_mut().find(|(t, _)| t == s) {
                Some(slot) => slot.1 = *m,
                None => seen.push((s.clone(), *m)),
            }
        }
        seen
    };
    out = dedup(&out);
    for (s, m) in dedup(&c.dest[list]) {
        match out.iter_mut().find(|(t, _)| *t == s) {
            Some(slot) => slot.1 = m,
            None => out.push((s, m)),
        }
    }
    out
}

// ---- the reference model, written from the README's rules over serde_json values ----

/// The masked value of `clear` (HMAC written out in `common`).
fn hmac(clear: &str) -> Value {
    json!(common::hmac_hex(KEY.as_bytes(), clear.as_bytes()))
}

/// DESIGN's "Keys": a key is a field name when it has 1 to 64 characters,
/// each an ASCII letter or digit or one of `_ - . $` (and no detector
/// match: no generated key has one).
fn field_name(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.$".contains(&b))
}

/// A key of the event under `mask`: kept when a field name, else masked.
fn masked_key(k: &str) -> String {
    if field_name(k) {
        k.to_string()
    } else {
        common::hmac_hex(KEY.as_bytes(), k.as_bytes())
    }
}

fn mask_all(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(b) => hmac(&b.to_string()),
        Value::Number(n) => hmac(&n.to_string()),
        Value::String(s) => hmac(s),
        Value::Array(a) => Value::Array(a.iter().map(mask_all).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (masked_key(k), mask_all(x)))
                .collect(),
        ),
    }
}

fn apply(v: &Value, action: Option<bool>) -> Option<Value> {
    match action {
        None => None,
        Some(false) => Some(v.clone()),
        Some(true) => Some(mask_all(v)),
    }
}

/// The rules at and below `prefix`.
fn reference(v: &Value, rules: &Rules, prefix: &[Step], inherited: Option<bool>) -> Option<Value> {
    let here = rules.iter().find(|(s, _)| s == prefix).map(|(_, a)| *a);
    let action = here.or(inherited);
    let below: Vec<&Step> = rules
        .iter()
        .filter(|(s, _)| s.len() > prefix.len() && s[..prefix.len()] == *prefix)
        .map(|(s, _)| &s[prefix.len()])
        .collect();
    let has_keys = below.iter().any(|s| matches!(s, Step::Key(_)));
    let has_elems = below.contains(&&Step::Elem);
    match v {
        Value::Object(o) if has_keys => {
            let mut out = Map::new();
            for (k, x) in o {
                let mut p = prefix.to_vec();
                p.push(Step::Key(k.clone()));
                // A key no rule names, under an inherited mask, is masked
                // as any key under mask is.
                let named = rules.iter().any(|(s, _)| s.starts_with(&p));
                let shown = match action {
                    Some(true) if !named => masked_key(k),
                    _ => k.clone(),
                };
                if let Some(y) = reference(x, rules, &p, action) {
                    out.insert(shown, y);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) if has_elems => {
            let mut p = prefix.to_vec();
            p.push(Step::Elem);
            Some(Value::Array(
                a.iter()
                    .map(|x| reference(x, rules, &p, action).unwrap_or(Value::Null))
                    .collect(),
            ))
        }
        _ => apply(v, action),
    }
}

/// Whether an id is usable: a non-empty string or a number.
fn usable_id(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if !s.is_empty()) || matches!(v, Some(Value::Number(_)))
}

/// What the engine must answer: an error code, no output (not routed to
/// the destination), or the sanitized event.
fn reference_event(c: &Case) -> Result<Option<Value>, &'static str> {
    let Value::Object(ev) = &c.event else {
        unreachable!()
    };
    let ty = ev["type"].as_str().unwrap();
    // Refusals: integrations of no known routing, then incomplete calls.
    if !matches!(
        ev.get("integrations"),
        None | Some(Value::Object(_)) | Some(Value::Null)
    ) {
        return Err("invalid_integrations");
    }
    let named = matches!(ev.get("event"), Some(Value::String(s)) if !s.is_empty());
    if !usable_id(ev.get("userId")) && !usable_id(ev.get("anonymousId"))
        || ty == "track" && !named
        || ty == "group" && !usable_id(ev.get("groupId"))
        || ty == "alias" && !usable_id(ev.get("previousId"))
    {
        return Err("incomplete_event");
    }
    // Routing: the destination "d"'s own members, else "All".
    if let Some(Value::Object(switches)) = ev.get("integrations") {
        let on = |v: &Value| matches!(v, Value::Bool(true) | Value::Object(_));
        let own: Vec<bool> = switches
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("d"))
            .map(|(_, v)| on(v))
            .collect();
        let all: Vec<bool> = switches
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("all"))
            .map(|(_, v)| on(v))
            .collect();
        let routed = if own.is_empty() {
            all.iter().all(|x| *x)
        } else {
            own.iter().all(|x| *x)
        };
        if !routed {
            return Ok(None);
        }
    }
    // The policy's only destination is "d": its integration name.
    let integration_name = |s: &str| s.eq_ignore_ascii_case("all") || s.eq_ignore_ascii_case("d");
    let mut out = Map::new();
    for (k, v) in ev {
        let result = match (k.as_str(), v) {
            ("type", _) => Some(v.clone()),
            ("event", Value::String(_)) if ty == "track" => Some(v.clone()),
            ("name" | "category", Value::String(_)) if matches!(ty, "page" | "screen") => {
                Some(v.clone())
            }
            // Always masked, whatever it holds.
            ("messageId", Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                Some(mask_all(v))
            }
            ("version", Value::Number(n)) => n.as_u64().filter(|n| *n < 100).map(|_| v.clone()),
            ("integrations", Value::Object(members)) => {
                let rules = merged(c, 4);
                let mut kept = Map::new();
                for (key, x) in members {
                    let r = match x {
                        Value::Bool(_) if integration_name(key) => Some(x.clone()),
                        Value::Bool(_) => None,
                        _ => reference(x, &rules, &[Step::Key(key.clone())], None),
                    };
                    if let Some(r) = r {
                        kept.insert(key.clone(), r);
                    }
                }
                Some(Value::Object(kept))
            }
            ("userId" | "anonymousId" | "groupId" | "previousId", _) => {
                let i = ID_KEYS.iter().position(|x| x == k).unwrap();
                let scalar = matches!(v, Value::String(_) | Value::Number(_) | Value::Null);
                let action = match c.ids[i] {
                    0 => Some(true),
                    1 => Some(false),
                    _ => None,
                };
                if scalar {
                    apply(v, action)
                } else {
                    None
                }
            }
            ("properties", _) if matches!(ty, "track" | "page" | "screen") => {
                reference(v, &merged(c, 0), &[], None)
            }
            ("traits", _) if ty == "identify" => reference(v, &merged(c, 1), &[], None),
            ("traits", _) if ty == "group" => reference(v, &merged(c, 2), &[], None),
            ("context", _) if c.default_context => reference_default_context(v, &merged(c, 1)),
            ("context", _) => {
                let mut rules = merged(c, 3);
                for (s, a) in merged(c, 1) {
                    let mut p = vec![Step::Key("traits".into())];
                    p.extend(s);
                    rules.push((p, a));
                }
                // context.traits is always governed (by the user list), so
                // a context object is always written: a rule on a key no
                // event has stands for that.
                rules.push((vec![Step::Key("\0".into())], false));
                reference(v, &rules, &[], None)
            }
            _ => None,
        };
        if let Some(r) = result {
            out.insert(k.clone(), r);
        }
    }
    Ok(Some(Value::Object(out)))
}

/// The default context: `traits` by the user list; `library.name`,
/// `library.version`, `locale` and `timezone` only as strings of their
/// shapes (written here from DESIGN.md's rules, apart from the engine's).
fn reference_default_context(v: &Value, user: &Rules) -> Option<Value> {
    let Value::Object(ctx) = v else { return None };
    let shaped = |x: &Value, fits: fn(&str) -> bool| match x {
        Value::String(s) if fits(s) => Some(x.clone()),
        _ => None,
    };
    let mut out = Map::new();
    for (k, x) in ctx {
        let kept = match k.as_str() {
            "traits" => reference(x, user, &[], None),
            "library" => match x {
                Value::Object(lib) => {
                    let mut kept = Map::new();
                    for (lk, lx) in lib {
                        let r = match lk.as_str() {
                            "name" => shaped(lx, model_sdk_name),
                            "version" => shaped(lx, model_sdk_version),
                            _ => None,
                        };
                        if let Some(r) = r {
                            kept.insert(lk.clone(), r);
                        }
                    }
                    Some(Value::Object(kept))
                }
                _ => None,
            },
            "locale" => shaped(x, model_locale),
            "timezone" => shaped(x, model_timezone),
            _ => None,
        };
        if let Some(kept) = kept {
            out.insert(k.clone(), kept);
        }
    }
    Some(Value::Object(out))
}

fn model_sdk_name(s: &str) -> bool {
    "analytics.js analytics-next @segment/analytics-next @segment/analytics-node analytics-node \
     analytics-node-next analytics-python analytics-ruby analytics-go analytics-java \
     analytics-kotlin analytics-swift analytics-ios analytics-android analytics-react-native \
     analytics-flutter analytics-php analytics-csharp rudder-sdk-python"
        .split_whitespace()
        .any(|n| n == s)
        || ["JavaScript", "Android", "iOS"]
            .iter()
            .any(|p| s == format!("RudderLabs {p} SDK"))
}

/// Consumes up to `max` (at least `min`) leading chars that satisfy `f`.
fn run(s: &str, min: usize, max: usize, f: impl Fn(char) -> bool) -> Option<&str> {
    let n = s.chars().take(max).take_while(|c| f(*c)).count();
    (n >= min).then(|| &s[n..])
}

fn model_sdk_version(s: &str) -> bool {
    let mut rest = s;
    for p in ["npm:", "web:"] {
        if let Some(r) = rest.strip_prefix(p) {
            rest = r;
            break;
        }
    }
    // An optional `[a-z]{1,8}-`: only when a letter comes first.
    if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
        match run(rest, 1, 8, |c| c.is_ascii_lowercase()).and_then(|r| r.strip_prefix('-')) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    let digits = |c: char| c.is_ascii_digit();
    let Some(mut r) = run(rest, 1, 4, digits) else {
        return false;
    };
    for _ in 0..3 {
        match r.strip_prefix('.').and_then(|x| run(x, 1, 4, digits)) {
            Some(x) => r = x,
            None => break,
        }
    }
    if r.is_empty() {
        return true;
    }
    let Some(suffix) = r.strip_prefix(['-', '+']) else {
        return false;
    };
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let Some(mut r) = run(suffix, 1, 12, alnum) else {
        return false;
    };
    for _ in 0..2 {
        match r.strip_prefix('.').and_then(|x| run(x, 1, 12, alnum)) {
            Some(x) => r = x,
            None => break,
        }
    }
    r.is_empty()
}

fn model_locale(s: &str) -> bool {
    let Some(mut r) = run(s, 2, 3, |c| c.is_ascii_lowercase()) else {
        return false;
    };
    for _ in 0..2 {
        let Some(x) = r.strip_prefix(['-', '_']) else {
            break;
        };
        let script = x.len() >= 4
            && x.as_bytes()[0].is_ascii_uppercase()
            && x[1..4].bytes().all(|b| b.is_ascii_lowercase());
        let region = x.len() >= 2 && x[..2].bytes().all(|b| b.is_ascii_uppercase());
        let area = x.len() >= 3 && x[..3].bytes().all(|b| b.is_ascii_digit());
        r = if script {
            &x[4..]
        } else if region {
            &x[2..]
        } else if area {
            &x[3..]
        } else {
            return false;
        };
    }
    r.is_empty()
}

fn model_timezone(s: &str) -> bool {
    if matches!(s, "UTC" | "GMT") {
        return true;
    }
    if let Some(etc) = s.strip_prefix("Etc/") {
        let offset = etc
            .strip_prefix("GMT+")
            .or_else(|| etc.strip_prefix("GMT-"))
            .is_some_and(|n| n.parse::<u8>().is_ok_and(|h| h <= 14 && n == h.to_string()));
        return offset
            || [
                "UTC",
                "UCT",
                "GMT",
                "GMT0",
                "Greenwich",
                "Universal",
                "Zulu",
            ]
            .contains(&etc);
    }
    let parts: Vec<&str> = s.split('/').collect();
    let areas = [
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    ];
    (2..=3).contains(&parts.len())
        && areas.contains(&parts[0])
        && parts[1..].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
        })
}

#[test]
fn the_models_shapes_take_what_sdks_send() {
    assert!(
        model_sdk_name("@segment/analytics-node") && model_sdk_name("RudderLabs JavaScript SDK")
    );
    assert!(!model_sdk_name("Jane Doe") && !model_sdk_name("RudderLabs Jane SDK"));
    for v in ["3.1.0", "npm:next-1.84.3", "next-1.84.3", "1.0.0-beta.1"] {
        assert!(model_sdk_version(v), "{v}");
    }
    for v in ["Jane Doe", "483920", "1.0.0-", "npm:web:1.0", "1.2.3.4.5"] {
        assert!(!model_sdk_version(v), "{v}");
    }
    assert!(model_locale("zh-Hant-TW") && model_locale("es-419") && !model_locale("Jane Doe"));
    assert!(
        model_timezone("Etc/GMT+5")
            && !model_timezone("Etc/GMT+05")
            && !model_timezone("Etc/Jane_Doe")
    );
}

// ---- invariant checks that do not rely on the model ----

/// Whether a rule covers the concrete path, and whether the deepest such
/// rule masks.
fn covering(rules: &Rules, path: &[Step]) -> Option<bool> {
    rules
        .iter()
        .filter(|(s, _)| s.len() <= path.len() && s[..] == path[..s.len()])
        .max_by_key(|(s, _)| s.len())
        .map(|(_, m)| *m)
}

fn on_the_way(rules: &Rules, path: &[Step]) -> bool {
    rules
        .iter()
        .any(|(s, _)| s.len() > path.len() && s[..path.len()] == *path)
}

/// Every member and leaf of `out` sits under a rule (or on the way to
/// one); leaves under a mask rule are HMAC hex; collects the clear strings
/// sent under allow rules.
fn check_paths(out: &Value, rules: &Rules, path: &mut Vec<Step>, allowed: &mut Vec<String>) {
    match out {
        Value::Object(o) => {
            for (k, v) in o {
                path.push(Step::Key(k.clone()));
                assert!(
                    covering(rules, path).is_some() || on_the_way(rules, path),
                    "member outside the lists at {path:?}"
                );
                // An allow rule on a container sends it whole, its keys too.
                if covering(rules, path) == Some(false) {
                    allowed.push(k.clone());
                }
                check_paths(v, rules, path, allowed);
                path.pop();
            }
        }
        Value::Array(a) => {
            path.push(Step::Elem);
            for v in a {
                check_paths(v, rules, path, allowed);
            }
            path.pop();
        }
        Value::Null => {}
        leaf => match covering(rules, path) {
            None => panic!("value outside the lists at {path:?}"),
            Some(true) => {
                let s = leaf.as_str().expect("masked values are strings");
                assert!(
                    s.len() == 64
                        && s.bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                    "masked value is not HMAC hex at {path:?}"
                );
            }
            Some(false) => {
                if let Some(s) = leaf.as_str() {
                    allowed.push(s.to_owned());
                }
            }
        },
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The `S@n@` markers in a text.
fn markers(text: &str) -> Vec<String> {
    text.match_indices("S@")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            (n > 0 && rest.as_bytes().get(n) == Some(&b'@')).then(|| text[i..i + n + 3].to_owned())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn sanitize_follows_the_rules(c in case()) {
        let s = Sanitizer::new(&policy(&c), Some(KEY.as_bytes())).unwrap();
        let text = c.event.to_string();
        let result = s.sanitize_json(&text, "d");
        // Deterministic, byte for byte.
        prop_assert_eq!(&s.sanitize_json(&text, "d"), &result);
        // The same policy prepared (the Worker's way) gives the same.
        let prepared = prepare_policy(&policy(&c)).unwrap();
        let p = Sanitizer::from_prepared(&prepared, Some(KEY.as_bytes())).unwrap();
        prop_assert_eq!(&p.sanitize_json(&text, "d"), &result);
        let expected = match reference_event(&c) {
            Err(code) => {
                prop_assert_eq!(result.map_err(|e| e.code()), Err(code));
                return Ok(());
            }
            Ok(None) => {
                prop_assert_eq!(result, Ok(None));
                return Ok(());
            }
            Ok(Some(expected)) => expected,
        };
        let out = result.unwrap().unwrap();
        let actual: Value = serde_json::from_str(&out).unwrap();

        // Explain's paths never show a key that is not a field name (keys
        // shaped like field names, "jane-doe" too, are shown as written).
        for e in s.explain(&text).unwrap() {
            for p in [e.paths.dropped, e.paths.masked, e.paths.transformed].concat() {
                prop_assert!(!p.contains("Jane Doe") && !p.contains("x y"), "{} in explain", p);
            }
        }

        // Equal to the reference model, key order included.
        prop_assert_eq!(actual.to_string(), expected.to_string());

        // Nothing outside the lists; masked leaves are HMAC hex.
        let mut allowed = Vec::new();
        let Value::Object(top) = &actual else { unreachable!() };
        for (k, v) in top {
            let (rules, mut path) = match (k.as_str(), v) {
                ("properties", _) => (merged(&c, 0), vec![]),
                ("traits", _) if c.event["type"] == "identify" => (merged(&c, 1), vec![]),
                ("traits", _) => (merged(&c, 2), vec![]),
                ("context", Value::Object(ctx)) if c.default_context => {
                    for (key, x) in ctx {
                        if key == "traits" {
                            let mut path = vec![];
                            check_paths(x, &merged(&c, 1), &mut path, &mut allowed);
                        } else {
                            strings(x, &mut allowed);
                        }
                    }
                    continue;
                }
                ("context", _) => {
                    let mut rules = merged(&c, 3);
                    rules.extend(merged(&c, 1).into_iter().map(|(s, a)| {
                        let mut p = vec![Step::Key("traits".into())];
                        p.extend(s);
                        (p, a)
                    }));
                    (rules, vec![])
                }
                ("messageId", Value::String(id)) => {
                    prop_assert!(!id.contains('@'), "messageId in clear");
                    continue;
                }
                ("integrations", Value::Object(members)) => {
                    for (key, x) in members {
                        if !x.is_boolean() {
                            check_paths(x, &merged(&c, 4), &mut vec![Step::Key(key.clone())], &mut allowed);
                        }
                    }
                    continue;
                }
                _ => {
                    strings(v, &mut allowed);
                    continue;
                }
            };
            check_paths(v, &rules, &mut path, &mut allowed);
        }
        // Undetectable PHI never reaches the destination through the
        // fields the lists do not govern: only where a rule names it (the
        // policy's choice) or an allow rule sends the container holding it.
        let named = format!("{:?}{:?}", c.env, c.dest);
        let sent_whole = |phi: &str| allowed.iter().any(|a| a.contains(phi));
        for phi in UNDETECTABLE.iter().filter(|phi| !named.contains(*phi) && !sent_whole(phi)) {
            prop_assert!(!out.contains(phi), "{} leaked", phi);
        }
        // A clear string reaches the output only where an allow rule (or a
        // kept structural field) put it.
        let mut clear = Vec::new();
        strings(&c.event, &mut clear);
        for s in clear.iter().filter(|s| s.contains('@')) {
            if out.contains(s.as_str()) {
                prop_assert!(allowed.contains(s), "{} leaked", s);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let s = Sanitizer::new(&policy(&Case {
            env: Default::default(), dest: Default::default(), ids: [0; 4],
            default_context: false, event: Value::Null,
        }), Some(KEY.as_bytes())).unwrap();
        match s.sanitize_json(&text, "d") {
            Ok(Some(out)) => { serde_json::from_str::<Value>(&out).unwrap(); }
            Ok(None) => prop_assert!(false, "restricted destinations always get output or an error"),
            Err(e) => prop_assert!(!e.to_string().contains(&text) || text.len() < 4),
        }
    }

    #[test]
    fn mutated_events_never_panic_or_leak(c in case(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let s = Sanitizer::new(&policy(&c), Some(KEY.as_bytes())).unwrap();
        let mut bytes = c.event.to_string().into_bytes();
        let i = cut.index(bytes.len());
        bytes[i] = byte;
        let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
        let Ok(Some(out)) = s.sanitize_json(&text, "d") else { return Ok(()) };
        serde_json::from_str::<Value>(&out).unwrap();
        // What was sent is what the model sends for the event as it now
        // reads: no marker of the input leaks anywhere else.
        let event: Value = serde_json::from_str(&text).expect("the engine accepts only JSON");
        if !common::without_duplicate_keys(&text) {
            return Ok(());
        }
        let model = reference_event(&Case { event, ..c.clone() });
        let Ok(Some(model)) = model else {
            prop_assert!(false, "the engine sent {} where the model says {:?}", out, model);
            unreachable!()
        };
        for marker in markers(&text) {
            if out.contains(&marker) {
                prop_assert!(model.to_string().contains(&marker), "{} leaked", marker);
            }
        }
    }
}
