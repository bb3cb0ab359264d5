//! The pipeline contract: request/response heads, per-request context, and the filter trait.

mod client_cert;
mod cx;
mod filter;
mod head;
mod identity;

pub use client_cert::ClientCert;
pub use cx::{Cx, RateLimitInfo};
pub use filter::{Filter, Flow, NoFilters};
pub use head::{Header, Headers, Method, RequestHead, ResponseHead, Version};
pub use identity::Identity;
