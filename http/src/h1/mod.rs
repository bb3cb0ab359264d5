//! HTTP/1.1: the wire format (request and response heads, chunked framing, serialisation) and
//! the server side (`server`: the connection loop; `exchange`: one request into the engine;
//! `down`: the client side of an exchange).
//!
//! Owns: everything HTTP/1.1-specific toward clients and upstreams' head formats. Must not: run
//! filters or pick upstreams (that is `engine` and `forward`).

pub mod chunked;
pub(crate) mod down;
pub mod encode;
pub(crate) mod exchange;
pub mod headers;
pub mod path;
pub mod request;
pub mod response;
pub mod server;
