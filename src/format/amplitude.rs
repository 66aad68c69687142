//! Amplitude HTTP V2 (`/2/httpapi`).

use super::out::Out;
use super::sanitized::{Sanitized, ANONYMOUS_ID, EVENT, MESSAGE_ID, PROPERTIES, USER_ID};

/// Amplitude: track as its event, page and screen as "Viewed NAME Page",
/// identify as `$identify` setting the traits; group and alias are not
/// sent (Amplitude takes them on other APIs). Needs a user or device ID.
pub(super) fn amplitude(e: &Sanitized, out: &mut Out) -> Option<()> {
    let (user, device) = (e.raw_string(USER_ID), e.raw_string(ANONYMOUS_ID));
    if user.is_none() && device.is_none() {
        return None;
    }
    out.raw("{");
    out.key("event_type");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else if e.is("page") {
        out.string(&e.view_name("Page"));
    } else if e.is("screen") {
        out.string(&e.view_name("Screen"));
    } else if e.is("identify") {
        out.string("$identify");
    } else {
        return None;
    }
    for (key, value) in [("user_id", user), ("device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.raw(value);
        }
    }
    if let Some(ms) = e.millis() {
        out.key("time");
        out.number(ms);
    }
    if let Some(id) = e.raw_string(MESSAGE_ID) {
        out.key("insert_id");
        out.raw(id);
    }
    if !e.is("identify") {
        if let Some(props) = e.object(PROPERTIES) {
            out.key("event_properties");
            out.raw(props);
        }
    }
    if let Some(traits) = e.traits() {
        out.key("user_properties");
        out.raw("{");
        out.key("$set");
        out.raw(traits);
        out.raw("}");
    }
    out.raw("}");
    Some(())
}
