//! Allowlist paths: dot-separated keys, with `[]` stepping into every
//! element of an array (`products[].sku`).

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Into the member of an object with this key.
    Key(String),
    /// Into every element of an array.
    Elements,
}

/// Parses a path such as `address.zip` or `products[].sku`.
///
/// # Errors
/// A message saying why the path is malformed (for the policy author).
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    if path.is_empty() {
        return Err("malformed path: empty".into());
    }
    let mut steps = Vec::new();
    for segment in path.split('.') {
        let key_end = segment.find(['[', ']']).unwrap_or(segment.len());
        let (key, mut rest) = segment.split_at(key_end);
        if key.is_empty() {
            return Err(if segment.is_empty() {
                "malformed path: empty key (two dots, or a dot at the start or end)".into()
            } else {
                "malformed path: '[]' must follow a key".into()
            });
        }
        if key.trim() != key {
            return Err("malformed path: key starts or ends with white space".into());
        }
        if key.chars().any(char::is_control) {
            return Err("malformed path: control character in key".into());
        }
        steps.push(Step::Key(key.to_owned()));
        while !rest.is_empty() {
            match rest.strip_prefix("[]") {
                Some(after) => {
                    steps.push(Step::Elements);
                    rest = after;
                }
                None => {
                    return Err(
                        "malformed path: only '[]' may follow a key ('[' and ']' cannot appear in keys)"
                            .into(),
                    )
                }
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn parses_keys_and_elements() {
        assert_eq!(parse("plan").unwrap(), [key("plan")]);
        assert_eq!(
            parse("products[].sku").unwrap(),
            [key("products"), Step::Elements, key("sku")]
        );
        assert_eq!(
            parse("m[][].$x y").unwrap(),
            [key("m"), Step::Elements, Step::Elements, key("$x y")]
        );
    }

    #[test]
    fn rejects_malformed() {
        for p in [
            "", ".a", "a.", "a..b", "[]", "a.[]", "a[", "a]", "a[x]", "a[]b", " a", "a\u{1}",
        ] {
            assert!(parse(p).is_err(), "{p:?}");
        }
    }
}
