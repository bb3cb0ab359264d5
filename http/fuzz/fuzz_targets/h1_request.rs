//! The HTTP/1.1 request head parser, fed in two reads. The invariants live in `portcullis_http::fuzz::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_http::fuzz::h1_request(data));
