//! Running the built `kmsscope` binary on the third-party captures and reading its JSON Lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `captures/interop/` of this checkout.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/interop")
}

/// Runs `kmsscope read FILE --jsonl - EXTRA...` and returns the events; panics (failing the test)
/// when the run fails or a line is not JSON.
pub fn run_jsonl(capture: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .arg("read")
        .arg(capture)
        .args(["--jsonl", "-"])
        .args(extra)
        .output()
        .expect("run kmsscope");
    assert!(
        out.status.success(),
        "kmsscope failed on {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}
