//! Build-time checks on configured header names and values, shared by the filters.
//!
//! Owns: the token and field-value rules (RFC 9110 sections 5.1 and 5.5) and the list of headers
//! routes may not edit. Must not: run on the request path (all checks happen once per build).

use bytes::Bytes;

use crate::error::BuildError;

use portcullis_core::config::FRAMING_HEADERS as RESERVED;

/// True for an RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks `name` is a token and returns it as precomputed `Bytes`.
pub(crate) fn header_name(path: impl FnOnce() -> String, name: &str) -> Result<Bytes, BuildError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(BuildError::HeaderName { path: path(), name: name.to_owned() });
    }
    Ok(Bytes::copy_from_slice(name.as_bytes()))
}

/// Like [`header_name`], and also refuses framing and connection-management headers.
pub(crate) fn editable_header_name(path: impl Fn() -> String, name: &str) -> Result<Bytes, BuildError> {
    let bytes = header_name(&path, name)?;
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(BuildError::ReservedHeader { path: path(), name: name.to_owned() });
    }
    Ok(bytes)
}

/// Checks `value` is a valid field value (no controls other than HTAB) and returns it as `Bytes`.
pub(crate) fn header_value(
    path: impl FnOnce() -> String,
    name: &str,
    value: &str,
) -> Result<Bytes, BuildError> {
    let ok = value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    if !ok {
        return Err(BuildError::HeaderValue { path: path(), name: name.to_owned() });
    }
    Ok(Bytes::copy_from_slice(value.trim_matches([' ', '\t']).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> String {
        "x".to_owned()
    }

    #[test]
    fn names_must_be_tokens() {
        assert!(header_name(p, "X-Request-Id").is_ok());
        assert!(header_name(p, "").is_err());
        assert!(header_name(p, "bad name").is_err());
        assert!(header_name(p, ":authority").is_err());
        assert!(header_name(p, "x\r\ny").is_err());
    }

    #[test]
    fn framing_headers_are_reserved() {
        assert!(matches!(editable_header_name(p, "Content-Length"), Err(BuildError::ReservedHeader { .. })));
        assert!(matches!(
            editable_header_name(p, "transfer-encoding"),
            Err(BuildError::ReservedHeader { .. })
        ));
        assert!(editable_header_name(p, "x-env").is_ok());
    }

    #[test]
    fn values_reject_controls_and_trim() {
        assert!(header_value(p, "a", "ok\tvalue").is_ok());
        assert!(header_value(p, "a", "bad\r\nInjected: 1").is_err());
        assert!(header_value(p, "a", "nul\0").is_err());
        assert_eq!(header_value(p, "a", "  v ").ok(), Some(Bytes::from_static(b"v")));
    }
}
