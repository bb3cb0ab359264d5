//! Server connection ids that name their shard, so a packet that reaches the wrong shard (after
//! NAT rebinding or a client's move from Wi-Fi to cellular changed its address, and with it the
//! kernel's `SO_REUSEPORT` hash) can be handed to the shard that owns the connection.
//!
//! Layout (8 bytes): `[shard ^ mask, r1 .. r7]` where `r` is random and `mask` is the first byte
//! of a keyed hash of `r` under a process-wide secret. Observers cannot read the shard or link
//! two ids of one connection by it; every shard of the process shares the key and can.
//!
//! Owns: id generation and decoding, and finding the destination id in a datagram. Must not:
//! do I/O.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};

/// Length of every server-issued connection id.
pub const CID_LEN: usize = 8;

/// The process-wide secret that hides the shard byte; cheap to clone, same key in every clone.
#[derive(Clone, Debug)]
pub struct CidKey(std::collections::hash_map::RandomState);

impl CidKey {
    /// A fresh random key (once per process).
    pub fn random() -> CidKey {
        CidKey(std::collections::hash_map::RandomState::new())
    }

    fn mask(&self, rest: &[u8]) -> u8 {
        let mut h = self.0.build_hasher();
        h.write(rest);
        h.finish() as u8
    }

    /// The shard a server-issued id names.
    pub fn shard_of(&self, cid: &[u8]) -> Option<usize> {
        if cid.len() != CID_LEN {
            return None;
        }
        Some(usize::from(cid[0] ^ self.mask(&cid[1..])))
    }
}

/// quinn's id generator for one shard.
#[derive(Debug)]
pub struct ShardCids {
    shard: u8,
    key: CidKey,
    lifetime: Option<Duration>,
}

impl ShardCids {
    /// Ids for `shard` (at most 256 shards).
    pub fn new(shard: usize, key: CidKey) -> ShardCids {
        ShardCids { shard: shard as u8, key, lifetime: None }
    }
}

impl ConnectionIdGenerator for ShardCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut id = [0u8; CID_LEN];
        // Random bytes from ring's system RNG (the same source rustls uses).
        let rng = ring::rand::SystemRandom::new();
        if ring::rand::SecureRandom::fill(&rng, &mut id[1..]).is_err() {
            // The OS RNG failing is not recoverable in a sane way; fall back to std's hasher keys.
            let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
            id[1..].copy_from_slice(&seed.to_le_bytes()[..CID_LEN - 1]);
        }
        id[0] = self.shard ^ self.key.mask(&id[1..]);
        ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

/// The destination connection id of a QUIC datagram when it is one this server issued: short
/// header packets (1-RTT, the only ones a migrated client sends) and long header Handshake
/// packets. Initial and 0-RTT packets may carry a client-chosen id and are left to whichever
/// shard receives them (they arrive on the 4-tuple of the connection's first packet anyway).
pub fn server_dcid(datagram: &[u8]) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & 0x80 == 0 {
        // Short header: flags, then our fixed-length id.
        return datagram.get(1..1 + CID_LEN);
    }
    // Long header: flags, version (4), dcid len (1), dcid. Type bits 0x30: 0 Initial, 1 0-RTT,
    // 2 Handshake, 3 Retry (server to client only). Version 0 is version negotiation.
    let version = datagram.get(1..5)?;
    if version == [0, 0, 0, 0] || (first & 0x30) >> 4 != 2 {
        return None;
    }
    let len = usize::from(*datagram.get(5)?);
    if len != CID_LEN {
        return None;
    }
    datagram.get(6..6 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_decode_to_their_shard_and_vary() {
        let key = CidKey::random();
        for shard in [0usize, 1, 7, 255] {
            let mut g = ShardCids::new(shard, key.clone());
            let a = g.generate_cid();
            let b = g.generate_cid();
            assert_eq!(key.shard_of(&a), Some(shard));
            assert_eq!(key.shard_of(&b), Some(shard));
            assert_ne!(&a[..], &b[..]);
        }
        // Another process (another key) reads a different, unrelated shard most of the time.
        let other = CidKey::random();
        let mut g = ShardCids::new(3, key.clone());
        let differs = (0..64).filter(|_| other.shard_of(&g.generate_cid()) != Some(3)).count();
        assert!(differs > 32, "the shard byte must be hidden without the key ({differs}/64)");
    }

    #[test]
    fn destination_ids_are_found_only_where_the_server_chose_them() {
        let cid = [9u8, 1, 2, 3, 4, 5, 6, 7];
        let mut short = vec![0x40];
        short.extend_from_slice(&cid);
        short.extend_from_slice(&[0; 20]);
        assert_eq!(server_dcid(&short), Some(&cid[..]));
        let long = |ty: u8| {
            let mut p = vec![0xc0 | (ty << 4), 0, 0, 0, 1, CID_LEN as u8];
            p.extend_from_slice(&cid);
            p.extend_from_slice(&[0; 20]);
            p
        };
        assert_eq!(server_dcid(&long(2)), Some(&cid[..]), "handshake");
        assert_eq!(server_dcid(&long(0)), None, "initial");
        assert_eq!(server_dcid(&long(1)), None, "0-rtt");
        assert_eq!(server_dcid(&[0x40, 1, 2]), None, "truncated");
        assert_eq!(server_dcid(&[]), None);
    }
}
