//! Portcullis core: runtime and shards, the config model, the pipeline contract, and the
//! gateway's error shape. Speaks no wire protocol.

pub mod config;
pub mod error;
pub mod fuzz;
pub mod pipeline;
pub mod runtime;
pub mod telemetry;

pub use error::{LocalReply, Source};
