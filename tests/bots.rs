//! Bots: the documented user-agent list (hits, and real browsers that are
//! no bots), the policy's `bots` modes over every call type and entry
//! point, batches mixing bots and people, a client's own `context.bot`
//! (never trusted under `flag`, an ordinary field otherwise), the
//! request's signals, prepared policies and validation messages.
//!
//! PHI no detector sees ("Jane Doe", "HIV positive") rides in the events:
//! a dropped bot's event must reach no destination, and `context.bot` must
//! never carry it.

mod common;

use phimask::bots::{self, Agent, Mode, Why};
use phimask::process::Processed;
use phimask::report::Reason;
use phimask::{Call, Sanitizer, Signals};
use serde_json::{json, Value};

const KEY: &[u8] = b"bots-test-key-0123456789abcdef-0123";

const PHI: &str = "Jane Doe HIV positive";

/// Destinations: a restricted one whose `context` list names `bot`, one
/// that does not, a BAA warehouse, one gated on consent and a client-side
/// one.
fn policy(mode: Option<&str>) -> Value {
    let mut p = json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": { "plan": "allow" },
            "context": { "locale": "allow" }
        },
        "destinations": {
            "flags": {"connection": "server-side", "endpoint": "https://flags.example/",
                      "allowlists": { "context": { "bot": "allow" } }},
            "plain": {"connection": "server-side", "endpoint": "https://plain.example/"},
            "vault": {"connection": "server-side", "endpoint": "https://vault.example/",
                      "restrict_phi": false, "baa": true},
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/", "consent": ["advertising"]},
            "browser": {"connection": "client-side", "restrict_phi": false, "baa": true}
        },
        "consent": { "mode": "opt-out", "categories": { "advertising": ["C0004"] } }
    });
    if let Some(mode) = mode {
        p["bots"] = json!(mode);
    }
    p
}

fn sanitizer(mode: Option<&str>) -> Sanitizer {
    Sanitizer::new(&policy(mode).to_string(), Some(KEY)).expect("valid policy")
}

const SERVER: [&str; 4] = ["flags", "plain", "vault", "ads"];

/// One event of each call type, PHI in its properties or traits, with
/// `context` as given.
fn events(context: Option<Value>) -> Vec<Value> {
    let mut out = vec![
        json!({"type": "track", "event": "Booked", "userId": "u1", "properties": {"plan": "pro", "note": PHI}}),
        json!({"type": "identify", "userId": "u1", "traits": {"name": PHI}}),
        json!({"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": PHI}}),
        json!({"type": "page", "userId": "u1", "name": "Home", "properties": {"note": PHI}}),
        json!({"type": "screen", "userId": "u1", "name": "Home", "properties": {"note": PHI}}),
        json!({"type": "alias", "userId": "u1", "previousId": "anon-1"}),
    ];
    if let Some(c) = context {
        for e in &mut out {
            e["context"] = c.clone();
        }
    }
    out
}

fn batch(events: &[Value]) -> String {
    json!({ "batch": events }).to_string()
}

/// Every event each destination is sent, parsed.
fn sent(done: &Processed, destination: &str) -> Vec<Value> {
    let d = common::delivery(done, destination);
    d.bodies
        .iter()
        .flat_map(|b| {
            let v: Value = serde_json::from_str(b).expect("a JSON body");
            v["batch"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

const BOT_AGENTS: [(&str, &str); 30] = [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot"),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36", "bingbot"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", "applebot"),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "duckduckbot"),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "yandexbot"),
    ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", "baiduspider"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "ahrefsbot"),
    ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", "semrushbot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", "gptbot"),
    ("CCBot/2.0 (https://commoncrawl.org/faq/)", "ccbot"),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", "claudebot"),
    ("Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)", "bytespider"),
    ("Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)", "petalbot"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "facebookexternalhit"),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "pingdom"),
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "uptimerobot"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 StatusCake", "statuscake"),
    ("Site24x7", "site24x7"),
    ("NewRelicPinger/1.0 (2145011)", "newrelicpinger"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Datadog/Synthetics", "datadog/synthetics"),
    ("Checkly/1.0 (https://www.checklyhq.com)", "checkly"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.33 Safari/537.36", "headlesschrome"),
    ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", "phantomjs"),
    ("Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse", "lighthouse"),
    ("curl/8.4.0", "curl/"),
    ("Wget/1.21.4", "wget/"),
    ("python-requests/2.31.0", "python-requests/"),
    ("Go-http-client/2.0", "go-http-client/"),
    ("Mozilla/5.0 (compatible; Better Uptime Bot Chrome/119.0.0.0)", "bot"),
];

/// Real browsers and in-app WebViews: no bots.
const PEOPLE: [&str; 30] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.40.93;FBBV/613010316;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
    "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/468.1.0.56.78;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone15,2; iOS 17_5; en_US; en; scale=3.00; 1179x2556; 612302418)",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A.240605.024; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.71 Mobile Safari/537.36 musical_ly_2023501030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/35.1.3 ByteLocale/en ByteFullLocale/en Region/US BytedanceWebview/d8a21c6",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 LinkedInApp/9.29.8962",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/322.0.648915268 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.0.0.43 (like Safari/8618.2.12.10.5, panda)",
    "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; Cubot KingKong 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; CUBOT P80 Build/SP1A.210812.016) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 12; zh-cn; 2201123C Build/SKQ1.211006.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.127 Mobile Safari/537.36 XiaoMi/MiuiBrowser/17.5.40205",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 DuckDuckGo/5",
];

#[test]
fn the_list_finds_bots_by_their_token() {
    for (ua, token) in BOT_AGENTS {
        assert_eq!(bots::token(ua.as_bytes()), Some(token), "{ua}");
        // Case does not matter.
        assert_eq!(
            bots::token(ua.to_uppercase().as_bytes()),
            Some(token),
            "{ua}"
        );
    }
}

#[test]
fn browsers_and_in_app_webviews_are_no_bots() {
    for ua in PEOPLE {
        assert_eq!(bots::token(ua.as_bytes()), None, "{ua}");
    }
    // Generic words only as words, or the end of a camel-case word.
    for ua in [
        "CUBOT",
        "Cubot",
        "cubot_note",
        "Abbot",
        "robotics",
        "Spiderman",
        "Botswana",
        "curly/1",
        "xcurl/1",
    ] {
        assert_eq!(bots::token(ua.as_bytes()), None, "{ua}");
    }
    for (ua, token) in [
        ("my bot", "bot"),
        ("NewCrawler/1", "crawler"),
        ("a-spider", "spider"),
        ("ROBOT", "robot"),
    ] {
        assert_eq!(bots::token(ua.as_bytes()), Some(token), "{ua}");
    }
}

#[test]
fn every_token_of_the_list_matches_itself_as_a_product() {
    for (token, _) in bots::TOKENS {
        let ua = format!("Mozilla/5.0 (compatible; {token}1.0)");
        let ua = if token.ends_with('/') {
            ua
        } else {
            format!("Mozilla/5.0 (compatible; {token}/1.0)")
        };
        assert_eq!(bots::token(ua.as_bytes()), Some(*token), "{ua}");
        assert_eq!(
            bots::token(format!("x{token}").as_bytes()).filter(|t| t == token),
            None,
            "x{token}"
        );
    }
}

#[test]
fn only_the_first_kilobyte_of_a_user_agent_is_read() {
    // The documented cut, written out: a test that read the constant
    // would pass whatever the constant became.
    const KILOBYTE: usize = 1024;
    let padded = format!("{} curl/8.4.0", "a".repeat(KILOBYTE));
    assert_eq!(bots::token(padded.as_bytes()), None);
    // A token whose last byte is the 1,024th is read; one byte later, not.
    let edge = format!("{} curl/", "a".repeat(KILOBYTE - 6));
    assert_eq!(edge.len(), KILOBYTE);
    assert_eq!(bots::token(edge.as_bytes()), Some("curl/"));
    let past = format!("{} curl/", "a".repeat(KILOBYTE - 5));
    assert_eq!(bots::token(past.as_bytes()), None);
    let s = sanitizer(Some("drop"));
    let done = common::batch_from(&s, &batch(&events(None)), &common::agent(&padded));
    assert_eq!((done.bots, sent(&done, "plain").len()), (0, 6));
    // In an event's context too.
    let context = json!({ "userAgent": padded });
    let done = common::batch_from(&s, &batch(&events(Some(context))), &Agent::default());
    assert_eq!((done.bots, sent(&done, "plain").len()), (0, 6));
    let near = format!("{} curl/8", "a".repeat(KILOBYTE - 10));
    let done = common::batch_from(
        &s,
        &batch(&events(Some(json!({ "userAgent": near })))),
        &Agent::default(),
    );
    assert_eq!((done.bots, sent(&done, "plain").len()), (6, 0));
}

#[test]
fn drop_sends_a_bots_events_nowhere_and_accepts_them() {
    let s = sanitizer(Some("drop"));
    let all = events(Some(json!({ "locale": "en-US" })));
    for why in [
        common::agent("curl/8.4.0"),
        Agent {
            score: Some(5),
            ..Agent::default()
        },
        Agent {
            score: Some(29),
            ..Agent::default()
        },
        Agent {
            verified: true,
            ..Agent::default()
        },
    ] {
        let done = common::batch_from(&s, &batch(&all), &why);
        assert_eq!(
            (done.accepted, done.rejected.len(), done.bots),
            (6, 0, 6),
            "{why:?}"
        );
        for d in &done.deliveries {
            assert!(
                d.bodies.is_empty() && d.sent == 0,
                "{}: {why:?}",
                d.destination
            );
            assert_eq!(d.consent, 0, "bots are decided before consent");
        }
    }
    // A human request: everything as before.
    for ok in [
        Agent::default(),
        Agent {
            score: Some(30),
            ..Agent::default()
        },
        common::agent(PEOPLE[0]),
    ] {
        let done = common::batch_from(&s, &batch(&all), &ok);
        assert_eq!((done.accepted, done.bots), (6, 0));
        assert_eq!(sent(&done, "plain").len(), 6);
        assert_eq!(sent(&done, "vault").len(), 6);
    }
}

#[test]
fn drop_applies_to_every_call_type_and_entry_point() {
    let s = sanitizer(Some("drop"));
    let bot = common::agent("Mozilla/5.0 (compatible; Googlebot/2.1)");
    for e in events(None) {
        let text = e.to_string();
        for d in SERVER {
            let (out, _) = s
                .sanitize_json_from(&text, d, &Signals::default(), &bot)
                .expect("a valid event");
            assert_eq!(out, None, "{d}: {text}");
            // A person's event is sent (the consent gate is open: opt-out).
            let (out, _) = s
                .sanitize_json_from(&text, d, &Signals::default(), &common::agent(PEOPLE[3]))
                .expect("a valid event");
            assert!(out.is_some(), "{d}: {text}");
        }
        let explained = s.explain_from(&text, &Signals::default(), &bot).unwrap();
        assert_eq!(explained.len(), 5);
        for x in &explained {
            assert_eq!(x.reason, Reason::Bot, "{}", x.destination);
            assert_eq!(x.reason.code(), "bot");
            assert!(!x.reason.sent());
            assert_eq!(x.bot, Some(Why::UserAgent("googlebot")));
        }
        // Its own call: a single-event request is accepted and sent nowhere.
        let call = Call::parse(e["type"].as_str().unwrap()).unwrap();
        let done = s
            .process_request_from(text.as_bytes(), call, usize::MAX, &Signals::default(), &bot)
            .unwrap();
        assert_eq!((done.accepted, done.bots), (1, 1));
        assert!(done.deliveries.iter().all(|d| d.bodies.is_empty()));
    }
}

#[test]
fn explain_says_why_without_the_user_agent() {
    let s = sanitizer(Some("drop"));
    let e = events(Some(json!({ "userAgent": "Wget/1.21 Jane-Doe-HIV" })))[0].to_string();
    let x = s
        .explain_from(&e, &Signals::default(), &Agent::default())
        .unwrap();
    assert_eq!(x[0].bot, Some(Why::EventUserAgent("wget/")));
    assert_eq!(
        (x[0].bot.unwrap().by(), x[0].bot.unwrap().token()),
        ("contextUserAgent", Some("wget/"))
    );
    let score = Agent {
        score: Some(3),
        ..Agent::default()
    };
    let x = s
        .explain_from(&events(None)[0].to_string(), &Signals::default(), &score)
        .unwrap();
    assert_eq!(x[0].bot, Some(Why::Score(3)));
    assert_eq!(x[0].bot.unwrap().by(), "botScore");
    let verified = Agent {
        verified: true,
        ..Agent::default()
    };
    let x = s
        .explain_from(&events(None)[0].to_string(), &Signals::default(), &verified)
        .unwrap();
    assert_eq!(x[0].bot.unwrap().by(), "verifiedBot");
    // Nothing of the agent's text in what explain can show.
    let shown = format!(
        "{:?}",
        s.explain_from(&e, &Signals::default(), &common::agent("curl/8 Jane"))
            .unwrap()
    );
    assert!(!shown.contains("Jane") && !shown.contains("HIV"), "{shown}");
    // A person's event: no verdict, sent as before.
    let x = s
        .explain_from(
            &events(None)[0].to_string(),
            &Signals::default(),
            &common::agent(PEOPLE[5]),
        )
        .unwrap();
    assert!(x.iter().all(|x| x.bot.is_none()));
    assert_eq!(x[0].reason, Reason::Sanitized);
}

#[test]
fn allow_looks_for_no_bots() {
    for mode in [None, Some("allow")] {
        let s = sanitizer(mode);
        let all = events(Some(json!({ "userAgent": "curl/8.4.0", "bot": PHI })));
        let done = common::batch_from(
            &s,
            &batch(&all),
            &Agent {
                score: Some(1),
                verified: true,
                user_agent: Some("Googlebot/2.1".into()),
            },
        );
        assert_eq!((done.accepted, done.bots), (6, 0));
        assert_eq!(sent(&done, "plain").len(), 6);
        // The client's context.bot is an ordinary field: the list that
        // names it lets it through, the others do not.
        for e in sent(&done, "flags") {
            assert_eq!(e["context"]["bot"], json!(PHI));
        }
        for e in sent(&done, "plain") {
            assert!(e["context"].get("bot").is_none(), "{e}");
        }
        let x = s
            .explain_from(
                &all[0].to_string(),
                &Signals::default(),
                &common::agent("curl/8"),
            )
            .unwrap();
        assert!(x.iter().all(|x| x.bot.is_none() && x.reason != Reason::Bot));
    }
}

#[test]
fn flag_marks_a_bots_events_for_the_lists() {
    let s = sanitizer(Some("flag"));
    let all = events(Some(json!({ "locale": "en-US" })));
    let done = common::batch_from(
        &s,
        &batch(&all),
        &common::agent("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0"),
    );
    assert_eq!((done.accepted, done.bots), (6, 6));
    let flagged = sent(&done, "flags");
    assert_eq!(flagged.len(), 6);
    for e in &flagged {
        assert_eq!(
            e["context"],
            json!({ "locale": "en-US", "bot": true }),
            "{e}"
        );
    }
    // A list that does not name `bot`: the event, without the flag.
    for e in sent(&done, "plain") {
        assert_eq!(e["context"], json!({ "locale": "en-US" }), "{e}");
    }
    // The BAA warehouse gets the event whole, flag included.
    for e in sent(&done, "vault") {
        assert_eq!(e["context"]["bot"], json!(true), "{e}");
    }
    // An event without context gets one.
    let done = common::batch_from(
        &s,
        &batch(&events(None)),
        &Agent {
            score: Some(2),
            ..Agent::default()
        },
    );
    for e in sent(&done, "flags") {
        assert_eq!(e["context"], json!({ "bot": true }), "{e}");
    }
    // Every call type, one event at a time, each entry point.
    for e in events(None) {
        let text = e.to_string();
        let (out, _) = s
            .sanitize_json_from(
                &text,
                "flags",
                &Signals::default(),
                &common::agent("curl/8"),
            )
            .unwrap();
        let out: Value = serde_json::from_str(&out.expect("sent")).unwrap();
        assert_eq!(out["context"]["bot"], json!(true), "{text}");
        let x = s
            .explain_from(&text, &Signals::default(), &common::agent("curl/8"))
            .unwrap();
        assert!(x
            .iter()
            .all(|x| x.bot == Some(Why::UserAgent("curl/")) && x.reason != Reason::Bot));
        let (out, _) = s
            .sanitize_json_from(
                &text,
                "flags",
                &Signals::default(),
                &common::agent(PEOPLE[0]),
            )
            .unwrap();
        let out: Value = serde_json::from_str(&out.expect("sent")).unwrap();
        assert!(out["context"].get("bot").is_none(), "{out}");
    }
}

/// What a client may put in `context.bot`, PHI included.
fn forgeries() -> Vec<Value> {
    vec![
        json!(false),
        json!(true),
        json!(PHI),
        json!({ "name": PHI, "is": false }),
        json!([PHI, false]),
        json!(null),
        json!(0),
    ]
}

#[test]
fn under_flag_a_clients_context_bot_never_reaches_a_destination() {
    let s = sanitizer(Some("flag"));
    for forged in forgeries() {
        for (who, bot) in [
            (common::agent(PEOPLE[1]), false),
            (common::agent("python-requests/2.31"), true),
        ] {
            let context = json!({ "locale": "en-US", "bot": forged });
            let done = common::batch_from(&s, &batch(&events(Some(context.clone()))), &who);
            assert_eq!(done.bots, if bot { 6 } else { 0 });
            for d in SERVER {
                for e in sent(&done, d) {
                    let text = e.to_string();
                    // The BAA warehouse takes PHI in properties; never in context.bot.
                    assert!(!e["context"].to_string().contains("Jane"), "{d}: {text}");
                    let got = e["context"].get("bot");
                    let expected = (bot && (d == "flags" || d == "vault")).then_some(json!(true));
                    assert_eq!(
                        got,
                        expected.as_ref(),
                        "{d}: forged {forged} for bot={bot}: {text}"
                    );
                }
            }
            // The same through the single-event entry point.
            let text = events(Some(context))[0].to_string();
            let (out, _) = s
                .sanitize_json_from(&text, "flags", &Signals::default(), &who)
                .unwrap();
            let out: Value = serde_json::from_str(&out.unwrap()).unwrap();
            assert_eq!(
                out["context"].get("bot"),
                bot.then_some(json!(true)).as_ref(),
                "{forged}"
            );
        }
    }
    // A key spelt with escapes is the same key.
    let text = r#"{"type":"track","event":"A","userId":"u","context":{"b\u006ft":"Jane Doe HIV positive"}}"#;
    let (out, _) = s
        .sanitize_json_from(text, "vault", &Signals::default(), &Agent::default())
        .unwrap();
    assert!(!out.unwrap().contains("Jane"));
    // A context that is not an object: replaced for a bot, left for a person.
    let text = r#"{"type":"track","event":"A","userId":"u","context":"Jane Doe HIV positive"}"#;
    let (out, _) = s
        .sanitize_json_from(text, "vault", &Signals::default(), &common::agent("curl/8"))
        .unwrap();
    let out: Value = serde_json::from_str(&out.unwrap()).unwrap();
    assert_eq!(out["context"], json!({ "bot": true }));
}

#[test]
fn under_drop_a_clients_context_bot_is_an_ordinary_field() {
    let s = sanitizer(Some("drop"));
    for forged in forgeries() {
        let context = json!({ "bot": forged });
        // A forged `false` does not save a bot's event.
        let done = common::batch_from(
            &s,
            &batch(&events(Some(context.clone()))),
            &common::agent("curl/8"),
        );
        assert!(done.deliveries.iter().all(|d| d.bodies.is_empty()));
        // A person's event: the lists govern it like any context field.
        let done = common::batch_from(&s, &batch(&events(Some(context))), &Agent::default());
        for e in sent(&done, "plain") {
            assert!(e["context"].get("bot").is_none(), "{e}");
        }
        for e in sent(&done, "flags") {
            assert_eq!(e["context"]["bot"], forged, "{e}");
        }
    }
}

#[test]
fn a_batch_mixing_bots_and_people_drops_or_flags_only_the_bots() {
    let human = |i: usize| {
        json!({"type": "track", "event": "Booked", "userId": format!("u{i}"),
        "properties": {"plan": "pro", "note": PHI}, "context": {"userAgent": PEOPLE[i % PEOPLE.len()]}})
    };
    let robot = |i: usize| {
        json!({"type": "track", "event": "Booked", "userId": format!("b{i}"),
        "properties": {"plan": "bot-plan", "note": PHI},
        "context": {"userAgent": BOT_AGENTS[i % BOT_AGENTS.len()].0, "bot": false}})
    };
    let mut all = Vec::new();
    for i in 0..40 {
        all.push(if i % 3 == 0 { robot(i) } else { human(i) });
    }
    // And one that is no event at all: refused, bots or not.
    all.push(json!({"type": "track", "userId": "u"}));
    let body = batch(&all);
    let bots = all
        .iter()
        .filter(|e| e["context"]["bot"] == json!(false))
        .count();

    let drop = common::batch_from(&sanitizer(Some("drop")), &body, &Agent::default());
    assert_eq!(
        (drop.accepted, drop.rejected.len(), drop.bots),
        (40, 1, bots)
    );
    for d in SERVER {
        let got = sent(&drop, d);
        assert_eq!(got.len(), 40 - bots, "{d}");
        assert!(
            got.iter()
                .all(|e| e["properties"]["plan"] != json!("bot-plan")),
            "{d}"
        );
        let indexes: Vec<usize> = common::delivery(&drop, d).events.concat();
        assert!(indexes.iter().all(|i| i % 3 != 0), "{d}: {indexes:?}");
    }

    let flag = common::batch_from(&sanitizer(Some("flag")), &body, &Agent::default());
    assert_eq!((flag.accepted, flag.bots), (40, bots));
    let got = sent(&flag, "flags");
    assert_eq!(got.len(), 40);
    for e in got {
        let is_bot = e["properties"]["plan"] == json!("bot-plan");
        assert_eq!(
            e["context"].get("bot"),
            is_bot.then_some(json!(true)).as_ref(),
            "{e}"
        );
    }

    let allow = common::batch_from(&sanitizer(None), &body, &Agent::default());
    assert_eq!((allow.accepted, allow.bots), (40, 0));
    assert_eq!(sent(&allow, "plain").len(), 40);
}

#[test]
fn bots_are_decided_before_routing_and_consent() {
    let s = sanitizer(Some("drop"));
    // Denied advertising and routed away from "plain": still "bot" for all.
    let e = json!({"type": "track", "event": "A", "userId": "u",
        "integrations": {"plain": false},
        "context": {"consent": {"categoryPreferences": {"C0004": false}}}});
    let x = s
        .explain_from(
            &e.to_string(),
            &Signals::default(),
            &common::agent("curl/8"),
        )
        .unwrap();
    assert!(x.iter().all(|x| x.reason == Reason::Bot), "{x:?}");
    let done = common::batch_from(&s, &batch(&[e]), &common::agent("curl/8"));
    assert!(done
        .deliveries
        .iter()
        .all(|d| d.consent == 0 && d.sent == 0));
}

#[test]
fn the_agent_checks_its_score() {
    assert_eq!(Agent::score_of(1), Ok(1));
    assert_eq!(Agent::score_of(99), Ok(99));
    for bad in [0, 100, -1, 256, i64::MAX] {
        assert!(Agent::score_of(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Agent {
            score: Some(29),
            ..Agent::default()
        }
        .judge(),
        Some(Why::Score(29))
    );
    assert_eq!(
        Agent {
            score: Some(30),
            ..Agent::default()
        }
        .judge(),
        None
    );
    assert_eq!(Agent::default().judge(), None);
    // A verified bot is a bot whatever its score.
    let v = Agent {
        score: Some(99),
        verified: true,
        user_agent: Some(PEOPLE[0].into()),
    };
    assert_eq!(v.judge(), Some(Why::Verified));
}

#[test]
fn policy_validation_names_the_bots_key() {
    for (value, message) in [
        (json!("Drop"), "must be \"drop\", \"flag\" or \"allow\""),
        (json!("DROP"), "must be \"drop\", \"flag\" or \"allow\""),
        (json!(" drop"), "must be \"drop\", \"flag\" or \"allow\""),
        (json!("block"), "must be \"drop\", \"flag\" or \"allow\""),
        (json!(""), "must be \"drop\", \"flag\" or \"allow\""),
        (
            json!(true),
            "must be \"drop\", \"flag\" or \"allow\", not a boolean",
        ),
        (
            json!(1),
            "must be \"drop\", \"flag\" or \"allow\", not a number",
        ),
        (
            json!(null),
            "must be \"drop\", \"flag\" or \"allow\", not null",
        ),
        (
            json!(["drop"]),
            "must be \"drop\", \"flag\" or \"allow\", not an array",
        ),
        (
            json!({"mode": "drop"}),
            "must be \"drop\", \"flag\" or \"allow\", not an object",
        ),
    ] {
        let mut p = policy(None);
        p["bots"] = value.clone();
        let (ok, report) = phimask::validate_policy(&p.to_string());
        assert!(ok.is_none(), "{value}");
        assert_eq!(report.errors.len(), 1, "{value}: {:?}", report.errors);
        assert_eq!(report.errors[0].path, "bots");
        assert_eq!(report.errors[0].message, message, "{value}");
        assert!(Sanitizer::new(&p.to_string(), Some(KEY)).is_err());
    }
    for (value, mode) in [
        (Some("drop"), Mode::Drop),
        (Some("flag"), Mode::Flag),
        (Some("allow"), Mode::Allow),
        (None, Mode::Allow),
    ] {
        let (ok, report) = phimask::validate_policy(&policy(value).to_string());
        assert_eq!(ok.map(|p| p.bots), Some(mode), "{:?}", report.errors);
    }
}

#[test]
fn flag_warns_of_each_native_format_that_cannot_show_it() {
    let mut p = policy(Some("flag"));
    p["destinations"]["amp"] = json!({"connection": "server-side", "format": "amplitude",
        "endpoint": "https://api2.amplitude.com/2/httpapi"});
    p["destinations"]["g"] = json!({"connection": "server-side", "format": "ga4",
        "endpoint": "https://www.google-analytics.com/mp/collect"});
    p["destinations"]["lines"] = json!({"connection": "server-side", "format": "ndjson",
        "endpoint": "https://lines.example/"});
    let warned = |p: &Value| -> Vec<(String, String)> {
        let (ok, report) = phimask::validate_policy(&p.to_string());
        assert!(ok.is_some(), "{:?}", report.errors);
        report
            .warnings
            .into_iter()
            .filter(|w| w.message.contains("sends no context"))
            .map(|w| (w.path, w.message))
            .collect()
    };
    let flagged = warned(&p);
    let paths: Vec<&str> = flagged.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(paths, ["destinations.amp.format", "destinations.g.format"]);
    assert!(
        flagged[0]
            .1
            .starts_with("the amplitude format sends no context"),
        "{}",
        flagged[0].1
    );
    for mode in ["drop", "allow"] {
        p["bots"] = json!(mode);
        assert_eq!(warned(&p), [], "{mode}");
    }
}

#[test]
fn an_allowed_context_bot_warns_unless_phimask_owns_it() {
    let owned = |mode: Option<&str>, p: &mut Value| -> Vec<String> {
        match mode {
            Some(m) => p["bots"] = json!(m),
            None => drop(p.as_object_mut().map(|o| o.remove("bots"))),
        }
        let (ok, report) = phimask::validate_policy(&p.to_string());
        assert!(ok.is_some(), "{:?}", report.errors);
        report
            .warnings
            .into_iter()
            .filter(|w| {
                w.message
                    .contains("context.bot is whatever the client sends")
            })
            .map(|w| w.path)
            .collect()
    };
    let mut p = policy(None);
    // The environment's list, a restricted destination's, and a masked
    // one (no warning: a mask sends no text).
    p["allowlists"]["context"]["bot"] = json!("allow");
    p["destinations"]["masked"] = json!({"connection": "server-side", "endpoint": "https://m.example/",
        "allowlists": {"context": {"bot": "mask"}}});
    for mode in [None, Some("allow"), Some("drop")] {
        assert_eq!(
            owned(mode, &mut p),
            [
                "allowlists.context.bot",
                "destinations.flags.allowlists.context.bot"
            ],
            "{mode:?}"
        );
    }
    assert_eq!(owned(Some("flag"), &mut p), Vec::<String>::new());
}

#[test]
fn prepared_policies_carry_the_mode() {
    for (mode, expected) in [
        ("drop", Mode::Drop),
        ("flag", Mode::Flag),
        ("allow", Mode::Allow),
    ] {
        let prepared = phimask::prepare_policy(&policy(Some(mode)).to_string()).unwrap();
        assert_eq!(
            phimask::prepared::load(&prepared).map(|p| p.bots),
            Some(expected)
        );
        let s = Sanitizer::from_prepared(&prepared, Some(KEY)).unwrap();
        let done = common::batch_from(&s, &batch(&events(None)), &common::agent("curl/8"));
        let plain = sent(&done, "plain").len();
        let flags = sent(&done, "flags");
        match expected {
            Mode::Drop => assert_eq!((done.bots, plain), (6, 0)),
            Mode::Flag => {
                assert_eq!((done.bots, plain), (6, 6));
                assert!(flags.iter().all(|e| e["context"]["bot"] == json!(true)));
            }
            Mode::Allow => assert_eq!((done.bots, plain), (0, 6)),
        }
    }
    // The mode is the policy's last byte before the checksum: any other
    // value there is refused, never read as some mode.
    let prepared = phimask::prepare_policy(&policy(Some("drop")).to_string()).unwrap();
    let body = &prepared[..prepared.len() - 32];
    assert_eq!(body.last(), Some(&2));
    for byte in [3u8, 4, 0x7f, 0xff] {
        let mut edited = body.to_vec();
        *edited.last_mut().unwrap() = byte;
        let sum = <sha2::Sha256 as sha2::Digest>::digest(&edited);
        edited.extend_from_slice(&sum);
        assert!(phimask::prepared::load(&edited).is_none(), "{byte}");
        assert!(
            Sanitizer::from_prepared(&edited, Some(KEY)).is_err(),
            "{byte}"
        );
    }
    // A policy prepared by the previous format (no mode) is refused.
    let mut old = body.to_vec();
    old.pop();
    old[7] = 3;
    let sum = <sha2::Sha256 as sha2::Digest>::digest(&old);
    old.extend_from_slice(&sum);
    assert!(phimask::prepared::load(&old).is_none());
}

#[test]
fn a_user_agent_in_context_that_is_not_a_string_says_nothing() {
    let s = sanitizer(Some("drop"));
    for ua in [
        json!(["curl/8"]),
        json!({"ua": "curl/8"}),
        json!(8),
        json!(null),
        json!(true),
    ] {
        let done = common::batch_from(
            &s,
            &batch(&events(Some(json!({ "userAgent": ua })))),
            &Agent::default(),
        );
        assert_eq!((done.bots, sent(&done, "plain").len()), (0, 6), "{ua}");
    }
    // An escaped key and value are read as decoded.
    let text =
        r#"{"type":"track","event":"A","userId":"u","context":{"user\u0041gent":"\u0063url/8"}}"#;
    let (out, _) = s
        .sanitize_json_from(text, "plain", &Signals::default(), &Agent::default())
        .unwrap();
    assert_eq!(out, None);
}

/// docs/policy.md lists the whole list: every token and generic word,
/// and nothing that is not one.
#[test]
fn the_policy_page_lists_every_token() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policy.md"))
        .expect("docs/policy.md");
    let start = doc
        .find("### The user-agent list")
        .expect("the list's heading");
    let end = start
        + doc[start..]
            .find("\nThe generic words")
            .expect("the list's end");
    let tokens: Vec<&str> = doc[start..end]
        .lines()
        .filter(|l| l.starts_with("- "))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .collect();
    let mut expected: Vec<&str> = bots::TOKENS.iter().map(|(t, _)| *t).collect();
    expected.extend(bots::GENERIC);
    for t in &expected {
        assert!(tokens.contains(t), "{t} is not in docs/policy.md");
    }
    for t in &tokens {
        assert!(
            expected.contains(t),
            "{t} is in docs/policy.md, not in the list"
        );
    }
    assert_eq!(tokens.len(), expected.len(), "each once");
}

/// The command: `--user-agent` and `--bot-score` judge as the request's
/// signals do; a bad score is refused before anything is read.
#[test]
fn the_command_takes_the_bot_signals() {
    let dir = std::env::temp_dir().join(format!("phimask-bots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.json");
    std::fs::write(&policy, policy_text("drop")).unwrap();
    let event = dir.join("event.json");
    std::fs::write(&event, events(None)[0].to_string()).unwrap();
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phimask"))
            .args(args)
            .env("PHI_MASKING_KEY", std::str::from_utf8(KEY).unwrap())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("phimask");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (p, e) = (policy.to_str().unwrap(), event.to_str().unwrap());
    let (code, out, _) = cli(
        &[
            "explain",
            "--json",
            "-p",
            p,
            "--user-agent",
            "curl/8.4.0 Jane",
            e,
        ],
        "",
    );
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plain"]["code"], json!("bot"));
    assert_eq!(
        v["plain"]["bot"],
        json!({"by": "userAgent", "token": "curl/"})
    );
    assert!(!out.contains("Jane"));
    let (code, out, _) = cli(&["explain", "-p", p, "--bot-score", "12", e], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("bot          by botScore (score 12)"), "{out}");
    let (code, out, _) = cli(&["explain", "--json", "-p", p, "--bot-score", "30", e], "");
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plain"]["code"], json!("sanitized"));
    for bad in ["0", "100", "5.5", "-1", "x", ""] {
        let flag = format!("--bot-score={bad}");
        let (code, out, err) = cli(&["explain", "-p", p, &flag, e], "");
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            out.is_empty() && err.contains("must be an integer from 1 to 99"),
            "{bad}: {err}"
        );
    }
    // sanitize: a bot's lines are not written; a person's are.
    let lines = events(None)
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let (code, out, _) = cli(
        &[
            "sanitize",
            "-q",
            "-p",
            p,
            "-d",
            "plain",
            "--user-agent",
            "Wget/1.21",
        ],
        &lines,
    );
    assert_eq!((code, out.lines().count()), (Some(0), 0));
    let (code, out, _) = cli(
        &[
            "sanitize",
            "-q",
            "-p",
            p,
            "-d",
            "plain",
            "--user-agent",
            PEOPLE[2],
        ],
        &lines,
    );
    assert_eq!((code, out.lines().count()), (Some(0), 6));
    let forwarded: String = events(Some(json!({ "userAgent": "Googlebot/2.1" })))
        .iter()
        .map(|e| e.to_string() + "\n")
        .collect();
    let (code, out, _) = cli(&["sanitize", "-q", "-p", p, "-d", "vault"], &forwarded);
    assert_eq!((code, out.lines().count()), (Some(0), 0));
    std::fs::remove_dir_all(&dir).ok();
}

fn policy_text(mode: &str) -> String {
    policy(Some(mode)).to_string()
}
