//! BENCH-ONLY helpers shared by the divan benches: the corpora (sizes from the environment), a
//! counting sink, and running the whole pipeline over bytes in memory.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::LazyLock;

use kmsscope::capture::{self, Opened, PacketSource};
use kmsscope::event::Event;
use kmsscope::output::Sink;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::run::{self, RunOptions};

use super::corpus::{self, CorpusConfig, Manifest};

/// A corpus in memory (leaked: it lives as long as the bench process).
pub struct Corpus {
    pub bytes: &'static [u8],
    pub manifest: Manifest,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn make(cfg: &CorpusConfig) -> Corpus {
    let (v, manifest) = corpus::corpus_bytes(cfg);
    Corpus {
        bytes: v.leak(),
        manifest,
    }
}

/// KMS-only corpus: `KMSSCOPE_BENCH_KMS_CALLS` calls (default 20000).
pub static KMS: LazyLock<Corpus> = LazyLock::new(|| {
    make(&CorpusConfig::kms(env_u64(
        "KMSSCOPE_BENCH_KMS_CALLS",
        20_000,
    )))
});

/// Mixed corpus: `KMSSCOPE_BENCH_MIXED_MIB` MiB (default 64), 3% KMS packets.
pub static MIXED: LazyLock<Corpus> = LazyLock::new(|| {
    make(&CorpusConfig::mixed(
        env_u64("KMSSCOPE_BENCH_MIXED_MIB", 64) << 20,
    ))
});

/// Counts `kms` events into a shared cell and forwards every event to an inner sink.
pub struct Counting<S: Sink> {
    pub inner: S,
    pub kms: Rc<Cell<u64>>,
}

impl<S: Sink> Sink for Counting<S> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if ev.event == "kms" {
            self.kms.set(self.kms.get() + 1);
        }
        self.inner.event(ev)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

/// Collects every event.
#[derive(Default)]
pub struct Collect(pub Rc<RefCell<Vec<Event>>>);

impl Sink for Collect {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.0.borrow_mut().push(ev.clone());
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The only capture source in `bytes`.
pub fn source(bytes: &'static [u8]) -> Box<dyn PacketSource + Send> {
    let mut sources =
        capture::open_reader("bench.pcap", Box::new(io::Cursor::new(bytes))).expect("corpus opens");
    match sources.next() {
        Some(Ok(Opened::Source(src))) => src,
        _ => panic!("corpus is one capture"),
    }
}

/// `kmsscope read FILE --jsonl /dev/null` in memory: the whole pipeline over `bytes`, JSON Lines
/// written to `io::sink()`. Returns the number of `kms` events.
pub fn read_to_jsonl_sink(bytes: &'static [u8]) -> u64 {
    let kms = Rc::new(Cell::new(0));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Counting {
        inner: JsonlSink::new(io::sink(), false),
        kms: kms.clone(),
    })];
    run::analyze_source(source(bytes), &RunOptions::default(), &mut sinks).expect("analysis runs");
    for s in &mut sinks {
        s.finish().expect("sink");
    }
    kms.get()
}

/// Every event of the pipeline over `bytes`.
pub fn events(bytes: &'static [u8]) -> Vec<Event> {
    let all = Rc::new(RefCell::new(Vec::new()));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Collect(all.clone()))];
    run::analyze_source(source(bytes), &RunOptions::default(), &mut sinks).expect("analysis runs");
    drop(sinks);
    Rc::try_unwrap(all)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}
