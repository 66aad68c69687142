//! Policy validation: any text is a policy or a list of problems, never a
//! panic; a valid policy survives being prepared for the Worker (its
//! prepared form reads back equal), compiles with a key, and sanitizes an
//! event for each of its destinations into valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phimask::{prepared, validate_policy, Sanitizer};
use phimask_fuzz::{check_json, KEY};

const EVENT: &str = r#"{"type":"track","event":"Signed Up","userId":"u-1","anonymousId":"a-1","messageId":"m-1",
"timestamp":"2026-11-23T10:00:00Z","properties":{"plan":"pro","email":" Jane@X.com ","url":"https://x.example/p/123?utm_a=1",
"zip":"02118","items":[{"sku":"A","price":1.5}],"notes":"call 617-555-0100"},
"context":{"ip":"203.0.113.9","traits":{"email":"j@x.com"}}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy, report) = validate_policy(text);
    let Some(policy) = policy else {
        assert!(!report.errors.is_empty(), "refused without a reason");
        return;
    };
    let bytes = prepared::prepare(&policy);
    assert_eq!(prepared::load(&bytes).as_ref(), Some(&policy));
    let s = Sanitizer::from_policy(&policy, Some(KEY)).expect("a valid policy compiles");
    let names: Vec<String> = s.destinations().map(str::to_owned).collect();
    for d in &names {
        if let Ok(Some(out)) = s.sanitize_json(EVENT, d) {
            check_json(&out);
        }
    }
});
