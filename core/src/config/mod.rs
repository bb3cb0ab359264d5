//! Configuration: the TOML model, loading with line-accurate errors, and validation.

mod model;
mod units;

pub use model::*;
pub use units::{Dur, Size};
