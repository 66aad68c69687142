//! Runs the shared vectors in tests/vectors/ against the Rust engine. The
//! JavaScript tests run the same files against the wasm package.

use std::fs;
use std::path::Path;

mod common;

use phimask::{prepare_policy, validate_policy, Sanitizer};
use serde_json::{json, Value};

fn vector_files() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "vector files missing in {dir:?}");
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// Replaces every `{"$mask": "clear"}` in an expected output (and every key
/// `"$mask:clear"`) by the HMAC of "clear", computed independently of the
/// engine (`common::hmac_hex`).
fn resolve(expected: &Value, key: &[u8]) -> Value {
    match expected {
        Value::Object(map) if map.len() == 1 && map.contains_key("$mask") => Value::String(
            common::hmac_hex(key, map["$mask"].as_str().unwrap().as_bytes()),
        ),
        // A key scope's masks use HMAC-SHA256(key, "phimask-scope:" + NAME).
        Value::Object(map) if map.len() == 2 && map.contains_key("$mask") => {
            let scope = format!("phimask-scope:{}", map["scope"].as_str().unwrap());
            let derived = common::hmac_bytes(key, scope.as_bytes());
            Value::String(common::hmac_hex(
                &derived,
                map["$mask"].as_str().unwrap().as_bytes(),
            ))
        }
        // A key `"$mask:clear"` is the HMAC of "clear" (a masked key).
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let k = match k.strip_prefix("$mask:") {
                        Some(clear) => common::hmac_hex(key, clear.as_bytes()),
                        None => k.clone(),
                    };
                    (k, resolve(v, key))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, key)).collect()),
        other => other.clone(),
    }
}

fn event_text(case: &Value) -> String {
    match (case.get("event_json"), case.get("event")) {
        (Some(Value::String(text)), _) => text.clone(),
        (_, Some(event)) => serde_json::to_string(event).unwrap(),
        _ => panic!("case has neither event nor event_json"),
    }
}

fn run_sanitize(file: &str, doc: &Value) -> usize {
    let key = doc["key"].as_str().unwrap();
    let policy = serde_json::to_string(&doc["policy"]).unwrap();
    let sanitizer = Sanitizer::new(&policy, Some(key.as_bytes()))
        .unwrap_or_else(|e| panic!("{file}: policy refused: {e}"));
    // The edge Worker's way in: the policy prepared at build time.
    let prepared = prepare_policy(&policy).unwrap();
    let from_prepared = Sanitizer::from_prepared(&prepared, Some(key.as_bytes())).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    each_case(cases, |case| {
        let name = format!("{file}: {}", case["name"]);
        let destination = case["destination"].as_str().unwrap();
        let text = event_text(case);
        let result = sanitizer.sanitize_json(&text, destination);
        assert_eq!(
            from_prepared.sanitize_json(&text, destination),
            result,
            "{name}: the prepared policy sanitizes alike"
        );
        if let Some(code) = case.get("error") {
            let err = result.expect_err(&name);
            assert_eq!(err.code(), code, "{name}");
            assert_eq!(err.to_string(), case["message"], "{name}");
            return;
        }
        let out = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = resolve(&case["expected"], key.as_bytes());
        match out {
            None => assert_eq!(expected, Value::Null, "{name}: nothing was sent"),
            Some(out) => {
                let actual: Value = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("{name}: output is not JSON ({e}): {out}"));
                // Compared as text so that key order counts too.
                assert_eq!(
                    serde_json::to_string(&actual).unwrap(),
                    serde_json::to_string(&expected).unwrap(),
                    "{name}"
                );
                // Same input, same output, byte for byte.
                let again = sanitizer.sanitize_json(&text, destination).unwrap();
                assert_eq!(again.as_deref(), Some(out.as_str()), "{name}");
            }
        }
    });
    cases.len()
}

/// Runs `check` on every case, then fails listing every case that failed
/// (not only the first).
fn each_case(cases: &[Value], check: impl Fn(&Value)) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

fn run_policy(file: &str, doc: &Value) -> usize {
    let cases = doc["cases"].as_array().unwrap();
    each_case(cases, |case| {
        let name = format!("{file}: {}", case["name"]);
        let text = match case.get("policy_json") {
            Some(Value::String(t)) => t.clone(),
            _ => serde_json::to_string(&case["policy"]).unwrap(),
        };
        let (policy, report) = validate_policy(&text);
        let list = |problems: &[phimask::Problem]| {
            problems
                .iter()
                .map(|p| json!({ "path": p.path, "message": p.message }))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            Value::Array(list(&report.errors)),
            case["errors"],
            "{name}: errors"
        );
        assert_eq!(
            Value::Array(list(&report.warnings)),
            case["warnings"],
            "{name}: warnings"
        );
        assert_eq!(policy.is_some(), report.errors.is_empty(), "{name}");
        if !report.errors.is_empty() {
            let err = Sanitizer::new(&text, Some(&[b'k'; 32])).unwrap_err();
            assert_eq!(err.code(), "invalid_policy", "{name}");
            for p in &report.errors {
                assert!(err.to_string().contains(&p.to_string()), "{name}");
            }
        }
    });
    cases.len()
}

fn run_known_answers(file: &str, doc: &Value) -> usize {
    let key = doc["key"].as_str().unwrap();
    let policy = r#"{"version":1,"environment":"test","hipaa":true,
        "identifiers":{"userId":"drop","anonymousId":"drop"},
        "allowlists":{"event_properties":{"v":"mask"}},
        "destinations":{"d":{"connection":"server-side","endpoint":"https://d.example/"}}}"#;
    let sanitizer = Sanitizer::new(policy, Some(key.as_bytes())).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    for case in cases {
        let value = case["json"].as_str().unwrap();
        let event = format!(
            r#"{{"type":"track","event":"E","userId":null,"anonymousId":"a","properties":{{"v":{value}}}}}"#
        );
        let out = sanitizer.sanitize_json(&event, "d").unwrap().unwrap();
        let want = format!(
            r#"{{"type":"track","event":"E","properties":{{"v":"{}"}}}}"#,
            case["masked"].as_str().unwrap()
        );
        assert_eq!(out, want, "{file}: {value}");
    }
    cases.len()
}

#[test]
fn shared_vectors() {
    let mut total = 0;
    let mut failed = Vec::new();
    for (file, doc) in vector_files() {
        let run = std::panic::catch_unwind(|| match doc["kind"].as_str() {
            Some("sanitize") => run_sanitize(&file, &doc),
            Some("policy") => run_policy(&file, &doc),
            Some("known-answers") => run_known_answers(&file, &doc),
            other => panic!("{file}: unknown kind {other:?}"),
        });
        match run {
            Ok(n) => total += n,
            Err(_) => failed.push(file),
        }
    }
    assert!(failed.is_empty(), "vectors failed in {failed:?}");
    assert!(total >= 40, "only {total} vector cases ran");
}
