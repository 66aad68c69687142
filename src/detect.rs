//! Detectors: find PHI-shaped substrings (emails, SSNs, phone and card
//! numbers, IP addresses, dates, long digit runs) in a string.
//!
//! Hand-written scanners over bytes, no regex engine. The text is first
//! folded (fullwidth forms, Unicode dashes, spaces and decimal digits to
//! their ASCII forms) so that `１２３－４５－６７８９` or a number split by
//! no-break spaces is seen as what it is; matches are reported as byte
//! ranges of the original text.
//!
//! Boundaries: a digit form needs no digit glued to it; a non-ASCII letter
//! (an accented letter, CJK, Hangul, Thai: scripts written without spaces)
//! never hides a match. ASCII letters glue only to the unseparated forms
//! (a digit run, a bare card number, an IP address, a month name), so that
//! ordinary analytics values — prices, ISO timestamps, versions like
//! `10.4.12`, UUIDs, 6-digit numbers, SKUs — do not match.

use std::borrow::Cow;

/// One kind of PHI a detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Email,
    Ssn,
    Phone,
    Card,
    Ip,
    /// A run of 7 or more digits (record and account numbers).
    Id,
    /// A date with its day: Safe Harbor keeps only the year. After `Id`
    /// so that the bits of the older detectors keep their places.
    Date,
}

impl Detector {
    pub const ALL: [Detector; 7] = [
        Detector::Email,
        Detector::Ssn,
        Detector::Phone,
        Detector::Card,
        Detector::Ip,
        Detector::Id,
        Detector::Date,
    ];

    /// Its name in a policy, and in a redaction (`[email]`).
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Ssn => "ssn",
            Detector::Phone => "phone",
            Detector::Card => "card",
            Detector::Ip => "ip",
            Detector::Id => "id",
            Detector::Date => "date",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detectors(u8);

impl Detectors {
    /// What `"scan": true` means: every detector but `id` (digit runs are
    /// too common in ordinary values to be on by default).
    pub const DEFAULT: Detectors = Detectors(0b101_1111);

    pub fn with(self, d: Detector) -> Self {
        Detectors(self.0 | d.bit())
    }

    pub fn has(self, d: Detector) -> bool {
        self.0 & d.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as bits (for a prepared policy).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set these bits name, or `None` if a bit names no detector.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (u32::from(bits) < 1 << Detector::ALL.len()).then_some(Detectors(bits))
    }
}

/// A match: the byte range in the text and what was found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub what: Detector,
}

/// Every non-overlapping match in `text`, left to right (at a place where
/// two detectors match, the longer match wins); ranges of `text` itself.
pub fn find_all(text: &[u8], set: Detectors) -> Vec<Found> {
    let folded = Folded::new(text);
    let mut out = Vec::new();
    let mut at = 0;
    let t = folded.text();
    let set = needed(t, set);
    while at < t.len() {
        match find_at(t, at, set) {
            Some(found) => {
                at = found.end;
                out.push(folded.original(found, text.len()));
            }
            None => at = next_start(t, at),
        }
    }
    out
}

/// Whether anything in `text` matches.
pub fn any(text: &[u8], set: Detectors) -> bool {
    let folded = Folded::new(text);
    let t = folded.text();
    let set = needed(t, set);
    let mut at = 0;
    while at < t.len() {
        if find_at(t, at, set).is_some() {
            return true;
        }
        at = next_start(t, at);
    }
    false
}

/// The detectors of `set` that can match in `text`: an email needs an
/// `@` (found once here rather than looked for at every word).
fn needed(text: &[u8], set: Detectors) -> Detectors {
    if set.has(Detector::Email) && !text.contains(&b'@') {
        Detectors(set.0 & !Detector::Email.bit())
    } else {
        set
    }
}

/// The text as the detectors see it: each character of the original
/// folded to one character, and for each folded byte the original range
/// of its character (absent when the text is ASCII: nothing to fold).
struct Folded<'a> {
    text: Cow<'a, [u8]>,
    spans: Vec<(usize, usize)>,
}

impl<'a> Folded<'a> {
    fn new(original: &'a [u8]) -> Self {
        if original.is_ascii() {
            return Folded {
                text: Cow::Borrowed(original),
                spans: Vec::new(),
            };
        }
        let mut text = Vec::with_capacity(original.len());
        let mut spans = Vec::with_capacity(original.len());
        let mut at = 0;
        for chunk in original.utf8_chunks() {
            for c in chunk.valid().chars() {
                let end = at + c.len_utf8();
                let mut buf = [0; 4];
                for &b in fold(c).encode_utf8(&mut buf).as_bytes() {
                    text.push(b);
                    spans.push((at, end));
                }
                at = end;
            }
            // A byte that is not UTF-8 stands for itself as a control
            // character: no letter, digit or separator.
            for _ in chunk.invalid() {
                text.push(1);
                spans.push((at, at + 1));
                at += 1;
            }
        }
        Folded {
            text: Cow::Owned(text),
            spans,
        }
    }

    fn text(&self) -> &[u8] {
        &self.text
    }

    /// `found` (a range of the folded text) as a range of the original.
    fn original(&self, found: Found, len: usize) -> Found {
        if self.spans.is_empty() {
            return found;
        }
        // Out of range cannot happen; if it did, the whole text is the match.
        let start = self.spans.get(found.start).map_or(0, |s| s.0);
        let end = found
            .end
            .checked_sub(1)
            .and_then(|i| self.spans.get(i))
            .map_or(len, |s| s.1);
        Found {
            start,
            end,
            ..found
        }
    }
}

/// The first code point of each block of ten Unicode decimal digits
/// (Arabic-Indic, Devanagari, Bengali, Thai, ...), folded to `0`–`9`.
const DIGIT_ZEROS: [u32; 36] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
];

/// One character as the detectors read it: fullwidth ASCII (`１`, `＠`,
/// `－`, `：`) as ASCII, Unicode dashes and minus as `-`, ideographic full
/// stops as `.` (they separate IDN labels), Unicode spaces as a space,
/// decimal digits of any script as ASCII digits.
fn fold(c: char) -> char {
    let u = c as u32;
    if u < 0x80 {
        return c;
    }
    let ascii = match u {
        0xFF01..=0xFF5E => u - 0xFEE0,
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 => u32::from(b'-'),
        0x3002 | 0xFF61 => u32::from(b'.'),
        _ if c.is_whitespace() => u32::from(b' '),
        _ => match DIGIT_ZEROS.iter().find(|&&z| (z..z + 10).contains(&u)) {
            Some(z) => u32::from(b'0') + u - z,
            None => return c,
        },
    };
    char::from_u32(ascii).unwrap_or(c)
}

/// The next place after `at` where a match may start. A match starts
/// after an ASCII letter or digit only where a digit follows a letter
/// (`SSN123-45-6789`); the rest of a word, and the inside of a UTF-8
/// character, is passed over: the scan costs per word, not per byte.
#[inline(always)]
fn next_start(text: &[u8], at: usize) -> usize {
    let mut at = at + 1;
    while let (Some(&prev), Some(&b)) = (text.get(at.wrapping_sub(1)), text.get(at)) {
        let inside_word = prev.is_ascii_alphanumeric()
            && b.is_ascii_alphanumeric()
            && !(prev.is_ascii_alphabetic() && b.is_ascii_digit());
        if !(inside_word || b & 0xC0 == 0x80) {
            break;
        }
        at += 1;
    }
    at
}

/// The longest match starting at `at` (an email's may start a few
/// separators later).
fn find_at(text: &[u8], at: usize, set: Detectors) -> Option<Found> {
    let b = *text.get(at)?;
    // Fast path: only these bytes can start a match.
    if !(b.is_ascii_alphanumeric()
        || matches!(b, b'+' | b'(' | b':' | b'_' | b'%' | b'.' | b'-' | b'\'')
        || b >= 0xC0)
    {
        return None;
    }
    let mut best: Option<Found> = None;
    let mut consider = |what: Detector, range: Option<(usize, usize)>| {
        if let Some((start, end)) = range {
            if best.is_none_or(|b| end > b.end) {
                best = Some(Found { start, end, what });
            }
        }
    };
    let from = |end: Option<usize>| end.map(|end| (at, end));
    if set.has(Detector::Email) {
        consider(Detector::Email, email(text, at));
    }
    if !b.is_ascii_alphanumeric() && !matches!(b, b'+' | b'(' | b':') {
        return best;
    }
    if set.has(Detector::Ssn) {
        consider(Detector::Ssn, from(ssn(text, at)));
    }
    if set.has(Detector::Phone) {
        consider(Detector::Phone, from(phone(text, at)));
    }
    if set.has(Detector::Card) {
        consider(Detector::Card, from(card(text, at)));
    }
    if set.has(Detector::Ip) {
        consider(
            Detector::Ip,
            from(ipv4(text, at).or_else(|| ipv6(text, at))),
        );
    }
    if set.has(Detector::Id) {
        consider(Detector::Id, from(digit_run(text, at)));
    }
    if set.has(Detector::Date) {
        consider(Detector::Date, from(date(text, at)));
    }
    best
}

fn is_digit_at(text: &[u8], at: usize) -> bool {
    text.get(at).is_some_and(u8::is_ascii_digit)
}

fn is_alnum_at(text: &[u8], at: usize) -> bool {
    text.get(at).is_some_and(u8::is_ascii_alphanumeric)
}

/// A digit just before `at` (digits of every script are folded to ASCII).
fn digit_before(text: &[u8], at: usize) -> bool {
    at > 0 && is_digit_at(text, at - 1)
}

/// An ASCII letter or digit just before `at`.
fn alnum_before(text: &[u8], at: usize) -> bool {
    at > 0 && is_alnum_at(text, at - 1)
}

/// A decimal number's digits and a dot just before `at` (`0.41…`: a
/// fraction, not the start of a number of its own).
fn fraction_before(text: &[u8], at: usize) -> bool {
    at >= 2 && text.get(at - 1) == Some(&b'.') && is_digit_at(text, at - 2)
}

/// A dot and a digit at `at`: a longer dotted number goes on.
fn dotted_after(text: &[u8], at: usize) -> bool {
    text.get(at) == Some(&b'.') && is_digit_at(text, at + 1)
}

/// Digits from `at`: how many.
fn digits(text: &[u8], at: usize) -> usize {
    text.get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// Exactly `n` digits at `at` followed by no other digit: the end.
fn exact_digits(text: &[u8], at: usize, n: usize) -> Option<usize> {
    (digits(text, at) == n).then_some(at + n)
}

/// The value of the 1 to `max` digits at `at` (followed by no other
/// digit), and their end.
fn number(text: &[u8], at: usize, max: usize) -> Option<(u32, usize)> {
    let n = digits(text, at);
    if n == 0 || n > max {
        return None;
    }
    let value = text
        .get(at..at + n)?
        .iter()
        .fold(0, |v, d| v * 10 + u32::from(d - b'0'));
    Some((value, at + n))
}

fn byte_in(text: &[u8], at: usize, set: &[u8]) -> Option<u8> {
    text.get(at).copied().filter(|b| set.contains(b))
}

/// The character starting at `at`, if one does.
fn char_at(text: &[u8], at: usize) -> Option<char> {
    let first = *text.get(at)?;
    if first.is_ascii() {
        return Some(char::from(first));
    }
    let bytes = text.get(at..(at + 4).min(text.len()))?;
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok()?,
    };
    valid.chars().next()
}

/// The character ending at `at`, if one does.
fn char_before(text: &[u8], at: usize) -> Option<char> {
    let last = *text.get(at.checked_sub(1)?)?;
    if last.is_ascii() {
        return Some(char::from(last));
    }
    let from = (1..=4.min(at)).find(|n| text.get(at - n).is_some_and(|b| b & 0xC0 != 0x80))?;
    char_at(text, at - from).filter(|c| c.len_utf8() == from)
}

/// Combining marks (a decomposed `é` is `e` and U+0301) and the joiners
/// some scripts write inside words: parts of the letter before them.
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF
        | 0xFE20..=0xFE2F | 0x200C | 0x200D)
}

/// A letter or digit of any script.
fn is_letter(c: char) -> bool {
    c.is_alphanumeric() || is_mark(c)
}

/// What an email's local part is made of.
fn is_local(c: char) -> bool {
    is_letter(c) || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'')
}

/// `local@domain.tld`: a local part of letters and digits of any script
/// and `._%+-'`, a domain of two or more labels (letters and digits of
/// any script, `-` inside), the last one of two or more letters or an
/// `xn--` label. Separators leading the local part (`-jane@…`, `'jane@…`)
/// are not part of the match; a letter touching the local part is.
fn email(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = char_at(text, at)?;
    // The local part starts where a run of its characters starts.
    if !is_local(first) || char_before(text, at).is_some_and(is_local) {
        return None;
    }
    let mut p = at;
    let mut start = None;
    while let Some(c) = char_at(text, p) {
        if !is_local(c) {
            break;
        }
        if start.is_none() && (is_letter(c) || matches!(c, '_' | '%')) {
            start = Some(p);
        }
        p += c.len_utf8();
    }
    let start = start?;
    if text.get(p) != Some(&b'@') {
        return None;
    }
    domain(text, p + 1).map(|end| (start, end))
}

/// The end of a domain name starting at `at`: the longest run of two or
/// more labels that ends in a top-level domain (`x.com` in `x.com.123`).
fn domain(text: &[u8], at: usize) -> Option<usize> {
    let mut end = at;
    let mut labels = 0;
    let mut best = None;
    while let Some((label_end, last)) = label(text, end) {
        labels += 1;
        let name = text.get(end..label_end).unwrap_or_default();
        if labels >= 2 && top_level(name) {
            best = Some(label_end);
        } else if labels >= 2 {
            // A dash, digit or mark glued after the domain ("x.com—we",
            // "x.com1") must not hide it: its leading letters may end it.
            let letters = leading_letters(name);
            if top_level(name.get(..letters).unwrap_or_default()) {
                best = Some(end + letters);
            }
        }
        end = label_end;
        let goes_on =
            !last && text.get(end) == Some(&b'.') && char_at(text, end + 1).is_some_and(is_letter);
        if !goes_on {
            break;
        }
        end += 1;
    }
    best
}

/// A label at `at`: its end, and whether the name ends with it (a `-`
/// after it: the hyphen is punctuation, not part of the label).
fn label(text: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut p = at;
    let mut end = at;
    while let Some(c) = char_at(text, p) {
        if !(is_letter(c) || c == '-') {
            break;
        }
        p += c.len_utf8();
        if c != '-' {
            end = p;
        }
    }
    (end > at && text.get(at) != Some(&b'-')).then_some((end, end < p))
}

/// How many bytes of `label` are letters (of any script) before its
/// first other character.
fn leading_letters(label: &[u8]) -> usize {
    let text = std::str::from_utf8(label).unwrap_or_default();
    text.char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(text.len(), |(i, _)| i)
}

/// A top-level domain: two or more letters of any script, or an ASCII
/// IDN label (`xn--p1ai`).
fn top_level(label: &[u8]) -> bool {
    let Ok(label) = std::str::from_utf8(label) else {
        return false;
    };
    let idn = label.len() > 4
        && label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("xn--"));
    idn || (label.chars().count() >= 2 && label.chars().all(char::is_alphabetic))
}

/// `ddd-dd-dddd`, `ddd dd dddd` or `ddd.dd.dddd`: the area not 000, 666
/// or 9xx; the group not 00, the serial not 0000 (numbers the SSA never
/// issues); no digit glued to it.
fn ssn(text: &[u8], at: usize) -> Option<usize> {
    if digit_before(text, at) {
        return None;
    }
    let area_end = exact_digits(text, at, 3)?;
    let sep = byte_in(text, area_end, b"- .")?;
    let group_end = exact_digits(text, area_end + 1, 2)?;
    if text.get(group_end) != Some(&sep) {
        return None;
    }
    let end = exact_digits(text, group_end + 1, 4)?;
    let area = text.get(at..area_end)?;
    let valid = area != b"000"
        && area != b"666"
        && area.first() != Some(&b'9')
        && text.get(area_end + 1..group_end)? != b"00"
        && text.get(group_end + 1..end)? != b"0000";
    let dotted = sep == b'.' && (fraction_before(text, at) || dotted_after(text, end));
    (valid && !dotted).then_some(end)
}

/// North American numbers with separators (`555-123-4567`, `(555)
/// 123-4567`, `555.123.4567`) and `+` numbers (`+1 555 123 4567`, `+44 20
/// 7946 0958`, `+15551234567`: 8 to 15 digits), no digit glued to them.
fn phone(text: &[u8], at: usize) -> Option<usize> {
    if digit_before(text, at) {
        return None;
    }
    if text.get(at) == Some(&b'+') {
        return international(text, at + 1);
    }
    let end = nanp(text, at)?;
    let dotted =
        text.get(at + 3) == Some(&b'.') && (fraction_before(text, at) || dotted_after(text, end));
    (!dotted).then_some(end)
}

/// Digit groups after a `+`: single spaces, dots or dashes between them,
/// a group may be in parentheses (`+44 (0)20 …`); the longest run of 8
/// to 15 digits that ends a group.
fn international(text: &[u8], mut p: usize) -> Option<usize> {
    let mut count = 0;
    let mut best = None;
    loop {
        let open = text.get(p) == Some(&b'(');
        if open {
            p += 1;
        }
        let n = digits(text, p);
        if n == 0 {
            break;
        }
        p += n;
        count += n;
        if open {
            if text.get(p) != Some(&b')') {
                break;
            }
            p += 1;
        }
        if count > 15 {
            break;
        }
        if count >= 8 {
            best = Some(p);
        }
        let sep = byte_in(text, p, b" .-").is_some()
            && (is_digit_at(text, p + 1) || text.get(p + 1) == Some(&b'('));
        if sep {
            p += 1;
        } else if !(text.get(p) == Some(&b'(') || (open && is_digit_at(text, p))) {
            break;
        }
    }
    best
}

/// `ddd` or `(ddd)`, then `ddd` and `dddd`, with separators between them
/// (a bare run of ten digits is not taken for a phone number).
fn nanp(text: &[u8], at: usize) -> Option<usize> {
    let exchange_at = if text.get(at) == Some(&b'(') {
        let close = exact_digits(text, at + 1, 3)?;
        if text.get(close) != Some(&b')') {
            return None;
        }
        close + 1 + usize::from(byte_in(text, close + 1, b" -.").is_some())
    } else {
        let area_end = exact_digits(text, at, 3)?;
        byte_in(text, area_end, b" -.")?;
        area_end + 1
    };
    let exchange_end = exact_digits(text, exchange_at, 3)?;
    byte_in(text, exchange_end, b" -.")?;
    exact_digits(text, exchange_end + 1, 4)
}

/// 13 to 19 digits, single spaces, dashes or dots allowed between them,
/// a major network's first digit (2 to 6) and a valid Luhn check digit.
/// No digit glued to it, and not the fraction of a decimal number; an
/// ASCII letter may touch it only when it is written in groups, and a
/// group chain that goes on with `-` and a letter or digit (a UUID) is
/// not a card.
fn card(text: &[u8], at: usize) -> Option<usize> {
    let first = *text.get(at)?;
    if digit_before(text, at) || fraction_before(text, at) || !(b'2'..=b'6').contains(&first) {
        return None;
    }
    let after_letter = alnum_before(text, at);
    // The digits so far (no allocation: this runs at every number).
    let mut sum = [0u8; 19];
    let mut count = 0;
    let mut p = at;
    let mut grouped = false;
    let mut best = None;
    while let Some(&b) = text.get(p) {
        if b.is_ascii_digit() {
            let Some(slot) = sum.get_mut(count) else {
                return best;
            };
            *slot = b - b'0';
            count += 1;
            p += 1;
            let ends = !is_digit_at(text, p)
                && (grouped || !(after_letter || is_alnum_at(text, p)))
                && !(text.get(p) == Some(&b'-') && is_alnum_at(text, p + 1));
            if count >= 13 && ends && luhn(sum.get(..count).unwrap_or_default()) {
                best = Some(p);
            }
        } else if matches!(b, b' ' | b'-' | b'.') && is_digit_at(text, p + 1) {
            grouped = true;
            p += 1;
        } else {
            break;
        }
    }
    best
}

fn luhn(digits: &[u8]) -> bool {
    let total: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    total % 10 == 0
}

/// A dotted IPv4 address, not part of a longer dotted number (so the
/// version `1.2.3.4.5` is not an address) nor glued to an ASCII letter
/// or digit (`v1.2.3.4`).
fn ipv4(text: &[u8], at: usize) -> Option<usize> {
    if alnum_before(text, at) || fraction_before(text, at) {
        return None;
    }
    let mut p = at;
    for part in 0..4 {
        let n = digits(text, p);
        let (value, end) = number(text, p, 3)?;
        if value > 255 || (n > 1 && text.get(p) == Some(&b'0')) {
            return None;
        }
        p = end;
        if part < 3 {
            if text.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
    }
    (!is_alnum_at(text, p) && !dotted_after(text, p)).then_some(p)
}

/// An IPv6 address (any form `std` parses, with at least two colons),
/// not glued to an ASCII letter or digit.
fn ipv6(text: &[u8], at: usize) -> Option<usize> {
    let token_char = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.');
    // Where the token starts: not inside one; a single `:` or `.` before
    // it is punctuation (`IP:2001:db8::1`, a fullwidth colon folded).
    let inside = |i: usize| text.get(i).is_some_and(token_char);
    let mark_before = at > 0 && matches!(text.get(at - 1), Some(b':' | b'.'));
    let punctuation = mark_before && (at < 2 || !inside(at - 2)) && text.get(at) != Some(&b':');
    if alnum_before(text, at) || (at > 0 && inside(at - 1) && !punctuation) {
        return None;
    }
    // A colon comes within a group of four hex digits ("2001:", "::").
    let head = text.get(at..(at + 5).min(text.len()))?;
    if !head.contains(&b':') {
        return None;
    }
    let len = text.get(at..)?.iter().take_while(|b| token_char(b)).count();
    let token = text.get(at..at + len)?;
    if token.iter().filter(|&&b| b == b':').count() < 2 || is_alnum_at(text, at + len) {
        return None;
    }
    // The token may end in a dot or colon that is punctuation ("… ::1.").
    let parse = |t: &[u8]| crate::action::ip::parse_v6(t).map(|_| at + t.len());
    parse(token).or_else(|| match token.split_last() {
        Some((b'.' | b':', rest)) => parse(rest),
        _ => None,
    })
}

/// Seven or more digits in a row, not glued to ASCII letters or other
/// digits, and not the fraction of a decimal number.
fn digit_run(text: &[u8], at: usize) -> Option<usize> {
    if alnum_before(text, at) || fraction_before(text, at) {
        return None;
    }
    let n = digits(text, at);
    (n >= 7 && !is_alnum_at(text, at + n)).then_some(at + n)
}

/// A date with its day: numeric (`1962-03-14`, `03/14/1962`,
/// `14.03.1962`, `3/14/62`) or with an English month name (`March 14,
/// 1962`, `14 March 1962`, `Mar 14 1962`, `14-Mar-1962`). Not an ISO
/// timestamp (`2026-11-23T14:05:11Z`: an ordinary value).
fn date(text: &[u8], at: usize) -> Option<usize> {
    let first = *text.get(at)?;
    if first.is_ascii_alphabetic() {
        return month_first(text, at);
    }
    if !first.is_ascii_digit() || digit_before(text, at) {
        return None;
    }
    year_first(text, at)
        .or_else(|| day_first_numeric(text, at))
        .or_else(|| day_first_named(text, at))
}

/// A year of four digits (1000 to 2999) at `at`: its end.
fn year4(text: &[u8], at: usize) -> Option<usize> {
    let (value, end) = number(text, at, 4)?;
    ((1000..3000).contains(&value) && end == at + 4).then_some(end)
}

/// `yyyy-mm-dd` (or `/`, `.`), unless a time follows (`T14:05`, ` 14:05`).
fn year_first(text: &[u8], at: usize) -> Option<usize> {
    let year_end = year4(text, at)?;
    let sep = byte_in(text, year_end, b"-/.")?;
    let (month, month_end) = number(text, year_end + 1, 2)?;
    if text.get(month_end) != Some(&sep) {
        return None;
    }
    let (day, end) = number(text, month_end + 1, 2)?;
    let timestamp = matches!(text.get(end), Some(b'T' | b't')) && is_digit_at(text, end + 1)
        || text.get(end) == Some(&b' ')
            && digits(text, end + 1) == 2
            && text.get(end + 3) == Some(&b':');
    let dotted = sep == b'.' && (fraction_before(text, at) || dotted_after(text, end));
    ((1..=12).contains(&month) && (1..=31).contains(&day) && !timestamp && !dotted).then_some(end)
}

/// `mm/dd/yyyy` or `dd/mm/yyyy` (or `-`, `.`); with `/` also a two-digit
/// year (`3/14/62`).
fn day_first_numeric(text: &[u8], at: usize) -> Option<usize> {
    let (a, a_end) = number(text, at, 2)?;
    let sep = byte_in(text, a_end, b"/-.")?;
    let (b, b_end) = number(text, a_end + 1, 2)?;
    if text.get(b_end) != Some(&sep) {
        return None;
    }
    let end = match year4(text, b_end + 1) {
        Some(end) => end,
        None if sep == b'/' && digits(text, b_end + 1) == 2 => b_end + 3,
        None => return None,
    };
    let day_month = |d: u32, m: u32| (1..=31).contains(&d) && (1..=12).contains(&m);
    let dotted = sep == b'.' && (fraction_before(text, at) || dotted_after(text, end));
    ((day_month(a, b) || day_month(b, a)) && !dotted).then_some(end)
}

/// `14 March 1962`, `14th of March, 1962`, `14-Mar-1962`.
fn day_first_named(text: &[u8], at: usize) -> Option<usize> {
    let p = day(text, at)?;
    let mut p = gap(text, p)?;
    if text
        .get(p..p + 3)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"of "))
    {
        p += 3;
    }
    let p = month(text, p)?;
    year4(text, gap(text, p)?)
}

/// `March 14, 1962`, `Mar. 14th 1962`, `mar-14-1962`.
fn month_first(text: &[u8], at: usize) -> Option<usize> {
    let first = text.get(at)?.to_ascii_lowercase();
    if alnum_before(text, at) || !b"jfmasond".contains(&first) {
        return None;
    }
    let end = month(text, at)?;
    // `Mar.14` has its gap in the abbreviation's dot.
    let p = gap(text, end).or((text.get(end - 1) == Some(&b'.')).then_some(end))?;
    let p = gap(text, day(text, p)?)?;
    year4(text, p)
}

/// A day of the month (1 to 31), maybe with its suffix (`14th`): its end.
fn day(text: &[u8], at: usize) -> Option<usize> {
    let (value, mut end) = number(text, at, 2)?;
    if !(1..=31).contains(&value) {
        return None;
    }
    let suffix = text.get(end..end + 2).unwrap_or_default();
    if [b"st", b"nd", b"rd", b"th"]
        .iter()
        .any(|s| suffix.eq_ignore_ascii_case(*s))
    {
        end += 2;
    }
    (!is_alnum_at(text, end)).then_some(end)
}

/// An English month name or its abbreviation (any case, `Sept` too, a dot
/// after an abbreviation) at `at`: its end.
fn month(text: &[u8], at: usize) -> Option<usize> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let len = text
        .get(at..)?
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    // No month name is shorter than 3 letters or longer than 9.
    if !(3..=9).contains(&len) {
        return None;
    }
    let word = text.get(at..at + len)?;
    let full = MONTHS
        .iter()
        .any(|m| m.as_bytes().eq_ignore_ascii_case(word));
    let short = (len == 3 || word.eq_ignore_ascii_case(b"sept"))
        && MONTHS.iter().any(|m| {
            m.as_bytes()
                .get(..len)
                .is_some_and(|p| p.eq_ignore_ascii_case(word))
        });
    let end = at + len;
    match (full, short) {
        (true, _) => Some(end),
        (false, true) => Some(end + usize::from(text.get(end) == Some(&b'.'))),
        _ => None,
    }
}

/// One to three spaces, commas, dashes, slashes or dots between the parts
/// of a written date: where the next part starts.
fn gap(text: &[u8], at: usize) -> Option<usize> {
    let n = text
        .get(at..)?
        .iter()
        .take(4)
        .take_while(|b| matches!(b, b' ' | b',' | b'-' | b'/' | b'.'))
        .count();
    (1..=3).contains(&n).then_some(at + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, set: Detectors) -> Vec<(&str, &'static str)> {
        find_all(text.as_bytes(), set)
            .into_iter()
            .map(|f| (&text[f.start..f.end], f.what.name()))
            .collect()
    }

    fn all() -> Detectors {
        Detectors::DEFAULT.with(Detector::Id)
    }

    /// Every place tried, one byte after another: what `find_all` must
    /// find although it passes over the rest of each word.
    fn every_place(text: &[u8], set: Detectors) -> Vec<(usize, usize)> {
        let folded = Folded::new(text);
        let t = folded.text();
        let mut out = Vec::new();
        let mut at = 0;
        while at < t.len() {
            match find_at(t, at, set) {
                Some(f) => {
                    let f = folded.original(f, text.len());
                    out.push((f.start, f.end));
                    at = find_at(t, at, set).map_or(at + 1, |f| f.end);
                }
                None => at += 1,
            }
        }
        out
    }

    #[test]
    fn what_is_glued_after_an_email_does_not_hide_it() {
        for tail in [
            "\u{2014}we reply",
            "\u{2013}2",
            "-x",
            "1",
            "\u{301}",
            "\u{200d}",
            "_notes",
        ] {
            let text = format!("write to jane@example.com{tail}");
            assert_eq!(
                kinds(&text, Detectors::DEFAULT).first(),
                Some(&("jane@example.com", "email")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn passing_over_words_misses_no_match() {
        // Texts of the characters detectors turn on, glued to letters and
        // digits every way, non-ASCII ones included: a pseudo-random walk.
        let alphabet = [
            "a", "9", "Z", "0", "@", ".", "-", "+", "(", ")", ":", " ", "_", "%", "x", "5", "e",
            "2", "/", "M", "ar", "T", "é", "\u{a0}", "电", "’", "–", "１", "＠", "\u{200b}", "Ж",
            "'", ",", "th",
        ];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..6000 {
            let len = (seed % 40) as usize + 1;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[(seed % alphabet.len() as u32) as usize]
                })
                .collect();
            let fast: Vec<_> = find_all(text.as_bytes(), all())
                .iter()
                .map(|f| (f.start, f.end))
                .collect();
            assert_eq!(fast, every_place(text.as_bytes(), all()), "{text:?}");
            assert_eq!(any(text.as_bytes(), all()), !fast.is_empty());
        }
        // And on real matches glued to words.
        for text in [
            "x jane@a.example y",
            "id1234567 1234567",
            "a+15551234567 +15551234567",
            "a(555) 123-4567 (555) 123-4567",
            "v1.2.3.4 1.2.3.4",
            "x::1 ::1",
            "SSN123-45-6789 DOB03/14/1962 xMarch 14, 1962",
            "患者１２３－４５－６７８９、电话555-123-4567",
        ] {
            let fast: Vec<_> = find_all(text.as_bytes(), all())
                .iter()
                .map(|f| (f.start, f.end))
                .collect();
            assert_eq!(fast, every_place(text.as_bytes(), all()), "{text}");
        }
    }

    #[test]
    fn finds_each_kind() {
        for (text, want) in [
            (
                "mail jane.doe+x@mail.example.com now",
                ("jane.doe+x@mail.example.com", "email"),
            ),
            ("ssn 123-45-6789.", ("123-45-6789", "ssn")),
            ("ssn 123 45 6789", ("123 45 6789", "ssn")),
            ("ssn 123.45.6789", ("123.45.6789", "ssn")),
            ("SSN123-45-6789", ("123-45-6789", "ssn")),
            ("call 555-123-4567", ("555-123-4567", "phone")),
            ("call (555) 123-4567", ("(555) 123-4567", "phone")),
            ("call 555.123.4567", ("555.123.4567", "phone")),
            ("call +1 555 123 4567", ("+1 555 123 4567", "phone")),
            ("call +1 (555) 123-4567", ("+1 (555) 123-4567", "phone")),
            ("call +15551234567", ("+15551234567", "phone")),
            ("call +447911123456", ("+447911123456", "phone")),
            ("call +44 20 7946 0958", ("+44 20 7946 0958", "phone")),
            (
                "call +44 (0)20 7946 0958.",
                ("+44 (0)20 7946 0958", "phone"),
            ),
            ("call +33.1.23.45.67.89", ("+33.1.23.45.67.89", "phone")),
            ("call +49-30-901820", ("+49-30-901820", "phone")),
            ("card 4111 1111 1111 1111", ("4111 1111 1111 1111", "card")),
            ("card 4111-1111-1111-1111", ("4111-1111-1111-1111", "card")),
            ("card 4111.1111.1111.1111", ("4111.1111.1111.1111", "card")),
            ("card 378282246310005", ("378282246310005", "card")),
            ("from 203.0.113.7:", ("203.0.113.7", "ip")),
            ("from 2001:db8::1 ok", ("2001:db8::1", "ip")),
            ("from ::ffff:192.0.2.1", ("::ffff:192.0.2.1", "ip")),
            ("ip:2001:db8::1", ("2001:db8::1", "ip")),
            ("mrn 4839201", ("4839201", "id")),
            ("DOB 03/14/1962", ("03/14/1962", "date")),
            ("DOB 14.03.1962", ("14.03.1962", "date")),
            ("DOB 1962-03-14", ("1962-03-14", "date")),
            ("DOB 1962/3/14", ("1962/3/14", "date")),
            ("DOB 14-03-1962", ("14-03-1962", "date")),
            ("DOB 3/14/62", ("3/14/62", "date")),
            ("born March 14, 1962.", ("March 14, 1962", "date")),
            ("born 14 March 1962", ("14 March 1962", "date")),
            ("born Mar 14 1962", ("Mar 14 1962", "date")),
            ("born MAR. 14TH, 1962", ("MAR. 14TH, 1962", "date")),
            ("born sept 3 1962", ("sept 3 1962", "date")),
            ("born 14-Mar-1962", ("14-Mar-1962", "date")),
            ("born 14th of march 1962", ("14th of march 1962", "date")),
            ("visit 2026-11-23", ("2026-11-23", "date")),
            ("DOB03/14/1962", ("03/14/1962", "date")),
        ] {
            assert_eq!(kinds(text, all()), [want], "{text}");
        }
    }

    #[test]
    fn finds_unicode_emails() {
        for (text, want) in [
            ("to josé.garcía@correo.es", "josé.garcía@correo.es"),
            ("to 用户@例子.广告 now", "用户@例子.广告"),
            ("to jane@bücher.de.", "jane@bücher.de"),
            ("to иван@почта.рф", "иван@почта.рф"),
            (
                "to jane@xn--bcher-kva.example",
                "jane@xn--bcher-kva.example",
            ),
            ("to jane@example.xn--p1ai", "jane@example.xn--p1ai"),
            ("-jane@x.com", "jane@x.com"),
            ("'jane@x.com'", "jane@x.com"),
            ("o'brien@x.com", "o'brien@x.com"),
            ("jane@x.com-", "jane@x.com"),
            ("jane@x.com.123", "jane@x.com"),
            ("jose\u{301}@x.com", "jose\u{301}@x.com"),
            ("ｊａｎｅ＠ｘ．ｃｏｍ", "ｊａｎｅ＠ｘ．ｃｏｍ"),
            ("jane＠example.com", "jane＠example.com"),
            ("jane@例子。中国", "jane@例子。中国"),
        ] {
            assert_eq!(kinds(text, Detectors::DEFAULT), [(want, "email")], "{text}");
        }
    }

    /// Boundary characters: none of them may hide a match, before or
    /// after it, and the match is the original bytes of the PHI.
    const NEIGHBOURS: [&str; 25] = [
        "\u{a0}", "\u{202f}", "\u{2009}", "\u{3000}", "’", "‘", "“", "”", "–", "—", "‑", "−", "：",
        "。", "、", "电话", "患者", "전화", "é", "Ж", "😀", "\u{200b}", "\t", "\n", "’s",
    ];

    /// Each detector's PHI, in ASCII and fullwidth forms.
    const PHI: [(&str, &str); 22] = [
        ("jane.doe@example.com", "email"),
        ("123-45-6789", "ssn"),
        ("123 45 6789", "ssn"),
        ("123.45.6789", "ssn"),
        ("１２３－４５－６７８９", "ssn"),
        ("123\u{a0}45\u{a0}6789", "ssn"),
        ("555-123-4567", "phone"),
        ("(555) 123-4567", "phone"),
        ("+1 555 123 4567", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("555–123–4567", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("4111.1111.1111.1111", "card"),
        ("４１１１１１１１１１１１１１１１", "card"),
        ("203.0.113.7", "ip"),
        ("2001:db8::1", "ip"),
        ("4839201", "id"),
        ("٤٨٣٩٢٠١", "id"),
        ("03/14/1962", "date"),
        ("1962-03-14", "date"),
        ("March 14, 1962", "date"),
        ("14 March 1962", "date"),
    ];

    #[test]
    fn no_neighbour_hides_a_match() {
        for (phi, what) in PHI {
            for n in NEIGHBOURS {
                for (before, after) in [(n, ""), ("", n), (n, n)] {
                    // "’s" follows a word (an ASCII letter before a bare
                    // number is glue: "x4839201" is an identifier).
                    if n == "’s" && !before.is_empty() {
                        continue;
                    }
                    let text = format!("{before}{phi}{after}");
                    let found = find_all(text.as_bytes(), all());
                    // A letter touching an email belongs to its local part
                    // or its domain: the match takes it in.
                    let (start, end) = if what == "email" {
                        let glued_after =
                            after.len() - after.trim_start_matches(char::is_alphanumeric).len();
                        (
                            before.trim_end_matches(char::is_alphanumeric).len(),
                            before.len() + phi.len() + glued_after,
                        )
                    } else {
                        (before.len(), before.len() + phi.len())
                    };
                    assert_eq!(
                        found
                            .iter()
                            .map(|f| (f.start, f.end, f.what.name()))
                            .collect::<Vec<_>>(),
                        [(start, end, what)],
                        "{text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_digit_glued_to_a_number_hides_it() {
        for text in [
            "1123-45-6789",
            "123-45-67890",
            "0555-123-4567",
            "14111 1111 1111 1111",
            "１４８３９２０１x",
            "x4839201",
            "4839201x",
            "9203.0.113.7",
        ] {
            assert_eq!(kinds(text, all()), [], "{text}");
        }
    }

    #[test]
    fn folds_to_ascii() {
        assert_eq!(fold('１'), '1');
        assert_eq!(fold('＠'), '@');
        assert_eq!(fold('～'), '~');
        assert_eq!(fold('\u{2011}'), '-');
        assert_eq!(fold('\u{2212}'), '-');
        assert_eq!(fold('\u{202f}'), ' ');
        assert_eq!(fold('٣'), '3');
        assert_eq!(fold('๙'), '9');
        assert_eq!(fold('é'), 'é');
        // Every block of digits folded holds ten digits.
        for zero in DIGIT_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).unwrap();
                assert!(c.is_numeric(), "{c:?}");
                assert_eq!(fold(c), char::from(b'0' + d as u8));
            }
        }
        // Not UTF-8: each stray byte is a boundary, the ranges still
        // those of the original.
        let text = b"\xff123-45-6789\xfe";
        let found = find_all(text, Detectors::DEFAULT);
        assert_eq!((found[0].start, found[0].end), (1, 12));
    }

    #[test]
    fn ordinary_values_do_not_match() {
        for text in [
            "19.99",
            "1,234.56",
            "$250.00",
            "€19,99",
            "19,99 €",
            "¥1,200",
            "£1,234.50",
            "₹1,23,456.00",
            "2026-11-23T14:05:11.000Z",
            "2026-11-23T14:05:11+01:00",
            "2026-11-23t14:05:11z",
            "2026-11-23 14:05:11",
            "20261123T140511Z",
            "10.4.12",
            "1.2.3.4.5",
            "v1.2.3.4",
            "10.4.2",
            "2.11.2024.1",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "12345678-1234-1234-1234-123456789012",
            "abcd4111-1111-1111-1111-123456789012",
            "123456",
            "654321",
            "ajs-next-1732270000-7e1f",
            "1732270000000",
            "Order 4111111111111112",
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "5551234567",
            "a@b",
            "user@localhost",
            "12:30:45",
            "v2.0.1-beta",
            "SKU-00012",
            "x1234567",
            "1234567x",
            "Glucose Meter GLU-100 (2-pack)",
            "Vitamin D3 2000 IU, 90 tablets",
            "Blood Pressure Monitor BP-5500 v2.1",
            "Order #A-10233, qty 3 @ $14.99",
            "14:05:11.123",
            "USD 1,250,000.00",
            "0.4111111111111111",
            "3/4",
            "10/12",
            "12/2025",
            "March 2026",
            "May I help?",
            "Marching band 14, 1962",
            "13/13/1962",
            "1962-13-14",
            "+01:00",
            "Q3 2026",
        ] {
            assert_eq!(kinds(text, Detectors::DEFAULT), [], "{text}");
        }
        for text in [
            "123456",
            "x1234567",
            "1234567x",
            "19.99",
            "v2.0.1-beta",
            "0.12345678",
        ] {
            assert_eq!(kinds(text, all()), [], "{text}");
        }
    }

    #[test]
    fn default_set_leaves_digit_runs() {
        assert_eq!(kinds("account 12345678", Detectors::DEFAULT), []);
        assert!(any(b"jane@example.com", Detectors::DEFAULT));
        assert!(any("生日1962年03/14/1962".as_bytes(), Detectors::DEFAULT));
        assert!(!any(b"jane@example.com", Detectors::default()));
        assert!(Detectors::DEFAULT.has(Detector::Date));
        assert!(!Detectors::DEFAULT.has(Detector::Id));
        assert_eq!(Detectors::from_bits(0x7f), Some(all()));
        assert_eq!(Detectors::from_bits(0x80), None);
    }

    #[test]
    fn several_matches_in_order() {
        assert_eq!(
            kinds("jane@x.org or 123-45-6789", Detectors::DEFAULT),
            [("jane@x.org", "email"), ("123-45-6789", "ssn")]
        );
        assert_eq!(
            kinds("电话555-123-4567，患者123-45-6789", Detectors::DEFAULT),
            [("555-123-4567", "phone"), ("123-45-6789", "ssn")]
        );
    }

    #[test]
    fn hostile_input_never_panics() {
        let long = "1.".repeat(20_000) + &"a-".repeat(20_000) + &"@".repeat(1000);
        for text in [
            long.as_bytes(),
            b"\xf0\x9f",
            b"\xe2\x80",
            b"+",
            b"(",
            b"@",
            b".@.",
            "＠".as_bytes(),
            b"+((((((((",
            b"Mar",
            b"14 of ",
        ] {
            let _ = find_all(text, all());
            let _ = any(text, all());
        }
    }
}
