//! The filter chain: closed-enum dispatch over every policy and the ordered run of their phases.
//!
//! Owns: `AnyFilter`, `Chain`, the build order, and the `cx.entered` bookkeeping. Must not:
//! implement any policy itself or box a future.

mod env;
mod filter;
#[cfg(test)]
mod tests;

pub use env::ChainEnv;
pub use filter::{AnyFilter, Chain};
