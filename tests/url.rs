//! The `url` action fails closed. Properties: PHI planted in the user
//! info, the path (slugs no detector sees, and identifiers), the query
//! (kept and unlisted parameters) and the fragment, encoded up to twice,
//! never comes out in any decoding; a path segment the policy does not
//! list never comes out at all; nothing panics. Then the shipped policies
//! on the example events, and what validation tells a policy author.

use std::path::Path;

use phimask::{validate_policy, Sanitizer};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "url-property-test-key-0123456789abcdef";

/// Identifier-like PHI: what a path segment or a kept parameter must lose.
const IDENTIFIERS: [&str; 9] = [
    "jane.doe@example.com",
    "123-45-6789",
    "123_45_6789",
    "617-555-0100",
    "483920",
    "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "4111 1111 1111 1111",
    "1962-03-14",
    "03/14/1962",
];
/// PHI no detector can see: planted where nothing free-form may stay
/// (user info, path segments outside the vocabulary, unlisted parameters,
/// the fragment).
const UNDETECTABLE: [&str; 5] = [
    "Jane Doe",
    "jane-doe",
    "chest-pain",
    "HIV positive",
    "dr-smith",
];
/// The site's vocabulary in the test policy.
const WORDS: [&str; 5] = ["patients", "results", "search", "providers", "services"];

/// `s` percent-encoded `times` times (every byte outside A–Z a–z 0–9).
fn encode(s: &str, times: usize) -> String {
    let mut out = s.to_owned();
    for _ in 0..times {
        out = out
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
    }
    out
}

/// Percent-decoded (and `+` as space) up to four times: more than the
/// engine does.
fn decodings(s: &str) -> Vec<String> {
    let mut out = vec![s.to_owned()];
    for _ in 0..4 {
        let last = out.last().cloned().unwrap_or_default();
        let bytes = last.as_bytes();
        let mut next = Vec::new();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b, hex) {
                (b'%', Some(v)) => {
                    next.push(v);
                    i += 3;
                }
                (b'+', _) => {
                    next.push(b' ');
                    i += 1;
                }
                (b, _) => {
                    next.push(b);
                    i += 1;
                }
            }
        }
        out.push(String::from_utf8_lossy(&next).into_owned());
    }
    out
}

fn policy(rule: Value) -> String {
    json!({
        "version": 1, "environment": "test", "hipaa": true,
        "allowlists": { "event_properties": { "url": rule } },
        "events": { "*": "allow" },
        "destinations": { "d": { "connection": "server-side", "endpoint": "https://d.example/" } }
    })
    .to_string()
}

fn vocabulary_rule() -> Value {
    json!({ "action": "url", "query": ["q", "utm_*"], "paths": ["/patients/:id/results"], "segments": WORDS })
}

/// What the destination receives for `url` under `rule`; `None` when the
/// value is not sent.
fn reduce(s: &Sanitizer, url: &str) -> Option<String> {
    let event =
        json!({ "type": "track", "event": "E", "anonymousId": "a", "properties": { "url": url } });
    let out = s.sanitize_json(&event.to_string(), "d").unwrap().unwrap();
    let sent: Value = serde_json::from_str(&out).unwrap();
    sent["properties"]
        .get("url")
        .map(|v| v.as_str().unwrap().to_owned())
}

fn sanitizer(rule: Value) -> Sanitizer {
    Sanitizer::new(&policy(rule), Some(KEY.as_bytes())).unwrap()
}

#[derive(Debug, Clone)]
enum Part {
    Word(usize),
    Identifier(usize, usize),
    Slug(String, usize),
}

/// A slug of letters and dashes that is not a vocabulary word.
fn slug() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z-]{0,14}".prop_filter("not a vocabulary word", |s| !WORDS.contains(&s.as_str()))
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        (0..WORDS.len()).prop_map(Part::Word),
        (0..IDENTIFIERS.len(), 0usize..3).prop_map(|(p, e)| Part::Identifier(p, e)),
        (slug(), 0usize..3).prop_map(|(s, e)| Part::Slug(s, e)),
    ]
}

/// Whether `phi` is in `reduced` in any decoding, case aside.
fn leaks(reduced: &str, phi: &str) -> bool {
    let phi = phi.to_lowercase();
    decodings(reduced)
        .iter()
        .any(|form| form.to_lowercase().contains(&phi))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn planted_phi_never_leaves_the_url_action(
        absolute in any::<bool>(),
        backslashes in any::<bool>(),
        user in prop::option::of((0..UNDETECTABLE.len(), 0usize..3)),
        path in prop::collection::vec(part(), 0..5),
        kept in prop::collection::vec(((0..IDENTIFIERS.len()), 0usize..3, any::<bool>()), 0..3),
        unlisted in prop::collection::vec(((0..UNDETECTABLE.len()), 0usize..3), 0..3),
        fragment in prop::option::of(0..UNDETECTABLE.len()),
    ) {
        let mut planted: Vec<String> = Vec::new();
        let mut url = String::new();
        if absolute {
            url.push_str("https://");
            if let Some((p, e)) = user {
                url.push_str(&encode(UNDETECTABLE[p], e));
                url.push('@');
                planted.push(UNDETECTABLE[p].into());
            }
            url.push_str("clinic.example");
        }
        let separator = if backslashes { "\\" } else { "/" };
        url.push_str(separator);
        let segments: Vec<String> = path.iter().map(|p| match p {
            Part::Word(w) => WORDS[*w].to_owned(),
            Part::Identifier(p, e) => {
                planted.push(IDENTIFIERS[*p].into());
                encode(IDENTIFIERS[*p], *e)
            }
            Part::Slug(s, e) => {
                planted.push(s.clone());
                encode(s, *e)
            }
        }).collect();
        url.push_str(&segments.join(separator));
        let mut params: Vec<String> = Vec::new();
        for (p, e, utm) in &kept {
            planted.push(IDENTIFIERS[*p].into());
            params.push(format!("{}={}", if *utm { "utm_term" } else { "q" }, encode(IDENTIFIERS[*p], *e)));
        }
        for (p, e) in &unlisted {
            planted.push(UNDETECTABLE[*p].into());
            params.push(format!("email={}", encode(UNDETECTABLE[*p], *e)));
        }
        params.push("utm_source=google".into());
        url.push('?');
        url.push_str(&params.join("&"));
        if let Some(f) = fragment {
            url.push('#');
            url.push_str(&encode(UNDETECTABLE[f], 1));
            planted.push(UNDETECTABLE[f].into());
        }
        let reduced = reduce(&sanitizer(vocabulary_rule()), &url);
        let reduced = reduced.unwrap_or_default();
        for phi in &planted {
            // A vocabulary word or the template may hold the planted
            // slug's text ("patients" in "patient"): only slugs that no
            // output word holds count.
            let in_vocabulary = WORDS.iter().chain(&["results", ":id", ":seg", "utm_source", "google", "clinic.example", "https"])
                .any(|w| w.contains(phi.to_lowercase().as_str()));
            prop_assert!(in_vocabulary || !leaks(&reduced, phi), "{} came out of {} as {}", phi, url, reduced);
        }
        // What analytics needs stays: the origin and the campaign.
        prop_assert!(!absolute || reduced.starts_with("https://clinic.example/"), "{}", reduced);
        prop_assert!(reduced.contains("utm_source=google"), "{}", reduced);
    }

    /// Outside a template, a segment not in the vocabulary never comes out,
    /// whatever its letters, under a vocabulary and under no vocabulary.
    #[test]
    fn an_unlisted_segment_never_appears(
        before in prop::collection::vec(0..WORDS.len(), 0..3),
        unlisted in slug(),
        after in prop::collection::vec(0..WORDS.len(), 0..3),
        bare in any::<bool>(),
    ) {
        let rule = if bare { json!("url") } else { vocabulary_rule() };
        let mut segments: Vec<&str> = before.iter().map(|&w| WORDS[w]).collect();
        segments.push(&unlisted);
        segments.extend(after.iter().map(|&w| WORDS[w]));
        let url = format!("https://clinic.example/{}", segments.join("/"));
        let reduced = reduce(&sanitizer(rule), &url).unwrap_or_default();
        let out: Vec<&str> = reduced.trim_start_matches("https://clinic.example").split('/').collect();
        prop_assert!(!out.contains(&unlisted.as_str()), "{} came out of {} as {}", unlisted, url, reduced);
        prop_assert_eq!(out.len(), segments.len() + 1, "{}", reduced);
        for o in &out[1..] {
            prop_assert!(WORDS.contains(o) && !bare || *o == ":seg" || *o == ":id", "{}", reduced);
        }
    }

    /// `"segments": "*"` keeps slugs, but never digits split by
    /// punctuation, fullwidth digits or a date.
    #[test]
    fn the_heuristic_never_keeps_split_digits(
        digits in prop::collection::vec(prop::sample::select(vec!['0', '4', '9', '１', '７']), 5..10),
        separators in prop::collection::vec(prop::sample::select(vec!["", "_", "-", ".", "~"]), 10),
    ) {
        let segment: String = digits.iter().zip(&separators).map(|(d, s)| format!("{d}{s}")).collect();
        let reduced = reduce(&sanitizer(json!({ "action": "url", "segments": "*" })), &format!("/x/{segment}"));
        prop_assert_eq!(reduced.as_deref(), Some("/x/:id"), "{}", segment);
    }

    /// Any input: no panic, and what comes out is a reduced URL.
    #[test]
    fn never_panics(input in "[ -~\t\n\\\\％＠１é]{0,40}") {
        let s = sanitizer(vocabulary_rule());
        if let Some(out) = reduce(&s, &input) {
            prop_assert!(out.is_empty() || out.starts_with("https://") || out.starts_with("http://") || out.starts_with('/') || out.starts_with('?'), "{:?} -> {:?}", input, out);
            let before_query = out.split('?').next().unwrap_or_default();
            prop_assert!(!out.contains('#') && !before_query.contains('\\'), "{:?} -> {:?}", input, out);
        }
    }
}

/// Every leak issue 22 lists, planted in a value under the shipped rule
/// shape: none comes out in any decoding, and what is sent is exactly the
/// reduced form (so dropping the whole value, or a placeholder turning
/// into another, is seen too).
#[test]
fn listed_leaks_never_pass() {
    let s = sanitizer(vocabulary_rule());
    for (input, phi, want) in [
        (
            "/patients/jane-doe/records",
            "jane-doe",
            Some("/patients/:seg/:seg"),
        ),
        ("/search/chest-pain", "chest-pain", Some("/search/:seg")),
        ("/providers/dr-smith", "dr-smith", Some("/providers/:seg")),
        ("/dob/1962-03-14", "1962-03-14", Some("/:seg/:id")),
        (
            "/patients/123_45_6789",
            "123_45_6789",
            Some("/patients/:id"),
        ),
        (
            "/patients/１２３４５６",
            "１２３４５６",
            Some("/patients/:id"),
        ),
        (
            "https://clinic.example\\patients\\483920",
            "483920",
            Some("https://clinic.example/patients/:id"),
        ),
        (
            "https://clinic.example/services/hiv-testing",
            "hiv-testing",
            Some("https://clinic.example/services/:seg"),
        ),
        (
            "https://jane.doe@clinic.example/services",
            "jane",
            Some("https://clinic.example/services"),
        ),
        // A host with a label that may identify someone: not sent.
        ("https://mrn-483920.clinic.example/", "483920", None),
        // A kept parameter holding a date or an identifier goes.
        ("?q=1962-03-14", "1962", Some("")),
        ("?utm_term=03%2F14%2F1962", "1962", Some("")),
        ("?utm_content=483920", "483920", Some("")),
        // Neither an absolute http(s) URL, a path nor a query.
        ("//jane-doe.example/x", "jane-doe", None),
    ] {
        let out = reduce(&s, input);
        let text = out.as_deref().unwrap_or_default();
        assert!(!leaks(text, phi), "{phi} came out of {input} as {text}");
        assert_eq!(out.as_deref(), want, "{input}");
    }
    // Ordinary analytics values still pass.
    assert_eq!(
        reduce(
            &s,
            "https://clinic.example/services?utm_source=google&q=flu"
        )
        .as_deref(),
        Some("https://clinic.example/services?utm_source=google&q=flu")
    );
}

/// A kept parameter whose value or name holds a numeric date is removed,
/// in every form DESIGN lists, two-digit years included (no detector
/// finds `3-4-62`: only the url action's own date test does); versions
/// and counts stay.
#[test]
fn kept_parameters_holding_a_date_are_removed() {
    let s = sanitizer(vocabulary_rule());
    for date in [
        "1962-03-14",
        "03/14/1962",
        "14.03.1962",
        "3/14/62",
        "3-14-62",
        "1/2/34",
        "3-4-62",
        "12-1-99",
        "03%2F14%2F62",
        "1962/3/4",
    ] {
        let value = reduce(&s, &format!("?utm_source=google&q={date}&utm_term=x"));
        assert_eq!(
            value.as_deref(),
            Some("?utm_source=google&utm_term=x"),
            "value {date}"
        );
        let name = reduce(&s, &format!("?utm_source=google&utm_{date}=1"));
        assert_eq!(name.as_deref(), Some("?utm_source=google"), "name {date}");
    }
    // Fewer than five digits and no date: kept (`10.4.12` holds five).
    assert_eq!(
        reduce(&s, "?q=1.2.3&utm_term=2&utm_content=1-2").as_deref(),
        Some("?q=1.2.3&utm_term=2&utm_content=1-2")
    );
}

/// A URL whose host holds a detector match across its labels, which no
/// label shows alone (each has fewer than five digits): an IP address, a
/// card number, a phone number, is not sent.
#[test]
fn a_host_holding_a_detector_match_across_labels_is_dropped() {
    let s = sanitizer(vocabulary_rule());
    for (host, phi) in [
        ("203.0.113.7.nip.io", "203.0.113.7"),
        ("4111.1111.1111.1111.clinic.example", "4111.1111"),
        ("617.555.0100.clinic.example", "617.555.0100"),
    ] {
        let out = reduce(&s, &format!("https://{host}/services?utm_source=google"));
        assert!(
            !leaks(out.as_deref().unwrap_or_default(), phi),
            "{host}: {out:?}"
        );
        assert_eq!(out, None, "{host}");
    }
    // An ordinary host with digits stays.
    assert_eq!(
        reduce(&s, "https://www2.clinic.example/services").as_deref(),
        Some("https://www2.clinic.example/services")
    );
}

/// The shipped policies on the example events: page paths as templates,
/// never a slug or a record number.
#[test]
fn shipped_policies_send_templates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    for env in ["production", "development"] {
        let s =
            Sanitizer::new(&read(&format!("policies/{env}.json")), Some(KEY.as_bytes())).unwrap();
        for (file, url, path) in [
            (
                "page-condition.json",
                "https://www.clinic.example/services/:service",
                None,
            ),
            (
                "track-appointment.json",
                "https://portal.clinic.example/patients/:patient/appointments/:step",
                Some("/patients/:patient/appointments/:step"),
            ),
        ] {
            let out = s
                .sanitize_json(&read(&format!("examples/events/{file}")), "amplitude")
                .unwrap()
                .unwrap();
            let sent: Value = serde_json::from_str(&out).unwrap();
            let page = &sent["context"]["page"];
            assert_eq!(page["url"], json!(url), "{env} {file}: {out}");
            assert_eq!(
                page.get("path").and_then(Value::as_str),
                path,
                "{env} {file}: {out}"
            );
            for phi in ["hiv-testing", "004217", "jane", "utm_term", "free"] {
                assert!(!out.contains(phi), "{env} {file}: {phi} in {out}");
            }
        }
        // A slug no example holds, on the same rules.
        let event = json!({"type": "page", "anonymousId": "a", "name": "Services",
            "context": {"page": {"path": "/patients/jane-doe/appointments", "url": "https://www.clinic.example/providers/dr-smith"}}});
        let out = s
            .sanitize_json(&event.to_string(), "amplitude")
            .unwrap()
            .unwrap();
        let sent: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            sent["context"]["page"]["path"],
            json!("/patients/:seg/appointments"),
            "{env}"
        );
        assert_eq!(
            sent["context"]["page"]["url"],
            json!("https://www.clinic.example/providers/:seg"),
            "{env}"
        );
    }
}

/// What `phimask check` shows a policy author about url rules.
#[test]
fn validation_warns_about_placeholders_only_and_the_heuristic() {
    let warnings = |rule: Value| -> Vec<(String, String)> {
        let (policy, report) = validate_policy(&policy(rule));
        assert!(policy.is_some(), "{:?}", report.errors);
        report
            .warnings
            .into_iter()
            .filter(|w| w.path.starts_with("allowlists"))
            .map(|w| (w.path, w.message))
            .collect()
    };
    let bare = warnings(json!("url"));
    assert_eq!(bare.len(), 1, "{bare:?}");
    assert_eq!(bare[0].0, "allowlists.event_properties.url");
    assert!(
        bare[0].1.contains("only origins and placeholders are sent"),
        "{bare:?}"
    );
    let any = warnings(json!({"action": "url", "segments": "*"}));
    assert_eq!(any.len(), 1, "{any:?}");
    assert_eq!(any[0].0, "allowlists.event_properties.url.segments");
    assert!(any[0].1.contains("/patients/jane-doe"), "{any:?}");
    assert_eq!(warnings(vocabulary_rule()), []);
    assert_eq!(warnings(json!({"action": "url", "paths": ["/p/:id"]})), []);
    // Hostile options: errors at their paths, the key never echoed.
    for (rule, path) in [
        (
            json!({"action": "url", "segments": ["a/b"]}),
            "allowlists.event_properties.url.segments[0]",
        ),
        (
            json!({"action": "url", "segments": [""]}),
            "allowlists.event_properties.url.segments[0]",
        ),
        (
            json!({"action": "url", "segments": ["*"]}),
            "allowlists.event_properties.url.segments[0]",
        ),
        (
            json!({"action": "url", "segments": "all"}),
            "allowlists.event_properties.url.segments",
        ),
        (
            json!({"action": "url", "segments": {"a": 1}}),
            "allowlists.event_properties.url.segments",
        ),
        (
            json!({"action": "url", "vocabulary": ["a"]}),
            "allowlists.event_properties.url.vocabulary",
        ),
    ] {
        let (policy_out, report) = validate_policy(&policy(rule.clone()));
        assert!(policy_out.is_none(), "{rule}");
        assert!(
            report.errors.iter().any(|e| e.path == path),
            "{rule}: {:?}",
            report.errors
        );
    }
}
