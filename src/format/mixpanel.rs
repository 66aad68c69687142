//! Mixpanel `/import`.

use super::out::Out;
use super::sanitized::{Sanitized, ANONYMOUS_ID, EVENT, USER_ID};

/// The members Mixpanel's format writes itself; same-named properties of
/// the event are left out.
const MIXPANEL_RESERVED: [&str; 5] = [
    "time",
    "distinct_id",
    "$insert_id",
    "$user_id",
    "$device_id",
];

/// Mixpanel: track as its event, page and screen as "Viewed NAME Page";
/// identify, group and alias are not sent (profiles are another API).
/// Needs a time.
pub(super) fn mixpanel(e: &Sanitized, out: &mut Out) -> Option<()> {
    if !(e.is("track") || e.is("page") || e.is("screen")) {
        return None;
    }
    let time = e.millis()?;
    let (user, device) = (e.raw_string(USER_ID), e.raw_string(ANONYMOUS_ID));
    out.raw("{");
    out.key("event");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else {
        out.string(&e.view_name(if e.is("page") { "Page" } else { "Screen" }));
    }
    out.key("properties");
    out.raw("{");
    out.key("time");
    out.number(time);
    out.key("distinct_id");
    out.raw(user.or(device).unwrap_or("\"\""));
    out.key("$insert_id");
    out.string(&e.dedup_id());
    for (key, value) in [("$user_id", user), ("$device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.raw(value);
        }
    }
    if let Some(props) = e.properties() {
        out.members(props, &MIXPANEL_RESERVED);
    }
    out.raw("}}");
    Some(())
}
