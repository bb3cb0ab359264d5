//! QUIC endpoints, one per shard per listener: `SO_REUSEPORT` UDP sockets sharing one port,
//! connection ids that name their shard, and the keys every shard of the process must share
//! (stateless reset, address validation tokens) so any shard can answer for any other.
//!
//! Owns: socket binding and quinn endpoint construction. Must not: speak HTTP/3 (see `h3`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::cid::{CidKey, ShardCids};
use crate::runtime::MonoioRuntime;
use crate::steer::Steering;

/// What every shard's endpoint of one listener shares. Build once per listener, clone to shards.
#[derive(Clone)]
pub struct SharedQuic {
    /// Cross-shard steering table (and the connection id key).
    pub steering: Arc<Steering>,
    reset_key: Arc<ring::hmac::Key>,
    token_key: Arc<ring::hkdf::Prk>,
}

impl std::fmt::Debug for SharedQuic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQuic").field("shards", &self.steering.shards()).finish_non_exhaustive()
    }
}

impl SharedQuic {
    /// Fresh random keys for `shards` shards.
    pub fn new(shards: usize) -> io::Result<SharedQuic> {
        let rng = ring::rand::SystemRandom::new();
        let mut secret = [0u8; 64];
        ring::rand::SecureRandom::fill(&rng, &mut secret)
            .map_err(|_| io::Error::other("no OS randomness"))?;
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret[..32]);
        let token_key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&secret[32..]);
        Ok(SharedQuic {
            steering: Arc::new(Steering::new(shards, CidKey::random())),
            reset_key: Arc::new(reset_key),
            token_key: Arc::new(token_key),
        })
    }

    /// quinn's endpoint settings for `shard`: its id generator and the shared reset key.
    pub fn endpoint_config(&self, shard: usize) -> quinn::EndpointConfig {
        let mut cfg = quinn::EndpointConfig::new(self.reset_key.clone());
        let key = self.steering.key().clone();
        cfg.cid_generator(move || Box::new(ShardCids::new(shard, key.clone())));
        cfg
    }

    /// A server config over `crypto` with the shared address-validation token key.
    pub fn server_config(&self, crypto: Arc<dyn quinn::crypto::ServerConfig>) -> quinn::ServerConfig {
        quinn::ServerConfig::new(crypto, self.token_key.clone())
    }

    /// Creates shard `shard`'s endpoint on `socket`. Must run on that shard's monoio runtime.
    pub fn endpoint(
        &self,
        shard: usize,
        socket: UdpSocket,
        server: quinn::ServerConfig,
    ) -> io::Result<quinn::Endpoint> {
        quinn::Endpoint::new(
            self.endpoint_config(shard),
            Some(server),
            socket,
            Arc::new(MonoioRuntime::steered(self.steering.clone(), shard)),
        )
    }
}

/// Binds one reuse-port UDP socket.
pub fn bind_udp_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds `shards` reuse-port UDP sockets on one port (a port of 0 is resolved by the first).
pub fn bind_udp_shards(addr: SocketAddr, shards: usize) -> io::Result<(Vec<UdpSocket>, SocketAddr)> {
    let first = bind_udp_reuseport(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {addr}: {e}")))?;
    let actual = first.local_addr()?;
    let mut out = Vec::with_capacity(shards);
    out.push(first);
    for _ in 1..shards {
        out.push(
            bind_udp_reuseport(actual)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind udp {actual}: {e}")))?,
        );
    }
    Ok((out, actual))
}
