//! Unit tests of the Markdown report, over events built by hand.

use std::sync::Arc;

use super::*;
use crate::event::{
    Anomaly, EpidInfo, HostApp, HostSummary, Hresult, KmsRequestInfo, KmsResponseInfo, Subject,
};

const T0: i64 = 1_795_446_604_000_000_000;

fn ep(s: &str) -> Endpoint {
    let (ip, port) = s.rsplit_once(':').unwrap();
    Endpoint {
        ip: ip.trim_matches(['[', ']']).parse().unwrap(),
        port: port.parse().unwrap(),
    }
}

fn ev(source: &str, frame: u64, client: &str, server: &str, body: Body) -> Event {
    Event {
        ts: Ts(T0 + frame as i64 * 1_000_000),
        event: body.kind(),
        source: Arc::from(source),
        frame,
        client: Some(ep(client)),
        server: Some(ep(server)),
        body,
    }
}

#[allow(clippy::too_many_arguments)]
fn kms(
    ws: &str,
    cmid: &str,
    sku: &'static str,
    group: &'static str,
    outcome: &'static str,
    count: u32,
    required: u32,
    epid: &str,
) -> Body {
    Body::Kms(Box::new(KmsCall {
        version: Some("6.0".into()),
        status: "answered",
        outcome,
        request: Some(KmsRequestInfo {
            sku_name: Some(sku),
            kms_id: group.to_lowercase().into(),
            kms_name: Some(group),
            cmid: cmid.into(),
            workstation: ws.into(),
            required_count: required,
            ..KmsRequestInfo::default()
        }),
        response: Some(KmsResponseInfo {
            epid: epid.into(),
            host: EpidInfo {
                lcid: Some(1033),
                os_build: Some(17763),
                key_installed: Some("2024-03-01".into()),
                ..EpidInfo::default()
            },
            current_count: count,
            ..KmsResponseInfo::default()
        }),
        ..KmsCall::default()
    }))
}

fn summary(source: &str, last_frame: u64, hosts: Vec<HostSummary>, clients: u64) -> Event {
    Event {
        ts: Ts(T0 + last_frame as i64 * 1_000_000),
        event: "summary",
        source: Arc::from(source),
        frame: 0,
        client: None,
        server: None,
        body: Body::Summary(Box::new(Summary {
            packets: last_frame,
            duration_s: (last_frame - 1) as f64 / 1000.0,
            kms_calls: 1,
            hosts,
            clients,
            last: true,
            ..Summary::default()
        })),
    }
}

fn host(ip: &str, group: &'static str, last: u32, required: u32) -> HostSummary {
    HostSummary {
        ip: ip.parse().unwrap(),
        port: 1688,
        epids: vec!["EPID-FALLBACK".into()],
        hwid: None,
        apps: vec![HostApp {
            kms_id: group.to_lowercase(),
            kms_name: Some(group),
            last_count: Some(last),
            max_count: Some(last),
            required_count: required,
            requests: 1,
            distinct_cmids: 1,
            ..HostApp::default()
        }],
    }
}

fn connect(result: &'static str) -> Body {
    Body::Rpc(RpcInfo {
        pdu: "connect",
        result: Some(result),
        syn_count: Some(1),
        ..RpcInfo::default()
    })
}

fn dns_a(name: &str, addr: &str) -> Body {
    Body::Dns(Box::new(DnsExchange {
        query: Some(name.into()),
        qtype: Some("A".into()),
        rcode: Some("NOERROR".into()),
        status: "answered",
        answers: vec![DnsRecord {
            rtype: "A".into(),
            name: name.into(),
            address: Some(addr.parse().unwrap()),
            ..DnsRecord::default()
        }],
        ..DnsExchange::default()
    }))
}

fn dns_srv(query: &str, rcode: &str, target: Option<(&str, u16)>) -> Body {
    Body::Dns(Box::new(DnsExchange {
        query: Some(query.into()),
        qtype: Some("SRV".into()),
        rcode: Some(rcode.into()),
        status: "answered",
        answers: target
            .map(|(t, port)| {
                vec![DnsRecord {
                    rtype: "SRV".into(),
                    name: query.into(),
                    priority: Some(0),
                    weight: Some(100),
                    port: Some(port),
                    target: Some(t.into()),
                    ..DnsRecord::default()
                }]
            })
            .unwrap_or_default(),
        ..DnsExchange::default()
    }))
}

fn finding(check: &'static str, severity: Severity, message: &str, frames: Vec<u64>) -> Body {
    Body::Finding(Finding {
        check,
        name: "some_check",
        severity,
        message: message.into(),
        fix: "Do the *right* thing.".into(),
        predicts: Some("0xC004F038"),
        frames,
        count: 2,
        first_ts: None,
        subject: Subject::default(),
    })
}

/// Feeds the events and finishes; returns the document.
fn report(events: &[Event]) -> String {
    let mut sink = ReportSink::new(Vec::new());
    for e in events {
        sink.event(e).unwrap();
    }
    sink.finish().unwrap();
    String::from_utf8(sink.into_inner()).unwrap()
}

fn has_line(doc: &str, line: &str) {
    assert!(
        doc.lines().any(|l| l == line),
        "missing line\n{line}\nin\n{doc}"
    );
}

const CLIENT: &str = "10.77.0.20:50000";
const HOST: &str = "10.77.0.10:1688";

#[test]
fn every_section_of_a_failing_capture() {
    let doc = report(&[
        ev(
            "s.pcap",
            3,
            CLIENT,
            "10.77.0.2:53",
            dns_srv(
                "_VLMCS._TCP.corp.example",
                "NOERROR",
                Some(("kms1.corp.example", 1688)),
            ),
        ),
        ev(
            "s.pcap",
            5,
            CLIENT,
            "10.77.0.2:53",
            dns_a("kms1.corp.example", "10.77.0.10"),
        ),
        ev(
            "s.pcap",
            7,
            CLIENT,
            "10.77.0.2:53",
            dns_a("intranet.corp.example", "10.77.0.30"),
        ),
        ev(
            "s.pcap",
            9,
            CLIENT,
            "10.77.0.2:53",
            dns_a("kms-old.corp.example", "10.77.0.12"),
        ),
        ev(
            "s.pcap",
            12,
            CLIENT,
            HOST,
            kms(
                "PC-1.corp.example",
                "c-1",
                "Windows 10/11 Enterprise",
                "Windows 10/11",
                "count_insufficient",
                1,
                25,
                "EPID-1",
            ),
        ),
        ev("s.pcap", 20, CLIENT, "10.77.0.12:1688", connect("refused")),
        ev(
            "s.pcap",
            30,
            CLIENT,
            HOST,
            finding(
                "KMS-01",
                Severity::Error,
                "Host 10.77.0.10:1688 returned 1 < 25.",
                vec![12],
            ),
        ),
        ev(
            "s.pcap",
            30,
            CLIENT,
            HOST,
            Body::Anomaly(Anomaly {
                layer: "tcp",
                kind: "tcp_gap",
                detail: "x".into(),
            }),
        ),
        summary(
            "s.pcap",
            31,
            vec![host("10.77.0.10", "Windows 10/11", 1, 25)],
            1,
        ),
    ]);
    has_line(&doc, "# KMS activation report: s.pcap");
    has_line(
        &doc,
        "Capture: 2026-11-23T15:10:04.001000Z to 2026-11-23T15:10:04.031000Z (0.0 s); 31 packets; 1 KMS call; 0 DNS queries; 0 anomalies (tcp\\_gap ×1).",
    );
    // The verdict comes right after the title, before the findings.
    let v = doc.find("## Verdict").unwrap();
    assert!(v < doc.find("## Findings").unwrap());
    has_line(
        &doc,
        "Activation fails because the KMS host kms1.corp.example (10.77.0.10:1688) reports too few activated clients: 1 of the 25 required for Windows 10/11; clients will get 0xC004F038. Also, kms-old.corp.example (10.77.0.12) refuses TCP 1688 (nothing listens there).",
    );
    has_line(&doc, "### Error (1)");
    has_line(
        &doc,
        "- **KMS-01** `some_check`: Host 10.77.0.10:1688 returned 1 \\< 25.",
    );
    has_line(&doc, "  - Evidence: frame 12 (seen 2 times)");
    has_line(&doc, "  - Fix: Do the \\*right\\* thing.");
    has_line(&doc, "  - Client error: 0xC004F038");
    has_line(
        &doc,
        "| 10.77.0.10:1688 (kms1.corp.example) | EPID-1 | build 17763, LCID 1033, key installed 2024-03-01 | Windows 10/11 | 1 / 25 | 1 | 1 | 0 | 1 | **BELOW threshold** |",
    );
    has_line(
        &doc,
        "| 10.77.0.20 | PC-1.corp.example | c-1 | Windows 10/11 Enterprise | 6.0 | count too low (0xC004F038) | 1 / 25 | 10.77.0.10:1688 (kms1.corp.example) | 1 |",
    );
    has_line(
        &doc,
        "| \\_VLMCS.\\_TCP.corp.example | SRV | NOERROR | SRV priority 0 weight 100 port 1688 target kms1.corp.example | 1 | 3 |",
    );
    has_line(
        &doc,
        "| kms1.corp.example | A | NOERROR | A kms1.corp.example 10.77.0.10 | 1 | 5 |",
    );
    has_line(
        &doc,
        "| kms-old.corp.example | A | NOERROR | A kms-old.corp.example 10.77.0.12 | 1 | 9 |",
    );
    has_line(
        &doc,
        "1 other DNS lookup not about KMS left out (intranet.corp.example).",
    );
    has_line(
        &doc,
        "| 10.77.0.20 | 10.77.0.12:1688 | refused (SYN answered by RST) | 1 | 20 |",
    );
    has_line(&doc, "No RPC fault or rejected bind was seen.");
    has_line(&doc, "## How this was produced");
    assert!(doc.contains(&format!("kmsscope {}", env!("CARGO_PKG_VERSION"))));
    assert!(doc.contains("the capture's clock is the reference"));
    assert!(doc.ends_with(".\n"));
}

#[test]
fn hostile_wire_strings_are_escaped() {
    let hostile = "a|b\x1b[31m<script>";
    let doc = report(&[
        ev(
            "evil|`name`.pcap",
            1,
            CLIENT,
            HOST,
            kms(
                hostile,
                "c-*1*",
                "Windows 10/11 Pro",
                "Windows 10/11",
                "activated",
                30,
                25,
                "E_P|D\n",
            ),
        ),
        summary(
            "evil|`name`.pcap",
            2,
            vec![host("10.77.0.10", "Windows 10/11", 30, 25)],
            1,
        ),
    ]);
    assert!(!doc.contains('\x1b'), "raw escape byte in {doc}");
    assert!(!doc.contains("<script>"));
    has_line(&doc, "# KMS activation report: evil\\|\\`name\\`.pcap");
    has_line(
        &doc,
        "| 10.77.0.20 | a\\|b\\\\x1b\\[31m\\<script\\> | c-\\*1\\* | Windows 10/11 Pro | 6.0 | activated | 30 / 25 | 10.77.0.10:1688 | 1 |",
    );
    assert!(doc.contains("| E\\_P\\|D\\\\x0a |"), "{doc}");
    // Every table row has as many unescaped cell separators as its header.
    for block in doc.split("\n\n") {
        let rows: Vec<&str> = block.lines().filter(|l| l.starts_with('|')).collect();
        if let Some(head) = rows.first() {
            let n = unescaped_pipes(head);
            for r in &rows {
                assert_eq!(unescaped_pipes(r), n, "row {r}");
            }
        }
    }
}

/// Counts `|` not escaped by a backslash (backslash pairs consumed first, as GFM does).
fn unescaped_pipes(line: &str) -> usize {
    let mut n = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '|' => n += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn md_escapes_controls_then_markup() {
    assert_eq!(md("PC-01.corp.example"), "PC-01.corp.example");
    assert_eq!(md("a|b\x1b[31m<script>"), "a\\|b\\\\x1b\\[31m\\<script\\>");
    assert_eq!(
        md("_x_ *y* `z` ~w~ #h &amp;"),
        "\\_x\\_ \\*y\\* \\`z\\` \\~w\\~ \\#h \\&amp;"
    );
    assert_eq!(md("back\\slash"), "back\\\\\\\\slash");
    assert_eq!(md("rtl\u{202e}x"), "rtl\\\\u{202e}x");
}

#[test]
fn healthy_capture() {
    let doc = report(&[
        ev(
            "ok.pcap",
            1,
            CLIENT,
            HOST,
            kms(
                "PC-1",
                "c-1",
                "Windows 7 Professional",
                "Windows 7",
                "activated",
                50,
                25,
                "E",
            ),
        ),
        ev(
            "ok.pcap",
            2,
            "10.77.0.21:50000",
            HOST,
            kms(
                "PC-2",
                "c-2",
                "Windows 7 Professional",
                "Windows 7",
                "activated",
                50,
                25,
                "E",
            ),
        ),
        summary(
            "ok.pcap",
            3,
            vec![host("10.77.0.10", "Windows 7", 50, 25)],
            2,
        ),
    ]);
    has_line(
        &doc,
        "Activation works: 2 calls answered and validated; every client got a count at or above its threshold.",
    );
    has_line(&doc, "The checks reported no findings.");
    assert!(doc.contains("| 50 / 25 | 50 | 1 | 0 | 1 | meets threshold |"));
    has_line(&doc, "No DNS lookup for a KMS host was captured.");
    has_line(&doc, "No failed connection to a KMS port was seen.");
}

#[test]
fn capture_without_kms() {
    let doc = report(&[
        ev(
            "none.pcap",
            1,
            CLIENT,
            "10.77.0.2:53",
            dns_srv("_vlmcs._tcp.corp.example", "NXDOMAIN", None),
        ),
        ev(
            "none.pcap",
            2,
            CLIENT,
            "10.77.0.2:53",
            dns_a("www.example", "192.0.2.1"),
        ),
        summary("none.pcap", 3, vec![], 0),
    ]);
    has_line(
        &doc,
        "No KMS activation call was captured: the DNS lookup for \\_vlmcs.\\_tcp.corp.example returns NXDOMAIN, so clients cannot find a KMS host; clients will get 0x8007232B.",
    );
    has_line(&doc, "No KMS host answered in this capture.");
    has_line(&doc, "No KMS client request was captured.");
    has_line(
        &doc,
        "| \\_vlmcs.\\_tcp.corp.example | SRV | NXDOMAIN | - | 1 | 1 |",
    );
}

#[test]
fn empty_capture_says_so() {
    let doc = report(&[summary("empty.pcap", 5, vec![], 0)]);
    has_line(
        &doc,
        "No KMS traffic was captured: 5 packets, none of them a KMS call, a KMS SRV lookup or a connection attempt to a KMS port. To diagnose activation, capture on a client while it runs `slmgr /ato`.",
    );
}

#[test]
fn several_sources_give_several_sections_and_one_footer() {
    let doc = report(&[
        ev("a.pcap", 1, CLIENT, "127.0.0.30:1688", connect("refused")),
        summary("a.pcap", 2, vec![], 0),
        ev(
            "b.pcap",
            1,
            CLIENT,
            HOST,
            kms(
                "PC",
                "c",
                "Office Standard 2016",
                "Office 2016",
                "count_insufficient",
                1,
                5,
                "E",
            ),
        ),
        summary(
            "b.pcap",
            2,
            vec![host("10.77.0.10", "Office 2016", 1, 5)],
            1,
        ),
    ]);
    let a = doc.find("# KMS activation report: a.pcap").unwrap();
    let b = doc.find("# KMS activation report: b.pcap").unwrap();
    assert!(a < b);
    assert_eq!(doc.matches("## How this was produced").count(), 1);
    assert_eq!(doc.matches("## Verdict").count(), 2);
    // Facts do not leak from one source to the next.
    let section_b = &doc[b..];
    assert!(!section_b.contains("127.0.0.30"), "{section_b}");
    assert!(doc[a..b].contains("127.0.0.30 refuses TCP 1688 (nothing listens there)"));
    assert!(section_b.contains("1 of the 5 required for Office 2016"));
}

#[test]
fn findings_are_grouped_by_severity() {
    let doc = report(&[
        ev(
            "f.pcap",
            1,
            CLIENT,
            HOST,
            finding("KMS-22", Severity::Info, "VM client.", vec![]),
        ),
        ev(
            "f.pcap",
            1,
            CLIENT,
            HOST,
            finding(
                "DNS-10",
                Severity::Critical,
                "Rogue host published.",
                vec![4, 5, 6],
            ),
        ),
        ev(
            "f.pcap",
            1,
            CLIENT,
            HOST,
            finding("KMS-02", Severity::Warning, "Thin margin.", vec![9]),
        ),
        summary("f.pcap", 10, vec![], 0),
    ]);
    let crit = doc.find("### Critical (1)").unwrap();
    let warn = doc.find("### Warning (1)").unwrap();
    let info = doc.find("### Info (1)").unwrap();
    assert!(crit < warn && warn < info);
    has_line(&doc, "  - Evidence: frames 4, 5, 6 (seen 2 times)");
    has_line(&doc, "  - Evidence: no frame (seen 2 times)");
    // No KMS call: the verdict names the most severe finding through the phrase table.
    assert!(doc.contains(
        "No KMS activation call was captured: an unapproved KMS host is published in DNS; clients will get 0xC004F038. Also, a host's count is only just above the threshold"
    ));
}

#[test]
fn clients_are_bounded() {
    let mut events: Vec<Event> = (0..MAX_CLIENT_ROWS as u64 + 5)
        .map(|i| {
            ev(
                "many.pcap",
                i + 1,
                CLIENT,
                HOST,
                kms(
                    &format!("PC-{i}"),
                    &format!("cmid-{i}"),
                    "Windows 7 Professional",
                    "Windows 7",
                    "activated",
                    50,
                    25,
                    "E",
                ),
            )
        })
        .collect();
    // A second request from the first CMID under another name updates its row.
    events.push(ev(
        "many.pcap",
        100,
        CLIENT,
        HOST,
        kms(
            "RENAMED",
            "cmid-0",
            "Windows 7 Professional",
            "Windows 7",
            "activated",
            50,
            25,
            "E",
        ),
    ));
    events.push(summary(
        "many.pcap",
        101,
        vec![host("10.77.0.10", "Windows 7", 50, 25)],
        MAX_CLIENT_ROWS as u64 + 5,
    ));
    let doc = report(&events);
    let rows = doc.lines().filter(|l| l.contains("| cmid-")).count();
    assert_eq!(rows, MAX_CLIENT_ROWS);
    has_line(&doc, "And 5 more clients (CMIDs) not listed.");
    assert!(doc.contains("| RENAMED (and 1 other name) | cmid-0 |"));
    assert!(doc.contains("| activated | 50 / 25 | 10.77.0.10:1688 | 2 |"));
}

#[test]
fn refused_and_fault_outcomes_and_rpc_rows() {
    let refused = Body::Kms(Box::new(KmsCall {
        version: Some("6.0".into()),
        status: "refused",
        outcome: "refused",
        hresult: Some(Hresult {
            code: "0xC004F042".into(),
            name: None,
            meaning: None,
        }),
        request: Some(KmsRequestInfo {
            cmid: "c-9".into(),
            workstation: "PC-9".into(),
            sku_name: Some("Windows 11 Enterprise"),
            required_count: 25,
            ..KmsRequestInfo::default()
        }),
        ..KmsCall::default()
    }));
    let fault = Body::Rpc(RpcInfo {
        pdu: "fault",
        status: Some(Hresult {
            code: "0x1C010003".into(),
            name: Some("nca_s_unk_if"),
            meaning: None,
        }),
        ..RpcInfo::default()
    });
    let doc = report(&[
        ev("r.pcap", 4, CLIENT, HOST, refused),
        ev("r.pcap", 8, CLIENT, "10.77.0.11:1688", fault),
        summary("r.pcap", 9, vec![], 1),
    ]);
    assert!(
        doc.contains("| refused with 0xC004F042 | - / 25 |"),
        "{doc}"
    );
    has_line(
        &doc,
        "| 10.77.0.20 | 10.77.0.11:1688 | fault 0x1C010003 (nca\\_s\\_unk\\_if) | 1 | 8 |",
    );
    assert!(doc.contains(
        "Activation fails because the KMS host 10.77.0.10:1688 refuses 1 request with 0xC004F042; clients will get 0xC004F042. Also, 10.77.0.11:1688 rejects the call with RPC fault 0x1C010003 (nca_s_unk_if)."
    ));
}

#[test]
fn live_source_without_last_summary_is_written_on_finish() {
    let mut s = summary("live:eth0", 3, vec![], 0);
    if let Body::Summary(b) = &mut s.body {
        b.last = false;
    }
    let doc = report(&[
        ev(
            "live:eth0",
            1,
            CLIENT,
            "127.0.0.30:1688",
            connect("no_answer"),
        ),
        s,
    ]);
    has_line(&doc, "# KMS activation report: live:eth0");
    assert!(doc.contains("127.0.0.30 does not answer on TCP 1688"));
    has_line(
        &doc,
        "| 10.77.0.20 | 127.0.0.30:1688 | no answer (1 SYN unanswered) | 1 | 1 |",
    );
}

#[test]
fn no_events_no_document() {
    assert_eq!(report(&[]), "");
}
