//! The fuzz targets on stable Rust, in the normal test suite (and so in CI): every input of the
//! committed corpora (`tests/fuzz/corpus/<target>/`, seeds plus what the 10-minute libFuzzer runs
//! kept, minimised) and every crash found (`tests/fuzz/regressions/<target>/`) is replayed through
//! the same harness the cargo-fuzz targets use, then a bounded, deterministic mutation run
//! (bit flips, byte changes, cuts, splices, insertions) exercises each target further.
//!
//! `KMSSCOPE_FUZZ_ITERS` sets the mutations per target (default 1500; the engine target runs a
//! fifth of it). A failing input is written to the temporary directory and its path printed.

#[path = "fuzz/harness.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("capture_reader", harness::capture_reader),
    ("dcerpc_session", harness::dcerpc_session),
    ("kms_decode", harness::kms_decode),
    ("dns", harness::dns),
    ("engine", harness::engine),
];

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target)
}

/// The files of a directory, sorted (none when it does not exist).
fn inputs(d: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(d) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".md") {
                return None;
            }
            std::fs::read(e.path()).ok().map(|b| (name, b))
        })
        .collect();
    v.sort();
    v
}

/// Runs one input; on a panic, saves it and fails with the path.
fn exercise(target: &str, f: Target, what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(data))).is_err() {
        let p = std::env::temp_dir().join(format!(
            "kmsscope-fuzz-failure-{target}-{}.bin",
            std::process::id()
        ));
        let _ = std::fs::write(&p, data);
        panic!(
            "{target}: {what} panicked; input saved to {} (replay with cargo +nightly fuzz run \
             --fuzz-dir tests/fuzz {target} FILE)",
            p.display()
        );
    }
}

#[test]
fn corpora_and_regressions_replay() {
    for (name, f) in TARGETS {
        let corpus = inputs(&dir("corpus", name));
        assert!(!corpus.is_empty(), "{name}: no seed corpus");
        let regressions = inputs(&dir("regressions", name));
        for (file, data) in corpus.iter().chain(regressions.iter()) {
            exercise(name, *f, file, data);
        }
        println!(
            "{name}: {} corpus inputs and {} regressions replayed",
            corpus.len(),
            regressions.len()
        );
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Interesting values for length and count fields.
const MAGIC: &[u32] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x4_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fff0,
    0xffff_ffff,
];

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = d.len();
        match rng.below(8) {
            0 | 1 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next() as u8;
            }
            3 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = MAGIC[rng.below(MAGIC.len())];
                let b = if rng.next() & 1 == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                d[i..i + 4].copy_from_slice(&b);
            }
            4 if len > 0 => d.truncate(rng.below(len)),
            5 if !other.is_empty() => {
                // Splice: a prefix of this input and a suffix of another.
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            6 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(i..i, ins);
            }
            _ if len > 1 => {
                // Duplicate a chunk (repeated records, retransmissions).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = d[a..b].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    d.truncate(64 * 1024);
    d
}

#[test]
fn bounded_mutation_run() {
    let iters: usize = std::env::var("KMSSCOPE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    for (t, (name, f)) in TARGETS.iter().enumerate() {
        let corpus = inputs(&dir("corpus", name));
        let n = if *name == "engine" { iters / 5 } else { iters };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
        let start = std::time::Instant::now();
        for i in 0..n {
            let base = &corpus[rng.below(corpus.len())].1;
            let other = &corpus[rng.below(corpus.len())].1;
            let d = mutate(&mut rng, base, other);
            exercise(name, *f, &format!("mutation {i}"), &d);
        }
        println!(
            "{name}: {n} mutated inputs in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}
