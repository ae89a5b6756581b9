//! Capture reading: formats, byte orders, resolutions, sections and interfaces, compression,
//! archives, and every kind of broken input.

#[path = "common/capture_builders.rs"]
mod common;

use std::io::{Cursor, Write};

use common::*;
use kmsscope::capture::{
    CaptureErrorKind, LinkType, MAX_BLOCK_LEN, MAX_NOTICES_PER_KIND, MAX_RECORD_LEN,
    MAX_SKIPPED_BLOCK_LEN, Opened, open_path, open_reader,
};
use kmsscope::decode::{Decoder, Transport};
use kmsscope::time::Ts;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/interop");

fn expected_packets(expect_json: &str) -> u64 {
    let text = std::fs::read_to_string(expect_json).expect("expect.json");
    let at = text.find("\"packets\"").expect("packets key");
    let rest = &text[at + "\"packets\"".len()..];
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().expect("packet count")
}

#[test]
fn real_captures_have_the_expected_packet_counts_and_decode() {
    let dir = std::fs::read_dir(CAPTURES).expect("captures/interop is part of the repository");
    let mut seen = 0;
    for entry in dir.flatten() {
        let path = entry.path().to_string_lossy().into_owned();
        if !(path.ends_with(".pcap") || path.ends_with(".pcapng")) {
            continue;
        }
        let stem = path.trim_end_matches(".pcapng").trim_end_matches(".pcap");
        let want = expected_packets(&format!("{stem}.expect.json"));
        let mut items = read_sources(open_path(&path).expect("open"));
        assert_eq!(items.len(), 1);
        let Some(Item::Source(r)) = items.pop() else {
            panic!("{path}: no source")
        };
        assert!(r.error.is_none(), "{path}: {:?}", r.error);
        assert!(r.notices.is_empty(), "{path}: {:?}", r.notices);
        assert_eq!(r.packets.len() as u64, want, "{path}");
        assert_eq!(r.name, path);
        for (i, p) in r.packets.iter().enumerate() {
            assert_eq!(p.frame, i as u64 + 1);
            assert_eq!(p.link, 1);
        }
        // Every packet decodes (ARP comes back as Ok(None)).
        let mut dec = Decoder::new();
        for p in &r.packets {
            let raw = kmsscope::capture::RawPacket {
                frame: p.frame,
                ts: Ts(p.ts),
                link: LinkType(p.link),
                data: &p.data,
                orig_len: p.orig_len,
            };
            if let Err(a) = dec.decode(&raw) {
                panic!("{path} frame {}: {a}", p.frame);
            }
            assert_eq!(dec.take_anomalies().count(), 0);
        }
        seen += 1;
    }
    assert!(seen >= 14, "only {seen} captures found");
}

#[test]
fn real_capture_timestamps_and_fields_match_tshark() {
    let p = format!("{CAPTURES}/s01_v4_win7_vm.pcap");
    if std::fs::metadata(&p).is_err() {
        return;
    }
    let r = read_bytes("s01", &std::fs::read(&p).unwrap()).unwrap();
    // tshark: Frame 4, Epoch Time 1795447114.506661000
    assert_eq!(r.packets[3].ts, 1_795_447_114_506_661_000);
    assert_eq!(r.packets[3].data.len(), 226);

    // pcapng, tshark: s14 frame 32, Epoch 1795447155.564353000,
    // 10.77.0.20:58542 -> 10.77.0.10:1688, seq 2717291920 ack 725930652, PSH ACK, win 63, 160 B.
    let p = format!("{CAPTURES}/s14_ticket_combined.pcapng");
    let mut items = read_sources(open_path(&p).unwrap());
    let Some(Item::Source(r)) = items.pop() else {
        panic!()
    };
    let f = &r.packets[31];
    assert_eq!(f.frame, 32);
    assert_eq!(f.ts, 1_795_447_155_564_353_000);
    assert_eq!(
        Ts(f.ts).rfc3339_micros().to_string(),
        "2026-11-23T15:19:15.564353Z"
    );
    let raw = kmsscope::capture::RawPacket {
        frame: f.frame,
        ts: Ts(f.ts),
        link: LinkType(f.link),
        data: &f.data,
        orig_len: f.orig_len,
    };
    let mut dec = Decoder::new();
    let d = dec.decode(&raw).unwrap().unwrap();
    assert_eq!(d.src.to_string(), "10.77.0.20");
    assert_eq!(d.dst.to_string(), "10.77.0.10");
    let Transport::Tcp(t) = d.transport else {
        panic!()
    };
    assert_eq!((t.src_port, t.dst_port), (58542, 1688));
    assert_eq!((t.seq, t.ack), (2_717_291_920, 725_930_652));
    assert!(t.psh && t.ack_flag && !t.syn && !t.fin && !t.rst);
    assert_eq!(t.window, 63);
    assert_eq!(t.payload.len(), 160);
    assert!(!d.truncated);
}

fn two_records() -> (Vec<u8>, Vec<u8>) {
    (
        eth(0x0806, &[1; 28]),
        eth(
            0x0800,
            &ipv4(A4, B4, 17, 1, (false, 0), &udp(53, 5353, b"hi")),
        ),
    )
}

#[test]
fn classic_pcap_byte_orders_and_resolutions() {
    let (a, b) = two_records();
    for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
        let frac = if nanos { 123_456_789 } else { 123_456 };
        let bytes = pcap(
            big,
            nanos,
            1,
            65535,
            &[
                (1_700_000_000, frac, &a, 60),
                (1_700_000_001, 999, &b, b.len() as u32),
            ],
        );
        let r = read_bytes("x.pcap", &bytes).unwrap();
        assert!(r.error.is_none() && r.notices.is_empty(), "{r:?}");
        assert_eq!(r.packets.len(), 2);
        let ns = if nanos { 123_456_789 } else { 123_456_000 };
        assert_eq!(
            r.packets[0],
            Pkt {
                frame: 1,
                ts: 1_700_000_000_000_000_000 + ns,
                link: 1,
                data: a.clone(),
                orig_len: 60
            }
        );
        let ns2 = if nanos { 999 } else { 999_000 };
        assert_eq!(r.packets[1].frame, 2);
        assert_eq!(r.packets[1].ts, 1_700_000_001_000_000_000 + ns2);
        assert_eq!(r.packets[1].data, b);
    }
}

#[test]
fn modified_pcap_format_is_read() {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_cd34u32.to_be_bytes());
    v.extend_from_slice(&2u16.to_be_bytes());
    v.extend_from_slice(&4u16.to_be_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_be_bytes());
    v.extend_from_slice(&101u32.to_be_bytes());
    let pkt = ipv4(A4, B4, 6, 7, (false, 0), &tcp(1, 2, 3, 4, 2, 5, b""));
    for x in [10u32, 20, pkt.len() as u32, pkt.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&[0; 8]); // ifindex, protocol, pkt_type, pad
    v.extend_from_slice(&pkt);
    let r = read_bytes("m.pcap", &v).unwrap();
    assert!(r.error.is_none(), "{r:?}");
    assert_eq!(r.packets.len(), 1);
    assert_eq!(r.packets[0].ts, 10_000_020_000);
    assert_eq!(r.packets[0].link, 101);
    assert_eq!(r.packets[0].data, pkt);
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_notices() {
    let e1 = eth(0x0800, &ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"one")));
    let r2 = ipv4(A4, B4, 17, 2, (false, 0), &udp(3, 4, b"two"));
    let mut ng = Ng::new();
    ng.shb(false)
        .idb(1, 0, None, None) // if 0: Ethernet, microseconds (default)
        .idb(101, 0, Some(9), None) // if 1: raw IP, nanoseconds
        .epb(0, 1_700_000_000_123_456, &e1, e1.len() as u32)
        .epb(1, 1_700_000_000_987_654_321, &r2, 100)
        .block(0x1234, b"junk") // unknown block: notice
        .block(4, &[0; 8]) // name resolution: skipped silently
        .spb(&e1, e1.len() as u32)
        .epb(5, 0, &e1, e1.len() as u32); // unknown interface: notice
    let second_section = ng.buf.len();
    ng.shb(true) // big-endian section: interfaces reset
        .idb(113, 0, Some(0x94), Some(100)) // if 0: SLL, 2^-20 s, +100 s
        .epb(0, 3 << 20 | 1 << 19, &[0xaa; 20], 20)
        .epb(1, 0, &e1, e1.len() as u32); // interface 1 no longer exists
    let r = read_bytes("s.pcapng", &ng.buf).unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    let got: Vec<(u64, i64, u32, usize, u32)> = r
        .packets
        .iter()
        .map(|p| (p.frame, p.ts, p.link, p.data.len(), p.orig_len))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 1_700_000_000_123_456_000, 1, e1.len(), e1.len() as u32),
            (2, 1_700_000_000_987_654_321, 101, r2.len(), 100),
            // SPB: previous packet's time, interface 0
            (3, 1_700_000_000_987_654_321, 1, e1.len(), e1.len() as u32),
            (4, 103_500_000_000, 113, 20, 20),
        ]
    );
    assert_eq!(r.packets[0].data, e1);
    assert_eq!(r.packets[1].data, r2);
    let kinds: Vec<(&str, Option<u64>)> = r.notices.iter().map(|n| (n.kind, n.offset)).collect();
    let off = |i: usize| Some(ng.blocks[i] as u64);
    assert_eq!(
        kinds,
        vec![
            ("unknown_block_type", off(5)),
            ("no_timestamp", off(7)),
            ("unknown_interface", off(8)),
            ("unknown_interface", off(12)),
        ]
    );
    assert_eq!(ng.blocks[9], second_section);
    assert_eq!(
        r.notices[0].detail,
        "pcapng block of unknown type 0x00001234 (16 bytes) skipped"
    );
    assert_eq!(
        r.notices[3].to_string(),
        format!(
            "s.pcapng: enhanced packet block refers to interface 1 but the section declares 1 \
             interface(s); skipped at offset {}",
            ng.blocks[12]
        )
    );
}

#[test]
fn pcapng_without_interface_reports_every_packet_within_the_notice_limit() {
    let mut ng = Ng::new();
    ng.shb(false);
    for i in 0..20 {
        ng.epb(0, i, &[0; 14], 14);
    }
    let r = read_bytes("noif.pcapng", &ng.buf).unwrap();
    assert!(r.error.is_none());
    assert!(r.packets.is_empty());
    assert_eq!(r.notices.len() as u64, MAX_NOTICES_PER_KIND + 1);
    assert!(r.notices.iter().all(|n| n.kind == "unknown_interface"));
    assert_eq!(
        r.notices.last().unwrap().detail,
        "4 more unknown_interface notices in this source were not reported individually"
    );
}

#[test]
fn caplen_beyond_snaplen_is_delivered_with_a_notice() {
    let d = [0u8; 100];
    let bytes = pcap(false, false, 1, 64, &[(1, 0, &d, 100)]);
    let r = read_bytes("snap.pcap", &bytes).unwrap();
    assert_eq!(r.packets.len(), 1);
    assert_eq!(r.notices.len(), 1);
    assert_eq!(r.notices[0].kind, "caplen_exceeds_snaplen");
    assert_eq!(
        (r.notices[0].offset, r.notices[0].frame),
        (Some(24), Some(1))
    );
}

/// Record boundaries of a classic pcap built from `recs`.
fn pcap_boundaries(recs: &[Rec]) -> Vec<usize> {
    let mut b = vec![24];
    for r in recs {
        b.push(b.last().unwrap() + 16 + r.2.len());
    }
    b
}

#[test]
fn classic_pcap_truncated_at_every_byte() {
    let (a, b) = two_records();
    let recs: Vec<Rec> = vec![(1, 1, &a, 60), (2, 2, &b, b.len() as u32), (3, 3, &a, 60)];
    let bytes = pcap(false, false, 1, 65535, &recs);
    let bounds = pcap_boundaries(&recs);
    for len in 0..=bytes.len() {
        let cut = &bytes[..len];
        let res = read_bytes("t.pcap", cut);
        if len == 0 {
            let e = res.unwrap_err();
            assert!(matches!(e.kind, CaptureErrorKind::Empty));
            assert_eq!(e.to_string(), "t.pcap: empty file (not a capture)");
            continue;
        }
        if len < 4 {
            let e = res.unwrap_err();
            assert!(
                matches!(e.kind, CaptureErrorKind::NotCapture(_)),
                "{len}: {e}"
            );
            continue;
        }
        if len < 24 {
            let e = res.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("t.pcap: truncated pcap file header ({len} of 24 bytes) at offset 0")
            );
            continue;
        }
        let r = res.unwrap();
        let complete = bounds.iter().filter(|&&x| x <= len).count() - 1;
        assert_eq!(r.packets.len(), complete, "len {len}");
        if bounds.contains(&len) {
            assert!(r.error.is_none(), "len {len}: {:?}", r.error);
        } else {
            let e = r.error.expect("error");
            let start = bounds[complete];
            assert_eq!(e.offset, Some(start as u64), "len {len}");
            assert_eq!(e.frame, Some(complete as u64 + 1));
            let msg = e.to_string();
            assert!(msg.starts_with("t.pcap: truncated pcap record "), "{msg}");
            assert!(
                msg.ends_with(&format!("at offset {start} (frame {})", complete + 1)),
                "{msg}"
            );
        }
    }
}

#[test]
fn pcapng_truncated_at_every_byte() {
    let e1 = eth(0x0800, &ipv4(A4, B4, 17, 1, (false, 0), &udp(1, 2, b"abc")));
    let mut ng = Ng::new();
    ng.shb(false)
        .idb(1, 0, Some(6), None)
        .epb(0, 1, &e1, e1.len() as u32)
        .block(0x4000_0bad, &[1; 12])
        .epb(0, 2, &e1, e1.len() as u32);
    let bytes = ng.buf.clone();
    let mut bounds = ng.blocks.clone();
    bounds.push(bytes.len());
    let packet_ends = [bounds[3], bounds[5]];
    for len in 1..=bytes.len() {
        let res = read_bytes("t.pcapng", &bytes[..len]);
        let r = match res {
            Ok(r) => r,
            Err(e) => {
                assert!(len < 4, "{len}: {e}");
                continue;
            }
        };
        let want = packet_ends.iter().filter(|&&x| x <= len).count();
        assert_eq!(r.packets.len(), want, "len {len}");
        if bounds.contains(&len) {
            assert!(r.error.is_none(), "len {len}: {:?}", r.error);
        } else {
            let e = r.error.expect("error");
            let start = *bounds.iter().filter(|&&x| x <= len).max().unwrap();
            assert_eq!(e.offset, Some(start as u64), "len {len}: {e}");
            assert!(e.to_string().contains("truncated pcapng"), "{e}");
        }
    }
}

#[test]
fn record_lengths_beyond_the_limit_end_the_source_with_the_offset() {
    let (a, _) = two_records();
    for claimed in [MAX_RECORD_LEN + 1, 0xffff_fff0, u32::MAX] {
        let mut bytes = pcap(false, false, 1, 65535, &[(1, 1, &a, 60)]);
        let at = bytes.len();
        for x in [5u32, 0, claimed, claimed] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.extend_from_slice(&[0; 64]);
        let r = read_bytes("big.pcap", &bytes).unwrap();
        assert_eq!(r.packets.len(), 1);
        let e = r.error.unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "big.pcap: pcap record claims {claimed} captured bytes, more than the limit of \
                 {MAX_RECORD_LEN} at offset {at} (frame 2)"
            )
        );
    }
}

#[test]
fn pcapng_blocks_of_zero_odd_huge_length_and_bad_trailers() {
    let e1 = eth(0x0806, &[0; 28]);
    let mut base = Ng::new();
    base.shb(false).idb(1, 0, None, None).epb(0, 5, &e1, 42);
    let at = base.buf.len() as u64;
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            [6u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
            format!("invalid pcapng block length 0 (block type 0x00000006) at offset {at}"),
        ),
        (
            [6u32.to_le_bytes(), 33u32.to_le_bytes(), [0; 4]].concat(),
            format!("invalid pcapng block length 33 (block type 0x00000006) at offset {at}"),
        ),
        (
            [6u32.to_le_bytes(), 0x7fff_fff0u32.to_le_bytes(), [0; 4]].concat(),
            format!(
                "pcapng block of type 0x00000006 claims 2147483632 bytes, more than the limit \
                 of {MAX_BLOCK_LEN} at offset {at} (frame 2)"
            ),
        ),
        (
            [0x99u32.to_le_bytes(), 0xffff_fffcu32.to_le_bytes()].concat(),
            format!(
                "pcapng block of type 0x00000099 claims 4294967292 bytes, more than the limit \
                 of {MAX_SKIPPED_BLOCK_LEN} at offset {at}"
            ),
        ),
        (
            [
                5u32.to_le_bytes(),
                16u32.to_le_bytes(),
                [0; 4],
                20u32.to_le_bytes(),
            ]
            .concat(),
            format!(
                "pcapng block trailer length 20 does not match header length 16 at offset {at}"
            ),
        ),
        (
            [6u32.to_le_bytes(), 1000u32.to_le_bytes(), [0; 4]].concat(),
            format!(
                "truncated pcapng block of type 0x00000006 (12 of 1000 bytes) at offset {at} \
                 (frame 2)"
            ),
        ),
    ];
    for (tail, msg) in cases {
        let mut bytes = base.buf.clone();
        bytes.extend_from_slice(&tail);
        let r = read_bytes("b.pcapng", &bytes).unwrap();
        assert_eq!(r.packets.len(), 1, "{msg}");
        assert_eq!(r.error.unwrap().to_string(), format!("b.pcapng: {msg}"));
    }
}

#[test]
fn pcapng_packet_block_inconsistencies_are_skipped_with_notices() {
    let mut ng = Ng::new();
    ng.shb(false).idb(1, 0, None, None);
    // EPB claiming more captured bytes than it holds.
    let mut body = Vec::new();
    for x in [0u32, 0, 0, 500, 500] {
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.extend_from_slice(&[0; 8]);
    ng.block(6, &body);
    ng.epb(0, 1, &[1; 14], 14);
    let r = read_bytes("c.pcapng", &ng.buf).unwrap();
    assert!(r.error.is_none());
    assert_eq!(r.packets.len(), 1);
    assert_eq!(r.packets[0].frame, 1);
    assert_eq!(r.notices.len(), 1);
    assert_eq!(r.notices[0].kind, "bad_packet_block");
    assert_eq!(r.notices[0].offset, Some(ng.blocks[2] as u64));
}

#[test]
fn files_that_are_not_captures() {
    let text = write_tmp("notes.txt", b"Hello world, this is not a capture\n");
    let e = open_path(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{text}: not a capture file (starts with 'Hello wo…')")
    );
    let empty = write_tmp("empty.pcap", b"");
    let e = open_path(&empty).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{empty}: empty file (not a capture)")
    );
    let bin = write_tmp("rand.pcap", &[0x00, 0xff, 0x1b, b'a', 0x27, 0x5c]);
    let e = open_path(&bin).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{bin}: not a capture file (starts with '\\x00\\xff\\x1ba\\x27\\x5c')")
    );
    let dir = std::env::temp_dir().to_string_lossy().into_owned();
    let e = open_path(&dir).unwrap_err();
    assert_eq!(e.to_string(), format!("{dir}: cannot open: is a directory"));
    let e = open_path("/nonexistent/kmsscope/x.pcap").unwrap_err();
    assert!(matches!(e.kind, CaptureErrorKind::Open(_)));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/kmsscope/x.pcap: cannot open: ")
    );
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn gzip_captures_are_detected_by_content() {
    let (a, b) = two_records();
    let plain = pcap(
        true,
        true,
        1,
        65535,
        &[(7, 8, &a, 60), (9, 10, &b, b.len() as u32)],
    );
    let path = write_tmp("capture.bin", &gzip(&plain));
    let mut items = read_sources(open_path(&path).unwrap());
    let Some(Item::Source(r)) = items.pop() else {
        panic!()
    };
    assert_eq!(r.name, *path);
    assert!(r.error.is_none());
    assert_eq!(r.packets.len(), 2);
    assert_eq!(r.packets[1].ts, 9_000_000_010);
    // pcapng in gzip in gzip
    let mut ng = Ng::new();
    ng.shb(false).idb(1, 0, None, None).epb(0, 3, &a, 60);
    let r = read_bytes("x.pcapng.gz.gz", &gzip(&gzip(&ng.buf))).unwrap();
    assert_eq!(r.packets.len(), 1);
    assert_eq!(r.packets[0].ts, 3_000);
    // gzip of text
    let e = read_bytes("t.gz", &gzip(b"Hello world")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.gz: not a capture file (starts with 'Hello wo…')"
    );
}

#[test]
fn gzip_members_padding_and_trailing_data() {
    let (a, b) = two_records();
    let plain = pcap(
        false,
        false,
        1,
        0,
        &[(1, 1, &a, 60), (2, 2, &b, b.len() as u32)],
    );
    let (head, tail) = plain.split_at(30);
    // Two members (like `cat x.gz y.gz`), then zero padding: all read, no error.
    let mut gz = [gzip(head), gzip(tail)].concat();
    gz.extend_from_slice(&[0; 700]);
    let r = read_bytes("m.gz", &gz).unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.packets.len(), 2);
    // Non-zero trailing data: packets first, then one clear line.
    let mut gz = gzip(&plain);
    gz.extend_from_slice(b"\0\0garbage");
    let r = read_bytes("g.gz", &gz).unwrap();
    assert_eq!(r.packets.len(), 2);
    assert_eq!(
        r.error.unwrap().to_string(),
        format!(
            "g.gz: unexpected data after the end of the gzip stream at offset {} of the \
             decompressed data",
            plain.len()
        )
    );
}

#[test]
fn truncated_gzip_yields_what_could_be_read_then_a_clear_error() {
    let (a, _) = two_records();
    // Incompressible-ish payloads so the cut lands mid-stream.
    let recs_data: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            (0..100u32)
                .map(|j| (i.wrapping_mul(7919) ^ j.wrapping_mul(104_729)) as u8)
                .collect()
        })
        .collect();
    let mut recs: Vec<Rec> = vec![(1, 1, &a, 60)];
    for d in &recs_data {
        recs.push((2, 2, d, 100));
    }
    let plain = pcap(false, false, 1, 65535, &recs);
    let gz = gzip(&plain);
    let cut = &gz[..gz.len() / 2];
    let r = read_bytes("cut.pcap.gz", cut).unwrap();
    assert!(!r.packets.is_empty() && r.packets.len() < recs.len());
    let e = r.error.unwrap();
    let msg = e.to_string();
    assert!(msg.starts_with("cut.pcap.gz: "), "{msg}");
    assert!(
        matches!(
            e.kind,
            CaptureErrorKind::Decompress(_) | CaptureErrorKind::Truncated(_)
        ),
        "{msg}"
    );
    assert!(msg.contains("of the decompressed data"), "{msg}");
    assert!(!msg.contains('\n'));
}

fn build_zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.add_directory("caps/", SimpleFileOptions::default())
        .unwrap();
    for &(name, data, deflate) in members {
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        w.start_file(
            name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn check_zip_items(items: &[Item], zip_name: &str, a: &[u8]) {
    assert_eq!(items.len(), 5, "{items:?}");
    match &items[0] {
        Item::Skipped(n) => {
            assert_eq!(n.source, format!("{zip_name}:readme.txt"));
            assert_eq!(n.kind, "non_capture_member");
            assert_eq!(
                n.detail,
                "not a capture file (starts with 'Please a…'); skipped"
            );
        }
        other => panic!("{other:?}"),
    }
    match &items[1] {
        Item::Source(r) => {
            assert_eq!(r.name, format!("{zip_name}:caps/a.pcap"));
            assert_eq!(r.packets.len(), 1);
            assert_eq!(r.packets[0].data, a);
            assert!(r.error.is_none());
        }
        other => panic!("{other:?}"),
    }
    match &items[2] {
        Item::Source(r) => {
            assert_eq!(r.name, format!("{zip_name}:caps/b.pcapng.gz"));
            assert_eq!(r.packets.len(), 1);
            assert_eq!(r.packets[0].ts, 1_000_000);
        }
        other => panic!("{other:?}"),
    }
    match &items[3] {
        Item::Skipped(n) => {
            assert_eq!(n.source, format!("{zip_name}:empty.bin"));
            assert_eq!(n.detail, "empty file (not a capture); skipped");
        }
        other => panic!("{other:?}"),
    }
    match &items[4] {
        Item::Source(r) => {
            assert_eq!(r.name, format!("{zip_name}:cut.pcap"));
            assert_eq!(r.packets.len(), 1);
            let e = r.error.as_ref().unwrap();
            assert_eq!(
                e.to_string(),
                format!(
                    "{zip_name}:cut.pcap: truncated pcap record header (3 of 16 bytes) at offset \
                     {} of the decompressed data (frame 2)",
                    24 + 16 + a.len()
                )
            );
        }
        other => panic!("{other:?}"),
    }
}

fn zip_fixture() -> (Vec<u8>, Vec<u8>) {
    let (a, _) = two_records();
    let p = pcap(false, false, 1, 65535, &[(1, 1, &a, 60)]);
    let mut ng = Ng::new();
    ng.shb(false).idb(1, 0, Some(6), None).epb(0, 1_000, &a, 60);
    let mut cut = p.clone();
    cut.extend_from_slice(&[1, 2, 3]);
    let z = build_zip(&[
        ("readme.txt", b"Please analyse the attached capture.", true),
        ("caps/a.pcap", &p, false),
        ("caps/b.pcapng.gz", &gzip(&ng.buf), true),
        ("empty.bin", b"", false),
        ("cut.pcap", &cut, true),
    ]);
    (z, a)
}

#[test]
fn zip_members_become_sources_and_non_captures_are_notices() {
    let (z, a) = zip_fixture();
    let path = write_tmp("ticket.zip", &z);
    let items = read_sources(open_path(&path).unwrap());
    check_zip_items(&items, &path, &a);
    // Same archive from a stream (stdin): buffered in memory.
    let items = read_sources(open_reader("-", Box::new(Cursor::new(z.clone()))).unwrap());
    check_zip_items(&items, "-", &a);
    // And gzip-compressed.
    let items = read_sources(open_reader("t.zip.gz", Box::new(Cursor::new(gzip(&z)))).unwrap());
    check_zip_items(&items, "t.zip.gz", &a);
}

#[test]
fn nested_and_empty_and_corrupt_zips() {
    let (inner, a) = zip_fixture();
    let outer = build_zip(&[
        ("inner.zip", &inner, true),
        (
            "x.pcap",
            &pcap(false, false, 1, 0, &[(1, 1, &a, 60)]),
            false,
        ),
    ]);
    let items = read_sources(open_reader("outer.zip", Box::new(Cursor::new(outer))).unwrap());
    let names: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Source(r) => format!("S {}", r.name),
            Item::Skipped(n) => format!("N {}", n.source),
            Item::Error(e) => format!("E {e}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "N outer.zip:inner.zip:readme.txt",
            "S outer.zip:inner.zip:caps/a.pcap",
            "S outer.zip:inner.zip:caps/b.pcapng.gz",
            "N outer.zip:inner.zip:empty.bin",
            "S outer.zip:inner.zip:cut.pcap",
            "S outer.zip:x.pcap",
        ]
    );

    let empty = build_zip(&[]);
    let items = read_sources(open_reader("e.zip", Box::new(Cursor::new(empty))).unwrap());
    match &items[..] {
        [Item::Skipped(n)] => assert_eq!(
            (n.kind, n.detail.as_str()),
            ("empty_archive", "zip archive holds only directories")
        ),
        other => panic!("{other:?}"),
    }
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let _ = w.set_comment("nothing");
    let truly_empty = w.finish().unwrap().into_inner();
    let items = read_sources(open_reader("e2.zip", Box::new(Cursor::new(truly_empty))).unwrap());
    match &items[..] {
        [Item::Skipped(n)] => assert_eq!(
            (n.kind, n.detail.as_str()),
            ("empty_archive", "zip archive has no entries")
        ),
        other => panic!("{other:?}"),
    }

    let mut bad = b"PK\x03\x04".to_vec();
    bad.extend_from_slice(&[0x55; 100]);
    let path = write_tmp("bad.zip", &bad);
    let e = open_path(&path).unwrap_err();
    assert!(matches!(e.kind, CaptureErrorKind::Archive(_)));
    assert!(
        e.to_string()
            .starts_with(&format!("{path}: corrupt or truncated zip archive: ")),
        "{e}"
    );
    // A zip cut in half.
    let (z, _) = zip_fixture();
    let e = open_reader("half.zip", Box::new(Cursor::new(z[..z.len() / 2].to_vec()))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("half.zip: corrupt or truncated zip archive"),
        "{e}"
    );
}

#[test]
fn stdin_dash_name_and_sources_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let (a, _) = two_records();
    let s = open_reader(
        "-",
        Box::new(Cursor::new(pcap(false, false, 1, 0, &[(1, 1, &a, 60)]))),
    )
    .unwrap();
    is_send(&s);
    for item in s {
        if let Ok(Opened::Source(src)) = item {
            is_send(&src);
            assert_eq!(src.name(), "-");
        }
    }
}

#[test]
fn large_capture_streams_through_a_bounded_buffer() {
    // 40 MB of records, read from a file: constant memory, exact count.
    let d = vec![0x42u8; 1000];
    let n = 40_000u32;
    let mut bytes = pcap(false, false, 1, 65535, &[]);
    for i in 0..n {
        for x in [i, 0, 1000, 1000] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.extend_from_slice(&d);
    }
    let path = write_tmp("big.pcap", &bytes);
    drop(bytes);
    let mut count = 0u64;
    for item in open_path(&path).unwrap() {
        let Ok(Opened::Source(mut s)) = item else {
            panic!()
        };
        while let Some(p) = s.next_packet().unwrap() {
            count += 1;
            assert_eq!(p.frame, count);
            assert_eq!(p.data.len(), 1000);
        }
    }
    assert_eq!(count, u64::from(n));
}
