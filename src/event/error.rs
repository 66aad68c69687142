//! Why an event was refused, with its stable code and its message.

use super::{CallType, Required, MAX_DEPTH, MAX_EVENT_BYTES};
use crate::json::SyntaxReason;
use crate::message::{display_by_describe, push_all, quoted, Describe, Number, Text};

/// Why an event was refused. Nothing of a refused event is sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Over [`MAX_EVENT_BYTES`] bytes of JSON.
    TooLarge,
    /// Containers nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Not valid JSON; `offset` is a byte offset into the event text.
    InvalidJson { offset: usize, reason: SyntaxReason },
    /// Valid JSON, but not an object.
    NotObject,
    /// No `type` member.
    MissingType,
    /// A `type` that is not a string.
    TypeNotString,
    /// A `type` that is not one of the six call types.
    UnknownType,
    /// A key written twice in one object, at any depth (readers disagree
    /// on which copy wins): where, with keys shown as
    /// [`crate::key_name::push_key`] shows them.
    DuplicateKey(String),
    /// `integrations` that is neither an object nor null: its routing
    /// cannot be known.
    IntegrationsNotObject,
    /// A field Segment's spec requires of the call is missing.
    Incomplete(Required),
    /// Sanitized and written in the format of `destination`, the event
    /// alone is larger than a request body of it may be (`limit` bytes):
    /// refused for every destination, never sent to some.
    TooLargeFor { destination: String, limit: usize },
}

impl EventError {
    /// A stable code for programs (the Worker maps these to HTTP statuses).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::TooLarge | EventError::TooLargeFor { .. } => "event_too_large",
            EventError::TooDeep => "event_too_deep",
            EventError::InvalidJson { .. } => "invalid_json",
            EventError::NotObject => "event_not_object",
            EventError::MissingType => "missing_type",
            EventError::TypeNotString | EventError::UnknownType => "unknown_type",
            EventError::DuplicateKey(_) => "duplicate_key",
            EventError::IntegrationsNotObject => "invalid_integrations",
            EventError::Incomplete(_) => "incomplete_event",
        }
    }
}

impl Describe for EventError {
    fn describe(&self, out: &mut String) {
        match self {
            EventError::TooLarge => push_all(
                out,
                &[
                    Text("event is larger than "),
                    Number(MAX_EVENT_BYTES as u64),
                    Text(" bytes"),
                ],
            ),
            EventError::TooDeep => push_all(
                out,
                &[
                    Text("event nests deeper than "),
                    Number(MAX_DEPTH as u64),
                    Text(" levels"),
                ],
            ),
            EventError::InvalidJson { offset, reason } => {
                out.push_str("event is not valid JSON: ");
                reason.describe(out);
                push_all(out, &[Text(" at byte "), Number(*offset as u64)]);
            }
            EventError::NotObject => out.push_str("event must be a JSON object"),
            EventError::MissingType => {
                out.push_str("event has no \"type\"; expected one of ");
                out.push_str(&CallType::list());
            }
            EventError::TypeNotString => out.push_str("event \"type\" must be a string"),
            EventError::UnknownType => {
                out.push_str("event \"type\" must be one of ");
                out.push_str(&CallType::list());
            }
            EventError::DuplicateKey(place) => {
                out.push_str("event has ");
                out.push_str(place);
            }
            EventError::IntegrationsNotObject => out.push_str(
                "event \"integrations\" must be an object (or null): its routing cannot be known",
            ),
            EventError::Incomplete(what) => out.push_str(what.text()),
            EventError::TooLargeFor { destination, limit } => push_all(
                out,
                &[
                    Text("event is too large for destination "),
                    Text(&quoted(destination)),
                    Text(": sanitized in its format it does not fit a request body of "),
                    Number(*limit as u64),
                    Text(" bytes, so it is sent to no destination"),
                ],
            ),
        }
    }
}

display_by_describe!(EventError);
