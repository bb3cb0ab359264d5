//! The admin API on its own listener and threads, never on a shard: `/healthz`, `/readyz`,
//! `/metrics`, `GET|POST /config`, `GET /routes`, `POST /drain`, with an optional bearer token.
//! At most [`MAX_CONNECTIONS`] connections are served at once, each request must arrive whole
//! within `[admin] request_timeout`, and a newcomer to a full table cuts the slowest reader
//! (`slots`), so slow clients cannot lock health probes out.
//!
//! Owns: the admin listener and its connection threads. Must not: change the gateway except
//! through the supervisor handle (the same path as SIGHUP and SIGTERM).

mod http;
mod routes;
mod slots;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::runtime::SupervisorHandle;
use portcullis_core::telemetry::Telemetry;

use slots::{Admission, Slots};

/// Most admin connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Binds the admin listener (before the gateway announces readiness).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| match portcullis_core::runtime::port_holder_note(addr, e.kind()) {
        Some(note) => std::io::Error::new(e.kind(), format!("{e}; {note}")),
        None => e,
    })
}

/// Serves the admin API on `listener` from a background thread.
pub fn spawn(listener: TcpListener, handle: SupervisorHandle, telemetry: Telemetry) -> std::io::Result<()> {
    let ctx = Arc::new(routes::Ctx { handle, telemetry });
    let slots = Slots::new(MAX_CONNECTIONS);
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut stream) = conn else { continue };
            let slot = match slots.admit(&stream) {
                Admission::Admitted(slot) => slot,
                Admission::Evicted(slot) => {
                    tracing::debug!(
                        "admin API: table full, cut the slowest client still sending its request"
                    );
                    slot
                }
                Admission::Full => {
                    tracing::debug!("admin API: every connection is busy serving; refused one");
                    continue;
                }
            };
            let timeout = request_timeout(&ctx);
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new().name("admin-conn".into()).spawn(move || {
                let resp = match http::read_request(&mut stream, timeout) {
                    Ok(req) => {
                        slot.request_read();
                        routes::handle(&ctx, &req)
                    }
                    Err(resp) => resp,
                };
                let _ = http::write_response(&mut stream, &resp);
                drop(slot);
            });
            if spawned.is_err() {
                tracing::warn!("admin API: cannot spawn a connection thread");
            }
        }
    })?;
    Ok(())
}

/// The running config's whole-request deadline.
fn request_timeout(ctx: &routes::Ctx) -> Duration {
    ctx.handle.status.running().config.admin.as_ref().map_or(Duration::from_secs(10), |a| a.request_timeout.0)
}
