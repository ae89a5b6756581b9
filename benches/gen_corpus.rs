//! Writes a benchmark corpus to disk (a dev tool, not a benchmark; `harness = false`):
//!
//! ```text
//! cargo bench --bench gen_corpus -- --mode mixed --size 1G -o /tmp/mixed.pcap
//! cargo bench --bench gen_corpus -- --mode kms --calls 100000 -o /tmp/kms.pcap
//! ```
//!
//! Options: `--mode mixed|kms`, `--size SIZE` (mixed; K/M/G suffixes, default 1G), `--kms-pct PCT`
//! (mixed; default 3), `--calls N` (kms; default 100000), `--concurrency N`, `--seed N`, `-o FILE`.
//! Writes FILE and FILE.manifest.json. Run without `-o` (as `cargo bench` does) it does nothing.

#[path = "common/corpus.rs"]
mod corpus;

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

use corpus::{CorpusConfig, Mode};

fn usage() -> &'static str {
    "usage: gen_corpus [--mode mixed|kms] [--size SIZE] [--kms-pct PCT] [--calls N] \
     [--concurrency N] [--seed N] -o FILE"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut mode = Mode::Mixed;
    let mut size = 1u64 << 30;
    let mut pct = 3.0f64;
    let mut calls = 100_000u64;
    let mut conc = None;
    let mut seed = 1u64;
    let mut out = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let ok = match a {
            "--bench" => {
                i += 1;
                continue;
            }
            "-m" | "--mode" => match val.as_str() {
                "mixed" => {
                    mode = Mode::Mixed;
                    true
                }
                "kms" => {
                    mode = Mode::Kms;
                    true
                }
                _ => false,
            },
            "-s" | "--size" => corpus::parse_size(&val).map(|v| size = v).is_some(),
            "-p" | "--kms-pct" => val.parse().map(|v| pct = v).is_ok(),
            "-n" | "--calls" => val.parse().map(|v| calls = v).is_ok(),
            "-c" | "--concurrency" => val.parse().map(|v| conc = Some(v)).is_ok(),
            "-r" | "--seed" => val.parse().map(|v| seed = v).is_ok(),
            "-o" | "--out" => {
                out = Some(val.clone());
                true
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ => false,
        };
        if !ok {
            eprintln!("gen_corpus: bad option {a} {val}\n{}", usage());
            return ExitCode::from(2);
        }
        i += 2;
    }
    let Some(out) = out else {
        // `cargo bench` runs every bench target with `--bench`: nothing to do without -o.
        println!(
            "gen_corpus: no -o FILE given, nothing written ({})",
            usage()
        );
        return ExitCode::SUCCESS;
    };
    let mut cfg = match mode {
        Mode::Mixed => CorpusConfig::mixed(size),
        Mode::Kms => CorpusConfig::kms(calls),
    };
    cfg.kms_share = pct / 100.0;
    if mode == Mode::Kms {
        cfg.kms_share = 1.0;
    }
    if let Some(c) = conc {
        cfg.concurrency = c;
    }
    cfg.seed = seed;
    let started = Instant::now();
    let file = match File::create(&out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gen_corpus: cannot create {out}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let m = match corpus::write_corpus(&cfg, file) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("gen_corpus: writing {out}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = m.to_json();
    if let Err(e) = std::fs::write(format!("{out}.manifest.json"), &json) {
        eprintln!("gen_corpus: writing the manifest: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "gen_corpus: wrote {out}: {} packets, {} bytes, {} KMS calls {:?} in {:.1} s",
        m.packets,
        m.bytes,
        m.kms_calls,
        m.calls_by_version,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
