//! Prepared policies (what the edge Worker loads): every policy of the
//! shared vectors and the examples reads back as the validator made it,
//! and damaged bytes are refused whole, never half-loaded.

use std::fs;
use std::path::Path;

use phimask::prepared::{load, prepare};
use phimask::{prepare_policy, validate_policy, Error, Sanitizer};
use serde_json::Value;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Every valid policy in tests/vectors/ and policies/, as JSON text.
fn policies() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["tests/vectors", "policies"] {
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            let doc: Value = serde_json::from_str(&text).unwrap();
            let name = path.display().to_string();
            if doc.get("version").is_some() {
                out.push((name, text));
                continue;
            }
            let mut found = vec![doc["policy"].clone()];
            for case in doc["cases"].as_array().into_iter().flatten() {
                found.push(case["policy"].clone());
            }
            for (i, policy) in found.into_iter().enumerate() {
                if !policy.is_null() {
                    out.push((format!("{name} #{i}"), policy.to_string()));
                }
            }
        }
    }
    let valid: Vec<_> = out
        .into_iter()
        .filter(|(_, text)| validate_policy(text).0.is_some())
        .collect();
    assert!(
        valid.len() >= 12,
        "only {} valid policies found",
        valid.len()
    );
    valid
}

#[test]
fn every_policy_reads_back_as_validated() {
    for (name, text) in policies() {
        let policy = validate_policy(&text).0.unwrap();
        let bytes = prepare(&policy);
        assert_eq!(load(&bytes).as_ref(), Some(&policy), "{name}");
        assert_eq!(prepare_policy(&text).unwrap(), bytes, "{name}");
    }
}

#[test]
fn invalid_policies_are_not_prepared() {
    let text = r#"{"version": 1, "environment": "x", "hipaa": true,
        "allowlists": {"event_properties": {"diagnosis": "keep"}}, "destinations": {}}"#;
    match prepare_policy(text) {
        Err(Error::InvalidPolicy(problems)) => {
            assert_eq!(problems, validate_policy(text).1.errors);
        }
        other => panic!("prepared an invalid policy: {other:?}"),
    }
}

/// Any cut or any flipped bit: refused as a whole, with a message that
/// says what to do, and never a panic.
#[test]
fn damaged_bytes_are_refused() {
    for (name, text) in policies().into_iter().take(8) {
        let bytes = prepare_policy(&text).unwrap();
        assert!(
            Sanitizer::from_prepared(&bytes, Some(KEY)).is_ok(),
            "{name}"
        );
        for cut in 0..bytes.len() {
            assert!(load(&bytes[..cut]).is_none(), "{name}: cut at {cut}");
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let err = Sanitizer::from_prepared(&damaged, Some(KEY)).unwrap_err();
                assert_eq!(err.code(), "invalid_policy", "{name}: byte {at} bit {bit}");
                assert!(err.to_string().contains("prepare it again"), "{err}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(load(&longer).is_none(), "{name}: a byte appended");
    }
    assert!(load(b"").is_none());
    assert!(
        load(b"{\"version\": 1}").is_none(),
        "a policy file is not prepared bytes"
    );
}

/// Still refused without a key when some destination needs one.
#[test]
fn prepared_policies_need_the_key_as_policies_do() {
    for (name, text) in policies() {
        let bytes = prepare_policy(&text).unwrap();
        assert_eq!(
            Sanitizer::from_prepared(&bytes, None)
                .err()
                .map(|e| e.code()),
            Sanitizer::new(&text, None).err().map(|e| e.code()),
            "{name}"
        );
    }
}

/// The default context's shapes (an action no policy can write) survive
/// preparing: the Worker drops free text in those leaves as the full
/// engine does.
#[test]
fn default_context_shapes_read_back() {
    use phimask::policy::{Action, List};
    use phimask::structural::Shape;
    let text = r#"{"version": 1, "environment": "x", "hipaa": true,
        "destinations": {"d": {"connection": "server-side", "endpoint": "https://d.example/"}}}"#;
    let policy = validate_policy(text).0.unwrap();
    let shapes: Vec<(String, Action)> = policy
        .allowlists
        .list(List::Context)
        .iter()
        .map(|r| (r.path.clone(), r.action))
        .collect();
    assert_eq!(
        shapes,
        [
            ("library.name".into(), Action::Shape(Shape::SdkName)),
            ("library.version".into(), Action::Shape(Shape::SdkVersion)),
            ("locale".into(), Action::Shape(Shape::Locale)),
            ("timezone".into(), Action::Shape(Shape::Timezone)),
        ]
    );
    let loaded = load(&prepare(&policy)).unwrap();
    assert_eq!(loaded, policy);
    let s = Sanitizer::from_prepared(&prepare(&policy), Some(KEY)).unwrap();
    let event = r#"{"type":"track","event":"E","anonymousId":"a","context":{"library":{"name":"Jane Doe","version":"3.1.0"},"locale":"HIV positive","timezone":"UTC"}}"#;
    let out = s.sanitize_json(event, "d").unwrap().unwrap();
    assert!(
        out.ends_with(r#""context":{"library":{"version":"3.1.0"},"timezone":"UTC"}}"#),
        "{out}"
    );
    // No policy can write the internal action.
    for action in ["shape", "Shape", "scalar", "sdk_name"] {
        let text = format!(
            r#"{{"version": 1, "environment": "x", "hipaa": true,
               "allowlists": {{"context": {{"locale": "{action}"}}}}, "destinations": {{}}}}"#
        );
        assert!(validate_policy(&text).0.is_none(), "{action}");
    }
}
