//! HTTP/2 connections of the load generator: cleartext with prior knowledge (h2c) or TLS with
//! ALPN `h2`, the h2 crate over the generator thread's own monoio ring through
//! `monoio_compat` (the same stack the gateway serves HTTP/2 with), client-side TLS through
//! the gateway's own `TlsStream`. Owns the connection set-up and one request's exchange.

use std::{cell::Cell, fmt::Display, rc::Rc, time::Duration};

use bytes::Bytes;
use monoio::{
    io::{AsyncReadRent, AsyncWriteRent},
    net::TcpStream,
};
use monoio_compat::StreamWrapper;
use portcullis_http::tls::TlsStream;
use rustls::pki_types::ServerName;

use super::{errors::Fail, mux::Mux, outcome::first_connect_error, plan::Plan};

/// Stream receive window: large enough that a response never waits for a WINDOW_UPDATE.
const STREAM_WINDOW: u32 = 1 << 20;
/// Connection receive window.
const CONN_WINDOW: u32 = 16 << 20;

/// One HTTP/2 connection; its driver runs as its own task.
#[derive(Clone)]
pub struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    dead: Rc<Cell<bool>>,
}

/// Where an h2 error came from: GOAWAY and I/O end the connection, resets only the stream.
fn fail(e: &h2::Error, io: Fail) -> Fail {
    if e.is_go_away() {
        Fail::Closed
    } else if e.is_reset() {
        Fail::Reset
    } else if e.is_io() {
        io
    } else {
        Fail::Parse
    }
}

/// One connection set-up step (`what`) within `d`; a failure is a `connect` error.
async fn within<T, E: Display>(
    what: &str,
    d: Duration,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, Fail> {
    match monoio::time::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            first_connect_error(format_args!("{what}: {e}"));
            Err(Fail::Connect)
        }
        Err(_) => {
            first_connect_error(format_args!("{what}: timed out"));
            Err(Fail::Connect)
        }
    }
}

async fn handshake<S>(io: S, plan: &Plan) -> Result<H2Conn, Fail>
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW).initial_connection_window_size(CONN_WINDOW);
    let (send, conn) =
        within("HTTP/2 handshake", plan.timeout, b.handshake::<_, Bytes>(StreamWrapper::new(io))).await?;
    let dead = Rc::new(Cell::new(false));
    let flag = dead.clone();
    monoio::spawn(async move {
        let _ = conn.await;
        flag.set(true);
    });
    Ok(H2Conn { send, dead })
}

impl Mux for H2Conn {
    async fn open(plan: &Plan) -> Result<Self, Fail> {
        let tcp = within("TCP connect", plan.timeout, TcpStream::connect(plan.addr)).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &plan.tls else { return handshake(tcp, plan).await };
        let name = ServerName::try_from(plan.server_name.clone()).map_err(|_| Fail::Connect)?;
        let tls = within("TLS handshake", plan.timeout, TlsStream::connect(tcp, tls.clone(), name)).await?;
        if tls.connection().alpn_protocol() != Some(b"h2") {
            first_connect_error("the server did not accept ALPN h2 (is HTTP/2 on for the listener?)");
            return Err(Fail::Connect);
        }
        handshake(tls, plan).await
    }

    async fn request(&mut self, plan: &Plan) -> Result<(u16, u64), Fail> {
        std::future::poll_fn(|cx| self.send.poll_ready(cx)).await.map_err(|e| fail(&e, Fail::Write))?;
        let (resp, _) =
            self.send.send_request(plan.template.build(), true).map_err(|e| fail(&e, Fail::Write))?;
        let resp = resp.await.map_err(|e| fail(&e, Fail::Read))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut len = 0u64;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| fail(&e, Fail::Read))?;
            len += chunk.len() as u64;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        Ok((status, len))
    }

    fn closed(&self) -> bool {
        self.dead.get()
    }

    async fn shutdown(self) {
        // Dropping the last handle lets the driver send GOAWAY and close.
    }
}
