//! Hand-written JSON for the body of a `dns` event: the same bytes as serde's derive for
//! [`DnsExchange`] (docs/events.md), without serde's per-field machinery. The tests compare both.

use crate::event::{DnsExchange, DnsRecord};
use crate::output::json::{self, array, bool, float, ip, key_lit, kv_str, kv_uint, opt_str, uint};

/// Appends the fields of `ev` as serde writes them inside the body object, without the braces:
/// `"id":…,"opcode":…` (fields serde skips are skipped here too). [`crate::event::Event`] splices
/// them after the envelope's fields. Keys are single-copy literals (see [`json::key_lit!`]).
pub fn write_fields(ev: &DnsExchange, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"id\":");
    uint(out, ev.id);
    kv_str!(out, "opcode", &ev.opcode);
    kv_str!(out, "transport", ev.transport);
    opt_str!(out, "query", ev.query.as_deref());
    opt_str!(out, "qtype", ev.qtype.as_deref());
    opt_str!(out, "rcode", ev.rcode.as_deref());
    kv_str!(out, "status", ev.status);
    if let Some(f) = ev.response_frame {
        kv_uint!(out, "response_frame", f);
    }
    if !ev.answers.is_empty() {
        key_lit!(out, "answers");
        records(out, &ev.answers);
    }
    if !ev.authority.is_empty() {
        key_lit!(out, "authority");
        records(out, &ev.authority);
    }
    if !ev.additional.is_empty() {
        key_lit!(out, "additional");
        records(out, &ev.additional);
    }
    if let Some(v) = ev.rtt_ms {
        key_lit!(out, "rtt_ms");
        float(out, v);
    }
    if ev.authoritative {
        key_lit!(out, "authoritative");
        bool(out, true);
    }
    if ev.truncated {
        key_lit!(out, "truncated");
        bool(out, true);
    }
    if ev.retransmissions != 0 {
        kv_uint!(out, "retransmissions", ev.retransmissions);
    }
}

/// `[{…},…]` (the caller omits the field when empty).
fn records(out: &mut Vec<u8>, rs: &[DnsRecord]) {
    array(out, rs, |r, out| record(out, r));
}

fn record(out: &mut Vec<u8>, r: &DnsRecord) {
    out.extend_from_slice(b"{\"type\":\"");
    json::str_close(out, &r.rtype);
    kv_str!(out, "name", &r.name);
    kv_uint!(out, "ttl", r.ttl);
    if let Some(v) = r.priority {
        kv_uint!(out, "priority", v);
    }
    if let Some(v) = r.weight {
        kv_uint!(out, "weight", v);
    }
    if let Some(v) = r.port {
        kv_uint!(out, "port", v);
    }
    opt_str!(out, "target", r.target.as_deref());
    if let Some(a) = r.address {
        key_lit!(out, "address");
        ip(out, &a);
    }
    opt_str!(out, "data", r.data.as_deref());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;
    use std::net::IpAddr;

    fn via_serde(ev: &DnsExchange) -> Vec<u8> {
        // The body as Event::write_json splices it: serde's object without its braces.
        let v = serde_json::to_vec(&Body::Dns(Box::new(ev.clone()))).unwrap();
        v[1..v.len() - 1].to_vec()
    }

    fn rec(rtype: &str, name: &str) -> DnsRecord {
        DnsRecord {
            rtype: rtype.into(),
            name: name.into(),
            ttl: 300,
            ..DnsRecord::default()
        }
    }

    /// Events covering every optional field present and absent, odd strings and numbers.
    fn events() -> Vec<DnsExchange> {
        let names = [
            "_VLMCS._TCP.Corp.Example",
            "",
            ".",
            "quote\" back\\slash \u{1}\u{1f}\t\n caf\u{e9} \u{1f980}",
            "a\\.b",
        ];
        let addrs: [IpAddr; 5] = [
            "0.0.0.0".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "10.1.20.3".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ];
        let mut out = Vec::new();
        for i in 0..64usize {
            let n = names[i % names.len()];
            let bit = |b: usize| i & (1 << b) != 0;
            let mut srv = rec("SRV", n);
            srv.priority = Some(i as u16);
            srv.weight = Some(u16::MAX);
            srv.port = Some(1688);
            srv.target = Some(format!("kms{i}.{n}"));
            let mut a = rec("A", n);
            a.address = Some(addrs[i % addrs.len()]);
            let mut soa = rec("SOA", n);
            soa.data = Some(format!("ns. {n} 1 2 3 4 {i}"));
            soa.ttl = u32::MAX;
            let mut mx = rec("MX", n);
            mx.priority = Some(10);
            mx.target = Some(n.into());
            out.push(DnsExchange {
                id: (i as u16).wrapping_mul(4099),
                opcode: if bit(0) { "QUERY" } else { "unknown_9" }.into(),
                transport: if bit(1) { "udp" } else { "tcp" },
                query: bit(2).then(|| n.to_string()),
                qtype: bit(3).then(|| "TYPE65280".to_string()),
                rcode: bit(4).then(|| "NXDOMAIN".to_string()),
                status: ["answered", "unanswered", "response_only"][i % 3],
                response_frame: bit(5).then_some(u64::MAX - i as u64),
                answers: if bit(0) {
                    vec![srv.clone(), a.clone()]
                } else {
                    vec![]
                },
                authority: if bit(1) { vec![soa.clone()] } else { vec![] },
                additional: if bit(2) {
                    vec![a.clone(), mx.clone()]
                } else {
                    vec![]
                },
                rtt_ms: bit(3).then_some([0.0, 0.064, 123.457, 1e-7, 1e21][i % 5]),
                authoritative: bit(4),
                truncated: bit(5),
                retransmissions: if bit(1) { i as u32 } else { 0 },
            });
        }
        out.push(DnsExchange::default());
        out
    }

    #[test]
    fn write_fields_matches_serde() {
        for ev in events() {
            let mut out = Vec::new();
            write_fields(&ev, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(via_serde(&ev)).unwrap()
            );
        }
    }
}
