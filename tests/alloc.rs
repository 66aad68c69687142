//! What a request's shared buffers must not change: a value masked through
//! the request's memo is its HMAC however full the memo is, and the items
//! each destination's formats write into one buffer come out as the
//! formats make them one event at a time.

use phimask::format::Format;
use phimask::mask::{Masker, Memo};
use phimask::{Call, Sanitizer};
use serde_json::{json, Value};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";

fn hex(m: &Masker, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    m.write_hex(value, &mut out);
    out
}

#[test]
fn the_memo_gives_each_values_hmac_when_full_and_for_values_alike() {
    let m = Masker::new(KEY).unwrap();
    let mut memo = Memo::default();
    // Far more values than the memo keeps, many of one length and alike
    // but for one byte (the same first and last eight bytes), each asked
    // for three times, and the empty value.
    let values: Vec<Vec<u8>> = (0..12_000)
        .map(|i| format!("patient-{i:06}-identifier").into_bytes())
        .chain([Vec::new(), vec![0xff; 3]])
        .collect();
    for round in 0..3 {
        for v in &values {
            let mut got = b"prefix".to_vec();
            memo.write_hex(0, &m, v, &mut got);
            let mut want = b"prefix".to_vec();
            want.extend(hex(&m, v));
            assert_eq!(got, want, "round {round}: {}", String::from_utf8_lossy(v));
        }
    }
}

#[test]
fn the_memo_keeps_each_transforms_output_whatever_was_remembered_before() {
    let mut memo = Memo::default();
    // Outputs of differing lengths (longer and shorter than the value, and
    // none), each remembered beside its value: none runs into the next.
    let output = |v: &[u8]| -> Vec<u8> {
        v.iter()
            .rev()
            .cycle()
            .take(v.len() % 7 * 3)
            .copied()
            .collect()
    };
    let tag = phimask::mask::transform_tag(2, 9);
    for round in 0..2 {
        for i in 0..9_000 {
            let v = format!("{i}").repeat(i % 5 + 1).into_bytes();
            let mut got = Vec::new();
            let code = memo.write(tag, &v, &mut got, &mut |out| {
                out.extend(output(&v));
                (v.len() % 3) as u8
            });
            assert_eq!(
                (code, got),
                ((v.len() % 3) as u8, output(&v)),
                "{round} {i}"
            );
        }
    }
}

fn policy() -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": {"plan": "allow", "mrn": "mask", "visit": "mask"},
            "user_properties": {"tier": "allow"}
        },
        "destinations": {
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude"},
            "mix": {"connection": "server-side", "endpoint": "https://mix.example/import", "format": "mixpanel"},
            "ga": {"connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4"},
            "seg": {"connection": "server-side", "endpoint": "https://seg.example/v1/batch"}
        }
    })
}

/// A request of more distinct masked values than the memo keeps: every
/// destination's bodies are what each event sanitized and mapped alone
/// gives (each masked value its HMAC), and a value seen again is masked
/// alike.
#[test]
fn a_large_request_gives_every_destination_what_events_alone_give() {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    let calls = ["track", "page", "identify"];
    let events: Vec<String> = (0..3_000)
        .map(|n| {
            json!({"type": calls[n % 3], "event": "E", "name": "N", "userId": format!("u-{}", n % 40),
                   "anonymousId": format!("a-{n}"), "messageId": format!("m-{n}"),
                   "timestamp": "2026-11-23T10:00:00Z",
                   "properties": {"plan": "pro", "mrn": format!("MRN-{n}"), "visit": format!("V-{}", n % 7)},
                   "traits": {"tier": "gold"}})
            .to_string()
        })
        .collect();
    let body = format!("{{\"batch\":[{}]}}", events.join(","));
    let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
    assert_eq!(done.accepted, events.len());
    for d in &done.deliveries {
        let format: Format = s.format(&d.destination).unwrap();
        let items: Vec<_> = events
            .iter()
            .filter_map(|e| format.item(&s.sanitize_json(e, &d.destination).unwrap()?))
            .collect();
        let (bodies, _) = format.bodies(&items);
        let bodies: Vec<String> = bodies.into_iter().map(|b| b.text).collect();
        assert_eq!(d.bodies, bodies, "{}", d.destination);
    }
    let seg = &done.deliveries[3].bodies.concat();
    let m = Masker::new(KEY).unwrap();
    for v in ["MRN-0", "MRN-2997", "V-3"] {
        assert!(seg.contains(&m.mask(v)), "{v}");
        assert!(!seg.contains(v), "{v}");
    }
}
