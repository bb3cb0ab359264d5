//! Identity hand-off: which client headers are removed on every request (so a client cannot spoof
//! an identity), and the headers injected toward the upstream for an accepted credential.
//!
//! Owns: `IdentityHeaders` (compiled `auth.identity_headers` and `auth.strip_headers`) and
//! `Accepted` (an identity with its header values rendered once, so a cache hit only clones
//! refcounts). Must not: verify credentials.

use std::rc::Rc;

use bytes::Bytes;
use portcullis_core::pipeline::{Headers, Identity};

use crate::error::BuildError;
use crate::header_rules;

/// Where an injected header takes its value from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Consumer,
    Subject,
    Scopes,
    Roles,
    Tier,
    Issuer,
    Claim(String),
}

/// The compiled identity-header rules.
#[derive(Debug, Default)]
pub struct IdentityHeaders {
    inject: Vec<(Bytes, Source)>,
    /// Lowercase names removed from every request.
    strip: Vec<String>,
}

impl IdentityHeaders {
    /// Compiles `auth.identity_headers` and `auth.strip_headers`.
    pub fn build(
        inject: &std::collections::BTreeMap<String, String>,
        strip: &[String],
    ) -> Result<IdentityHeaders, BuildError> {
        let mut out = IdentityHeaders::default();
        for (name, source) in inject {
            let n = header_rules::editable_header_name(|| format!("auth.identity_headers.{name}"), name)?;
            let src = match source.as_str() {
                "consumer" => Source::Consumer,
                "subject" => Source::Subject,
                "scopes" => Source::Scopes,
                "roles" => Source::Roles,
                "tier" => Source::Tier,
                "issuer" => Source::Issuer,
                other => match other.strip_prefix("claim:") {
                    Some(c) if !c.is_empty() => Source::Claim(c.to_owned()),
                    _ => {
                        return Err(BuildError::Auth {
                            path: format!("auth.identity_headers.{name}"),
                            reason: format!("unknown identity source {source:?}"),
                        });
                    }
                },
            };
            out.strip.push(name.to_ascii_lowercase());
            out.inject.push((n, src));
        }
        for (i, name) in strip.iter().enumerate() {
            header_rules::editable_header_name(|| format!("auth.strip_headers[{i}]"), name)?;
            out.strip.push(name.to_ascii_lowercase());
        }
        Ok(out)
    }

    /// Claims the injected headers read (they must be kept in the identity).
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.inject.iter().filter_map(|(_, s)| match s {
            Source::Claim(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// Removes every identity header a client sent.
    pub fn strip(&self, headers: &mut Headers) {
        if !self.strip.is_empty() {
            headers.retain(|h| !self.strip.iter().any(|s| h.name.eq_ignore_ascii_case(s.as_bytes())));
        }
    }

    fn render(&self, id: &Identity) -> Box<[(Bytes, Bytes)]> {
        let join = |list: &[Box<str>]| Some(Bytes::from(list.join(" ")));
        self.inject
            .iter()
            .filter_map(|(name, src)| {
                let value = match src {
                    Source::Consumer => Some(id.consumer.clone()).filter(|c| !c.is_empty()),
                    Source::Subject => id.subject.clone(),
                    Source::Scopes => join(&id.scopes),
                    Source::Roles => join(&id.roles),
                    Source::Tier => id.tier.as_deref().map(|t| Bytes::copy_from_slice(t.as_bytes())),
                    Source::Issuer => Some(Bytes::copy_from_slice(id.source.as_bytes())),
                    Source::Claim(c) => id.claim(c).map(|v| Bytes::from(v.join(","))),
                }?;
                // A claim value with control characters cannot become a header value: leave it out.
                let clean = value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
                clean.then(|| (name.clone(), value))
            })
            .collect()
    }
}

/// An accepted credential: the identity and the header fields it injects.
#[derive(Debug)]
pub struct Accepted {
    /// Who.
    pub identity: Rc<Identity>,
    /// Header fields for the upstream.
    pub headers: Box<[(Bytes, Bytes)]>,
    /// The token's `jti` (kept only when a revocation list is configured).
    pub jti: Option<Box<[u8]>>,
}

impl Accepted {
    /// Renders the identity's headers once.
    pub fn new(identity: Identity, rules: &IdentityHeaders) -> Accepted {
        let headers = rules.render(&identity);
        let jti = identity.claim("jti").and_then(|v| v.first()).map(|j| Box::from(j.as_bytes()));
        Accepted { identity: Rc::new(identity), headers, jti }
    }

    /// Appends the identity headers.
    pub fn inject(&self, headers: &mut Headers) {
        for (n, v) in self.headers.iter() {
            headers.append(n.clone(), v.clone());
        }
    }
}
