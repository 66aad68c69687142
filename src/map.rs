//! The data map of a policy, for a compliance review: per destination,
//! how it is reached, whether it is restricted and why, which call types
//! and event names it receives, and every field it can receive with the
//! form it arrives in; then the policy's warnings. Built from the
//! validated policy, so it says what the engine does, not what a reader
//! of the JSON might think it does.

pub mod doc;

use crate::action::ip::IpMode;
use crate::action::scan::Scan;
use crate::action::url::{Segments, UrlRule};
use crate::consent::Mode;
use crate::detect::Detector;
use crate::event::CallType;
use crate::policy::{
    Action, Baa, Connection, Destination, IdAction, List, NameRule, Names, Policy, Problem,
    ScanRule, ANY_NAME, IDENTIFIER_KEYS,
};
use doc::{Block, Doc, Line};

/// The hex SHA-256 of the policy as prepared: what `GET /health` of a
/// Worker running it reports, and what `phimask check` prints.
pub fn policy_hash(policy: &Policy) -> String {
    let prepared = crate::prepared::prepare(policy);
    let sum = &prepared[prepared.len().saturating_sub(32)..];
    sum.iter().map(|b| format!("{b:02x}")).collect()
}

/// The data map of a validated `policy` with its validation `warnings`.
pub fn data_map(policy: &Policy, warnings: &[Problem]) -> Doc {
    let mut doc = Doc {
        title: format!("phimask data map: {}", policy.environment),
        blocks: Vec::new(),
    };
    doc.push(Block::Heading(
        1,
        Line::new().text("Data map: ").code(&policy.environment),
        None,
    ));
    doc.push(Block::Para(
        Line::new()
            .text("Environment ")
            .code(&policy.environment)
            .text(", HIPAA mode ")
            .strong(if policy.hipaa { "on" } else { "off" })
            .text(" (")
            .code(format!("\"hipaa\": {}", policy.hipaa))
            .text("). Policy SHA-256 ")
            .code(policy_hash(policy))
            .text(concat!(
                ": the hash a Worker running this policy reports at GET /health. ",
                "Written by phimask ",
                env!("CARGO_PKG_VERSION"),
                " from the policy as validated."
            )),
    ));
    doc.push(Block::Para(Line::from(
        "A restricted destination receives only the fields listed for it below, in the form shown; anything else in an event is not sent to it, at any depth, in any call type. An unrestricted destination (one with a signed Business Associate Agreement) receives events unchanged, PHI included.",
    )));

    doc.push(Block::Heading(2, "Destinations".into(), None));
    doc.push(Block::Table {
        head: vec![
            "destination",
            "connection",
            "format",
            "PHI",
            "BAA",
            "call types",
            "consent",
        ],
        rows: policy
            .destinations
            .iter()
            .map(|d| {
                vec![
                    Line::new().code(&d.name),
                    connection(d).into(),
                    format_cell(d),
                    Line::new().strong(if d.restricted {
                        "restricted"
                    } else {
                        "unrestricted"
                    }),
                    baa_text(&d.baa).as_str().into(),
                    match d.connection {
                        Connection::ServerSide => Line::from(calls(d).as_str()),
                        Connection::ClientSide => Line::from("none from the edge"),
                    },
                    consent_cell(d),
                ]
            })
            .collect(),
    });

    consent_section(policy, &mut doc);

    for d in &policy.destinations {
        destination(policy, d, &mut doc);
    }

    doc.push(Block::Heading(2, "Warnings".into(), None));
    if warnings.is_empty() {
        doc.push(Block::Para("The policy validates with no warnings.".into()));
    } else {
        doc.push(Block::Bullets(
            warnings
                .iter()
                .map(|w| {
                    let line = if w.path.is_empty() {
                        Line::new()
                    } else {
                        Line::new().code(&w.path).text(": ")
                    };
                    line.text(&w.message)
                })
                .collect(),
        ));
    }
    doc
}

fn connection(d: &Destination) -> &'static str {
    match d.connection {
        Connection::ServerSide => "server-side",
        Connection::ClientSide => "client-side",
    }
}

fn format_cell(d: &Destination) -> Line {
    match d.connection {
        Connection::ServerSide => Line::new().code(d.format.name()),
        Connection::ClientSide => Line::from("none (the browser sends to it)"),
    }
}

fn calls(d: &Destination) -> String {
    let names: Vec<&str> = CallType::ALL
        .into_iter()
        .filter(|c| d.calls.has(*c))
        .map(CallType::name)
        .collect();
    if names.len() == CallType::ALL.len() {
        "all six".to_owned()
    } else if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn destination(policy: &Policy, d: &Destination, doc: &mut Doc) {
    doc.push(Block::Heading(
        2,
        Line::new().code(&d.name),
        Some(format!("destination-{}", d.name)),
    ));
    let mut facts = vec![match (&d.connection, &d.endpoint) {
        (Connection::ServerSide, Some(endpoint)) => fact("Connection")
            .text("server-side; the edge POSTs to ")
            .code(endpoint)
            .text(" with none of the visitor's request headers."),
        (Connection::ServerSide, None) => fact("Connection").text("server-side."),
        (Connection::ClientSide, _) => fact("Connection").text(
            "client-side; the visitor's browser sends to it directly and the edge never forwards to it, so nothing here filters what it gets.",
        ),
    }];
    if d.connection == Connection::ServerSide {
        facts.push(fact("Format").code(d.format.name()).text(format_text(d)));
    }
    facts.push(fact("PHI").text(restriction(policy, d)));
    facts.push(fact("BAA").text(baa_text(&d.baa)));
    // What the edge sends a client-side destination is nothing at all:
    // its call types and routing are the browser's business.
    if d.connection == Connection::ServerSide {
        let mut call_types = fact("Call types").text(calls(d));
        if !CallType::ALL.into_iter().all(|c| d.calls.has(c)) {
            call_types = call_types.text("; the others are not sent to it.");
        }
        facts.push(call_types);
        facts.push(
            fact("Routing")
                .text("an event whose ")
                .code("integrations")
                .text(" sets ")
                .code(&d.integration)
                .text(" to false (or ")
                .code("All")
                .text(" to false without naming it) is not sent to it."),
        );
    }
    if d.connection == Connection::ServerSide {
        facts.push(consent_fact(policy, d));
    }
    if d.restricted {
        facts.push(match &d.mask_scope {
            Some(scope) => fact("Masking key")
                .text("scope ")
                .code(scope)
                .text(": its masked values cannot be joined with those of other scopes."),
            None => fact("Masking key").text("the default scope (the key itself)."),
        });
    }
    doc.push(Block::Bullets(facts));
    if !d.restricted {
        return;
    }

    let names = policy.names_for(d);
    doc.push(Block::Heading(
        3,
        "Event, page and screen names".into(),
        None,
    ));
    doc.push(Block::Para(
        Line::new()
            .text("The ")
            .code("event")
            .text(" of a track and the ")
            .code("name")
            .text(" and ")
            .code("category")
            .text(" of a page or screen, as written (case-sensitive):"),
    ));
    doc.push(names_table(&names));

    doc.push(Block::Heading(3, "Fields".into(), None));
    doc.push(Block::Table {
        head: vec!["field", "governed by", "rule", "sent as"],
        rows: field_rows(policy, d),
    });
}

fn consent_cell(d: &Destination) -> Line {
    match (d.connection, d.consent.is_empty()) {
        (Connection::ClientSide, _) => Line::from("the browser's business"),
        (_, true) => Line::from("not gated"),
        (_, false) => {
            let mut line = Line::new();
            for (i, purpose) in d.consent.iter().enumerate() {
                if i > 0 {
                    line = line.text(", ");
                }
                line = line.code(purpose);
            }
            line
        }
    }
}

/// The `consent` section: mode, each purpose with its category ids, what
/// GPC denies and who needs it, and the regions' modes.
fn consent_section(policy: &Policy, doc: &mut Doc) {
    doc.push(Block::Heading(2, "Consent".into(), None));
    let Some(consent) = &policy.consent else {
        doc.push(Block::Para(Line::from(
            "No consent section: no destination is gated on the visitor's consent.",
        )));
        return;
    };
    doc.push(Block::Para(
        Line::new()
            .text("Mode ")
            .code(consent.mode.name())
            .text(match consent.mode {
                Mode::OptIn => ": a purpose the event says nothing of is denied.",
                Mode::OptOut => ": a purpose the event says nothing of is granted, unless a Global Privacy Control signal denies it.",
            })
            .text(" A purpose is denied when any of its ids is in the event and not granted (")
            .code("context.consent.categoryPreferences")
            .text(" not true, or listed in ")
            .code("context.consentManagement.deniedConsentIds")
            .text("). A gated destination receives an event only when every purpose it needs is granted. Consent is not a HIPAA authorization: a restricted destination still receives only the fields listed for it."),
    ));
    doc.push(Block::Table {
        head: vec!["purpose", "category ids", "denied by GPC", "needed by"],
        rows: consent
            .purposes
            .iter()
            .map(|p| {
                let mut ids = Line::new();
                for (i, id) in p.ids.iter().enumerate() {
                    if i > 0 {
                        ids = ids.text(", ");
                    }
                    ids = ids.code(id);
                }
                let needed: Vec<&str> = policy
                    .destinations
                    .iter()
                    .filter(|d| {
                        d.connection == Connection::ServerSide && d.consent.contains(&p.name)
                    })
                    .map(|d| d.name.as_str())
                    .collect();
                vec![
                    Line::new().code(&p.name),
                    ids,
                    Line::from(if consent.gpc.contains(&p.name) {
                        "yes"
                    } else {
                        "no"
                    }),
                    Line::from(
                        if needed.is_empty() {
                            "no destination".to_owned()
                        } else {
                            needed.join(", ")
                        }
                        .as_str(),
                    ),
                ]
            })
            .collect(),
    });
    if !consent.regions.is_empty() {
        doc.push(Block::Table {
            head: vec!["region", "mode"],
            rows: consent
                .regions
                .iter()
                .map(|(code, mode)| vec![Line::new().code(code), Line::new().code(mode.name())])
                .collect(),
        });
    }
}

/// A destination's consent gate, as a bullet.
fn consent_fact(policy: &Policy, d: &Destination) -> Line {
    if d.consent.is_empty() {
        return fact("Consent")
            .text("not gated: it receives events whatever the visitor's consent.");
    }
    let mut line = fact("Consent").text("only events whose visitor granted ");
    for (i, purpose) in d.consent.iter().enumerate() {
        if i > 0 {
            line = line.text(if i + 1 == d.consent.len() {
                " and "
            } else {
                ", "
            });
        }
        line = line.code(purpose);
    }
    let gpc: Vec<&str> = policy
        .consent
        .iter()
        .flat_map(|c| &c.gpc)
        .filter(|p| d.consent.contains(p))
        .map(String::as_str)
        .collect();
    line = line.text(" (see Consent)");
    if !gpc.is_empty() {
        line = line
            .text("; a Global Privacy Control signal stops them (")
            .text(gpc.join(", "))
            .text(")");
    }
    line.text(".")
}

/// A bullet's bold label.
fn fact(label: &str) -> Line {
    Line::new().strong(format!("{label}:")).text(" ")
}

fn format_text(d: &Destination) -> &'static str {
    use crate::format::Format;
    match d.format {
        Format::Segment => ": a Segment batch, {\"batch\": [event, …]}, of the sanitized events.",
        Format::Ndjson => ": the sanitized events, one a line.",
        Format::Amplitude => {
            ": Amplitude's HTTP V2 API body, mapped from the sanitized events only."
        }
        Format::Mixpanel => ": Mixpanel's /import body, mapped from the sanitized events only.",
        Format::Ga4 => ": GA4's Measurement Protocol body, mapped from the sanitized events only.",
        Format::Posthog => ": PostHog's batch body, mapped from the sanitized events only.",
    }
}

/// A destination's BAA as the register records it.
fn baa_text(baa: &Baa) -> String {
    match baa {
        Baa::None => "none".to_owned(),
        Baa::Undated => "yes (no date recorded)".to_owned(),
        Baa::Signed { signed, reference } => format!("signed {signed}, ref {reference}"),
    }
}

fn restriction(policy: &Policy, d: &Destination) -> String {
    match (d.restricted, policy.hipaa, d.baa.recorded()) {
        (true, true, false) => "restricted: HIPAA mode is on and no BAA is recorded (no \"baa\": true). ID masking and the lists below apply.".into(),
        (true, true, true) => "restricted: HIPAA mode is on; a BAA is recorded, but \"restrict_phi\" is not false. ID masking and the lists below apply.".into(),
        (true, false, _) => "restricted: \"restrict_phi\": true. ID masking and the lists below apply.".into(),
        (false, _, true) => "unrestricted: \"restrict_phi\": false with a signed Business Associate Agreement (\"baa\": true). It receives every event routed to it unchanged, PHI included; nothing is masked or dropped.".into(),
        (false, _, false) => "unrestricted: HIPAA mode is off (\"hipaa\": false) and no BAA is recorded. It receives every event routed to it unchanged, PHI included; nothing is masked or dropped.".into(),
    }
}

fn names_table(names: &Names) -> Block {
    let mut rows: Vec<Vec<Line>> = names
        .0
        .iter()
        .filter(|(n, _)| n != ANY_NAME)
        .map(|(n, rule)| vec![Line::new().code(n), name_rule(rule)])
        .collect();
    let other = names.0.iter().find(|(n, _)| n == ANY_NAME);
    rows.push(vec![
        Line::from("any other name (\"*\")"),
        match other {
            Some((_, rule)) => name_rule(rule),
            None => Line::new()
                .strong("sent as it is")
                .text(": no \"*\" rule, so names not listed pass unchanged"),
        },
    ]);
    Block::Table {
        head: vec!["name", "the destination receives"],
        rows,
    }
}

fn name_rule(rule: &NameRule) -> Line {
    match rule {
        NameRule::Allow => Line::from("the name as it is"),
        NameRule::Drop => Line::from("nothing: the event is not sent to it"),
        NameRule::Rename(to) => Line::new().text("renamed ").code(to),
    }
}

/// Where each list's paths sit in an event.
fn prefixes(list: List) -> &'static [&'static str] {
    match list {
        List::EventProperties => &["properties."],
        List::UserProperties => &["traits.", "context.traits."],
        List::GroupProperties => &["traits."],
        List::Context => &["context."],
        List::Integrations => &["integrations."],
    }
}

fn field_rows(policy: &Policy, d: &Destination) -> Vec<Vec<Line>> {
    let mut rows = Vec::new();
    for (key, action) in IDENTIFIER_KEYS.iter().zip(policy.identifiers.0) {
        let (rule, sent) = match action {
            IdAction::Mask => ("mask", masked(d)),
            IdAction::Allow => ("allow", "unchanged, in clear".to_owned()),
            IdAction::Drop => ("drop", "not sent".to_owned()),
        };
        rows.push(vec![
            Line::new().code(*key),
            Line::new().code("identifiers"),
            Line::new().code(rule),
            Line::from(sent.as_str()),
        ]);
    }
    rows.push(vec![
        Line::new().code("messageId"),
        Line::from("structural"),
        Line::from("kept"),
        Line::new()
            .text("always ")
            .text(masked(d))
            .text(" of its text (a number or boolean as its JSON text); an object, array or null is not sent"),
    ]);
    rows.push(vec![
        Line::new().codes(&["type", "timestamp", "originalTimestamp", "sentAt", "receivedAt", "version", "channel"]),
        Line::from("structural"),
        Line::from("kept"),
        Line::from("unchanged when of its documented form (a call type, an RFC 3339 date-time, a version from 0 to 99, browser/server/mobile); otherwise not sent"),
    ]);
    rows.push(vec![
        Line::new().codes(&["event", "name", "category"]),
        Line::new().code("events"),
        Line::from("names table"),
        Line::from("as the names table above says; in other call types not sent"),
    ]);
    rows.push(vec![
        Line::new().code("integrations.NAME"),
        Line::from("routing"),
        Line::from("booleans kept"),
        Line::from("true or false, when NAME is All or (in any case) the integration name of one of the policy's destinations; objects only as the integrations list below names them"),
    ]);
    let lists = policy.lists_for(d);
    for list in List::ALL {
        for r in lists.list(list) {
            let field = prefixes(list)
                .iter()
                .map(|p| format!("{p}{}", r.path))
                .collect::<Vec<_>>();
            let (rule, sent) = describe(policy, d, r.action);
            rows.push(vec![
                Line::new().codes(&field),
                Line::new().code(list.key()),
                Line::new().code(rule),
                Line::from(sent.as_str()),
            ]);
        }
    }
    rows.push(vec![
        Line::from("anything else"),
        Line::from("no rule"),
        Line::from(""),
        Line::new().strong("not sent"),
    ]);
    rows
}

fn masked(d: &Destination) -> String {
    match &d.mask_scope {
        Some(scope) => format!("HMAC-SHA256 hex, key scope \"{scope}\""),
        None => "HMAC-SHA256 hex".to_owned(),
    }
}

/// The rule as the policy writes it, and what the destination receives.
fn describe(policy: &Policy, d: &Destination, action: Action) -> (String, String) {
    match action {
        Action::Allow { scan } => {
            let scan = match scan {
                ScanRule::Default => policy.scan,
                ScanRule::Off => None,
                ScanRule::On(scan) => Some(scan),
            };
            let shape = "unchanged";
            match scan {
                None => ("allow".into(), shape.into()),
                Some(scan) => (
                    format!("allow, scan {}", detectors(scan)),
                    format!("{shape}, its strings (keys included) scanned: {}", on_match(scan)),
                ),
            }
        }
        Action::Mask(None) => ("mask".into(), format!("{}; containers keep their shape, every scalar masked", masked(d))),
        Action::Mask(Some(n)) => (
            format!("mask, normalize {}", n.name()),
            format!("{} of the value normalized as {} (one that normalizes to nothing is not sent)", masked(d), n.name()),
        ),
        Action::Drop => ("drop".into(), "not sent (with everything under it)".into()),
        Action::Url(i) => (
            "url".into(),
            policy.urls.get(usize::from(i)).map_or_else(|| "not sent".into(), url_form),
        ),
        Action::Ip(IpMode::Truncate) => (
            "ip".into(),
            "the IP address truncated (IPv4 a.b.c.0, IPv6 its first 48 bits); anything else not sent".into(),
        ),
        Action::Ip(IpMode::Zero) => (
            "ip, mode zero".into(),
            "0.0.0.0 or :: in place of the address; anything else not sent".into(),
        ),
        Action::Zip3 => (
            "zip3".into(),
            "a US ZIP code's first three digits (000 for the restricted ZIP3s); anything else not sent".into(),
        ),
        Action::Year => (
            "year".into(),
            format!("a date's year only; a year 90 or more years before the event's time as \"{}\"; anything else not sent", crate::action::year::AGGREGATED),
        ),
        Action::Age => (
            "age".into(),
            "whole years, 90 and over as \"90+\"; anything else not sent".into(),
        ),
        Action::Shape(shape) => (
            "default context".into(),
            format!("unchanged when a string of its shape: {}; anything else not sent", shape.describe()),
        ),
    }
}

fn detectors(scan: Scan) -> String {
    Detector::ALL
        .into_iter()
        .filter(|d| scan.detectors.has(*d))
        .map(Detector::name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn on_match(scan: Scan) -> String {
    use crate::action::scan::OnMatch;
    let what = detectors(scan);
    match scan.on_match {
        OnMatch::Redact => format!("each match of {what} replaced by its name ([email], …)"),
        OnMatch::Mask => format!("each match of {what} replaced by its masked value"),
        OnMatch::Drop => format!("a string with a match of {what} is not sent"),
    }
}

/// What a `url` rule keeps, in words: the data map's line for it.
fn url_form(rule: &UrlRule) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let paths = list(rule.paths.iter().map(|p| p.join("/")).collect());
    let segments = match &rule.segments {
        Segments::None => "none: every other segment becomes :seg, or :id when it looks like an identifier".to_owned(),
        Segments::Words(words) => format!(
            "{}; every other segment becomes :seg, or :id when it looks like an identifier",
            list(words.clone())
        ),
        Segments::Any => "\"*\": every segment that does not look like an identifier (a heuristic: names and conditions in paths are sent)".to_owned(),
    };
    format!(
        "the URL reduced: scheme, host (not sent at all when a label looks like an identifier or the host is an IP address) and port; user info and fragment removed; paths fitting a template sent as the template: {paths}; path segments sent as written: {segments}; query parameters kept: {} (each only when neither name nor value looks like an identifier or a date); anything that is not an http(s) URL, a path or a query is not sent",
        list(rule.query.clone())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_policy;

    fn map_of(text: &str) -> (String, String) {
        let (policy, report) = validate_policy(text);
        let policy = policy.unwrap_or_else(|| panic!("invalid: {:?}", report.errors));
        let doc = data_map(&policy, &report.warnings);
        (doc.markdown(), doc.html())
    }

    #[test]
    fn every_destination_and_rule_is_in_the_map() {
        let (md, html) = map_of(include_str!("../policies/production.json"));
        for name in ["amplitude", "mixpanel", "warehouse"] {
            assert!(md.contains(&format!("## `{name}`")), "{name}");
            assert!(
                html.contains(&format!("id=\"destination-{name}\"")),
                "{name}"
            );
        }
        assert!(md.contains("`properties.email`"));
        assert!(md.contains("`traits.birthday`, `context.traits.birthday`"));
        assert!(md.contains("mask, normalize email"));
        // What the url rule keeps: its templates, vocabulary and parameters.
        let url = md
            .lines()
            .find(|l| l.starts_with("| `context.page.url`"))
            .unwrap_or_default();
        for part in [
            "/services/:service",
            "services, patients, appointments",
            "every other segment becomes :seg",
            r"utm\_source, utm\_medium, utm\_campaign",
        ] {
            assert!(url.contains(part), "{part}: {url}");
        }
        // mixpanel's own `value: mask` overrides the environment's allow.
        let mixpanel = md.split("## `mixpanel`").nth(1).unwrap_or_default();
        let row = mixpanel
            .lines()
            .find(|l| l.starts_with("| `properties.value`"));
        assert!(row.is_some_and(|r| r.contains("`mask`")), "{row:?}");
        // The unrestricted warehouse has no field table: everything goes.
        let warehouse = md.split("## `warehouse`").nth(1).unwrap_or_default();
        let warehouse = warehouse.split("\n## ").next().unwrap_or_default();
        assert!(warehouse.contains("unrestricted"));
        assert!(!warehouse.contains("### Fields"));
    }

    #[test]
    fn a_client_side_destination_gets_nothing_from_the_edge() {
        let (md, _) = map_of(
            r#"{"version":1,"environment":"e","hipaa":true,
              "destinations":{"pixel":{"connection":"client-side","restrict_phi":false,"baa":true},
                              "a":{"connection":"server-side","endpoint":"https://a.example/","calls":["track"]}}}"#,
        );
        let pixel = md.split("## `pixel`").nth(1).unwrap_or_default();
        let pixel = pixel.split("\n## ").next().unwrap_or_default();
        assert!(pixel.contains("client-side; the visitor's browser sends to it directly"));
        assert!(!pixel.contains("Call types") && !pixel.contains("Routing"));
        assert!(md.contains("| `pixel` | client-side | none (the browser sends to it) | **unrestricted** | yes (no date recorded) | none from the edge |"));
        assert!(md.contains("| `a` | server-side | `segment` | **restricted** | none | track |"));
        assert!(md.contains("**Call types:** track; the others are not sent to it."));
    }

    #[test]
    fn the_hash_is_the_prepared_policys() {
        let text = include_str!("../policies/production.json");
        let prepared = crate::prepare_policy(text).unwrap_or_default();
        let hex: String = prepared[prepared.len() - 32..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (md, _) = map_of(text);
        assert!(md.contains(&format!("`{hex}`")));
    }

    #[test]
    fn hostile_names_stay_text() {
        let policy = r#"{"version":1,"environment":"prod<script>alert(1)</script>","hipaa":true,
          "allowlists":{"event_properties":{"a|b`c<img src=x onerror=alert(1)>":"allow"}},
          "events":{"<b>Viewed</b> | x":{"rename":"</td><script>"},"*":"drop"},
          "destinations":{"d":{"connection":"server-side","endpoint":"https://x.example/?a=<b>"}}}"#;
        let (md, html) = map_of(policy);
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<b>"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // A `|` in a rule's path does not split the Markdown row.
        let row = md
            .lines()
            .find(|l| l.contains("onerror"))
            .unwrap_or_default();
        assert_eq!(row.matches(" | ").count(), 3, "{row}");
    }

    #[test]
    fn consent_purposes_ids_gpc_regions_and_who_needs_them() {
        let policy = r#"{"version":1,"environment":"p","hipaa":true,"events":{"*":"drop"},
          "destinations":{"ads":{"connection":"server-side","endpoint":"https://ads.example/","consent":["advertising"]},
                          "stats":{"connection":"server-side","endpoint":"https://stats.example/"}},
          "consent":{"mode":"opt-out","categories":{"analytics":["C0002"],"advertising":["C0004","<b>Ads</b>"]},
                     "gpc":["advertising"],"regions":{"US-WA":{"mode":"opt-in"}}}}"#;
        let (md, html) = map_of(policy);
        let row = |start: &str| {
            md.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            row("| `advertising`"),
            "| `advertising` | `C0004`, `<b>Ads</b>` | yes | ads |"
        );
        assert_eq!(
            row("| `analytics`"),
            "| `analytics` | `C0002` | no | no destination |"
        );
        assert_eq!(row("| `US-WA`"), "| `US-WA` | `opt-in` |");
        assert!(md.contains("Mode `opt-out`: a purpose the event says nothing of is granted"));
        assert!(row("| `ads` |").ends_with("| `advertising` |"));
        assert!(row("| `stats` |").ends_with("| not gated |"));
        assert!(md.contains("- **Consent:** only events whose visitor granted `advertising`"));
        assert!(md.contains("- **Consent:** not gated"));
        assert!(!html.contains("<b>Ads") && html.contains("&lt;b&gt;Ads"));
        let (md, _) = map_of(
            r#"{"version":1,"environment":"p","hipaa":true,"events":{"*":"drop"},
              "destinations":{"a":{"connection":"server-side","endpoint":"https://a.example/"}}}"#,
        );
        assert!(md.contains("No consent section: no destination is gated"));
    }
}
