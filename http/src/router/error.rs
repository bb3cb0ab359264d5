//! Errors from compiling a route table.
//!
//! Owns: the `RouterError` type and its messages. Must not: decide how errors are reported
//! (config validation and the CLI do that).

use thiserror::Error;

/// Why a route could not be compiled; `route` is the route's display name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RouterError {
    /// Both `path` and `prefix` are set.
    #[error("route {route}: `path` and `prefix` are exclusive")]
    PathAndPrefix {
        /// Route display name.
        route: String,
    },
    /// A `path` is malformed.
    #[error("route {route}: path {path:?}: {reason}")]
    BadPath {
        /// Route display name.
        route: String,
        /// The offending path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `prefix` is malformed.
    #[error("route {route}: prefix {prefix:?}: {reason}")]
    BadPrefix {
        /// Route display name.
        route: String,
        /// The offending prefix.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host pattern is malformed.
    #[error("route {route}: host {host:?}: {reason}")]
    BadHost {
        /// Route display name.
        route: String,
        /// The offending host.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A method name is empty or not an HTTP token.
    #[error("route {route}: method {method:?} is not an HTTP method token")]
    BadMethod {
        /// Route display name.
        route: String,
        /// The offending method.
        method: String,
    },
    /// A header condition has an empty or invalid name.
    #[error("route {route}: header condition name {name:?} is not a header field name")]
    BadHeaderName {
        /// Route display name.
        route: String,
        /// The offending name.
        name: String,
    },
}
