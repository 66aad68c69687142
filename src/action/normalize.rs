//! Normalizations before masking, so the same person gets the same masked
//! value from every source (`" Jane@X.com"` and `"jane@x.com"`).

/// How `mask` normalizes a value before the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Trimmed, ASCII letters lower-cased.
    Email,
    /// Digits only; ten digits get a leading `1`; then `+` (E.164).
    Phone,
    /// Trimmed, ASCII letters lower-cased, each run of white space one
    /// space. (Unicode case tables would cost the Worker several KB.)
    Text,
}

impl Normalize {
    pub const ALL: [Normalize; 3] = [Normalize::Email, Normalize::Phone, Normalize::Text];

    pub fn name(self) -> &'static str {
        match self {
            Normalize::Email => "email",
            Normalize::Phone => "phone",
            Normalize::Text => "text",
        }
    }

    /// The normalized bytes, or `None` when nothing is left (a phone
    /// number without digits, an empty email).
    pub fn apply(self, value: &[u8]) -> Option<Vec<u8>> {
        // Values come from JSON text, so they are UTF-8.
        let text = std::str::from_utf8(value).ok()?;
        let out = match self {
            Normalize::Email => text.trim().to_ascii_lowercase(),
            Normalize::Text => {
                crate::action::url::joined(text.split_whitespace(), ' ').to_ascii_lowercase()
            }
            Normalize::Phone => {
                let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                match digits.len() {
                    0 => return None,
                    10 => ["+1", &digits].concat(),
                    _ => ["+", &digits].concat(),
                }
            }
        };
        (!out.is_empty()).then(|| out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(how: Normalize, s: &str) -> Option<String> {
        how.apply(s.as_bytes())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            n(Normalize::Email, "  Jane.Doe@Example.COM ").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(
            n(Normalize::Phone, "(617) 555-0100").as_deref(),
            Some("+16175550100")
        );
        assert_eq!(
            n(Normalize::Phone, "+1 617 555 0100").as_deref(),
            Some("+16175550100")
        );
        assert_eq!(
            n(Normalize::Phone, "+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            n(Normalize::Phone, "6175550100").as_deref(),
            Some("+16175550100")
        );
        assert_eq!(
            n(Normalize::Text, "  Chest\tPAIN \n after  Exercise ").as_deref(),
            Some("chest pain after exercise")
        );
        assert_eq!(
            n(Normalize::Text, "JOSÉ").as_deref(),
            Some("josÉ"),
            "ASCII letters only"
        );
        assert_eq!(n(Normalize::Phone, "none"), None);
        assert_eq!(n(Normalize::Email, "   "), None);
    }
}
