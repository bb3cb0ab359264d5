//! The upstream HTTP/1.1 response head parser, fed in two reads. The invariants live in `portcullis_http::fuzz::h1_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_http::fuzz::h1_response(data));
