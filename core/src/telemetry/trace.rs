//! W3C Trace Context (`traceparent`): parsing, the gateway's own span, and encoding.
//!
//! Owns: the header's syntax rules (version, lengths, lowercase hex, all-zero ids refused) and
//! the ids a request carries. Must not: choose sampling policy or touch headers (the tracing
//! filter does that).

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// The trace ids of one request as the gateway forwards it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Trace id (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The gateway's own span id, sent upstream as the parent.
    pub span_id: [u8; 8],
    /// The caller's span id, when the request carried a valid `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    /// Trace flags (bit 0 = sampled), propagated as received.
    pub flags: u8,
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = unhex(s[2 * i])? << 4 | unhex(s[2 * i + 1])?;
    }
    Some(out)
}

fn put_hex(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

/// A parsed incoming `traceparent`: (trace id, parent span id, flags).
pub fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    // version "-" trace-id "-" parent-id "-" flags; later versions may append "-..." fields.
    if v.len() < TRACEPARENT_LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version: [u8; 1] = parse_hex(&v[..2])?;
    if version[0] == 0xff || (version[0] == 0 && v.len() != TRACEPARENT_LEN) {
        return None;
    }
    if v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' {
        return None;
    }
    let trace: [u8; 16] = parse_hex(&v[3..35])?;
    let parent: [u8; 8] = parse_hex(&v[36..52])?;
    let flags: [u8; 1] = parse_hex(&v[53..55])?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags[0]))
}

impl TraceContext {
    /// Continues the trace of a valid incoming `traceparent` with a new span, or starts one
    /// (`sampled` decides the flag of a new trace). `rng` supplies the random ids.
    pub fn continue_or_start(
        incoming: Option<&[u8]>,
        sampled: bool,
        rng: &mut fastrand::Rng,
    ) -> TraceContext {
        let mut span_id = rng.u64(1..).to_be_bytes();
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        match incoming.and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => {
                TraceContext { trace_id, span_id, parent_id: Some(parent), flags }
            }
            None => {
                let trace_id = (u128::from(rng.u64(1..)) << 64 | u128::from(rng.u64(..))).to_be_bytes();
                TraceContext { trace_id, span_id, parent_id: None, flags: u8::from(sampled) }
            }
        }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` value sent upstream (version 00, the gateway's span as parent).
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        put_hex(&mut out[3..35], &self.trace_id);
        put_hex(&mut out[36..52], &self.span_id);
        put_hex(&mut out[53..55], &[self.flags]);
        out
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        put_hex(&mut out, &self.trace_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let (trace, parent, flags) = parse_traceparent(VALID).expect("valid");
        assert_eq!(trace[0], 0x4b);
        assert_eq!(parent[7], 0xb7);
        assert_eq!(flags, 1);
    }

    #[test]
    fn refuses_invalid_values() {
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        // A future version may append fields.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
    }

    #[test]
    fn continues_with_a_new_span() {
        let mut rng = fastrand::Rng::with_seed(7);
        let t = TraceContext::continue_or_start(Some(VALID), false, &mut rng);
        let out = t.traceparent();
        assert_eq!(&out[..36], &VALID[..36], "same version and trace id");
        assert_ne!(&out[36..52], &VALID[36..52], "the gateway's own span id");
        assert_eq!(&out[52..], b"-01", "the caller's sampling decision is kept");
        assert_eq!(t.parent_id, Some(parse_traceparent(VALID).expect("valid").1));
        assert!(parse_traceparent(&out).is_some());
    }

    #[test]
    fn starts_a_trace_when_absent_or_invalid() {
        let mut rng = fastrand::Rng::with_seed(7);
        let a = TraceContext::continue_or_start(None, true, &mut rng);
        let b = TraceContext::continue_or_start(Some(b"garbage"), false, &mut rng);
        assert_ne!(a.trace_id, b.trace_id);
        assert!(a.sampled() && !b.sampled() && a.parent_id.is_none());
        assert!(parse_traceparent(&a.traceparent()).is_some());
        assert_eq!(&a.trace_id_hex()[..], &a.traceparent()[3..35]);
    }
}
