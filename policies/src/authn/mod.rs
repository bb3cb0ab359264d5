//! Authentication: JWT (per-issuer rules, static keys and JWKS kept fresh by a background
//! thread, ring-backed verification), API keys (SHA-256 hashes, hot-reloaded file), a per-shard
//! verification cache, a Redis-backed revocation list, and the identity hand-off toward upstreams.
//!
//! Owns: everything between "the request carries a credential" and "`cx.identity` is set".
//! Must not: authorise (see `authz`), open sockets on a shard, or log credentials.

mod accept;
mod apikey;
mod cache;
mod fetch;
mod filter;
mod jwt;
mod keys;
mod revocation;
pub mod ring_provider;
mod service;
pub mod signing;
#[cfg(test)]
mod tests;
mod token;

pub use apikey::token_hash;
pub use cache::{CacheStats, VerifiedCache};
pub use filter::{AuthnFilter, REASONS};
pub use jwt::{JwtError, JwtIssuer, Verdict};
pub use keys::{KeySet, VerifyKey};
pub use revocation::{Denylist, Revocations};
pub use service::{AuthService, RemoteKeys};
