//! Batched hand-off ([`Engine::packet_batched`], used by `read` for runs of plain records) against
//! packet-by-packet hand-off ([`Engine::packet`]): the same events in the same order, byte for
//! byte, on the interop captures, the hostile captures, and generated corpora (one of them with
//! broken request stubs, so that calls raise anomalies while other calls wait in a batch). Also
//! through `run::analyze_source_into`, the driver `read` uses, and with flushes at arbitrary
//! points.

#[path = "../benches/common/corpus.rs"]
mod corpus;

use std::io;
use std::path::{Path, PathBuf};

use kmsscope::capture::{Next, Opened, RawPacket, open_path};
use kmsscope::engine::{Engine, EngineConfig, KEPT_BATCH, Out};
use kmsscope::event::Event;
use kmsscope::output::Sink;
use kmsscope::run::{RunOptions, analyze_source_into};

/// Every event as its JSON line.
#[derive(Default)]
struct Lines(Vec<String>);

impl Out for Lines {
    fn event(&mut self, ev: &Event) {
        self.0.push(serde_json::to_string(ev).expect("json"));
    }
}

impl Sink for Lines {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        Out::event(self, ev);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Records how the events arrived: the size of each batch.
struct Batches<'a> {
    lines: &'a mut Lines,
    sizes: Vec<usize>,
}

impl Out for Batches<'_> {
    fn event(&mut self, ev: &Event) {
        self.sizes.push(1);
        Out::event(self.lines, ev);
    }

    fn events(&mut self, evs: &[Event]) {
        self.sizes.push(evs.len());
        for ev in evs {
            Out::event(self.lines, ev);
        }
    }
}

/// The events of `path`, each packet handed over with `packet` (`batched` false) or
/// `packet_batched` with a flush after every `flush_every` packets (never when 0).
fn events(path: &Path, batched: bool, flush_every: usize) -> (Vec<String>, Vec<usize>) {
    let mut lines = Lines::default();
    let mut out = Batches {
        lines: &mut lines,
        sizes: Vec::new(),
    };
    let name = path.to_str().expect("utf-8 path");
    let Ok(sources) = open_path(name) else {
        return (Vec::new(), Vec::new());
    };
    for item in sources {
        let Ok(Opened::Source(mut src)) = item else {
            continue;
        };
        let mut engine = Engine::new(src.name(), EngineConfig::default());
        let mut n = 0usize;
        let mut hand = |engine: &mut Engine, pkt: &RawPacket<'_>, out: &mut Batches<'_>| {
            n += 1;
            if batched {
                engine.packet_batched(pkt, out);
                if flush_every > 0 && n.is_multiple_of(flush_every) {
                    engine.flush(out);
                }
            } else {
                engine.packet(pkt, out);
            }
        };
        // The loop of `run::analyze_source_into`: runs of plain records, then the next item.
        loop {
            src.fast_packets(&mut |pkt| {
                hand(&mut engine, pkt, &mut out);
                true
            });
            match src.next_item() {
                Ok(Next::Packet(pkt)) => hand(&mut engine, &pkt, &mut out),
                Ok(Next::Tick) => engine.summary_now(&mut out),
                Ok(Next::End) => break,
                Err(e) => {
                    engine.read_error(&e.to_string(), &mut out);
                    break;
                }
            }
            for notice in src.take_notices() {
                engine.notice(&notice, &mut out);
            }
        }
        for notice in src.take_notices() {
            engine.notice(&notice, &mut out);
        }
        engine.finish(&mut out);
    }
    let sizes = out.sizes;
    (lines.0, sizes)
}

/// The events of `path` through the driver of `read`.
fn driver_events(path: &Path) -> Vec<String> {
    let mut lines = Lines::default();
    let name = path.to_str().expect("utf-8 path");
    let Ok(sources) = open_path(name) else {
        return Vec::new();
    };
    for item in sources {
        let Ok(Opened::Source(src)) = item else {
            continue;
        };
        let _ = analyze_source_into(src, &RunOptions::default(), &mut lines);
    }
    lines.0
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "kmsscope-batched-{}-{name}.pcap",
        std::process::id()
    ));
    std::fs::write(&path, bytes).expect("write capture");
    path
}

/// Asserts that every way of handing the events over gives those of `packet`; returns them and
/// the largest batch seen.
fn assert_same(path: &Path) -> (Vec<String>, usize) {
    let (one, one_sizes) = events(path, false, 0);
    assert!(one_sizes.iter().all(|&s| s == 1), "{}", path.display());
    let mut largest = 0;
    for flush_every in [0, 1, 7, 100] {
        let (batched, sizes) = events(path, true, flush_every);
        assert_eq!(
            batched.len(),
            one.len(),
            "{} every {flush_every}",
            path.display()
        );
        for (i, (a, b)) in one.iter().zip(&batched).enumerate() {
            assert_eq!(
                a,
                b,
                "{} event {i}, flush every {flush_every}",
                path.display()
            );
        }
        largest = largest.max(sizes.iter().copied().max().unwrap_or(0));
    }
    assert_eq!(
        driver_events(path),
        one,
        "{} through the driver",
        path.display()
    );
    (one, largest)
}

fn dir_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.extension()
                .is_some_and(|e| e == "json" || e == "txt" || e == "md")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn interop_and_hostile_captures_same_events() {
    let mut kms = 0;
    for path in dir_files("captures/interop")
        .into_iter()
        .chain(dir_files("tests/hostile"))
    {
        let (one, _) = assert_same(&path);
        kms += kms_events(&one);
    }
    assert!(kms >= 20, "the interop captures hold calls ({kms})");
}

/// The number of `kms` events among `lines`.
fn kms_events(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains(r#""event":"kms""#))
        .count()
}

/// [`assert_same`] on a generated corpus; checks that every call put in came out.
fn assert_same_corpus(name: &str, cfg: &corpus::CorpusConfig) -> usize {
    let (bytes, manifest) = corpus::corpus_bytes(cfg);
    let path = temp_file(name, &bytes);
    let (one, largest) = assert_same(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(kms_events(&one) as u64, manifest.kms_calls, "{name}");
    largest
}

#[test]
fn kms_corpus_same_events_in_full_batches() {
    let largest = assert_same_corpus("kms", &corpus::CorpusConfig::kms(3_000));
    assert_eq!(
        largest, KEPT_BATCH,
        "calls were handed over in full batches"
    );
}

#[test]
fn mixed_corpus_same_events() {
    assert_same_corpus("mixed", &corpus::CorpusConfig::mixed(8 << 20));
}

/// A KMS corpus with the length word at the start of every 40th request stub broken, so that
/// calls raise their `stub_mismatch` anomaly (emitted just before the call's own event) while
/// other calls wait in the batch.
#[test]
fn damaged_corpus_same_events() {
    let (mut bytes, _) = corpus::corpus_bytes(&corpus::CorpusConfig::kms(2_000));
    // DCE/RPC request headers (version 5.0, type 0, first and last fragment): the stub follows
    // the 24-byte header; its first word is the NDR size of the request.
    let mut requests = 0;
    let mut at = 0;
    while let Some(p) = bytes[at..]
        .windows(4)
        .position(|w| w == [5, 0, 0, 3])
        .map(|p| p + at)
    {
        at = p + 4;
        if p + 28 <= bytes.len() {
            requests += 1;
            if requests % 40 == 0 {
                bytes[p + 25] ^= 0x40;
            }
        }
    }
    let path = temp_file("damaged", &bytes);
    let (one, _) = assert_same(&path);
    let _ = std::fs::remove_file(&path);
    // A call's own anomaly right after an event of the batch (its bind_ack or another call's).
    let kinds: Vec<&str> = one
        .iter()
        .map(|l| {
            if l.contains(r#""event":"kms""#) {
                "kms"
            } else if l.contains(r#""event":"rpc""#) {
                "rpc"
            } else if l.contains(r#""kind":"stub_mismatch""#) {
                "stub_mismatch"
            } else {
                "other"
            }
        })
        .collect();
    assert!(
        kinds
            .windows(3)
            .filter(|w| w[0] != "other" && w[1..] == ["stub_mismatch", "kms"])
            .count()
            >= 10,
        "calls with their anomaly between calls"
    );
}
