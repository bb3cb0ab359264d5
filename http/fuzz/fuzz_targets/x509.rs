//! The X.509 DER reader behind mTLS identities and certificate checks. The invariants live in `portcullis_http::fuzz::x509`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_http::fuzz::x509(data));
