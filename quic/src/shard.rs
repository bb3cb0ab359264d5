//! The QUIC side of one shard: an endpoint per HTTP/3 listener on the shard's own UDP socket,
//! the accept loop with its limits (connections per shard, Retry address validation under load),
//! TLS contexts that follow config reloads, and a graceful drain (no new connections, GOAWAY on
//! every connection, in-flight streams finish).
//!
//! Owns: the shard's QUIC endpoints and their accept loops. Must not: share anything with other
//! shards except through `SharedQuic` (keys and the steering table).

use std::cell::Cell;
use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::Arc;

use portcullis_core::config::{ListenerHttp3Config, RetryMode};
use portcullis_core::pipeline::Filter;
use portcullis_http::ShardState;

use crate::crypto::{server_crypto, transport};
use crate::drain::{DrainSignal, Gauge, GaugeGuard};
use crate::endpoint::SharedQuic;
use crate::h3::conn::{ConnSettings, serve_connection};

/// Starts the shard's HTTP/3 endpoints: `udp[i]` is listener `i`'s socket (if it serves
/// HTTP/3) and `shared[i]` its process-wide keys. Returns the drain signal to fire when the
/// shard drains.
pub fn start<F: Filter + 'static>(
    state: &Rc<ShardState<F>>,
    udp: Vec<Option<UdpSocket>>,
    shared: &[Option<SharedQuic>],
) -> Rc<DrainSignal> {
    let drain = Rc::new(DrainSignal::default());
    for (index, socket) in udp.into_iter().enumerate() {
        let (Some(socket), Some(Some(shared))) = (socket, shared.get(index)) else { continue };
        match Listener::bind(state, index, socket, shared.clone()) {
            Ok(l) => {
                monoio::spawn(l.run(state.clone(), drain.clone()));
            }
            Err(e) => {
                tracing::error!(shard = state.id, listener = index, "HTTP/3 disabled on this shard: {e}")
            }
        }
    }
    drain
}

struct Listener {
    index: usize,
    endpoint: quinn::Endpoint,
    shared: SharedQuic,
    generation: Cell<u64>,
}

fn h3_settings<F>(state: &ShardState<F>, index: usize) -> Option<ListenerHttp3Config> {
    state.current().config().listeners.get(index)?.http3.clone().filter(|h| h.enabled)
}

fn server_config<F>(
    state: &ShardState<F>,
    index: usize,
    shared: &SharedQuic,
) -> Result<quinn::ServerConfig, String> {
    let current = state.current();
    let h3 = h3_settings(state, index).ok_or("http3 is not enabled on this listener")?;
    let tls = current
        .generation
        .shared
        .tls
        .get(index)
        .and_then(Option::as_ref)
        .ok_or("http3 needs the listener's tls table")?;
    let mut cfg = shared.server_config(server_crypto(&tls.config, &h3)?);
    cfg.transport_config(Arc::new(transport(&h3)?));
    // Retry is decided per connection below; quinn's own validation token lifetime stays.
    Ok(cfg)
}

impl Listener {
    fn bind<F>(
        state: &Rc<ShardState<F>>,
        index: usize,
        socket: UdpSocket,
        shared: SharedQuic,
    ) -> Result<Listener, String> {
        let cfg = server_config(state, index, &shared)?;
        let endpoint = shared.endpoint(state.id, socket, cfg).map_err(|e| e.to_string())?;
        Ok(Listener { index, endpoint, shared, generation: Cell::new(state.current().generation.id) })
    }

    /// Picks up a reloaded config (certificates, limits) for new connections.
    fn refresh<F>(&self, state: &ShardState<F>) {
        let id = state.current().generation.id;
        if id == self.generation.get() {
            return;
        }
        self.generation.set(id);
        match server_config(state, self.index, &self.shared) {
            Ok(cfg) => self.endpoint.set_server_config(Some(cfg)),
            Err(e) => tracing::warn!(shard = state.id, "HTTP/3 keeps its previous TLS context: {e}"),
        }
    }

    async fn run<F: Filter + 'static>(self, state: Rc<ShardState<F>>, drain: Rc<DrainSignal>) {
        let open = Rc::new(Gauge::default());
        let handshaking = Rc::new(Cell::new(0u32));
        loop {
            let incoming = monoio::select! {
                i = self.endpoint.accept() => i,
                _ = drain.wait() => None,
            };
            let Some(incoming) = incoming else { break };
            self.refresh(&state);
            let Some(h3) = h3_settings(&state, self.index) else {
                incoming.refuse();
                continue;
            };
            if open.get() >= h3.max_connections_per_shard as usize {
                incoming.refuse();
                continue;
            }
            let must_retry = match h3.retry {
                RetryMode::Always => true,
                RetryMode::UnderLoad => handshaking.get() >= h3.retry_threshold,
                RetryMode::Never => false,
            };
            if must_retry && !incoming.remote_address_validated() && incoming.may_retry() {
                let _ = incoming.retry();
                continue;
            }
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("quic connection refused: {e}");
                    continue;
                }
            };
            let settings =
                ConnSettings { max_field_section_size: h3.max_field_section_size.0, zero_rtt: h3.zero_rtt };
            let (state, drain, open, handshaking) =
                (state.clone(), drain.clone(), open.clone(), handshaking.clone());
            open.inc();
            let guard = GaugeGuard(open.clone());
            handshaking.set(handshaking.get() + 1);
            state.h3_connections.set(state.h3_connections.get() + 1);
            monoio::spawn(async move {
                let _open = guard;
                let counted = state.clone();
                serve_connection(state, connecting, settings, drain, &handshaking).await;
                counted.h3_connections.set(counted.h3_connections.get() - 1);
            });
        }
        // Draining: refuse new connections; existing ones got GOAWAY, finish their streams and
        // close. The shard counts this as in-flight work, so it does not exit (dropping the
        // endpoint and unsent responses) before the close packets are out or the drain timeout.
        self.endpoint.set_server_config(None);
        let busy = state.begin_request();
        open.zero().await;
        self.endpoint.wait_idle().await;
        drop(busy);
    }
}
