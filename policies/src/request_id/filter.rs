//! `RequestIdFilter`: config compiled once per shard, then per-request id handling.
//!
//! Owns: the id rules (visible ASCII, bounded length) and the generator. Must not: make a syscall
//! per request (the RNG is seeded once when the filter is built) or hold a borrow across `.await`.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use portcullis_core::config::RequestIdConfig;
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead, ResponseHead};

use crate::error::BuildError;
use crate::header_rules;

/// Length of a generated id: 128 random bits as lowercase hex.
pub(crate) const GENERATED_LEN: usize = 32;

/// Generated ids are carved out of one buffer this many at a time (one allocation per batch).
const IDS_PER_CHUNK: usize = 64;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Propagates or generates the request id (`[request_id]`).
#[derive(Debug)]
pub struct RequestIdFilter {
    /// Header name for lookups.
    name: String,
    /// The same name, precomputed for writes (cloning is a refcount bump).
    name_bytes: Bytes,
    generate: bool,
    max_length: usize,
    echo: bool,
    ids: RefCell<IdGen>,
}

/// Shard-local id generator: a seeded RNG and a chunk the ids are split from.
#[derive(Debug)]
struct IdGen {
    rng: fastrand::Rng,
    chunk: BytesMut,
}

impl IdGen {
    fn next(&mut self) -> Bytes {
        let mut hex = [0u8; GENERATED_LEN];
        let bits = (u128::from(self.rng.u64(..)) << 64) | u128::from(self.rng.u64(..));
        for (i, out) in hex.iter_mut().enumerate() {
            let nibble = (bits >> (124 - 4 * i)) & 0xf;
            *out = HEX[nibble as usize];
        }
        if self.chunk.capacity() < GENERATED_LEN {
            self.chunk = BytesMut::with_capacity(GENERATED_LEN * IDS_PER_CHUNK);
        }
        self.chunk.extend_from_slice(&hex);
        self.chunk.split().freeze()
    }
}

impl RequestIdFilter {
    /// Compiles `[request_id]`; the RNG is seeded here, once.
    pub fn build(cfg: &RequestIdConfig) -> Result<RequestIdFilter, BuildError> {
        RequestIdFilter::with_rng(cfg, fastrand::Rng::new())
    }

    /// Like [`RequestIdFilter::build`] with a caller-provided RNG (deterministic tests).
    pub fn with_rng(cfg: &RequestIdConfig, rng: fastrand::Rng) -> Result<RequestIdFilter, BuildError> {
        let name_bytes = header_rules::header_name(|| "request_id.header".to_owned(), &cfg.header)?;
        Ok(RequestIdFilter {
            name: cfg.header.clone(),
            name_bytes,
            generate: cfg.generate,
            max_length: cfg.max_length,
            echo: cfg.echo,
            ids: RefCell::new(IdGen { rng, chunk: BytesMut::new() }),
        })
    }

    /// True when `id` may be propagated: 1..=max_length bytes of visible ASCII.
    fn acceptable(&self, id: &[u8]) -> bool {
        !id.is_empty() && id.len() <= self.max_length && id.iter().all(|b| (0x21..=0x7e).contains(b))
    }

    /// A fresh id (the borrow ends before this returns).
    fn generate_id(&self) -> Bytes {
        self.ids.borrow_mut().next()
    }
}

impl Filter for RequestIdFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        // Only the first field counts; duplicates are collapsed or replaced, never forwarded.
        let (first, duplicated) = {
            let mut fields = req.headers.get_all(&self.name);
            (fields.next().cloned(), fields.next().is_some())
        };
        let present = first.is_some();
        match first.filter(|v| self.acceptable(v)) {
            Some(id) => {
                if duplicated {
                    req.headers.set(self.name_bytes.clone(), id.clone());
                }
                cx.request_id = id;
            }
            None if self.generate => {
                let id = self.generate_id();
                req.headers.set(self.name_bytes.clone(), id.clone());
                cx.request_id = id;
            }
            None => {
                // Nothing usable and nothing to replace it with: do not forward a malformed id.
                if present {
                    req.headers.remove(&self.name);
                }
            }
        }
        Flow::Continue
    }

    fn on_response(&self, resp: &mut ResponseHead, cx: &mut Cx) {
        if self.echo && !cx.request_id.is_empty() {
            resp.headers.set(self.name_bytes.clone(), cx.request_id.clone());
        }
    }
}
