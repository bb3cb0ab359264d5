//! The error a filter chain build can fail with.
//!
//! Owns: `BuildError`, each variant naming the config path at fault. Must not: carry request-time
//! errors (a running filter answers with a `LocalReply` instead).

use thiserror::Error;

/// Why a filter (or the chain) could not be built from a config snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// A header name is not an RFC 9110 token.
    #[error("{path}: invalid header name {name:?}")]
    HeaderName {
        /// Config path of the offending key.
        path: String,
        /// The name as configured.
        name: String,
    },
    /// A header name belongs to the codec (framing or connection management) and may not be edited.
    #[error("{path}: header {name:?} controls message framing and cannot be edited by a route")]
    ReservedHeader {
        /// Config path of the offending key.
        path: String,
        /// The name as configured.
        name: String,
    },
    /// A header value holds control characters (CR, LF, NUL, ...).
    #[error("{path}: value of header {name:?} contains control characters")]
    HeaderValue {
        /// Config path of the offending key.
        path: String,
        /// The header name the value belongs to.
        name: String,
    },
    /// A `forwarded.trusted_proxies` entry is not an address or CIDR.
    #[error("{path}: invalid trusted proxy {entry:?}: {reason}")]
    TrustedProxy {
        /// Config path of the offending entry.
        path: String,
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A route's prefix rewrite cannot be applied.
    #[error("{path}: {reason}")]
    Rewrite {
        /// Config path of the offending key.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An authentication setting cannot be applied (unreadable key file, bad key, ...).
    #[error("{path}: {reason}")]
    Auth {
        /// Config path of the offending key.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}
