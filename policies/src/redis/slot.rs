//! Redis Cluster key slots: CRC16 (XMODEM) of the key or of its `{hash tag}`, modulo 16384, and
//! the slot map read from `CLUSTER SLOTS`.
//!
//! Owns: slot arithmetic and parsing the topology reply. Must not: open connections (the client
//! does) or know what the keys mean.

use std::io;

use super::resp::Value;

/// Slots in a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The slot of `key`: only the part between the first `{` and the next `}` is hashed when that
/// part is not empty (a hash tag), as Redis does.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

/// One served range of the slot map: `start..=end` served by the master at `addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub start: u16,
    pub end: u16,
    pub addr: String,
}

/// Parses a `CLUSTER SLOTS` reply into the masters' ranges. An empty host (a node that does not
/// know its own address) is replaced by `fallback_host`, the host the reply came from.
pub(crate) fn parse_slots(v: Value, fallback_host: &str) -> io::Result<Vec<Range>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("CLUSTER SLOTS: {m}"));
    let rows = match v {
        Value::Array(Some(rows)) => rows,
        Value::Error(e) => return Err(io::Error::other(format!("CLUSTER SLOTS refused: {e}"))),
        _ => return Err(bad("not an array")),
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Array(Some(items)) = row else { return Err(bad("row is not an array")) };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(Some(master)))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return Err(bad("row without start, end and master"));
        };
        let host = match master.first() {
            Some(Value::Bulk(Some(h))) if !h.is_empty() => String::from_utf8_lossy(h).into_owned(),
            _ => fallback_host.to_owned(),
        };
        let Some(Value::Int(port)) = master.get(1) else { return Err(bad("master without a port")) };
        let (Ok(start), Ok(end)) = (u16::try_from(*start), u16::try_from(*end)) else {
            return Err(bad("slot out of range"));
        };
        if start > end || usize::from(end) >= SLOTS {
            return Err(bad("slot out of range"));
        }
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        out.push(Range { start, end, addr });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"), "empty tag: the whole key");
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn parses_cluster_slots() {
        let node = |h: &str, p: i64| {
            Value::Array(Some(vec![
                Value::Bulk(Some(h.as_bytes().to_vec())),
                Value::Int(p),
                Value::Bulk(None),
            ]))
        };
        let reply = Value::Array(Some(vec![
            Value::Array(Some(vec![Value::Int(0), Value::Int(5460), node("127.0.0.1", 7000), node("x", 1)])),
            Value::Array(Some(vec![Value::Int(5461), Value::Int(16383), node("", 7001)])),
        ]));
        let r = parse_slots(reply, "10.0.0.9").expect("parses");
        assert_eq!(r[0], Range { start: 0, end: 5460, addr: "127.0.0.1:7000".into() });
        assert_eq!(r[1].addr, "10.0.0.9:7001");
        assert!(
            parse_slots(Value::Error("ERR This instance has cluster support disabled".into()), "h").is_err()
        );
        assert!(parse_slots(Value::Array(Some(vec![Value::Int(1)])), "h").is_err());
    }
}
