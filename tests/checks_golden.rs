//! Golden tests of the diagnosis checks over the third-party captures in `captures/interop/`: the
//! exact set of (check, severity) per capture, the key values of the messages and subjects, facts
//! derived from each `.expect.json` (refused TCP connections, non-default SRV ports, counts below
//! the N policy, the duplicate CMID), no error or critical finding on the healthy captures, the
//! policy options, the summary's client list with its discovery chain, and the README's check table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::{interop_dir, run_jsonl};

fn capture(stem: &str) -> PathBuf {
    for ext in ["pcap", "pcapng"] {
        let p = interop_dir().join(format!("{stem}.{ext}"));
        if p.exists() {
            return p;
        }
    }
    panic!("capture {stem} not found")
}

fn expect(stem: &str) -> Value {
    let p = interop_dir().join(format!("{stem}.expect.json"));
    serde_json::from_str(&std::fs::read_to_string(p).expect("read expect")).expect("expect json")
}

fn findings(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "finding").collect()
}

fn set(events: &[Value]) -> BTreeSet<(String, String)> {
    findings(events)
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("?").to_string(),
                f["severity"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn find<'a>(events: &'a [Value], check: &str) -> Vec<&'a Value> {
    findings(events)
        .into_iter()
        .filter(|f| f["check"] == check)
        .collect()
}

fn msg(f: &Value) -> &str {
    f["message"].as_str().unwrap_or("")
}

/// Every stem with its exact (check, severity) set.
const EXPECTED: [(&str, &[(&str, &str)]); 14] = [
    ("s01_v4_win7_vm", &[("KMS-21", "info"), ("KMS-22", "info")]),
    ("s02_v4_office2010_newconn", &[("KMS-21", "info")]),
    (
        "s03_v5_server2012",
        &[
            ("KMS-09", "warning"),
            ("KMS-21", "info"),
            ("KMS-22", "info"),
        ],
    ),
    (
        "s04_v5_win8_ndr32",
        &[("KMS-09", "warning"), ("KMS-21", "info")],
    ),
    ("s05_v6_office2016_multi", &[("KMS-11", "warning")]),
    (
        "s06_v6_win10_ndr32_prevcmid",
        &[
            ("KMS-05", "info"),
            ("KMS-09", "warning"),
            ("KMS-11", "warning"),
        ],
    ),
    (
        "s07_threshold_below",
        &[("KMS-01", "error"), ("KMS-11", "warning")],
    ),
    (
        "s08_threshold_above",
        &[("KMS-11", "warning"), ("KMS-14", "warning")],
    ),
    (
        "s09_xi_vlmcs_to_pykms",
        &[
            ("KMS-02", "warning"),
            ("KMS-11", "warning"),
            ("KMS-21", "info"),
        ],
    ),
    (
        "s10_duplicate_cmid",
        &[
            ("KMS-01", "error"),
            ("KMS-04", "error"),
            ("KMS-11", "warning"),
        ],
    ),
    (
        "s11_dns_srv_ok",
        &[("DNS-08", "info"), ("KMS-11", "warning")],
    ),
    (
        "s12_dns_srv_wrong_port",
        &[
            ("DNS-06", "error"),
            ("DNS-08", "info"),
            ("DNS-09", "info"),
            ("RPC-01", "error"),
        ],
    ),
    ("s13_conn_refused", &[("RPC-01", "error")]),
    (
        "s14_ticket_combined",
        &[
            ("DNS-08", "info"),
            ("DNS-12", "info"),
            ("KMS-01", "error"),
            ("KMS-09", "warning"),
            ("KMS-11", "warning"),
            ("KMS-21", "info"),
            ("RPC-01", "error"),
        ],
    ),
];

/// Captures of working activations (README of captures/interop): no error or critical finding.
const HEALTHY: [&str; 9] = [
    "s01_v4_win7_vm",
    "s02_v4_office2010_newconn",
    "s03_v5_server2012",
    "s04_v5_win8_ndr32",
    "s05_v6_office2016_multi",
    "s06_v6_win10_ndr32_prevcmid",
    "s08_threshold_above",
    "s09_xi_vlmcs_to_pykms",
    "s11_dns_srv_ok",
];

#[test]
fn exact_finding_sets_per_capture() {
    for (stem, want) in EXPECTED {
        let events = run_jsonl(&capture(stem), &[]);
        let got = set(&events);
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .collect();
        assert_eq!(got, want, "{stem}: findings");
    }
}

#[test]
fn every_capture_is_covered_by_the_table() {
    let mut stems: Vec<String> = std::fs::read_dir(interop_dir())
        .expect("dir")
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().to_string();
            n.strip_suffix(".expect.json").map(str::to_string)
        })
        .collect();
    stems.sort();
    let table: Vec<String> = EXPECTED.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(stems, table);
}

#[test]
fn healthy_captures_have_no_error_or_critical() {
    for stem in HEALTHY {
        let events = run_jsonl(&capture(stem), &[]);
        for f in findings(&events) {
            let sev = f["severity"].as_str().unwrap_or("");
            assert!(
                sev == "info" || sev == "warning",
                "{stem}: {} {sev}: {}",
                f["check"],
                msg(f)
            );
        }
        // Derived from the expected facts: every exchange met its policy, nothing was refused.
        let e = expect(stem);
        for x in e["kms_exchanges"].as_array().expect("kms_exchanges") {
            assert_eq!(x["count_meets_policy"], true, "{stem}");
        }
    }
}

#[test]
fn findings_are_well_formed_and_counted_in_the_summary() {
    for (stem, _) in EXPECTED {
        let events = run_jsonl(&capture(stem), &[]);
        let mut per_sev = std::collections::BTreeMap::<String, u64>::new();
        let mut last_kind = "";
        for e in &events {
            let kind = e["event"].as_str().unwrap_or("");
            if kind == "finding" {
                assert_ne!(
                    last_kind, "summary",
                    "{stem}: findings come before the summary"
                );
                let id = e["check"].as_str().unwrap_or("");
                let name = kmsscope::analysis::checks::name_of(id);
                assert_ne!(name, "unknown", "{stem}: {id}");
                assert_eq!(e["name"], name, "{stem}: {id}");
                let frames: Vec<u64> = e["frames"]
                    .as_array()
                    .expect("frames")
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect();
                assert!(!frames.is_empty(), "{stem}: {id} frames");
                assert!(
                    frames.windows(2).all(|w| w[0] < w[1]),
                    "{stem}: {id} frames in order"
                );
                assert_eq!(e["frame"].as_u64(), frames.first().copied(), "{stem}: {id}");
                assert!(e["count"].as_u64().unwrap_or(0) >= 1, "{stem}: {id} count");
                assert!(!msg(e).is_empty() && !e["fix"].as_str().unwrap_or("").is_empty());
                assert!(
                    e["subject"].as_object().is_some_and(|o| !o.is_empty()),
                    "{stem}: {id} subject"
                );
                *per_sev
                    .entry(e["severity"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
            }
            last_kind = kind;
        }
        let summary = events
            .iter()
            .find(|e| e["event"] == "summary")
            .expect("summary");
        let counted: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(summary["findings"].clone()).expect("findings map");
        assert_eq!(counted, per_sev, "{stem}: summary findings");
    }
}

#[test]
fn s07_count_below_threshold_names_host_and_counts() {
    let events = run_jsonl(&capture("s07_threshold_below"), &[]);
    let k = find(&events, "KMS-01");
    assert_eq!(k.len(), 2, "Windows and Office groups");
    let win = k
        .iter()
        .find(|f| f["subject"]["product"] == "Windows 10/11 2015 (Volume)")
        .expect("windows group");
    assert_eq!(win["subject"]["host"], "127.0.0.10:1688");
    assert!(msg(win).contains("127.0.0.10:1688"), "{}", msg(win));
    assert!(msg(win).contains("count 3/25"), "{}", msg(win));
    assert!(msg(win).contains("SALES-PC03.corp.example"), "{}", msg(win));
    assert_eq!(win["predicts"], "0xC004F038");
    assert_eq!(win["count"], 3);
    assert_eq!(win["frames"], serde_json::json!([10, 24, 38]));
    let office = k
        .iter()
        .find(|f| f["subject"]["product"] == "Office 2016")
        .expect("office group");
    assert!(msg(office).contains("count 1/5"), "{}", msg(office));
}

#[test]
fn s10_duplicate_cmid_names_cmid_and_workstations() {
    let e = expect("s10_duplicate_cmid");
    let cmid = e["duplicate_cmid"].as_str().expect("duplicate_cmid");
    assert_eq!(cmid, "85b0cf33-f3b5-4d79-b32b-0167aaab763e");
    let events = run_jsonl(&capture("s10_duplicate_cmid"), &[]);
    let k = find(&events, "KMS-04");
    assert_eq!(k.len(), 1);
    assert_eq!(k[0]["subject"]["cmid"], cmid);
    assert_eq!(k[0]["count"], 4);
    for i in 1..=4 {
        let ws = format!("W10-CLONE-0{i}.corp.example");
        assert!(msg(k[0]).contains(&ws), "{}", msg(k[0]));
    }
    assert!(
        msg(k[0]).contains("4 different workstations"),
        "{}",
        msg(k[0])
    );
    assert!(!msg(k[0]).contains("W10-FRESH-01"), "{}", msg(k[0]));
    // Two distinct CMIDs and a count of 2: the host counts what it sees (no KMS-03).
    assert!(find(&events, "KMS-03").is_empty());
}

#[test]
fn s12_wrong_srv_port_and_refused_connect() {
    let events = run_jsonl(&capture("s12_dns_srv_wrong_port"), &[]);
    let d9 = find(&events, "DNS-09");
    assert_eq!(d9.len(), 1);
    assert_eq!(d9[0]["subject"]["host"], "kms1.corp.example:1689");
    assert!(msg(d9[0]).contains("port 1689"), "{}", msg(d9[0]));
    let r1 = find(&events, "RPC-01");
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0]["subject"]["server"], "10.77.0.10:1689");
    assert_eq!(r1[0]["frames"], serde_json::json!([9]));
    let d6 = find(&events, "DNS-06");
    assert_eq!(d6[0]["subject"]["server"], "10.77.0.10:1689");
    assert_eq!(d6[0]["subject"]["host"], "kms1.corp.example");
    assert!(
        msg(d6[0]).contains("non-default port 1689"),
        "{}",
        msg(d6[0])
    );
    // The connection outcome event itself.
    let connect: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "rpc" && e["pdu"] == "connect")
        .collect();
    assert_eq!(connect.len(), 1);
    assert_eq!(connect[0]["result"], "refused");
    assert_eq!(connect[0]["server"]["port"], 1689);
}

#[test]
fn s13_connection_refused() {
    let events = run_jsonl(&capture("s13_conn_refused"), &[]);
    let r1 = find(&events, "RPC-01");
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0]["subject"]["server"], "127.0.0.30:1688");
    assert_eq!(r1[0]["predicts"], "0xC004F074");
    assert!(msg(r1[0]).contains("127.0.0.1"), "{}", msg(r1[0]));
}

#[test]
fn s14_combined_ticket() {
    let events = run_jsonl(&capture("s14_ticket_combined"), &[]);
    let k1 = find(&events, "KMS-01");
    let products: BTreeSet<&str> = k1
        .iter()
        .filter_map(|f| f["subject"]["product"].as_str())
        .collect();
    assert_eq!(
        products,
        BTreeSet::from(["Windows 10/11 2015 (Volume)", "Office 2016", "Windows 7"])
    );
    assert!(k1.iter().all(|f| f["subject"]["host"] == "10.77.0.10:1688"));
    let r1 = find(&events, "RPC-01");
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0]["subject"]["server"], "10.77.0.12:1688");
    assert!(
        msg(r1[0]).contains("kms-old.corp.example"),
        "{}",
        msg(r1[0])
    );
    let d12 = find(&events, "DNS-12");
    assert_eq!(d12.len(), 1);
    assert_eq!(d12[0]["subject"]["server"], "10.77.0.12:1688");
    assert_eq!(d12[0]["subject"]["client"], "10.77.0.20");
    assert!(
        msg(d12[0]).contains("kms-old.corp.example"),
        "{}",
        msg(d12[0])
    );
    assert!(
        msg(d12[0]).contains("NOT among the published hosts"),
        "{}",
        msg(d12[0])
    );
    assert!(
        find(&events, "DNS-06").is_empty(),
        "kms-old is not an SRV target"
    );
    // Both ePIDs of the host are in one KMS-09 finding.
    let k9 = find(&events, "KMS-09");
    assert_eq!(k9.len(), 1);
    assert!(msg(k9[0]).contains("2 ePID(s)"), "{}", msg(k9[0]));
}

#[test]
fn refused_connections_of_the_expected_facts_are_reported() {
    for (stem, _) in EXPECTED {
        let e = expect(stem);
        let events = run_jsonl(&capture(stem), &[]);
        for t in e["tcp_connections"].as_array().into_iter().flatten() {
            let outcome = t["outcome"].as_str().unwrap_or("");
            let server = t["server"].as_str().unwrap_or("");
            let refused = find(&events, "RPC-01")
                .iter()
                .any(|f| f["subject"]["server"] == server);
            assert_eq!(
                refused,
                outcome.starts_with("refused"),
                "{stem}: {server} {outcome}"
            );
        }
        // Every SRV answer on a port other than 1688 gives DNS-09 for that target and port.
        for x in e["dns_exchanges"].as_array().into_iter().flatten() {
            for s in x["srv"].as_array().into_iter().flatten() {
                let port = s["port"].as_u64().unwrap_or(0);
                let host = format!("{}:{port}", s["target"].as_str().unwrap_or(""));
                let found = find(&events, "DNS-09")
                    .iter()
                    .any(|f| f["subject"]["host"] == host.as_str());
                assert_eq!(found, port != 1688, "{stem}: {host}");
            }
        }
        // Every exchange below its N policy gives KMS-01 for its host.
        for x in e["kms_exchanges"].as_array().into_iter().flatten() {
            if x["count_meets_policy"] == false {
                let server = x["server"].as_str().unwrap_or("");
                assert!(
                    find(&events, "KMS-01")
                        .iter()
                        .any(|f| f["subject"]["host"] == server),
                    "{stem}: KMS-01 for {server}"
                );
            }
        }
    }
}

#[test]
fn policy_flags_enable_allow_list_and_domain_checks() {
    let s14 = capture("s14_ticket_combined");
    // Approved host and zone: no DNS-10, KMS-12, DNS-11.
    let ok = run_jsonl(
        &s14,
        &["--allow-host", "10.77.0.10", "--kms-domain", "corp.example"],
    );
    for id in ["DNS-10", "DNS-11", "KMS-12"] {
        assert!(find(&ok, id).is_empty(), "{id}");
    }
    let by_name = run_jsonl(&s14, &["--allow-host", "*.corp.example"]);
    assert!(find(&by_name, "DNS-10").is_empty() && find(&by_name, "KMS-12").is_empty());
    // Another host approved: kms1 is unapproved, both as SRV target and as KMS session.
    let bad = run_jsonl(
        &s14,
        &["--allow-host", "10.77.0.99", "--kms-domain", "example.org"],
    );
    let d10 = find(&bad, "DNS-10");
    assert_eq!(d10.len(), 1);
    assert_eq!(d10[0]["severity"], "critical");
    assert_eq!(d10[0]["subject"]["host"], "kms1.corp.example");
    let k12 = find(&bad, "KMS-12");
    assert_eq!(k12.len(), 1);
    assert_eq!(k12[0]["subject"]["host"], "10.77.0.10:1688");
    assert!(
        msg(k12[0]).contains("not an approved KMS host"),
        "{}",
        msg(k12[0])
    );
    let d11 = find(&bad, "DNS-11");
    assert_eq!(d11.len(), 1);
    assert_eq!(d11[0]["severity"], "warning");
    assert!(msg(d11[0]).contains("example.org"), "{}", msg(d11[0]));
    // A TOML file does the same; flags add to it.
    let dir = std::env::temp_dir().join(format!("kmsscope-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cfg = dir.join("policy.toml");
    std::fs::write(
        &cfg,
        "allowed_hosts = [\"10.77.0.99\"]\nemulator_critical = true\n",
    )
    .expect("write");
    let from_file = run_jsonl(&s14, &["--config", cfg.to_str().expect("path")]);
    assert_eq!(find(&from_file, "DNS-10").len(), 1);
    assert_eq!(find(&from_file, "KMS-11")[0]["severity"], "critical");
    // A bad file is a usage error, not a silent default.
    std::fs::write(&cfg, "allowed_hostz = []\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .args([
            "read",
            s14.to_str().expect("path"),
            "--jsonl",
            "-",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_hostz"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn summary_client_list_carries_the_discovery_chain() {
    let events = run_jsonl(&capture("s14_ticket_combined"), &[]);
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let list = summary["client_list"].as_array().expect("client_list");
    assert_eq!(list.len(), 3);
    let c = list
        .iter()
        .find(|c| c["cmid"] == "34e72f41-6a97-4241-a383-108090a1737a")
        .expect("client");
    assert_eq!(
        c["workstations"],
        serde_json::json!(["FIN-PC-231.corp.example"])
    );
    assert_eq!(c["addresses"], serde_json::json!(["10.77.0.20"]));
    assert_eq!(c["last_outcome"], "count_insufficient");
    let d = &c["discovery"];
    assert_eq!(d["method"], "dns_srv");
    assert_eq!(d["srv_query"]["frame"], 23);
    assert_eq!(d["srv_query"]["rcode"], "NOERROR");
    assert_eq!(d["target"]["target"], "kms1.corp.example");
    assert_eq!(d["target"]["port"], 1688);
    assert_eq!(d["address_lookup"]["frame"], 25);
    assert_eq!(d["address_lookup"]["qtype"], "A");
    assert_eq!(
        d["address_lookup"]["answers"],
        serde_json::json!(["10.77.0.10"])
    );
    assert_eq!(d["connect"]["result"], "established");
    assert_eq!(d["bind"]["result"], "accepted");
    assert_eq!(d["call"]["frame"], 36);
    assert_eq!(d["call"]["result"], "count_insufficient");
    // Host state: ePID per product group and counts over time.
    let host = &summary["hosts"][0];
    let office = host["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["kms_name"] == "Office 2016")
        .expect("office");
    assert_eq!(
        office["epids"],
        serde_json::json!(["55041-00206-450-076659-03-19466-6002.0000-0022016"])
    );
    assert_eq!(office["count_history"][0]["count"], 1);
    assert_eq!(office["count_history"][0]["required_count"], 5);
    // s07: the count grows 1, 2, 3 and the history shows it.
    let s07 = run_jsonl(&capture("s07_threshold_below"), &[]);
    let sum = s07
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let win = sum["hosts"][0]["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["kms_name"] == "Windows 10/11 2015 (Volume)")
        .expect("win");
    let counts: Vec<u64> = win["count_history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|s| s["count"].as_u64())
        .collect();
    assert_eq!(counts, vec![1, 2, 3]);
    // No DNS in s07: the chain says so.
    let c0 = &sum["client_list"][0]["discovery"];
    assert_eq!(c0["method"], "unknown");
    assert_eq!(c0["connect"]["result"], "established");
}

#[test]
fn readme_check_table_matches_the_code() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let section = readme
        .split("\n## Checks\n")
        .nth(1)
        .expect("README has a Checks section");
    // Up to the next section (which may hold tables of its own).
    let section = section.split("\n## ").next().unwrap_or(section);
    let rows: Vec<(String, String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ID"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].to_string(),
                cells[2].trim_matches('`').to_string(),
                cells[3].to_string(),
            )
        })
        .collect();
    let code: Vec<(String, String, String)> = kmsscope::analysis::checks::CHECKS
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                c.name.to_string(),
                c.severity.as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, code);
}
