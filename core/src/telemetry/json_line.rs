//! A minimal JSON object writer for access log lines: string fields are copied as whole runs
//! between the rare bytes that need escaping, numbers go through `itoa`; no intermediate
//! value, no allocation beyond the output buffer's growth.
//!
//! Owns: JSON string escaping (RFC 8259: `"`, `\` and control characters) and the object's
//! punctuation. Must not: know which fields a line has (the access record does).

/// Writes one JSON object into a byte buffer, field by field.
pub(crate) struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens the object.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push(b'"');
        escape_into(self.out, value);
        self.out.push(b'"');
    }

    /// A string field, `null` when absent.
    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// A number field.
    pub(crate) fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// A number field, `null` when absent.
    pub(crate) fn opt_num(&mut self, key: &str, value: Option<u64>) {
        match value {
            Some(v) => self.num(key, v),
            None => self.null(key),
        }
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    /// Closes the object.
    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `s` with JSON string escaping (without the quotes).
fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Fast path: no byte needs escaping (the usual case for ids, paths and addresses), checked
    // eight bytes at a time.
    let clean = bytes.len() - bytes.len() % 8;
    let mut at = 0;
    while at < clean && !needs_escape(&bytes[at..at + 8]) {
        at += 8;
    }
    if at == bytes.len() {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(at) {
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

/// Whether any of 8 bytes is a control character, `"` or `\\` (SWAR: a byte is flagged when
/// subtracting makes it borrow, i.e. it is below the bound or zero after the xor).
#[inline]
fn needs_escape(chunk: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let x = u64::from_le_bytes(word);
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let quote = (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'"')));
    let backslash = (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(x ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGH != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_object_that_parses_back() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}é✓";
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out);
        o.str("s", nasty);
        o.opt_str("none", None);
        o.num("n", u64::MAX);
        o.opt_num("m", Some(0));
        o.opt_num("null_num", None);
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
        }
        let mut empty = Vec::new();
        JsonObject::new(&mut empty).end();
        assert_eq!(empty, b"{}");
    }
}
