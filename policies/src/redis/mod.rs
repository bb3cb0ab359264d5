//! The lean Redis client the background threads share (rate-limit sync, revocation sync).
//!
//! Owns: the RESP2 wire format and one blocking connection (`resp`), cluster slots (`slot`) and
//! the deployment-level client with AUTH, per-node pipelining and redirections (`client`). Must
//! not: be used on a shard (it blocks) or know what any command means to its caller.

mod client;
mod resp;
mod slot;

pub(crate) use client::{Client, Cmd, Target};
pub(crate) use resp::Value;
pub(crate) use resp::read_value;
pub(crate) use slot::key_slot;
