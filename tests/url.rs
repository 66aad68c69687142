//! Property: for random URLs with PHI planted in the user info, the path,
//! the query (kept and unlisted parameters) and the fragment, encoded up
//! to twice, no planted value comes out of the `url` action in any
//! decoding.

use phimask::Sanitizer;
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "url-property-test-key-0123456789abcdef";

/// Identifier-like PHI: what a path segment must lose.
const DETECTABLE: [&str; 6] = [
    "jane.doe@example.com",
    "123-45-6789",
    "617-555-0100",
    "483920",
    "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "4111 1111 1111 1111",
];
/// Any PHI: planted where nothing of it may stay (user info, fragment,
/// unlisted parameters).
const ANY: [&str; 3] = ["Jane Doe", "chest pain", "HIV positive"];
/// What a detector finds: what a kept parameter must lose (a bare record
/// number is not a detector match there; in a path segment it is
/// identifier-like).
const DETECTED: [&str; 4] = [
    "jane.doe@example.com",
    "123-45-6789",
    "617-555-0100",
    "4111 1111 1111 1111",
];
const WORDS: [&str; 5] = ["patients", "results", "appointments", "new", "services"];

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

/// Percent-decoded up to four times (more than the engine does).
fn decodings(s: &str) -> Vec<String> {
    let mut out = vec![s.to_owned()];
    for _ in 0..4 {
        let last = out.last().cloned().unwrap_or_default();
        let bytes = last.as_bytes();
        let mut next = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
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

#[derive(Debug, Clone)]
enum Part {
    Word(usize),
    Phi(usize, usize),
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        (0..WORDS.len()).prop_map(Part::Word),
        (0..DETECTABLE.len(), 0usize..3).prop_map(|(p, e)| Part::Phi(p, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn planted_phi_never_leaves_the_url_action(
        absolute in any::<bool>(),
        user in prop::option::of((0..ANY.len(), 0usize..3)),
        path in prop::collection::vec(part(), 0..5),
        kept in prop::collection::vec(((0..DETECTED.len()), 0usize..3, any::<bool>()), 0..3),
        unlisted in prop::collection::vec(((0..ANY.len()), 0usize..3), 0..3),
        fragment in prop::option::of(0..ANY.len()),
    ) {
        let mut planted: Vec<&str> = Vec::new();
        let mut url = String::new();
        if absolute {
            url.push_str("https://");
            if let Some((p, e)) = user {
                url.push_str(&encode(ANY[p], e));
                url.push('@');
                planted.push(ANY[p]);
            }
            url.push_str("clinic.example");
        }
        url.push('/');
        let segments: Vec<String> = path.iter().map(|p| match p {
            Part::Word(w) => WORDS[*w].to_owned(),
            Part::Phi(p, e) => {
                planted.push(DETECTABLE[*p]);
                encode(DETECTABLE[*p], *e)
            }
        }).collect();
        url.push_str(&segments.join("/"));
        let mut params: Vec<String> = Vec::new();
        for (p, e, utm) in &kept {
            planted.push(DETECTED[*p]);
            params.push(format!("{}={}", if *utm { "utm_term" } else { "q" }, encode(DETECTED[*p], *e)));
        }
        for (p, e) in &unlisted {
            planted.push(ANY[*p]);
            params.push(format!("email={}", encode(ANY[*p], *e)));
        }
        params.push("utm_source=ad".into());
        url.push('?');
        url.push_str(&params.join("&"));
        if let Some(f) = fragment {
            url.push('#');
            url.push_str(&encode(ANY[f], 1));
            planted.push(ANY[f]);
        }
        let policy = json!({
            "version": 1, "environment": "test", "hipaa": true,
            "allowlists": { "event_properties": {
                "url": { "action": "url", "query": ["q", "utm_*"], "paths": ["/patients/:id/results"] }
            } },
            "events": { "*": "allow" },
            "destinations": { "d": { "connection": "server-side", "endpoint": "https://d.example/" } }
        }).to_string();
        let s = Sanitizer::new(&policy, Some(KEY.as_bytes())).unwrap();
        let event = json!({ "type": "track", "event": "E", "anonymousId": "a", "properties": { "url": url } });
        let out = s.sanitize_json(&event.to_string(), "d").unwrap().unwrap();
        let sent: Value = serde_json::from_str(&out).unwrap();
        let reduced = sent["properties"]["url"].as_str().unwrap_or_default().to_owned();
        for form in decodings(&reduced) {
            let lower = form.to_lowercase();
            for phi in &planted {
                prop_assert!(!lower.contains(&phi.to_lowercase()), "{} came out of {} as {}", phi, url, reduced);
            }
        }
        // What analytics needs stays: the origin and the campaign (a raw
        // space makes it no URL at all, so then nothing is sent).
        if !url.contains(' ') {
            prop_assert!(!absolute || reduced.starts_with("https://clinic.example/"), "{}", reduced);
            prop_assert!(reduced.contains("utm_source=ad"), "{}", reduced);
        } else {
            prop_assert_eq!(sent["properties"].get("url"), None);
        }
    }
}
