//! `phimask explain`: for each destination, whether the event is sent and
//! why, and the paths dropped, masked and transformed; the values it
//! receives only with `--show-values`.

use std::path::PathBuf;

use phimask::consent::Decision;
use phimask::report::Explanation;
use phimask::report::Reason;
use phimask::Error;
use serde_json::{json, Map, Value};

use crate::failure::{Failure, Outcome, IO, REFUSED};
use crate::input::{read_text, shown};
use crate::key;
use crate::output::emit;

pub struct Options {
    pub policy: PathBuf,
    pub event: PathBuf,
    pub show_values: bool,
    pub destination: Option<String>,
    pub json: bool,
    /// The request's signals (GPC, region) to explain for.
    pub signals: phimask::Signals,
    /// The request's user agent and bot score, for the policy's `bots`.
    pub agent: phimask::Agent,
    pub key_file: Option<PathBuf>,
}

/// Masks with this when no key is given and no value is shown: which
/// paths are masked does not depend on the key.
const PATHS_ONLY_KEY: [u8; 32] = [0x5a; 32];

pub fn run(o: &Options) -> Outcome {
    let (policy, _) = crate::input::policy(&o.policy)?;
    if let Some(d) = &o.destination {
        crate::input::destination(&policy, d, false)?;
    }
    let key = match key::load(o.key_file.as_deref())? {
        Some(k) => Some(k),
        None if o.show_values => None,
        None => Some(PATHS_ONLY_KEY.to_vec()),
    };
    let sanitizer = key::sanitizer(&policy, key.as_deref())?;
    let text = read_text(&o.event, "event", phimask::MAX_EVENT_BYTES)?;
    let refused = |e: Error| {
        Failure::new(
            REFUSED,
            format!(
                "event {}: refused, sent to no destination: {e}",
                shown(&o.event)
            ),
        )
    };
    let all: Vec<Explanation> = sanitizer
        .explain_from(&text, &o.signals, &o.agent)
        .map_err(refused)?
        .into_iter()
        .filter(|e| o.destination.as_ref().is_none_or(|d| d == &e.destination))
        .collect();
    let sent = |e: &Explanation| -> Result<Option<String>, Failure> {
        if !o.show_values || !e.reason.sent() {
            return Ok(None);
        }
        sanitizer
            .sanitize_json_from(&text, &e.destination, &o.signals, &o.agent)
            .map(|(out, _)| out)
            .map_err(refused)
    };
    let mut out = String::new();
    if o.json {
        let mut map = Map::new();
        for e in &all {
            let mut v = json!({
                "sent": e.reason.sent(),
                "reason": e.reason.text(),
                "code": e.reason.code(),
                "dropped": e.paths.dropped,
                "masked": e.paths.masked,
                "transformed": e.paths.transformed,
            });
            if !e.consent.is_empty() {
                v["consent"] = e.consent.iter().map(consent_json).collect();
            }
            if let Some(why) = e.bot {
                v["bot"] = bot_json(why);
            }
            if o.show_values {
                let event = match sent(e)? {
                    Some(s) => serde_json::from_str(&s).map_err(|_| {
                        Failure::new(IO, "the engine wrote an event that is not JSON")
                    })?,
                    None => Value::Null,
                };
                v["event"] = event;
            }
            map.insert(e.destination.clone(), v);
        }
        out = format!("{:#}\n", Value::Object(map));
    } else {
        for e in &all {
            out.push_str(&format!("{}: {}\n", e.destination, e.reason.text()));
            let lists = [
                ("dropped", &e.paths.dropped),
                ("masked", &e.paths.masked),
                ("transformed", &e.paths.transformed),
            ];
            if e.reason.sent()
                && lists.iter().all(|(_, l)| l.is_empty())
                && e.reason == Reason::Sanitized
            {
                out.push_str("  nothing dropped, masked or transformed\n");
            }
            for (what, paths) in lists {
                if !paths.is_empty() {
                    out.push_str(&format!("  {what:<12} {}\n", paths.join(", ")));
                }
            }
            for decision in &e.consent {
                out.push_str(&format!("  {:<12} {}\n", "consent", consent_line(decision)));
            }
            if let Some(why) = e.bot {
                out.push_str(&format!("  {:<12} {}\n", "bot", bot_line(why)));
            }
            if let Some(s) = sent(e)? {
                out.push_str(&format!("  {:<12} {s}\n", "sends"));
            }
        }
    }
    emit(&out, None)?;
    Ok(0)
}

/// One purpose's decision as JSON: `{purpose, granted, by, id?, region?}`.
fn consent_json(v: &Decision) -> Value {
    let mut o = json!({ "purpose": v.purpose, "granted": v.granted, "by": v.by.name() });
    if let Some(id) = &v.id {
        o["id"] = json!(id);
    }
    if let Some(region) = &v.region {
        o["region"] = json!(region);
    }
    o
}

/// Why the event is a bot's, as JSON: `{by, token?, score?}` (never the
/// user agent).
fn bot_json(why: phimask::bots::Why) -> Value {
    let mut o = json!({ "by": why.by() });
    if let Some(token) = why.token() {
        o["token"] = json!(token);
    }
    if let Some(score) = why.score() {
        o["score"] = json!(score);
    }
    o
}

/// Why the event is a bot's, as a line: `by userAgent (token "curl/")`.
fn bot_line(why: phimask::bots::Why) -> String {
    let mut line = format!("by {}", why.by());
    if let Some(token) = why.token() {
        line.push_str(&format!(" (token \"{token}\")"));
    }
    if let Some(score) = why.score() {
        line.push_str(&format!(" (score {score})"));
    }
    line
}

/// One purpose's decision as a line: `advertising denied by gpc`.
fn consent_line(v: &Decision) -> String {
    let mut line = format!(
        "{} {} by {}",
        v.purpose,
        if v.granted { "granted" } else { "denied" },
        v.by.name()
    );
    if let Some(id) = &v.id {
        line.push_str(&format!(" ({id})"));
    }
    if let Some(region) = &v.region {
        line.push_str(&format!(" (region {region})"));
    }
    line
}
