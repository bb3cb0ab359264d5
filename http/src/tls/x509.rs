//! A minimal DER reader for the few X.509 fields the gateway needs: the validity window (refuse
//! expired certificates at start), the subject and the subject alternative names (default SNI
//! names, client identities for mTLS).
//!
//! Owns: read-only parsing of one DER certificate. Must not: verify signatures or chains (rustls
//! and webpki do that).

/// What the gateway reads from a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// `notBefore`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// Subject as `CN=...,O=...` (common attributes only, in certificate order).
    pub subject: String,
    /// DNS names from the subject alternative names.
    pub dns_names: Vec<String>,
    /// URIs from the subject alternative names (SPIFFE ids are `spiffe://...` URIs).
    pub uris: Vec<String>,
}

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct BadCert(&'static str);

/// One TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), BadCert> {
    let (&tag, rest) = input.split_first().ok_or(BadCert("truncated"))?;
    let (&first, mut rest) = rest.split_first().ok_or(BadCert("truncated length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(BadCert("bad length"));
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(BadCert("content overruns"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], want: u8, what: &'static str) -> Result<(&'a [u8], &'a [u8]), BadCert> {
    let (tag, content, rest) = tlv(input)?;
    if tag != want {
        return Err(BadCert(what));
    }
    Ok((content, rest))
}

/// Parses the fields of `CertInfo` from a DER certificate.
pub fn parse(der: &[u8]) -> Result<CertInfo, BadCert> {
    let (cert, _) = expect(der, 0x30, "not a SEQUENCE")?;
    let (tbs, _) = expect(cert, 0x30, "no tbsCertificate")?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    let (_, rest) = expect(rest, 0x02, "no serial number")?;
    let (_, rest) = expect(rest, 0x30, "no signature algorithm")?;
    let (_, rest) = expect(rest, 0x30, "no issuer")?;
    let (validity, rest) = expect(rest, 0x30, "no validity")?;
    let (t1, c1, vrest) = tlv(validity)?;
    let (t2, c2, _) = tlv(vrest)?;
    let not_before = time(t1, c1)?;
    let not_after = time(t2, c2)?;
    let (subject, rest) = expect(rest, 0x30, "no subject")?;
    let (_, mut rest) = expect(rest, 0x30, "no public key")?;
    let mut info = CertInfo { not_before, not_after, subject: name(subject)?, ..CertInfo::default() };
    while !rest.is_empty() {
        let (tag, content, r) = tlv(rest)?;
        rest = r;
        if tag == 0xa3 {
            let (mut exts, _) = expect(content, 0x30, "bad extensions")?;
            while !exts.is_empty() {
                let (ext, r) = expect(exts, 0x30, "bad extension")?;
                exts = r;
                let (oid, mut e) = expect(ext, 0x06, "bad extension id")?;
                if oid != [0x55, 0x1d, 0x11] {
                    continue;
                }
                let (tag, _, r) = tlv(e)?;
                if tag == 0x01 {
                    e = r; // critical flag
                }
                let (value, _) = expect(e, 0x04, "bad extension value")?;
                let (mut names, _) = expect(value, 0x30, "bad subjectAltName")?;
                while !names.is_empty() {
                    let (tag, content, r) = tlv(names)?;
                    names = r;
                    let text = || String::from_utf8_lossy(content).into_owned();
                    match tag {
                        0x82 => info.dns_names.push(text()),
                        0x86 => info.uris.push(text()),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(info)
}

/// Renders a Name's common attributes as `CN=a,O=b`.
fn name(mut rdns: &[u8]) -> Result<String, BadCert> {
    let mut out = String::new();
    while !rdns.is_empty() {
        let (set, r) = expect(rdns, 0x31, "bad RDN")?;
        rdns = r;
        let (atv, _) = expect(set, 0x30, "bad attribute")?;
        let (oid, rest) = expect(atv, 0x06, "bad attribute type")?;
        let (_, value, _) = tlv(rest)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => continue,
        };
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(label);
        out.push('=');
        out.push_str(&String::from_utf8_lossy(value));
    }
    Ok(out)
}

fn digits(s: &[u8]) -> Result<i64, BadCert> {
    s.iter().try_fold(0i64, |acc, &b| {
        if b.is_ascii_digit() { Ok(acc * 10 + i64::from(b - b'0')) } else { Err(BadCert("bad time")) }
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn time(tag: u8, s: &[u8]) -> Result<i64, BadCert> {
    let (year, rest) = match (tag, s.len()) {
        (0x17, 13) => {
            let yy = digits(&s[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 15) => (digits(&s[..4])?, &s[4..]),
        _ => return Err(BadCert("unsupported time format")),
    };
    if rest[10] != b'Z' {
        return Err(BadCert("time not in UTC"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, sec) = (digits(&rest[4..6])?, digits(&rest[6..8])?, digits(&rest[8..10])?);
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats Unix seconds as an RFC 3339 UTC date-time.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = portcullis_core::telemetry::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(time(0x17, b"491231235959Z").expect("utc"), 2_524_607_999);
        assert_eq!(time(0x18, b"20500101000000Z").expect("gen"), 2_524_608_000);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x05\x30\x03\x02\x01", b"\x30\x84\xff\xff\xff\xff"] {
            assert!(parse(input).is_err());
        }
    }
}
