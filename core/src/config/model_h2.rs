//! The HTTP/2 part of the configuration model: `[http2]`, the limits and flood defences of
//! downstream HTTP/2 connections (TLS with ALPN `h2`, or cleartext prior knowledge on listeners
//! with `h2c = true`).
//!
//! Owns: the serde shape of the HTTP/2 settings and their defaults. Must not: know the HTTP/2
//! library (the HTTP crate maps these onto it). Every key is documented in `docs/config.md`.

use serde::Deserialize;

use super::units::Size;

/// `[http2]`: downstream HTTP/2 limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused.
    pub max_concurrent_streams: u32,
    /// Largest decoded header list of one request (SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_size: Size,
    /// Initial flow-control window of each stream.
    pub initial_stream_window: Size,
    /// Initial flow-control window of the connection.
    pub initial_connection_window: Size,
    /// Streams reset by the client before the gateway accepted them, at once; more closes the
    /// connection with ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487).
    pub max_pending_resets: usize,
    /// RST_STREAM frames a client may send per second; more closes the connection.
    pub max_resets_per_second: u32,
    /// PING frames a client may send per second; more closes the connection.
    pub max_pings_per_second: u32,
    /// SETTINGS frames a client may send per second; more closes the connection.
    pub max_settings_per_second: u32,
    /// CONTINUATION frames allowed in one header block; more closes the connection.
    pub max_continuation_frames: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: 100,
            max_header_list_size: Size(16 * 1024),
            initial_stream_window: Size(256 * 1024),
            initial_connection_window: Size(1024 * 1024),
            max_pending_resets: 20,
            max_resets_per_second: 200,
            max_pings_per_second: 20,
            max_settings_per_second: 20,
            max_continuation_frames: 16,
        }
    }
}
