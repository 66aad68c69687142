//! NDJSON, one event a line, as `phimask sanitize` and the Python wheel's
//! `sanitize_ndjson` and `sanitize_arrow` read and write it: both go
//! through [`Lines`] and [`sanitize_line`], so their bytes are the same.
//!
//! Lines are at most a limit long: a longer line is passed over without
//! being held in memory, so one endless line cannot fill it.

use std::io::{self, BufRead};

use crate::format::Format;
use crate::report::Tally;
use crate::{Agent, Error, EventError, Sanitizer, Signals};

pub enum Line<'a> {
    /// The line's bytes, without its `\n` (or `\r\n`).
    Text(&'a [u8]),
    /// Longer than the limit; its bytes were skipped.
    TooLong,
}

pub struct Lines<R> {
    inner: R,
    line: Vec<u8>,
    max: usize,
    /// Bytes read so far, line ends included.
    pub bytes: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Lines {
            inner,
            line: Vec::with_capacity(max.min(1 << 16)),
            max,
            bytes: 0,
        }
    }

    /// The next line, or `None` at the end of the stream (a last line
    /// without `\n` counts).
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (part, used, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            // One byte over the limit may be the `\r` of `\r\n`.
            if !too_long && self.line.len() + part.len() <= self.max + 1 {
                self.line.extend_from_slice(part);
            } else {
                too_long = true;
                self.line.clear();
            }
            self.inner.consume(used);
            self.bytes += used as u64;
            if done {
                break;
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if too_long || self.line.len() > self.max {
            return Ok(Some(Line::TooLong));
        }
        Ok(Some(Line::Text(&self.line)))
    }
}

/// The destination lines are sanitized for, and the form they take.
pub struct Target<'a> {
    pub name: &'a str,
    /// Its format, when lines are written in it (`--native`); `None` for
    /// Segment events.
    pub native: Option<Format>,
    pub signals: &'a Signals,
    pub agent: &'a Agent,
}

/// What became of one line.
pub enum Outcome {
    /// The line to write (without its `\n`), and what was dropped, masked
    /// and transformed in it.
    Sent(String, Tally),
    /// The policy sends the destination nothing of this event.
    NotSent,
    /// The destination's API has no place for it (`--native` only).
    Unmapped,
    /// Only white space.
    Blank,
    /// Refused: why, never quoting the line.
    Refused(String),
}

/// Sanitizes one line for `target`.
pub fn sanitize_line(sanitizer: &Sanitizer, target: &Target<'_>, line: Line<'_>) -> Outcome {
    let bytes = match line {
        Line::TooLong => return Outcome::Refused(Error::Event(EventError::TooLarge).to_string()),
        Line::Text(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return Outcome::Blank,
        Line::Text(bytes) => bytes,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Outcome::Refused(format!("not UTF-8 text at byte {}", e.valid_up_to())),
    };
    match sanitizer.sanitize_json_from(text, target.name, target.signals, target.agent) {
        Ok((Some(event), tally)) => match target.line(event) {
            Some(line) => Outcome::Sent(line, tally),
            None => Outcome::Unmapped,
        },
        Ok((None, _)) => Outcome::NotSent,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

impl Target<'_> {
    /// The line written for a sanitized event, or `None` when the
    /// destination's API has no place for it (a call type it does not
    /// take, no user or device ID). GA4's line is a whole one-event body,
    /// since its user IDs are members of the request, not of the event.
    fn line(&self, event: String) -> Option<String> {
        let line = match self.native {
            None => event,
            Some(f) if f.is_passthrough() => event,
            Some(f) => {
                let item = f.item(&event)?;
                if f == Format::Ga4 {
                    format!("{{{},\"events\":[{}]}}", item.shared, item.text)
                } else {
                    item.text
                }
            }
        };
        Some(one_line(line))
    }
}

/// A written line with the white space the client put inside values as
/// spaces: a lone `\r` between tokens is valid JSON, but readers that end
/// lines at `\r` too (Spark's JSON reader, Python's `splitlines`) would
/// cut the event in two there.
fn one_line(line: String) -> String {
    if memchr::memchr2(b'\r', b'\n', line.as_bytes()).is_some() {
        let mut out = String::with_capacity(line.len());
        Format::Ndjson.push_passthrough(&line, &mut out);
        out
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize, buffer: usize) -> Vec<Option<Vec<u8>>> {
        let mut lines = Lines::new(io::BufReader::with_capacity(buffer, input), max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap_or(None) {
            out.push(match line {
                Line::Text(t) => Some(t.to_vec()),
                Line::TooLong => None,
            });
        }
        assert_eq!(lines.bytes, input.len() as u64);
        out
    }

    #[test]
    fn splits_at_newlines_whatever_the_buffer() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}\nlast";
        for buffer in [1, 2, 3, 7, 64] {
            assert_eq!(
                all(input, 100, buffer),
                vec![
                    Some(b"{\"a\":1}".to_vec()),
                    Some(Vec::new()),
                    Some(b"{\"b\":2}".to_vec()),
                    Some(b"last".to_vec())
                ],
                "buffer {buffer}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_not_held() {
        let mut input = b"12345\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend(b"\n123\r\n1234567\n");
        for buffer in [1, 5, 4096] {
            assert_eq!(
                all(&input, 5, buffer),
                vec![Some(b"12345".to_vec()), None, Some(b"123".to_vec()), None],
                "buffer {buffer}"
            );
        }
    }
}
