//! The Markdown report over the interop captures: `kmsscope read FILE --report -`. The assertions
//! name what must be there (verdict, host rows, DNS and connection rows), not the whole document,
//! so that findings added by the checks do not break them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/interop")
        .join(name)
}

/// Runs kmsscope with `args` and returns standard output.
fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .args(args)
        .output()
        .expect("run kmsscope");
    assert!(
        out.status.success(),
        "kmsscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 report")
}

fn report(name: &str) -> String {
    let path = capture(name);
    run(&["read", path.to_str().expect("utf-8 path"), "--report", "-"])
}

/// The verdict paragraph (the line after `## Verdict`).
fn verdict(doc: &str) -> &str {
    let mut lines = doc.lines().skip_while(|l| *l != "## Verdict");
    lines.next().expect("## Verdict heading");
    lines.find(|l| !l.is_empty()).expect("verdict text")
}

/// Undoes the report's backslash escapes of ASCII punctuation.
fn unescape_md(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn row_with<'a>(doc: &'a str, needles: &[&str]) -> &'a str {
    doc.lines()
        .find(|l| l.starts_with('|') && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no table row with {needles:?} in\n{doc}"))
}

#[test]
fn s14_ticket_names_the_low_count_and_the_refused_old_host() {
    let doc = report("s14_ticket_combined.pcapng");
    assert!(doc.starts_with("# KMS activation report: "), "{doc}");
    assert!(doc.contains("s14\\_ticket\\_combined.pcapng"));
    assert!(doc.contains("94 packets; 3 KMS calls (3 answered); 14 DNS queries"));
    let v = verdict(&doc);
    assert!(v.starts_with("Activation fails because "), "{v}");
    assert!(v.contains("10.77.0.10:1688"), "{v}");
    assert!(v.contains("1 of the 25 required for Windows 10/11"), "{v}");
    assert!(v.contains("0xC004F038"), "{v}");
    assert!(
        v.contains("kms-old.corp.example (10.77.0.12) refuses TCP 1688"),
        "{v}"
    );
    // Verdict before findings before hosts before clients before DNS.
    let order: Vec<usize> = [
        "## Verdict",
        "## Findings",
        "## KMS hosts",
        "## Clients",
        "## DNS and connections",
        "## How this was produced",
    ]
    .iter()
    .map(|h| doc.find(h).unwrap_or_else(|| panic!("no {h}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let win10 = row_with(&doc, &["10.77.0.10:1688", "Windows 10/11 2015 (Volume)"]);
    assert!(win10.contains("| 1 / 25 |"), "{win10}");
    assert!(win10.contains("BELOW threshold"), "{win10}");
    assert!(win10.contains("build 6002"), "{win10}");
    assert!(row_with(&doc, &["| Windows 7 |"]).contains("| 2 / 25 |"));
    assert!(row_with(&doc, &["| Office 2016 |"]).contains("| 1 / 5 |"));
    // Clients.
    let c = row_with(&doc, &["FIN-PC-118.corp.example"]);
    assert!(
        c.contains("Windows 7 Professional") && c.contains("| 4.0 |"),
        "{c}"
    );
    assert!(c.contains("count too low (0xC004F038)"), "{c}");
    // DNS and connections.
    let srv = row_with(&doc, &["\\_vlmcs.\\_tcp.corp.example", "| SRV |"]);
    assert!(
        srv.contains("priority 0 weight 100 port 1688 target kms1.corp.example"),
        "{srv}"
    );
    assert!(row_with(&doc, &["kms-old.corp.example", "| A |"]).contains("10.77.0.12"));
    assert!(row_with(&doc, &["10.77.0.12:1688"]).contains("refused"));
    assert!(doc.contains("not about KMS left out"));
    // Wire strings never carry raw control characters.
    assert!(!doc.chars().any(|c| c.is_control() && c != '\n'));
}

#[test]
fn s07_below_threshold_counts() {
    let doc = report("s07_threshold_below.pcapng");
    let v = verdict(&doc);
    assert!(
        v.starts_with("Activation fails because the KMS host 127.0.0.10:1688"),
        "{v}"
    );
    assert!(
        v.contains("3 of the 25 required") && v.contains("1 of 5 for Office 2016"),
        "{v}"
    );
    assert!(row_with(&doc, &["Windows 10/11 2015 (Volume)"]).contains("| 3 / 25 |"));
    assert!(row_with(&doc, &["| Office 2016 |"]).contains("| 1 / 5 |"));
    for ws in ["SALES-PC01", "SALES-PC02", "SALES-PC03"] {
        row_with(&doc, &[ws]);
    }
}

#[test]
fn s01_activation_works() {
    let doc = report("s01_v4_win7_vm.pcap");
    assert_eq!(
        verdict(&doc),
        "Activation works: 2 calls answered and validated; every client got a count at or above its threshold."
    );
    let row = row_with(&doc, &["127.0.0.10:1688", "| Windows 7 |"]);
    assert!(
        row.contains("| 50 / 25 |") && row.contains("meets threshold"),
        "{row}"
    );
    row_with(&doc, &["ACCT-PC017.corp.example"]);
    row_with(&doc, &["ENG-WS-0042.corp.example"]);
}

#[test]
fn s13_connect_refused() {
    let doc = report("s13_conn_refused.pcap");
    let v = verdict(&doc);
    assert!(v.starts_with("No KMS activation call was captured"), "{v}");
    assert!(v.contains("127.0.0.30 refuses TCP 1688"), "{v}");
    assert!(v.contains("0xC004F074"), "{v}");
    assert!(doc.contains("No KMS host answered in this capture."));
    assert!(row_with(&doc, &["127.0.0.30:1688"]).contains("refused (SYN answered by RST)"));
}

#[test]
fn several_files_give_sections_in_order() {
    let a = capture("s13_conn_refused.pcap");
    let b = capture("s01_v4_win7_vm.pcap");
    let doc = run(&[
        "read",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--report",
        "-",
    ]);
    let i = doc.find("s13\\_conn\\_refused.pcap").expect("s13 section");
    let j = doc.find("s01\\_v4\\_win7\\_vm.pcap").expect("s01 section");
    assert!(i < j);
    assert_eq!(doc.matches("## Verdict").count(), 2);
    assert_eq!(doc.matches("## How this was produced").count(), 1);
}

#[test]
fn report_to_a_file_keeps_the_table_and_its_verdict() {
    let dir = std::env::temp_dir().join(format!("kmsscope-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.md");
    let cap = capture("s14_ticket_combined.pcapng");
    let table = run(&[
        "read",
        cap.to_str().unwrap(),
        "--report",
        path.to_str().unwrap(),
    ]);
    let doc = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // The table output ends with the same verdict the report opens with.
    let last = table.lines().last().unwrap();
    assert_eq!(last, format!("Verdict: {}", unescape_md(verdict(&doc))));
    assert!(doc.contains("## KMS hosts"));
}

#[test]
fn jsonl_and_report_cannot_both_use_stdout() {
    let cap = capture("s01_v4_win7_vm.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .args([
            "read",
            cap.to_str().unwrap(),
            "--jsonl",
            "-",
            "--report",
            "-",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard output"));
}
