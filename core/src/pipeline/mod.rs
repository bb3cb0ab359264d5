//! The pipeline contract: request/response heads, per-request context, and the filter trait.

mod cx;
mod filter;
mod head;
mod identity;

pub use cx::Cx;
pub use filter::{Filter, Flow, NoFilters};
pub use head::{Header, Headers, Method, RequestHead, ResponseHead, Version};
pub use identity::Identity;
