//! PostHog `/batch/`.

use super::out::Out;
use super::sanitized::{Sanitized, ANONYMOUS_ID, EVENT, NAME, TIMESTAMP, USER_ID};
use crate::structural::epoch_millis;

/// PostHog: track as its event, page as `$pageview`, screen as `$screen`
/// (with `$screen_name`), identify as `$identify` setting the traits;
/// group and alias are not sent. Needs a user or anonymous ID.
pub(super) fn posthog(e: &Sanitized, out: &mut Out) -> Option<()> {
    let distinct = e.raw_string(USER_ID).or(e.raw_string(ANONYMOUS_ID));
    out.raw("{");
    out.key("event");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else if e.is("page") {
        out.string("$pageview");
    } else if e.is("screen") {
        out.string("$screen");
    } else if e.is("identify") {
        out.string("$identify");
    } else {
        return None;
    }
    out.key("distinct_id");
    out.raw(distinct?);
    out.key("properties");
    out.raw("{");
    if let Some(props) = e.properties().filter(|_| !e.is("identify")) {
        out.members(props, &["$set", "$screen_name"]);
    }
    if e.is("screen") {
        if let Some(name) = e.raw_string(NAME) {
            out.key("$screen_name");
            out.raw(name);
        }
    }
    if let Some(traits) = e.traits().filter(|_| e.is("identify")) {
        out.key("$set");
        out.raw(traits);
    }
    out.raw("}");
    if let Some(ts) = e.get(TIMESTAMP).filter(|f| {
        f.text()
            .is_some_and(|t| epoch_millis(t.as_bytes()).is_some())
    }) {
        out.key("timestamp");
        out.raw(ts.value);
    }
    out.raw("}");
    Some(())
}
