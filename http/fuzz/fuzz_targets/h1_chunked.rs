//! The chunked body decoder. The invariants live in `portcullis_http::fuzz::h1_chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_http::fuzz::h1_chunked(data));
