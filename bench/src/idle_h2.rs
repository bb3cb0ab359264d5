//! The few HTTP/2 frames the idle holder needs, written by hand over a blocking stream: the
//! client preface with empty SETTINGS, one GET per stream (HPACK without the dynamic table or
//! Huffman), and reading frames until that stream ends (answering SETTINGS and PING).
//!
//! Owns: that framing. Must not: hold connections (that is `idle`).

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The client preface and an empty SETTINGS frame.
pub fn client_start() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    out
}

/// A literal header field without indexing, name from the static table (`index` < 15).
fn literal(out: &mut Vec<u8>, index: u8, value: &str) {
    out.push(index);
    out.push(u8::try_from(value.len()).unwrap_or(127).min(126));
    out.extend_from_slice(&value.as_bytes()[..value.len().min(126)]);
}

/// The HEADERS frame of `GET path` on `stream`, ending the stream.
fn get_frame(stream: u32, scheme: &str, authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82]; // :method GET
    block.push(if scheme == "https" { 0x87 } else { 0x86 });
    if path == "/" {
        block.push(0x84);
    } else {
        literal(&mut block, 0x04, path);
    }
    literal(&mut block, 0x01, authority);
    let mut out = Vec::with_capacity(block.len() + 9);
    frame(&mut out, HEADERS, END_STREAM | END_HEADERS, stream, &block);
    out
}

/// Sends `GET path` on `stream` and reads frames until that stream ends.
pub fn get(
    io: &mut (impl Read + Write + ?Sized),
    stream: u32,
    scheme: &str,
    authority: &str,
    path: &str,
) -> Result<()> {
    io.write_all(&get_frame(stream, scheme, authority, path)).context("write HEADERS")?;
    io.flush().context("flush HEADERS")?;
    let mut head = [0u8; 9];
    let mut payload = Vec::new();
    loop {
        io.read_exact(&mut head).context("read frame header")?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > 1 << 20 {
            bail!("frame of {len} bytes");
        }
        payload.resize(len, 0);
        io.read_exact(&mut payload).context("read frame payload")?;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::with_capacity(9);
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                io.write_all(&ack).context("write SETTINGS ack")?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::with_capacity(17);
                frame(&mut pong, PING, ACK, 0, &payload);
                io.write_all(&pong).context("write PING ack")?;
            }
            GOAWAY => bail!("GOAWAY from the server"),
            RST_STREAM if id == stream => bail!("stream {stream} reset by the server"),
            HEADERS | DATA if id == stream && flags & END_STREAM != 0 => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_frame_is_one_headers_frame_ending_the_stream() {
        let f = get_frame(3, "http", "127.0.0.1:80", "/");
        assert_eq!(&f[3..9], &[HEADERS, END_STREAM | END_HEADERS, 0, 0, 0, 3]);
        assert_eq!(u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize, f.len() - 9);
        assert_eq!(&f[9..13], &[0x82, 0x86, 0x84, 0x01]);
        assert_eq!(&f[14..], b"127.0.0.1:80");
    }
}
