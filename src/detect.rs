//! Detectors: find PHI-shaped substrings (emails, SSNs, phone and card
//! numbers, IP addresses, long digit runs) in a string.
//!
//! Hand-written scanners over bytes, no regex engine: each detector looks
//! only at the bytes that can start its pattern, and every match needs a
//! boundary on both sides (no letter or digit glued to it), so ordinary
//! analytics values — prices, ISO timestamps, versions like `10.4.12`,
//! UUIDs, 6-digit numbers — do not match.

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
}

impl Detector {
    pub const ALL: [Detector; 6] = [
        Detector::Email,
        Detector::Ssn,
        Detector::Phone,
        Detector::Card,
        Detector::Ip,
        Detector::Id,
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
    pub const DEFAULT: Detectors = Detectors(0b01_1111);

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
        (bits < 1 << Detector::ALL.len()).then_some(Detectors(bits))
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
/// two detectors match, the longer match wins).
#[cfg_attr(phimask_speed, optimize(speed))]
pub fn find_all(text: &[u8], set: Detectors) -> Vec<Found> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        match find_at(text, at, set) {
            Some(found) => {
                at = found.end;
                out.push(found);
            }
            None => at = next_start(text, at),
        }
    }
    out
}

/// The next place after `at` where a match may start. No detector's match
/// starts right after an ASCII letter or digit (each needs a word
/// boundary there, the email's local part included), so the rest of a
/// word is passed over: the scan costs per word, not per byte.
#[inline(always)]
fn next_start(text: &[u8], mut at: usize) -> usize {
    at += 1;
    while text.get(at - 1).is_some_and(u8::is_ascii_alphanumeric) && at < text.len() {
        at += 1;
    }
    at
}

/// Whether anything in `text` matches.
#[cfg_attr(phimask_speed, optimize(speed))]
pub fn any(text: &[u8], set: Detectors) -> bool {
    let mut at = 0;
    while at < text.len() {
        if find_at(text, at, set).is_some() {
            return true;
        }
        at = next_start(text, at);
    }
    false
}

/// The longest match starting exactly at `at`.
#[cfg_attr(phimask_speed, optimize(speed))]
fn find_at(text: &[u8], at: usize, set: Detectors) -> Option<Found> {
    let b = text[at];
    // Fast path: only these bytes can start a match.
    if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'(' | b':' | b'_' | b'%' | b'.')) {
        return None;
    }
    let mut best: Option<Found> = None;
    let mut consider = |what: Detector, end: Option<usize>| {
        if let Some(end) = end {
            if best.is_none_or(|b| end > b.end) {
                best = Some(Found {
                    start: at,
                    end,
                    what,
                });
            }
        }
    };
    if set.has(Detector::Email) {
        consider(Detector::Email, email(text, at));
    }
    if set.has(Detector::Ssn) {
        consider(Detector::Ssn, ssn(text, at));
    }
    if set.has(Detector::Phone) {
        consider(Detector::Phone, phone(text, at));
    }
    if set.has(Detector::Card) {
        consider(Detector::Card, card(text, at));
    }
    if set.has(Detector::Ip) {
        consider(Detector::Ip, ipv4(text, at).or_else(|| ipv6(text, at)));
    }
    if set.has(Detector::Id) {
        consider(Detector::Id, digit_run(text, at));
    }
    best
}

#[cfg_attr(phimask_speed, optimize(speed))]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// No letter or digit just before `at`.
#[cfg_attr(phimask_speed, optimize(speed))]
fn starts_word(text: &[u8], at: usize) -> bool {
    at == 0 || !is_word(text[at - 1])
}

/// No letter or digit at `end`.
#[cfg_attr(phimask_speed, optimize(speed))]
fn ends_word(text: &[u8], end: usize) -> bool {
    text.get(end).is_none_or(|&b| !is_word(b))
}

/// Digits from `at`: how many.
#[cfg_attr(phimask_speed, optimize(speed))]
fn digits(text: &[u8], at: usize) -> usize {
    text[at.min(text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// Exactly `n` digits at `at` followed by no other digit: the end.
#[cfg_attr(phimask_speed, optimize(speed))]
fn exact_digits(text: &[u8], at: usize, n: usize) -> Option<usize> {
    (digits(text, at) == n).then_some(at + n)
}

#[cfg_attr(phimask_speed, optimize(speed))]
fn byte_in(text: &[u8], at: usize, set: &[u8]) -> Option<u8> {
    text.get(at).copied().filter(|b| set.contains(b))
}

/// `local@domain.tld`: the local part of letters, digits and `._%+-`, a
/// domain of labels and a top-level domain of two or more letters.
#[cfg_attr(phimask_speed, optimize(speed))]
fn email(text: &[u8], at: usize) -> Option<usize> {
    let local_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    // The match starts where the local part starts.
    if at > 0 && local_char(text[at - 1]) || !local_char(text[at]) {
        return None;
    }
    let local = text[at..].iter().take_while(|&&b| local_char(b)).count();
    let at_sign = at + local;
    if text.get(at_sign) != Some(&b'@') {
        return None;
    }
    let mut end = at_sign + 1;
    let mut labels = 0;
    let mut last_label_alpha = false;
    loop {
        let label = text[end.min(text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if label == 0 {
            break;
        }
        last_label_alpha = label >= 2 && text[end..end + label].iter().all(u8::is_ascii_alphabetic);
        labels += 1;
        end += label;
        if text.get(end) == Some(&b'.') && text.get(end + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            end += 1;
        } else {
            break;
        }
    }
    (labels >= 2 && last_label_alpha && ends_word(text, end)).then_some(end)
}

/// `ddd-dd-dddd` or `ddd dd dddd`: the area not 000, 666 or 9xx; the group
/// not 00, the serial not 0000 (numbers the SSA never issues).
#[cfg_attr(phimask_speed, optimize(speed))]
fn ssn(text: &[u8], at: usize) -> Option<usize> {
    if !starts_word(text, at) {
        return None;
    }
    let area_end = exact_digits(text, at, 3)?;
    let sep = byte_in(text, area_end, b"- ")?;
    let group_end = exact_digits(text, area_end + 1, 2)?;
    if text.get(group_end) != Some(&sep) {
        return None;
    }
    let end = exact_digits(text, group_end + 1, 4)?;
    let area = &text[at..area_end];
    let valid = area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && &text[area_end + 1..group_end] != b"00"
        && &text[group_end + 1..end] != b"0000";
    (valid && ends_word(text, end)).then_some(end)
}

/// North American numbers with separators (`555-123-4567`, `(555)
/// 123-4567`, `555.123.4567`, `+1 555 123 4567`) and E.164 (`+` and 8 to
/// 15 digits).
#[cfg_attr(phimask_speed, optimize(speed))]
fn phone(text: &[u8], at: usize) -> Option<usize> {
    if text[at] == b'+' {
        if at > 0 && is_word(text[at - 1]) {
            return None;
        }
        let run = digits(text, at + 1);
        if (8..=15).contains(&run) && ends_word(text, at + 1 + run) {
            return Some(at + 1 + run);
        }
        // "+1" then a separated North American number.
        if text.get(at + 1) == Some(&b'1') && run == 1 {
            let after = at + 2;
            let start = if byte_in(text, after, b"-. ").is_some() {
                after + 1
            } else {
                after
            };
            return nanp(text, start, true);
        }
        return None;
    }
    if !starts_word(text, at) && text[at] != b'(' {
        return None;
    }
    if text[at] == b'(' && at > 0 && is_word(text[at - 1]) {
        return None;
    }
    nanp(text, at, false)
}

/// `ddd` or `(ddd)`, then `ddd` and `dddd` with separators between them
/// (a bare run of ten digits is not taken for a phone number unless `+1`
/// came before it).
#[cfg_attr(phimask_speed, optimize(speed))]
fn nanp(text: &[u8], at: usize, plus_one: bool) -> Option<usize> {
    let (exchange_at, separated) = if text.get(at) == Some(&b'(') {
        let close = exact_digits(text, at + 1, 3)?;
        if text.get(close) != Some(&b')') {
            return None;
        }
        let after = close + 1;
        match byte_in(text, after, b" -.") {
            Some(_) => (after + 1, true),
            None => (after, true),
        }
    } else {
        let area_end = exact_digits(text, at, 3)?;
        match byte_in(text, area_end, b" -.") {
            Some(_) => (area_end + 1, true),
            None => (area_end, false),
        }
    };
    let exchange_end = exact_digits(text, exchange_at, 3)?;
    let line_at = match byte_in(text, exchange_end, b" -.") {
        Some(_) => exchange_end + 1,
        None if plus_one && !separated => exchange_end,
        None => return None,
    };
    if !separated && !plus_one {
        return None;
    }
    let end = exact_digits(text, line_at, 4)?;
    ends_word(text, end).then_some(end)
}

/// 13 to 19 digits, single spaces or dashes allowed between them, a major
/// network's first digit (2 to 6) and a valid Luhn check digit.
#[cfg_attr(phimask_speed, optimize(speed))]
fn card(text: &[u8], at: usize) -> Option<usize> {
    if !starts_word(text, at) || !(b'2'..=b'6').contains(&text[at]) {
        return None;
    }
    let mut sum = Vec::with_capacity(19);
    let mut p = at;
    let mut best = None;
    while let Some(&b) = text.get(p) {
        if b.is_ascii_digit() {
            sum.push(b - b'0');
            p += 1;
            if sum.len() > 19 {
                return best;
            }
            if sum.len() >= 13 && ends_word(text, p) && luhn(&sum) {
                best = Some(p);
            }
        } else if matches!(b, b' ' | b'-') && text.get(p + 1).is_some_and(u8::is_ascii_digit) {
            p += 1;
        } else {
            break;
        }
    }
    best
}

#[cfg_attr(phimask_speed, optimize(speed))]
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
/// version `1.2.3.4.5` is not an address).
#[cfg_attr(phimask_speed, optimize(speed))]
fn ipv4(text: &[u8], at: usize) -> Option<usize> {
    if !starts_word(text, at) || (at > 0 && text[at - 1] == b'.') {
        return None;
    }
    let mut p = at;
    for part in 0..4 {
        let n = digits(text, p);
        if n == 0 || n > 3 || (n > 1 && text[p] == b'0') {
            return None;
        }
        let value: u32 = text[p..p + n]
            .iter()
            .fold(0, |v, d| v * 10 + u32::from(d - b'0'));
        if value > 255 {
            return None;
        }
        p += n;
        if part < 3 {
            if text.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
    }
    let dotted_more = text.get(p) == Some(&b'.') && text.get(p + 1).is_some_and(u8::is_ascii_digit);
    (ends_word(text, p) && !dotted_more).then_some(p)
}

/// An IPv6 address (any form `std` parses, with at least two colons).
#[cfg_attr(phimask_speed, optimize(speed))]
fn ipv6(text: &[u8], at: usize) -> Option<usize> {
    let token_char = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.');
    if at > 0 && (is_word(text[at - 1]) || matches!(text[at - 1], b':' | b'.')) {
        return None;
    }
    let len = text[at..].iter().take_while(|b| token_char(b)).count();
    let token = &text[at..at + len];
    if token.iter().filter(|&&b| b == b':').count() < 2 || !ends_word(text, at + len) {
        return None;
    }
    // The token may end in a dot that is punctuation ("… ::1.").
    let token = token.strip_suffix(b".").unwrap_or(token);
    crate::action::ip::parse_v6(token).map(|_| at + token.len())
}

/// Seven or more digits in a row, not glued to letters or other digits.
#[cfg_attr(phimask_speed, optimize(speed))]
fn digit_run(text: &[u8], at: usize) -> Option<usize> {
    if !starts_word(text, at) {
        return None;
    }
    let n = digits(text, at);
    (n >= 7 && ends_word(text, at + n)).then_some(at + n)
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
        let mut out = Vec::new();
        let mut at = 0;
        while at < text.len() {
            match find_at(text, at, set) {
                Some(f) => {
                    out.push((f.start, f.end));
                    at = f.end;
                }
                None => at += 1,
            }
        }
        out
    }

    #[test]
    fn passing_over_words_misses_no_match() {
        // Texts of the characters detectors turn on, glued to letters and
        // digits every way: a pseudo-random walk over them.
        let alphabet = b"a9Z0@.-+(): _%x5e2\xc3\xa9";
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..4000 {
            let len = (seed % 40) as usize + 1;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    alphabet[(seed % alphabet.len() as u32) as usize]
                })
                .collect();
            let fast: Vec<_> = find_all(&text, all())
                .iter()
                .map(|f| (f.start, f.end))
                .collect();
            assert_eq!(
                fast,
                every_place(&text, all()),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            assert_eq!(any(&text, all()), !fast.is_empty());
        }
        // And on real matches glued to words.
        for text in [
            "x jane@a.example y",
            "id1234567 1234567",
            "a+15551234567 +15551234567",
            "a(555) 123-4567 (555) 123-4567",
            "v1.2.3.4 1.2.3.4",
            "x::1 ::1",
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
            ("call 555-123-4567", ("555-123-4567", "phone")),
            ("call (555) 123-4567", ("(555) 123-4567", "phone")),
            ("call 555.123.4567", ("555.123.4567", "phone")),
            ("call +1 555 123 4567", ("+1 555 123 4567", "phone")),
            ("call +15551234567", ("+15551234567", "phone")),
            ("call +447911123456", ("+447911123456", "phone")),
            ("card 4111 1111 1111 1111", ("4111 1111 1111 1111", "card")),
            ("card 4111-1111-1111-1111", ("4111-1111-1111-1111", "card")),
            ("card 378282246310005", ("378282246310005", "card")),
            ("from 203.0.113.7:", ("203.0.113.7", "ip")),
            ("from 2001:db8::1 ok", ("2001:db8::1", "ip")),
            ("from ::ffff:192.0.2.1", ("::ffff:192.0.2.1", "ip")),
            ("mrn 4839201", ("4839201", "id")),
        ] {
            assert_eq!(kinds(text, all()), [want], "{text}");
        }
    }

    #[test]
    fn ordinary_values_do_not_match() {
        for text in [
            "19.99",
            "1,234.56",
            "$250.00",
            "2026-11-23T14:05:11.000Z",
            "2026-11-23T14:05:11+01:00",
            "10.4.12",
            "1.2.3.4.5",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "123456",
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
            "2026-11-23",
            "14:05:11.123",
            "USD 1,250,000.00",
        ] {
            assert_eq!(kinds(text, Detectors::DEFAULT), [], "{text}");
        }
        for text in ["123456", "x1234567", "1234567x", "19.99", "v2.0.1-beta"] {
            assert_eq!(kinds(text, all()), [], "{text}");
        }
    }

    #[test]
    fn default_set_leaves_digit_runs() {
        assert_eq!(kinds("account 12345678", Detectors::DEFAULT), []);
        assert!(any(b"jane@example.com", Detectors::DEFAULT));
        assert!(!any(b"jane@example.com", Detectors::default()));
    }

    #[test]
    fn several_matches_in_order() {
        assert_eq!(
            kinds("jane@x.org or 123-45-6789", Detectors::DEFAULT),
            [("jane@x.org", "email"), ("123-45-6789", "ssn")]
        );
    }
}
