//! One resolution of an upstream's `[upstreams.dns]`: A and/or AAAA records with the configured
//! port, or SRV records (lowest priority group only) with their targets' addresses, and the
//! smallest TTL seen.
//!
//! Owns: asking the name servers in turn and turning records into weighted endpoints. Must not:
//! schedule lookups, publish endpoints or log (the caller in `mod.rs` does).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use portcullis_core::config::{DnsConfig, DnsRecordType};

use super::client::exchange;
use super::error::DnsError;

/// Largest weight an SRV record may give an endpoint (the `lb` policies' weight range).
const MAX_WEIGHT: u16 = 1000;

/// The endpoints a resolution found and how long they may be kept.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    /// `(address, weight)`, in answer order, without duplicates.
    pub endpoints: Vec<(SocketAddr, u32)>,
    /// Smallest TTL of the records used.
    pub ttl: Duration,
}

/// Resolves `cfg` by asking `servers` in turn (the next one when a server fails to answer).
pub fn resolve(cfg: &DnsConfig, servers: &[SocketAddr]) -> Result<Resolved, DnsError> {
    let mut name = Name::from_ascii(&cfg.name).map_err(|e| DnsError::Malformed(e.to_string()))?;
    // The name is absolute: no search domains.
    name.set_fqdn(true);
    let ask = |name: &Name, rtype: RecordType| query(servers, name, rtype, cfg.timeout.0);
    let mut out = Found::default();
    match cfg.kind {
        DnsRecordType::Srv => {
            let answer = ask(&name, RecordType::SRV)?;
            out.srv(&answer, ask)?;
        }
        kind => {
            let port = cfg.port.unwrap_or(0);
            let weight = cfg.weight.unwrap_or(1);
            let types: &[RecordType] = match kind {
                DnsRecordType::A => &[RecordType::A],
                DnsRecordType::Aaaa => &[RecordType::AAAA],
                _ => &[RecordType::A, RecordType::AAAA],
            };
            for &t in types {
                match ask(&name, t) {
                    Ok(answer) => {
                        out.addresses(&answer.answers, None, port, weight);
                    }
                    // With both types, one of them may well not exist.
                    Err(e) if e.is_empty_answer() && types.len() > 1 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if out.endpoints.is_empty() {
        return Err(DnsError::Empty);
    }
    Ok(Resolved { endpoints: out.endpoints, ttl: Duration::from_secs(u64::from(out.ttl.unwrap_or(0))) })
}

/// One question, asked of each server in turn until one answers; NXDOMAIN and an empty answer are
/// answers (not retried elsewhere).
fn query(
    servers: &[SocketAddr],
    name: &Name,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let mut last = DnsError::NoServer;
    for &server in servers {
        match exchange(server, name, rtype, timeout) {
            Ok(msg) => match msg.metadata.response_code {
                ResponseCode::NoError => {
                    return if msg.answers.is_empty() { Err(DnsError::Empty) } else { Ok(msg) };
                }
                ResponseCode::NXDomain => return Err(DnsError::NoSuchName),
                code => last = DnsError::Server(code),
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Endpoints collected so far and the smallest TTL of the records they came from.
#[derive(Default)]
struct Found {
    endpoints: Vec<(SocketAddr, u32)>,
    ttl: Option<u32>,
}

impl Found {
    fn ttl(&mut self, ttl: u32) {
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }

    fn push(&mut self, addr: SocketAddr, weight: u32) {
        if !self.endpoints.iter().any(|(a, _)| *a == addr) {
            self.endpoints.push((addr, weight));
        }
    }

    /// Adds the A/AAAA records of `records` (owned by `owner` when given; any owner otherwise,
    /// since a recursive server puts the CNAME chain it followed in the same section). Returns
    /// whether any matched.
    fn addresses(&mut self, records: &[Record], owner: Option<&Name>, port: u16, weight: u32) -> bool {
        let mut any = false;
        for r in records {
            if owner.is_some_and(|o| *o != r.name) {
                continue;
            }
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                RData::CNAME(_) if owner.is_none() => {
                    self.ttl(r.ttl);
                    continue;
                }
                _ => continue,
            };
            self.ttl(r.ttl);
            self.push(SocketAddr::new(ip, port), weight);
            any = true;
        }
        any
    }

    /// Adds the targets of the lowest-priority SRV records of `answer`, their addresses from the
    /// additional section or else asked for (A, then AAAA).
    fn srv(
        &mut self,
        answer: &Message,
        ask: impl Fn(&Name, RecordType) -> Result<Message, DnsError>,
    ) -> Result<(), DnsError> {
        let srvs: Vec<(&Record, &hickory_proto::rr::rdata::SRV)> = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) if !s.target.is_root() => Some((r, s)),
                _ => None,
            })
            .collect();
        let Some(best) = srvs.iter().map(|(_, s)| s.priority).min() else {
            return Err(DnsError::Empty);
        };
        for (record, s) in srvs.iter().filter(|(_, s)| s.priority == best) {
            let weight = u32::from(s.weight.clamp(1, MAX_WEIGHT));
            self.ttl(record.ttl);
            if self.addresses(&answer.additionals, Some(&s.target), s.port, weight) {
                continue;
            }
            let found = match ask(&s.target, RecordType::A) {
                Err(e) if e.is_empty_answer() => ask(&s.target, RecordType::AAAA),
                other => other,
            };
            match found {
                Ok(msg) => {
                    self.addresses(&msg.answers, None, s.port, weight);
                }
                // One target without addresses does not void the others.
                Err(e) if e.is_empty_answer() => {
                    tracing::debug!(target_name = %s.target, "SRV target has no address");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SRV};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn rec(owner: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(name(owner), ttl, data)
    }

    #[test]
    fn srv_keeps_the_lowest_priority_group_with_weights_and_additional_addresses() {
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        let srv = |prio, weight, port, target: &str| RData::SRV(SRV::new(prio, weight, port, name(target)));
        m.add_answer(rec("_h._tcp.x.", 30, srv(10, 1, 8001, "a.x.")));
        m.add_answer(rec("_h._tcp.x.", 20, srv(10, 3000, 8002, "b.x.")));
        m.add_answer(rec("_h._tcp.x.", 5, srv(20, 1, 8003, "c.x.")));
        m.add_additional(rec("a.x.", 60, RData::A(A::new(10, 0, 0, 1))));
        m.add_additional(rec("c.x.", 60, RData::A(A::new(10, 0, 0, 3))));
        let mut f = Found::default();
        let asked = std::cell::RefCell::new(Vec::new());
        f.srv(&m, |n: &Name, t| {
            asked.borrow_mut().push((n.to_ascii(), t));
            let mut a = Message::response(2, hickory_proto::op::OpCode::Query);
            a.add_answer(rec("b.x.", 7, RData::A(A::new(10, 0, 0, 2))));
            Ok(a)
        })
        .expect("srv");
        let ep = |last: u8, port: u16, w: u32| (SocketAddr::from(([10, 0, 0, last], port)), w);
        assert_eq!(f.endpoints, vec![ep(1, 8001, 1), ep(2, 8002, 1000)]);
        assert_eq!(f.ttl, Some(7), "the smallest TTL of the records used (not the priority-20 one)");
        assert_eq!(*asked.borrow(), vec![("b.x.".to_owned(), RecordType::A)], "a.x came with the answer");
    }

    #[test]
    fn addresses_follow_cname_chains_and_drop_duplicates() {
        let mut f = Found::default();
        let records = [
            rec("api.x.", 3, RData::CNAME(hickory_proto::rr::rdata::CNAME(name("lb.x.")))),
            rec("lb.x.", 9, RData::A(A::new(10, 0, 0, 1))),
            rec("lb.x.", 9, RData::A(A::new(10, 0, 0, 1))),
        ];
        assert!(f.addresses(&records, None, 80, 2));
        assert_eq!(f.endpoints, vec![(SocketAddr::from(([10, 0, 0, 1], 80)), 2)]);
        assert_eq!(f.ttl, Some(3));
    }
}
