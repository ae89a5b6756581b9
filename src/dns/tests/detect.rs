//! The non-standard-port heuristic: real DNS passes, random and bulk data does not.

use super::builder::*;
use crate::dns::message::{class, rtype};
use crate::dns::*;

/// Deterministic xorshift64* so the false-positive test is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[test]
fn random_payloads_are_not_dns() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = [0u8; 512];
    let mut hits = 0;
    for _ in 0..100_000 {
        rng.fill(&mut buf);
        hits += usize::from(looks_like_dns(&buf));
    }
    assert_eq!(hits, 0, "false positives on random 512-byte payloads");
}

#[test]
fn random_payloads_with_a_dns_like_header_are_rarely_dns() {
    // Harder case: a plausible header (query, one question, no records) over random bytes.
    let mut rng = Rng(42);
    let mut hits = 0;
    for i in 0..100_000usize {
        let mut buf = vec![0u8; 17 + i % 100];
        rng.fill(&mut buf);
        buf[2..12].copy_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        hits += usize::from(looks_like_dns(&buf));
    }
    assert!(hits < 10, "{hits} false positives");
}

#[test]
fn ntp_and_quic_payloads_are_not_dns() {
    // NTPv4 client request (RFC 5905): 48 bytes, LI 0 VN 4 mode 3.
    let mut ntp = [0u8; 48];
    ntp[0] = 0x23;
    ntp[40..48].copy_from_slice(&[0xEC, 0xD1, 0x2A, 0x10, 0x5B, 0x3C, 0x00, 0x00]);
    // NTPv4 server reply: stratum 2, poll 6, precision -23, root delay/dispersion, ref id.
    let mut ntp_reply = [0u8; 48];
    ntp_reply[..16].copy_from_slice(&[
        0x24, 0x02, 0x06, 0xE9, 0, 0, 0x01, 0x2C, 0, 0, 0x02, 0x10, 0xC0, 0xA8, 0x01, 0x01,
    ]);
    // QUIC v1 Initial (RFC 9000): long header, version 1, 8-byte DCID, padded to 1200 bytes.
    let mut quic = vec![0u8; 1200];
    quic[..6].copy_from_slice(&[0xC3, 0x00, 0x00, 0x00, 0x01, 0x08]);
    let mut rng = Rng(7);
    rng.fill(&mut quic[6..]);
    // QUIC short header (1-RTT): fixed bit set, random rest.
    let mut quic_short = vec![0u8; 80];
    rng.fill(&mut quic_short);
    quic_short[0] = 0x41;
    // All zeros and all ones.
    for p in [
        &ntp[..],
        &ntp_reply[..],
        &quic[..],
        &quic_short[..],
        &[0u8; 512][..],
        &[0xFFu8; 512][..],
    ] {
        assert!(!looks_like_dns(p));
    }
}

#[test]
fn real_shapes_pass() {
    let query = Msg::new(1, RD, [1, 0, 0, 1])
        .question("_VLMCS._TCP.corp.example", rtype::SRV, class::IN)
        .opt(1232, 0, false)
        .build();
    assert!(looks_like_dns(&query));
    let answer = Msg::new(1, QR | RD | RA, [1, 1, 0, 0])
        .question("_VLMCS._TCP.corp.example", rtype::SRV, class::IN)
        .ptr(12)
        .rr_tail(
            rtype::SRV,
            class::IN,
            600,
            &srv_rdata(0, 0, 1688, "kms1.corp.example"),
        )
        .build();
    assert!(looks_like_dns(&answer));
    let update = Msg::new(2, OP_UPDATE, [1, 0, 1, 0])
        .question("corp.example", rtype::SOA, class::IN)
        .rr(
            "_vlmcs._tcp.corp.example",
            rtype::SRV,
            class::IN,
            600,
            &srv_rdata(0, 0, 1688, "kms1.corp.example"),
        )
        .build();
    assert!(looks_like_dns(&update));

    // Trailing garbage, a bad opcode, a query with an RCODE, or no question: rejected.
    let mut trailing = query.clone();
    trailing.push(0);
    assert!(!looks_like_dns(&trailing));
    let mut iquery = query.clone();
    iquery[2] |= 1 << 3;
    assert!(!looks_like_dns(&iquery));
    let mut query_rcode = query.clone();
    query_rcode[3] |= 3;
    assert!(!looks_like_dns(&query_rcode));
    let no_question = Msg::new(0, QR, [0, 1, 0, 0])
        .rr("x.local", rtype::A, class::IN, 1, &[1, 2, 3, 4])
        .build();
    assert!(!looks_like_dns(&no_question));
}

#[test]
fn ports_and_tcp_start() {
    assert!(is_dns_port(53) && is_dns_port(5353));
    assert!(!is_dns_port(1688) && !is_dns_port(5355));
    let msg = Msg::new(1, RD, [1, 0, 0, 0])
        .question("kms1.corp.example", rtype::A, class::IN)
        .build();
    let mut stream = (msg.len() as u16).to_be_bytes().to_vec();
    stream.extend_from_slice(&msg);
    assert!(looks_like_dns_tcp(&stream));
    assert!(!looks_like_dns_tcp(&stream[..stream.len() - 1]));
    assert!(!looks_like_dns_tcp(&msg));
    assert!(!looks_like_dns_tcp(&[]));
}
