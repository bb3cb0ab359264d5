//! The HTTP/3 part of the configuration model: `[listeners.http3]`.
//!
//! Owns: the serde shape of QUIC/HTTP/3 listener settings and their defaults. Must not: know
//! quinn or open sockets (the QUIC crate builds endpoints from this).
//! Every key here is documented in `docs/config.md`; keep the two in step.

use serde::Deserialize;

use super::units::{Dur, Size};

/// When clients must prove their address with a Retry round trip before the gateway keeps
/// handshake state for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// Only while a shard has more handshakes in progress than `retry_threshold`.
    #[default]
    UnderLoad,
    /// Every new connection (one extra round trip, strongest against spoofed floods).
    Always,
    /// Never.
    Never,
}

/// `[listeners.http3]`: serve HTTP/3 over QUIC on the listener's port (UDP), beside TCP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerHttp3Config {
    /// Serve HTTP/3 (the table's presence enables it; `false` turns it off without deleting it).
    pub enabled: bool,
    /// Advertise HTTP/3 with `Alt-Svc` on this listener's TCP responses.
    pub advertise: bool,
    /// `ma` (max age) of the `Alt-Svc` advertisement.
    pub alt_svc_max_age: Dur,
    /// Concurrent request streams one client connection may open.
    pub max_concurrent_streams: u32,
    /// Connections one shard accepts at once; more are refused.
    pub max_connections_per_shard: u32,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Dur,
    /// Largest request header section (QPACK-decoded); larger gets the stream refused.
    pub max_field_section_size: Size,
    /// Accept 0-RTT early data (only for safe methods, see docs); off by default.
    pub zero_rtt: bool,
    /// Address validation with Retry.
    pub retry: RetryMode,
    /// Handshakes in progress per shard above which `retry = "under_load"` starts requiring Retry.
    pub retry_threshold: u32,
}

impl Default for ListenerHttp3Config {
    fn default() -> Self {
        ListenerHttp3Config {
            enabled: true,
            advertise: true,
            alt_svc_max_age: Dur::secs(86_400),
            max_concurrent_streams: 100,
            max_connections_per_shard: 10_000,
            idle_timeout: Dur::secs(30),
            max_field_section_size: Size(16 * 1024),
            zero_rtt: false,
            retry: RetryMode::UnderLoad,
            retry_threshold: 256,
        }
    }
}
