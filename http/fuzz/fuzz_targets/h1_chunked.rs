//! Fuzzes the chunked body decoder: arbitrary bytes must decode or fail cleanly, never panic,
//! and never yield more data bytes than were fed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_http::h1::chunked::{ChunkedDecoder, Step};

fuzz_target!(|data: &[u8]| {
    let mut dec = ChunkedDecoder::new(4096);
    let mut buf = BytesMut::from(data);
    let mut out = 0usize;
    while let Ok(step) = dec.step(&mut buf) {
        match step {
            Step::Data(d) => out += d.len(),
            Step::NeedMore | Step::End { .. } => break,
        }
    }
    assert!(out <= data.len());
});
