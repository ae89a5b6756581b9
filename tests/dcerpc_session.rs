//! Session state machine: whole connections (spec vectors and real captures), gaps and resync,
//! non-DCE/RPC content, orphans, bind_nak, fragments, faults, limits.

#[path = "common/dcerpc_capture_fixtures.rs"]
mod captures;
#[path = "common/dcerpc_encoder.rs"]
mod enc;
#[path = "common/dcerpc_feed.rs"]
mod feed;
#[path = "common/dcerpc_vectors.rs"]
mod vectors;

use feed::{Feeder, ts_of};
use kmsscope::Direction::{self, ToClient, ToServer};
use kmsscope::dcerpc::*;
use vectors::hex;

const C: Direction = ToServer;
const S: Direction = ToClient;

/// The TV-6 connection of kms-protocol.md 7.1/7.4/7.5, with the frame numbers of capture s05.
fn tv6_connection() -> Vec<(Direction, Vec<u8>, u64)> {
    vec![
        (C, hex(vectors::BIND_3CTX), 4),
        (S, hex(vectors::BIND_ACK_NDR64), 6),
        (C, hex(vectors::ALTER_CONTEXT_NDR32), 8),
        (S, hex(vectors::ALTER_CONTEXT_RESP), 9),
        (C, hex(vectors::TV6A_REQUEST), 10),
        (S, hex(vectors::TV6A_RESPONSE), 11),
        (C, hex(vectors::TV6B_REQUEST), 12),
        (S, hex(vectors::TV6B_RESPONSE), 13),
    ]
}

fn response_half(c: &Call) -> &Half {
    match &c.reply {
        Reply::Response(h) => h,
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn tv6_connection_two_calls_ndr32_then_ndr64() {
    let mut f = Feeder::new(true);
    for (dir, bytes, frame) in tv6_connection() {
        f.feed(dir, &bytes, frame);
    }
    assert_eq!(f.session.state(), SessionState::DceRpc);
    assert!(f.session.is_kms());
    assert!(f.anomaly_kinds().is_empty(), "{:?}", f.out);
    assert_eq!(f.out.len(), 6);

    match &f.out[0] {
        RpcEvent::Bind {
            dir,
            frame,
            call_id,
            ptype,
            contexts,
            max_xmit_frag,
            ..
        } => {
            assert_eq!(
                (*dir, *frame, *call_id, *ptype),
                (C, 4, 2, PacketType::BIND)
            );
            assert_eq!(*max_xmit_frag, 5840);
            assert_eq!(contexts.len(), 3);
            assert_eq!(contexts[2].transfer_syntaxes[..], [SyntaxId::BTFN_BOTH]);
        }
        e => panic!("{e:?}"),
    }
    match &f.out[1] {
        RpcEvent::BindAck {
            frame,
            ts,
            call_id,
            ptype,
            assoc_group,
            sec_addr,
            results,
            ..
        } => {
            assert_eq!((*frame, *ts, *call_id), (6, ts_of(6), 2));
            assert_eq!(*ptype, PacketType::BIND_ACK);
            assert_eq!(*assoc_group, 0xf5a8_17d7);
            assert_eq!(sec_addr, "1699");
            let r: Vec<_> = results
                .iter()
                .map(|r| (r.ctx_id, r.ack.result, r.ack.reason, r.ack.transfer_syntax))
                .collect();
            assert_eq!(
                r,
                vec![
                    (Some(0), 2, 2, SyntaxId::NULL),
                    (Some(1), 0, 0, SyntaxId::NDR64),
                    (Some(2), 3, 3, SyntaxId::NULL)
                ]
            );
            assert!(
                results
                    .iter()
                    .all(|r| r.abstract_syntax == Some(SyntaxId::KMS))
            );
            assert_eq!(results[1].proposed[..], [SyntaxId::NDR64]);
        }
        e => panic!("{e:?}"),
    }
    assert!(
        matches!(&f.out[2], RpcEvent::Bind { ptype, frame: 8, .. } if *ptype == PacketType::ALTER_CONTEXT)
    );
    match &f.out[3] {
        RpcEvent::BindAck {
            ptype,
            frame: 9,
            sec_addr,
            results,
            ..
        } => {
            assert_eq!(*ptype, PacketType::ALTER_CONTEXT_RESP);
            assert_eq!(sec_addr, "");
            assert_eq!(results.len(), 1);
            assert_eq!(results[0].ctx_id, Some(0));
            assert!(results[0].ack.accepted());
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        f.session.context(0),
        Some((SyntaxId::KMS, SyntaxId::NDR32, TransferSyntax::Ndr32))
    );
    assert_eq!(
        f.session.context(1),
        Some((SyntaxId::KMS, SyntaxId::NDR64, TransferSyntax::Ndr64))
    );
    assert_eq!(f.session.context(2), None);

    let calls = f.calls();
    assert_eq!(calls.len(), 2);
    let expect = [
        (
            2,
            0,
            TransferSyntax::Ndr32,
            SyntaxId::NDR32,
            10,
            11,
            vectors::TV6A_REQUEST,
            32,
            36,
        ),
        (
            3,
            1,
            TransferSyntax::Ndr64,
            SyntaxId::NDR64,
            12,
            13,
            vectors::TV6B_REQUEST,
            40,
            48,
        ),
    ];
    let responses = [vectors::TV6A_RESPONSE, vectors::TV6B_RESPONSE];
    for ((c, e), resp) in calls.iter().zip(expect).zip(responses) {
        let (call_id, ctx, ndr, ts, req_frame, resp_frame, req_hex, req_at, resp_at) = e;
        assert_eq!(
            (c.call_id, c.ctx_id, c.opnum, c.ndr),
            (call_id, ctx, Some(0), ndr)
        );
        assert_eq!(c.interface, Some(SyntaxId::KMS));
        assert_eq!(c.transfer_syntax, Some(ts));
        let req = c.request.as_ref().unwrap();
        assert_eq!(
            (req.frame, req.first_frame, req.frags, req.truncated),
            (req_frame, req_frame, 1, false)
        );
        assert_eq!(req.ts, ts_of(req_frame));
        let req_b = hex(req_hex);
        assert_eq!(req.stub, &req_b[24..]);
        assert_eq!(c.kms_request().unwrap().unwrap(), &req_b[req_at..]);
        let rh = response_half(c);
        assert_eq!((rh.frame, rh.frags), (resp_frame, 1));
        assert_eq!(c.reply_frame(), Some(resp_frame));
        let resp_b = hex(resp);
        assert_eq!(
            c.kms_reply().unwrap().unwrap(),
            KmsReply::Success {
                kms: &resp_b[resp_at..resp_at + 260],
                return_code: 0
            }
        );
    }
    f.close(CloseReason::ConnectionClosed, 16);
    assert_eq!(f.out.len(), 6, "nothing open at close");
}

fn run_capture(packets: &[captures::Packet], port_kms: bool) -> Feeder {
    let mut f = Feeder::new(port_kms);
    for p in packets {
        let dir = if p.to_server { C } else { S };
        let bytes = hex(p.hex);
        let buf = &mut f.bufs[dir.index()];
        buf.extend_from_slice(&bytes);
        let n = f
            .session
            .on_data(dir, buf, p.frame, kmsscope::time::Ts(p.ts), &mut f.out);
        buf.drain(..n);
    }
    f.close(CloseReason::ConnectionClosed, 99);
    f
}

#[test]
fn capture_s05_three_calls_alternating_contexts() {
    let f = run_capture(captures::S05, true);
    assert!(f.anomaly_kinds().is_empty(), "{:?}", f.anomaly_kinds());
    assert!(f.session.is_kms());
    let got: Vec<_> = f
        .calls()
        .iter()
        .map(|c| {
            (
                c.call_id,
                c.ctx_id,
                c.ndr,
                c.request.as_ref().unwrap().frame,
                c.reply_frame().unwrap(),
                c.kms_request().unwrap().unwrap().len(),
                match c.kms_reply().unwrap().unwrap() {
                    KmsReply::Success { kms, return_code } => (kms.len(), return_code),
                    KmsReply::Refused { .. } => panic!("refused"),
                },
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 0, TransferSyntax::Ndr32, 10, 11, 260, (260, 0)),
            (3, 1, TransferSyntax::Ndr64, 12, 13, 260, (260, 0)),
            (4, 1, TransferSyntax::Ndr64, 14, 15, 260, (260, 0)),
        ]
    );
    let acks: Vec<Vec<u16>> = f
        .out
        .iter()
        .filter_map(|e| match e {
            RpcEvent::BindAck { results, .. } => {
                Some(results.iter().map(|r| r.ack.result).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![vec![2, 0, 3], vec![0]]);
}

#[test]
fn capture_s04_ndr32_and_btfn_only() {
    let f = run_capture(captures::S04, true);
    assert!(f.anomaly_kinds().is_empty(), "{:?}", f.anomaly_kinds());
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].call_id, calls[0].ndr), (2, TransferSyntax::Ndr32));
    assert_eq!(calls[0].request.as_ref().unwrap().frame, 8);
    assert_eq!(calls[0].reply_frame(), Some(9));
    assert!(matches!(&f.out[1], RpcEvent::BindAck { results, .. }
        if results.iter().map(|r| r.ack.result).collect::<Vec<_>>() == vec![0, 3]));
}

#[test]
fn capture_s09_pykms_v4() {
    let f = run_capture(captures::S09_PYKMS, true);
    assert!(f.anomaly_kinds().is_empty(), "{:?}", f.anomaly_kinds());
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    let c = calls[0];
    assert_eq!(
        (c.ndr, c.request.as_ref().unwrap().frame, c.reply_frame()),
        (TransferSyntax::Ndr32, 20, Some(22))
    );
    assert_eq!(c.kms_request().unwrap().unwrap().len(), 252);
    assert!(
        matches!(c.kms_reply().unwrap().unwrap(), KmsReply::Success { kms, return_code: 0 } if kms.len() == 160)
    );
}

#[test]
fn gap_mid_pdu_then_resync() {
    let req1 = hex(vectors::TV6A_REQUEST);
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    f.feed(C, &req1[..100], 3);
    f.gap(C, 50, 4);
    f.feed(C, &req1[150..], 4);
    f.feed(S, &hex(vectors::TV6A_RESPONSE), 5);
    // The next call on the same connection, NDR32 context 0, call_id 3.
    let kms = &req1[32..];
    f.feed(C, &enc::kms_request(3, 0, kms, TransferSyntax::Ndr32), 6);
    f.feed(
        S,
        &enc::kms_response(3, 0, &[0, 0, 6, 0, 9, 9, 9], 0, TransferSyntax::Ndr32),
        7,
    );
    f.close(CloseReason::ConnectionClosed, 8);
    assert_eq!(
        f.anomaly_kinds(),
        vec![
            anomaly_kind::GAP,
            anomaly_kind::ORPHAN_RESPONSE,
            anomaly_kind::RESYNC
        ]
    );
    let RpcEvent::Anomaly { detail, frame, .. } = &f.out[2] else {
        panic!()
    };
    assert_eq!(*frame, 4);
    assert!(
        detail.contains("50 bytes lost in the client-to-server stream; 100 buffered bytes"),
        "{detail}"
    );
    let RpcEvent::Anomaly { detail, frame, .. } = &f.out[5] else {
        panic!("{:?}", f.out[5])
    };
    assert_eq!(*frame, 6);
    assert_eq!(
        detail,
        "resynchronised on a client-to-server header after skipping 142 bytes"
    );
    let calls = f.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].request.is_none());
    assert_eq!(
        (calls[0].call_id, calls[0].opnum, calls[0].ndr),
        (2, None, TransferSyntax::Ndr32)
    );
    assert!(calls[0].kms_reply().unwrap().is_ok());
    assert_eq!(calls[1].call_id, 3);
    assert_eq!(calls[1].kms_request().unwrap().unwrap(), kms);
    assert_eq!(calls[1].reply_frame(), Some(7));
}

#[test]
fn gap_in_reply_stream_reports_gap_reason() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::TV4_REQUEST), 1);
    let resp = hex(vectors::TV4_RESPONSE);
    f.feed(S, &resp[..50], 2);
    f.gap(S, 100, 3);
    f.feed(S, &resp[150..], 3);
    f.close(CloseReason::Timeout, 9);
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].reply, Reply::Missing(CloseReason::Gap));
    assert_eq!(calls[0].ndr, TransferSyntax::Unknown);
    assert!(calls[0].kms_request().unwrap().is_ok(), "layout inferred");
    assert!(f.session.is_kms(), "port 1688 + plausible KMS request");
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::GAP, anomaly_kind::RESYNC]
    );
    let RpcEvent::Anomaly { detail, .. } = &f.out[f.out.len() - 2] else {
        panic!()
    };
    assert_eq!(
        detail,
        "server-to-client stream ended while resynchronising, 50 bytes skipped"
    );
}

#[test]
fn capture_started_mid_pdu() {
    let mut f = Feeder::new(true);
    f.gap(C, 1000, 1);
    assert!(f.out.is_empty());
    let req = hex(vectors::TV5_REQUEST);
    let mut stream = hex(vectors::TV4_REQUEST)[200..].to_vec();
    stream.extend_from_slice(&req);
    f.feed(C, &stream, 2);
    f.feed(S, &hex(vectors::TV5_RESPONSE), 3);
    assert_eq!(f.session.state(), SessionState::DceRpc);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::RESYNC]);
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].kms_request().unwrap().unwrap(), &req[32..]);
    assert!(f.session.is_kms());
}

#[test]
fn lost_start_and_no_header_gives_up() {
    let mut f = Feeder::new(true);
    f.gap(C, 10, 1);
    let junk = vec![0x41u8; 70_000];
    for (i, chunk) in junk.chunks(1000).enumerate() {
        f.feed(C, chunk, 2 + i as u64);
    }
    assert_eq!(f.session.state(), SessionState::NotDceRpc);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::NOT_DCERPC]);
    assert!(f.bufs[0].is_empty());
}

#[test]
fn non_dcerpc_on_1688() {
    // A TLS ClientHello on port 1688.
    let mut f = Feeder::new(true);
    f.feed(
        C,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        1,
    );
    f.feed(S, &[0x16, 0x03, 0x03, 0x00, 0x5d], 2);
    f.feed(C, &hex(vectors::BIND_3CTX), 3);
    f.close(CloseReason::Reset, 4);
    assert_eq!(f.session.state(), SessionState::NotDceRpc);
    assert!(!f.session.is_kms());
    assert_eq!(f.out.len(), 1);
    let RpcEvent::Anomaly {
        kind,
        detail,
        dir,
        frame,
        ..
    } = &f.out[0]
    else {
        panic!()
    };
    assert_eq!(
        (*kind, *dir, *frame),
        (anomaly_kind::NOT_DCERPC, Some(C), 1)
    );
    assert_eq!(
        detail,
        "client-to-server stream does not start with a DCE/RPC header: 16"
    );
}

#[test]
fn response_without_request() {
    let mut f = Feeder::new(true);
    f.feed(S, &hex(vectors::TV6B_RESPONSE), 13);
    f.feed(S, &hex(vectors::FAULT_UNK_IF), 14);
    assert_eq!(f.session.state(), SessionState::DceRpc);
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::ORPHAN_RESPONSE, anomaly_kind::ORPHAN_RESPONSE]
    );
    let calls = f.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (
            calls[0].call_id,
            calls[0].ctx_id,
            calls[0].request.is_none()
        ),
        (3, 1, true)
    );
    assert_eq!(calls[0].reply_frame(), Some(13));
    assert!(
        matches!(calls[0].kms_reply().unwrap().unwrap(), KmsReply::Success { kms, .. } if kms.len() == 260)
    );
    assert!(matches!(
        calls[1].reply,
        Reply::Fault {
            status: 0x1c01_0003,
            frame: 14,
            ..
        }
    ));
    assert!(calls[1].kms_request().is_none());
}

#[test]
fn bind_nak() {
    let mut f = Feeder::new(false);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &enc::bind_nak(2, 4, &[(5, 0)]), 2);
    f.close(CloseReason::ConnectionClosed, 3);
    assert!(f.session.is_kms(), "bind names the KMS interface");
    assert_eq!(f.out.len(), 2);
    assert_eq!(
        f.out[1],
        RpcEvent::BindNak {
            frame: 2,
            ts: ts_of(2),
            call_id: 2,
            reason: 4,
            versions: vec![(5, 0)]
        }
    );
    assert_eq!(f.session.context(0), None);
}

#[test]
fn fragmented_request_and_response() {
    let req_b = hex(vectors::TV4_REQUEST);
    let stub = &req_b[24..];
    let resp_b = hex(vectors::TV4_RESPONSE);
    let rstub = &resp_b[24..];
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    let frags = enc::request(2, 0, 0, stub, Some(100));
    assert_eq!(frags.len(), 3);
    for (i, p) in frags.iter().enumerate() {
        f.feed(C, p, 10 + i as u64);
    }
    let rfrags = enc::response(2, 0, rstub, Some(90));
    assert_eq!(rfrags.len(), 2);
    f.feed(S, &rfrags.concat(), 20);
    assert!(f.anomaly_kinds().is_empty(), "{:?}", f.out);
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    let c = calls[0];
    let req = c.request.as_ref().unwrap();
    assert_eq!(
        (req.frags, req.first_frame, req.frame, req.alloc_hint),
        (3, 10, 12, 260)
    );
    assert_eq!(req.stub, stub);
    assert_eq!(c.kms_request().unwrap().unwrap(), &req_b[32..]);
    let rh = response_half(c);
    assert_eq!((rh.frags, rh.frame, rh.stub.as_slice()), (2, 20, rstub));
    assert!(c.kms_reply().unwrap().is_ok());
}

#[test]
fn fault_for_unknown_context() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    f.feed(
        C,
        &enc::kms_request(2, 7, &[0, 0, 4, 0, 1], TransferSyntax::Ndr32),
        3,
    );
    f.feed(S, &hex(vectors::FAULT_UNK_IF), 4);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::UNKNOWN_CONTEXT]);
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].ctx_id, calls[0].ndr, calls[0].interface),
        (7, TransferSyntax::Unknown, None)
    );
    assert_eq!(
        calls[0].reply,
        Reply::Fault {
            frame: 4,
            ts: ts_of(4),
            status: 0x1c01_0003,
            flags: PfcFlags(0x23)
        }
    );
    assert!(calls[0].kms_reply().is_none());
}

#[test]
fn refusal_and_wine_call_id() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    f.feed(C, &hex(vectors::TV4_REQUEST), 3);
    f.feed(S, &hex(vectors::REFUSAL_C004F042), 4);
    // Wine answers every call with call_id 1.
    f.feed(
        C,
        &enc::kms_request(3, 0, &[0, 0, 4, 0], TransferSyntax::Ndr32),
        5,
    );
    f.feed(
        S,
        &enc::kms_refusal(1, 0, 0x8007_000d, TransferSyntax::Ndr32),
        6,
    );
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::CALL_ID_MISMATCH]);
    let calls = f.calls();
    assert_eq!(
        calls[0].kms_reply().unwrap(),
        Ok(KmsReply::Refused {
            hresult: 0xc004_f042
        })
    );
    assert_eq!(calls[1].call_id, 3);
    assert_eq!(
        calls[1].kms_reply().unwrap(),
        Ok(KmsReply::Refused {
            hresult: 0x8007_000d
        })
    );
}

#[test]
fn unanswered_duplicate_and_orphaned_calls() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    let k = [0, 0, 4, 0];
    f.feed(C, &enc::kms_request(2, 0, &k, TransferSyntax::Ndr32), 3);
    f.feed(C, &enc::kms_request(2, 0, &k, TransferSyntax::Ndr32), 4);
    f.feed(C, &enc::kms_request(3, 0, &k, TransferSyntax::Ndr32), 5);
    f.feed(C, &enc::control(PacketType::ORPHANED, 3), 6);
    f.feed(C, &enc::kms_request(4, 0, &k, TransferSyntax::Ndr32), 7);
    f.feed(S, &enc::control(PacketType::SHUTDOWN, 0), 8);
    f.close(CloseReason::CaptureEnded, 9);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::DUPLICATE_CALL_ID]);
    let got: Vec<_> = f
        .calls()
        .iter()
        .map(|c| {
            (
                c.call_id,
                c.request.as_ref().unwrap().frame,
                c.reply.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 3, Reply::Missing(CloseReason::Superseded)),
            (3, 5, Reply::Missing(CloseReason::Orphaned)),
            (2, 4, Reply::Missing(CloseReason::CaptureEnded)),
            (4, 7, Reply::Missing(CloseReason::CaptureEnded)),
        ]
    );
    let controls: Vec<_> = f
        .out
        .iter()
        .filter_map(|e| match e {
            RpcEvent::Control { ptype, dir, .. } => Some((*ptype, *dir)),
            _ => None,
        })
        .collect();
    assert_eq!(
        controls,
        vec![(PacketType::ORPHANED, C), (PacketType::SHUTDOWN, S)]
    );
}

#[test]
fn bad_frag_length_midstream_resyncs() {
    let mut f = Feeder::new(true);
    let mut stream = hex(vectors::BIND_1CTX);
    stream.extend_from_slice(&[5, 0, 0, 3, 0x10, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0]);
    stream.extend_from_slice(&hex(vectors::TV4_REQUEST));
    f.feed(C, &stream, 1);
    f.feed(S, &hex(vectors::BIND_ACK_NDR32), 2);
    f.feed(S, &hex(vectors::TV4_RESPONSE), 3);
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::BAD_FRAG_LENGTH, anomaly_kind::RESYNC]
    );
    assert_eq!(f.calls().len(), 1);
    assert_eq!(f.calls()[0].ndr, TransferSyntax::Ndr32);
}

#[test]
fn unexpected_and_malformed_pdus() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    f.feed(C, &hex(vectors::TV4_RESPONSE), 2); // response sent by the client
    let mut bad_ack = hex(vectors::BIND_ACK_NDR32);
    bad_ack[24] = 200; // sec_addr length beyond the PDU
    f.feed(S, &bad_ack, 3);
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::UNEXPECTED_PDU, anomaly_kind::MALFORMED_PDU]
    );
    let RpcEvent::Anomaly { detail, .. } = &f.out[2] else {
        panic!()
    };
    assert_eq!(
        detail,
        "bind_ack PDU malformed: field `sec_addr` at PDU offset 26 does not fit in frag_length 60"
    );
}

#[test]
fn kms_detection() {
    // Port 1688, no bind: a plausible KMS request marks the connection.
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::TV6B_REQUEST), 1);
    assert!(f.session.is_kms());
    assert!(!f.session.bind_seen());
    // Another port, no bind: not KMS.
    let mut f = Feeder::new(false);
    f.feed(C, &hex(vectors::TV6B_REQUEST), 1);
    assert!(!f.session.is_kms());
    // Port 1688, a non-KMS opnum-0 stub: not KMS.
    let mut f = Feeder::new(true);
    f.feed(C, &enc::request(2, 0, 0, &[1, 2, 3, 4], None).concat(), 1);
    assert!(!f.session.is_kms());
    // Another port, bind naming the KMS interface: KMS.
    let mut f = Feeder::new(false);
    f.feed(C, &hex(vectors::BIND_3CTX), 1);
    assert!(f.session.is_kms());
    // Another interface bound on 1688: not KMS, even with a KMS-looking stub.
    let other = SyntaxId {
        uuid: kmsscope::guid::Guid::parse("12345778-1234-abcd-ef00-0123456789ac").unwrap(),
        version: 1,
    };
    let mut f = Feeder::new(true);
    f.feed(
        C,
        &enc::bind(2, &[enc::context(0, other, SyntaxId::NDR32)]),
        1,
    );
    f.feed(
        S,
        &enc::bind_ack(2, 1, Some("1688"), &[enc::accept(SyntaxId::NDR32)]),
        2,
    );
    f.feed(C, &hex(vectors::TV4_REQUEST), 3);
    assert!(!f.session.is_kms());
}

#[test]
fn limit_open_calls() {
    let mut f = Feeder::new(true);
    for id in 0..(MAX_OPEN_CALLS as u32 + 1) {
        f.feed(
            C,
            &enc::kms_request(id, 0, &[0, 0, 4, 0], TransferSyntax::Ndr32),
            1 + u64::from(id),
        );
    }
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::CALL_LIMIT]);
    assert_eq!(f.calls().len(), 1);
    assert_eq!(f.calls()[0].call_id, 0);
    assert_eq!(f.calls()[0].reply, Reply::Missing(CloseReason::Limit));
    assert_eq!(f.session.open_calls(), MAX_OPEN_CALLS);
    f.close(CloseReason::ConnectionClosed, 1000);
    assert_eq!(f.calls().len(), MAX_OPEN_CALLS + 1);
}

#[test]
fn limit_fragments_and_stub_bytes() {
    let mut f = Feeder::new(true);
    let stub = vec![0xabu8; 300];
    for p in enc::request(5, 0, 0, &stub, Some(1)) {
        f.feed(C, &p, 1);
    }
    let big = vec![0xcdu8; MAX_STUB_BYTES + 5000];
    for p in enc::request(6, 0, 0, &big, Some(5000)) {
        f.feed(C, &p, 2);
    }
    f.feed(S, &enc::response(5, 0, &[1, 2, 3], None).concat(), 3);
    f.close(CloseReason::ConnectionClosed, 4);
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::FRAGMENT_LIMIT, anomaly_kind::STUB_LIMIT]
    );
    let calls = f.calls();
    let r5 = calls[0].request.as_ref().unwrap();
    assert_eq!(
        (calls[0].call_id, r5.frags, r5.stub.len(), r5.truncated),
        (5, 300, MAX_FRAGMENTS as usize, true)
    );
    let r6 = calls[1].request.as_ref().unwrap();
    assert_eq!(
        (calls[1].call_id, r6.stub.len(), r6.truncated),
        (6, MAX_STUB_BYTES, true)
    );
    assert!(calls[1].kms_request().unwrap().is_err());
}

#[test]
fn limit_contexts_and_anomalies() {
    let mut f = Feeder::new(false);
    let n = MAX_CONTEXTS + 6;
    let ctxs: Vec<_> = (0..n as u16)
        .map(|i| enc::context(i, SyntaxId::KMS, SyntaxId::NDR32))
        .collect();
    f.feed(C, &enc::bind(2, &ctxs), 1);
    let acks = vec![enc::accept(SyntaxId::NDR32); n];
    f.feed(S, &enc::bind_ack(2, 1, None, &acks), 2);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::CONTEXT_LIMIT; 6]);
    assert_eq!(f.session.context(5), None);
    assert!(f.session.context(6).is_some());
    assert!(f.session.context(n as u16 - 1).is_some());

    // Flood: responses sent by the client are each unexpected.
    let junk = enc::response(1, 0, &[], None).concat();
    for i in 0..(MAX_ANOMALIES + 50) {
        f.feed(C, &junk, 3 + u64::from(i));
    }
    let kinds = f.anomaly_kinds();
    assert_eq!(kinds.len() as u32, MAX_ANOMALIES + 1);
    assert_eq!(kinds.last(), Some(&anomaly_kind::ANOMALY_LIMIT));
}

#[test]
fn truncated_pdu_at_close() {
    let mut f = Feeder::new(true);
    let req = hex(vectors::TV4_REQUEST);
    f.feed(C, &req[..200], 1);
    f.close(CloseReason::Reset, 2);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::TRUNCATED_PDU]);
    let RpcEvent::Anomaly { detail, .. } = &f.out[0] else {
        panic!()
    };
    assert_eq!(
        detail,
        "200 bytes of an incomplete client-to-server PDU when the connection ended (reset)"
    );
    // After close, nothing more.
    f.feed(C, &req, 3);
    assert_eq!(f.out.len(), 1);
}

#[test]
fn frag_length_above_negotiated() {
    let mut f = Feeder::new(true);
    f.feed(C, &hex(vectors::BIND_1CTX), 1);
    let ack = enc::bind_ack_with(
        PacketType::BIND_ACK,
        enc::FLAGS_BIND,
        2,
        1024,
        256,
        7,
        Some(b"1688"),
        &[],
        &[enc::accept(SyntaxId::NDR32)],
    );
    f.feed(S, &ack, 2);
    f.feed(C, &hex(vectors::TV4_REQUEST), 3); // 284 > 256
    assert_eq!(
        f.anomaly_kinds(),
        vec![anomaly_kind::FRAG_LENGTH_EXCEEDS_NEGOTIATED]
    );
}

/// Pipelined calls answered out of order (a call leaves the open-call list from its middle, by a
/// response, a fault and the end of the connection): the same calls with the same contents whether
/// each PDU arrives whole in one segment or byte by byte.
#[test]
fn calls_answered_out_of_order_whole_or_split() {
    let ctx = enc::context(0, SyntaxId::KMS, SyntaxId::NDR32);
    let mut pdus = vec![
        (C, enc::bind(1, std::slice::from_ref(&ctx))),
        (
            S,
            enc::bind_ack(1, 0x1234, Some("1688"), &[enc::accept(SyntaxId::NDR32)]),
        ),
    ];
    for id in 1..=4u32 {
        let stub = vec![id as u8; 40 + id as usize];
        pdus.push((C, enc::request(id, 0, 0, &stub, None).concat()));
    }
    pdus.push((S, enc::response(2, 0, &[0xB2; 24], None).concat()));
    pdus.push((S, enc::fault(3, 0, 0x1c01_0003)));
    // Call 1's reply in two fragments, so that it is reassembled while call 4 stays open.
    pdus.push((S, enc::response(1, 0, &[0xB1; 30], Some(16)).concat()));

    let run = |split: bool| {
        let mut f = Feeder::new(true);
        for (i, (dir, bytes)) in pdus.iter().enumerate() {
            let frame = i as u64 + 1;
            if split {
                for b in bytes {
                    f.feed(*dir, std::slice::from_ref(b), frame);
                }
            } else {
                f.feed(*dir, bytes, frame);
            }
        }
        assert_eq!(f.session.open_calls(), 1);
        f.close(CloseReason::ConnectionClosed, 99);
        assert_eq!(f.session.open_calls(), 0);
        f
    };
    let (whole, split) = (run(false), run(true));
    assert!(whole.anomaly_kinds().is_empty(), "{:?}", whole.out);
    let masked = |f: &Feeder| f.out.iter().map(feed::mask).collect::<Vec<_>>();
    assert_eq!(masked(&whole), masked(&split));

    let calls = whole.calls();
    let ids: Vec<u32> = calls.iter().map(|c| c.call_id).collect();
    assert_eq!(ids, [2, 3, 1, 4]);
    for c in &calls {
        let req = c.request.as_ref().expect("request seen");
        assert_eq!(req.stub, vec![c.call_id as u8; 40 + c.call_id as usize]);
        assert_eq!(c.interface, Some(SyntaxId::KMS));
        assert_eq!(c.ndr, TransferSyntax::Ndr32);
    }
    assert_eq!(response_half(calls[0]).stub, [0xB2; 24]);
    assert!(matches!(
        calls[1].reply,
        Reply::Fault {
            status: 0x1c01_0003,
            ..
        }
    ));
    let h = response_half(calls[2]);
    assert_eq!((h.stub.as_slice(), h.frags), (&[0xB1; 30][..], 2));
    assert_eq!(
        calls[3].reply,
        Reply::Missing(CloseReason::ConnectionClosed)
    );
}

/// The events of `conn` fed PDU by PDU, or byte by byte, to `session`.
fn feed_all(session: Session, conn: &[(Direction, Vec<u8>, u64)], byte_by_byte: bool) -> Feeder {
    let mut f = Feeder::new(true);
    f.session = session;
    for (dir, bytes, frame) in conn {
        if byte_by_byte {
            for b in bytes {
                f.feed(*dir, std::slice::from_ref(b), *frame);
            }
        } else {
            f.feed(*dir, bytes, *frame);
        }
    }
    f.close(CloseReason::ConnectionClosed, 99);
    f
}

#[test]
fn bind_events_off_leaves_out_only_the_binds() {
    let mut conn = tv6_connection();
    // A bind_ack with nothing pending, and a bind with more contexts than fit inline.
    conn.push((
        S,
        enc::bind_ack(7, 1, None, &[enc::accept(SyntaxId::NDR32)]),
        14,
    ));
    let many: Vec<_> = (0..5)
        .map(|i| enc::context(10 + i, SyntaxId::KMS, SyntaxId::NDR32))
        .collect();
    conn.push((C, enc::alter_context(8, &many), 15));
    let acks = [enc::accept(SyntaxId::NDR32); 5];
    conn.push((S, enc::alter_context_resp(8, 1, None, &[], &acks), 16));
    conn.push((C, hex(vectors::TV6B_REQUEST), 17));
    for byte_by_byte in [false, true] {
        let all = feed_all(Session::new(true), &conn, byte_by_byte);
        let quiet = feed_all(Session::new(true).bind_events(false), &conn, byte_by_byte);
        let expect: Vec<_> = all
            .out
            .iter()
            .filter(|e| !matches!(e, RpcEvent::Bind { .. }))
            .cloned()
            .collect();
        assert_eq!(quiet.out, expect);
        assert_eq!(all.out.len(), expect.len() + 3);
        assert_eq!(
            quiet.session.context(12),
            Some((SyntaxId::KMS, SyntaxId::NDR32, TransferSyntax::Ndr32))
        );
        // A reused session keeps the choice, and starts from nothing.
        let mut s = quiet.session;
        s.reset(true);
        assert_eq!(s.context(12), None);
        let again = feed_all(s, &conn, byte_by_byte);
        assert_eq!(again.out, quiet.out);
    }
}

#[test]
fn bind_ack_matches_the_last_wellformed_bind_only() {
    let mut f = Feeder::new(true);
    f.feed(C, &enc::bind(2, &enc::kms_contexts_3()), 1);
    // A malformed alter_context (its context list cut short) leaves the bind pending.
    let mut bad = enc::alter_context(3, &[enc::context(7, SyntaxId::KMS, SyntaxId::NDR32)]);
    bad.truncate(bad.len() - 4);
    let len = u16::try_from(bad.len()).unwrap();
    bad[8..10].copy_from_slice(&len.to_le_bytes());
    f.feed(C, &bad, 2);
    let results = [
        enc::reject(2),
        enc::accept(SyntaxId::NDR64),
        enc::negotiate_ack(3),
    ];
    f.feed(S, &enc::bind_ack(2, 1, Some("1688"), &results), 3);
    assert_eq!(f.anomaly_kinds(), vec![anomaly_kind::MALFORMED_PDU]);
    let ack = |e: &RpcEvent| match e {
        RpcEvent::BindAck { results, .. } => results
            .iter()
            .map(|r| (r.ctx_id, r.proposed.to_vec()))
            .collect::<Vec<_>>(),
        e => panic!("{e:?}"),
    };
    assert_eq!(
        ack(&f.out[2]),
        vec![
            (Some(0), vec![SyntaxId::NDR32]),
            (Some(1), vec![SyntaxId::NDR64]),
            (Some(2), vec![SyntaxId::BTFN_BOTH]),
        ]
    );
    assert_eq!(
        f.session.context(1),
        Some((SyntaxId::KMS, SyntaxId::NDR64, TransferSyntax::Ndr64))
    );
    // A second ack has nothing to match: the answered bind's list is not reused.
    f.feed(S, &enc::bind_ack(2, 1, None, &results), 4);
    assert_eq!(
        ack(&f.out[4]),
        vec![(None, vec![]), (None, vec![]), (None, vec![])]
    );
    assert_eq!(
        f.anomaly_kinds(),
        vec![
            anomaly_kind::MALFORMED_PDU,
            anomaly_kind::UNMATCHED_BIND_ACK
        ]
    );
    // After a bind_nak, an ack does not match the rejected bind either.
    f.feed(
        C,
        &enc::alter_context(5, &[enc::context(9, SyntaxId::KMS, SyntaxId::NDR32)]),
        5,
    );
    f.feed(S, &enc::bind_nak(5, 4, &[(5, 0)]), 6);
    f.feed(
        S,
        &enc::bind_ack(5, 1, None, &[enc::accept(SyntaxId::NDR32)]),
        7,
    );
    assert_eq!(ack(f.out.last().unwrap()), vec![(None, vec![])]);
    assert_eq!(f.session.context(9), None);
}
