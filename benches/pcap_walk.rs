//! The bare pcap-parser pass over a capture file, for `benches/compare.sh` (a dev tool, not a
//! benchmark; `harness = false`): `cargo bench --bench pcap_walk -- FILE`. Prints packets, bytes
//! and the rate. Run without a file (as `cargo bench` does) it does nothing.

#[path = "common/walk.rs"]
mod walk;

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        println!("pcap_walk: no FILE given, nothing to do (usage: pcap_walk FILE...)");
        return ExitCode::SUCCESS;
    }
    for f in &files {
        let started = Instant::now();
        let file = match File::open(f) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("pcap_walk: {f}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match walk::walk_reader(file) {
            Ok(w) => {
                let s = started.elapsed().as_secs_f64();
                println!(
                    "{f}: {} packets, {} captured bytes in {s:.3} s ({:.2} GB/s of packet data, xor {:02x})",
                    w.packets,
                    w.bytes,
                    w.bytes as f64 / s / 1e9,
                    w.xor
                );
            }
            Err(e) => {
                eprintln!("pcap_walk: {f}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
