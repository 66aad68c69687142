//! Consent gating attacked, as a hostile visitor and a careless integrator
//! would: JSON escapes that decode to the stamps' keys and ids, look-alike
//! ids, duplicate ids, a batch's shared consent against an event's own
//! malformed context, a 500 KB batch of refusals, nesting at the depth
//! limit, routing that asks for a gated destination, prepared policies
//! edited by hand, and explanations asked to echo ids the policy lacks.
//!
//! PHI no detector sees ("Jane Doe", "HIV positive") rides in an
//! allowlisted property of every event: a gated-out destination must
//! receive nothing of it, by any path.

mod common;

use phimask::consent::Signals;
use phimask::{Call, Sanitizer, MAX_DEPTH};
use serde_json::{json, Value};

const KEY: &[u8] = b"consent-attacks-key-0123456789abcdef";
const PHI: &str = "Jane Doe HIV positive";

/// `plain` is not gated; `stats` needs analytics, `ads` advertising (and
/// has an integration name an event's routing can ask for).
fn policy(mode: &str) -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": { "event_properties": { "note": "allow" } },
        "destinations": {
            "plain": {"connection": "server-side", "endpoint": "https://plain.example/"},
            "stats": {"connection": "server-side", "endpoint": "https://stats.example/", "consent": ["analytics"]},
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/", "integration": "Ads",
                    "consent": ["advertising"]}
        },
        "consent": {
            "mode": mode,
            "categories": { "analytics": ["C0002"], "advertising": ["C0004", "C0005"] },
            "gpc": ["advertising"]
        }
    })
}

fn sanitizer(mode: &str) -> Sanitizer {
    Sanitizer::new(&policy(mode).to_string(), Some(KEY)).unwrap()
}

/// A track carrying PHI, with `context` (JSON text) when given and more
/// members (`,"k":v` text).
fn event(context: Option<&str>, more: &str) -> String {
    let context = context.map_or(String::new(), |c| format!(r#","context":{c}"#));
    format!(
        r#"{{"type":"track","event":"Booked","userId":"u1","properties":{{"note":"{PHI}"}}{context}{more}}}"#
    )
}

/// Whether `d` receives the event, sent alone and within a batch.
fn receives(s: &Sanitizer, text: &str, d: &str, signals: &Signals) -> (bool, bool) {
    let alone = s.sanitize_json_with(text, d, signals).unwrap().is_some();
    let body = format!(r#"{{"batch":[{text}]}}"#);
    let done = common::batch_with(s, &body, signals);
    let delivery = common::delivery(&done, d);
    (alone, delivery.sent > 0)
}

/// JSON escapes decode to the same keys and ids: an escaped stamp is
/// decided exactly as the one written out, whichever way it points.
#[test]
fn escaped_keys_and_ids_are_decided_as_the_text_they_decode_to() {
    let pairs = [
        (
            r#"{"\u0063onsent":{"categoryPreferences":{"C0004":false}}}"#,
            r#"{"consent":{"categoryPreferences":{"C0004":false}}}"#,
        ),
        (
            r#"{"consent":{"\u0063ategoryPreferences":{"C0004":true}}}"#,
            r#"{"consent":{"categoryPreferences":{"C0004":true}}}"#,
        ),
        (
            r#"{"consent":{"categoryPreferences":{"C00\u00304":false}}}"#,
            r#"{"consent":{"categoryPreferences":{"C0004":false}}}"#,
        ),
        (
            r#"{"consent":{"categoryPreferences":{"\u0043\u0030\u0030\u0030\u0034":true}}}"#,
            r#"{"consent":{"categoryPreferences":{"C0004":true}}}"#,
        ),
        (
            r#"{"consentM\u0061nagement":{"deniedConsentIds":["C0004"]}}"#,
            r#"{"consentManagement":{"deniedConsentIds":["C0004"]}}"#,
        ),
        (
            r#"{"consentManagement":{"denied\u0043onsentIds":["C00\u00305"],"allowedConsentIds":["C0004"]}}"#,
            r#"{"consentManagement":{"deniedConsentIds":["C0005"],"allowedConsentIds":["C0004"]}}"#,
        ),
        (
            r#"{"consentManagement":{"allowedConsentIds":["C\u0030004"]}}"#,
            r#"{"consentManagement":{"allowedConsentIds":["C0004"]}}"#,
        ),
    ];
    let mut sent = 0;
    for mode in ["opt-in", "opt-out"] {
        let s = sanitizer(mode);
        for (escaped, plain) in pairs {
            let want = receives(&s, &event(Some(plain), ""), "ads", &Signals::default());
            let got = receives(&s, &event(Some(escaped), ""), "ads", &Signals::default());
            assert_eq!(got, want, "{mode}: {escaped}");
            assert_eq!(want.0, want.1, "{mode}: {plain}");
            sent += usize::from(want.0);
        }
    }
    // Both ways: some of the pairs grant, some deny.
    assert!(sent > 0 && sent < 2 * pairs.len(), "{sent}");
}

/// A batch's shared `context` escaped as `"\u0063ontext"` is the batch's
/// context all the same: its denial reaches every event.
#[test]
fn an_escaped_shared_context_still_denies() {
    let s = sanitizer("opt-out");
    for shared in ["context", r"\u0063ontext"] {
        let body = format!(
            r#"{{"batch":[{}],"{shared}":{{"consent":{{"categoryPreferences":{{"C0004":false}}}}}}}}"#,
            event(None, "")
        );
        let done = common::batch_with(&s, &body, &Signals::default());
        let ads = common::delivery(&done, "ads");
        assert_eq!((ads.sent, ads.consent), (0, 1), "{shared}");
        assert!(ads.bodies.iter().all(|b| !b.contains("Jane Doe")));
    }
}

/// The batch stamps a refusal on every event; an event's own `context`
/// that is not an object (a string, null, an array, a number) has no keys
/// to win over it: the refusal stands, even where the mode is opt-out.
#[test]
fn a_batch_denial_survives_an_event_context_that_is_not_an_object() {
    for mode in ["opt-out", "opt-in"] {
        let s = sanitizer(mode);
        for own in [
            r#""x""#,
            "null",
            "[]",
            "5",
            "true",
            r#"[{"consent":{"categoryPreferences":{"C0004":true}}}]"#,
        ] {
            let body = format!(
                r#"{{"batch":[{}],"context":{{"consent":{{"categoryPreferences":{{"C0004":false,"C0002":true}}}}}}}}"#,
                event(Some(own), "")
            );
            let done = common::batch_with(&s, &body, &Signals::default());
            assert_eq!(done.accepted, 1, "{mode} {own}");
            let get = |d: &str| common::delivery(&done, d);
            let ads = get("ads");
            assert_eq!((ads.sent, ads.consent), (0, 1), "{mode} context {own}");
            assert!(ads.bodies.iter().all(|b| !b.contains("Jane Doe")));
            // The shared grant of analytics stands too.
            assert_eq!(get("stats").sent, 1, "{mode} context {own}");
            assert_eq!(get("plain").sent, 1, "{mode} context {own}");
        }
    }
}

/// An id that only looks like the policy's (zero-width space, fullwidth
/// digits or letter, a NUL, other case, spaces) grants nothing.
#[test]
fn look_alike_ids_grant_nothing() {
    let s = sanitizer("opt-in");
    for id in [
        r"C0004\u200b",
        r"\u200bC0004",
        "Ｃ0004",
        "C０００４",
        r"C0004\u0000",
        "c0004",
        " C0004",
        "C0004 ",
        r"C0004\ufeff",
    ] {
        for context in [
            format!(r#"{{"consent":{{"categoryPreferences":{{"{id}":true}}}}}}"#),
            format!(r#"{{"consentManagement":{{"allowedConsentIds":["{id}"]}}}}"#),
        ] {
            let got = receives(&s, &event(Some(&context), ""), "ads", &Signals::default());
            assert_eq!(got, (false, false), "{context}");
        }
    }
}

/// Two keys that decode to the same id (`"C0004"` and `"C00\u00304"`)
/// are a duplicate: the event is refused, for every destination.
#[test]
fn an_id_written_twice_in_two_spellings_refuses_the_event() {
    let s = sanitizer("opt-out");
    for prefs in [
        r#"{"C0004":true,"C00\u00304":false}"#,
        r#"{"C00\u00304":false,"C0004":true}"#,
        r#"{"C0004":false,"C0004":true}"#,
    ] {
        let text = event(
            Some(&format!(
                r#"{{"consent":{{"categoryPreferences":{prefs}}}}}"#
            )),
            "",
        );
        for d in ["plain", "ads"] {
            assert!(s.sanitize_json(&text, d).is_err(), "{prefs} {d}");
        }
        let body = format!(r#"{{"batch":[{text}]}}"#);
        let done = s.process_request(body.as_bytes(), Call::Batch);
        match done {
            Ok(done) => {
                assert_eq!(done.accepted, 0, "{prefs}");
                assert!(done.deliveries.iter().all(|d| d.sent == 0), "{prefs}");
            }
            Err(e) => assert_eq!(e.code(), "duplicate_key", "{prefs}"),
        }
    }
}

/// Routing never opens a gate: `integrations` asking for the gated
/// destination by name, or `All`, on the event or shared by the batch.
#[test]
fn routing_that_asks_for_a_gated_destination_does_not_open_it() {
    let denied = r#"{"consent":{"categoryPreferences":{"C0004":false}}}"#;
    for mode in ["opt-in", "opt-out"] {
        let s = sanitizer(mode);
        for routing in [
            r#","integrations":{"Ads":true}"#,
            r#","integrations":{"All":true,"Ads":true}"#,
            r#","integrations":{"All":false,"Ads":{"consent":true}}"#,
        ] {
            let text = event(Some(denied), routing);
            assert_eq!(
                receives(&s, &text, "ads", &Signals::default()),
                (false, false),
                "{routing}"
            );
        }
        let body = format!(
            r#"{{"batch":[{}],"integrations":{{"Ads":true}}}}"#,
            event(Some(denied), "")
        );
        let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
        let ads = common::delivery(&done, "ads");
        assert_eq!((ads.sent, ads.consent), (0, 1), "{mode}");
    }
}

/// A batch at the 500 KB limit, every event refusing advertising in one
/// of many ways (and GPC on the request): not one reaches `ads`, and the
/// report counts every one of them.
#[test]
fn a_500_kb_batch_of_refusals_reaches_no_gated_destination() {
    let contexts = [
        r#"{"consent":{"categoryPreferences":{"C0004":false,"C0002":true}}}"#,
        r#"{"consent":{"categoryPreferences":{"C0004":true,"C0005":null,"C0002":true}}}"#,
        r#"{"consentManagement":{"deniedConsentIds":["C0005"],"allowedConsentIds":["C0004","C0002"]}}"#,
        r#"{"consent":{"categoryPreferences":{"C0004":true,"C0002":true}},"consentManagement":{"deniedConsentIds":["C0004"]}}"#,
        r#"{"consent":{"categoryPreferences":{"C0004":"true","C0002":1}}}"#,
    ];
    let mut events = Vec::new();
    let mut len = 20;
    let mut i = 0;
    loop {
        let text = event(
            Some(contexts[i % contexts.len()]),
            &format!(r#","messageId":"m{i}""#),
        );
        if len + text.len() + 1 > phimask::request::MAX_BATCH_BYTES {
            break;
        }
        len += text.len() + 1;
        events.push(text);
        i += 1;
    }
    let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
    assert!(body.len() > 490 * 1024 && body.len() <= phimask::request::MAX_BATCH_BYTES);
    let s = sanitizer("opt-out");
    for gpc in [false, true] {
        let signals = Signals { gpc, region: None };
        let done = common::batch_with(&s, &body, &signals);
        assert_eq!(done.accepted, events.len());
        let ads = common::delivery(&done, "ads");
        assert_eq!(ads.sent, 0, "gpc {gpc}");
        assert_eq!(ads.consent as usize, events.len(), "gpc {gpc}");
        assert!(ads.bodies.is_empty());
        let plain = common::delivery(&done, "plain");
        assert_eq!(plain.sent as usize, events.len());
        assert!(plain.bodies.iter().any(|b| b.contains(PHI)));
    }
}

/// Consent stamped beside a value nested to the depth limit is read as
/// it is beside a shallow one; one level more refuses the event.
#[test]
fn stamps_beside_nesting_at_the_depth_limit() {
    // The event is depth 1, context 2, so "deep" opens at 3.
    let nest = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    for mode in ["opt-in", "opt-out"] {
        let s = sanitizer(mode);
        for (prefs, granted) in [("true", true), ("false", false)] {
            let stamp = format!(r#""consent":{{"categoryPreferences":{{"C0004":{prefs}}}}}"#);
            for deep_first in [true, false] {
                let deep = format!(r#""deep":{}"#, nest(MAX_DEPTH - 2));
                let context = if deep_first {
                    format!("{{{deep},{stamp}}}")
                } else {
                    format!("{{{stamp},{deep}}}")
                };
                let text = event(Some(&context), "");
                assert_eq!(
                    receives(&s, &text, "ads", &Signals::default()),
                    (granted, granted),
                    "{mode} {prefs} deep_first={deep_first}"
                );
                let too_deep = event(
                    Some(&context.replace(&nest(MAX_DEPTH - 2), &nest(MAX_DEPTH - 1))),
                    "",
                );
                assert!(s.sanitize_json(&too_deep, "ads").is_err(), "{mode}");
            }
        }
    }
}

/// Explanations show the policy's ids only: an id the visitor's page
/// stamped that the policy lacks (which can say anything) is never
/// echoed, in any decision, path or reason.
#[test]
fn explain_never_echoes_a_stamped_id_the_policy_lacks() {
    let s = sanitizer("opt-in");
    let contexts = [
        r#"{"consent":{"categoryPreferences":{"JaneDoe_HIV_positive":true,"C0004":false,"C0002":true}}}"#,
        r#"{"consent":{"categoryPreferences":{"JaneDoe_HIV_positive":false}}}"#,
        r#"{"consentManagement":{"allowedConsentIds":["JaneDoe_HIV_positive","C0004","C0002"],"deniedConsentIds":["JaneDoe_oncology"]}}"#,
        r#"{"consentManagement":{"deniedConsentIds":["JaneDoe_HIV_positive"]}}"#,
    ];
    for context in contexts {
        for gpc in [false, true] {
            let signals = Signals {
                gpc,
                region: Some("US-WA".into()),
            };
            let text = event(Some(context), "");
            let explained = s.explain_with(&text, &signals).unwrap();
            let shown = format!("{explained:?}");
            assert!(!shown.contains("JaneDoe"), "{context}: {shown}");
            assert!(!shown.contains("HIV"), "{context}: {shown}");
            for e in &explained {
                for d in &e.consent {
                    assert!(
                        d.id.as_deref()
                            .is_none_or(|id| ["C0002", "C0004", "C0005"].contains(&id)),
                        "{d:?}"
                    );
                }
            }
        }
    }
}

/// A prepared policy edited by hand (and summed again) so that a
/// destination or `gpc` names a purpose the section does not define is
/// refused: a gate naming nothing would be decided by nothing.
#[test]
fn a_prepared_policy_naming_an_undefined_purpose_is_refused() {
    let prepared = phimask::prepare_policy(&policy("opt-in").to_string()).unwrap();
    assert!(Sanitizer::from_prepared(&prepared, Some(KEY)).is_ok());
    let body = &prepared[..prepared.len() - 32];
    let find = |needle: &[u8]| -> Vec<usize> {
        (0..body.len().saturating_sub(needle.len()))
            .filter(|&i| &body[i..i + needle.len()] == needle)
            .collect()
    };
    // Every place a purpose name is written: renaming any one of them
    // (same length, so the encoding stays readable) leaves some name
    // undefined.
    let places: Vec<(usize, usize)> = [b"advertising".as_slice(), b"analytics".as_slice()]
        .iter()
        .flat_map(|n| find(n).into_iter().map(|i| (i, n.len())))
        .collect();
    assert!(places.len() >= 4, "{places:?}");
    for (at, len) in places {
        let mut edited = body.to_vec();
        edited[at + len - 1] = b'X';
        let sum = <sha2::Sha256 as sha2::Digest>::digest(&edited);
        edited.extend_from_slice(&sum);
        assert!(
            Sanitizer::from_prepared(&edited, Some(KEY)).is_err(),
            "renamed at {at}"
        );
    }
}

/// Policies that validate but look odd gate as written: a purpose `gpc`
/// lists that no destination needs changes nothing; an id two purposes
/// share is decided for each; a purpose whose ids no SDK stamps is never
/// granted in opt-in mode.
#[test]
fn odd_but_valid_policies_gate_as_written() {
    let policy = json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": { "event_properties": { "note": "allow" } },
        "destinations": {
            "stats": {"connection": "server-side", "endpoint": "https://stats.example/", "consent": ["analytics"]},
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/", "consent": ["advertising"]},
            "never": {"connection": "server-side", "endpoint": "https://never.example/", "consent": ["unstamped"]}
        },
        "consent": {
            "categories": { "analytics": ["C0002"], "advertising": ["C0002", "C0004"], "unstamped": ["X-none"],
                            "sale": ["C0009"] },
            "gpc": ["sale"]
        }
    });
    let (_, report) = phimask::validate_policy(&policy.to_string());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let gpc = Signals {
        gpc: true,
        region: None,
    };
    let text = event(
        Some(r#"{"consent":{"categoryPreferences":{"C0002":true,"C0004":false,"C0009":true}}}"#),
        "",
    );
    for signals in [Signals::default(), gpc] {
        assert!(s
            .sanitize_json_with(&text, "stats", &signals)
            .unwrap()
            .is_some());
        assert!(s
            .sanitize_json_with(&text, "ads", &signals)
            .unwrap()
            .is_none());
        assert!(s
            .sanitize_json_with(&text, "never", &signals)
            .unwrap()
            .is_none());
    }
    let all = event(
        Some(r#"{"consent":{"categoryPreferences":{"C0002":true,"C0004":true}}}"#),
        "",
    );
    assert!(s.sanitize_json(&all, "ads").unwrap().is_some());
    assert!(s.sanitize_json(&all, "never").unwrap().is_none());
}

/// Thousands of ids stamped: the one denial among them, wherever it
/// stands, denies; unrelated denials do not deny a granted purpose.
#[test]
fn thousands_of_stamped_ids_are_all_read() {
    let s = sanitizer("opt-out");
    let many = |last: &str| {
        let ids: Vec<String> = (0..2000).map(|i| format!(r#""X{i}":false"#)).collect();
        format!(
            r#"{{"consent":{{"categoryPreferences":{{{},{last}}}}}}}"#,
            ids.join(",")
        )
    };
    let denied = event(Some(&many(r#""C0005":false"#)), "");
    assert!(denied.len() < phimask::MAX_EVENT_BYTES);
    assert_eq!(
        receives(&s, &denied, "ads", &Signals::default()),
        (false, false)
    );
    let granted = event(Some(&many(r#""C0004":true"#)), "");
    assert_eq!(
        receives(&s, &granted, "ads", &Signals::default()),
        (true, true)
    );
    let list: Vec<String> = (0..1500).map(|i| format!(r#""X{i}""#)).collect();
    let rudder = format!(
        r#"{{"consentManagement":{{"allowedConsentIds":["C0004",{}],"deniedConsentIds":[{},"C0005"]}}}}"#,
        list.join(","),
        list.join(",")
    );
    assert_eq!(
        receives(&s, &event(Some(&rudder), ""), "ads", &Signals::default()),
        (false, false)
    );
}

/// The command takes each signal once: a second `--region` (which one
/// would win?) or a value given to `--gpc` is bad usage, not a guess.
#[test]
fn the_command_refuses_repeated_or_valued_signal_flags() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/consent/policy.json");
    let event = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/consent/segment-track.json"
    );
    for args in [
        &["--region", "US-CA", "--region", "US-WA"][..],
        &["--gpc", "--gpc"],
        &["--gpc=false"],
        &["--gpc=0"],
        &["--region", "US-C\u{661}"],
        &["--region", "US-CA\u{0}"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phimask"))
            .args(["explain", "-p", policy, "-d", "meta_capi"])
            .args(args)
            .arg(event)
            .env("PHI_MASKING_KEY", "consent-attacks-key-0123456789abcdef")
            .output();
        // An argument with a NUL cannot even be passed: refused before phimask runs.
        let Ok(out) = out else { continue };
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// A stamped id the policy lacks, written twice, refuses the event with a
/// message that names the key when it looks like a field name
/// (`JaneDoe_HIV_positive` does): a page can put PHI in such an id.
#[test]
#[ignore = "duplicate-key messages show any key that looks like a field name (src/key_name.rs); hiding consent ids alone would need the reader to know where it is"]
fn a_duplicate_stamped_id_is_not_echoed_in_the_refusal() {
    let s = sanitizer("opt-in");
    let text = event(
        Some(
            r#"{"consent":{"categoryPreferences":{"JaneDoe_HIV_positive":true,"JaneDoe_HIV_positive":false}}}"#,
        ),
        "",
    );
    let err = s.sanitize_json(&text, "ads").unwrap_err().to_string();
    assert!(!err.contains("JaneDoe"), "{err}");
}

/// A purpose `gpc` lists that no destination needs makes the Worker's
/// /.well-known/gpc.json say GPC is honoured while the signal changes
/// nothing that is sent: validation should warn.
#[test]
fn a_gpc_purpose_no_destination_needs_is_warned_about() {
    let policy = json!({
        "version": 1, "environment": "t", "hipaa": true,
        "events": { "*": "drop" },
        "destinations": {
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/"}
        },
        "consent": { "categories": { "sale": ["C0009"] }, "gpc": ["sale"] }
    });
    let (_, report) = phimask::validate_policy(&policy.to_string());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| format!("{w:?}").contains("consent.gpc")),
        "{:?}",
        report.warnings
    );
}
