//! Where a masking key is read from outside the Worker (the `phimask`
//! command, the Python wheel's `masking_key`): the environment variable
//! the Worker's secret is named after, or a key file.

/// The environment variable holding the key (the Worker's secret has the
/// same name).
pub const VAR: &str = "PHI_MASKING_KEY";

/// The key in `PHI_MASKING_KEY`, or `None` when it is unset or empty.
#[cfg(not(target_arch = "wasm32"))]
pub fn from_env() -> Option<Vec<u8>> {
    std::env::var_os(VAR)
        .map(std::ffi::OsString::into_encoded_bytes)
        .filter(|k| !k.is_empty())
}

/// The key a key file holds: `echo KEY > file` and editors end the file
/// with a newline (LF or CRLF), which is the line's end, not the key's.
pub fn in_file(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::in_file;

    #[test]
    fn one_line_end_is_the_files_not_the_keys() {
        assert_eq!(in_file(b"k\n".to_vec()), b"k");
        assert_eq!(in_file(b"k\r\n".to_vec()), b"k");
        assert_eq!(in_file(b"k\n\n".to_vec()), b"k\n");
        assert_eq!(in_file(b"k\r".to_vec()), b"k\r");
        assert_eq!(in_file(b"k".to_vec()), b"k");
    }
}
