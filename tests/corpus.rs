//! The benchmark corpus generator (`benches/common/corpus.rs`) against `kmsscope read`: every call
//! the generator put in comes out as one `kms` event with its version, valid integrity, and the
//! right status; DNS queries and checksums are as the manifest says; same seed, same bytes.

#[path = "../benches/common/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use corpus::{CorpusConfig, Manifest};
use serde_json::Value;

/// Writes `bytes` to a temporary file and returns every event of `kmsscope read FILE --jsonl -`.
fn read_events(name: &str, bytes: &[u8]) -> Vec<Value> {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "kmsscope-corpus-{}-{name}.pcap",
        std::process::id()
    ));
    std::fs::write(&path, bytes).expect("write corpus");
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .arg("read")
        .arg(&path)
        .args(["--jsonl", "-"])
        .output()
        .expect("run kmsscope");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "kmsscope failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Checks the `kms` events against the manifest: count per version and NDR, every request valid,
/// every answered call's response valid, refusals as generated, nothing unanswered.
fn check_calls(events: &[Value], m: &Manifest) {
    let kms: Vec<&Value> = events.iter().filter(|e| e["event"] == "kms").collect();
    assert_eq!(kms.len() as u64, m.kms_calls, "kms events vs calls put in");
    let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_ndr: BTreeMap<String, u64> = BTreeMap::new();
    let (mut refused, mut insufficient) = (0u64, 0u64);
    for e in &kms {
        *by_version
            .entry(e["version"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
        *by_ndr
            .entry(e["ndr"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
        assert_eq!(e["integrity"]["request"], "valid", "{e}");
        assert!(
            e["integrity"]["failures"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{e}"
        );
        match e["status"].as_str() {
            Some("answered") => {
                assert_eq!(e["integrity"]["response"], "valid", "{e}");
                match e["outcome"].as_str() {
                    Some("activated") => {}
                    Some("count_insufficient") => insufficient += 1,
                    o => panic!("outcome {o:?}: {e}"),
                }
            }
            Some("refused") => refused += 1,
            s => panic!("status {s:?}: {e}"),
        }
    }
    assert_eq!(by_version, m.calls_by_version);
    assert_eq!(by_ndr, m.calls_by_ndr);
    assert_eq!(refused, m.kms_refused);
    assert_eq!(insufficient, m.kms_count_insufficient);
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    assert_eq!(summary["kms_calls"].as_u64(), Some(m.kms_calls));
    assert_eq!(summary["packets"].as_u64(), Some(m.packets));
    let anomalies: Vec<&Value> = events.iter().filter(|e| e["event"] == "anomaly").collect();
    assert!(anomalies.is_empty(), "anomalies: {anomalies:?}");
}

#[test]
fn mixed_corpus_every_call_decoded() {
    let mut cfg = CorpusConfig::mixed(4 << 20);
    cfg.kms_share = 0.5;
    cfg.seed = 3;
    let (bytes, m) = corpus::corpus_bytes(&cfg);
    assert_eq!(bytes.len() as u64, m.bytes);
    assert!(m.bytes >= 4 << 20);
    assert!(m.kms_calls >= 250, "{}", m.to_json());
    assert!(m.calls_by_version.len() == 3 && m.calls_by_ndr.len() == 2);
    assert!(m.kms_refused > 0 && m.alter_contexts > 0 && m.split_pdus > 0);
    assert!(m.bulk_flows > 0 && m.srv_queries > 0 && m.ntp > 0 && m.icmp > 0 && m.arp > 0);
    assert_eq!(
        corpus::verify_checksums(&bytes),
        Ok(m.packets - m.arp),
        "every IPv4 packet's checksums"
    );
    let events = read_events("mixed", &bytes);
    check_calls(&events, &m);
    let dns = events.iter().filter(|e| e["event"] == "dns").count() as u64;
    assert_eq!(dns, m.dns_queries);
}

#[test]
fn kms_only_corpus_every_call_decoded() {
    let (bytes, m) = corpus::corpus_bytes(&CorpusConfig::kms(2000));
    assert!(m.kms_calls >= 2000 && m.kms_calls < 2004);
    assert_eq!(m.packets, m.kms_packets);
    assert!(m.clients > 500, "{}", m.to_json());
    assert_eq!(corpus::verify_checksums(&bytes), Ok(m.packets));
    check_calls(&read_events("kms", &bytes), &m);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = CorpusConfig::mixed(1 << 20);
    let (a, ma) = corpus::corpus_bytes(&cfg);
    let (b, _) = corpus::corpus_bytes(&cfg);
    assert!(a == b);
    let mut cfg2 = cfg.clone();
    cfg2.seed = 2;
    let (c, mc) = corpus::corpus_bytes(&cfg2);
    assert!(a != c);
    assert_ne!(ma.to_json(), mc.to_json());
    // Streaming to a writer gives the same bytes as building in memory.
    let mut v = Vec::new();
    let m = corpus::write_corpus(&cfg, &mut v).expect("write");
    assert!(v == a && m.to_json() == ma.to_json());
}

#[test]
fn sizes_parse() {
    assert_eq!(corpus::parse_size("64M"), Some(64 << 20));
    assert_eq!(corpus::parse_size("1g"), Some(1 << 30));
    assert_eq!(corpus::parse_size("512K"), Some(512 << 10));
    assert_eq!(corpus::parse_size("1000"), Some(1000));
    assert_eq!(corpus::parse_size("x"), None);
}
