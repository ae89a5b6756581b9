//! `kmsscope live` / `kmsscope interfaces` on the command line, without touching the network:
//! a build without the `live` feature says how to get live capture; a build with it documents
//! its options.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kmsscope");

#[cfg(not(feature = "live"))]
#[test]
fn without_the_feature_live_says_how_to_build_it() {
    for args in [&["live", "-i", "eth0"][..], &["interfaces"][..]] {
        let out = Command::new(BIN).args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("this build has no live capture"), "{err}");
        assert!(err.contains("--features live"), "{err}");
        assert!(err.contains("libpcap-dev"), "{err}");
    }
}

#[test]
fn live_help_lists_the_options() {
    let out = Command::new(BIN)
        .args(["live", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--interface",
        "--filter",
        "tcp port 1688 or port 53",
        "--jsonl",
        "--no-tui",
        "--summary-every",
        "--write-pcap",
        "--user",
        "--buffer-size",
    ] {
        assert!(help.contains(opt), "{opt} missing from:\n{help}");
    }
}

#[test]
fn live_needs_an_interface() {
    let out = Command::new(BIN).arg("live").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interface"));
}
