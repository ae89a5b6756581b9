//! Synthetic messages built byte by byte: UPDATE, error RCODEs, SOA, CNAME chains, case, odd
//! labels, compression loops, truncation, EDNS extended RCODE, undecodable RDATA.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::builder::*;
use crate::dns::message::{class, rtype};
use crate::dns::*;

fn ok(bytes: &[u8]) -> DnsMessage {
    parse_message(bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// RFC 2136 UPDATE as a KMS host sends it: zone `corp.example` SOA, prerequisite "name is not in
/// use" (class NONE, type ANY, RDLENGTH 0), update "add SRV 0 0 1688 kms1.corp.example".
fn kms_update(id: u16) -> Vec<u8> {
    Msg::new(id, OP_UPDATE, [1, 1, 1, 0])
        .question("corp.example", rtype::SOA, class::IN)
        .rr("_vlmcs._tcp.corp.example", rtype::ANY, class::NONE, 0, &[])
        .rr(
            "_vlmcs._tcp.corp.example",
            rtype::SRV,
            class::IN,
            900,
            &srv_rdata(0, 0, 1688, "kms1.corp.example"),
        )
        .build()
}

#[test]
fn update_adding_the_kms_srv_record() {
    let m = ok(&kms_update(0x1234));
    assert_eq!(m.id, 0x1234);
    assert!(!m.is_response);
    assert_eq!(m.opcode, Opcode::UPDATE);
    assert_eq!(m.opcode.name(), "UPDATE");
    let zone = m.zone().expect("zone");
    assert_eq!(
        (zone.name.as_str(), zone.qtype, zone.qclass),
        ("corp.example", 6, 1)
    );
    assert_eq!(
        m.prerequisites(),
        &[Record {
            name: "_vlmcs._tcp.corp.example".into(),
            rtype: rtype::ANY,
            class: class::NONE,
            ttl: 0,
            data: RecordData::Empty,
        }]
    );
    assert_eq!(
        m.updates(),
        &[Record {
            name: "_vlmcs._tcp.corp.example".into(),
            rtype: rtype::SRV,
            class: class::IN,
            ttl: 900,
            data: RecordData::Srv {
                priority: 0,
                weight: 0,
                port: 1688,
                target: "kms1.corp.example".into()
            },
        }]
    );
    assert!(m.issues.is_empty());
}

#[test]
fn update_responses_carry_their_rcode() {
    for (rcode, name) in [
        (0, "NOERROR"),
        (5, "REFUSED"),
        (6, "YXDOMAIN"),
        (8, "NXRRSET"),
        (9, "NOTAUTH"),
        (10, "NOTZONE"),
    ] {
        // A response echoes the zone section and leaves the others empty (RFC 2136 section 3.8).
        let bytes = Msg::new(7, QR | OP_UPDATE | rcode, [1, 0, 0, 0])
            .question("corp.example", rtype::SOA, class::IN)
            .build();
        let m = ok(&bytes);
        assert!(m.is_response);
        assert_eq!(m.opcode, Opcode::UPDATE);
        assert_eq!(m.rcode, rcode);
        assert_eq!(m.rcode_name(), name);
    }
}

#[test]
fn update_with_compressed_mixed_case_owner_and_delete_rrset() {
    // Zone name at offset 12; owners `_VLMCS._TCP` + pointer to it.
    let bytes = Msg::new(9, OP_UPDATE, [1, 0, 2, 0])
        .question("Corp.Example", rtype::SOA, class::IN)
        .label(b"_VLMCS")
        .label(b"_TCP")
        .ptr(12)
        .rr_tail(rtype::SRV, class::ANY, 0, &[]) // delete the whole SRV RRset
        .label(b"_VLMCS")
        .label(b"_TCP")
        .ptr(12)
        .rr_tail(
            rtype::SRV,
            class::IN,
            600,
            &srv_rdata(10, 50, 1688, "KMS2.Corp.Example"),
        )
        .build();
    let m = ok(&bytes);
    let u = m.updates();
    assert_eq!(u.len(), 2);
    assert_eq!(u[0].name, "_VLMCS._TCP.Corp.Example");
    assert_eq!(
        (u[0].class, u[0].data.clone()),
        (class::ANY, RecordData::Empty)
    );
    assert_eq!(u[1].name, "_VLMCS._TCP.Corp.Example");
    assert_eq!(
        u[1].data,
        RecordData::Srv {
            priority: 10,
            weight: 50,
            port: 1688,
            target: "KMS2.Corp.Example".into()
        }
    );
}

#[test]
fn servfail() {
    let m = ok(&Msg::new(1, QR | RD | RA | 2, [1, 0, 0, 0])
        .question("_VLMCS._TCP.corp.example", rtype::SRV, class::IN)
        .build());
    assert_eq!(m.rcode, 2);
    assert_eq!(m.rcode_name(), "SERVFAIL");
    assert!(m.answers.is_empty());
}

#[test]
fn nxdomain_with_soa_in_authority() {
    let bytes = Msg::new(2, QR | AA | RD | RA | 3, [1, 0, 1, 0])
        .question("_VLMCS._TCP.other.example", rtype::SRV, class::IN)
        .rr(
            "other.example",
            rtype::SOA,
            class::IN,
            3600,
            &soa_rdata(
                "ns1.other.example",
                "hostmaster.other.example",
                [2026112301, 900, 600, 86400, 0xFFFF_FFF0],
            ),
        )
        .build();
    let m = ok(&bytes);
    assert_eq!(m.rcode_name(), "NXDOMAIN");
    assert!(m.authoritative);
    assert_eq!(
        m.authority,
        vec![Record {
            name: "other.example".into(),
            rtype: rtype::SOA,
            class: class::IN,
            ttl: 3600,
            data: RecordData::Soa {
                mname: "ns1.other.example".into(),
                rname: "hostmaster.other.example".into(),
                serial: 2026112301,
                refresh: 900,
                retry: 600,
                expire: 86400,
                minimum: 0xFFFF_FFF0,
            },
        }]
    );
}

#[test]
fn cname_chain_then_address() {
    let bytes = Msg::new(3, QR | RD | RA, [1, 4, 0, 0])
        .question("kms.corp.example", rtype::A, class::IN)
        .rr(
            "kms.corp.example",
            rtype::CNAME,
            class::IN,
            60,
            &enc_name("alias1.corp.example"),
        )
        .rr(
            "alias1.corp.example",
            rtype::CNAME,
            class::IN,
            60,
            &enc_name("Alias2.Corp.Example"),
        )
        .rr(
            "Alias2.Corp.Example",
            rtype::A,
            class::IN,
            60,
            &[10, 77, 0, 10],
        )
        .rr(
            "Alias2.Corp.Example",
            rtype::AAAA,
            class::IN,
            60,
            &Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x10).octets(),
        )
        .build();
    let m = ok(&bytes);
    let data: Vec<_> = m.answers.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        vec![
            RecordData::Cname("alias1.corp.example".into()),
            RecordData::Cname("Alias2.Corp.Example".into()),
            RecordData::A(Ipv4Addr::new(10, 77, 0, 10)),
            RecordData::Aaaa("fd77::10".parse().expect("v6")),
        ]
    );
}

#[test]
fn mixed_case_names_are_kept_exactly() {
    let bytes = Msg::new(4, RD, [1, 0, 0, 0])
        .question("_VLMCS._TCP.Corp.Example", rtype::SRV, class::IN)
        .build();
    let m = ok(&bytes);
    assert_eq!(m.questions[0].name, "_VLMCS._TCP.Corp.Example");
    // Compressed answer pointing at the question keeps the question's case.
    let bytes = Msg::new(4, QR | RD | RA, [1, 1, 0, 0])
        .question("_VLMCS._TCP.Corp.Example", rtype::SRV, class::IN)
        .ptr(12)
        .rr_tail(
            rtype::SRV,
            class::IN,
            600,
            &srv_rdata(0, 0, 1688, "KMS1.corp.example"),
        )
        .build();
    let m = ok(&bytes);
    assert_eq!(m.answers[0].name, "_VLMCS._TCP.Corp.Example");
}

#[test]
fn odd_label_bytes_are_escaped_reversibly() {
    let bytes = Msg::new(5, 0, [1, 0, 0, 0])
        .label(b"a.b")
        .label(b"back\\slash")
        .label(b"ctl\x1b[31m")
        .label(b"bad\xff\xfeutf8")
        .label("Büro".as_bytes())
        .raw(&[0])
        .u16(rtype::A)
        .u16(class::IN)
        .build();
    let m = ok(&bytes);
    assert_eq!(
        m.questions[0].name,
        "a\\.b.back\\\\slash.ctl\x1b[31m.bad\\255\\254utf8.Büro"
    );
}

#[test]
fn root_name_is_a_dot() {
    let m = ok(&Msg::new(6, RD, [1, 0, 0, 0])
        .question(".", rtype::NS, class::IN)
        .build());
    assert_eq!(m.questions[0].name, ".");
    let m = ok(&Msg::new(6, QR, [1, 1, 0, 0])
        .question("_vlmcs._tcp.x", rtype::SRV, class::IN)
        .rr(
            "_vlmcs._tcp.x",
            rtype::SRV,
            class::IN,
            0,
            &srv_rdata(0, 0, 0, "."),
        )
        .build());
    // RFC 2782: target "." means the service is decidedly not available.
    assert!(matches!(&m.answers[0].data, RecordData::Srv { target, .. } if target == "."));
}

#[test]
fn compression_loops_are_errors_not_hangs() {
    // Question name is a pointer to itself (offset 12).
    let self_loop = Msg::new(7, 0, [1, 0, 0, 0]).ptr(12).u16(1).u16(1).build();
    // Answer owner points forward to a pointer that points back at it.
    let mutual = Msg::new(7, QR, [1, 1, 0, 0])
        .question("a.example", 1, 1) // offset 12..27
        .ptr(29) // offset 27: -> 29
        .ptr(27) // offset 29: -> 27
        .rr_tail(1, 1, 0, &[1, 2, 3, 4])
        .build();
    // A pointer into the header.
    let into_header = Msg::new(0xC00C, 0, [1, 0, 0, 0])
        .ptr(0)
        .u16(1)
        .u16(1)
        .build();
    for bytes in [self_loop, mutual, into_header] {
        let err = parse_message(&bytes).expect_err("loop must fail");
        assert_eq!(err.kind(), "dns_malformed", "{err}");
        assert!(!looks_like_dns(&bytes));
    }
}

#[test]
fn truncated_message_errors_at_every_cut() {
    let full = Msg::new(8, QR | AA, [1, 2, 1, 1])
        .question("_vlmcs._tcp.corp.example", rtype::SRV, class::IN)
        .rr(
            "_vlmcs._tcp.corp.example",
            rtype::SRV,
            class::IN,
            0,
            &srv_rdata(0, 100, 1688, "kms1.corp.example"),
        )
        .rr(
            "_vlmcs._tcp.corp.example",
            rtype::SRV,
            class::IN,
            0,
            &srv_rdata(1, 0, 1688, "kms2.corp.example"),
        )
        .rr(
            "corp.example",
            rtype::NS,
            class::IN,
            0,
            &enc_name("ns.corp.example"),
        )
        .rr(
            "kms1.corp.example",
            rtype::A,
            class::IN,
            0,
            &[10, 77, 0, 10],
        )
        .build();
    assert_eq!(ok(&full).answers.len(), 2);
    for cut in 0..full.len() {
        let err = parse_message(&full[..cut]).expect_err("truncated");
        let kind = err.kind();
        assert!(
            matches!(
                kind,
                "dns_too_short" | "dns_counts_exceed_length" | "dns_malformed"
            ),
            "cut {cut}: {err}"
        );
        if cut < 12 {
            assert_eq!(err, DnsError::TooShort { len: cut });
        }
    }
    let err = parse_message(&full[..100]).expect_err("cut in a record");
    assert!(err.to_string().starts_with("DNS id 8: malformed "), "{err}");
}

#[test]
fn truncation_bit_and_empty_answer() {
    let m = ok(&Msg::new(9, QR | TC | RD | RA, [1, 0, 0, 0])
        .question("big.corp.example", rtype::TXT, class::IN)
        .build());
    assert!(m.truncated);
    assert!(m.answers.is_empty());
}

#[test]
fn extended_rcode_from_edns() {
    // BADVERS = 16: header RCODE 0, OPT extended RCODE 1.
    let m = ok(&Msg::new(10, QR, [1, 0, 0, 1])
        .question("corp.example", rtype::SOA, class::IN)
        .opt(1232, 1, true)
        .build());
    assert_eq!(m.rcode, 16);
    assert_eq!(m.rcode_name(), "BADVERS");
    assert_eq!(
        m.edns,
        Some(Edns {
            udp_payload_size: 1232,
            extended_rcode: 1,
            version: 0,
            dnssec_ok: true
        })
    );
    assert!(m.additional.is_empty());
}

#[test]
fn duplicate_or_misplaced_opt_is_kept_and_noted() {
    let m = ok(&Msg::new(11, QR, [1, 1, 0, 2])
        .question("corp.example", rtype::A, class::IN)
        .opt(512, 0, false)
        .opt(4096, 0, false)
        .opt(1232, 0, false)
        .build());
    assert_eq!(m.edns.map(|e| e.udp_payload_size), Some(4096));
    assert!(matches!(
        m.answers[0].data,
        RecordData::Opt(Edns {
            udp_payload_size: 512,
            ..
        })
    ));
    assert!(matches!(
        m.additional[0].data,
        RecordData::Opt(Edns {
            udp_payload_size: 1232,
            ..
        })
    ));
    assert_eq!(m.issues.len(), 2, "{:?}", m.issues);
}

#[test]
fn undecodable_rdata_is_kept_and_the_rest_parses() {
    let m = ok(&Msg::new(12, QR, [1, 2, 0, 0])
        .question("kms1.corp.example", rtype::A, class::IN)
        .rr("kms1.corp.example", rtype::A, class::IN, 0, &[10, 77, 0]) // 3-byte A
        .rr(
            "kms1.corp.example",
            rtype::A,
            class::IN,
            0,
            &[10, 77, 0, 10],
        )
        .build());
    assert_eq!(m.answers[0].data, RecordData::Malformed(vec![10, 77, 0]));
    assert_eq!(
        m.answers[1].data,
        RecordData::A(Ipv4Addr::new(10, 77, 0, 10))
    );
    assert_eq!(m.issues.len(), 1);
    assert!(
        m.issues[0].contains("answer entry 0 (A kms1.corp.example)"),
        "{}",
        m.issues[0]
    );

    // SRV whose target name runs past RDLENGTH.
    let mut rdata = srv_rdata(0, 0, 1688, "kms1.corp.example");
    rdata.truncate(10);
    let m = ok(&Msg::new(13, QR, [1, 1, 0, 0])
        .question("_vlmcs._tcp.corp.example", rtype::SRV, class::IN)
        .rr("_vlmcs._tcp.corp.example", rtype::SRV, class::IN, 0, &rdata)
        .raw(&[0; 16])
        .build());
    assert!(matches!(m.answers[0].data, RecordData::Malformed(_)));
    assert!(
        m.issues.iter().any(|i| i.contains("trailing")),
        "{:?}",
        m.issues
    );
}

#[test]
fn rdlength_past_the_end_is_an_error() {
    let mut bytes = Msg::new(14, QR, [1, 1, 0, 0])
        .question("a.example", rtype::A, class::IN)
        .rr("a.example", rtype::A, class::IN, 0, &[1, 2, 3, 4])
        .build();
    let n = bytes.len();
    bytes[n - 5] = 200; // RDLENGTH low byte
    let err = parse_message(&bytes).expect_err("rdlength");
    match &err {
        DnsError::Malformed {
            id,
            section,
            index,
            reason,
            ..
        } => {
            assert_eq!((*id, *section, *index), (14, Section::Answer, 0));
            assert!(reason.contains("RDLENGTH 200"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_record_types() {
    let mut txt = vec![5];
    txt.extend_from_slice(b"hello");
    txt.push(3);
    txt.extend_from_slice(b"a\x00b");
    let mut mx = 10u16.to_be_bytes().to_vec();
    mx.extend_from_slice(&enc_name("mail.corp.example"));
    let m = ok(&Msg::new(15, QR, [1, 6, 0, 0])
        .question("corp.example", rtype::ANY, class::IN)
        .rr("corp.example", rtype::TXT, class::IN, 1, &txt)
        .rr("corp.example", rtype::MX, class::IN, 2, &mx)
        .rr(
            "corp.example",
            rtype::NS,
            class::IN,
            3,
            &enc_name("ns1.corp.example"),
        )
        .rr(
            "10.0.77.10.in-addr.arpa",
            rtype::PTR,
            class::IN,
            4,
            &enc_name("kms1.corp.example"),
        )
        .rr("corp.example", 13, class::IN, 5, &[1, b'x', 1, b'y']) // HINFO: kept raw
        .rr("corp.example", 65280, class::IN, 6, &[0xde, 0xad]) // private use
        .build());
    let data: Vec<_> = m
        .answers
        .iter()
        .map(|r| (qtype_name(r.rtype), r.data.clone()))
        .collect();
    assert_eq!(
        data,
        vec![
            (
                "TXT".into(),
                RecordData::Txt(vec![b"hello".to_vec(), b"a\x00b".to_vec()])
            ),
            (
                "MX".into(),
                RecordData::Mx {
                    preference: 10,
                    exchange: "mail.corp.example".into()
                }
            ),
            ("NS".into(), RecordData::Ns("ns1.corp.example".into())),
            ("PTR".into(), RecordData::Ptr("kms1.corp.example".into())),
            ("HINFO".into(), RecordData::Other(vec![1, b'x', 1, b'y'])),
            ("TYPE65280".into(), RecordData::Other(vec![0xde, 0xad])),
        ]
    );
}

#[test]
fn empty_rdata_outside_update_is_accepted() {
    // hickory's Message::from_vec rejects this; a passive parser keeps it.
    let m = ok(&Msg::new(16, QR, [1, 1, 0, 0])
        .question("x.example", 10, class::IN)
        .rr("x.example", 10, class::IN, 0, &[])
        .build());
    assert_eq!(m.answers[0].data, RecordData::Empty);
}

#[test]
fn mdns_announcement_without_question() {
    // Unsolicited mDNS response: no question, cache-flush bit in the class.
    let m = ok(&Msg::new(0, QR | AA, [0, 1, 0, 0])
        .rr("printer.local", rtype::A, 0x8001, 120, &[192, 168, 1, 20])
        .build());
    assert!(m.question().is_none());
    assert_eq!(m.answers[0].class, 0x8001);
    assert_eq!(
        m.answers[0].data,
        RecordData::A(Ipv4Addr::new(192, 168, 1, 20))
    );
}

#[test]
fn counts_beyond_length_fail_fast() {
    let bytes = Msg::new(17, 0, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF])
        .raw(&[0; 20])
        .build();
    assert_eq!(
        parse_message(&bytes),
        Err(DnsError::CountsExceedLength {
            id: 17,
            questions: 0xFFFF,
            records: 3 * 0xFFFF,
            len: 32
        })
    );
    assert!(parse_message(&vec![0; MAX_MESSAGE_LEN + 1]).is_err());
}

#[test]
fn header_only_parse() {
    let h = parse_header(&kms_update(0xBEEF)).expect("header");
    assert_eq!(
        (h.id, h.opcode(), h.is_response(), h.rcode_low()),
        (0xBEEF, Opcode::UPDATE, false, 0)
    );
    assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 1, 1, 0));
    assert!(parse_header(&[0; 11]).is_none());
}

#[test]
fn names_of_codes() {
    assert_eq!(rcode_name(0), "NOERROR");
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(rcode_name(9), "NOTAUTH");
    assert_eq!(rcode_name(23), "BADCOOKIE");
    assert_eq!(rcode_name(12), "RCODE12");
    assert_eq!(rcode_name(4095), "RCODE4095");
    assert_eq!(qtype_name(33), "SRV");
    assert_eq!(qtype_name(28), "AAAA");
    assert_eq!(qtype_name(6), "SOA");
    assert_eq!(qtype_name(255), "ANY");
    assert_eq!(qtype_name(65), "HTTPS");
    assert_eq!(qtype_name(1234), "TYPE1234");
    assert_eq!(Opcode(0).name(), "QUERY");
    assert_eq!(Opcode(1).name(), "IQUERY");
    assert_eq!(Opcode(2).name(), "STATUS");
    assert_eq!(Opcode(4).name(), "NOTIFY");
    assert_eq!(Opcode(5).to_string(), "UPDATE");
    assert_eq!(Opcode(9).name(), "unknown_9");
    assert_eq!(class_name(1), "IN");
    assert_eq!(class_name(254), "NONE");
    assert_eq!(class_name(0x8001), "CLASS32769");
}

#[test]
fn error_kinds_and_text() {
    assert_eq!(DnsError::TooShort { len: 3 }.kind(), "dns_too_short");
    assert_eq!(
        DnsError::TooShort { len: 3 }.to_string(),
        "3 bytes is shorter than the 12-byte DNS header"
    );
    assert_eq!(DnsError::TooLong { len: 70_000 }.kind(), "dns_too_long");
}
