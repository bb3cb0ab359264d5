//! The lean Redis client the background threads share (rate-limit sync, revocation sync).
//!
//! Owns: the RESP2 wire format and one blocking connection (`resp`). Must not: be used on a shard
//! (it blocks) or know what any command means to its caller.

mod resp;

pub(crate) use resp::{Conn, Value, read_value};
