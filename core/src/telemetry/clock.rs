//! Wall-clock time for log lines: one cheap coarse realtime read per request and its RFC 3339
//! text, reformatted in full only when the second changes.
//!
//! Owns: the timestamp format of the access log. Must not: be used to measure durations (those
//! come from the monotonic clock).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The realtime clock at its coarse resolution (a few ms: the kernel tick), without a hardware
/// counter read; falls back to the precise clock where the coarse one is missing.
pub fn realtime_coarse() -> SystemTime {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    match (rc, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (0, Ok(s), Ok(ns)) => UNIX_EPOCH + Duration::new(s, ns),
        _ => SystemTime::now(),
    }
}

/// A cached RFC 3339 text of the current second; only the milliseconds change within it.
#[derive(Debug)]
pub struct ClockText {
    sec: u64,
    text: [u8; 24],
}

impl Default for ClockText {
    fn default() -> Self {
        ClockText { sec: u64::MAX, text: [b'0'; 24] }
    }
}

impl ClockText {
    /// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn format(&mut self, t: SystemTime) -> &str {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if d.as_secs() == self.sec {
            let ms = d.subsec_millis();
            self.text[20] = b'0' + (ms / 100) as u8;
            self.text[21] = b'0' + (ms / 10 % 10) as u8;
            self.text[22] = b'0' + (ms % 10) as u8;
        } else {
            rfc3339_millis(t, &mut self.text);
            self.sec = d.as_secs();
        }
        std::str::from_utf8(&self.text).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

/// The civil (proleptic Gregorian) date `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf`, returning the text.
pub fn rfc3339_millis(t: SystemTime, buf: &mut [u8; 24]) -> &str {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let fields = [
        (0, 4, year as u64),
        (5, 2, month as u64),
        (8, 2, day as u64),
        (11, 2, rem / 3600),
        (14, 2, rem % 3600 / 60),
        (17, 2, rem % 60),
        (20, 3, u64::from(d.subsec_millis())),
    ];
    *buf = *b"0000-00-00T00:00:00.000Z";
    for (at, width, mut v) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time() {
        let mut buf = [0u8; 24];
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t, &mut buf), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH, &mut buf), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap, &mut buf), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn cached_text_matches_full_formatting() {
        let mut c = ClockText::default();
        let mut buf = [0u8; 24];
        for ms in
            [1_700_000_000_123u64, 1_700_000_000_999, 1_700_000_001_000, 1_700_000_001_007, 1_699_999_999_500]
        {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(c.format(t), rfc3339_millis(t, &mut buf), "{ms}");
        }
        let now = realtime_coarse();
        let drift = now.duration_since(SystemTime::now()).unwrap_or_else(|e| e.duration());
        assert!(drift < Duration::from_secs(1), "coarse clock is the realtime clock: {drift:?}");
    }
}
