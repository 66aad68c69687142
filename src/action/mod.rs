//! Value actions beyond allow and mask: pure functions from one scalar to
//! the scalar a destination receives, or `None` when the value cannot be
//! parsed or transformed (it is then dropped: every action fails closed).

pub mod age;
pub mod ip;
pub mod normalize;
pub mod scan;
pub mod url;
pub mod year;
pub mod zip3;

/// A scalar as an action receives it: the decoded text of a string, or the
/// JSON text of a number (booleans and null reach no transform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    Text(&'a [u8]),
    Number(&'a [u8]),
}

/// What an action writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A JSON string with this content.
    Text(String),
    /// A JSON number with this text.
    Number(String),
}
