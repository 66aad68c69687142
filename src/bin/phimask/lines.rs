//! Lines of an NDJSON stream, each at most a limit long: a longer line is
//! passed over without being held in memory, so one endless line cannot
//! fill it.

use std::io::{self, BufRead};

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
            let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
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
