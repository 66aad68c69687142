//! The JSON reader, through the event reader that every event meets
//! first: any text is either refused with a reason or read, never a
//! panic; what it reads serde_json reads too, and what serde_json reads
//! (within the depth limit, keys once) it reads; reading text it validated
//! again in its delimiting mode gives the same event; the sanitizer's
//! output for it is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phimask::event::{Event, MAX_DEPTH};
use phimask::EventError;
use phimask_fuzz::{check_json, permissive};

fuzz_target!(|data: &[u8]| {
    // Events reach the reader as UTF-8 text (the Worker checks the body).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = Event::read(data);
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    match (&ours, &theirs) {
        (Ok(_), Err(e)) => panic!("read what serde_json refuses: {e}"),
        (Err(EventError::InvalidJson { .. }), Ok(v)) if depth(v) <= MAX_DEPTH => {
            panic!("refused as invalid JSON what serde_json reads")
        }
        _ => {}
    }
    if let Ok(event) = &ours {
        let again = Event::read_validated(data).expect("validated text reads again");
        assert_eq!(again.call, event.call);
        assert_eq!(again.members.len(), event.members.len());
        let s = permissive();
        for d in ["restricted", "scoped", "baa"] {
            if let Ok(Some(out)) = s.sanitize_json(text, d) {
                check_json(&out);
            }
        }
    }
});

/// Nesting depth of a value (the value itself is level 1).
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}
