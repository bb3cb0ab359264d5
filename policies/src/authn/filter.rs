//! `AuthnFilter`: finds a credential (API key or JWT), verifies it (per-shard cache first),
//! answers 401 in the gateway's JSON error shape with a `WWW-Authenticate` challenge when it is
//! missing or invalid, and hands the identity on (`cx.identity`, `cx.consumer`, `cx.tier`,
//! identity headers, credential stripped).
//!
//! Owns: the per-route auth mode, the credential search order, the unknown-`kid` wait (one
//! re-fetch, single-flight per shard and across shards), the revocation check and rejection
//! counters (per shard, and as `auth_failure` metric events). Must not:
//! decide authorisation (the authz filter does) or block the shard.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use portcullis_core::LocalReply;
use portcullis_core::config::{AuthMode, Config};
use portcullis_core::error::Source;
use portcullis_core::pipeline::{Cx, Filter, Flow, RequestHead};
use portcullis_core::telemetry::bump;

use super::accept::{Accepted, IdentityHeaders};
use super::apikey::ApiKeys;
use super::cache::{CacheStats, VerifiedCache, unix_now};
use super::jwt::{JwtError, JwtIssuer, Verdict, peek_issuer};
use super::revocation::ShardDenylist;
use super::service::Msg;
use super::token::CompiledSource;
use crate::chain::ChainEnv;
use crate::error::BuildError;

/// Rejection reasons, in counter order.
pub const REASONS: [&str; 12] = [
    "missing",
    "invalid_api_key",
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "revoked",
];

fn reason_index(e: &JwtError) -> usize {
    match e {
        JwtError::Malformed => 2,
        JwtError::Algorithm => 3,
        JwtError::UnknownKey => 4,
        JwtError::Signature => 5,
        JwtError::Expired => 6,
        JwtError::NotYetValid => 7,
        JwtError::Issuer => 8,
        JwtError::Audience => 9,
        JwtError::MissingClaim => 10,
        JwtError::Revoked => 11,
    }
}

/// Per-shard state of one issuer's unknown-`kid` re-fetches.
#[derive(Debug, Default)]
struct Refetch {
    last: Option<Instant>,
    pending: Option<async_channel::Receiver<()>>,
}

/// The authentication filter of one shard and generation.
#[derive(Debug)]
pub struct AuthnFilter {
    modes: Vec<AuthMode>,
    challenge: String,
    realm: String,
    rules: IdentityHeaders,
    strip_credentials: bool,
    api_keys: Option<ApiKeys>,
    issuers: Vec<JwtIssuer>,
    /// Each distinct JWT source and the issuers reading from it.
    jwt_sources: Vec<(CompiledSource, Vec<usize>)>,
    pub(super) cache: VerifiedCache,
    refetch: Vec<RefCell<Refetch>>,
    rejected: [Cell<u64>; REASONS.len()],
    /// The same counts in the process metrics (`auth_failure` events), when telemetry is on.
    events: Option<[Arc<AtomicU64>; REASONS.len()]>,
    /// The revocation list, when `[auth.revocation]` is set.
    denylist: Option<ShardDenylist>,
}

impl AuthnFilter {
    /// Compiles `[auth]` and the routes' auth modes; `None` when no credential kind is configured.
    pub fn build(cfg: &Config, env: &ChainEnv) -> Result<Option<AuthnFilter>, BuildError> {
        let auth = &cfg.auth;
        if !auth.is_enabled() {
            return Ok(None);
        }
        super::ring_provider::install();
        let rules = IdentityHeaders::build(&auth.identity_headers, &auth.strip_headers)?;
        let mut keep: Vec<String> = rules.claims().map(str::to_owned).collect();
        for r in &cfg.routes {
            keep.extend(r.authz.claims.iter().map(|c| c.claim.clone()));
        }
        let denylist = match &auth.revocation {
            Some(r) => {
                keep.push("jti".to_owned());
                let shared = env
                    .auth
                    .revocations(r)
                    .map_err(|reason| BuildError::Auth { path: "auth.revocation".to_owned(), reason })?;
                Some(ShardDenylist::new(shared))
            }
            None => None,
        };
        keep.sort();
        keep.dedup();
        let mut issuers = Vec::with_capacity(auth.jwt.len());
        let mut jwt_sources: Vec<(CompiledSource, Vec<usize>)> = Vec::new();
        for (i, c) in auth.jwt.iter().enumerate() {
            let issuer = JwtIssuer::build(c, &keep, &env.auth)
                .map_err(|reason| BuildError::Auth { path: format!("auth.jwt[{i}]"), reason })?;
            issuers.push(issuer);
            for s in &c.token_from {
                let s = CompiledSource::new(s);
                match jwt_sources.iter_mut().find(|(have, _)| *have == s) {
                    Some((_, list)) => list.push(i),
                    None => jwt_sources.push((s, vec![i])),
                }
            }
        }
        let api_keys = match &auth.api_keys {
            Some(k) => Some(
                ApiKeys::build(k, &env.auth, &rules)
                    .map_err(|reason| BuildError::Auth { path: "auth.api_keys".to_owned(), reason })?,
            ),
            None => None,
        };
        let realm = auth.realm.replace(['"', '\\'], "");
        let challenge = if issuers.is_empty() {
            format!("ApiKey realm=\"{realm}\"")
        } else {
            format!("Bearer realm=\"{realm}\"")
        };
        Ok(Some(AuthnFilter {
            modes: cfg.routes.iter().map(|r| r.auth.unwrap_or(AuthMode::Required)).collect(),
            challenge,
            realm,
            rules,
            strip_credentials: auth.strip_credentials,
            api_keys,
            refetch: issuers.iter().map(|_| RefCell::default()).collect(),
            issuers,
            jwt_sources,
            cache: VerifiedCache::new(auth.cache_entries, auth.cache_ttl.0.as_secs()),
            rejected: Default::default(),
            events: env
                .telemetry
                .as_ref()
                .map(|t| REASONS.map(|r| t.metrics.event(env.shard, "auth_failure", r))),
            denylist,
        }))
    }

    /// Verification cache hits, misses and size on this shard.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Rejections by reason on this shard (reason names from [`REASONS`]).
    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        REASONS.iter().zip(&self.rejected).map(|(r, c)| (*r, c.get())).collect()
    }

    /// The compiled issuers (tests and benches inspect their key sets).
    pub fn issuers(&self) -> &[JwtIssuer] {
        &self.issuers
    }

    fn reject(&self, reason: usize, reply: LocalReply) -> Flow {
        let c = &self.rejected[reason];
        c.set(c.get() + 1);
        if let Some(events) = &self.events {
            bump(&events[reason], 1);
        }
        Flow::Respond(reply)
    }

    fn missing(&self) -> Flow {
        let reply = LocalReply::new(401, "unauthorized", "credentials required", Source::Policy)
            .with_header("www-authenticate", self.challenge.clone());
        self.reject(0, reply)
    }

    fn invalid_token(&self, e: &JwtError) -> Flow {
        let value = format!(
            "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
            self.realm,
            e.describe()
        );
        let reply = LocalReply::new(401, "invalid_token", e.describe(), Source::Policy)
            .with_header("www-authenticate", value);
        self.reject(reason_index(e), reply)
    }

    fn accept(&self, acc: &Accepted, src: &CompiledSource, req: &mut RequestHead, cx: &mut Cx) {
        let id = &acc.identity;
        if !id.consumer.is_empty() {
            cx.consumer = Some(id.consumer.clone());
        }
        cx.tier = id.tier.clone();
        cx.identity = Some(Rc::clone(id));
        if self.strip_credentials {
            src.strip(req);
        }
        acc.inject(&mut req.headers);
    }

    /// Asks the auth thread for a re-fetch of issuer `i`'s JWKS, or joins the one this shard
    /// already asked for. `None` when a re-fetch happened too recently (or there is no JWKS).
    fn request_refetch(&self, i: usize) -> Option<async_channel::Receiver<()>> {
        let (remote, tx) = self.issuers[i].remote.as_ref()?;
        let mut st = self.refetch[i].borrow_mut();
        if let Some(rx) = &st.pending
            && !rx.is_closed()
        {
            return Some(rx.clone());
        }
        if st.last.is_some_and(|t| t.elapsed() < remote.unknown_kid_interval()) {
            return None;
        }
        let (reply_tx, reply_rx) = async_channel::bounded(1);
        tx.send(Msg::Refetch(Arc::downgrade(remote), reply_tx)).ok()?;
        st.last = Some(Instant::now());
        st.pending = Some(reply_rx.clone());
        Some(reply_rx)
    }

    /// Verifies a JWT read from a source shared by `candidates` issuers, then checks the
    /// revocation list (on cache hits too).
    async fn jwt(&self, token: &[u8], candidates: &[usize]) -> Result<Rc<Accepted>, JwtError> {
        let acc = self.verify_jwt(token, candidates).await?;
        if let Some(d) = &self.denylist
            && d.revoked(acc.jti.as_deref(), acc.identity.subject.as_deref())
        {
            return Err(JwtError::Revoked);
        }
        Ok(acc)
    }

    /// Signature and claims of a JWT, from the cache when it has the token.
    async fn verify_jwt(&self, token: &[u8], candidates: &[usize]) -> Result<Rc<Accepted>, JwtError> {
        let key = self.cache.key(token);
        let now = unix_now();
        if let Some(hit) = self.cache.get(key, token, now)
            && candidates.iter().any(|&i| Rc::ptr_eq(&self.issuers[i].name, &hit.identity.source))
        {
            return Ok(hit);
        }
        let raw = token;
        let token = std::str::from_utf8(token).map_err(|_| JwtError::Malformed)?;
        let i = match candidates {
            [only] => *only,
            _ => {
                let iss = peek_issuer(token).ok_or(JwtError::Malformed)?;
                *candidates.iter().find(|&&i| self.issuers[i].issuer == iss).ok_or(JwtError::Issuer)?
            }
        };
        let issuer = &self.issuers[i];
        let identity = match issuer.verify(token) {
            Verdict::Valid(id) => id,
            Verdict::Invalid(e) => return Err(e),
            Verdict::UnknownKid => {
                let wait = self.request_refetch(i).ok_or(JwtError::UnknownKey)?;
                // The auth thread drops the sender when the re-fetch is done (or refused).
                let _ = wait.recv().await;
                match issuer.verify(token) {
                    Verdict::Valid(id) => id,
                    Verdict::Invalid(e) => return Err(e),
                    Verdict::UnknownKid => return Err(JwtError::UnknownKey),
                }
            }
        };
        let expires = identity.expires_at;
        let acc = Rc::new(Accepted::new(identity, &self.rules));
        self.cache.put(key, raw, Rc::clone(&acc), expires, now);
        Ok(acc)
    }
}

impl Filter for AuthnFilter {
    async fn on_request(&self, req: &mut RequestHead, cx: &mut Cx) -> Flow {
        self.rules.strip(&mut req.headers);
        // No route: nothing to protect, the engine answers 404 after the chain.
        let mode = match cx.route {
            None => AuthMode::None,
            Some(i) => self.modes.get(i).copied().unwrap_or(AuthMode::Required),
        };
        if mode == AuthMode::None {
            return Flow::Continue;
        }
        if let Some(keys) = &self.api_keys {
            for src in &keys.sources {
                if let Some(k) = src.find(req) {
                    return match keys.lookup(&k, &self.rules) {
                        Some(acc) => {
                            self.accept(&acc, src, req, cx);
                            Flow::Continue
                        }
                        None => {
                            let value = format!("ApiKey realm=\"{}\", error=\"invalid_api_key\"", self.realm);
                            let reply =
                                LocalReply::new(401, "invalid_api_key", "unknown API key", Source::Policy)
                                    .with_header("www-authenticate", value);
                            self.reject(1, reply)
                        }
                    };
                }
            }
        }
        for (src, candidates) in &self.jwt_sources {
            let Some(token) = src.find(req) else { continue };
            return match self.jwt(&token, candidates).await {
                Ok(acc) => {
                    self.accept(&acc, src, req, cx);
                    Flow::Continue
                }
                Err(e) => self.invalid_token(&e),
            };
        }
        if mode == AuthMode::Required { self.missing() } else { Flow::Continue }
    }
}
