//! A shard's HTTP service, the first stage of every request: its accept loops (each accepted
//! connection goes to the HTTP/1.1 server, the HTTP/2 server or TLS accept), building each
//! config generation on this shard, reload and drain handling.
//!
//! Owns: the lifecycle of the shard and of its listeners. Must not: parse HTTP or hold
//! per-request logic (`h1::server`, `h2`, `tls::accept`, `engine`); its state lives in `state`.

pub mod state;

pub use state::{BuildChain, ShardGen, ShardState};

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portcullis_core::config::Config;
use portcullis_core::pipeline::Filter;
use portcullis_core::runtime::{Control, Generation, ShardCtx, ShardEvent};

use crate::compiled::Compiled;
use crate::engine::client::ClientMeta;
use crate::h1::request::HeadLimits;
use crate::h1::server::serve_conn;
use crate::h2::serve_h2c_or_h1;
use crate::tls::accept::serve_tls;
use crate::upstream::{Upstream, UpstreamEnv};

/// `h3=":PORT"; ma=SECS` for listeners that serve and advertise HTTP/3.
fn alt_svc_values(cfg: &Config, ports: &[u16]) -> Vec<Option<Bytes>> {
    cfg.listeners
        .iter()
        .zip(ports)
        .map(|(l, port)| {
            let h3 = l.http3.as_ref().filter(|h| h.enabled && h.advertise)?;
            Some(Bytes::from(format!("h3=\":{port}\"; ma={}", h3.alt_svc_max_age.0.as_secs())))
        })
        .collect()
}

fn build_gen<F>(
    shard: usize,
    generation: Arc<Generation<Compiled>>,
    build: &BuildChain<F>,
    ports: &[u16],
) -> Result<ShardGen<F>, String> {
    let cfg = &generation.config;
    let alt_svc = alt_svc_values(cfg, ports);
    let chain = build(cfg)?;
    let shared = &generation.shared;
    let shards = portcullis_core::runtime::shard_count(&cfg.server);
    let upstreams = cfg
        .upstreams
        .iter()
        .zip(&shared.upstreams)
        .map(|(u, live)| {
            let env = UpstreamEnv { shard, shards, live: live.clone(), metrics: shared.metrics.as_ref() };
            Upstream::new(u, env)
        })
        .collect();
    let head_limits = HeadLimits {
        max_header_bytes: cfg.http.max_header_bytes.0 as usize,
        max_headers: cfg.http.max_headers,
    };
    Ok(ShardGen { generation, chain, upstreams, head_limits, alt_svc })
}

/// Runs one shard: accepts on its listeners and serves until drained.
pub async fn serve_shard<F: Filter + 'static>(ctx: ShardCtx<Compiled>, build: Rc<BuildChain<F>>) {
    serve_shard_with(ctx, build, |_, _| {}).await;
}

/// Like [`serve_shard`], and hands the shard's state and its UDP sockets (one per listener,
/// `Some` where HTTP/3 is on) to `extend` before the shard reports ready, so other protocols
/// (QUIC) serve through the same state and engine.
pub async fn serve_shard_with<F: Filter + 'static>(
    mut ctx: ShardCtx<Compiled>,
    build: Rc<BuildChain<F>>,
    extend: impl FnOnce(&Rc<ShardState<F>>, Vec<Option<std::net::UdpSocket>>),
) {
    let udp = std::mem::take(&mut ctx.udp);
    let ports: Vec<u16> = ctx.listeners.iter().map(|l| l.local_addr().map_or(0, |a| a.port())).collect();
    let first = match build_gen(ctx.id, ctx.initial.clone(), &*build, &ports) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(shard = ctx.id, "cannot build the filter chain: {e}");
            return;
        }
    };
    let state = Rc::new(ShardState::new(ctx.id, first));
    let mut fds = Vec::new();
    for (index, std_listener) in ctx.listeners.into_iter().enumerate() {
        let listener = match monoio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(shard = ctx.id, "cannot register listener: {e}");
                return;
            }
        };
        fds.push(listener.as_raw_fd());
        let state = state.clone();
        monoio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if state.draining.get() {
                            break;
                        }
                        let _ = stream.set_nodelay(true);
                        // TLS settings come from the generation current at accept time.
                        let (tls, h2c, alt_svc) = {
                            let sg = state.current();
                            let h2c = sg.config().listeners.get(index).is_some_and(|l| l.h2c);
                            let alt_svc = sg.alt_svc.get(index).cloned().flatten();
                            (sg.generation.shared.tls.get(index).cloned().flatten(), h2c, alt_svc)
                        };
                        let client = ClientMeta {
                            addr: peer,
                            tls: tls.is_some(),
                            tls_version: None,
                            client_cert: None,
                            alt_svc,
                        };
                        match tls {
                            None if h2c => {
                                monoio::spawn(serve_h2c_or_h1(state.clone(), stream, client));
                            }
                            None => {
                                monoio::spawn(serve_conn(state.clone(), stream, client));
                            }
                            Some(tls) => {
                                monoio::spawn(serve_tls(state.clone(), stream, client, tls));
                            }
                        }
                    }
                    Err(e) => {
                        if state.draining.get() {
                            break;
                        }
                        // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(shard = state.id, "accept failed: {e}");
                        monoio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            drop(listener);
        });
    }
    {
        // Publishes the shard's gauges for the admin API (only this shard writes them) and
        // ticks the current chain (buffered access log lines go to their writer).
        let (state, status) = (state.clone(), ctx.status.clone());
        monoio::spawn(async move {
            while let Some(g) = status.shard(state.id) {
                let (tcp, h2) = (state.connections.get(), state.h2_connections.get());
                g.connections.store(tcp.saturating_sub(h2) as u64, std::sync::atomic::Ordering::Relaxed);
                g.h2_connections.store(h2 as u64, std::sync::atomic::Ordering::Relaxed);
                g.h3_connections
                    .store(state.h3_connections.get() as u64, std::sync::atomic::Ordering::Relaxed);
                g.inflight.store(state.inflight() as u64, std::sync::atomic::Ordering::Relaxed);
                state.current().chain.on_tick();
                monoio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    {
        let state = state.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(Duration::from_secs(5)).await;
                let max_idle = state.current().upstreams.iter().map(|u| u.idle_timeout).max();
                state.pool.sweep(max_idle.unwrap_or(Duration::from_secs(60)));
            }
        });
    }
    extend(&state, udp);
    let _ = ctx.events.send(ShardEvent::Ready { shard: ctx.id });

    // A generation built by `Prepare`, waiting for `Commit` or `Abort` (two-phase reload).
    let mut pending: Option<(u64, ShardGen<F>)> = None;
    while let Ok(msg) = ctx.control.recv().await {
        match msg {
            Control::Prepare(generation) => {
                let id = generation.id;
                let fault = portcullis_core::runtime::injected_prepare_fault(ctx.id, &generation.config);
                let built = match fault {
                    Some(e) => Err(e),
                    None => build_gen(ctx.id, generation, &*build, &ports),
                };
                let error = built.map(|g| pending = Some((id, g))).err();
                let _ = ctx.events.send(ShardEvent::Prepared { shard: ctx.id, generation: id, error });
            }
            Control::Commit(id) => {
                if let Some((_, g)) = pending.take_if(|(p, _)| *p == id) {
                    state.set_current(g);
                    let _ = ctx.events.send(ShardEvent::Applied { shard: ctx.id, generation: id });
                }
            }
            Control::Abort(id) => {
                pending.take_if(|(p, _)| *p == id);
            }
            Control::Drain(timeout) => {
                state.draining.set(true);
                let hooks = std::mem::take(&mut *state.on_drain.borrow_mut());
                for hook in hooks {
                    hook();
                }
                for fd in &fds {
                    // Wakes the pending accept with an error and makes the kernel refuse new
                    // connections to this shard's socket; the accept loop then exits.
                    // SAFETY: a plain syscall on an integer (no memory is passed). `fd` still
                    // names this shard's listening socket: each accept task drops its listener
                    // only after it sees `draining`, set just above with no await since.
                    unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
                }
                let deadline = Instant::now() + timeout;
                while state.inflight() > 0 && Instant::now() < deadline {
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
                let abandoned = state.inflight();
                let _ = ctx.events.send(ShardEvent::Drained { shard: ctx.id, abandoned });
                return;
            }
        }
    }
}
