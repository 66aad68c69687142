//! GA4 Measurement Protocol (`/mp/collect`).

use std::borrow::Cow;

use super::out::Out;
use super::sanitized::{decode, Field, Sanitized, ANONYMOUS_ID, EVENT, NAME, USER_ID};
use crate::json::Kind;

/// GA4's own event names (automatically collected and reserved for the
/// Measurement Protocol): an event of the same name is renamed.
const GA4_RESERVED_NAMES: [&str; 44] = [
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_install",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "click",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "file_download",
    "first_open",
    "first_visit",
    "form_start",
    "form_submit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "page_view",
    "screen_view",
    "scroll",
    "session_start",
    "user_engagement",
    "video_complete",
    "video_progress",
    "video_start",
    "view_search_results",
    "session_start_with_rollout",
];

/// Name prefixes GA4 keeps for itself (`gtag.` cannot survive the
/// character rule, which turns `.` into `_`).
const GA4_RESERVED_PREFIXES: [&str; 4] = ["_", "firebase_", "ga_", "google_"];

/// Longest event or parameter name, and parameter string value, GA4 takes.
const GA4_NAME_CHARS: usize = 40;
const GA4_VALUE_CHARS: usize = 100;
/// Most parameters an event may carry.
const GA4_PARAMS: usize = 25;

/// A name within GA4's rules: characters other than ASCII letters, digits
/// and `_` become `_`; a name that does not start with a letter, starts
/// with a reserved prefix or (for events) is reserved gets `prefix`; the
/// result is cut to 40 characters.
pub fn ga4_name(raw: &str, prefix: &str, event: bool) -> String {
    ga4_name_cow(raw, prefix, event).into_owned()
}

/// [`ga4_name`], borrowing `raw` when it is within the rules already (the
/// usual case: `appointment_type`).
pub(super) fn ga4_name_cow<'r>(raw: &'r str, prefix: &str, event: bool) -> Cow<'r, str> {
    let bytes = raw.as_bytes();
    let plain = bytes.len() <= GA4_NAME_CHARS
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !GA4_RESERVED_PREFIXES.iter().any(|p| raw.starts_with(p))
        && !(event && GA4_RESERVED_NAMES.contains(&raw));
    if plain {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(ga4_name_owned(raw, prefix, event))
}

pub(super) fn ga4_name_owned(raw: &str, prefix: &str, event: bool) -> String {
    // One `_` per character that is not an ASCII letter or digit (its
    // UTF-8 continuation bytes are skipped).
    let mut name = String::with_capacity(prefix.len() + raw.len());
    name.extend(raw.bytes().filter(|b| b & 0xc0 != 0x80).map(|b| {
        if b.is_ascii_alphanumeric() {
            char::from(b)
        } else {
            '_'
        }
    }));
    // All ASCII now: compared without a lower-cased copy.
    let bytes = name.as_bytes();
    let reserved = GA4_RESERVED_PREFIXES.iter().any(|p| {
        bytes
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
    }) || (event
        && GA4_RESERVED_NAMES
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n)));
    if reserved || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, prefix);
    }
    name.truncate(GA4_NAME_CHARS);
    name
}

/// GA4: track as its event (name within GA4's rules), page as
/// `page_viewed` and screen as `screen_viewed` (GA4 reserves `page_view`
/// and `screen_view`) with the view's name as `page_name` /
/// `screen_name`; identify, group and alias are not sent. Needs a client
/// ID. Returns the members every event of its request shares.
pub(super) fn ga4<'a>(e: &Sanitized<'a>, out: &mut Out) -> Option<String> {
    let (name, view) = if e.is("track") {
        (ga4_name(&e.string(EVENT)?, "e_", true), None)
    } else if e.is("page") {
        ("page_viewed".to_owned(), Some("page_name"))
    } else if e.is("screen") {
        ("screen_viewed".to_owned(), Some("screen_name"))
    } else {
        return None;
    };
    let user = e.raw_string(USER_ID);
    let client = e.raw_string(ANONYMOUS_ID).or(user)?;
    let mut shared = Out(String::new());
    shared.key("client_id");
    shared.raw(client);
    if let Some(user) = user {
        shared.key("user_id");
        shared.raw(user);
    }
    out.raw("{");
    out.key("name");
    out.string(&name);
    out.key("params");
    out.raw("{");
    let mut written: Vec<Cow<'a, str>> = Vec::new();
    let mut param = |out: &mut Out, key: Cow<'a, str>, f: &Field<'a>| {
        let fits = match f.kind {
            // Characters, not bytes: UTF-8 continuation bytes do not count.
            Kind::String => {
                f.value.len() <= GA4_VALUE_CHARS + 2
                    || decode(f.value).is_some_and(|s| {
                        s.bytes().filter(|b| b & 0xc0 != 0x80).count() <= GA4_VALUE_CHARS
                    })
            }
            Kind::Number => true,
            _ => false,
        };
        if !fits || written.contains(&key) || written.len() == GA4_PARAMS {
            return;
        }
        out.key(&key);
        out.raw(f.value);
        written.push(key);
    };
    if let (Some(view), Some(f)) = (view, e.get(NAME)) {
        param(out, Cow::Borrowed(view), f);
    }
    for f in e.properties().unwrap_or_default() {
        let key = match &f.key {
            Cow::Borrowed(raw) => std::str::from_utf8(raw)
                .ok()
                .map(|k| ga4_name_cow(k, "p_", false)),
            Cow::Owned(raw) => std::str::from_utf8(raw)
                .ok()
                .map(|k| Cow::Owned(ga4_name(k, "p_", false))),
        };
        if let Some(key) = key {
            param(out, key, f);
        }
    }
    out.raw("}");
    if let Some(ms) = e.millis() {
        out.key("timestamp_micros");
        out.number(ms.saturating_mul(1000));
    }
    out.raw("}");
    Some(shared.0)
}
