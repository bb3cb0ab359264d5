//! HTTP/2 stream bodies as monoio byte streams, so the shared body relay (`crate::body`) moves
//! them with the same limits and timeouts as HTTP/1.1: a request body source over `RecvStream`
//! (flow-control capacity released as bytes are consumed) and a response body sink over
//! `SendStream` (waiting for send capacity).
//!
//! Owns: the byte-level bridge between h2 streams and the relay. Must not: frame HTTP/1.1 or
//! decide when a stream ends (the caller sends END_STREAM).

use std::future::poll_fn;
use std::io;

use bytes::Bytes;
use h2::{RecvStream, SendStream};

use crate::slice_io::{Dest, SliceRead, SliceWrite};

fn h2_io(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

/// Reads a request body from an HTTP/2 stream; `Ok(0)` at END_STREAM.
pub struct BodySource<'a> {
    /// The stream's receive half.
    pub recv: &'a mut RecvStream,
    /// Bytes received and not yet handed out.
    pub pending: Bytes,
}

impl SliceRead for BodySource<'_> {
    async fn read_into(&mut self, out: &mut Dest<'_>) -> io::Result<usize> {
        read_data(self.recv, &mut self.pending, out).await
    }
}

/// Copies the next body bytes of an HTTP/2 stream (either direction) into `out`, taking a DATA
/// frame into `pending` when it is empty; `Ok(0)` at END_STREAM. Flow-control capacity is
/// released for what was copied, so the window reopens only as fast as the far side takes them.
pub async fn read_data(recv: &mut RecvStream, pending: &mut Bytes, out: &mut Dest<'_>) -> io::Result<usize> {
    while pending.is_empty() {
        match recv.data().await {
            Some(Ok(b)) => *pending = b,
            Some(Err(e)) => return Err(h2_io(e)),
            None => return Ok(0),
        }
    }
    let n = out.put(pending);
    let _ = pending.split_to(n);
    let _ = recv.flow_control().release_capacity(n);
    Ok(n)
}

/// Writes a response body into an HTTP/2 stream as DATA frames, honouring flow control.
pub struct BodySink<'a> {
    /// The stream's send half.
    pub send: &'a mut SendStream<Bytes>,
}

impl SliceWrite for BodySink<'_> {
    async fn write_all_from(&mut self, data: &[u8]) -> io::Result<()> {
        let mut data = Bytes::copy_from_slice(data);
        while !data.is_empty() {
            self.send.reserve_capacity(data.len());
            let granted = match poll_fn(|cx| self.send.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(h2_io(e)),
                None => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed")),
            };
            if granted == 0 {
                continue;
            }
            let chunk = data.split_to(granted.min(data.len()));
            self.send.send_data(chunk, false).map_err(h2_io)?;
        }
        Ok(())
    }
}
