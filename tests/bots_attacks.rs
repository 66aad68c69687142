//! Attacks on the policy's `bots`, as a hostile client writes them: PHI
//! smuggled into `context.bot` (a batch's shared context, escaped key
//! spellings, keys written twice, contexts that are not objects), bot
//! user agents hidden behind JSON escapes or a batch's shared context,
//! and real people's user agents (smart TVs, consoles, in-app browsers,
//! patient-portal apps) that must never be dropped.
//!
//! PHI no detector sees ("Jane Doe HIV positive") rides in every forgery:
//! a restricted destination must never receive it, whatever the mode.

mod common;

use phimask::bots::{self, Agent};
use phimask::process::Processed;
use phimask::Sanitizer;
use serde_json::{json, Value};

const KEY: &[u8] = b"bots-attacks-key-0123456789abcdef-012";
const PHI: &str = "Jane Doe HIV positive";

/// `flags` lists `context.bot`, `plain` lists no `context.bot`, `vault`
/// is under a BAA (receives everything, PHI included, but for what
/// phimask owns).
fn sanitizer(mode: &str) -> Sanitizer {
    let p = json!({
        "version": 1, "environment": "t", "hipaa": true, "bots": mode,
        "allowlists": { "event_properties": { "plan": "allow" }, "context": { "locale": "allow" } },
        "destinations": {
            "flags": {"connection": "server-side", "endpoint": "https://flags.example/",
                      "allowlists": { "context": { "bot": "allow" } }},
            "plain": {"connection": "server-side", "endpoint": "https://plain.example/"},
            "vault": {"connection": "server-side", "endpoint": "https://vault.example/",
                      "restrict_phi": false, "baa": true}
        }
    });
    Sanitizer::new(&p.to_string(), Some(KEY)).expect("valid policy")
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// Each body a destination is sent, as text, and its events parsed.
fn sent(done: &Processed, destination: &str) -> (String, Vec<Value>) {
    let d = common::delivery(done, destination);
    let text = d.bodies.join("\n");
    let events = d
        .bodies
        .iter()
        .flat_map(|b| {
            let v: Value = serde_json::from_str(b).expect("a JSON body");
            v["batch"].as_array().cloned().unwrap_or_default()
        })
        .collect();
    (text, events)
}

/// Bodies that try to put PHI in `context.bot`, by every spelling and
/// place a batch offers. Each is one event of user `u`.
fn forgeries() -> Vec<(&'static str, String)> {
    let e = r#""type":"track","event":"A","userId":"u""#;
    vec![
        (
            "own",
            format!(r#"{{"batch":[{{{e},"context":{{"bot":"{PHI}"}}}}]}}"#),
        ),
        (
            "escaped key",
            format!(r#"{{"batch":[{{{e},"context":{{"b\u006ft":"{PHI}"}}}}]}}"#),
        ),
        (
            "escaped, all of it",
            format!(r#"{{"batch":[{{{e},"context":{{"\u0062\u006F\u0074":"{PHI}"}}}}]}}"#),
        ),
        (
            "escaped context key",
            format!(r#"{{"batch":[{{{e},"c\u006fntext":{{"bot":"{PHI}"}}}}]}}"#),
        ),
        (
            "nested object",
            format!(
                r#"{{"batch":[{{{e},"context":{{"bot":{{"bot":{{"name":"{PHI}"}},"is":false}}}}}}]}}"#
            ),
        ),
        (
            "array",
            format!(r#"{{"batch":[{{{e},"context":{{"bot":["{PHI}",false]}}}}]}}"#),
        ),
        (
            "shared context",
            format!(r#"{{"batch":[{{{e}}}],"context":{{"bot":"{PHI}"}}}}"#),
        ),
        (
            "shared, own context beside",
            format!(
                r#"{{"batch":[{{{e},"context":{{"locale":"en"}}}}],"context":{{"bot":"{PHI}"}}}}"#
            ),
        ),
        (
            "shared, escaped",
            format!(
                r#"{{"batch":[{{{e},"context":{{"locale":"en"}}}}],"context":{{"b\u006ft":"{PHI}"}}}}"#
            ),
        ),
        (
            "shared under own false",
            format!(
                r#"{{"batch":[{{{e},"context":{{"bot":false}}}}],"context":{{"bot":"{PHI}"}}}}"#
            ),
        ),
        (
            "shared, own context a string",
            format!(r#"{{"batch":[{{{e},"context":"x"}}],"context":{{"bot":"{PHI}"}}}}"#),
        ),
        (
            "with a bot user agent",
            format!(r#"{{"batch":[{{{e},"context":{{"userAgent":"curl/8","bot":"{PHI}"}}}}]}}"#),
        ),
    ]
}

#[test]
fn under_flag_no_spelling_of_context_bot_carries_phi_anywhere() {
    let s = sanitizer("flag");
    for (what, body) in forgeries() {
        for who in [common::agent(CHROME), common::agent("python-requests/2.31")] {
            let done = common::batch_from(&s, &body, &who);
            assert_eq!((done.accepted, done.rejected.len()), (1, 0), "{what}");
            let bot = who.judge().is_some() || body.contains("curl/8");
            for d in ["flags", "plain", "vault"] {
                let (text, events) = sent(&done, d);
                // Not even the BAA warehouse: phimask owns context.bot.
                assert!(!text.contains("Jane"), "{what} to {d}: {text}");
                assert_eq!(events.len(), 1, "{what} to {d}");
                let got = events[0]["context"].get("bot").cloned();
                let expected = (bot && d != "plain").then_some(json!(true));
                assert_eq!(got, expected, "{what} to {d}: {text}");
            }
        }
    }
}

#[test]
fn under_flag_a_key_written_twice_is_refused_not_guessed() {
    let s = sanitizer("flag");
    let e = r#""type":"track","event":"A","userId":"u""#;
    for body in [
        format!(r#"{{"batch":[{{{e},"context":{{"bot":true,"b\u006ft":"{PHI}"}}}}]}}"#),
        format!(r#"{{"batch":[{{{e},"context":{{"bot":"{PHI}","bot":true}}}}]}}"#),
        format!(
            r#"{{"batch":[{{{e},"context":{{"locale":"en"}},"c\u006fntext":{{"bot":"{PHI}"}}}}]}}"#
        ),
        format!(
            r#"{{"batch":[{{{e},"context":{{"userAgent":"Mozilla","userAgen\u0074":"curl/8"}}}}]}}"#
        ),
    ] {
        let done = common::batch_from(&s, &body, &common::agent(CHROME));
        assert_eq!(done.accepted, 0, "{body}");
        assert!(
            done.deliveries.iter().all(|d| d.bodies.is_empty()),
            "{body}"
        );
    }
}

#[test]
fn under_drop_a_bot_with_forged_context_reaches_no_destination_at_all() {
    let s = sanitizer("drop");
    for (what, body) in forgeries() {
        let done = common::batch_from(&s, &body, &common::agent("curl/8.4.0"));
        assert_eq!((done.accepted, done.bots), (1, 1), "{what}");
        assert!(
            done.deliveries.iter().all(|d| d.bodies.is_empty()),
            "{what}"
        );
    }
}

#[test]
fn a_bots_user_agent_hidden_by_escapes_or_a_shared_context_is_still_a_bots() {
    let s = sanitizer("drop");
    let e = r#""type":"track","event":"A","userId":"u""#;
    for body in [
        format!(r#"{{"batch":[{{{e},"context":{{"userAgent":"Googleb\u006ft/2.1"}}}}]}}"#),
        format!(
            r#"{{"batch":[{{{e},"context":{{"userAgent":"\u0063\u0075\u0072\u006c/8.4.0"}}}}]}}"#
        ),
        format!(r#"{{"batch":[{{{e},"context":{{"userAgent":"HEADLESSCHROME/120"}}}}]}}"#),
        format!(r#"{{"batch":[{{{e},"context":{{"userAgent":"Mozilla/5.0\u0000curl/8"}}}}]}}"#),
        format!(
            r#"{{"batch":[{{{e},"context":{{"locale":"en"}}}}],"context":{{"userAgent":"curl/8"}}}}"#
        ),
        format!(r#"{{"batch":[{{{e},"c\u006fntext":{{"userAgent":"curl/8"}}}}]}}"#),
        format!(r#"{{"batch":[{{{e},"context":{{"user\u0041gent":"curl/8"}}}}]}}"#),
    ] {
        let done = common::batch_from(&s, &body, &common::agent(CHROME));
        assert_eq!((done.accepted, done.bots), (1, 1), "{body}");
        assert!(
            done.deliveries.iter().all(|d| d.bodies.is_empty()),
            "{body}"
        );
    }
    // The kilobyte is of the decoded text: 1,000 escaped letters (6,000
    // bytes as written) leave room for the token.
    let padded = format!(
        r#"{{"batch":[{{{e},"context":{{"userAgent":"{} curl/8"}}}}]}}"#,
        r"\u0061".repeat(1000)
    );
    let done = common::batch_from(&s, &padded, &Agent::default());
    assert_eq!(done.bots, 1);
}

#[test]
fn a_user_agent_that_is_no_string_is_no_signal_and_breaks_nothing() {
    let s = sanitizer("drop");
    let e = r#""type":"track","event":"A","userId":"u""#;
    for ua in [r#"["curl/8"]"#, r#"{"a":"curl/8"}"#, "null", "8", "true"] {
        let body = format!(r#"{{"batch":[{{{e},"context":{{"userAgent":{ua}}}}}]}}"#);
        let done = common::batch_from(&s, &body, &Agent::default());
        assert_eq!((done.accepted, done.bots), (1, 0), "{ua}");
        assert_eq!(sent(&done, "plain").1.len(), 1, "{ua}");
    }
    // A person's own user agent wins over a bot's in the batch's shared context.
    let body = format!(
        r#"{{"batch":[{{{e},"context":{{"userAgent":"{CHROME}"}}}}],"context":{{"userAgent":"curl/8"}}}}"#
    );
    let done = common::batch_from(&s, &body, &Agent::default());
    assert_eq!((done.accepted, done.bots), (1, 0));
    // A huge one, 30 KB of escapes: read, cut to its first kilobyte, no bot.
    let body = format!(
        r#"{{"batch":[{{{e},"context":{{"userAgent":"{}curl/8"}}}}]}}"#,
        r"\u00e9".repeat(5000)
    );
    let done = common::batch_from(&s, &body, &Agent::default());
    assert_eq!((done.accepted, done.bots), (1, 0));
}

/// Real people's user agents: smart TVs, consoles, e-readers, in-app
/// browsers, desktop apps, patient-portal and native app clients.
const PEOPLE: [&str; 24] = [
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/2.2 Chrome/85.0.4183.93 TV Safari/537.36",
    "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
    "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36 Edge/44.18363.8131",
    "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393",
    "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/83.0.4103.106 Safari/537.36 CrKey/1.54.250320",
    "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/110.0.5481.153 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB ATV3 Build/PTT1.190515.001.S52) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.104 Mobile Safari/537.36",
    "Roku/DVP-12.5 (12.5.0.4179-46)",
    "Mozilla/5.0 (X11; U; Linux armv7l like Android; en-us) AppleWebKit/531.2+ (KHTML, like Gecko) Version/5.0 Safari/533.2+ Kindle/3.0+",
    "Mozilla/5.0 (Linux; Android 13; KFRAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.2 like Chrome/120.0.6099.230 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.15",
    "Mozilla/5.0 (Linux; Android 13; SM-A515F Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 [Pinterest/Android]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Line/13.21.0",
    "Mozilla/5.0 (Linux; Android 12; M2101K6G Build/SKQ1.210908.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 WhatsApp/2.23.25.83",
    "Mozilla/5.0 (Linux; U; Android 11; en-US; RMX2030 Build/RKQ1.201217.002) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Teams/1.6.00.1381 Chrome/98.0.4758.141 Electron/17.4.1 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.56 Electron/28.0.0 Safari/537.36 Sonic Slack_SSB/4.36.140",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1 Ddg/17.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 SE 2.X MetaSr 1.0",
    "Mozilla/5.0 (Linux; Android 12; ANA-NX9; HMSCore 6.11.0.302) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.88 HuaweiBrowser/14.0.2.311 Mobile Safari/537.36",
    "Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)",
    "MyChart/1234 CFNetwork/1410.0.3 Darwin/22.6.0",
    "okhttp/4.12.0",
];

#[test]
fn people_on_tvs_consoles_and_in_app_browsers_are_never_dropped() {
    let s = sanitizer("drop");
    for ua in PEOPLE {
        assert_eq!(bots::token(ua.as_bytes()), None, "{ua}");
        // By the request's header, and by the event's own context.userAgent.
        let body = json!({"batch": [{"type": "track", "event": "A", "userId": "u", "properties": {"plan": "pro"},
                                     "context": {"userAgent": ua}}]})
        .to_string();
        for agent in [common::agent(ua), Agent::default()] {
            let done = common::batch_from(&s, &body, &agent);
            assert_eq!((done.accepted, done.bots), (1, 0), "{ua}");
            assert_eq!(sent(&done, "plain").1.len(), 1, "{ua}");
        }
    }
}

/// The list's rule as documented, written plainly: at each word's start,
/// the first token of the list that starts there (and ends a word, unless
/// it ends in `/`), else a generic word the word is or ends with in camel
/// case.
fn reference(ua: &[u8]) -> Option<&'static str> {
    let ua = &ua[..ua.len().min(bots::MAX_USER_AGENT_BYTES)];
    let lower = ua.to_ascii_lowercase();
    let word = |b: &u8| b.is_ascii_alphanumeric();
    let mut start = 0;
    while start < lower.len() {
        if !word(&lower[start]) || (start > 0 && word(&lower[start - 1])) {
            start += 1;
            continue;
        }
        let end = lower[start..]
            .iter()
            .position(|b| !word(b))
            .map_or(lower.len(), |n| start + n);
        for (t, _) in bots::TOKENS {
            let t = t.as_bytes();
            let ends = t.ends_with(b"/") || lower.get(start + t.len()).is_none_or(|b| !word(b));
            if lower[start..].starts_with(t) && ends {
                return Some(
                    bots::TOKENS
                        .iter()
                        .find(|(x, _)| x.as_bytes() == t)
                        .unwrap()
                        .0,
                );
            }
        }
        for g in bots::GENERIC {
            let (w, l) = (&ua[start..end], &lower[start..end]);
            let at = l.len().wrapping_sub(g.len());
            if l == g.as_bytes()
                || (l.len() > g.len()
                    && l.ends_with(g.as_bytes())
                    && w[at].is_ascii_uppercase()
                    && w[at - 1].is_ascii_lowercase())
            {
                return Some(g);
            }
        }
        start = end;
    }
    None
}

#[test]
fn a_user_agent_of_many_short_words_is_judged_by_the_documented_rule() {
    // Hostile shapes (hundreds of one-letter words, token prefixes, every
    // token glued to every other) and real ones: the indexed lookup finds
    // exactly what the plain rule finds.
    let mut cases: Vec<String> = vec![
        "a ".repeat(600),
        "googlebo ".repeat(120),
        "curl".repeat(300),
        format!("{} Googlebot/2.1", "a ".repeat(505)),
        format!("{} Googlebot/2.1", "a ".repeat(515)),
    ];
    cases.extend(PEOPLE.iter().map(|s| s.to_string()));
    let tokens: Vec<&str> = bots::TOKENS.iter().map(|(t, _)| *t).collect();
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens[(i + 1) % tokens.len()];
        for sep in ["", " ", "-", "/", "x", "1", "\u{e9}"] {
            cases.push(format!("{t}{sep}{next}"));
            cases.push(format!("{}{sep}{t}", next.to_uppercase()));
        }
    }
    // Pseudo-random words from fragments of the list (a fixed seed).
    let fragments = [
        "bot", "Bot", "goo", "gle", "curl", "/", " ", "-", "a", "Spider", "x", "slurp", "java/",
        "CU",
    ];
    let mut seed: u64 = 0x5eed_b075;
    for _ in 0..4000 {
        let mut ua = String::new();
        for _ in 0..8 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ua.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
        }
        cases.push(ua);
    }
    for ua in &cases {
        assert_eq!(
            bots::token(ua.as_bytes()),
            reference(ua.as_bytes()),
            "{ua:?}"
        );
    }
}
