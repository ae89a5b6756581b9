//! Decoding: link types, VLANs, IPv4/IPv6 (extension headers), fragments, truncation.

#[path = "common/capture_builders.rs"]
mod common;

use std::net::IpAddr;

use common::*;
use kmsscope::capture::{LinkType, RawPacket};
use kmsscope::decode::{
    DecodeAnomaly, Decoded, Decoder, FRAG_TIMEOUT_NS, MAX_FRAG_DATAGRAMS, Transport,
};
use kmsscope::time::Ts;

/// Owned summary of a decoded packet.
#[derive(Debug, PartialEq, Eq)]
struct Out {
    src: String,
    dst: String,
    kind: String,
    ports: (u16, u16),
    payload: Vec<u8>,
    truncated: bool,
}

fn own(d: &Decoded<'_>) -> Out {
    let (kind, ports, payload) = match d.transport {
        Transport::Tcp(t) => (
            "tcp".to_string(),
            (t.src_port, t.dst_port),
            t.payload.to_vec(),
        ),
        Transport::Udp(u) => (
            "udp".to_string(),
            (u.src_port, u.dst_port),
            u.payload.to_vec(),
        ),
        Transport::Other { protocol } => (format!("proto {protocol}"), (0, 0), Vec::new()),
    };
    Out {
        src: d.src.to_string(),
        dst: d.dst.to_string(),
        kind,
        ports,
        payload,
        truncated: d.truncated,
    }
}

fn pkt(link: u32, data: &[u8], orig_len: u32, ts: i64) -> RawPacket<'_> {
    RawPacket {
        frame: 1,
        ts: Ts(ts),
        link: LinkType(link),
        data,
        orig_len,
    }
}

fn decode_with(dec: &mut Decoder, link: u32, data: &[u8]) -> Result<Option<Out>, DecodeAnomaly> {
    dec.decode(&pkt(link, data, data.len() as u32, 0))
        .map(|o| o.map(|d| own(&d)))
}

fn decode(link: u32, data: &[u8]) -> Result<Option<Out>, DecodeAnomaly> {
    decode_with(&mut Decoder::new(), link, data)
}

fn udp_out(src: &str, dst: &str, ports: (u16, u16), payload: &[u8]) -> Out {
    Out {
        src: src.into(),
        dst: dst.into(),
        kind: "udp".into(),
        ports,
        payload: payload.to_vec(),
        truncated: false,
    }
}

#[test]
fn ethernet_ipv4_tcp_fields() {
    let seg = tcp(
        49731,
        1688,
        0x0102_0304,
        0xa0b0_c0d0,
        0x02 | 0x10 | 0x08 | 0x01,
        512,
        b"rpc!",
    );
    let f = eth(0x0800, &ipv4(A4, B4, 6, 9, (false, 0), &seg));
    let mut dec = Decoder::new();
    let p = pkt(1, &f, f.len() as u32, 5);
    let d = dec.decode(&p).unwrap().unwrap();
    assert_eq!(d.src, IpAddr::from(A4));
    assert_eq!(d.dst, IpAddr::from(B4));
    assert!(!d.truncated);
    let Transport::Tcp(t) = d.transport else {
        panic!("{d:?}")
    };
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack, t.window),
        (49731, 1688, 0x0102_0304, 0xa0b0_c0d0, 512)
    );
    assert_eq!(
        (t.syn, t.ack_flag, t.psh, t.fin, t.rst),
        (true, true, true, true, false)
    );
    assert_eq!(t.payload, b"rpc!");
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = eth(
        0x0800,
        &ipv4(A4, B4, 17, 1, (false, 0), &udp(53, 1000, b"x")),
    );
    f.resize(60, 0xee);
    assert_eq!(
        decode(1, &f).unwrap().unwrap(),
        udp_out("10.77.0.20", "10.77.0.10", (53, 1000), b"x")
    );
}

#[test]
fn vlan_and_qinq_tags() {
    let v6 = ipv6(A6, B6, 17, &udp(5353, 53, b"q"));
    let want = udp_out("fd77::20", "fd77::10", (5353, 53), b"q");
    for tags in [
        vec![(0x8100, 100)],
        vec![(0x88a8, 10), (0x8100, 20)],
        vec![(0x9100, 1), (0x8100, 2)],
        vec![(0x88a8, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)],
    ] {
        let f = eth_vlan(&tags, 0x86dd, &v6);
        assert_eq!(decode(1, &f).unwrap().unwrap(), want, "{tags:?}");
    }
    let f = eth_vlan(&[(0x8100, 1); 5], 0x86dd, &v6);
    let a = decode(1, &f).unwrap_err();
    assert_eq!((a.layer, a.kind), ("link", "too_many_vlan_tags"));
    let f = eth_vlan(&[(0x8100, 1)], 0x86dd, &v6);
    let a = decode(1, &f[..16]).unwrap_err();
    assert_eq!((a.layer, a.kind), ("link", "truncated_packet"));
    assert_eq!(a.detail, "VLAN tag cut: 2 of 4 bytes captured");
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"sll"));
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let want = udp_out("10.77.0.20", "10.77.0.10", (1, 2), b"sll");
    assert_eq!(decode(113, &sll).unwrap().unwrap(), want);
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    assert_eq!(decode(276, &sll2).unwrap().unwrap(), want);
    // Not IP (netlink-ish protocol 0x0010).
    let mut other = sll2.clone();
    other[0..2].copy_from_slice(&[0x00, 0x10]);
    assert_eq!(decode(276, &other).unwrap(), None);
    let a = decode(276, &sll2[..19]).unwrap_err();
    assert_eq!(
        a.detail,
        "Linux cooked (SLL2) header cut: 19 of 20 bytes captured"
    );
}

#[test]
fn raw_ip_link_types() {
    let v4 = ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"r4"));
    let v6 = ipv6(A6, B6, 17, &udp(3, 4, b"r6"));
    for lt in [101, 12, 14] {
        assert_eq!(decode(lt, &v4).unwrap().unwrap().payload, b"r4");
        assert_eq!(decode(lt, &v6).unwrap().unwrap().payload, b"r6");
    }
    assert_eq!(decode(228, &v4).unwrap().unwrap().payload, b"r4");
    assert_eq!(decode(229, &v6).unwrap().unwrap().payload, b"r6");
    let a = decode(228, &v6).unwrap_err();
    assert_eq!((a.layer, a.kind), ("ip", "bad_ip_header"));
    let mut v5 = v4.clone();
    v5[0] = 0x55;
    let a = decode(101, &v5).unwrap_err();
    assert_eq!(
        (a.kind, a.detail.as_str()),
        ("bad_ip_header", "raw IP packet with IP version 5")
    );
}

#[test]
fn bsd_null_and_loop_in_both_byte_orders() {
    let v4 = ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"n4"));
    let v6 = ipv6(A6, B6, 17, &udp(3, 4, b"n6"));
    for lt in [0, 108] {
        for fam in [2u32, 23, 24, 28, 30] {
            for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
                let mut f = bytes.to_vec();
                f.extend_from_slice(if fam == 2 { &v4 } else { &v6 });
                let want: &[u8] = if fam == 2 { b"n4" } else { b"n6" };
                assert_eq!(decode(lt, &f).unwrap().unwrap().payload, want, "{lt} {fam}");
            }
        }
        let mut f = 99u32.to_le_bytes().to_vec();
        f.extend_from_slice(&v4);
        assert_eq!(decode(lt, &f).unwrap(), None);
    }
}

#[test]
fn unknown_link_type_and_non_ip_frames() {
    let a = decode(147, &[1, 2, 3]).unwrap_err();
    assert_eq!(
        a,
        DecodeAnomaly {
            layer: "link",
            kind: "unknown_link_type",
            detail: "link type 147 is not supported; packets on it are not decoded".into()
        }
    );
    assert_eq!(decode(1, &eth(0x0806, &[0; 28])).unwrap(), None); // ARP
    assert_eq!(decode(1, &eth(0x88cc, &[0; 40])).unwrap(), None); // LLDP
    let a = decode(1, &[0; 10]).unwrap_err();
    assert_eq!((a.layer, a.kind), ("link", "truncated_packet"));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let seg = tcp(40000, 1688, 1, 2, 0x18, 100, b"payload");
    // hop-by-hop (8) -> routing (16) -> destination options (8) -> TCP
    let mut exts = vec![43, 0, 1, 4, 0, 0, 0, 0];
    exts.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    exts.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    exts.extend_from_slice(&seg);
    let f = eth(0x86dd, &ipv6(A6, B6, 0, &exts));
    let o = decode(1, &f).unwrap().unwrap();
    assert_eq!(
        (o.kind.as_str(), o.ports, o.payload.as_slice()),
        ("tcp", (40000, 1688), &b"payload"[..])
    );
    // Authentication header (length field 4 -> 24 bytes) then UDP.
    let mut ah = vec![17, 4, 0, 0];
    ah.extend_from_slice(&[0; 20]);
    ah.extend_from_slice(&udp(9, 10, b"ah"));
    assert_eq!(
        decode(229, &ipv6(A6, B6, 51, &ah))
            .unwrap()
            .unwrap()
            .payload,
        b"ah"
    );
    // Hop-by-hop not first.
    let mut bad = vec![0, 0, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
    let a = decode(229, &ipv6(A6, B6, 60, &bad)).unwrap_err();
    assert_eq!((a.layer, a.kind), ("ip", "bad_ipv6_extension"));
    // Extension header cut.
    let a = decode(229, &ipv6(A6, B6, 60, &[6, 2, 0, 0])).unwrap_err();
    assert_eq!((a.layer, a.kind), ("ip", "truncated_packet"));
    // No next header / ESP: reported by number.
    assert_eq!(
        decode(229, &ipv6(A6, B6, 59, &[])).unwrap().unwrap().kind,
        "proto 59"
    );
    assert_eq!(
        decode(229, &ipv6(A6, B6, 50, &[1; 16]))
            .unwrap()
            .unwrap()
            .kind,
        "proto 50"
    );
}

#[test]
fn ipv4_options_and_authentication_header() {
    let mut h = ipv4(A4, B4, 51, 1, (false, 0), &[]);
    h[0] = 0x46; // IHL 6: one option word
    let mut body = vec![1, 1, 1, 0]; // NOPs + EOL
    let mut ah = vec![6, 4, 0, 0];
    ah.extend_from_slice(&[0; 20]);
    ah.extend_from_slice(&tcp(1, 2, 3, 4, 0x10, 5, b"ah4"));
    body.extend_from_slice(&ah);
    let total = (20 + body.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&body);
    let o = decode(101, &h).unwrap().unwrap();
    assert_eq!(
        (o.kind.as_str(), o.payload.as_slice()),
        ("tcp", &b"ah4"[..])
    );
}

/// A 3000-byte UDP datagram (header + payload) split into IPv4 fragments of 1480 bytes.
fn v4_fragments(id: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
    let payload: Vec<u8> = (0..2992u32).map(|i| (i % 251) as u8).collect();
    let dgram = udp(1688, 50000, &payload);
    let mut frags = Vec::new();
    let mut off = 0;
    while off < dgram.len() {
        let end = (off + 1480).min(dgram.len());
        let more = end < dgram.len();
        frags.push(eth(
            0x0800,
            &ipv4(A4, B4, 17, id, (more, off as u16), &dgram[off..end]),
        ));
        off = end;
    }
    (payload, frags)
}

#[test]
fn ipv4_fragments_out_of_order_are_reassembled() {
    let (payload, frags) = v4_fragments(0x4242);
    assert_eq!(frags.len(), 3);
    let mut dec = Decoder::new();
    assert_eq!(decode_with(&mut dec, 1, &frags[2]).unwrap(), None);
    assert_eq!(decode_with(&mut dec, 1, &frags[0]).unwrap(), None);
    // An identical duplicate is absorbed without complaint.
    assert_eq!(decode_with(&mut dec, 1, &frags[0]).unwrap(), None);
    let o = decode_with(&mut dec, 1, &frags[1]).unwrap().unwrap();
    assert_eq!(
        o,
        udp_out("10.77.0.20", "10.77.0.10", (1688, 50000), &payload)
    );
    assert_eq!(dec.take_anomalies().count(), 0);
    // The decoder is reusable: same id again, reversed order.
    for f in frags.iter().skip(1).rev() {
        assert_eq!(decode_with(&mut dec, 1, f).unwrap(), None);
    }
    assert_eq!(
        decode_with(&mut dec, 1, &frags[0])
            .unwrap()
            .unwrap()
            .payload,
        payload
    );
    dec.finish();
    assert_eq!(dec.take_anomalies().count(), 0);
}

/// IPv6 fragments of a datagram whose fragmentable part is dest-options + UDP.
fn v6_fragments() -> (Vec<u8>, Vec<Vec<u8>>) {
    let payload: Vec<u8> = (0..1500u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut part = vec![17, 0, 1, 4, 0, 0, 0, 0]; // destination options, 8 bytes
    part.extend_from_slice(&udp(546, 547, &payload));
    let mut frags = Vec::new();
    let mut off = 0;
    while off < part.len() {
        let end = (off + 800).min(part.len());
        let more = end < part.len();
        let field = ((off / 8) as u16) << 3 | u16::from(more);
        let mut fh = vec![60, 0];
        fh.extend_from_slice(&field.to_be_bytes());
        fh.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        fh.extend_from_slice(&part[off..end]);
        frags.push(ipv6(A6, B6, 44, &fh));
        off = end;
    }
    (payload, frags)
}

#[test]
fn ipv6_fragments_are_reassembled() {
    let (payload, frags) = v6_fragments();
    assert_eq!(frags.len(), 2);
    let mut dec = Decoder::new();
    assert_eq!(decode_with(&mut dec, 229, &frags[1]).unwrap(), None);
    let o = decode_with(&mut dec, 229, &frags[0]).unwrap().unwrap();
    assert_eq!(o, udp_out("fd77::20", "fd77::10", (546, 547), &payload));
    // Atomic fragment (offset 0, no more): not fragmented at all.
    let mut fh = vec![17, 0, 0, 0, 0, 0, 0, 1];
    fh.extend_from_slice(&udp(1, 2, b"atomic"));
    assert_eq!(
        decode_with(&mut dec, 229, &ipv6(A6, B6, 44, &fh))
            .unwrap()
            .unwrap()
            .payload,
        b"atomic"
    );
}

#[test]
fn conflicting_overlap_timeout_incomplete_and_limits_are_reported() {
    // Overlap with different data: first copy kept, anomaly queued.
    let (payload, frags) = v4_fragments(1);
    let mut dec = Decoder::new();
    let mut evil = frags[1].clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    decode_with(&mut dec, 1, &frags[1]).unwrap();
    decode_with(&mut dec, 1, &evil).unwrap();
    decode_with(&mut dec, 1, &frags[2]).unwrap();
    let o = decode_with(&mut dec, 1, &frags[0]).unwrap().unwrap();
    assert_eq!(o.payload, payload);
    let a: Vec<DecodeAnomaly> = dec.take_anomalies().collect();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].layer, a[0].kind), ("ip", "ip_fragment_overlap"));

    // Timeout in packet time.
    let mut dec = Decoder::new();
    assert!(
        dec.decode(&pkt(1, &frags[0], frags[0].len() as u32, 0))
            .unwrap()
            .is_none()
    );
    let other = eth(0x0806, &[0; 28]);
    dec.decode(&pkt(1, &other, 42, FRAG_TIMEOUT_NS + 1))
        .unwrap();
    let a: Vec<DecodeAnomaly> = dec.take_anomalies().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "ip_fragment_timeout");
    assert_eq!(
        a[0].detail,
        "datagram incomplete after 30 s: IPv4 10.77.0.20 -> 10.77.0.10 id 0x1 proto 17: about \
         1480 of ? bytes received; discarded"
    );

    // Incomplete at the end of the source.
    let mut dec = Decoder::new();
    decode_with(&mut dec, 1, &frags[2]).unwrap();
    dec.finish();
    let a: Vec<DecodeAnomaly> = dec.take_anomalies().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "ip_fragment_incomplete");

    // Datagram limit: the oldest is dropped.
    let mut dec = Decoder::new();
    for id in 0..=MAX_FRAG_DATAGRAMS as u16 {
        let (_, f) = v4_fragments(id);
        dec.decode(&pkt(1, &f[0], f[0].len() as u32, i64::from(id)))
            .unwrap();
    }
    let a: Vec<DecodeAnomaly> = dec.take_anomalies().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "reassembly_limit");
    assert!(a[0].detail.contains("id 0x0 "), "{}", a[0].detail);

    // Invalid: fragment ending beyond 65535 bytes.
    let f = eth(0x0800, &ipv4(A4, B4, 17, 9, (true, 65528), &[0; 16]));
    let a = decode(1, &f).unwrap_err();
    assert_eq!((a.layer, a.kind), ("ip", "ip_fragment"));
    // A fragment cut by the snap length cannot be reassembled.
    let mut dec = Decoder::new();
    let cut = &frags[0][..200];
    let a = dec
        .decode(&pkt(1, cut, frags[0].len() as u32, 0))
        .unwrap_err();
    assert_eq!(a.kind, "ip_fragment");
    assert!(
        a.detail
            .starts_with("fragment cut by the capture's snap length")
    );
    // The rest of that datagram is absorbed silently, then dropped without a second report.
    assert_eq!(decode_with(&mut dec, 1, &frags[1]).unwrap(), None);
    dec.finish();
    assert_eq!(dec.take_anomalies().count(), 0);
}

#[test]
fn truncation_is_flagged_and_cut_headers_are_anomalies() {
    let seg = tcp(1, 2, 3, 4, 0x18, 5, &[0x55; 100]);
    let f = eth(0x0800, &ipv4(A4, B4, 6, 1, (false, 0), &seg));
    // Payload cut by the snap length.
    let mut dec = Decoder::new();
    let d = dec
        .decode(&pkt(1, &f[..80], f.len() as u32, 0))
        .unwrap()
        .unwrap();
    assert!(d.truncated);
    let Transport::Tcp(t) = d.transport else {
        panic!()
    };
    assert_eq!(t.payload, &[0x55; 26][..]);
    // TCP header cut.
    let a = decode(1, &f[..14 + 20 + 10]).unwrap_err();
    assert_eq!(
        a,
        DecodeAnomaly {
            layer: "tcp",
            kind: "truncated_packet",
            detail: "TCP header cut: 10 of 20 bytes captured".into()
        }
    );
    // IPv4 header cut.
    let a = decode(1, &f[..14 + 12]).unwrap_err();
    assert_eq!((a.layer, a.kind), ("ip", "truncated_packet"));
    // UDP length beyond the capture.
    let u = eth(
        0x0800,
        &ipv4(A4, B4, 17, 1, (false, 0), &udp(7, 8, &[1; 50])),
    );
    let d = dec
        .decode(&pkt(1, &u[..60], u.len() as u32, 0))
        .unwrap()
        .unwrap();
    assert!(d.truncated);
    // Segmentation offload: IPv4 total length 0, trust the capture.
    let mut tso = ipv4(A4, B4, 6, 1, (false, 0), &seg);
    tso[2..4].copy_from_slice(&[0, 0]);
    let d = dec
        .decode(&pkt(101, &tso, tso.len() as u32, 0))
        .unwrap()
        .unwrap();
    assert!(!d.truncated);
    let Transport::Tcp(t) = d.transport else {
        panic!()
    };
    assert_eq!(t.payload.len(), 100);
    let d = dec
        .decode(&pkt(101, &tso, tso.len() as u32 + 1000, 0))
        .unwrap()
        .unwrap();
    assert!(d.truncated);
    // Bad TCP data offset.
    let mut bad = seg.clone();
    bad[12] = 0x40;
    let a = decode(101, &ipv4(A4, B4, 6, 1, (false, 0), &bad)).unwrap_err();
    assert_eq!((a.layer, a.kind), ("tcp", "bad_tcp_header"));
    // UDP header cut.
    let a = decode(101, &ipv4(A4, B4, 17, 1, (false, 0), &[0; 5])).unwrap_err();
    assert_eq!((a.layer, a.kind), ("udp", "truncated_packet"));
    // Checksums are never validated: garbage checksum still decodes.
    let mut cs = ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"c"));
    cs[10] = 0xde;
    cs[11] = 0xad;
    assert_eq!(decode(101, &cs).unwrap().unwrap().payload, b"c");
}
