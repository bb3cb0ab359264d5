//! The QUIC TLS context of a listener, derived from the same certificates, SNI resolver and
//! cipher suites as its TCP TLS context (`portcullis_http::tls`): ALPN `h3`, TLS 1.3 only (QUIC
//! has no other), 0-RTT early data only when the listener enables it.
//!
//! Owns: that derivation. Must not: load certificate files itself.

use std::sync::Arc;

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
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("http3: the TLS settings cannot be used for QUIC: {e}"))?;
    Ok(Arc::new(quic))
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
