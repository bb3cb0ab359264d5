//! A minimal JSON object writer for access log lines: string fields are copied as whole runs
//! between the rare bytes that need escaping, numbers go through `itoa`; no intermediate
//! value, no allocation beyond the output buffer's growth.
//!
//! Owns: JSON string escaping (RFC 8259: `"`, `\` and control characters) and the object's
//! punctuation. Must not: know which fields a line has (the access record does).

/// The key of a field as [`JsonObject`]'s methods take it: `key!("name")` is `,"name":`.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}
pub(crate) use key;

/// Writes one JSON object into a byte buffer, field by field. Every method is inlined so that
/// a key written from a literal becomes a few stores instead of a `memcpy` call per piece (a
/// line has ~17 fields: the calls, not the bytes, were the cost).
pub(crate) struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens the object, reserving `hint` bytes for it.
    #[inline(always)]
    pub(crate) fn new(out: &'a mut Vec<u8>, hint: usize) -> JsonObject<'a> {
        out.reserve(hint);
        out.push(b'{');
        JsonObject { out, first: true }
    }

    /// Writes `key` (a [`key!`] literal, `,"name":`), without its comma for the first field:
    /// one copy of a constant instead of four pieces.
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        let k = if self.first { &key.as_bytes()[1..] } else { key.as_bytes() };
        self.first = false;
        self.out.extend_from_slice(k);
    }

    /// A string field.
    #[inline(always)]
    pub(crate) fn str(&mut self, key: &'static str, value: &str) {
        self.bytes(key, value.as_bytes());
    }

    /// A string field from bytes: UTF-8 passes through, anything else is shown lossily
    /// (U+FFFD), so the line stays valid JSON whatever a client sent.
    #[inline(always)]
    pub(crate) fn bytes(&mut self, key: &'static str, value: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        escape_bytes(self.out, value);
        self.out.push(b'"');
    }

    /// A string field the gateway produced itself and that needs no escaping (a timestamp, hex
    /// digits, an address, a method token, a static name): copied as is.
    #[inline(always)]
    pub(crate) fn plain(&mut self, key: &'static str, value: &str) {
        debug_assert!(!value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'), "{value:?}");
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    /// A [`JsonObject::plain`] field, `null` when absent.
    #[inline(always)]
    pub(crate) fn opt_plain(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.plain(key, v),
            None => self.null(key),
        }
    }

    /// A string field, `null` when absent.
    #[inline(always)]
    pub(crate) fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        self.opt_bytes(key, value.map(str::as_bytes));
    }

    /// A bytes string field ([`JsonObject::bytes`]), `null` when absent.
    #[inline(always)]
    pub(crate) fn opt_bytes(&mut self, key: &'static str, value: Option<&[u8]>) {
        match value {
            Some(v) => self.bytes(key, v),
            None => self.null(key),
        }
    }

    /// A number field.
    #[inline(always)]
    pub(crate) fn num(&mut self, key: &'static str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// A number field, `null` when absent.
    #[inline(always)]
    pub(crate) fn opt_num(&mut self, key: &'static str, value: Option<u64>) {
        match value {
            Some(v) => self.num(key, v),
            None => self.null(key),
        }
    }

    #[inline(always)]
    fn null(&mut self, key: &'static str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    /// Closes the object.
    #[inline(always)]
    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `b` as the inside of a JSON string. Fast path (ids, paths, addresses): plain ASCII
/// with nothing to escape, checked eight bytes at a time and copied in one piece.
#[inline]
fn escape_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let words = b.len() - b.len() % 8;
    let mut at = 0;
    while at < words && !special(&b[at..at + 8]) {
        at += 8;
    }
    if at == words && b[words..].iter().all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\') {
        out.extend_from_slice(b);
        return;
    }
    match std::str::from_utf8(b) {
        Ok(s) => escape_into(out, s),
        Err(_) => escape_into(out, &String::from_utf8_lossy(b)),
    }
}

/// Appends `s` with JSON string escaping (without the quotes); multi-byte UTF-8 passes through.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of 8 bytes is a control character, `"`, `\\` or not ASCII (SWAR: a byte is
/// flagged when subtracting makes it borrow, i.e. it is below the bound or zero after the xor,
/// or when its high bit is set).
#[inline(always)]
fn special(chunk: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let x = u64::from_le_bytes(word);
    let below_space = x.wrapping_sub(ONES * 0x20);
    let quote = (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    // A byte with its high bit set is flagged by `x` itself; below that, a borrow sets the high
    // bit of exactly the bytes that matched (bytes after a borrowing one may be flagged too,
    // which only sends a line down the slow path).
    (below_space | quote | backslash | x) & HIGH != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_object_that_parses_back() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}é✓";
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out, 0);
        o.str(key!("s"), nasty);
        o.opt_str(key!("none"), None);
        o.num(key!("n"), u64::MAX);
        o.opt_num(key!("m"), Some(0));
        o.opt_num(key!("null_num"), None);
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["s"], nasty);
        assert!(v["none"].is_null() && v["null_num"].is_null());
        assert_eq!(v["n"], u64::MAX);
        assert_eq!(v["m"], 0);
        assert_eq!(std::str::from_utf8(&out).expect("utf8").matches(':').count(), 5);
        // Every position of every byte that needs escaping, around the 8-byte fast path.
        for len in 0..20 {
            for at in 0..len {
                for bad in [b'"', b'\\', b'\n', 0u8, 0x1f] {
                    let mut s = vec![b'a'; len];
                    s[at] = bad;
                    let s = String::from_utf8(s).expect("ascii");
                    let mut out = Vec::new();
                    escape_into(&mut out, &s);
                    assert_eq!(
                        out,
                        serde_json::to_vec(&s).expect("json")[1..].split_last().expect("quoted").1
                    );
                }
            }
            let plain = "é".repeat(len);
            let mut out = Vec::new();
            escape_into(&mut out, &plain);
            assert_eq!(out, plain.as_bytes(), "multi-byte UTF-8 passes through");
            // The bytes fast path agrees with the escaping path, clean or not, at every length.
            for s in [&"a".repeat(len), &plain, &"x\"".repeat(len)] {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                escape_bytes(&mut fast, s.as_bytes());
                escape_into(&mut slow, s);
                assert_eq!(fast, slow);
            }
        }
        // Bytes that are not UTF-8 (a client's raw path) are shown lossily: still valid JSON.
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out, 0);
        o.bytes(key!("p"), b"/a\xff\xfe/b\"c");
        o.opt_bytes(key!("q"), None);
        o.plain(key!("t"), "2026-11-30T05:00:00.123Z");
        o.opt_plain(key!("u"), None);
        o.end();
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["p"], "/a\u{fffd}\u{fffd}/b\"c");
        assert!(v["q"].is_null() && v["u"].is_null());
        assert_eq!(v["t"], "2026-11-30T05:00:00.123Z");
        let mut empty = Vec::new();
        JsonObject::new(&mut empty, 64).end();
        assert_eq!(empty, b"{}");
    }
}
