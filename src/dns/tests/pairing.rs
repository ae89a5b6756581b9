//! Query/response pairing in packet time with a bounded table.

use std::net::{IpAddr, Ipv4Addr};

use super::builder::*;
use crate::dns::message::{class, rtype};
use crate::dns::*;
use crate::time::Ts;

const SEC: i64 = 1_000_000_000;

fn ep(last: u8, port: u16) -> Endpoint {
    (IpAddr::V4(Ipv4Addr::new(10, 77, 0, last)), port)
}

const CLIENT: u8 = 20;
const SERVER: u8 = 2;

fn query(id: u16, name: &str, qtype: u16) -> DnsMessage {
    parse_message(
        &Msg::new(id, RD, [1, 0, 0, 0])
            .question(name, qtype, class::IN)
            .build(),
    )
    .expect("query")
}

fn response(id: u16, name: &str, qtype: u16, rcode: u16) -> DnsMessage {
    parse_message(
        &Msg::new(id, QR | RD | RA | rcode, [1, 0, 0, 0])
            .question(name, qtype, class::IN)
            .build(),
    )
    .expect("response")
}

/// Sends a query from client port `cport` to the server at `ts` seconds.
fn send_q(
    t: &mut DnsTracker,
    cport: u16,
    msg: DnsMessage,
    frame: u64,
    ts: i64,
    out: &mut Vec<Exchange>,
) {
    t.on_message(
        ep(CLIENT, cport),
        ep(SERVER, 53),
        Transport::Udp,
        msg,
        frame,
        Ts(ts),
        out,
    );
}

fn send_r(
    t: &mut DnsTracker,
    cport: u16,
    msg: DnsMessage,
    frame: u64,
    ts: i64,
    out: &mut Vec<Exchange>,
) {
    t.on_message(
        ep(SERVER, 53),
        ep(CLIENT, cport),
        Transport::Udp,
        msg,
        frame,
        Ts(ts),
        out,
    );
}

#[test]
fn answered() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(1, "_VLMCS._TCP.corp.example", rtype::SRV),
        1,
        10 * SEC,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(t.pending_len(), 1);
    // The resolver echoes the question in other case: still the same exchange.
    send_r(
        &mut t,
        5000,
        response(1, "_vlmcs._tcp.CORP.example", rtype::SRV, 3),
        2,
        10 * SEC + 2_500_000,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    assert_eq!(ex.outcome, Outcome::Answered);
    assert!(ex.is_answered());
    assert_eq!((ex.query_frame, ex.response_frame), (Some(1), Some(2)));
    assert_eq!((ex.client, ex.server), (ep(CLIENT, 5000), ep(SERVER, 53)));
    assert_eq!(ex.transport, Transport::Udp);
    assert_eq!(ex.id(), 1);
    assert_eq!(ex.opcode(), Opcode::QUERY);
    assert_eq!(
        ex.question().map(|q| q.name.as_str()),
        Some("_VLMCS._TCP.corp.example")
    );
    assert_eq!(ex.rcode(), Some(3));
    assert_eq!(ex.rtt_ms(), Some(2.5));
    assert_eq!(t.pending_len(), 0);
}

#[test]
fn unanswered_by_timeout() {
    let mut t = DnsTracker::new(5 * SEC);
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(1, "kms1.corp.example", rtype::A),
        1,
        0,
        &mut out,
    );
    t.expire(Ts(5 * SEC), &mut out);
    assert!(out.is_empty(), "exactly the timeout is not yet expired");
    t.expire(Ts(5 * SEC + 1), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Outcome::TimedOut);
    assert!(!out[0].is_answered());
    assert_eq!(out[0].rcode(), None);
    assert_eq!(out[0].rtt_ms(), None);
    assert_eq!(t.pending_len(), 0);

    // The late answer is then an exchange of its own.
    send_r(
        &mut t,
        5000,
        response(1, "kms1.corp.example", rtype::A, 0),
        2,
        6 * SEC,
        &mut out,
    );
    assert_eq!(out[1].outcome, Outcome::ResponseOnly);
}

#[test]
fn later_packets_expire_old_queries_without_an_explicit_call() {
    let mut t = DnsTracker::new(SEC);
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(1, "a.example", rtype::A),
        1,
        0,
        &mut out,
    );
    send_q(
        &mut t,
        5001,
        query(2, "b.example", rtype::A),
        2,
        3 * SEC,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].query_frame, out[0].outcome),
        (Some(1), Outcome::TimedOut)
    );
}

#[test]
fn unanswered_at_finish() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(1, "_VLMCS._TCP.corp.example", rtype::SRV),
        7,
        0,
        &mut out,
    );
    t.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Outcome::CaptureEnded);
    assert_eq!(out[0].frame(), 7);
    assert_eq!(t.pending_len(), 0);
    t.finish(&mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn response_without_query() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_r(
        &mut t,
        5000,
        response(9, "kms1.corp.example", rtype::A, 0),
        4,
        0,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    assert_eq!(ex.outcome, Outcome::ResponseOnly);
    assert!(ex.query.is_none() && ex.is_answered());
    assert_eq!((ex.client, ex.server), (ep(CLIENT, 5000), ep(SERVER, 53)));
    assert_eq!(ex.frame(), 4);
    assert_eq!(ex.id(), 9);
    assert_eq!(ex.question().map(|q| q.qtype), Some(rtype::A));
    assert_eq!(ex.rtt_ms(), None);
}

#[test]
fn retransmitted_query_is_counted_once() {
    let mut t = DnsTracker::new(2 * SEC);
    let mut out = Vec::new();
    let q = || query(3, "_VLMCS._TCP.corp.example", rtype::SRV);
    send_q(&mut t, 5000, q(), 1, 0, &mut out);
    send_q(&mut t, 5000, q(), 2, SEC, &mut out);
    // Each retransmission restarts the 2 s timeout: the answer at 3.5 s (1.5 s after the last
    // transmission) still pairs, and rtt_ms spans from the first transmission.
    send_q(&mut t, 5000, q(), 3, 2 * SEC, &mut out);
    assert_eq!(t.pending_len(), 1);
    send_r(
        &mut t,
        5000,
        response(3, "_VLMCS._TCP.corp.example", rtype::SRV, 0),
        4,
        3 * SEC + SEC / 2,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Outcome::Answered);
    assert_eq!(out[0].retransmissions, 2);
    assert_eq!(out[0].query_frame, Some(1));
    assert_eq!(out[0].rtt_ms(), Some(3500.0));
}

#[test]
fn same_id_different_question_is_not_a_retransmission() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(4, "kms1.corp.example", rtype::A),
        1,
        0,
        &mut out,
    );
    send_q(
        &mut t,
        5000,
        query(4, "kms1.corp.example", rtype::AAAA),
        2,
        0,
        &mut out,
    );
    assert_eq!(t.pending_len(), 2);
    send_r(
        &mut t,
        5000,
        response(4, "kms1.corp.example", rtype::AAAA, 0),
        3,
        1,
        &mut out,
    );
    send_r(
        &mut t,
        5000,
        response(4, "kms1.corp.example", rtype::A, 0),
        4,
        2,
        &mut out,
    );
    let pairs: Vec<_> = out
        .iter()
        .map(|e| (e.query_frame, e.response_frame))
        .collect();
    assert_eq!(pairs, vec![(Some(2), Some(3)), (Some(1), Some(4))]);
    // A response for another name with the same id pairs with nothing.
    send_q(
        &mut t,
        5000,
        query(5, "a.example", rtype::A),
        5,
        3,
        &mut out,
    );
    send_r(
        &mut t,
        5000,
        response(5, "b.example", rtype::A, 0),
        6,
        4,
        &mut out,
    );
    assert_eq!(out[2].outcome, Outcome::ResponseOnly);
    assert_eq!(t.pending_len(), 1);
}

#[test]
fn response_without_question_takes_the_oldest_same_id() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(6, "a.example", rtype::A),
        1,
        0,
        &mut out,
    );
    send_q(
        &mut t,
        5000,
        query(6, "a.example", rtype::AAAA),
        2,
        0,
        &mut out,
    );
    let formerr = parse_message(&Msg::new(6, QR | 1, [0, 0, 0, 0]).build()).expect("formerr");
    send_r(&mut t, 5000, formerr, 3, 1, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].query_frame, out[0].outcome),
        (Some(1), Outcome::Answered)
    );
    assert_eq!(out[0].rcode().map(rcode_name), Some("FORMERR".into()));
}

#[test]
fn endpoints_and_transport_separate_exchanges() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(7, "a.example", rtype::A),
        1,
        0,
        &mut out,
    );
    // Same id from the server to another client port: not ours.
    send_r(
        &mut t,
        5001,
        response(7, "a.example", rtype::A, 0),
        2,
        1,
        &mut out,
    );
    // Same id over TCP: not ours either.
    t.on_message(
        ep(SERVER, 53),
        ep(CLIENT, 5000),
        Transport::Tcp,
        response(7, "a.example", rtype::A, 0),
        3,
        Ts(2),
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.outcome == Outcome::ResponseOnly));
    assert_eq!(out[1].transport, Transport::Tcp);
    assert_eq!(t.pending_len(), 1);
}

#[test]
fn limit_evicts_the_oldest_and_reports_it() {
    let mut t = DnsTracker::with_limits(DEFAULT_TIMEOUT_NS, 3, usize::MAX);
    let mut out = Vec::new();
    for i in 0..3u16 {
        send_q(
            &mut t,
            6000 + i,
            query(i, "a.example", rtype::A),
            u64::from(i) + 1,
            i64::from(i),
            &mut out,
        );
    }
    assert!(out.is_empty());
    send_q(
        &mut t,
        7000,
        query(99, "a.example", rtype::A),
        4,
        10,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Outcome::Evicted);
    assert_eq!(out[0].query_frame, Some(1));
    assert_eq!(t.pending_len(), 3);
    assert_eq!(t.evicted_total(), 1);
    // The evicted query's answer is now a response-only exchange; the others still pair.
    send_r(
        &mut t,
        6000,
        response(0, "a.example", rtype::A, 0),
        5,
        11,
        &mut out,
    );
    send_r(
        &mut t,
        6001,
        response(1, "a.example", rtype::A, 0),
        6,
        12,
        &mut out,
    );
    assert_eq!(out[1].outcome, Outcome::ResponseOnly);
    assert_eq!(
        (out[2].outcome, out[2].query_frame),
        (Outcome::Answered, Some(2))
    );
}

#[test]
fn byte_budget_evicts_too() {
    let q = query(1, "a.example", rtype::A);
    let size = q.wire_len;
    let mut t = DnsTracker::with_limits(DEFAULT_TIMEOUT_NS, 100, 2 * size);
    let mut out = Vec::new();
    for i in 0..3u16 {
        send_q(
            &mut t,
            6000 + i,
            query(i, "a.example", rtype::A),
            u64::from(i) + 1,
            0,
            &mut out,
        );
    }
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].outcome, out[0].query_frame),
        (Outcome::Evicted, Some(1))
    );
    assert_eq!(t.pending_len(), 2);
}

#[test]
fn default_limit_holds() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    let q = query(1, "a.example", rtype::A);
    for i in 0..=MAX_PENDING_QUERIES {
        let port = 1024 + (i % 60_000) as u16;
        let mut m = q.clone();
        m.id = (i / 60_000) as u16;
        send_q(&mut t, port, m, i as u64 + 1, 0, &mut out);
    }
    assert_eq!(t.pending_len(), MAX_PENDING_QUERIES);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].outcome, out[0].query_frame),
        (Outcome::Evicted, Some(1))
    );
}

#[test]
fn deterministic_order_whatever_the_arrival_order() {
    // Ten queries sent at the same instant in different orders expire in query-frame order.
    let orders: [[u64; 10]; 3] = [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        [10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
        [3, 7, 1, 10, 5, 2, 9, 4, 8, 6],
    ];
    for order in orders {
        for finish in [false, true] {
            let mut t = DnsTracker::new(SEC);
            let mut out = Vec::new();
            for frame in order {
                send_q(
                    &mut t,
                    5000 + frame as u16,
                    query(frame as u16, "a.example", rtype::A),
                    frame,
                    0,
                    &mut out,
                );
            }
            if finish {
                t.finish(&mut out);
            } else {
                t.expire(Ts(2 * SEC), &mut out);
            }
            let frames: Vec<_> = out.iter().filter_map(|e| e.query_frame).collect();
            assert_eq!(
                frames,
                (1..=10).collect::<Vec<_>>(),
                "{order:?} finish={finish}"
            );
        }
    }
}

#[test]
fn multicast_queries_and_mdns_announcements() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    let group: Endpoint = (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);
    let me = ep(CLIENT, 5353);
    t.on_message(
        me,
        group,
        Transport::Udp,
        query(0, "printer.local", rtype::A),
        1,
        Ts(0),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, Outcome::Multicast);
    assert!(out[0].is_multicast());
    assert_eq!(t.pending_len(), 0);
    let announce = parse_message(
        &Msg::new(0, QR | AA, [0, 1, 0, 0])
            .rr("printer.local", rtype::A, 0x8001, 120, &[10, 77, 0, 50])
            .build(),
    )
    .expect("announcement");
    t.on_message(
        ep(50, 5353),
        group,
        Transport::Udp,
        announce,
        2,
        Ts(1),
        &mut out,
    );
    assert_eq!(out[1].outcome, Outcome::ResponseOnly);
    assert!(out[1].is_multicast());
    assert!(out[1].question().is_none());
}

#[test]
fn update_exchange_pairs_with_its_rcode() {
    let mut t = DnsTracker::default();
    let mut out = Vec::new();
    let upd = parse_message(
        &Msg::new(0x55, OP_UPDATE, [1, 0, 1, 0])
            .question("corp.example", rtype::SOA, class::IN)
            .rr(
                "_VLMCS._TCP.corp.example",
                rtype::SRV,
                class::IN,
                900,
                &srv_rdata(0, 0, 1688, "kms2.corp.example"),
            )
            .build(),
    )
    .expect("update");
    let refused = parse_message(
        &Msg::new(0x55, QR | OP_UPDATE | 5, [1, 0, 0, 0])
            .question("corp.example", rtype::SOA, class::IN)
            .build(),
    )
    .expect("refused");
    t.on_message(
        ep(11, 50000),
        ep(SERVER, 53),
        Transport::Tcp,
        upd,
        1,
        Ts(0),
        &mut out,
    );
    t.on_message(
        ep(SERVER, 53),
        ep(11, 50000),
        Transport::Tcp,
        refused,
        2,
        Ts(SEC / 100),
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    assert_eq!(ex.outcome, Outcome::Answered);
    assert_eq!(ex.opcode(), Opcode::UPDATE);
    assert_eq!(ex.rcode().map(rcode_name), Some("REFUSED".into()));
    let q = ex.query.as_ref().expect("query");
    assert!(
        matches!(&q.updates()[0].data, RecordData::Srv { target, .. } if target == "kms2.corp.example")
    );
}

#[test]
fn backwards_time_does_not_break_the_table() {
    let mut t = DnsTracker::new(SEC);
    let mut out = Vec::new();
    send_q(
        &mut t,
        5000,
        query(1, "a.example", rtype::A),
        1,
        10 * SEC,
        &mut out,
    );
    send_q(
        &mut t,
        5001,
        query(2, "b.example", rtype::A),
        2,
        5 * SEC,
        &mut out,
    );
    send_q(
        &mut t,
        5000,
        query(1, "a.example", rtype::A),
        3,
        4 * SEC,
        &mut out,
    );
    assert_eq!(t.pending_len(), 2);
    t.expire(Ts(i64::MAX), &mut out);
    let frames: Vec<_> = out
        .iter()
        .map(|e| (e.query_frame, e.retransmissions))
        .collect();
    assert_eq!(frames, vec![(Some(1), 1), (Some(2), 0)]);
    t.expire(Ts(i64::MIN), &mut out);
    assert_eq!(out.len(), 2);
}
