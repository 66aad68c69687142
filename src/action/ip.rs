//! `ip`: an IP address truncated (IPv4 to its /24, IPv6 to its /48) or
//! zeroed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    let ip: IpAddr = std::str::from_utf8(text).ok()?.parse().ok()?;
    let reduced = match (ip, mode) {
        (IpAddr::V4(_), IpMode::Zero) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), IpMode::Zero) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (IpAddr::V4(v4), IpMode::Truncate) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        (IpAddr::V6(v6), IpMode::Truncate) => match v6.to_ipv4_mapped() {
            // An IPv4 address in IPv6 clothing is truncated as IPv4.
            Some(v4) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::V6(Ipv4Addr::new(a, b, c, 0).to_ipv6_mapped())
            }
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    };
    Some(Output::Text(reduced.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Some("::ffff:192.0.2.0")
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
}
