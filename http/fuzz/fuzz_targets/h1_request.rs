//! Fuzzes the HTTP/1.1 request head parser: arbitrary bytes, fed in two pieces, must never
//! panic and never consume more than they hold.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_core::pipeline::Headers;
use portcullis_http::h1::request::{HeadLimits, parse_request};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits { max_header_bytes: 8192, max_headers: 64 };
    let split = data.first().copied().unwrap_or(0) as usize % (data.len().max(1));
    let mut buf = BytesMut::from(&data[..split]);
    if let Ok(None) = parse_request(&mut buf, limits, Headers::default()) {
        buf.extend_from_slice(&data[split..]);
        let before = buf.len();
        if let Ok(Some(_)) = parse_request(&mut buf, limits, Headers::default()) {
            assert!(buf.len() <= before);
        }
    }
});
