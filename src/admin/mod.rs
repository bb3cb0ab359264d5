//! The admin API on its own listener and threads, never on a shard: `/healthz`, `/readyz`,
//! `/metrics`, `GET|POST /config`, `GET /routes`, `POST /drain`, with an optional bearer token.
//!
//! Owns: the admin listener and its connection threads. Must not: change the gateway except
//! through the supervisor handle (the same path as SIGHUP and SIGTERM).

mod http;
mod routes;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_core::runtime::SupervisorHandle;
use portcullis_core::telemetry::Telemetry;

/// Most admin connections served at once; more are closed right away.
const MAX_CONNECTIONS: usize = 32;

/// Binds the admin listener (before the gateway announces readiness).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves the admin API on `listener` from a background thread.
pub fn spawn(listener: TcpListener, handle: SupervisorHandle, telemetry: Telemetry) -> std::io::Result<()> {
    let ctx = Arc::new(routes::Ctx { handle, telemetry });
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut stream) = conn else { continue };
            if active.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let (ctx, active) = (ctx.clone(), active.clone());
            let spawned = std::thread::Builder::new().name("admin-conn".into()).spawn(move || {
                let resp = match http::read_request(&mut stream) {
                    Ok(req) => routes::handle(&ctx, &req),
                    Err(resp) => resp,
                };
                let _ = http::write_response(&mut stream, &resp);
                active.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                tracing::warn!("admin API: cannot spawn a connection thread");
            }
        }
    })?;
    Ok(())
}
