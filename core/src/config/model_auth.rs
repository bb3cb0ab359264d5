//! The configuration model of authentication (`[auth]`: JWT issuers, API keys, identity
//! hand-off) and of per-route authorisation (`routes[].auth`, `routes[].authz`).
//!
//! Owns: the serde shape and defaults of those sections. Must not: validate across sections
//! (`validate/auth.rs` does), read key files or touch the network (the authn filter does).
//! Every key here is documented in `docs/config.md` (section "Authentication").

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::Dur;

/// `[auth]`: how the gateway authenticates clients and hands their identity to upstreams.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Realm in `WWW-Authenticate` challenges.
    pub realm: String,
    /// Remove the credential (token or API key) before forwarding the request.
    pub strip_credentials: bool,
    /// Headers injected toward the upstream, header name -> source (`consumer`, `subject`,
    /// `scopes`, `roles`, `tier`, `issuer`, or `claim:<name>`). Client copies are always removed.
    pub identity_headers: BTreeMap<String, String>,
    /// More client header names to remove on every request (e.g. `x-internal-user`).
    pub strip_headers: Vec<String>,
    /// Verified tokens remembered per shard (0 disables the cache).
    pub cache_entries: usize,
    /// Longest time a verified token is remembered (never beyond its `exp`).
    pub cache_ttl: Dur,
    /// JWT issuers, tried by the token's `iss`.
    pub jwt: Vec<JwtIssuerConfig>,
    /// API keys.
    pub api_keys: Option<ApiKeysConfig>,
    /// JWT denylist in Redis (`jti`s and subjects).
    pub revocation: Option<super::model_revocation::RevocationConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let identity_headers =
            [("x-consumer", "consumer"), ("x-user-id", "subject"), ("x-auth-scopes", "scopes")]
                .into_iter()
                .map(|(h, s)| (h.to_owned(), s.to_owned()))
                .collect();
        AuthConfig {
            realm: "portcullis".to_owned(),
            strip_credentials: true,
            identity_headers,
            strip_headers: Vec::new(),
            cache_entries: 10_000,
            cache_ttl: Dur::secs(300),
            jwt: Vec::new(),
            api_keys: None,
            revocation: None,
        }
    }
}

impl AuthConfig {
    /// True when some credential kind is configured (the authn filter runs).
    pub fn is_enabled(&self) -> bool {
        !self.jwt.is_empty() || self.api_keys.is_some()
    }
}

/// Where a credential is read from: exactly one of `header`, `cookie`, `query`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// A request header (e.g. `authorization`, `x-api-key`).
    #[serde(default)]
    pub header: Option<String>,
    /// With `header`: the auth scheme before the credential (`Bearer`), matched case-insensitively.
    #[serde(default)]
    pub scheme: Option<String>,
    /// A cookie name.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A query parameter name.
    #[serde(default)]
    pub query: Option<String>,
}

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> TokenSource {
        TokenSource {
            header: Some("authorization".to_owned()),
            scheme: Some("Bearer".to_owned()),
            ..Default::default()
        }
    }
}

/// `[[auth.jwt]]`: one token issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// Name in logs, metrics and `routes[].authz.issuers`.
    pub name: String,
    /// Expected `iss` claim (exact).
    pub issuer: String,
    /// Accepted `aud` values (any one must be in the token); empty = `aud` is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted `alg` values (e.g. `["RS256"]`); a token naming any other is refused.
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: Dur,
    /// Claims that must be present (`exp` is always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Where the token is read from, tried in order.
    #[serde(default = "default_token_sources")]
    pub token_from: Vec<TokenSource>,
    /// JWKS endpoint (`http://` or `https://`), fetched in the background.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PEM file of extra CA certificates trusted for an `https` `jwks_uri` (besides the web roots).
    #[serde(default)]
    pub jwks_ca_file: Option<String>,
    /// JWKS refresh and re-fetch timing.
    #[serde(default)]
    pub jwks_refresh: JwksRefreshConfig,
    /// Static keys (PEM files, JWK set files, shared secrets).
    #[serde(default)]
    pub keys: Vec<StaticKeyConfig>,
    /// Claim holding the scopes (space-separated string or array).
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
    /// Claim holding the roles (string or array).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim naming the consumer (rate-limit key, `X-Consumer`).
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Claim naming the consumer's tier; absent = no tier.
    #[serde(default)]
    pub tier_claim: Option<String>,
}

fn default_leeway() -> Dur {
    Dur::secs(30)
}

fn default_token_sources() -> Vec<TokenSource> {
    vec![TokenSource::bearer()]
}

fn default_scopes_claim() -> String {
    "scope".to_owned()
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_consumer_claim() -> String {
    "sub".to_owned()
}

/// `[auth.jwt.jwks_refresh]`: when the key set is fetched again.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksRefreshConfig {
    /// Refresh interval when the response has no usable `Cache-Control: max-age`.
    pub default_interval: Dur,
    /// Lower bound on a `max-age` (a smaller one is raised to this).
    pub min_interval: Dur,
    /// Upper bound on a `max-age`.
    pub max_interval: Dur,
    /// Least time between two fetches triggered by unknown `kid`s (across all shards).
    pub unknown_kid_interval: Dur,
    /// Retry delay after a failed fetch (the last good keys stay in use).
    pub retry_interval: Dur,
    /// Timeout of one fetch (connect, TLS, response).
    pub timeout: Dur,
}

impl Default for JwksRefreshConfig {
    fn default() -> Self {
        JwksRefreshConfig {
            default_interval: Dur::secs(3600),
            min_interval: Dur::secs(60),
            max_interval: Dur::secs(86_400),
            unknown_kid_interval: Dur::secs(10),
            retry_interval: Dur::secs(10),
            timeout: Dur::secs(5),
        }
    }
}

/// `[[auth.jwt.keys]]`: one static verification key; exactly one of the sources.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeyConfig {
    /// Key id matched against the token's `kid` (absent = the key matches any `kid`).
    #[serde(default)]
    pub kid: Option<String>,
    /// PEM public key file (RSA, EC or Ed25519).
    #[serde(default)]
    pub pem_file: Option<String>,
    /// JWK set file (`{"keys": [...]}`) or a single JWK.
    #[serde(default)]
    pub jwk_file: Option<String>,
    /// Shared secret for HS256/384/512 (raw UTF-8 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// Shared secret read from an environment variable.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// `[auth.api_keys]`: static API keys, stored as SHA-256 hashes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Where the key is read from, tried in order.
    #[serde(default = "default_api_key_sources")]
    pub from: Vec<TokenSource>,
    /// Keys listed here.
    #[serde(default)]
    pub keys: Vec<ApiKeyEntry>,
    /// A TOML file of more `[[keys]]`, re-read when it changes.
    #[serde(default)]
    pub keys_file: Option<String>,
    /// How often `keys_file` is checked for changes.
    #[serde(default = "default_keys_watch")]
    pub watch_interval: Dur,
}

fn default_api_key_sources() -> Vec<TokenSource> {
    vec![TokenSource { header: Some("x-api-key".to_owned()), ..Default::default() }]
}

fn default_keys_watch() -> Dur {
    Dur::secs(1)
}

/// One API key: its SHA-256 and who it belongs to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Lowercase hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// The consumer the key identifies.
    pub consumer: String,
    /// The consumer's tier (picks rate limits).
    #[serde(default)]
    pub tier: Option<String>,
    /// Scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Roles granted.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `routes[].auth`: whether the route needs a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A valid credential is needed (401 otherwise).
    Required,
    /// A credential is checked when present (invalid = 401), anonymous requests pass.
    Optional,
    /// No authentication (client identity headers are still removed).
    None,
}

/// How several required scopes combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeMatch {
    /// Every listed scope.
    #[default]
    All,
    /// At least one.
    Any,
}

/// `routes[].authz`: what an authenticated identity needs for this route (403 otherwise).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteAuthz {
    /// Required scopes.
    pub scopes: Vec<String>,
    /// `all` (default) or `any` of `scopes`.
    pub scopes_match: ScopeMatch,
    /// At least one of these roles (empty = no role needed).
    pub roles: Vec<String>,
    /// Claim predicates, all of which must hold.
    pub claims: Vec<ClaimMatch>,
    /// Accepted credential origins: JWT issuer names and/or `api_key` (empty = any).
    pub issuers: Vec<String>,
    /// Conditions on the verified mTLS client certificate.
    pub client_cert: super::model_client_cert::ClientCertMatch,
}

impl RouteAuthz {
    /// True when the route restricts nothing.
    pub fn is_empty(&self) -> bool {
        !self.needs_identity() && self.client_cert.is_empty()
    }

    /// True when the route checks the authenticated identity (not only the client certificate).
    pub fn needs_identity(&self) -> bool {
        !(self.scopes.is_empty()
            && self.roles.is_empty()
            && self.claims.is_empty()
            && self.issuers.is_empty())
    }
}

/// A predicate on one claim: `equals` a value or is `one_of` several.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMatch {
    /// Claim name.
    pub claim: String,
    /// The claim (or one element of an array claim) equals this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The claim (or one element of an array claim) is one of these.
    #[serde(default)]
    pub one_of: Vec<String>,
}
