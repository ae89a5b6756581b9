//! Engine-level tests on synthetic captures built with the test encoders: host refusals, RPC
//! faults, unanswered calls, IPv6, Linux cooked capture, captures that start mid-connection,
//! tampered responses, and the same events whatever the TCP segmentation.

#[path = "common/dcerpc_encoder.rs"]
mod dcerpc_encoder;
#[path = "common/kms_conv.rs"]
mod kms_conv;
#[path = "common/kms_encoder.rs"]
mod kms_encoder;
#[path = "common/pcap.rs"]
mod pcap;

use std::net::IpAddr;

use kms_conv::{Answer, CallSpec, kms_events, run_bytes};
use kmsscope::dcerpc::TransferSyntax;
use pcap::{Conn, Pkt, pcap_bytes};
use proptest::prelude::*;
use serde_json::Value;

fn v4(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Packets of one connection: handshake, the PDUs each in its own segments of at most `mss`
/// bytes, then FIN close.
fn connection(
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    pdus: &[(bool, Vec<u8>)],
    mss: usize,
    close: bool,
) -> Vec<Pkt> {
    let mut c = Conn::new(client, server, 1000, 900_000, 1_795_446_600_000_000);
    let mut pkts = c.handshake();
    for (to_server, bytes) in pdus {
        pkts.extend(c.data(*to_server, bytes, mss));
    }
    if close {
        pkts.extend(c.close());
    }
    pkts
}

fn standard_calls() -> Vec<CallSpec> {
    let mut ndr64 = CallSpec::new(6, Answer::Count(50));
    ndr64.ndr = TransferSyntax::Ndr64;
    vec![
        CallSpec::new(6, Answer::Count(50)),
        CallSpec::new(6, Answer::Refuse(0xC004_F042)),
        CallSpec::new(5, Answer::Fault(0x1c01_0003)),
        CallSpec::new(4, Answer::Count(3)),
        ndr64,
        CallSpec::new(4, Answer::Silent),
    ]
}

fn check_standard(events: &[Value]) {
    let kms = kms_events(events);
    assert_eq!(kms.len(), 6, "{events:#?}");
    let by_call = |id: u64| {
        kms.iter()
            .find(|e| e["call_id"] == id)
            .copied()
            .unwrap_or_else(|| panic!("call {id}"))
    };
    let c = by_call(2);
    assert_eq!(c["status"], "answered");
    assert_eq!(c["version"], "6.0");
    assert_eq!(c["outcome"], "activated");
    assert_eq!(c["response"]["current_count"], 50);
    assert_eq!(c["response"]["hwid"], "3A1C049600B60076");
    assert_eq!(c["response"]["epid"], kms_conv::EPID);
    assert_eq!(c["response"]["host"]["os_build"], 17763);
    assert_eq!(c["integrity"]["request"], "valid");
    assert_eq!(c["integrity"]["response"], "valid");
    assert_eq!(c["request"]["workstation"], "kms-v6-client.example");
    assert_eq!(c["request"]["client_time"], "2026-11-23T15:10:00Z");
    assert_eq!(c["request"]["sku_name"], "Windows 10/11 Pro");
    let r = by_call(3);
    assert_eq!(r["status"], "refused");
    assert_eq!(r["outcome"], "refused");
    assert_eq!(r["hresult"]["code"], "0xC004F042");
    assert!(
        r["hresult"]["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{r}"
    );
    assert!(r.get("response").is_none());
    let f = by_call(4);
    assert_eq!(f["status"], "fault");
    assert_eq!(f["hresult"]["code"], "0x1C010003");
    assert_eq!(f["hresult"]["name"], "nca_unk_if");
    assert_eq!(f["version"], "5.0");
    let low = by_call(5);
    assert_eq!(low["version"], "4.0");
    assert_eq!(low["outcome"], "count_insufficient");
    assert_eq!(low["integrity"]["response"], "valid");
    let n64 = by_call(6);
    assert_eq!(n64["ndr"], "ndr64");
    assert_eq!(n64["ctx_id"], 1);
    assert_eq!(n64["status"], "answered");
    let silent = by_call(7);
    assert_eq!(silent["status"], "unanswered");
    assert_eq!(silent["outcome"], "no_response");
    assert!(silent.get("response_frame").is_none());
    // The fault is also an rpc event.
    assert!(events.iter().any(|e| e["event"] == "rpc"
        && e["pdu"] == "fault"
        && e["status"]["code"] == "0x1C010003"));
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    assert_eq!(summary["kms_calls"], 6);
    assert_eq!(summary["kms_by_status"]["answered"], 3);
    assert_eq!(summary["kms_by_status"]["refused"], 1);
    assert_eq!(summary["kms_by_status"]["fault"], 1);
    assert_eq!(summary["kms_by_status"]["unanswered"], 1);
}

#[test]
fn refusals_faults_and_unanswered_calls() {
    let pdus = kms_conv::conversation(&standard_calls());
    let pkts = connection(
        (v4("10.9.0.20"), 50000),
        (v4("10.9.0.10"), 1688),
        &pdus,
        1460,
        true,
    );
    let events = run_bytes("synthetic.pcap", pcap_bytes(&pkts));
    check_standard(&events);
    let silent = kms_events(&events)
        .into_iter()
        .find(|e| e["call_id"] == 7)
        .cloned()
        .expect("call 7");
    assert_eq!(silent["reason"], "connection_closed");
    // The engine builds each `kms` event in the previous one's storage: nothing of an earlier
    // call (answered, refused, fault, v4, answered, silent, in this order) may show in a later one.
    let kms = kms_events(&events);
    let ids: Vec<u64> = kms.iter().filter_map(|e| e["call_id"].as_u64()).collect();
    assert_eq!(ids, [2, 3, 4, 5, 6, 7]);
    let absent = |e: &Value, keys: &[&str]| {
        for k in keys {
            assert!(e.get(k).is_none(), "{k} in {e}");
        }
    };
    absent(kms[1], &["response", "response_size", "reason"]);
    assert!(kms[1]["integrity"].get("response").is_none(), "{}", kms[1]);
    absent(kms[2], &["response", "response_size", "reason"]);
    absent(kms[3], &["hresult", "reason"]);
    absent(kms[4], &["hresult", "reason"]);
    absent(
        kms[5],
        &[
            "response",
            "response_size",
            "response_frame",
            "rtt_ms",
            "hresult",
        ],
    );
    assert!(kms[5]["integrity"].get("response").is_none(), "{}", kms[5]);
    assert!(kms[5]["integrity"].get("failures").is_none(), "{}", kms[5]);
}

#[test]
fn ipv6_connection() {
    let pdus = kms_conv::conversation(&standard_calls());
    let pkts = connection(
        (v4("fd77::20"), 50001),
        (v4("fd77::10"), 1688),
        &pdus,
        1000,
        true,
    );
    let events = run_bytes("v6.pcap", pcap_bytes(&pkts));
    check_standard(&events);
    let k = kms_events(&events)[0];
    assert_eq!(k["client"]["ip"], "fd77::20");
    assert_eq!(k["server"]["ip"], "fd77::10");
    assert_eq!(k["server"]["port"], 1688);
}

/// Rewrites an Ethernet pcap into a Linux cooked (SLL, link type 113) one.
fn to_sll(pkts: &[Pkt]) -> Vec<u8> {
    let mut out = pcap_bytes(&[]);
    out[20..24].copy_from_slice(&113u32.to_le_bytes());
    for p in pkts {
        let ethertype = [p.frame[12], p.frame[13]];
        let mut f = vec![0, 0, 0, 1, 0, 6];
        f.extend_from_slice(&p.frame[6..12]);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(&p.frame[14..]);
        out.extend_from_slice(&((p.ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((p.ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

#[test]
fn linux_cooked_capture() {
    let pdus = kms_conv::conversation(&standard_calls());
    let pkts = connection(
        (v4("10.9.0.21"), 50002),
        (v4("10.9.0.10"), 1688),
        &pdus,
        1460,
        true,
    );
    let events = run_bytes("sll.pcap", to_sll(&pkts));
    check_standard(&events);
}

#[test]
fn capture_starting_mid_connection_still_decodes_calls() {
    // Drop the handshake, the bind and the bind_ack: the first packet is the first request.
    let calls = vec![
        CallSpec::new(6, Answer::Count(50)),
        CallSpec::new(5, Answer::Count(50)),
    ];
    let pdus = kms_conv::conversation(&calls);
    let pkts = connection(
        (v4("10.9.0.22"), 50003),
        (v4("10.9.0.10"), 1688),
        &pdus,
        1460,
        true,
    );
    let events = run_bytes("mid.pcap", pcap_bytes(&pkts[5..]));
    let kms = kms_events(&events);
    assert_eq!(kms.len(), 2, "{events:#?}");
    for k in &kms {
        assert_eq!(k["status"], "answered", "{k}");
        assert_eq!(k["integrity"]["request"], "valid", "{}", k["integrity"]);
        assert_eq!(
            k["integrity"]["response"], "valid",
            "{} {}",
            k["version"], k["integrity"]
        );
        assert_eq!(k["client"]["port"], 50003);
        assert_eq!(k["ndr"], "unknown");
    }
}

#[test]
fn reset_in_the_middle_of_a_call() {
    let calls = vec![CallSpec::new(6, Answer::Silent)];
    let pdus = kms_conv::conversation(&calls);
    let mut c = Conn::new(
        (v4("10.9.0.23"), 50004),
        (v4("10.9.0.10"), 1688),
        1,
        2,
        1_795_446_600_000_000,
    );
    let mut pkts = c.handshake();
    for (to_server, bytes) in &pdus {
        pkts.extend(c.data(*to_server, bytes, 1460));
    }
    let seq = c.seq[1];
    pkts.push(c.segment_at(false, seq, false, true, false, true, &[]));
    let events = run_bytes("rst.pcap", pcap_bytes(&pkts));
    let kms = kms_events(&events);
    assert_eq!(kms.len(), 1);
    assert_eq!(kms[0]["status"], "unanswered");
    assert_eq!(kms[0]["reason"], "connection_reset");
    let connect: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "rpc" && e["pdu"] == "connect")
        .collect();
    assert_eq!(connect.len(), 1, "{events:#?}");
    assert_eq!(connect[0]["result"], "reset");
}

#[test]
fn refused_and_unanswered_connection_attempts() {
    let mut c = Conn::new(
        (v4("10.9.0.24"), 50005),
        (v4("10.9.0.12"), 1688),
        7,
        8,
        1_795_446_600_000_000,
    );
    let syn = c.segment_at(true, 7, true, false, false, false, &[]);
    let rst = c.segment_at(false, 0, false, true, false, true, &[]);
    let mut d = Conn::new(
        (v4("10.9.0.24"), 50006),
        (v4("10.9.0.13"), 1688),
        7,
        8,
        1_795_446_601_000_000,
    );
    d.step_us = 1_000_000;
    let syns: Vec<Pkt> = (0..3)
        .map(|_| d.segment_at(true, 7, true, false, false, false, &[]))
        .collect();
    let mut pkts = vec![syn, rst];
    pkts.extend(syns);
    let events = run_bytes("connect.pcap", pcap_bytes(&pkts));
    let connect: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "rpc" && e["pdu"] == "connect")
        .collect();
    assert_eq!(connect.len(), 2, "{events:#?}");
    assert_eq!(connect[0]["result"], "refused");
    assert_eq!(connect[0]["server"]["ip"], "10.9.0.12");
    assert_eq!(connect[0]["frame"], 1);
    assert_eq!(connect[1]["result"], "no_answer");
    assert_eq!(connect[1]["syn_count"], 3);
    assert_eq!(connect[1]["server"]["ip"], "10.9.0.13");
}

#[test]
fn tampered_responses_are_invalid() {
    let calls = vec![
        CallSpec::new(6, Answer::Tampered(50)),
        CallSpec::new(5, Answer::Tampered(50)),
        CallSpec::new(4, Answer::Tampered(50)),
    ];
    let pdus = kms_conv::conversation(&calls);
    let pkts = connection(
        (v4("10.9.0.25"), 50007),
        (v4("10.9.0.10"), 1688),
        &pdus,
        1460,
        true,
    );
    let events = run_bytes("tamper.pcap", pcap_bytes(&pkts));
    let kms = kms_events(&events);
    assert_eq!(kms.len(), 3);
    for k in kms {
        assert_eq!(k["status"], "answered");
        assert_eq!(k["integrity"]["request"], "valid", "{k}");
        assert_eq!(k["integrity"]["response"], "invalid", "{k}");
        assert!(
            k["integrity"]["failures"]
                .as_array()
                .is_some_and(|f| !f.is_empty()),
            "{k}"
        );
        assert_eq!(k["outcome"], "invalid_response");
    }
}

/// The KMS events with the fields that depend on packet boundaries removed.
fn masked(events: &[Value]) -> Vec<Value> {
    kms_events(events)
        .into_iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                for k in ["ts", "frame", "response_frame", "rtt_ms", "source"] {
                    o.remove(k);
                }
            }
            e
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The same KMS events come out however the byte streams are cut into segments, reordered
    /// within a window, or duplicated.
    #[test]
    fn same_events_whatever_the_segmentation(mss in 1usize..600, seed in any::<u64>(), dup_every in 2usize..9) {
        let pdus = kms_conv::conversation(&standard_calls());
        let reference = {
            let pkts = connection((v4("10.9.0.30"), 50010), (v4("10.9.0.10"), 1688), &pdus, 1460, true);
            masked(&run_bytes("ref.pcap", pcap_bytes(&pkts)))
        };
        let mut pkts = connection((v4("10.9.0.30"), 50010), (v4("10.9.0.10"), 1688), &pdus, mss, true);
        // Keep the handshake first and the close last; shuffle data segments within runs of the
        // same direction (windows of 4: each byte stream is reordered, causality between the two
        // streams is kept) and duplicate some.
        let n = pkts.len();
        let mut body: Vec<Pkt> = pkts[3..n - 3].to_vec();
        let to_server = |p: &Pkt| p.frame[6..12] == [2, 0, 0, 0, 0, 1];
        let mut x = seed | 1;
        let mut i = 0;
        while i + 1 < body.len() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let dir = to_server(&body[i]);
            let run = body[i..].iter().take(4).take_while(|p| to_server(p) == dir).count();
            let j = i + (x as usize) % run.max(1);
            body.swap(i, j);
            i += 1;
        }
        let mut with_dups = Vec::with_capacity(body.len() * 2);
        for (k, p) in body.into_iter().enumerate() {
            if k % dup_every == 0 {
                with_dups.push(p.clone());
            }
            with_dups.push(p);
        }
        let mut all: Vec<Pkt> = pkts.drain(..3).collect();
        all.extend(with_dups);
        all.extend(pkts.drain(pkts.len() - 3..));
        let got = masked(&run_bytes("cut.pcap", pcap_bytes(&all)));
        prop_assert_eq!(got.len(), reference.len());
        for (g, r) in got.iter().zip(reference.iter()) {
            for (k, v) in r.as_object().into_iter().flatten() {
                prop_assert_eq!(&g[k], v, "field {} of call {}", k, r["call_id"]);
            }
            prop_assert_eq!(g, r);
        }
    }
}

#[test]
fn lost_segment_in_a_request_is_reported_and_later_calls_decode() {
    let calls = vec![
        CallSpec::new(6, Answer::Count(50)),
        CallSpec::new(6, Answer::Count(51)),
    ];
    let pdus = kms_conv::conversation(&calls);
    let mut c = Conn::new(
        (v4("10.9.0.26"), 50008),
        (v4("10.9.0.10"), 1688),
        1,
        2,
        1_795_446_600_000_000,
    );
    let mut pkts = c.handshake();
    let mut lost_frame = 0;
    for (i, (to_server, bytes)) in pdus.iter().enumerate() {
        let segs = c.data(*to_server, bytes, 100);
        for (k, p) in segs.into_iter().enumerate() {
            // The first request (third PDU) loses its second segment.
            if i == 2 && k == 1 {
                lost_frame = pkts.len() + 1;
                continue;
            }
            pkts.push(p);
        }
    }
    pkts.extend(c.close());
    assert!(lost_frame > 0);
    let events = run_bytes("lost.pcap", pcap_bytes(&pkts));
    let kms = kms_events(&events);
    assert_eq!(kms.len(), 2, "{events:#?}");
    assert_eq!(kms[0]["status"], "answered");
    assert_eq!(kms[0]["reason"], "request_not_captured");
    assert!(kms[0].get("request").is_none());
    assert_eq!(kms[1]["call_id"], 3);
    assert_eq!(kms[1]["integrity"]["request"], "valid");
    assert_eq!(kms[1]["integrity"]["response"], "valid");
    assert_eq!(kms[1]["response"]["current_count"], 51);
    let gap = events
        .iter()
        .find(|e| e["event"] == "anomaly" && e["kind"] == "tcp_gap")
        .expect("tcp_gap anomaly");
    assert_eq!(
        gap["detail"],
        "100 bytes missing in the client-to-server stream; resynchronised on the next DCE/RPC header"
    );
}

#[test]
fn rpc_5_1_request_rejected_with_proto_error_fault() {
    // A request with DCE/RPC version 5.1 (valid per C706) that a pedantic host rejects with
    // nca_proto_error: the call is still decoded and reported as a fault.
    let calls = vec![CallSpec::new(6, Answer::Fault(0x1c01_000b))];
    let mut pdus = kms_conv::conversation(&calls);
    pdus[2].1[1] = 1;
    let pkts = connection(
        (v4("10.9.0.27"), 50009),
        (v4("10.9.0.10"), 1688),
        &pdus,
        1460,
        true,
    );
    let events = run_bytes("proto.pcap", pcap_bytes(&pkts));
    let kms = kms_events(&events);
    assert_eq!(kms.len(), 1, "{events:#?}");
    assert_eq!(kms[0]["status"], "fault");
    assert_eq!(kms[0]["hresult"]["code"], "0x1C01000B");
    assert_eq!(kms[0]["hresult"]["name"], "nca_proto_error");
    assert_eq!(kms[0]["integrity"]["request"], "valid");
    assert_eq!(kms[0]["request"]["workstation"], "kms-v6-client.example");
}
