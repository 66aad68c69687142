//! Sanitize with an arbitrary policy and event: the fuzzer's bytes choose
//! the allowlist (paths over a small vocabulary, every action) and the
//! event's `properties` (nested objects and arrays whose leaves are
//! distinct markers or other scalars). The output is valid JSON, and no
//! marker under a path that no rule names (or covers from above) appears
//! in it, in any form.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use phimask::Sanitizer;
use phimask_fuzz::{check_json, KEY};

const KEYS: [&str; 6] = ["a", "b", "email", "zip", "url", "items"];
const ACTIONS: [&str; 16] = [
    r#""allow""#,
    r#""mask""#,
    r#""drop""#,
    r#""zip3""#,
    r#""year""#,
    r#""age""#,
    r#""ip""#,
    r#"{"action":"url","query":["q","utm_*"],"paths":["/p/:id"]}"#,
    r#"{"action":"url","query":["utm_*"],"segments":["p","a"]}"#,
    r#"{"action":"url","segments":"*"}"#,
    r#"{"action":"allow","scan":true}"#,
    r#"{"action":"allow","scan":["email","id"],"on_match":"mask"}"#,
    r#"{"action":"allow","scan":true,"on_match":"drop"}"#,
    r#"{"action":"mask","normalize":"email"}"#,
    r#"{"action":"mask","normalize":"phone"}"#,
    r#"{"action":"mask","normalize":"text"}"#,
];

/// A step of a path: a key, or into every element of an array.
#[derive(Clone, PartialEq)]
enum Step {
    Key(&'static str),
    Elements,
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut rules: Vec<(Vec<Step>, &str)> = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let mut steps = vec![Step::Key(u.choose(&KEYS)?)];
        for _ in 0..u.int_in_range(0..=2)? {
            steps.push(if u.ratio(1, 3)? {
                Step::Elements
            } else {
                Step::Key(u.choose(&KEYS)?)
            });
        }
        rules.push((steps, *u.choose(&ACTIONS)?));
    }
    let mut leaves: Vec<(Vec<Step>, String)> = Vec::new();
    let properties = value(u, &mut Vec::new(), &mut leaves, 0)?;
    let list: Vec<String> = rules
        .iter()
        .map(|(steps, action)| {
            format!(
                "{}:{action}",
                serde_json::to_string(&path(steps)).unwrap_or_default()
            )
        })
        .collect();
    let policy = format!(
        r#"{{"version":1,"environment":"fuzz","hipaa":true,"allowlists":{{"event_properties":{{{}}}}},
        "destinations":{{"d":{{"connection":"server-side","endpoint":"https://d.example/in"}}}}}}"#,
        list.join(",")
    );
    // Policies the validator refuses (the same path twice, …) are its
    // target's business.
    let Ok(s) = Sanitizer::new(&policy, Some(KEY)) else {
        return Ok(());
    };
    let event = format!(
        r#"{{"type":"track","event":"E","userId":"u","messageId":"m-1","properties":{properties}}}"#
    );
    let Ok(Some(out)) = s.sanitize_json(&event, "d") else {
        return Ok(());
    };
    check_json(&out);
    for (at, marker) in &leaves {
        // A rule covers a leaf when its steps begin the leaf's path.
        let covered = rules.iter().any(|(steps, _)| at.starts_with(steps));
        assert!(
            covered || !out.contains(marker.as_str()),
            "{marker} at {} leaked: {out}",
            path(at)
        );
    }
    Ok(())
}

/// `a.items[].b`, as a policy writes it.
fn path(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Elements => out.push_str("[]"),
        }
    }
    out
}

/// A JSON value at `at`: an object or array below depth 4, else a scalar;
/// string leaves are markers (`QZX` + a number), noted in `leaves`.
fn value(
    u: &mut Unstructured<'_>,
    at: &mut Vec<Step>,
    leaves: &mut Vec<(Vec<Step>, String)>,
    depth: usize,
) -> Result<String> {
    let kind = if depth < 4 {
        u.int_in_range(0..=5)?
    } else {
        u.int_in_range(2..=5)?
    };
    Ok(match kind {
        0 => {
            let mut members = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                let key = *u.choose(&KEYS)?;
                at.push(Step::Key(key));
                members.push(format!("\"{key}\":{}", value(u, at, leaves, depth + 1)?));
                at.pop();
            }
            format!("{{{}}}", members.join(","))
        }
        1 => {
            let mut items = Vec::new();
            at.push(Step::Elements);
            for _ in 0..u.int_in_range(0..=3)? {
                items.push(value(u, at, leaves, depth + 1)?);
            }
            at.pop();
            format!("[{}]", items.join(","))
        }
        2 | 3 => {
            // Markers: what a destination must never see unless a rule
            // names their path. Some look like what actions parse.
            let marker = format!("QZX{}Q", leaves.len());
            let text = match u.int_in_range(0..=4)? {
                0 => format!("{marker}@example.com"),
                1 => format!("https://x.example/p/{marker}?q={marker}&utm_a={marker}#{marker}"),
                2 => format!("call {marker} at 617-555-0100"),
                3 => format!("1987-04-12{marker}"),
                _ => marker.clone(),
            };
            leaves.push((at.clone(), marker));
            serde_json::to_string(&text).unwrap_or_default()
        }
        4 => u.int_in_range(-100i64..=200)?.to_string(),
        _ => (*u.choose(&["true", "false", "null", "1.5e3", "-0.0"])?).to_owned(),
    })
}
