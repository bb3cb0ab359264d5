//! The authenticated identity of one request, as authentication found it and authorisation and
//! the identity hand-off read it.
//!
//! Owns: the identity record (who, from which credential, with which scopes, roles and claims).
//! Must not: verify anything (the authn filter does) or hold shard-wide state.

use std::rc::Rc;

use bytes::Bytes;

/// A claim kept in an identity: its name and its string values.
pub type Claim = (Box<str>, Box<[Box<str>]>);

/// Who made a request, shared by refcount (a verification cache hands out the same record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Credential origin: the JWT issuer's name, or `api_key`.
    pub source: Rc<str>,
    /// The consumer (rate-limit key, `X-Consumer`).
    pub consumer: Bytes,
    /// The token's `sub`, when it has one.
    pub subject: Option<Bytes>,
    /// The consumer's tier, when known.
    pub tier: Option<Rc<str>>,
    /// Granted scopes.
    pub scopes: Box<[Box<str>]>,
    /// Granted roles.
    pub roles: Box<[Box<str>]>,
    /// Claims the config refers to (authz predicates, identity headers), each flattened to its
    /// string values (an array claim has several).
    pub claims: Box<[Claim]>,
    /// Unix time after which the identity is no longer valid (the token's `exp`); 0 = none.
    pub expires_at: u64,
}

impl Identity {
    /// The values of claim `name`, if the identity carries it.
    pub fn claim(&self, name: &str) -> Option<&[Box<str>]> {
        self.claims.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
    }

    /// True when `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// True when `role` was granted.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| &**r == role)
    }
}
