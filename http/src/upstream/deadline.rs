//! Deadline propagation: the time a request has left, written into a request header for the
//! upstream (milliseconds in the configured header, or `grpc-timeout` for gRPC requests).
//!
//! Owns: the header formats. Must not: decide the deadline (the engine does) or send anything.

use std::time::Duration;

use portcullis_core::pipeline::Headers;

/// Largest value `grpc-timeout` allows (8 digits).
const GRPC_MAX: u128 = 99_999_999;

/// Writes the remaining time `left` into `headers`: `grpc-timeout` (`<n>m`, or `<n>S` when that
/// is too long) when the request is gRPC (`content-type: application/grpc...`), else `name`
/// with whole milliseconds. Nothing when `name` is `None`.
pub fn stamp_deadline(headers: &mut Headers, name: Option<&str>, left: Duration) {
    let Some(name) = name else { return };
    let grpc = headers.get("content-type").is_some_and(|v| v.starts_with(b"application/grpc"));
    let ms = left.as_millis();
    if grpc {
        let value = if ms <= GRPC_MAX {
            format!("{ms}m")
        } else {
            format!("{}S", left.as_secs().min(GRPC_MAX as u64))
        };
        headers.set("grpc-timeout", value);
    } else {
        headers.set(name.to_owned(), ms.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_or_grpc_timeout() {
        let mut h = Headers::default();
        stamp_deadline(&mut h, Some("x-request-deadline-ms"), Duration::from_millis(1500));
        assert_eq!(h.get("x-request-deadline-ms").map(|v| &v[..]), Some(&b"1500"[..]));
        let mut g = Headers::default();
        g.set("content-type", "application/grpc+proto");
        stamp_deadline(&mut g, Some("x-request-deadline-ms"), Duration::from_millis(250));
        assert_eq!(g.get("grpc-timeout").map(|v| &v[..]), Some(&b"250m"[..]));
        assert!(g.get("x-request-deadline-ms").is_none());
        stamp_deadline(&mut g, Some("x"), Duration::from_secs(200_000));
        assert_eq!(g.get("grpc-timeout").map(|v| &v[..]), Some(&b"200000S"[..]));
        let mut n = Headers::default();
        stamp_deadline(&mut n, None, Duration::from_secs(1));
        assert!(n.get("grpc-timeout").is_none());
    }
}
