//! Route patterns: compiling, matching, and agreement with the config validator. The invariants live in `portcullis_http::fuzz::route_patterns`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_http::fuzz::route_patterns(data));
