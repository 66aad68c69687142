//! `ip`: an IP address truncated (IPv4 to its /24, IPv6 to its /48) or
//! zeroed.
//!
//! An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, Teredo,
//! NAT64) is reduced as that IPv4 address: its /48 could hold the whole
//! IPv4 address (6to4), or its last bits the visitor's (Teredo).
//!
//! Addresses are parsed and written here rather than with `std::net`'s
//! parser and formatter, which cost the Worker about 2 KB gzipped; a test
//! checks both against `std` on generated input.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Input, Output};

/// How the `ip` action reduces an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// IPv4 `a.b.c.0`; IPv6 its first 48 bits, the rest zero.
    Truncate,
    /// `0.0.0.0` or `::`.
    Zero,
}

/// The reduced address (IPv6 written as RFC 5952 says), or `None` for
/// anything that is not an IP address string.
pub fn apply(input: Input<'_>, mode: IpMode) -> Option<Output> {
    let Input::Text(text) = input else {
        return None;
    };
    let out = if let Some([a, b, c, _]) = parse_v4(text) {
        match mode {
            IpMode::Zero => write_v4([0; 4]),
            IpMode::Truncate => write_v4([a, b, c, 0]),
        }
    } else {
        let v6 = Ipv6Addr::from(parse_v6(text)?);
        match (mode, embedded_v4(v6)) {
            // An IPv4 address in IPv6 clothing is reduced as IPv4.
            (IpMode::Zero, Some(_)) => write_v4([0; 4]),
            (IpMode::Truncate, Some(v4)) => {
                let [a, b, c, _] = v4.octets();
                write_v4([a, b, c, 0])
            }
            (IpMode::Zero, None) => write_v6(&[0; 8]),
            (IpMode::Truncate, None) => {
                let [s0, s1, s2, ..] = v6.segments();
                write_v6(&[s0, s1, s2, 0, 0, 0, 0, 0])
            }
        }
    };
    Some(Output::Text(out))
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped
/// (`::ffff:0:0/96`, the last 32 bits), 6to4 (`2002::/16`, bits 16–48),
/// Teredo (`2001::/32`, the client's address: the last 32 bits inverted)
/// or NAT64 (`64:ff9b::/96`, the last 32 bits).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let last = Ipv4Addr::from(bits as u32);
    match v6.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        [0x2002, ..] => Some(Ipv4Addr::from((bits >> 80) as u32)),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!(bits as u32))),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        _ => None,
    }
}

/// The octets of a dotted-quad IPv4 address: four decimal numbers of at
/// most 255, without leading zeros (as `std` parses them).
pub fn parse_v4(text: &[u8]) -> Option<[u8; 4]> {
    let mut r = Cursor { text, at: 0 };
    let v4 = r.v4()?;
    r.done().then_some(v4)
}

/// The eight groups of an IPv6 address in any form `std` parses (`::`
/// once, an IPv4 address in the last 32 bits; no zone).
pub fn parse_v6(text: &[u8]) -> Option<[u16; 8]> {
    let mut r = Cursor { text, at: 0 };
    let mut head = [0u16; 8];
    let (head_len, head_v4) = r.groups(&mut head);
    if head_len == 8 {
        return r.done().then_some(head);
    }
    if head_v4 || !r.eat(b':') || !r.eat(b':') {
        return None;
    }
    // `::` stands for at least one group.
    let mut tail = [0u16; 7];
    let limit = 8 - (head_len + 1);
    let (tail_len, _) = r.groups(&mut tail[..limit]);
    head[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    r.done().then_some(head)
}

/// The IPv4 address of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
fn mapped_v4(s: &[u16; 8]) -> Option<[u8; 4]> {
    let [a, b] = s[6].to_be_bytes();
    let [c, d] = s[7].to_be_bytes();
    (s[..5] == [0; 5] && s[5] == 0xffff).then_some([a, b, c, d])
}

fn write_v4(octets: [u8; 4]) -> String {
    let mut out = String::with_capacity(15);
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let mut started = false;
        for unit in [100, 10, 1] {
            let digit = octet / unit % 10;
            if digit > 0 || started || unit == 1 {
                out.push(char::from(b'0' + digit));
                started = true;
            }
        }
    }
    out
}

/// RFC 5952: lowercase hex without leading zeros, the longest run of two
/// or more zero groups (the first, on a tie) as `::`; IPv4-mapped
/// addresses as `::ffff:a.b.c.d`.
fn write_v6(s: &[u16; 8]) -> String {
    if let Some(v4) = mapped_v4(s) {
        return "::ffff:".to_owned() + &write_v4(v4);
    }
    let (mut best, mut best_len, mut run) = (0, 0, 0);
    for (i, &group) in s.iter().enumerate() {
        run = if group == 0 { run + 1 } else { 0 };
        if run > best_len {
            (best, best_len) = (i + 1 - run, run);
        }
    }
    let mut out = String::with_capacity(39);
    let hex = |out: &mut String, groups: &[u16]| {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let mut started = false;
            for shift in [12, 8, 4, 0] {
                let digit = (group >> shift) & 0xf;
                if digit > 0 || started || shift == 0 {
                    out.push(char::from(b"0123456789abcdef"[usize::from(digit)]));
                    started = true;
                }
            }
        }
    };
    if best_len > 1 {
        hex(&mut out, &s[..best]);
        out.push_str("::");
        hex(&mut out, &s[best + best_len..]);
    } else {
        hex(&mut out, s);
    }
    out
}

/// A position in the address text.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.text.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.text.get(self.at) == Some(&b);
        self.at += usize::from(hit);
        hit
    }

    /// A number of at most `max_digits` digits in `radix` (more digits
    /// are no number, as `std` reads them); `None`, and nothing read, when
    /// there is none or it has a leading zero that `leading_zero` forbids.
    fn number(&mut self, radix: u32, max_digits: usize, leading_zero: bool) -> Option<u32> {
        let start = self.at;
        let mut value: u32 = 0;
        while let Some(digit) = self
            .text
            .get(self.at)
            .and_then(|&b| char::from(b).to_digit(radix))
        {
            value = value.saturating_mul(radix).saturating_add(digit);
            self.at += 1;
        }
        let digits = self.at - start;
        let zero_first = self.text.get(start) == Some(&b'0');
        if digits == 0 || digits > max_digits || (!leading_zero && zero_first && digits > 1) {
            self.at = start;
            return None;
        }
        Some(value)
    }

    fn v4(&mut self) -> Option<[u8; 4]> {
        let start = self.at;
        let mut octets = [0u8; 4];
        for (i, octet) in octets.iter_mut().enumerate() {
            let read = (i == 0 || self.eat(b'.'))
                .then(|| self.number(10, 3, false))
                .flatten()
                .and_then(|n| u8::try_from(n).ok());
            match read {
                Some(n) => *octet = n,
                None => {
                    self.at = start;
                    return None;
                }
            }
        }
        Some(octets)
    }

    /// Groups separated by `:`, into `groups`, the last two of them
    /// possibly an IPv4 address: how many were read, and whether an IPv4
    /// address ended them.
    fn groups(&mut self, groups: &mut [u16]) -> (usize, bool) {
        let limit = groups.len();
        for i in 0..limit {
            let start = self.at;
            if i > 0 && !self.eat(b':') {
                return (i, false);
            }
            if i + 1 < limit {
                if let Some([a, b, c, d]) = self.v4() {
                    groups[i] = u16::from_be_bytes([a, b]);
                    groups[i + 1] = u16::from_be_bytes([c, d]);
                    return (i + 2, true);
                }
            }
            match self.number(16, 4, true) {
                Some(group) => groups[i] = group as u16,
                None => {
                    self.at = start;
                    return (i, false);
                }
            }
        }
        (limit, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str, mode: IpMode) -> Option<String> {
        match apply(Input::Text(s.as_bytes()), mode) {
            Some(Output::Text(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn truncates_and_zeroes() {
        use IpMode::*;
        assert_eq!(ip("203.0.113.42", Truncate).as_deref(), Some("203.0.113.0"));
        assert_eq!(
            ip("2001:db8:85a3:8d3:1319:8a2e:370:7348", Truncate).as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(ip("2001:DB8::1", Truncate).as_deref(), Some("2001:db8::"));
        assert_eq!(
            ip("::ffff:192.0.2.77", Truncate).as_deref(),
            Some("192.0.2.0")
        );
        assert_eq!(ip("::1", Truncate).as_deref(), Some("::"));
        assert_eq!(ip("203.0.113.42", Zero).as_deref(), Some("0.0.0.0"));
        assert_eq!(ip("2001:db8::1", Zero).as_deref(), Some("::"));
        for bad in [
            "",
            "203.0.113",
            "203.0.113.256",
            "jane@x.com",
            "fe80::1%eth0",
            " 1.2.3.4",
            "01.2.3.4",
        ] {
            assert_eq!(ip(bad, Truncate), None, "{bad}");
        }
        assert_eq!(apply(Input::Number(b"1234"), Truncate), None);
    }

    #[test]
    fn ipv6_embedding_ipv4_is_reduced_as_ipv4() {
        use IpMode::*;
        // The visitor is 203.0.113.42 (cb00:712a) in every one of them.
        for embedded in [
            "::ffff:203.0.113.42",
            "::FFFF:cb00:712a",
            "2002:cb00:712a::1",
            "2002:cb00:712a:1:2:3:4:5",
            // Teredo: server 65.54.227.120, client inverted in the last 32 bits.
            "2001:0:4136:e378:8000:63bf:34ff:8ed5",
            "2001::ffff:34ff:8ed5",
            "64:ff9b::203.0.113.42",
            "64:ff9b::cb00:712a",
        ] {
            assert_eq!(
                ip(embedded, Truncate).as_deref(),
                Some("203.0.113.0"),
                "{embedded}"
            );
            assert_eq!(ip(embedded, Zero).as_deref(), Some("0.0.0.0"), "{embedded}");
        }
        // Near misses stay IPv6, truncated to their /48.
        for (v6, out) in [
            ("2001:db8:85a3::1", "2001:db8:85a3::"),
            ("2001:1::cb00:712a", "2001:1::"),
            ("64:ff9b:1::cb00:712a", "64:ff9b:1::"),
            ("::fffe:cb00:712a", "::"),
            ("::cb00:712a", "::"),
            ("2003:cb00:712a::1", "2003:cb00:712a::"),
        ] {
            assert_eq!(ip(v6, Truncate).as_deref(), Some(out), "{v6}");
        }
    }

    /// Strings near addresses: `std`'s parser is the reference.
    fn address_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(":".to_owned()),
            Just("::".to_owned()),
            Just(".".to_owned()),
            "[0-9]{1,4}",
            "[0-9a-fA-F]{1,5}",
            (0u8..=255).prop_map(|n| n.to_string()),
            Just("ffff".to_owned()),
            Just("%".to_owned()),
        ];
        prop::collection::vec(piece, 0..14).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        #[test]
        fn parses_as_std_does(s in address_like()) {
            prop_assert_eq!(parse_v4(s.as_bytes()).map(Ipv4Addr::from), s.parse::<Ipv4Addr>().ok());
            prop_assert_eq!(parse_v6(s.as_bytes()).map(Ipv6Addr::from), s.parse::<Ipv6Addr>().ok());
        }

        #[test]
        fn writes_as_std_does(groups in prop::array::uniform8(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()])) {
            prop_assert_eq!(write_v6(&groups), Ipv6Addr::from(groups).to_string());
            let [a, b] = groups[0].to_be_bytes();
            let [c, d] = groups[1].to_be_bytes();
            prop_assert_eq!(write_v4([a, b, c, d]), Ipv4Addr::new(a, b, c, d).to_string());
        }
    }
}
