//! Configuration: the TOML model, loading with line-accurate errors, and validation.
//!
//! Owns: what a config file may say (`model`, `units`), how it is read and checked (`load`,
//! `validate`, `spans`), and the `Cidr` network type. Must not: apply a config to running shards
//! (the runtime's reload does that) or build filters and routes from it.

mod cidr;
mod files;
mod load;
mod model;
mod model_auth;
mod model_client_cert;
mod model_cors;
mod model_dns;
mod model_edge;
mod model_h2;
mod model_health;
mod model_obs;
mod model_protocol;
mod model_quic;
mod model_ratelimit;
mod model_revocation;
mod model_tls;
mod model_upstream;
mod redact;
mod spans;
mod units;
mod validate;

pub use cidr::Cidr;
pub use files::{input_files, visit_input_files};
pub use load::{ConfigError, ConfigErrors, load_file, load_str, load_str_with, locate};
pub use model::*;
pub use model_auth::*;
pub use model_client_cert::ClientCertMatch;
pub use model_cors::{CorsConfig, ResponseConfig};
pub use model_dns::{DnsConfig, DnsRecordType};
pub use model_edge::*;
pub use model_h2::*;
pub use model_health::*;
pub use model_obs::*;
pub use model_protocol::UpstreamProtocol;
pub use model_quic::*;
pub use model_ratelimit::{FailMode, LimitConfig, RateLimitConfig, TierLimit};
pub use model_revocation::RevocationConfig;
pub use model_tls::*;
pub use model_upstream::*;
pub use redact::{REDACTED, SECRET_WORDS, redacted_json};
pub use units::{Dur, Size};
pub use validate::{
    FRAMING_HEADERS, IDENTITY_SOURCES, JWT_ALGORITHMS, RATE_LIMIT_SCOPES, is_sha256_hex, load_endpoints_file,
    resolve_endpoint,
};
