//! HTTP/3 on the shared engine: connections (`conn`), request streams (`stream`) and the byte
//! bridge between h3 bodies and the engine's body relay (`body`).
//!
//! Owns: HTTP/3 framing toward clients. Must not: route, filter or talk to upstreams itself.

mod body;
pub(crate) mod conn;
mod stream;
