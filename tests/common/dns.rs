//! A real authoritative DNS server for the discovery tests: UDP on a free 127.0.0.1 port, built
//! on hickory-proto's message types, answering A and SRV questions from a zone the test changes
//! while it runs (NXDOMAIN for unknown names), and stoppable (its port then refuses).
//! Also: listeners on several loopback addresses sharing one port (A records carry no port).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};

/// Records by lowercase absolute name.
type Zone = HashMap<String, Vec<Record>>;

/// A running DNS server; stopped when dropped.
pub struct DnsServer {
    /// Where it answers (UDP).
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') { lower } else { format!("{lower}.") }
}

fn name(s: &str) -> Name {
    Name::from_ascii(key(s)).expect("a DNS name")
}

impl DnsServer {
    /// Starts a server with an empty zone.
    pub fn start() -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS port");
        let addr = sock.local_addr().expect("DNS address");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (z, q, s) = (zone.clone(), queries.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("test-dns".into())
            .spawn(move || {
                let mut buf = [0u8; 1500];
                while !s.load(Ordering::SeqCst) {
                    let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
                    let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                    q.fetch_add(1, Ordering::SeqCst);
                    let answer = respond(&query, &z.lock().expect("zone lock"));
                    let _ = sock.send_to(&answer.to_vec().expect("encode the answer"), peer);
                }
            })
            .expect("spawn the DNS server");
        DnsServer { addr, zone, queries, stop, thread: Some(thread) }
    }

    /// Makes `owner` resolve to `ips` (A records, `ttl` seconds), replacing its records.
    pub fn set_a(&self, owner: &str, ips: &[Ipv4Addr], ttl: u32) {
        let recs = ips.iter().map(|ip| Record::from_rdata(name(owner), ttl, RData::A(A(*ip)))).collect();
        self.zone.lock().expect("zone lock").insert(key(owner), recs);
    }

    /// Makes `owner` carry SRV records `(priority, weight, port, target)`, replacing its records.
    pub fn set_srv(&self, owner: &str, srvs: &[(u16, u16, u16, &str)], ttl: u32) {
        let recs = srvs
            .iter()
            .map(|&(p, w, port, t)| {
                Record::from_rdata(name(owner), ttl, RData::SRV(SRV::new(p, w, port, name(t))))
            })
            .collect();
        self.zone.lock().expect("zone lock").insert(key(owner), recs);
    }

    /// Removes `owner` (NXDOMAIN from now on).
    pub fn remove(&self, owner: &str) {
        self.zone.lock().expect("zone lock").remove(&key(owner));
    }

    /// Questions answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Waits until more than `n` questions were answered (polling, bounded by `timeout`).
    pub fn wait_queries_above(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.queries() <= n {
            assert!(Instant::now() < deadline, "the DNS server got no question within {timeout:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops answering and closes the port (a question then gets ICMP port unreachable).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the DNS server thread");
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The answer to `query` from `zone`: its records of the asked type, NOERROR with no records
/// when the name has none of that type, NXDOMAIN when the name is unknown.
fn respond(query: &Message, zone: &Zone) -> Message {
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.authoritative = true;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    let Some(q) = query.queries.first() else {
        answer.metadata.response_code = ResponseCode::FormErr;
        return answer;
    };
    answer.add_query(q.clone());
    match zone.get(&key(&q.name().to_ascii())) {
        None => answer.metadata.response_code = ResponseCode::NXDomain,
        Some(recs) => {
            let wanted = q.query_type();
            answer.add_answers(recs.iter().filter(|r| r.record_type() == wanted).cloned());
        }
    }
    answer
}

/// `n` listeners on 127.0.0.1, 127.0.0.2, ... sharing one port (A records give addresses only).
pub fn loopback_listeners(n: u8) -> Vec<TcpListener> {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = first.local_addr().expect("address").port();
        let rest: Vec<TcpListener> =
            (2..=n).filter_map(|i| TcpListener::bind((Ipv4Addr::new(127, 0, 0, i), port)).ok()).collect();
        if rest.len() + 1 == usize::from(n) {
            return std::iter::once(first).chain(rest).collect();
        }
    }
    panic!("no port free on {n} loopback addresses");
}
