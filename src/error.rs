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
                EventError::TooLarge | EventError::TooLargeFor { .. } => "event_too_large",
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

/// Messages written without `core::fmt`: the Worker's engine leaves the
/// formatting machinery out to fit the edge. `Display` is built on it.
pub trait Describe {
    /// Appends the message to `out`.
    fn describe(&self, out: &mut String);

    /// The message.
    fn message(&self) -> String {
        let mut out = String::new();
        self.describe(&mut out);
        out
    }
}

/// Appends the decimal digits of `n`.
pub fn push_number(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let at = decimal(n, &mut digits);
    digits[at..].iter().for_each(|&d| out.push(char::from(d)));
}

/// Writes the decimal digits of `n` at the end of `digits`; returns where
/// they start.
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> usize {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

/// Appends each piece in turn: text, or a number.
pub(crate) fn push_all(out: &mut String, pieces: &[Piece<'_>]) {
    for piece in pieces {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Number(n) => push_number(out, *n),
        }
    }
}

/// A piece of a message.
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Number(u64),
}

use Piece::{Number, Text};

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

impl Describe for Error {
    fn describe(&self, out: &mut String) {
        match self {
            Error::InvalidPolicy(problems) => {
                out.push_str("invalid policy: ");
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        out.push_str("; ");
                    }
                    p.describe(out);
                }
            }
            Error::MissingKey => out.push_str(
                "no masking key: the policy masks values for a destination, so nothing is sent until the PHI_MASKING_KEY secret (at least 32 bytes) is set",
            ),
            Error::KeyTooShort => out
                .push_str("masking key is too short: PHI_MASKING_KEY must be at least 32 bytes"),
            Error::UnknownDestination(name) => {
                out.push_str("unknown destination ");
                out.push_str(&quoted(name));
            }
            Error::Event(e) => e.describe(out),
            Error::InvalidCredential {
                destination,
                message,
            } => push_all(
                out,
                &[
                    Text("destination "),
                    Text(&quoted(destination)),
                    Text(": "),
                    Text(&crate::credential::secret_name(destination)),
                    Text(" "),
                    Text(message),
                ],
            ),
        }
    }
}

/// `Display` through [`Describe`], for each message type.
macro_rules! display_by_describe {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.message())
            }
        }
    )*};
}

display_by_describe!(
    EventError,
    Error,
    SyntaxReason,
    Problem,
    crate::request::RequestError
);

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
            c if c.is_control() => {
                out.push_str("\\u{");
                let n = c as u32;
                let mut started = false;
                for shift in (0..8).rev() {
                    let digit = (n >> (shift * 4)) & 0xf;
                    if digit != 0 || started || shift == 0 {
                        started = true;
                        out.push(char::from(b"0123456789abcdef"[digit as usize]));
                    }
                }
                out.push('}');
            }
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
