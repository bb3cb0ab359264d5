//! The config loader: TOML text to a validated config or errors with file:line. The invariants live in `portcullis_core::fuzz::config_text`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_core::fuzz::config_text(data));
