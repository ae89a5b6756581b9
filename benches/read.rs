//! End-to-end `read` throughput, next to the bare pcap-parser record walk over the same bytes in
//! the same run (the limit any reader of the file can reach), on two generated corpora:
//!
//! * `kms_only`: KMS connections only, `KMSSCOPE_BENCH_KMS_CALLS` calls (default 20000), every call
//!   decrypted and validated: items/s is calls/s;
//! * `mixed`: `KMSSCOPE_BENCH_MIXED_MIB` MiB (default 64) of bulk TCP, DNS, NTP, ICMP and ARP with
//!   3% KMS packets: bytes/s against the walk's bytes/s.
//!
//! `kmsscope_read` is `kmsscope read FILE --jsonl /dev/null` without the file system: the capture
//! reader over the bytes in memory, the whole pipeline, JSON Lines into `io::sink()`. Before
//! measuring, each corpus is read once and the number of `kms` events checked against the
//! generator's manifest (no call lost).
//!
//! `cargo bench --bench read`; `benches/compare.sh` does the same against other tools on files.

#[path = "common/corpus.rs"]
mod corpus;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/walk.rs"]
mod walk;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};

use harness::{Corpus, KMS, MIXED, read_to_jsonl_sink};

fn main() {
    for (name, c) in [("kms_only", &*KMS), ("mixed", &*MIXED)] {
        let calls = read_to_jsonl_sink(c.bytes);
        assert_eq!(
            calls, c.manifest.kms_calls,
            "{name}: kms events vs calls in the corpus"
        );
        eprintln!(
            "corpus {name}: {} bytes, {} packets, {} KMS calls {:?}",
            c.bytes.len(),
            c.manifest.packets,
            c.manifest.kms_calls,
            c.manifest.calls_by_version
        );
    }
    divan::main();
}

fn read(b: Bencher, c: &'static Corpus) {
    b.counter(BytesCount::new(c.bytes.len()))
        .counter(ItemsCount::new(c.manifest.kms_calls))
        .bench(|| read_to_jsonl_sink(divan::black_box(c.bytes)));
}

fn walk(b: Bencher, c: &'static Corpus) {
    b.counter(BytesCount::new(c.bytes.len()))
        .counter(ItemsCount::new(c.manifest.kms_calls))
        .bench(|| walk::walk_slice(divan::black_box(c.bytes)));
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod kms_only {
    use super::*;

    /// The whole pipeline; items are KMS calls.
    #[divan::bench]
    fn kmsscope_read(b: Bencher) {
        read(b, &KMS);
    }

    /// pcap-parser record walk over the same bytes.
    #[divan::bench]
    fn pcap_parser_walk(b: Bencher) {
        walk(b, &KMS);
    }
}

#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod mixed {
    use super::*;

    /// The whole pipeline; items are KMS calls.
    #[divan::bench]
    fn kmsscope_read(b: Bencher) {
        read(b, &MIXED);
    }

    /// pcap-parser record walk over the same bytes.
    #[divan::bench]
    fn pcap_parser_walk(b: Bencher) {
        walk(b, &MIXED);
    }
}
