//! HTTP/1.1 wire format: request and response heads, chunked framing, serialisation.

pub mod chunked;
pub mod encode;
pub mod headers;
pub mod path;
pub mod request;
pub mod response;
