//! The RESP2 reply parser of the Redis client (rate-limit and revocation sync). The invariants live in `portcullis_policies::fuzz::resp_replies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_policies::fuzz::resp_replies(data));
