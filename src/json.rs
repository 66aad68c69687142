//! A strict, streaming JSON reader over bytes (RFC 8259).
//!
//! The sanitizer walks events with it instead of building a tree: values it
//! drops are skipped without allocating, values it keeps are copied as the
//! raw bytes of the input. Every method validates what it reads and returns
//! a [`SyntaxError`] (a byte offset and a reason, never input text).

use std::borrow::Cow;

/// What went wrong while reading JSON, and where (byte offset in the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub reason: SyntaxReason,
}

/// Why the input is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxReason {
    /// Input ended in the middle of a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue the value here.
    UnexpectedByte(&'static str),
    /// A control character inside a string.
    ControlCharacter,
    /// A backslash escape that JSON does not define.
    BadEscape,
    /// A `\u` escape that is not a valid Unicode scalar (lone surrogate).
    BadUnicodeEscape,
    /// A number that does not follow JSON's grammar.
    BadNumber,
    /// Containers nested deeper than the limit.
    TooDeep(usize),
    /// Something other than white space after the value.
    TrailingCharacters,
    /// A key written twice in one object (I-JSON): parsers disagree on
    /// which copy wins. `offset` is where the second copy starts.
    DuplicateKey,
}

impl crate::message::Describe for SyntaxReason {
    fn describe(&self, out: &mut String) {
        match self {
            Self::UnexpectedEnd => out.push_str("unexpected end of input"),
            Self::UnexpectedByte(expected) => {
                out.push_str("expected ");
                out.push_str(expected);
            }
            Self::ControlCharacter => out.push_str("control character in string"),
            Self::BadEscape => out.push_str("invalid escape in string"),
            Self::BadUnicodeEscape => {
                out.push_str("invalid \\u escape (lone surrogate or bad hex)");
            }
            Self::BadNumber => out.push_str("invalid number"),
            Self::TooDeep(limit) => {
                out.push_str("nesting deeper than ");
                crate::message::push_number(out, *limit as u64);
                out.push_str(" levels");
            }
            Self::TrailingCharacters => out.push_str("unexpected characters after the JSON value"),
            Self::DuplicateKey => out.push_str("a key written twice in one object"),
        }
    }
}

crate::message::display_by_describe!(SyntaxReason);

/// The kind of the next value, decided by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

/// A string's content as it stands in the input (between the quotes).
#[derive(Debug, Clone, Copy)]
pub struct StrSpan {
    /// Offset of the opening quote.
    pub start: usize,
    /// Offset just past the closing quote.
    pub end: usize,
    /// Whether the content has backslash escapes (and must be decoded).
    pub escaped: bool,
}

pub type Result<T> = std::result::Result<T, SyntaxError>;

/// How many keys of an object are compared one by one (by hash first)
/// before they are collected and sorted instead (no object costs O(n²)).
const FEW_KEYS: usize = 16;

/// The keys of one object read so far, to refuse a key written twice.
/// Keys compare decoded (`"a"` and `"\u0061"` are one key). Small objects
/// need no allocation: a new key is compared with those of equal hash.
/// Beyond [`FEW_KEYS`], keys are collected and sorted once the object
/// ends (O(n log n) whatever the keys, so no crafted set of keys slows it).
pub struct Keys {
    first: bool,
    count: usize,
    hashes: [u32; FEW_KEYS],
    /// Content spans (quotes excluded) of the first keys.
    spans: [(u32, u32); FEW_KEYS],
    /// Every key (hash and span), once there are more than [`FEW_KEYS`].
    many: Vec<(u32, u32, u32)>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            first: true,
            count: 0,
            hashes: [0; FEW_KEYS],
            spans: [(0, 0); FEW_KEYS],
            many: Vec::new(),
        }
    }
}

/// A quick hash of a key's decoded bytes, from its length and its first
/// and last bytes (a filter: keys of equal hash are compared in full).
/// Fixed-size loads only: copying a short key into a buffer first stalls.
#[inline]
fn key_hash(key: &[u8]) -> u32 {
    let n = key.len();
    let load8 = |at: usize| {
        key.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let load4 = |at: usize| {
        key.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    let (head, tail) = if n >= 8 {
        (load8(0), load8(n - 8))
    } else if n >= 4 {
        (load4(0), load4(n - 4))
    } else {
        (key.iter().fold(0, |h, &b| h << 8 | u64::from(b)), 0)
    };
    let mixed = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 32) as u32
}

impl Keys {
    /// Notes `key` of the object `r` reads; `false` when it was there.
    #[inline]
    fn insert(&mut self, r: &Reader<'_>, key: StrSpan) -> Result<bool> {
        let (Ok(start), Ok(end)) = (u32::try_from(key.start + 1), u32::try_from(key.end - 1))
        else {
            return r.err(SyntaxReason::UnexpectedEnd);
        };
        let text = r.decode(key)?;
        let hash = key_hash(&text);
        if !self.many.is_empty() {
            self.many.push((hash, start, end));
            return Ok(true);
        }
        for (i, &h) in self.hashes.iter().enumerate().take(self.count) {
            if h == hash {
                let (s, e) = self.spans[i];
                if r.decode_inner(s as usize, e as usize)? == text {
                    return Ok(false);
                }
            }
        }
        if self.count < FEW_KEYS {
            self.hashes[self.count] = hash;
            self.spans[self.count] = (start, end);
            self.count += 1;
        } else {
            let few = self.hashes.iter().zip(&self.spans);
            self.many.extend(few.map(|(&h, &(s, e))| (h, s, e)));
            self.many.push((hash, start, end));
        }
        Ok(true)
    }

    /// At the end of the object: where a key written twice starts (the
    /// later copy's quote), if the keys were many and one was. Sorted by
    /// hash, then each run of equal hashes by text: crafted collisions
    /// cost O(n log n) comparisons, not O(n²).
    fn repeated(&mut self, r: &Reader<'_>) -> Option<usize> {
        if self.many.is_empty() {
            return None;
        }
        let text = |&(_, s, e): &(u32, u32, u32)| {
            r.decode_inner(s as usize, e as usize).unwrap_or_default()
        };
        self.many.sort_unstable();
        let mut found: Option<usize> = None;
        for run in self
            .many
            .chunk_by_mut(|a, b| a.0 == b.0)
            .filter(|run| run.len() > 1)
        {
            run.sort_by(|a, b| text(a).cmp(&text(b)).then(a.1.cmp(&b.1)));
            for pair in run.windows(2) {
                if let [a, b] = pair {
                    if text(a) == text(b) {
                        let at = b.1 as usize - 1;
                        found = Some(found.map_or(at, |f| f.min(at)));
                    }
                }
            }
        }
        found
    }
}

/// A cursor over JSON bytes.
pub struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// The text was validated already (by an earlier read of it): strings
    /// and skipped values are then only delimited, not checked again;
    /// nesting depth is still enforced.
    validated: bool,
    /// Whether [`Reader::next_unique_key`] lets a key written twice pass
    /// (to delimit an event refused for one, and read on).
    duplicates_allowed: bool,
}

/// Eight bytes, each `b` (for the word-at-a-time scans below).
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

const HIGHS: u64 = splat(0x80);

/// The high bit of each byte of `w` that is `"`, `\` or a control
/// character: what ends a plain run of a JSON string. Only the lowest set
/// bit is exact (a borrow may mark bytes above a match), which is the one
/// used.
#[inline(always)]
fn specials(w: u64) -> u64 {
    let quote = w ^ splat(b'"');
    let backslash = w ^ splat(b'\\');
    (quote.wrapping_sub(splat(1)) & !quote
        | backslash.wrapping_sub(splat(1)) & !backslash
        | w.wrapping_sub(splat(0x20)) & !w)
        & HIGHS
}

/// The offset of the first `"`, `\` or control character at or after
/// `pos` (or the end): eight bytes at a time, so long strings cost little.
#[inline(always)]
pub fn plain_run(src: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = src.get(pos..pos + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let found = specials(u64::from_le_bytes(bytes));
        if found != 0 {
            return pos + (found.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&b) = src.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a [u8], max_depth: usize) -> Self {
        Self::at(src, 0, max_depth)
    }

    pub fn at(src: &'a [u8], pos: usize, max_depth: usize) -> Self {
        Reader {
            src,
            pos,
            max_depth,
            validated: false,
            duplicates_allowed: false,
        }
    }

    /// This reader, letting keys written twice pass (all else is checked).
    pub fn allowing_duplicates(self) -> Self {
        Reader {
            duplicates_allowed: true,
            ..self
        }
    }

    /// A reader of text that an earlier read validated whole (and that
    /// has not changed since): it delimits strings and skipped values
    /// without checking them again. Depth is still enforced.
    pub fn validated(src: &'a [u8], pos: usize, max_depth: usize) -> Self {
        Reader {
            validated: true,
            ..Self::at(src, pos, max_depth)
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn src(&self) -> &'a [u8] {
        self.src
    }

    fn err<T>(&self, reason: SyntaxReason) -> Result<T> {
        Err(SyntaxError {
            offset: self.pos,
            reason,
        })
    }

    // The small steps below are always inlined, with a fast path for
    // compact JSON (no white space): calls to them were a third of the
    // reader's time.
    #[inline(always)]
    fn skip_ws(&mut self) {
        if matches!(self.src.get(self.pos), Some(&b) if b <= b' ') {
            self.skip_ws_run();
        }
    }

    fn skip_ws_run(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline(always)]
    fn next_byte(&mut self) -> Result<u8> {
        if let Some(&b) = self.src.get(self.pos) {
            if b > b' ' {
                return Ok(b);
            }
        }
        self.next_byte_after_ws()
    }

    fn next_byte_after_ws(&mut self) -> Result<u8> {
        self.skip_ws_run();
        match self.src.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.err(SyntaxReason::UnexpectedEnd),
        }
    }

    /// Checks that only white space follows.
    pub fn finish(&mut self) -> Result<()> {
        self.skip_ws();
        if self.pos < self.src.len() {
            return self.err(SyntaxReason::TrailingCharacters);
        }
        Ok(())
    }

    /// The kind of the next value (skips white space; consumes nothing else).
    pub fn peek_kind(&mut self) -> Result<Kind> {
        Ok(match self.next_byte()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b'-' | b'0'..=b'9' => Kind::Number,
            b't' => Kind::True,
            b'f' => Kind::False,
            b'n' => Kind::Null,
            _ => return self.err(SyntaxReason::UnexpectedByte("a JSON value")),
        })
    }

    #[inline(always)]
    fn expect_byte(&mut self, want: u8, expected: &'static str) -> Result<()> {
        if self.src.get(self.pos) == Some(&want) {
            self.pos += 1;
            return Ok(());
        }
        self.expect_byte_after_ws(want, expected)
    }

    fn expect_byte_after_ws(&mut self, want: u8, expected: &'static str) -> Result<()> {
        if self.next_byte()? == want {
            self.pos += 1;
            Ok(())
        } else {
            self.err(SyntaxReason::UnexpectedByte(expected))
        }
    }

    /// Consumes `{` and enters an object at `depth` (1 for the outermost).
    pub fn begin_object(&mut self, depth: usize) -> Result<()> {
        if depth > self.max_depth {
            return self.err(SyntaxReason::TooDeep(self.max_depth));
        }
        self.expect_byte(b'{', "'{'")
    }

    /// Moves to the next member of an object: returns its key (the reader
    /// then stands before the value), or `None` after the closing `}`.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<StrSpan>> {
        self.step_to_key(first)
    }

    /// [`Reader::next_key`]'s step, inlined into both callers (returning
    /// its result through a call cost a third of reading keys).
    #[inline(always)]
    fn step_to_key(&mut self, first: &mut bool) -> Result<Option<StrSpan>> {
        let b = self.next_byte()?;
        if b == b'}' {
            self.pos += 1;
            return Ok(None);
        }
        if !*first {
            if b != b',' {
                return self.err(SyntaxReason::UnexpectedByte("',' or '}'"));
            }
            self.pos += 1;
            if self.next_byte()? != b'"' {
                return self.err(SyntaxReason::UnexpectedByte("a string key"));
            }
        } else if b != b'"' {
            return self.err(SyntaxReason::UnexpectedByte("a string key or '}'"));
        }
        *first = false;
        let key = self.string()?;
        self.expect_byte(b':', "':'")?;
        Ok(Some(key))
    }

    /// [`Reader::next_key`], refusing a key written twice in the object
    /// (`keys` holds its keys so far). Text read validated was checked
    /// when it was first read, so its keys are not compared again.
    pub fn next_unique_key(&mut self, keys: &mut Keys) -> Result<Option<StrSpan>> {
        let checks = !self.validated && !self.duplicates_allowed;
        let Some(key) = self.step_to_key(&mut keys.first)? else {
            return match keys.repeated(self).filter(|_| checks) {
                Some(offset) => Err(SyntaxError {
                    offset,
                    reason: SyntaxReason::DuplicateKey,
                }),
                None => Ok(None),
            };
        };
        if checks && !keys.insert(self, key)? {
            return Err(SyntaxError {
                offset: key.start,
                reason: SyntaxReason::DuplicateKey,
            });
        }
        Ok(Some(key))
    }

    /// Consumes `[` and enters an array at `depth`.
    pub fn begin_array(&mut self, depth: usize) -> Result<()> {
        if depth > self.max_depth {
            return self.err(SyntaxReason::TooDeep(self.max_depth));
        }
        self.expect_byte(b'[', "'['")
    }

    /// Moves to the next element of an array: `true` when the reader stands
    /// before an element, `false` after the closing `]`.
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool> {
        let b = self.next_byte()?;
        if b == b']' {
            self.pos += 1;
            return Ok(false);
        }
        if !*first {
            if b != b',' {
                return self.err(SyntaxReason::UnexpectedByte("',' or ']'"));
            }
            self.pos += 1;
        }
        *first = false;
        Ok(true)
    }

    /// Reads a string, validating escapes and characters.
    pub fn string(&mut self) -> Result<StrSpan> {
        self.expect_byte(b'"', "a string")?;
        let start = self.pos - 1;
        let mut escaped = false;
        loop {
            self.pos = plain_run(self.src, self.pos);
            match self.src.get(self.pos) {
                None => return self.err(SyntaxReason::UnexpectedEnd),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(StrSpan {
                        start,
                        end: self.pos,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    if self.validated {
                        // `\uXXXX`: the hex digits are plain bytes.
                        self.pos += 2;
                    } else {
                        self.escape(&mut Vec::new(), false)?;
                    }
                }
                Some(_) => return self.err(SyntaxReason::ControlCharacter),
            }
        }
    }

    /// Reads the escape at `pos` (which holds the backslash); when `decode`
    /// is set, appends the character's UTF-8 to `out`.
    fn escape(&mut self, out: &mut Vec<u8>, decode: bool) -> Result<()> {
        let start = self.pos;
        let bad = |reason| {
            Err(SyntaxError {
                offset: start,
                reason,
            })
        };
        let Some(&c) = self.src.get(self.pos + 1) else {
            return self.err(SyntaxReason::UnexpectedEnd);
        };
        let simple = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return bad(SyntaxReason::BadEscape),
        };
        if let Some(byte) = simple {
            if decode {
                out.push(byte);
            }
            self.pos += 2;
            return Ok(());
        }
        let first = self.hex4(self.pos + 2)?;
        self.pos += 6;
        let scalar = match first {
            0xD800..=0xDBFF => {
                if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return bad(SyntaxReason::BadUnicodeEscape);
                }
                let second = self.hex4(self.pos + 2)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return bad(SyntaxReason::BadUnicodeEscape);
                }
                self.pos += 6;
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return bad(SyntaxReason::BadUnicodeEscape),
            other => other,
        };
        let Some(ch) = char::from_u32(scalar) else {
            return bad(SyntaxReason::BadUnicodeEscape);
        };
        if decode {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        Ok(())
    }

    fn hex4(&self, at: usize) -> Result<u32> {
        let Some(digits) = self.src.get(at..at + 4) else {
            return Err(SyntaxError {
                offset: at,
                reason: SyntaxReason::UnexpectedEnd,
            });
        };
        let mut value = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    return Err(SyntaxError {
                        offset: at,
                        reason: SyntaxReason::BadUnicodeEscape,
                    })
                }
            };
            value = value * 16 + u32::from(v);
        }
        Ok(value)
    }

    /// The content of a string read earlier, unescaped.
    pub fn decode(&self, span: StrSpan) -> Result<Cow<'a, [u8]>> {
        let inner = &self.src[span.start + 1..span.end - 1];
        if !span.escaped {
            return Ok(Cow::Borrowed(inner));
        }
        self.decode_inner(span.start + 1, span.end - 1)
    }

    /// The string content between `start` and `end` (quotes excluded),
    /// unescaped.
    fn decode_inner(&self, start: usize, end: usize) -> Result<Cow<'a, [u8]>> {
        let Some(inner) = self.src.get(start..end) else {
            return self.err(SyntaxReason::UnexpectedEnd);
        };
        if !inner.contains(&b'\\') {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut cursor = Reader::at(self.src, start, 0);
        while cursor.pos < end {
            let b = cursor.src[cursor.pos];
            if b == b'\\' {
                cursor.escape(&mut out, true)?;
            } else {
                out.push(b);
                cursor.pos += 1;
            }
        }
        Ok(Cow::Owned(out))
    }

    /// Reads a number; returns the span of its text.
    pub fn number(&mut self) -> Result<(usize, usize)> {
        self.skip_ws();
        let start = self.pos;
        let src = self.src;
        let digits = |mut p: usize| {
            while matches!(src.get(p), Some(b'0'..=b'9')) {
                p += 1;
            }
            p
        };
        let mut p = start;
        if src.get(p) == Some(&b'-') {
            p += 1;
        }
        match src.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => p = digits(p),
            _ => return self.fail_at(p, SyntaxReason::BadNumber),
        }
        if src.get(p) == Some(&b'.') {
            let after = digits(p + 1);
            if after == p + 1 {
                return self.fail_at(p, SyntaxReason::BadNumber);
            }
            p = after;
        }
        if matches!(src.get(p), Some(b'e' | b'E')) {
            p += 1;
            if matches!(src.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            let after = digits(p);
            if after == p {
                return self.fail_at(p, SyntaxReason::BadNumber);
            }
            p = after;
        }
        self.pos = p;
        Ok((start, p))
    }

    fn fail_at<T>(&mut self, pos: usize, reason: SyntaxReason) -> Result<T> {
        self.pos = pos;
        self.err(reason)
    }

    /// Reads `true`, `false` or `null` (whichever `lit` names).
    pub fn literal(&mut self, lit: &'static [u8]) -> Result<()> {
        self.skip_ws();
        if self.src.get(self.pos..self.pos + lit.len()) == Some(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            self.err(SyntaxReason::UnexpectedByte("a JSON value"))
        }
    }

    /// Reads and validates one whole value at `depth`; returns its span.
    pub fn skip_value(&mut self, depth: usize) -> Result<(usize, usize)> {
        if self.validated {
            return self.delimit_value(depth);
        }
        let kind = self.peek_kind()?;
        let start = self.pos;
        match kind {
            Kind::Object => {
                self.begin_object(depth)?;
                let mut keys = Keys::default();
                while self.next_unique_key(&mut keys)?.is_some() {
                    self.skip_value(depth + 1)?;
                }
            }
            Kind::Array => {
                self.begin_array(depth)?;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_value(depth + 1)?;
                }
            }
            Kind::String => {
                self.string()?;
            }
            Kind::Number => {
                self.number()?;
            }
            Kind::True => self.literal(b"true")?,
            Kind::False => self.literal(b"false")?,
            Kind::Null => self.literal(b"null")?,
        }
        Ok((start, self.pos))
    }
}

impl Reader<'_> {
    /// [`Reader::skip_value`] on validated text: finds the value's end
    /// (strings word at a time, containers by their brackets) and checks
    /// only its depth.
    fn delimit_value(&mut self, depth: usize) -> Result<(usize, usize)> {
        self.skip_ws();
        let start = self.pos;
        match self.src.get(start) {
            None => self.err(SyntaxReason::UnexpectedEnd),
            Some(b'"') => {
                self.string()?;
                Ok((start, self.pos))
            }
            Some(b'{' | b'[') => {
                let mut level = 0usize;
                loop {
                    match self.src.get(self.pos) {
                        None => return self.err(SyntaxReason::UnexpectedEnd),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => {
                            level += 1;
                            if depth + level - 1 > self.max_depth {
                                return self.err(SyntaxReason::TooDeep(self.max_depth));
                            }
                        }
                        Some(b'}' | b']') => {
                            level -= 1;
                            if level == 0 {
                                self.pos += 1;
                                return Ok((start, self.pos));
                            }
                        }
                        Some(_) => {}
                    }
                    self.pos += 1;
                }
            }
            Some(_) => {
                // A number or literal: up to the next delimiter.
                while let Some(&b) = self.src.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                Ok((start, self.pos))
            }
        }
    }
}

/// Where JSON text is appended: bytes, or a `String` (text built from
/// `&str` pieces needs no UTF-8 check afterwards).
pub trait Sink {
    fn text(&mut self, s: &str);
}

impl Sink for Vec<u8> {
    #[inline]
    fn text(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl Sink for String {
    #[inline]
    fn text(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// Appends `s` as a JSON string (quotes, backslashes and control
/// characters escaped).
pub fn write_string(out: &mut impl Sink, s: &str) {
    const HEX: &str = "0123456789abcdef";
    out.text("\"");
    let bytes = s.as_bytes();
    let mut pos = 0;
    loop {
        // Plain runs are copied whole; only what needs escaping is looked
        // at. A run ends before an ASCII byte or at the end, so on a
        // character boundary.
        let end = plain_run(bytes, pos);
        out.text(s.get(pos..end).unwrap_or_default());
        let Some(&b) = bytes.get(end) else {
            break;
        };
        pos = end + 1;
        match b {
            b'"' => out.text("\\\""),
            b'\\' => out.text("\\\\"),
            b'\n' => out.text("\\n"),
            b'\r' => out.text("\\r"),
            b'\t' => out.text("\\t"),
            0..=0x1f => {
                let (hi, lo) = (usize::from(b >> 4), usize::from(b & 0x0f));
                out.text("\\u00");
                out.text(HEX.get(hi..=hi).unwrap_or_default());
                out.text(HEX.get(lo..=lo).unwrap_or_default());
            }
            // Not reached: a run ends only at the bytes above.
            _ => out.text(s.get(end..pos).unwrap_or_default()),
        }
    }
    out.text("\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_strings_that_read_back() {
        let s = "a\"b\\c\n\u{1}é😀";
        let mut out = Vec::new();
        write_string(&mut out, s);
        let mut r = Reader::new(&out, 1);
        let span = r.string().unwrap();
        assert_eq!(r.decode(span).unwrap().as_ref(), s.as_bytes());
        r.finish().unwrap();
    }

    fn validate(s: &str) -> Result<()> {
        let mut r = Reader::new(s.as_bytes(), 64);
        r.skip_value(1)?;
        r.finish()
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            r#"{}"#,
            r#"{"a":[1,-2.5e+3,0,true,false,null,"x\n\u00e9\ud83d\ude00"]}"#,
            " [ ] ",
            r#""\"\\\/\b\f\n\r\t""#,
            "-0.0E-7",
        ] {
            assert_eq!(validate(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        for (s, reason) in [
            ("{", SyntaxReason::UnexpectedEnd),
            (r#"{"a":1,}"#, SyntaxReason::UnexpectedByte("a string key")),
            ("[1,]", SyntaxReason::UnexpectedByte("a JSON value")),
            ("01", SyntaxReason::TrailingCharacters),
            ("1.", SyntaxReason::BadNumber),
            ("-", SyntaxReason::BadNumber),
            ("1e", SyntaxReason::BadNumber),
            (r#""\x""#, SyntaxReason::BadEscape),
            (r#""\ud800""#, SyntaxReason::BadUnicodeEscape),
            (r#""\udc00""#, SyntaxReason::BadUnicodeEscape),
            (r#""\u12g4""#, SyntaxReason::BadUnicodeEscape),
            ("\"a\u{1}b\"", SyntaxReason::ControlCharacter),
            ("tru", SyntaxReason::UnexpectedByte("a JSON value")),
            ("{} {}", SyntaxReason::TrailingCharacters),
            (
                "{'a':1}",
                SyntaxReason::UnexpectedByte("a string key or '}'"),
            ),
            ("[1 2]", SyntaxReason::UnexpectedByte("',' or ']'")),
        ] {
            assert_eq!(validate(s).map_err(|e| e.reason), Err(reason), "{s}");
        }
    }

    /// An object of `keys` (each written as given) read whole.
    fn object_of(keys: &[String]) -> Result<()> {
        let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
        validate(&format!("{{{}}}", members.join(",")))
    }

    #[test]
    fn refuses_a_key_written_twice_at_any_size_and_spelling() {
        // Keys of equal length and equal first and last eight bytes: the
        // hash filter sees them alike, the comparison does not.
        let alike = |n: usize| -> Vec<String> {
            (0..n).map(|i| format!("aaaaaaaa{i:04}aaaaaaaa")).collect()
        };
        for n in [1, 2, 15, 16, 17, 40, 2000] {
            let mut keys = alike(n);
            assert_eq!(object_of(&keys), Ok(()), "{n} distinct keys");
            keys.push(format!("aaaaaaaa{:04}aaaa\\u0061aaa", n / 2));
            let e = object_of(&keys).unwrap_err();
            assert_eq!(e.reason, SyntaxReason::DuplicateKey, "{n}");
            let src = format!(
                "{{{}}}",
                keys.iter()
                    .map(|k| format!("\"{k}\":1"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            assert_eq!(
                Some(e.offset),
                src.rfind(",\"").map(|at| at + 1),
                "{n}: the offset is the later copy's quote"
            );
        }
        for dup in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":[{"c":1,"c":1}]}}"#,
            r#"{"\u00e9":1,"é":2}"#,
            r#"{"":1,"":2}"#,
        ] {
            assert_eq!(
                validate(dup).map_err(|e| e.reason),
                Err(SyntaxReason::DuplicateKey),
                "{dup}"
            );
        }
        for fine in [
            r#"{"a":1,"A":2,"a ":3,"\u0061b":4}"#,
            r#"{"a":{"a":{"a":1}}}"#,
            r#"[{"a":1},{"a":1}]"#,
        ] {
            assert_eq!(validate(fine), Ok(()), "{fine}");
        }
        // Text read validated is not checked again; a reader can be told
        // to let duplicates pass (all else is still checked).
        let mut r = Reader::validated(br#"{"a":1,"a":2}"#, 0, 4);
        assert!(r.skip_value(1).is_ok());
        let mut r = Reader::new(br#"{"a":1,"a":2}"#, 4).allowing_duplicates();
        assert!(r.skip_value(1).is_ok());
    }

    #[test]
    fn enforces_depth() {
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert_eq!(validate(&ok), Ok(()));
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert_eq!(
            validate(&deep).map_err(|e| e.reason),
            Err(SyntaxReason::TooDeep(64))
        );
    }

    #[test]
    fn decodes_escapes() {
        let src = br#""a\u00e9\ud83d\ude00\n""#;
        let mut r = Reader::new(src, 64);
        let span = r.string().unwrap();
        assert_eq!(
            r.decode(span).unwrap().as_ref(),
            "a\u{e9}\u{1F600}\n".as_bytes()
        );
    }
}
