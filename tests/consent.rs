//! Consent gating, as a matrix: both modes, region overrides, GPC, and
//! every shape of consent an event can carry (absent, empty, malformed,
//! partial, Segment's and RudderStack's together and disagreeing), for
//! every destination of a policy. Each case is decided twice: by the
//! engine and by `expected` below, written from the rules as the
//! documentation states them; they must agree, for single events and for
//! whole requests. A handful of cases are also pinned by hand.
//!
//! PHI no detector sees ("Jane Doe", "HIV positive") rides in every event:
//! a gated-out destination must receive nothing of it, and consent never
//! changes what a destination that receives the event gets.

mod common;

use phimask::consent::Signals;
use phimask::{Call, Sanitizer};
use serde_json::{json, Value};

const KEY: &[u8] = b"consent-matrix-key-0123456789abcdef";

/// Destinations: ungated, gated on one purpose, on two, a BAA warehouse
/// gated on analytics, and two that routing or `calls` exclude.
fn policy(mode: &str) -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": { "event_properties": { "plan": "allow", "note": "allow" } },
        "events": { "Booked": "allow", "*": "drop" },
        "destinations": {
            "plain": {"connection": "server-side", "endpoint": "https://plain.example/"},
            "stats": {"connection": "server-side", "endpoint": "https://stats.example/", "consent": ["analytics"]},
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/", "consent": ["advertising"]},
            "both": {"connection": "server-side", "endpoint": "https://both.example/", "consent": ["analytics", "advertising"]},
            "vault": {"connection": "server-side", "endpoint": "https://vault.example/", "restrict_phi": false, "baa": true,
                      "consent": ["analytics"]},
            "idents": {"connection": "server-side", "endpoint": "https://idents.example/", "calls": ["identify"],
                       "consent": ["analytics"]},
            "unrouted": {"connection": "server-side", "endpoint": "https://unrouted.example/", "integration": "Unrouted",
                         "consent": ["analytics"]}
        },
        "consent": {
            "mode": mode,
            "categories": { "analytics": ["C0002", "Analytics"], "advertising": ["C0004", "Advertising"] },
            "gpc": ["advertising"],
            "regions": { "US-WA": { "mode": "opt-in" }, "US-CA": { "mode": "opt-out" }, "DE": { "mode": "opt-in" },
                         "US": { "mode": "opt-out" } }
        }
    })
}

const DESTINATIONS: [&str; 7] = [
    "plain", "stats", "ads", "both", "vault", "idents", "unrouted",
];

/// Every shape of `context` consent, by name.
fn shapes() -> Vec<(&'static str, Option<Value>)> {
    let seg = |prefs: Value| json!({ "consent": { "categoryPreferences": prefs } });
    let rud = |allowed: Value, denied: Value| {
        json!({ "consentManagement": { "allowedConsentIds": allowed, "deniedConsentIds": denied,
                                       "provider": "custom", "resolutionStrategy": "and" } })
    };
    let mut both = seg(json!({"C0002": true, "C0004": true}));
    both["consentManagement"] = json!({ "deniedConsentIds": ["C0004"] });
    let mut both_other_way = seg(json!({"C0002": false}));
    both_other_way["consentManagement"] = json!({ "allowedConsentIds": ["C0002", "C0004"] });
    let mut agreeing = seg(json!({"C0002": true}));
    agreeing["consentManagement"] = json!({ "allowedConsentIds": ["C0002"] });
    vec![
        ("no context", None),
        (
            "context without consent",
            Some(json!({ "locale": "en-US" })),
        ),
        ("empty consent", Some(json!({ "consent": {} }))),
        ("empty preferences", Some(seg(json!({})))),
        (
            "empty consentManagement",
            Some(json!({ "consentManagement": {} })),
        ),
        ("empty id lists", Some(rud(json!([]), json!([])))),
        ("consent a string", Some(json!({ "consent": "yes" }))),
        ("consent an array", Some(json!({ "consent": ["C0002"] }))),
        ("consent null", Some(json!({ "consent": null }))),
        ("preferences a string", Some(seg(json!("all")))),
        ("preferences an array", Some(seg(json!(["C0002", "C0004"])))),
        (
            "consentManagement a string",
            Some(json!({ "consentManagement": "C0002" })),
        ),
        ("allowed ids a string", Some(rud(json!("C0002"), json!([])))),
        (
            "denied ids an object",
            Some(rud(json!([]), json!({"C0004": true}))),
        ),
        (
            "allowed ids not strings",
            Some(rud(json!([1, null, {"id": "C0002"}, ["C0002"]]), json!([]))),
        ),
        // A grant beside a garbled denial is not believed: the whole
        // object is absent.
        (
            "allowed beside a denial list that is a string",
            Some(rud(json!(["C0002", "C0004"]), json!("C0004"))),
        ),
        (
            "allowed beside a null denial list",
            Some(rud(json!(["C0002", "C0004"]), json!(null))),
        ),
        (
            "denied beside an allowed list that is an object",
            Some(rud(json!({"C0002": true}), json!(["C0004"]))),
        ),
        (
            "denied ids mixed",
            Some(rud(json!(["C0002"]), json!([7, "C0004"]))),
        ),
        (
            "segment grants analytics",
            Some(seg(json!({"C0002": true}))),
        ),
        (
            "segment grants all",
            Some(seg(json!({"C0001": true, "C0002": true, "C0004": true}))),
        ),
        (
            "segment denies advertising",
            Some(seg(json!({"C0002": true, "C0004": false}))),
        ),
        (
            "segment \"true\" string",
            Some(seg(json!({"C0002": "true", "C0004": true}))),
        ),
        (
            "segment 1 and null",
            Some(seg(json!({"C0002": 1, "C0004": null}))),
        ),
        (
            "segment object value",
            Some(seg(json!({"C0002": {"granted": true}}))),
        ),
        (
            "segment other case",
            Some(seg(json!({"c0002": true, "c0004": true}))),
        ),
        // Ids compare exactly: a value under another case neither grants
        // nor denies.
        (
            "segment grants, other case denies",
            Some(seg(
                json!({"C0002": true, "C0004": true, "c0002": false, "advertising": false}),
            )),
        ),
        (
            "rudderstack allows, other case denied",
            Some(rud(
                json!(["C0002", "Advertising"]),
                json!(["c0002", "ADVERTISING"]),
            )),
        ),
        (
            "segment by name",
            Some(seg(json!({"Analytics": true, "Advertising": true}))),
        ),
        (
            "one id granted, another denied",
            Some(seg(json!({"C0004": true, "Advertising": false}))),
        ),
        (
            "unknown ids only",
            Some(seg(json!({"C0009": true, "Marketing": false}))),
        ),
        (
            "rudderstack allows analytics",
            Some(rud(json!(["C0002"]), json!([]))),
        ),
        (
            "rudderstack allows all",
            Some(rud(json!(["C0002", "C0004"]), json!([]))),
        ),
        (
            "rudderstack denies advertising",
            Some(rud(json!(["C0002"]), json!(["C0004"]))),
        ),
        (
            "rudderstack allows and denies the same id",
            Some(rud(json!(["C0004"]), json!(["C0004"]))),
        ),
        ("both agree", Some(agreeing)),
        ("segment grants, rudderstack denies", Some(both)),
        ("segment denies, rudderstack allows", Some(both_other_way)),
        ("id with HTML", Some(seg(json!({"<b>C0002</b>": true})))),
    ]
}

/// The event: a track the `events` map allows, PHI no detector sees in a
/// field the lists drop and in one they allow.
fn event(context: &Option<Value>, integrations: bool) -> Value {
    let mut e = json!({
        "type": "track", "event": "Booked", "userId": "patient-42",
        "properties": { "plan": "gold", "note": "Jane Doe, HIV positive", "diagnosis": "HIV positive" }
    });
    if let Some(c) = context {
        e["context"] = c.clone();
    }
    if integrations {
        e["integrations"] = json!({ "Unrouted": false });
    }
    e
}

/// The rules, as the documentation states them, on the parsed event.
fn granted(policy: &Value, purpose: &str, event: &Value, signals: &Signals) -> bool {
    let consent = &policy["consent"];
    if signals.gpc
        && consent["gpc"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p == purpose))
    {
        return false;
    }
    let ids: Vec<&str> = consent["categories"][purpose]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let prefs = event["context"]["consent"]["categoryPreferences"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // A list of the wrong type makes RudderStack's whole object absent.
    let management = &event["context"]["consentManagement"];
    let malformed = ["allowedConsentIds", "deniedConsentIds"]
        .iter()
        .any(|k| !management[*k].is_null() && !management[*k].is_array())
        || (management.get("allowedConsentIds") == Some(&Value::Null))
        || (management.get("deniedConsentIds") == Some(&Value::Null));
    let listed = |key: &str| -> Vec<String> {
        if malformed {
            return Vec::new();
        }
        management[key]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (allowed, denied) = (listed("allowedConsentIds"), listed("deniedConsentIds"));
    let denied_here = ids.iter().any(|id| {
        prefs.get(*id).is_some_and(|v| *v != Value::Bool(true)) || denied.iter().any(|d| d == id)
    });
    if denied_here {
        return false;
    }
    let granted_here = ids
        .iter()
        .any(|id| prefs.get(*id) == Some(&Value::Bool(true)) || allowed.iter().any(|a| a == id));
    if granted_here {
        return true;
    }
    let regions = &consent["regions"];
    let region_mode = signals.region.as_deref().and_then(|r| {
        let country = r.split('-').next().unwrap_or(r);
        regions[r]["mode"]
            .as_str()
            .or_else(|| regions[country]["mode"].as_str())
    });
    region_mode.or_else(|| consent["mode"].as_str()) == Some("opt-out")
}

/// Whether `destination` receives `event`: routing, calls, then every
/// purpose its `consent` lists granted.
fn expected(policy: &Value, destination: &str, event: &Value, signals: &Signals) -> bool {
    let d = &policy["destinations"][destination];
    if destination == "unrouted" && event["integrations"]["Unrouted"] == json!(false) {
        return false;
    }
    if let Some(calls) = d["calls"].as_array() {
        if !calls.iter().any(|c| *c == event["type"]) {
            return false;
        }
    }
    d["consent"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .all(|p| granted(policy, p, event, signals))
}

fn signals_matrix() -> Vec<Signals> {
    let mut out = Vec::new();
    for gpc in [false, true] {
        for region in [
            None,
            Some("US-WA"),
            Some("US-CA"),
            Some("US-TX"),
            Some("DE"),
            Some("FR-75"),
        ] {
            out.push(Signals {
                gpc,
                region: region.map(str::to_owned),
            });
        }
    }
    out
}

/// The same policy with no consent anywhere: what an ungated destination
/// gets, byte for byte.
fn without_consent(policy: &Value) -> Value {
    let mut p = policy.clone();
    p.as_object_mut().map(|o| o.remove("consent"));
    for d in DESTINATIONS {
        p["destinations"][d]
            .as_object_mut()
            .map(|o| o.remove("consent"));
    }
    p
}

#[test]
fn the_engine_agrees_with_the_rules_for_every_mode_region_signal_shape_and_destination() {
    let mut checked = 0;
    let mut sent = 0;
    let mut gated = 0;
    for mode in ["opt-in", "opt-out"] {
        let policy = policy(mode);
        let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
        let ungated = Sanitizer::new(&without_consent(&policy).to_string(), Some(KEY)).unwrap();
        for signals in signals_matrix() {
            for (shape, context) in shapes() {
                for integrations in [false, true] {
                    let ev = event(&context, integrations);
                    let text = ev.to_string();
                    for d in DESTINATIONS {
                        let want = expected(&policy, d, &ev, &signals);
                        let got = s.sanitize_json_with(&text, d, &signals).unwrap();
                        let what =
                            format!("{mode} {signals:?} {shape} integrations={integrations} → {d}");
                        assert_eq!(got.is_some(), want, "{what}");
                        // Consent only gates: what is sent is what the
                        // policy without consent sends.
                        if let Some(out) = &got {
                            assert_eq!(
                                Some(out),
                                ungated.sanitize_json(&text, d).unwrap().as_ref(),
                                "{what}"
                            );
                            sent += 1;
                        } else {
                            gated += 1;
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 12 * shapes().len() * 2 * DESTINATIONS.len());
    assert!(sent > 1000 && gated > 1000, "sent {sent}, gated {gated}");
}

#[test]
fn whole_requests_agree_with_single_events_and_count_what_consent_kept() {
    for mode in ["opt-in", "opt-out"] {
        let policy = policy(mode);
        let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
        let events: Vec<Value> = shapes().iter().map(|(_, c)| event(c, false)).collect();
        let body = json!({ "batch": events }).to_string();
        for signals in signals_matrix() {
            let done = common::batch_with(&s, &body, &signals);
            assert_eq!(done.accepted, events.len());
            for d in &done.deliveries {
                let name = d.destination.as_str();
                let want: Vec<usize> = (0..events.len())
                    .filter(|&i| expected(&policy, name, &events[i], &signals))
                    .collect();
                let got: Vec<usize> = d.events.iter().flatten().copied().collect();
                assert_eq!(got, want, "{mode} {signals:?} → {name}");
                // Routing and calls exclude none of these tracks, so every
                // event not sent was kept back by consent alone.
                let kept = if name == "idents" {
                    0
                } else {
                    events.len() - want.len()
                };
                assert_eq!(d.consent as usize, kept, "{mode} {signals:?} → {name}");
                // Gated events leave nothing behind: the BAA warehouse gets
                // events unchanged, so its bodies hold one note per event sent.
                if name == "vault" {
                    assert_eq!(d.bodies.concat().matches("Jane Doe").count(), want.len());
                }
            }
        }
    }
}

#[test]
fn pinned_cases() {
    let policy = policy("opt-in");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let sent = |context: Value, signals: Signals| -> Vec<&str> {
        let text = event(&Some(context), false).to_string();
        DESTINATIONS
            .into_iter()
            .filter(|d| s.sanitize_json_with(&text, d, &signals).unwrap().is_some())
            .collect()
    };
    let none = Signals::default();
    let gpc = Signals {
        gpc: true,
        region: None,
    };
    let wa = Signals {
        gpc: false,
        region: Some("US-WA".into()),
    };
    let ca = Signals {
        gpc: false,
        region: Some("US-CA".into()),
    };
    // Opt-in, nothing stamped: only destinations that need no purpose.
    assert_eq!(sent(json!({}), none.clone()), ["plain"]);
    // California is opt-out: an unstamped visitor reaches them all, but
    // GPC still stops advertising.
    assert_eq!(
        sent(json!({}), ca.clone()),
        ["plain", "stats", "ads", "both", "vault", "unrouted"]
    );
    let ca_gpc = Signals { gpc: true, ..ca };
    assert_eq!(
        sent(json!({}), ca_gpc),
        ["plain", "stats", "vault", "unrouted"]
    );
    // Texas falls back to the country: US is opt-out.
    let tx = Signals {
        gpc: false,
        region: Some("US-TX".into()),
    };
    assert_eq!(
        sent(json!({}), tx),
        ["plain", "stats", "ads", "both", "vault", "unrouted"]
    );
    // Washington stays opt-in, its subdivision before its country.
    assert_eq!(sent(json!({}), wa), ["plain"]);
    let seg_all = json!({"consent": {"categoryPreferences": {"C0002": true, "C0004": true}}});
    assert_eq!(
        sent(seg_all.clone(), none.clone()),
        ["plain", "stats", "ads", "both", "vault", "unrouted"]
    );
    assert_eq!(sent(seg_all, gpc), ["plain", "stats", "vault", "unrouted"]);
    // Denied wins: Segment grants, RudderStack denies.
    let split = json!({"consent": {"categoryPreferences": {"C0002": true, "C0004": true}},
                       "consentManagement": {"deniedConsentIds": ["C0004"]}});
    assert_eq!(
        sent(split, none.clone()),
        ["plain", "stats", "vault", "unrouted"]
    );
    // A malformed carrier is absent: opt-in denies.
    assert_eq!(
        sent(json!({"consent": {"categoryPreferences": "all"}}), none),
        ["plain"]
    );
}

#[test]
fn explain_says_consent_and_what_decided_each_purpose() {
    let policy = policy("opt-in");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let text = event(
        &Some(json!({"consent": {"categoryPreferences": {"C0002": true, "Advertising": false}}})),
        false,
    )
    .to_string();
    let all = s.explain_with(&text, &Signals::default()).unwrap();
    let find = |d: &str| all.iter().find(|e| e.destination == d).unwrap();
    let both = find("both");
    assert_eq!(both.reason.code(), "consent");
    assert!(both.reason.text().contains("consent"));
    let decisions: Vec<(String, bool, &str, Option<String>)> = both
        .consent
        .iter()
        .map(|v| (v.purpose.clone(), v.granted, v.by.name(), v.id.clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            (
                "analytics".into(),
                true,
                "categoryPreferences",
                Some("C0002".into())
            ),
            (
                "advertising".into(),
                false,
                "categoryPreferences",
                Some("Advertising".into())
            ),
        ]
    );
    assert!(both.paths.dropped.is_empty() && both.paths.masked.is_empty());
    assert_eq!(find("stats").reason.code(), "sanitized");
    assert!(
        find("plain").consent.is_empty(),
        "an ungated destination has no decisions"
    );
    // RudderStack's lists say which of them decided, and by which id.
    let text = event(
        &Some(json!({"consentManagement": {"allowedConsentIds": ["Analytics"], "deniedConsentIds": ["C0004"]}})),
        false,
    )
    .to_string();
    let all = s.explain_with(&text, &Signals::default()).unwrap();
    let both = all.iter().find(|e| e.destination == "both").unwrap();
    let decisions: Vec<_> = both
        .consent
        .iter()
        .map(|v| {
            let (id, region) = (v.id.as_deref(), v.region.as_deref());
            (v.purpose.as_str(), v.granted, v.by.name(), id, region)
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (
                "analytics",
                true,
                "allowedConsentIds",
                Some("Analytics"),
                None
            ),
            (
                "advertising",
                false,
                "deniedConsentIds",
                Some("C0004"),
                None
            ),
        ]
    );
    assert_eq!(both.reason.code(), "consent");
    // GPC and the region's mode say so.
    let gpc = Signals {
        gpc: true,
        region: Some("US-CA".into()),
    };
    // What decided each purpose of `both`, and the region that did.
    let decided = |signals: &Signals| -> Vec<(&'static str, Option<String>)> {
        let text = event(&None, false).to_string();
        let all = s.explain_with(&text, signals).unwrap();
        let both = all.into_iter().find(|e| e.destination == "both").unwrap();
        both.consent
            .into_iter()
            .map(|v| (v.by.name(), v.region))
            .collect()
    };
    assert_eq!(
        decided(&gpc),
        [("opt-out", Some("US-CA".into())), ("gpc", None)]
    );
    // A subdivision without a rule of its own: its country's rule decided,
    // and explain names the country; a region no rule covers, none.
    for (region, by, decider) in [
        ("US-TX", "opt-out", Some("US")),
        ("DE-BY", "opt-in", Some("DE")),
        ("FR-75", "opt-in", None),
    ] {
        let signals = Signals {
            gpc: false,
            region: Some(region.into()),
        };
        let want = (by, decider.map(str::to_owned));
        assert_eq!(decided(&signals), [want.clone(), want], "{region}");
    }
    // Routing, calls and names come first: consent never adds a destination.
    assert_eq!(
        all.iter()
            .find(|e| e.destination == "idents")
            .unwrap()
            .reason
            .code(),
        "call_type"
    );
}

#[test]
fn a_request_consent_denies_sends_no_phi_to_the_gated_destinations() {
    let policy = policy("opt-out");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let denied = json!({"consent": {"categoryPreferences": {"C0002": false, "C0004": false}}});
    let body = json!({"batch": [event(&Some(denied.clone()), false), event(&Some(denied), false)]})
        .to_string();
    let done = common::batch_with(&s, &body, &Signals::default());
    for d in &done.deliveries {
        let text = d.bodies.concat();
        match d.destination.as_str() {
            "plain" => {
                // Ungated: its lists decide as always (note allowed,
                // diagnosis dropped).
                assert_eq!(d.sent, 2);
                assert_eq!(text.matches("Jane Doe").count(), 2);
                assert!(!text.contains("diagnosis"));
            }
            "idents" => assert_eq!((d.sent, d.consent), (0, 0)),
            "unrouted" | "stats" | "ads" | "both" | "vault" => {
                assert_eq!(
                    (d.sent, d.consent, d.bodies.len()),
                    (0, 2, 0),
                    "{}",
                    d.destination
                );
                assert!(!text.contains("Jane"));
            }
            other => panic!("unexpected destination {other}"),
        }
    }
}

#[test]
fn a_batchs_shared_context_carries_consent_to_events_without_their_own() {
    let policy = policy("opt-in");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    // The batch grants advertising; the second event denies it itself,
    // the third has a context of its own without consent (the batch's
    // consent is merged into it).
    let mut own = event(
        &Some(json!({"consent": {"categoryPreferences": {"C0004": false}}})),
        false,
    );
    own["messageId"] = json!("own");
    let mut other = event(&Some(json!({"locale": "en-US"})), false);
    other["messageId"] = json!("other");
    let body = json!({
        "batch": [event(&None, false), own, other],
        "context": {"consent": {"categoryPreferences": {"C0004": true}}}
    })
    .to_string();
    let done = common::batch_with(&s, &body, &Signals::default());
    let ads = common::delivery(&done, "ads");
    assert_eq!(ads.events, [vec![0, 2]]);
    assert_eq!(ads.consent, 1);
}

#[test]
fn a_rejected_event_is_not_counted_as_kept_back_by_consent() {
    let policy = policy("opt-in");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    // Analytics granted, advertising denied: `ads` and `both` are gated
    // out of both events. The second is too large for the ungated
    // destinations' bodies, so it is refused for every destination: it
    // was never "not sent for want of consent", and its PHI goes nowhere.
    let stamps = json!({"consent": {"categoryPreferences": {"C0002": true, "C0004": false}}});
    let small = event(&Some(stamps.clone()), false);
    let mut large = event(&Some(stamps), false);
    large["properties"]["note"] = json!(format!("Jane Doe, HIV positive {}", "x".repeat(4000)));
    let body = json!({"batch": [small, large]}).to_string();
    let done = s
        .process_request_with(body.as_bytes(), Call::Batch, 2000, &Signals::default())
        .unwrap();
    assert_eq!(done.accepted, 1);
    assert_eq!(done.rejected.len(), 1);
    assert_eq!(done.rejected[0].0, 1);
    for d in &done.deliveries {
        let gated = matches!(d.destination.as_str(), "ads" | "both");
        assert_eq!(d.consent, u32::from(gated), "{}", d.destination);
        assert!(
            !d.bodies.concat().contains(&"x".repeat(100)),
            "{}",
            d.destination
        );
    }
}

#[test]
fn the_events_map_excludes_first_and_is_not_counted_as_consent() {
    let policy = policy("opt-in");
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    // Every purpose denied, and an event the `events` map drops for the
    // restricted destinations: they exclude it by name, not for consent;
    // the BAA warehouse (no events map applies) is kept back by consent.
    let denied = json!({"consent": {"categoryPreferences": {"C0002": false, "C0004": false}}});
    let mut other = event(&Some(denied), false);
    other["event"] = json!("Viewed HIV Results");
    let text = other.to_string();
    let why = |d: &str| match d {
        "idents" => "call_type",
        "vault" => "consent",
        _ => "event_name",
    };
    let all = s.explain_with(&text, &Signals::default()).unwrap();
    let codes: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.destination.as_str(), e.reason.code()))
        .collect();
    let want: Vec<(&str, &str)> = DESTINATIONS.iter().map(|d| (*d, why(d))).collect();
    assert_eq!(codes, want);
    let body = json!({"batch": [other]}).to_string();
    let done = common::batch_with(&s, &body, &Signals::default());
    assert_eq!(done.accepted, 1);
    for d in &done.deliveries {
        let kept = u32::from(why(&d.destination) == "consent");
        assert_eq!((d.sent, d.consent), (0, kept), "{}", d.destination);
        assert!(!d.bodies.concat().contains("HIV"), "{}", d.destination);
    }
}

#[test]
fn gpc_denies_every_purpose_its_list_names() {
    // GPC listing both purposes: a visitor who granted both, in an
    // opt-out region, reaches only the ungated destination under GPC.
    let mut policy = policy("opt-out");
    policy["consent"]["gpc"] = json!(["analytics", "advertising"]);
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let stamps = json!({"consent": {"categoryPreferences": {"C0002": true, "C0004": true}}});
    let granted = event(&Some(stamps), false).to_string();
    let sent = |signals: &Signals| -> Vec<&str> {
        DESTINATIONS
            .into_iter()
            .filter(|d| {
                s.sanitize_json_with(&granted, d, signals)
                    .unwrap()
                    .is_some()
            })
            .collect()
    };
    assert_eq!(
        sent(&Signals::default()),
        ["plain", "stats", "ads", "both", "vault", "unrouted"]
    );
    let gpc = Signals {
        gpc: true,
        region: Some("US-CA".into()),
    };
    assert_eq!(sent(&gpc), ["plain"]);
    let all = s.explain_with(&granted, &gpc).unwrap();
    let both = all.iter().find(|e| e.destination == "both").unwrap();
    let by: Vec<_> = both
        .consent
        .iter()
        .map(|v| (v.purpose.as_str(), v.granted, v.by.name()))
        .collect();
    assert_eq!(
        by,
        [("analytics", false, "gpc"), ("advertising", false, "gpc")]
    );
}

#[test]
fn a_prepared_policy_naming_a_purpose_it_does_not_define_is_refused() {
    // Prepared files are read without the validator (the Worker's build):
    // a gate or a GPC list naming a purpose the section lacks would never
    // decide as the policy's author meant, so the file is refused whole.
    let text = policy("opt-out").to_string();
    let (valid, report) = phimask::validate_policy(&text);
    let valid = valid.unwrap_or_else(|| panic!("{:?}", report.errors));
    let good = phimask::prepared::prepare(&valid);
    assert!(Sanitizer::from_prepared(&good, Some(KEY)).is_ok());
    let mut gate = valid.clone();
    gate.destinations[2].consent = vec!["advertisng".into()];
    let mut gpc = valid.clone();
    if let Some(c) = gpc.consent.as_mut() {
        c.gpc = vec!["advertisng".into()];
    }
    assert_ne!(gpc, valid);
    for bad in [gate, gpc] {
        let bytes = phimask::prepared::prepare(&bad);
        assert!(phimask::prepared::load(&bytes).is_none());
        assert!(Sanitizer::from_prepared(&bytes, Some(KEY)).is_err());
    }
}
