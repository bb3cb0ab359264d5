//! HTTP/2 cleartext (prior knowledge) for the reference upstream: the h2 crate over the
//! upstream's monoio ring through `monoio_compat`, every stream answered with the same fixed
//! `200` as HTTP/1.1 (so the generator's own HTTP/2 ceiling can be measured). Also owns the
//! response head HTTP/2 and HTTP/3 share. Must not: parse HTTP/1.1 (that is `upstream`).

use std::{rc::Rc, time::Duration};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio_compat::StreamWrapper;

use crate::{delay::Delay, h1::Canned};

/// Streams a client may open at once.
const MAX_STREAMS: u32 = 1024;

/// The fixed response head for a body of `len` bytes.
pub fn response_head(len: usize) -> http::Response<()> {
    let mut resp = http::Response::new(());
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

/// Serves one HTTP/2 connection until the client closes it.
pub async fn serve<S>(io: S, canned: Rc<Canned>, delay: Delay, mut rng: u64)
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20);
    let Ok(mut conn) = b.handshake::<_, Bytes>(StreamWrapper::new(io)).await else { return };
    let body = Bytes::copy_from_slice(canned.body());
    while let Some(Ok((req, respond))) = conn.accept().await {
        monoio::spawn(answer(req, respond, body.clone(), delay.pick(&mut rng)));
    }
}

/// Reads the request body through, waits the delay, sends the canned response.
async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    body: Bytes,
    delay: Option<Duration>,
) {
    let mut recv = req.into_body();
    while let Some(Ok(chunk)) = recv.data().await {
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    if let Some(d) = delay {
        monoio::time::sleep(d).await;
    }
    let end = body.is_empty();
    if let Ok(mut send) = respond.send_response(response_head(body.len()), end)
        && !end
    {
        let _ = send.send_data(body, true);
    }
}
