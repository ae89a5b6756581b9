//! The hand-written parser against the hickory-proto reference: [`parse_message`] (fast path with
//! fallback) must equal [`parse_message_hickory`] on every input, message or error, and the fast
//! path itself must take the common messages (else the speed-up silently disappears).

use proptest::prelude::*;

use super::builder::*;
use super::capture_data::{S11_PACKETS, S12_PACKETS, S14_PACKETS};
use crate::dns::fast;
use crate::dns::message::{class, rtype};
use crate::dns::*;

fn same(payload: &[u8]) {
    assert_eq!(
        parse_message(payload),
        parse_message_hickory(payload),
        "{payload:02x?}"
    );
    if let Some(m) = fast::parse(payload) {
        assert_eq!(Ok(m), parse_message_hickory(payload), "{payload:02x?}");
    }
}

/// Every DNS payload of the shared captures, plus each one cut at every length and with each byte
/// flipped (a cheap exhaustive fuzz around real messages).
#[test]
fn capture_payloads_and_their_mutations_agree() {
    let mut fast_taken = 0;
    let all: Vec<&[u8]> = [S11_PACKETS, S12_PACKETS, S14_PACKETS]
        .iter()
        .flat_map(|c| c.iter().map(|p| p.payload))
        .collect();
    for p in &all {
        same(p);
        fast_taken += usize::from(fast::parse(p).is_some());
        for cut in 0..p.len() {
            same(&p[..cut]);
        }
        let mut m = p.to_vec();
        for i in 0..m.len() {
            for x in [0x01, 0x20, 0x80, 0xC0, 0xFF] {
                m[i] ^= x;
                same(&m);
                m[i] ^= x;
            }
        }
    }
    // The captures hold ASCII names and common types only: all of them take the fast path.
    assert_eq!(fast_taken, all.len());
}

fn answer_with(rt: u16, rdata: &[u8]) -> Vec<u8> {
    Msg::new(7, QR | AA, [1, 1, 0, 1])
        .question("_VLMCS._TCP.Corp.Example", rtype::SRV, class::IN)
        .ptr(12)
        .rr_tail(rt, class::IN, 300, rdata)
        .opt(1232, 0, true)
        .build()
}

#[test]
fn synthetic_records_agree() {
    let mut cases = vec![
        answer_with(rtype::SRV, &srv_rdata(0, 100, 1688, "kms.corp.example")),
        answer_with(rtype::A, &[10, 0, 0, 1]),
        answer_with(rtype::A, &[10, 0, 0, 1, 9]),
        answer_with(
            rtype::AAAA,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        answer_with(rtype::CNAME, &enc_name("alias.example")),
        answer_with(rtype::PTR, &enc_name("host.example")),
        answer_with(rtype::NS, &[0xC0, 12]),
        answer_with(rtype::MX, &[0, 10, 4, b'm', b'a', b'i', b'l', 0xC0, 12]),
        answer_with(
            rtype::SOA,
            &soa_rdata("ns.example", "admin.example", [1, 2, 3, 4, 5]),
        ),
        answer_with(rtype::TXT, b"\x05hello\x05world"),
        answer_with(rtype::TXT, b"\x09short"),
        answer_with(99, b"opaque"),
        answer_with(rtype::CNAME, b"\x03abc\x00extra"),
        answer_with(rtype::CNAME, b"\x03a.c\x02\\x\x00"),
        answer_with(rtype::CNAME, b"\x03caf\xc3\xa9\x00"),
        answer_with(rtype::CNAME, b"\x02\xff\xfe\x00"),
        answer_with(rtype::SRV, &[0, 1]),
        // Pointer forward, to itself, and a loop.
        answer_with(rtype::CNAME, &[0xC0, 60]),
        Msg::new(1, 0, [1, 0, 0, 0]).ptr(12).u16(1).u16(1).build(),
        Msg::new(1, 0, [2, 0, 0, 0])
            .name("a")
            .u16(1)
            .u16(1)
            .label(b"b")
            .ptr(19)
            .u16(1)
            .u16(1)
            .build(),
        // Trailing bytes, misplaced and second OPT records, extended RCODE, an UPDATE.
        Msg::new(2, QR, [1, 0, 0, 0])
            .question("x.example", 1, 1)
            .raw(&[1, 2, 3])
            .build(),
        Msg::new(3, QR, [0, 1, 0, 2])
            .opt(512, 0, false)
            .opt(4096, 1, true)
            .opt(4096, 1, true)
            .build(),
        Msg::new(4, OP_UPDATE, [1, 0, 2, 0])
            .question("corp.example", rtype::SOA, class::IN)
            .rr("_vlmcs._tcp.corp.example", rtype::SRV, class::ANY, 0, &[])
            .rr(
                "_vlmcs._tcp.corp.example",
                rtype::SRV,
                class::IN,
                900,
                &srv_rdata(0, 0, 1688, "kms1.corp.example"),
            )
            .build(),
        Msg::new(5, 0, [1, 0, 0, 0]).question(".", 2, 1).build(),
    ];
    // Long names around the 255-byte limit.
    for n in 60..70 {
        let name = vec!["abc"; n].join(".");
        cases.push(Msg::new(6, 0, [1, 0, 0, 0]).question(&name, 1, 1).build());
    }
    let label63 = "x".repeat(63);
    cases.push(
        Msg::new(6, 0, [1, 0, 0, 0])
            .label(label63.as_bytes())
            .label(&[b'y'; 64])
            .raw(&[0])
            .u16(1)
            .u16(1)
            .build(),
    );
    for c in &cases {
        same(c);
        for cut in 0..c.len() {
            same(&c[..cut]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_agree(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        same(&data);
    }

    /// Random bodies after a plausible header, with pointers sprinkled in, reach deep into both
    /// name decoders.
    #[test]
    fn dns_shaped_garbage_agrees(
        flags in any::<u16>(),
        counts in proptest::array::uniform4(0u16..4),
        body in proptest::collection::vec(prop_oneof![
            4 => 0u8..64,
            2 => 0x20u8..0x7f,
            1 => any::<u8>(),
            1 => Just(0xC0u8),
        ], 0..200),
    ) {
        same(&Msg::new(0x4242, flags, counts).raw(&body).build());
    }

    /// Well-formed answers with random names, types and RDATA.
    #[test]
    fn well_formed_answers_agree(
        labels in proptest::collection::vec("[A-Za-z0-9_.\\\\-]{1,12}", 1..5),
        rt in prop_oneof![Just(1u16), Just(2), Just(5), Just(6), Just(12), Just(15), Just(16), Just(28), Just(33), any::<u16>()],
        rdata in proptest::collection::vec(any::<u8>(), 0..40),
        compress in any::<bool>(),
    ) {
        let mut m = Msg::new(9, QR, [1, 1, 0, 0]);
        for l in &labels {
            m = m.label(l.as_bytes());
        }
        m = m.raw(&[0]).u16(rt).u16(1);
        m = if compress { m.ptr(12) } else { m.name("other.example") };
        same(&m.rr_tail(rt, 1, 60, &rdata).build());
    }
}
