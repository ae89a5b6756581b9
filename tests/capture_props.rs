//! Property tests: arbitrary or mutated input never panics and always ends; reassembly does not
//! depend on fragment order or duplication.

#[path = "common/capture_builders.rs"]
mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use common::*;
use kmsscope::capture::{LinkType, Opened, RawPacket, open_reader};
use kmsscope::decode::{Decoder, Transport};
use kmsscope::time::Ts;
use proptest::prelude::*;

/// Reads every source of `bytes`, decoding every packet; returns (packets, notices + anomalies).
fn exercise(bytes: Vec<u8>) -> (u64, u64) {
    let start = Instant::now();
    let (mut packets, mut other) = (0u64, 0u64);
    let Ok(sources) = open_reader("fuzz", Box::new(Cursor::new(bytes))) else {
        return (0, 0);
    };
    for item in sources {
        let Ok(Opened::Source(mut src)) = item else {
            other += 1;
            continue;
        };
        let mut dec = Decoder::new();
        while let Ok(Some(p)) = src.next_packet() {
            packets += 1;
            if dec.decode(&p).is_err() {
                other += 1;
            }
            other += dec.take_anomalies().count() as u64;
            other += src.take_notices().len() as u64;
        }
        other += src.take_notices().len() as u64;
        dec.finish();
        other += dec.take_anomalies().count() as u64;
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    (packets, other)
}

fn sample_pcapng() -> Vec<u8> {
    let e1 = eth(
        0x0800,
        &ipv4(
            A4,
            B4,
            6,
            1,
            (false, 0),
            &tcp(1, 1688, 7, 8, 0x18, 9, b"abc"),
        ),
    );
    let r2 = ipv6(A6, B6, 17, &udp(3, 4, b"two"));
    let mut ng = Ng::new();
    ng.shb(false)
        .idb(1, 0, None, None)
        .idb(101, 0, Some(9), Some(5))
        .epb(0, 1, &e1, e1.len() as u32)
        .epb(1, 2, &r2, r2.len() as u32)
        .spb(&e1, e1.len() as u32)
        .shb(true)
        .idb(113, 0, Some(0x94), None)
        .epb(0, 3, &[0; 16], 16);
    ng.buf
}

fn sample_pcap() -> Vec<u8> {
    let (_, frags) = {
        let d = udp(1, 2, &[9; 2000]);
        let f: Vec<Vec<u8>> = d
            .chunks(1480)
            .enumerate()
            .map(|(i, c)| {
                let more = (i + 1) * 1480 < d.len();
                eth(0x0800, &ipv4(A4, B4, 17, 5, (more, (i * 1480) as u16), c))
            })
            .collect();
        ((), f)
    };
    let recs: Vec<Rec> = frags
        .iter()
        .map(|f| (1u32, 2u32, f.as_slice(), f.len() as u32))
        .collect();
    pcap(false, false, 1, 65535, &recs)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides, for long runs.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        .. ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        exercise(bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_valid_headers_never_panic(
        kind in 0u8..5,
        tail in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut bytes = match kind {
            0 => pcap(false, false, 1, 65535, &[]),
            1 => pcap(true, true, 101, 0, &[]),
            2 => { let mut ng = Ng::new(); ng.shb(false).idb(1, 0, None, None); ng.buf }
            3 => { let mut ng = Ng::new(); ng.shb(true).idb(0, 0, Some(0x85), None); ng.buf }
            _ => b"PK\x03\x04".to_vec(),
        };
        bytes.extend_from_slice(&tail);
        exercise(bytes.clone());
        exercise(gzip(&bytes));
    }

    #[test]
    fn mutated_captures_never_panic(
        which in any::<bool>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
        gz in any::<bool>(),
    ) {
        let mut bytes = if which { sample_pcapng() } else { sample_pcap() };
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x | 1;
        }
        let keep = cut % (bytes.len() + 1);
        bytes.truncate(keep.max(bytes.len() / 2));
        exercise(if gz { gzip(&bytes) } else { bytes });
    }

    #[test]
    fn decoder_never_panics(
        link in prop_oneof![Just(0u32), Just(1), Just(12), Just(101), Just(108), Just(113), Just(228), Just(229), Just(276), any::<u32>()],
        packets in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..200), any::<u32>(), any::<i64>()), 1..20),
    ) {
        let mut dec = Decoder::new();
        for (data, orig, ts) in &packets {
            let p = RawPacket { frame: 1, ts: Ts(*ts), link: LinkType(link), data, orig_len: *orig };
            let _ = dec.decode(&p);
            let _ = dec.take_anomalies().count();
        }
        dec.finish();
        prop_assert!(dec.take_anomalies().count() <= kmsscope::decode::MAX_PENDING_ANOMALIES + 1);
    }

    #[test]
    fn reassembly_is_order_and_duplicate_independent(
        len in 1usize..6000,
        chunk in 1usize..200,
        order in proptest::collection::vec(any::<usize>(), 0..200),
        dups in proptest::collection::vec(any::<usize>(), 0..5),
        v6 in any::<bool>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
        let dgram = udp(1688, 999, &payload);
        let step = chunk * 8;
        let mut frags: Vec<Vec<u8>> = dgram
            .chunks(step)
            .enumerate()
            .map(|(i, c)| {
                let off = i * step;
                let more = off + c.len() < dgram.len();
                if v6 {
                    let field = ((off / 8) as u16) << 3 | u16::from(more);
                    let mut fh = vec![17, 0];
                    fh.extend_from_slice(&field.to_be_bytes());
                    fh.extend_from_slice(&77u32.to_be_bytes());
                    fh.extend_from_slice(c);
                    ipv6(A6, B6, 44, &fh)
                } else {
                    ipv4(A4, B4, 17, 77, (more, off as u16), c)
                }
            })
            .collect();
        let single = frags.len() == 1;
        // Shuffle deterministically from `order`, then add duplicates (not of the last one sent).
        for (i, o) in order.iter().enumerate() {
            let n = frags.len();
            frags.swap(i % n, o % n);
        }
        let last = frags.pop().unwrap();
        let base = frags.clone();
        for d in &dups {
            if !base.is_empty() {
                frags.push(base[d % base.len()].clone());
            }
        }
        frags.push(last);
        let mut dec = Decoder::new();
        let mut got = None;
        for (i, f) in frags.iter().enumerate() {
            let p = RawPacket { frame: i as u64 + 1, ts: Ts(0), link: LinkType::RAW, data: f, orig_len: f.len() as u32 };
            let r = dec.decode(&p).unwrap();
            if let Some(d) = r {
                prop_assert_eq!(i, frags.len() - 1, "completed early");
                let Transport::Udp(u) = d.transport else { panic!("{d:?}") };
                got = Some(u.payload.to_vec());
            }
        }
        prop_assert!(single || dec.take_anomalies().count() == 0);
        prop_assert_eq!(got, Some(payload));
    }
}
