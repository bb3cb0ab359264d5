//! Why a DNS resolution gave no endpoints, shared by the wire client and the lookup.
//!
//! Owns: `DnsError`. Must not: do I/O.

use hickory_proto::op::ResponseCode;

/// Why a resolution gave no endpoints.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No `server` given and no `nameserver` in /etc/resolv.conf.
    #[error("no name server: set dns.server or a nameserver in /etc/resolv.conf")]
    NoServer,
    /// Sending, receiving or a timeout.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server could not answer (SERVFAIL, REFUSED, ...).
    #[error("name server answered {0}")]
    Server(ResponseCode),
    /// The name does not exist.
    #[error("no such name (NXDOMAIN)")]
    NoSuchName,
    /// The name exists but has no usable records.
    #[error("no usable records in the answer")]
    Empty,
    /// An answer that does not decode.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl DnsError {
    /// True when the name server answered that there is nothing (as opposed to not answering).
    pub fn is_empty_answer(&self) -> bool {
        matches!(self, DnsError::NoSuchName | DnsError::Empty)
    }
}
