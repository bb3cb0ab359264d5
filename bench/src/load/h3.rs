//! HTTP/3 connections of the load generator: the quic crate's own client (`H3Client`, quinn
//! and h3 on the generator thread's monoio ring through the same `quinn::Runtime` adapter the
//! gateway serves with), one UDP socket per connection. Owns only the mapping of its errors.

use std::time::Duration;

use portcullis_quic::client::H3Client;

use super::{errors::Fail, mux::Mux, outcome::first_connect_error, plan::Plan};

/// How long the end of a run waits for the server to acknowledge a connection close.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// One HTTP/3 connection.
#[derive(Clone)]
pub struct H3Conn(H3Client);

impl Mux for H3Conn {
    async fn open(plan: &Plan) -> Result<Self, Fail> {
        let Some(cfg) = &plan.quic else { return Err(Fail::Connect) };
        let connect = H3Client::connect_with(plan.addr, &plan.server_name, cfg.clone(), false);
        match monoio::time::timeout(plan.timeout, connect).await {
            Ok(Ok((client, _))) => Ok(H3Conn(client)),
            Ok(Err(e)) => {
                first_connect_error(format_args!("QUIC/HTTP/3: {e}"));
                Err(Fail::Connect)
            }
            Err(_) => {
                first_connect_error("QUIC/HTTP/3 handshake: timed out");
                Err(Fail::Connect)
            }
        }
    }

    async fn request(&mut self, plan: &Plan) -> Result<(u16, u64), Fail> {
        self.0.fetch(plan.template.build()).await.map_err(|_| {
            // h3 reports stream and connection errors alike: the connection's state tells them apart.
            if self.0.is_closed() { Fail::Closed } else { Fail::Reset }
        })
    }

    fn closed(&self) -> bool {
        self.0.is_closed()
    }

    async fn shutdown(self) {
        let _ = monoio::time::timeout(CLOSE_WAIT, self.0.close()).await;
    }
}
