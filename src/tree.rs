//! A JSON tree for the policy file.
//!
//! Unlike a map-based tree it keeps members in order and keeps duplicate
//! keys, so validation can report a key written twice instead of silently
//! taking one of them. Events never go through this tree.

use crate::json::{Kind, Reader, SyntaxError};

/// A parsed JSON value; numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// A short description of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Deepest nesting accepted in a policy file.
const MAX_DEPTH: usize = 64;

/// Parses `text` as one JSON value.
///
/// # Errors
/// The first syntax error, with its byte offset.
pub fn parse(text: &str) -> Result<Value, SyntaxError> {
    let mut reader = Reader::new(text.as_bytes(), MAX_DEPTH);
    let value = parse_value(&mut reader, 1)?;
    reader.finish()?;
    Ok(value)
}

fn parse_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, SyntaxError> {
    Ok(match r.peek_kind()? {
        Kind::Object => {
            r.begin_object(depth)?;
            let mut members = Vec::new();
            let mut first = true;
            while let Some(key) = r.next_key(&mut first)? {
                let key = text(r.decode(key)?.into_owned());
                members.push((key, parse_value(r, depth + 1)?));
            }
            Value::Object(members)
        }
        Kind::Array => {
            r.begin_array(depth)?;
            let mut items = Vec::new();
            let mut first = true;
            while r.next_element(&mut first)? {
                items.push(parse_value(r, depth + 1)?);
            }
            Value::Array(items)
        }
        Kind::String => {
            let span = r.string()?;
            Value::String(text(r.decode(span)?.into_owned()))
        }
        Kind::Number => {
            let (start, end) = r.number()?;
            Value::Number(text(r.src()[start..end].to_vec()))
        }
        Kind::True => {
            r.literal(b"true")?;
            Value::Bool(true)
        }
        Kind::False => {
            r.literal(b"false")?;
            Value::Bool(false)
        }
        Kind::Null => {
            r.literal(b"null")?;
            Value::Null
        }
    })
}

/// Bytes read from a `&str` and decoded escapes are valid UTF-8; the lossy
/// conversion only guards against a bug without panicking.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Line and column (1-based) of a byte offset, for messages about files.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_duplicates() {
        let v = parse(r#"{"b":1,"a":[true,null,"x"],"b":2}"#).unwrap();
        let Value::Object(members) = v else {
            panic!("not an object")
        };
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
    }

    #[test]
    fn reports_line_and_column() {
        let text = "{\n  \"a\": 1,\n}";
        let err = parse(text).unwrap_err();
        assert_eq!(line_column(text, err.offset), (3, 1));
    }
}
