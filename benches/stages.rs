//! One divan bench per pipeline stage, on the generated corpora (see `benches/common/corpus.rs`),
//! so that a change can be measured where it happens:
//!
//! * `capture_read`: the pcap reader over the mixed corpus in memory (records out, nothing else);
//! * `decode`: link/IP/TCP/UDP decoding of the mixed corpus's packets (already read);
//! * `engine`: everything after the reader (decode, flows, reassembly, DCE/RPC, KMS, DNS, analysis
//!   state), events dropped, on both corpora;
//! * `reassembly`: one TCP direction of full-size segments, in order and with 5% swapped pairs;
//! * `dcerpc_session`: KMS connections' PDUs through [`Session`] (binds, calls paired);
//! * `kms_decode`: `decode_request` + `decode_response` + `outcome` per protocol version;
//! * `checks`: `analysis::checks::run` on the state of the KMS-only corpus (many clients);
//! * `jsonl`: JSON Lines serialisation of `kms` events into `io::sink()`.
//!
//! `cargo bench --bench stages`; corpus sizes come from `KMSSCOPE_BENCH_KMS_CALLS` and
//! `KMSSCOPE_BENCH_MIXED_MIB` as in the `read` bench.

#[path = "common/corpus.rs"]
mod corpus;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/walk.rs"]
mod walk;

use std::io;
use std::sync::LazyLock;

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};

use kmsscope::Direction;
use kmsscope::capture::{LinkType, RawPacket};
use kmsscope::dcerpc::{CloseReason, RpcEvent, Session};
use kmsscope::decode::Decoder;
use kmsscope::engine::{Engine, EngineConfig};
use kmsscope::event::Event;
use kmsscope::flow::stream::Stream;
use kmsscope::kms::{self, KmsVersion};
use kmsscope::output::Sink;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::time::Ts;

use harness::{KMS, MIXED};

fn main() {
    divan::main();
}

/// Every packet record of a corpus, as the capture reader would hand it over.
fn packets(bytes: &'static [u8]) -> Vec<RawPacket<'static>> {
    let mut v = Vec::new();
    let Ok((mut rest, _)) = pcap_parser::parse_pcap_header(bytes) else {
        return v;
    };
    while let Ok((r, b)) = pcap_parser::parse_pcap_frame(rest) {
        v.push(RawPacket {
            frame: v.len() as u64 + 1,
            ts: Ts::from_parts(i64::from(b.ts_sec), i64::from(b.ts_usec) * 1000),
            link: LinkType::ETHERNET,
            data: b.data,
            orig_len: b.origlen,
        });
        rest = r;
    }
    v
}

static MIXED_PACKETS: LazyLock<Vec<RawPacket<'static>>> = LazyLock::new(|| packets(MIXED.bytes));
static KMS_PACKETS: LazyLock<Vec<RawPacket<'static>>> = LazyLock::new(|| packets(KMS.bytes));

#[divan::bench(sample_count = 10, sample_size = 1)]
fn capture_read(b: Bencher) {
    let c = &*MIXED;
    b.counter(BytesCount::new(c.bytes.len()))
        .counter(ItemsCount::new(c.manifest.packets))
        .bench(|| {
            let mut src = harness::source(black_box(c.bytes));
            let mut n = 0u64;
            while let Ok(Some(p)) = src.next_packet() {
                n += u64::from(p.orig_len);
            }
            n
        });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn decode(b: Bencher) {
    let pkts = &*MIXED_PACKETS;
    b.counter(BytesCount::new(MIXED.bytes.len()))
        .counter(ItemsCount::new(pkts.len()))
        .bench(|| {
            let mut d = Decoder::new();
            let mut n = 0usize;
            for p in pkts {
                if let Ok(Some(x)) = d.decode(p) {
                    n += usize::from(matches!(x.transport, kmsscope::decode::Transport::Tcp(_)));
                }
            }
            n
        });
}

fn run_engine(pkts: &[RawPacket<'static>]) -> usize {
    let mut e = Engine::new("bench", EngineConfig::default());
    let mut n = 0usize;
    let mut out = |ev: &Event| n += usize::from(ev.event == "kms");
    // As `read` hands a run of records over: calls in batches (`finish` hands on the last).
    for p in pkts {
        e.packet_batched(p, &mut out);
    }
    e.finish(&mut out);
    n
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod engine {
    use super::*;

    /// Everything after the capture reader, mixed corpus; items are KMS calls.
    #[divan::bench]
    fn mixed(b: Bencher) {
        let pkts = &*MIXED_PACKETS;
        b.counter(BytesCount::new(MIXED.bytes.len()))
            .counter(ItemsCount::new(MIXED.manifest.kms_calls))
            .bench(|| run_engine(pkts));
    }

    /// Everything after the capture reader, KMS-only corpus; items are KMS calls.
    #[divan::bench]
    fn kms_only(b: Bencher) {
        let pkts = &*KMS_PACKETS;
        b.counter(BytesCount::new(KMS.bytes.len()))
            .counter(ItemsCount::new(KMS.manifest.kms_calls))
            .bench(|| run_engine(pkts));
    }
}

// ------------------------------------------------------------------------------------------------
// Reassembly

const SEGMENTS: usize = 20_000;

/// `(seq, payload)` of one direction of a bulk download; `swap_every`: swap each n-th pair.
fn bulk_segments(swap_every: usize) -> Vec<(u32, Vec<u8>)> {
    let isn = 0xfff0_0000u32; // wraps during the stream
    let mut v: Vec<(u32, Vec<u8>)> = (0..SEGMENTS)
        .map(|i| {
            let seq = isn.wrapping_add((i * corpus::MSS) as u32);
            (seq, vec![(i % 251) as u8; corpus::MSS])
        })
        .collect();
    if swap_every > 0 {
        for i in (0..SEGMENTS - 1).step_by(swap_every) {
            v.swap(i, i + 1);
        }
    }
    v
}

fn reassemble(segs: &[(u32, Vec<u8>)]) -> u64 {
    let mut s = Stream::new();
    let mut total = 0u64;
    for (seq, p) in segs {
        s.on_segment_with(*seq, p, false, |ready| {
            total += ready.len() as u64;
            ready.len()
        });
    }
    total
}

#[divan::bench_group(sample_count = 20)]
mod reassembly {
    use super::*;

    /// In-order full-size segments, everything consumed as it arrives.
    #[divan::bench]
    fn in_order(b: Bencher) {
        let segs = bulk_segments(0);
        b.counter(BytesCount::new(SEGMENTS * corpus::MSS))
            .bench(|| reassemble(black_box(&segs)));
    }

    /// Every 20th pair of segments swapped (5% out of order).
    #[divan::bench]
    fn reordered_5pct(b: Bencher) {
        let segs = bulk_segments(20);
        b.counter(BytesCount::new(SEGMENTS * corpus::MSS))
            .bench(|| reassemble(black_box(&segs)));
    }
}

// ------------------------------------------------------------------------------------------------
// DCE/RPC

#[divan::bench(sample_count = 20)]
fn dcerpc_session(b: Bencher) {
    let scripts = corpus::kms_scripts(7, 2000, 1);
    let calls: usize = scripts.iter().map(|s| s.calls.len()).sum();
    b.counter(ItemsCount::new(calls)).bench(|| {
        let mut out: Vec<RpcEvent> = Vec::with_capacity(8);
        let mut n = 0usize;
        for (i, s) in scripts.iter().enumerate() {
            let mut sess = Session::new(true);
            let ts = Ts(i as i64 * 1000);
            for (k, (to_server, pdu)) in s.pdus.iter().enumerate() {
                let dir = if *to_server {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                sess.on_data(dir, pdu, k as u64, ts, &mut out);
            }
            sess.on_close(CloseReason::ConnectionClosed, 0, ts, &mut out);
            n += out
                .drain(..)
                .filter(|e| matches!(e, RpcEvent::Call(_)))
                .count();
        }
        n
    });
}

// ------------------------------------------------------------------------------------------------
// KMS

const KMS_MESSAGES: usize = 1000;

/// Decrypt and validate a request and its response (and the outcome), per protocol version.
#[divan::bench(args = [4, 5, 6], sample_count = 20)]
fn kms_decode(b: Bencher, major: u16) {
    let v = KmsVersion { major, minor: 0 };
    let msgs = corpus::kms_messages(11, v, KMS_MESSAGES);
    b.counter(ItemsCount::new(KMS_MESSAGES)).bench(|| {
        let mut valid = 0usize;
        for (q, a) in &msgs {
            let rq = kms::decode_request(black_box(q));
            let ra = kms::decode_response(&rq, black_box(a));
            valid += usize::from(kms::outcome(&rq, &ra) == kms::Outcome::Activated);
        }
        assert_eq!(valid, KMS_MESSAGES);
        valid
    });
}

// ------------------------------------------------------------------------------------------------
// Analysis and output

/// The checks over the state rebuilt from the KMS-only corpus (one entry per client).
#[divan::bench(sample_count = 20)]
fn checks(b: Bencher) {
    let mut e = Engine::new("bench", EngineConfig::default());
    for p in KMS_PACKETS.iter() {
        e.packet(p, &mut |_: &Event| {});
    }
    let policy = EngineConfig::default().policy;
    b.counter(ItemsCount::new(e.state().clients.len()))
        .bench(|| kmsscope::analysis::checks::run(black_box(e.state()), &policy).len());
}

static KMS_EVENTS: LazyLock<Vec<Event>> = LazyLock::new(|| {
    harness::events(KMS.bytes)
        .into_iter()
        .filter(|e| e.event == "kms")
        .take(5000)
        .collect()
});

/// JSON Lines of `kms` events (each with request, response and integrity).
#[divan::bench(sample_count = 20)]
fn jsonl_kms_events(b: Bencher) {
    let evs = &*KMS_EVENTS;
    b.counter(ItemsCount::new(evs.len())).bench(|| {
        let mut s = JsonlSink::new(io::sink(), false);
        for ev in evs {
            s.event(ev).expect("sink");
        }
        s.finish().expect("sink");
    });
}
