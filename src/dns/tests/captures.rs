//! Real DNS messages from the shared captures (s11, s12, s14), checked against the facts in their
//! `.expect.json` (see `testdata/extract_dns_fixtures.py`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::capture_data::*;
use super::capture_types::{CapPacket, ExpExchange, ExpRec};
use crate::dns::*;
use crate::time::Ts;

const CAPTURES: &[(&str, &[CapPacket], &[ExpExchange])] = &[
    ("s11", S11_PACKETS, S11_EXCHANGES),
    ("s12", S12_PACKETS, S12_EXCHANGES),
    ("s14", S14_PACKETS, S14_EXCHANGES),
];

fn packet(pkts: &[CapPacket], frame: u64) -> &CapPacket {
    pkts.iter()
        .find(|p| p.frame == frame)
        .unwrap_or_else(|| panic!("frame {frame} missing from fixtures"))
}

fn parse(pkts: &[CapPacket], frame: u64) -> DnsMessage {
    parse_message(packet(pkts, frame).payload).unwrap_or_else(|e| panic!("frame {frame}: {e}"))
}

fn endpoint(s: &str) -> Endpoint {
    let sa: SocketAddr = s.parse().expect("fixture endpoint");
    (sa.ip(), sa.port())
}

fn assert_record(cap: &str, frame: u64, got: &Record, want: &ExpRec) {
    match want {
        ExpRec::Srv(name, ttl, priority, weight, port, target) => {
            assert_eq!(got.name, *name, "{cap} f{frame}");
            assert_eq!(qtype_name(got.rtype), "SRV", "{cap} f{frame}");
            assert_eq!(got.ttl, *ttl, "{cap} f{frame}");
            assert_eq!(
                got.data,
                RecordData::Srv {
                    priority: *priority,
                    weight: *weight,
                    port: *port,
                    target: (*target).to_string()
                },
                "{cap} f{frame}"
            );
        }
        ExpRec::Addr(name, rtype, ttl, address) => {
            assert_eq!(got.name, *name, "{cap} f{frame}");
            assert_eq!(qtype_name(got.rtype), *rtype, "{cap} f{frame}");
            assert_eq!(got.ttl, *ttl, "{cap} f{frame}");
            let ip: IpAddr = address.parse().expect("fixture address");
            let data = match ip {
                IpAddr::V4(a) => RecordData::A(a),
                IpAddr::V6(a) => RecordData::Aaaa(a),
            };
            assert_eq!(got.data, data, "{cap} f{frame}");
        }
    }
}

#[test]
fn every_expected_exchange_parses_with_the_expected_values() {
    let mut checked = 0;
    for (cap, pkts, exchanges) in CAPTURES {
        for x in *exchanges {
            let q = parse(pkts, x.query_frame);
            let r = parse(pkts, x.response_frame);
            for (m, is_response) in [(&q, false), (&r, true)] {
                assert_eq!(m.id, x.id, "{cap} f{}", x.query_frame);
                assert_eq!(m.is_response, is_response);
                assert_eq!(m.opcode, Opcode::QUERY);
                assert_eq!(m.recursion_desired, x.recursion_desired);
                assert_eq!(m.questions.len(), 1);
                let question = &m.questions[0];
                assert_eq!(question.name, x.qname, "{cap} f{}", x.query_frame);
                assert_eq!(qtype_name(question.qtype), x.qtype);
                assert_eq!(question.qclass, 1);
                assert!(m.issues.is_empty(), "{cap}: {:?}", m.issues);
            }
            assert_eq!(rcode_name(r.rcode), x.rcode, "{cap} f{}", x.response_frame);
            assert_eq!(
                r.authoritative, x.authoritative,
                "{cap} f{}",
                x.response_frame
            );
            assert_eq!(
                r.answers.len(),
                x.answers.len(),
                "{cap} f{}",
                x.response_frame
            );
            for (got, want) in r.answers.iter().zip(x.answers) {
                assert_record(cap, x.response_frame, got, want);
            }
            assert_eq!(r.additional.len(), x.additional.len());
            for (got, want) in r.additional.iter().zip(x.additional) {
                assert_record(cap, x.response_frame, got, want);
            }
            assert!(r.authority.is_empty());
            checked += 1;
        }
    }
    assert_eq!(checked, 5 + 4 + 14);
}

#[test]
fn s11_srv_answer_in_full() {
    let q = parse(S11_PACKETS, 3);
    assert_eq!(q.id, 18632);
    assert_eq!(q.questions[0].name, "_vlmcs._tcp.corp.example");
    assert_eq!(q.questions[0].qtype, 33);
    // dig's query carries EDNS (UDP 1232, cookie option).
    assert_eq!(
        q.edns,
        Some(Edns {
            udp_payload_size: 1232,
            extended_rcode: 0,
            version: 0,
            dnssec_ok: false
        })
    );
    assert!(q.additional.is_empty(), "OPT is not a data record");
    assert_eq!(q.wire_len, 65);

    let r = parse(S11_PACKETS, 4);
    assert!(r.is_response && r.authoritative && r.recursion_desired && r.recursion_available);
    assert!(!r.truncated);
    assert_eq!(r.rcode, 0);
    assert_eq!(
        r.answers,
        vec![Record {
            name: "_vlmcs._tcp.corp.example".into(),
            rtype: 33,
            class: 1,
            ttl: 0,
            data: RecordData::Srv {
                priority: 0,
                weight: 100,
                port: 1688,
                target: "kms1.corp.example".into()
            },
        }]
    );
    assert_eq!(
        r.additional,
        vec![Record {
            name: "kms1.corp.example".into(),
            rtype: 1,
            class: 1,
            ttl: 0,
            data: RecordData::A(Ipv4Addr::new(10, 77, 0, 10)),
        }]
    );
    assert!(r.edns.is_some());
}

#[test]
fn s12_srv_advertises_port_1689() {
    let r = parse(S12_PACKETS, 2);
    assert_eq!(r.id, 41348);
    match &r.answers[0].data {
        RecordData::Srv { port, target, .. } => {
            assert_eq!(*port, 1689);
            assert_eq!(target, "kms1.corp.example");
        }
        other => panic!("not SRV: {other:?}"),
    }
}

#[test]
fn s14_wpad_nxdomain_and_nodata_aaaa() {
    let q = parse(S14_PACKETS, 21);
    assert_eq!(q.questions[0].name, "wpad.corp.example");
    let r = parse(S14_PACKETS, 22);
    assert_eq!(r.id, 43822);
    assert_eq!(r.rcode, 3);
    assert_eq!(r.rcode_name(), "NXDOMAIN");
    assert!(!r.authoritative);
    assert!(r.answers.is_empty() && r.authority.is_empty() && r.additional.is_empty());
    assert!(r.edns.is_some());

    // NODATA: NOERROR with an empty answer section.
    for (frame, name) in [
        (6, "intranet.corp.example"),
        (28, "kms1.corp.example"),
        (58, "kms-old.corp.example"),
    ] {
        let r = parse(S14_PACKETS, frame);
        assert_eq!(r.questions[0].qtype, 28, "f{frame}");
        assert_eq!(qtype_name(r.questions[0].qtype), "AAAA");
        assert_eq!(r.questions[0].name, name);
        assert_eq!(r.rcode, 0);
        assert!(r.answers.is_empty());
        assert!(r.authority.is_empty());
    }
    let r = parse(S14_PACKETS, 57);
    assert_eq!(
        r.answers[0].data,
        RecordData::A(Ipv4Addr::new(10, 77, 0, 12))
    );
}

#[test]
fn every_capture_payload_is_detected_as_dns() {
    for (cap, pkts, _) in CAPTURES {
        for p in *pkts {
            assert!(looks_like_dns(p.payload), "{cap} f{}", p.frame);
            assert!(is_dns_port(endpoint(p.src).1) || is_dns_port(endpoint(p.dst).1));
        }
    }
}

/// Feeding each capture's DNS packets through the tracker gives exactly the expected exchanges,
/// in query-frame order, all answered, with matching endpoints, ids and frames.
#[test]
fn pairing_over_captures_matches_expect_json() {
    for (cap, pkts, exchanges) in CAPTURES {
        let mut tracker = DnsTracker::new(DEFAULT_TIMEOUT_NS);
        let mut out = Vec::new();
        for p in *pkts {
            let msg = parse_message(p.payload).expect("capture payload parses");
            tracker.on_message(
                endpoint(p.src),
                endpoint(p.dst),
                Transport::Udp,
                msg,
                p.frame,
                Ts(p.ts_ns),
                &mut out,
            );
        }
        tracker.finish(&mut out);
        out.sort_by_key(Exchange::frame);
        assert_eq!(out.len(), exchanges.len(), "{cap}");
        for (got, want) in out.iter().zip(*exchanges) {
            assert_eq!(
                got.outcome,
                Outcome::Answered,
                "{cap} f{}",
                want.query_frame
            );
            assert_eq!(got.query_frame, Some(want.query_frame), "{cap}");
            assert_eq!(got.response_frame, Some(want.response_frame), "{cap}");
            assert_eq!(got.client, endpoint(want.client));
            assert_eq!(got.server, endpoint(want.server));
            assert_eq!(got.id(), want.id);
            assert_eq!(got.question().map(|q| q.name.as_str()), Some(want.qname));
            assert_eq!(got.rcode().map(rcode_name), Some(want.rcode.into()));
            assert_eq!(got.retransmissions, 0);
            let rtt = got.rtt_ms().expect("answered");
            assert!((0.0..1000.0).contains(&rtt), "{cap}: rtt {rtt}");
        }
    }
}

#[test]
fn s11_rtt_from_packet_times() {
    let mut tracker = DnsTracker::default();
    let mut out = Vec::new();
    for p in S11_PACKETS.iter().take(2) {
        let msg = parse_message(p.payload).expect("parses");
        tracker.on_message(
            endpoint(p.src),
            endpoint(p.dst),
            Transport::Udp,
            msg,
            p.frame,
            Ts(p.ts_ns),
            &mut out,
        );
    }
    assert_eq!(out.len(), 1);
    // Frames 3 and 4 are 350 microseconds apart.
    assert_eq!(out[0].rtt_ms(), Some(0.35));
    assert_eq!(out[0].ts(), Ts(S11_PACKETS[0].ts_ns));
    assert_eq!(out[0].frame(), 3);
}

/// All DNS messages of s14 over one TCP stream, cut at every byte position: the same messages come
/// out in the same order.
#[test]
fn tcp_stream_of_capture_messages_cut_everywhere() {
    let mut stream = Vec::new();
    for p in S14_PACKETS {
        stream.extend_from_slice(&(p.payload.len() as u16).to_be_bytes());
        stream.extend_from_slice(p.payload);
    }
    let whole = split_tcp_messages(&stream);
    assert_eq!(whole.messages.len(), S14_PACKETS.len());
    assert_eq!((whole.consumed, whole.needed), (stream.len(), 0));
    for cut in 0..=stream.len() {
        let mut buf: Vec<u8> = Vec::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for chunk in [&stream[..cut], &stream[cut..]] {
            buf.extend_from_slice(chunk);
            let frames = split_tcp_messages(&buf);
            got.extend(frames.messages.iter().map(|m| m.to_vec()));
            let consumed = frames.consumed;
            buf.drain(..consumed);
        }
        assert!(buf.is_empty(), "cut {cut}");
        assert_eq!(got.len(), S14_PACKETS.len(), "cut {cut}");
        for (g, p) in got.iter().zip(S14_PACKETS) {
            assert_eq!(g.as_slice(), p.payload, "cut {cut}");
        }
    }
}
