//! Authorisation per route: required scopes (all or any), roles, claim predicates and accepted
//! credential origins, checked against the identity authentication set.
//!
//! Owns: the 401 (no identity on a route that needs one) versus 403 (identity lacks something)
//! decision for routes with `authz`. Must not: look at credentials (authn did).

mod filter;
#[cfg(test)]
mod tests;

pub use filter::AuthzFilter;
