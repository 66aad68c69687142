//! The one error type of the engine. Messages say what was wrong and never
//! contain event values or the masking key.

use crate::event::{CallType, Required, MAX_DEPTH, MAX_EVENT_BYTES};
use crate::json::SyntaxReason;
use crate::policy::Problem;

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
    /// A known top-level key written twice (readers disagree on which wins).
    DuplicateKey(&'static str),
    /// `integrations` that is neither an object nor null: its routing
    /// cannot be known.
    IntegrationsNotObject,
    /// A field Segment's spec requires of the call is missing.
    Incomplete(Required),
}

/// Everything that can go wrong in phimask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The policy has errors; each names its JSON path.
    InvalidPolicy(Vec<Problem>),
    /// No masking key, while some destination needs masking.
    MissingKey,
    /// A masking key shorter than 32 bytes.
    KeyTooShort,
    /// A destination the policy does not name.
    UnknownDestination(String),
    /// The event was refused.
    Event(EventError),
    /// A destination's credential (its `AUTH_<NAME>` secret) is missing or
    /// not of the form its format needs; the message never quotes it.
    InvalidCredential {
        destination: String,
        message: &'static str,
    },
}

impl Error {
    /// A stable code for programs (the Worker maps these to HTTP statuses).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPolicy(_) => "invalid_policy",
            Error::MissingKey => "missing_key",
            Error::KeyTooShort => "key_too_short",
            Error::UnknownDestination(_) => "unknown_destination",
            Error::InvalidCredential { .. } => "invalid_credential",
            Error::Event(e) => match e {
                EventError::TooLarge => "event_too_large",
                EventError::TooDeep => "event_too_deep",
                EventError::InvalidJson { .. } => "invalid_json",
                EventError::NotObject => "event_not_object",
                EventError::MissingType => "missing_type",
                EventError::TypeNotString | EventError::UnknownType => "unknown_type",
                EventError::DuplicateKey(_) => "duplicate_key",
                EventError::IntegrationsNotObject => "invalid_integrations",
                EventError::Incomplete(_) => "incomplete_event",
            },
        }
    }
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::TooLarge => write!(f, "event is larger than {MAX_EVENT_BYTES} bytes"),
            EventError::TooDeep => write!(f, "event nests deeper than {MAX_DEPTH} levels"),
            EventError::InvalidJson { offset, reason } => {
                write!(f, "event is not valid JSON: {reason} at byte {offset}")
            }
            EventError::NotObject => f.write_str("event must be a JSON object"),
            EventError::MissingType => write!(
                f,
                "event has no \"type\"; expected one of {}",
                CallType::list()
            ),
            EventError::TypeNotString => f.write_str("event \"type\" must be a string"),
            EventError::UnknownType => {
                write!(f, "event \"type\" must be one of {}", CallType::list())
            }
            EventError::DuplicateKey(key) => {
                write!(f, "event has the key \"{key}\" more than once")
            }
            EventError::IntegrationsNotObject => f.write_str(
                "event \"integrations\" must be an object (or null): its routing cannot be known",
            ),
            EventError::Incomplete(what) => what.fmt(f),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidPolicy(problems) => {
                f.write_str("invalid policy: ")?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            Error::MissingKey => f.write_str(
                "no masking key: the policy masks values for a destination, so nothing is sent until the PHI_MASKING_KEY secret (at least 32 bytes) is set",
            ),
            Error::KeyTooShort => {
                f.write_str("masking key is too short: PHI_MASKING_KEY must be at least 32 bytes")
            }
            Error::UnknownDestination(name) => {
                write!(f, "unknown destination {}", quoted(name))
            }
            Error::Event(e) => e.fmt(f),
            Error::InvalidCredential {
                destination,
                message,
            } => write!(
                f,
                "destination {}: {} {message}",
                quoted(destination),
                crate::credential::secret_name(destination)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// `s` for a message, quoted, with quotes, backslashes and control
/// characters escaped (a small stand-in for `escape_debug`, whose Unicode
/// tables would weigh on the Worker).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl From<EventError> for Error {
    fn from(e: EventError) -> Self {
        Error::Event(e)
    }
}
