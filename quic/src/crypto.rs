//! The QUIC TLS context of a listener, derived from the same certificates, SNI resolver and
//! cipher suites as its TCP TLS context (`portcullis_http::tls`): ALPN `h3`, TLS 1.3 only (QUIC
//! has no other), 0-RTT early data only when the listener enables it.
//!
//! Owns: that derivation. Must not: load certificate files itself.

use std::sync::{Arc, OnceLock};

use portcullis_core::config::ListenerHttp3Config;

/// Builds quinn's server config for one listener and generation.
pub fn server_crypto(
    tcp: &rustls::ServerConfig,
    h3: &ListenerHttp3Config,
) -> Result<Arc<quinn::crypto::rustls::QuicServerConfig>, String> {
    let mut tls = tcp.clone();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // quinn accepts only 0 (no early data) or u32::MAX (early data, QUIC flow control limits it).
    tls.max_early_data_size = if h3.zero_rtt { u32::MAX } else { 0 };
    if h3.zero_rtt {
        // Early data needs single-use, server-side sessions (rustls refuses it with stateless
        // tickets): a replayed 0-RTT flight finds its session already taken, on any shard of
        // this process, and unknown on any other host, and falls back to a full handshake.
        tls.ticketer = Arc::new(NoTickets);
        tls.session_storage = zero_rtt_sessions();
    }
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("http3: the TLS settings cannot be used for QUIC: {e}"))?;
    Ok(Arc::new(quic))
}

/// Sessions that may resume with 0-RTT, shared by every shard and listener of the process (a
/// lock per resumed handshake, only where `zero_rtt` is on).
fn zero_rtt_sessions() -> Arc<dyn rustls::server::StoresServerSessions> {
    static CACHE: OnceLock<Arc<rustls::server::ServerSessionMemoryCache>> = OnceLock::new();
    CACHE.get_or_init(|| rustls::server::ServerSessionMemoryCache::new(ZERO_RTT_SESSIONS)).clone()
}

/// Resumable sessions kept for 0-RTT (oldest evicted first).
const ZERO_RTT_SESSIONS: usize = 65_536;

/// A ticketer that issues no tickets, so resumption goes through the session cache.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Transport limits of one listener.
pub fn transport(h3: &ListenerHttp3Config) -> Result<quinn::TransportConfig, String> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(h3.max_concurrent_streams.into());
    // The client's control stream and two QPACK streams, plus room for extensions.
    t.max_concurrent_uni_streams(8u32.into());
    let idle =
        quinn::IdleTimeout::try_from(h3.idle_timeout.0).map_err(|e| format!("http3.idle_timeout: {e}"))?;
    t.max_idle_timeout(Some(idle));
    Ok(t)
}
