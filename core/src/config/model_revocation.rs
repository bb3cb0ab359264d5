//! The configuration model of token revocation: `[auth.revocation]`, a denylist of JWT `jti`s and
//! subjects kept in Redis and synced to every shard.
//!
//! Owns: the serde shape and defaults of that section. Must not: validate (`validate/auth.rs`
//! does) or talk to Redis (the authn revocation thread does). Documented in `docs/config.md`
//! (section "Revocation").

use serde::Deserialize;

use super::units::Dur;

/// `[auth.revocation]`: where the denylist lives and how often it is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Redis address, `host:port` (or `cluster` instead).
    #[serde(default)]
    pub redis: String,
    /// Seed nodes (`host:port`) of a Redis Cluster, instead of `redis`.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// ACL user for `AUTH` (with a password); absent = the default user.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the Redis password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the Redis password (read at each connect).
    #[serde(default)]
    pub password_file: Option<String>,
    /// TLS to Redis, trusting the CA certificates (PEM) in this file; absent = plain TCP.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Prefix of the two sorted sets (`<prefix>jti`, `<prefix>sub`).
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How often the denylist is read from Redis.
    #[serde(default = "default_interval")]
    pub sync_interval: Dur,
    /// Connect, read and write timeout of one Redis exchange.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_prefix() -> String {
    "portcullis:revoked:".to_owned()
}

fn default_interval() -> Dur {
    Dur::millis(500)
}

fn default_timeout() -> Dur {
    Dur::millis(200)
}
