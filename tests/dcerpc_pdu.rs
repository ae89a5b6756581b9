//! kms-protocol.md 7.1–7.5 PDUs through the framing, body and stub parsers, every field asserted;
//! and the test encoder reproducing them byte for byte.

#[path = "common/dcerpc_encoder.rs"]
mod enc;
#[path = "common/dcerpc_vectors.rs"]
mod vectors;

use kmsscope::dcerpc::*;
use kmsscope::guid::Guid;
use vectors::hex;

fn frame(bytes: &[u8]) -> RawPdu<'_> {
    let (rest, pdu) = parse_pdu_raw(bytes).expect("framed");
    assert!(rest.is_empty(), "one PDU exactly");
    assert_eq!(pdu.bytes, bytes);
    pdu
}

fn check_header(h: &Header, ptype: PacketType, flags: u8, frag_length: u16, call_id: u32) {
    assert_eq!(h.version, 5);
    assert_eq!(h.version_minor, 0);
    assert_eq!(h.ptype, ptype);
    assert_eq!(h.flags, PfcFlags(flags));
    assert_eq!(h.drep, DataRep::LITTLE_ENDIAN);
    assert!(h.drep.is_little_endian());
    assert_eq!(h.frag_length, frag_length);
    assert_eq!(h.auth_length, 0);
    assert_eq!(h.call_id, call_id);
}

fn kms_ctx(ctx_id: u16, ts: SyntaxId) -> ContextElem {
    ContextElem {
        ctx_id,
        abstract_syntax: SyntaxId::KMS,
        transfer_syntaxes: [ts].into(),
    }
}

#[test]
fn v71a_bind_three_contexts() {
    let b = hex(vectors::BIND_3CTX);
    let pdu = frame(&b);
    check_header(&pdu.header, PacketType::BIND, 0x13, 160, 2);
    assert!(pdu.header.flags.first_frag() && pdu.header.flags.last_frag());
    assert!(pdu.header.flags.contains(PfcFlags::CONC_MPX));
    let bind = parse_bind(&pdu).unwrap();
    assert_eq!(bind.max_xmit_frag, 5840);
    assert_eq!(bind.max_recv_frag, 5840);
    assert_eq!(bind.assoc_group, 0);
    let btfn = SyntaxId {
        uuid: Guid::parse("6cb71c2c-9812-4540-0300-000000000000").unwrap(),
        version: 1,
    };
    assert_eq!(
        bind.contexts[..],
        vec![
            kms_ctx(0, SyntaxId::NDR32),
            kms_ctx(1, SyntaxId::NDR64),
            kms_ctx(2, btfn)
        ]
    );
    let kms = bind.contexts[0].abstract_syntax;
    assert_eq!(
        kms.uuid,
        Guid::parse("51c82175-844e-4750-b0d8-ec255555bc06").unwrap()
    );
    assert_eq!((kms.major(), kms.minor()), (1, 0));
    assert!(kms.is_kms());
    assert_eq!(SyntaxId::NDR32.major(), 2);
    assert_eq!(btfn, SyntaxId::BTFN_BOTH);
    assert!(btfn.is_btfn());
    assert_eq!(btfn.btfn_features(), Some(0x0003));
    assert_eq!(TransferSyntax::from_syntax(&btfn), TransferSyntax::Unknown);
    assert_eq!(
        TransferSyntax::from_syntax(&SyntaxId::NDR64),
        TransferSyntax::Ndr64
    );
}

#[test]
fn v71b_bind_ack_ndr64_host() {
    let b = hex(vectors::BIND_ACK_NDR64);
    let pdu = frame(&b);
    check_header(&pdu.header, PacketType::BIND_ACK, 0x13, 108, 2);
    let ack = parse_bind_ack(&pdu).unwrap();
    assert_eq!(ack.max_xmit_frag, 5840);
    assert_eq!(ack.max_recv_frag, 5840);
    assert_eq!(ack.assoc_group, 0xf5a8_17d7);
    assert_eq!(ack.sec_addr, b"1699\0");
    assert_eq!(ack.sec_addr_text(), "1699");
    assert_eq!(
        ack.results[..],
        vec![
            AckResult {
                result: 2,
                reason: 2,
                transfer_syntax: SyntaxId::NULL
            },
            AckResult {
                result: 0,
                reason: 0,
                transfer_syntax: SyntaxId::NDR64
            },
            AckResult {
                result: 3,
                reason: 3,
                transfer_syntax: SyntaxId::NULL
            },
        ]
    );
    assert_eq!(ack.results[0].result_name(), "provider_rejection");
    assert_eq!(
        ack.results[0].reason_name(),
        Some("proposed_transfer_syntaxes_not_supported")
    );
    assert!(ack.results[1].accepted());
    assert_eq!(ack.results[2].result_name(), "negotiate_ack");
    assert_eq!(ack.results[2].reason_name(), None);
}

#[test]
fn v71c_alter_context_and_v71e_single_bind() {
    for (v, ptype) in [
        (vectors::ALTER_CONTEXT_NDR32, PacketType::ALTER_CONTEXT),
        (vectors::BIND_1CTX, PacketType::BIND),
    ] {
        let b = hex(v);
        let pdu = frame(&b);
        check_header(&pdu.header, ptype, 0x13, 72, 2);
        let bind = parse_bind(&pdu).unwrap();
        assert_eq!(
            bind,
            Bind {
                max_xmit_frag: 5840,
                max_recv_frag: 5840,
                assoc_group: 0,
                contexts: [kms_ctx(0, SyntaxId::NDR32)].into_iter().collect(),
            }
        );
    }
}

#[test]
fn v71d_alter_context_resp_empty_sec_addr_garbage_pad() {
    let b = hex(vectors::ALTER_CONTEXT_RESP);
    assert_eq!(&b[26..28], &[0x31, 0x36], "the undefined pad bytes");
    let pdu = frame(&b);
    check_header(&pdu.header, PacketType::ALTER_CONTEXT_RESP, 0x03, 56, 2);
    let ack = parse_bind_ack(&pdu).unwrap();
    assert_eq!(ack.max_xmit_frag, 5840);
    assert_eq!(ack.max_recv_frag, 5840);
    assert_eq!(ack.assoc_group, 0xf5a8_17d7);
    assert_eq!(ack.sec_addr, b"");
    assert_eq!(ack.sec_addr_text(), "");
    assert_eq!(
        ack.results[..],
        vec![AckResult {
            result: 0,
            reason: 0,
            transfer_syntax: SyntaxId::NDR32
        }]
    );
}

#[test]
fn v71f_bind_ack_ndr32_host() {
    let b = hex(vectors::BIND_ACK_NDR32);
    let pdu = frame(&b);
    check_header(&pdu.header, PacketType::BIND_ACK, 0x13, 60, 2);
    let ack = parse_bind_ack(&pdu).unwrap();
    assert_eq!((ack.max_xmit_frag, ack.max_recv_frag), (5840, 5840));
    assert_eq!(ack.assoc_group, 0xbb2d_9bdc);
    assert_eq!(ack.sec_addr_text(), "1699");
    assert_eq!(
        ack.results[..],
        vec![AckResult {
            result: 0,
            reason: 0,
            transfer_syntax: SyntaxId::NDR32
        }]
    );
}

#[test]
fn v71gh_refusals() {
    for (v, hresult) in [
        (vectors::REFUSAL_8007000D, 0x8007_000d_u32),
        (vectors::REFUSAL_C004F042, 0xc004_f042),
    ] {
        let b = hex(v);
        let pdu = frame(&b);
        check_header(&pdu.header, PacketType::RESPONSE, 0x03, 36, 2);
        let r = parse_response(&pdu).unwrap();
        assert_eq!(r.alloc_hint, 12);
        assert_eq!(r.ctx_id, 0);
        assert_eq!(r.cancel_count, 0);
        assert_eq!(r.stub.len(), 12);
        assert!(r.auth.is_empty());
        for ndr in [TransferSyntax::Ndr32, TransferSyntax::Unknown] {
            assert_eq!(
                parse_kms_response_stub(r.stub, ndr),
                Ok(KmsReply::Refused { hresult })
            );
        }
        assert_eq!(detect_response_ndr(r.stub), TransferSyntax::Ndr32);
    }
}

#[test]
fn v71i_fault_with_garbage() {
    let b = hex(vectors::FAULT_UNK_IF);
    let pdu = frame(&b);
    check_header(&pdu.header, PacketType::FAULT, 0x23, 32, 2);
    assert!(pdu.header.flags.contains(PfcFlags::DID_NOT_EXECUTE));
    let f = parse_fault(&pdu).unwrap();
    assert_eq!(
        f,
        Fault {
            alloc_hint: 0x20,
            ctx_id: 0,
            cancel_count: 0x2d,
            status: 0x1c01_0003
        }
    );
    assert_eq!(fault_status_name(f.status), Some("nca_unk_if"));
}

struct Tv {
    name: &'static str,
    request: &'static str,
    response: &'static str,
    call_id: u32,
    ctx_id: u16,
    ndr: TransferSyntax,
    req_len: usize,
    resp_len: usize,
    req_kms_at: usize,
    resp_kms_at: usize,
    major: u8,
}

const TVS: [Tv; 4] = [
    Tv {
        name: "TV-4",
        request: vectors::TV4_REQUEST,
        response: vectors::TV4_RESPONSE,
        call_id: 2,
        ctx_id: 0,
        ndr: TransferSyntax::Ndr32,
        req_len: 252,
        resp_len: 160,
        req_kms_at: 32,
        resp_kms_at: 36,
        major: 4,
    },
    Tv {
        name: "TV-5",
        request: vectors::TV5_REQUEST,
        response: vectors::TV5_RESPONSE,
        call_id: 2,
        ctx_id: 0,
        ndr: TransferSyntax::Ndr32,
        req_len: 260,
        resp_len: 228,
        req_kms_at: 32,
        resp_kms_at: 36,
        major: 5,
    },
    Tv {
        name: "TV-6a",
        request: vectors::TV6A_REQUEST,
        response: vectors::TV6A_RESPONSE,
        call_id: 2,
        ctx_id: 0,
        ndr: TransferSyntax::Ndr32,
        req_len: 260,
        resp_len: 260,
        req_kms_at: 32,
        resp_kms_at: 36,
        major: 6,
    },
    Tv {
        name: "TV-6b",
        request: vectors::TV6B_REQUEST,
        response: vectors::TV6B_RESPONSE,
        call_id: 3,
        ctx_id: 1,
        ndr: TransferSyntax::Ndr64,
        req_len: 260,
        resp_len: 260,
        req_kms_at: 40,
        resp_kms_at: 48,
        major: 6,
    },
];

#[test]
fn tv_request_response_stubs() {
    for tv in &TVS {
        let req_b = hex(tv.request);
        let pdu = frame(&req_b);
        let stub_len = tv.req_kms_at - 24 + tv.req_len;
        check_header(
            &pdu.header,
            PacketType::REQUEST,
            0x03,
            (24 + stub_len) as u16,
            tv.call_id,
        );
        let r = parse_request(&pdu).unwrap();
        assert_eq!(r.alloc_hint as usize, stub_len, "{}", tv.name);
        assert_eq!((r.ctx_id, r.opnum, r.object), (tv.ctx_id, 0, None));
        let kms = parse_kms_request_stub(r.stub, tv.ndr).unwrap();
        assert_eq!(kms.len(), tv.req_len, "{}", tv.name);
        assert_eq!(kms, &req_b[tv.req_kms_at..]);
        assert_eq!(&kms[..4], &[0, 0, tv.major, 0]);
        assert_eq!(
            parse_kms_request_stub(r.stub, TransferSyntax::Unknown),
            Ok(kms)
        );
        assert_eq!(detect_request_ndr(r.stub), tv.ndr);
        assert!(is_plausible_kms_request(r.stub, tv.ndr));
        let other = if tv.ndr == TransferSyntax::Ndr32 {
            TransferSyntax::Ndr64
        } else {
            TransferSyntax::Ndr32
        };
        assert!(parse_kms_request_stub(r.stub, other).is_err());

        let resp_b = hex(tv.response);
        let pdu = frame(&resp_b);
        let resp_stub_len = tv.resp_kms_at - 24 + tv.resp_len + 4;
        check_header(
            &pdu.header,
            PacketType::RESPONSE,
            0x03,
            (24 + resp_stub_len) as u16,
            tv.call_id,
        );
        let r = parse_response(&pdu).unwrap();
        assert_eq!(r.alloc_hint as usize, resp_stub_len, "{}", tv.name);
        assert_eq!((r.ctx_id, r.cancel_count), (tv.ctx_id, 0));
        let want = KmsReply::Success {
            kms: &resp_b[tv.resp_kms_at..tv.resp_kms_at + tv.resp_len],
            return_code: 0,
        };
        assert_eq!(
            parse_kms_response_stub(r.stub, tv.ndr),
            Ok(want),
            "{}",
            tv.name
        );
        assert_eq!(
            parse_kms_response_stub(r.stub, TransferSyntax::Unknown),
            Ok(want)
        );
        assert_eq!(detect_response_ndr(r.stub), tv.ndr);
        match want {
            KmsReply::Success { kms, .. } => {
                assert_eq!(kms.len(), tv.resp_len);
                assert_eq!(&kms[..4], &[0, 0, tv.major, 0]);
            }
            KmsReply::Refused { .. } => unreachable!(),
        }
    }
}

#[test]
fn encoder_reproduces_section_7() {
    let c3 = enc::kms_contexts_3();
    let c1 = [enc::context(0, SyntaxId::KMS, SyntaxId::NDR32)];
    assert_eq!(enc::bind(2, &c3), hex(vectors::BIND_3CTX));
    assert_eq!(
        enc::bind_ack(
            2,
            0xf5a8_17d7,
            Some("1699"),
            &[
                enc::reject(2),
                enc::accept(SyntaxId::NDR64),
                enc::negotiate_ack(3)
            ]
        ),
        hex(vectors::BIND_ACK_NDR64)
    );
    assert_eq!(
        enc::alter_context(2, &c1),
        hex(vectors::ALTER_CONTEXT_NDR32)
    );
    assert_eq!(
        enc::alter_context_resp(
            2,
            0xf5a8_17d7,
            None,
            &[0x31, 0x36],
            &[enc::accept(SyntaxId::NDR32)]
        ),
        hex(vectors::ALTER_CONTEXT_RESP)
    );
    assert_eq!(enc::bind(2, &c1), hex(vectors::BIND_1CTX));
    assert_eq!(
        enc::bind_ack(
            2,
            0xbb2d_9bdc,
            Some("1699"),
            &[enc::accept(SyntaxId::NDR32)]
        ),
        hex(vectors::BIND_ACK_NDR32)
    );
    assert_eq!(
        enc::kms_refusal(2, 0, 0x8007_000d, TransferSyntax::Ndr32),
        hex(vectors::REFUSAL_8007000D)
    );
    assert_eq!(
        enc::kms_refusal(2, 0, 0xc004_f042, TransferSyntax::Ndr32),
        hex(vectors::REFUSAL_C004F042)
    );
    assert_eq!(
        enc::fault_with(enc::FLAGS_FAULT, 2, 0x20, 0, 0x2d, 0xbb, 0x1c01_0003),
        hex(vectors::FAULT_UNK_IF)
    );
    for tv in &TVS {
        let req = hex(tv.request);
        let resp = hex(tv.response);
        let kms_req = &req[tv.req_kms_at..];
        let kms_resp = &resp[tv.resp_kms_at..tv.resp_kms_at + tv.resp_len];
        assert_eq!(
            enc::kms_request(tv.call_id, tv.ctx_id, kms_req, tv.ndr),
            req,
            "{} request",
            tv.name
        );
        assert_eq!(
            enc::kms_response(tv.call_id, tv.ctx_id, kms_resp, 0, tv.ndr),
            resp,
            "{} response",
            tv.name
        );
    }
}

#[test]
fn encoder_round_trips_other_pdus() {
    let nak = enc::bind_nak(5, 4, &[(5, 0), (5, 1)]);
    let pdu = frame(&nak);
    assert_eq!(pdu.header.ptype, PacketType::BIND_NAK);
    let n = parse_bind_nak(&pdu).unwrap();
    assert_eq!(n.reason, 4);
    assert_eq!(n.reason_name(), Some("protocol_version_not_supported"));
    assert_eq!(n.versions, vec![(5, 0), (5, 1)]);

    // NDR64 refusal is 20 bytes.
    let r = enc::kms_refusal(9, 1, 0xc004_f06c, TransferSyntax::Ndr64);
    let pdu = frame(&r);
    let resp = parse_response(&pdu).unwrap();
    assert_eq!(resp.stub.len(), 20);
    assert_eq!(
        parse_kms_response_stub(resp.stub, TransferSyntax::Unknown),
        Ok(KmsReply::Refused {
            hresult: 0xc004_f06c
        })
    );

    // Three request fragments: flags, alloc_hint = remaining bytes.
    let stub: Vec<u8> = (0..=255u8).chain(0..4).collect();
    let frags = enc::request(7, 0, 0, &stub, Some(100));
    assert_eq!(frags.len(), 3);
    let mut joined = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        let pdu = frame(f);
        let flags = pdu.header.flags;
        assert_eq!(flags.first_frag(), i == 0);
        assert_eq!(flags.last_frag(), i == 2);
        let r = parse_request(&pdu).unwrap();
        assert_eq!(r.alloc_hint as usize, 260 - 100 * i);
        joined.extend_from_slice(r.stub);
    }
    assert_eq!(joined, stub);
}

#[test]
fn truncated_bodies_are_errors_not_panics() {
    // Cut the bind of 7.1 (a) at every length and patch frag_length: parse_bind must fail cleanly.
    let b = hex(vectors::BIND_3CTX);
    for len in 16..b.len() {
        let mut t = b[..len].to_vec();
        t[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        let pdu = frame(&t);
        let e = parse_bind(&pdu).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bind PDU malformed: field `"), "{msg}");
    }
    let mut t = hex(vectors::BIND_ACK_NDR64);
    t.truncate(40);
    t[8] = 40;
    let e = parse_bind_ack(&frame(&t)).unwrap_err();
    assert_eq!(
        e,
        PduError::Malformed {
            ptype: PacketType::BIND_ACK,
            field: "p_result",
            offset: 36,
            frag_length: 40
        }
    );
}
