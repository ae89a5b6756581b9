//! The checks on synthetic captures, for every fault the shared captures do not show: each check
//! has a capture that fires it (asserting severity, subject and the values in the message) and one
//! that must stay silent. Captures are built by tests/common/scenario.rs from the test encoders and
//! analysed by the `kmsscope` binary, as a user would run it.

#[path = "common/dcerpc_encoder.rs"]
mod dcerpc_encoder;
#[path = "common/kms_encoder.rs"]
mod kms_encoder;
#[path = "common/pcap.rs"]
mod pcap;
#[path = "common/scenario.rs"]
mod scenario;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use kmsscope::kms::{KmsVersion, LicenseStatus};
use scenario::*;
use serde_json::Value;

const CLIENT: &str = "10.77.0.20";
const CLIENT2: &str = "10.77.0.21";
const RESOLVER: &str = "10.77.0.2";
const RESOLVER2: &str = "10.77.0.3";
const KMS1: &str = "10.77.0.10";
const KMS2: &str = "10.77.0.11";
const DEAD: &str = "10.77.0.12";
const ZONE: &str = "corp.example";
const SRV_NAME: &str = "_vlmcs._tcp.corp.example";

static RUN: AtomicUsize = AtomicUsize::new(0);

/// Writes the scenario as a pcap and runs `kmsscope read FILE --jsonl - [extra]`.
fn run(s: &Scenario, extra: &[&str]) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!(
        "kmsscope-synth-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("s.pcap");
    std::fs::write(&path, s.bytes()).expect("write pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .arg("read")
        .arg(&path)
        .args(["--jsonl", "-"])
        .args(extra)
        .output()
        .expect("run kmsscope");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "kmsscope failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn findings(ev: &[Value]) -> Vec<&Value> {
    ev.iter().filter(|e| e["event"] == "finding").collect()
}

fn ids(ev: &[Value]) -> BTreeSet<String> {
    findings(ev)
        .iter()
        .map(|f| f["check"].as_str().unwrap_or("").to_string())
        .collect()
}

fn find<'a>(ev: &'a [Value], id: &str) -> Vec<&'a Value> {
    findings(ev)
        .into_iter()
        .filter(|f| f["check"] == id)
        .collect()
}

/// The one finding of check `id`.
fn one<'a>(ev: &'a [Value], id: &str) -> &'a Value {
    let v = find(ev, id);
    assert_eq!(v.len(), 1, "{id}: {:?}", ids(ev));
    v[0]
}

/// The `rpc` connect events.
fn connects(ev: &[Value]) -> Vec<&Value> {
    ev.iter()
        .filter(|e| e["event"] == "rpc" && e["pdu"] == "connect")
        .collect()
}

fn msg(f: &Value) -> &str {
    f["message"].as_str().unwrap_or("")
}

fn assert_msg(f: &Value, parts: &[&str]) {
    for p in parts {
        assert!(msg(f).contains(p), "{} lacks {p:?}: {}", f["check"], msg(f));
    }
}

fn cmid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn ep(a: &str, port: u16) -> (IpAddr, u16) {
    (ip(a), port)
}

/// SRV answer advertising `targets` as (priority, port, name, address).
fn srv_lookup(s: &mut Scenario, client: &str, resolver: &str, targets: &[(u16, u16, &str, &str)]) {
    let an: Vec<Rr> = targets
        .iter()
        .map(|(p, port, name, _)| srv(ZONE, *p, *port, name))
        .collect();
    let ar: Vec<Rr> = targets.iter().map(|(_, _, n, a)| addr(n, a)).collect();
    s.dns(
        ip(client),
        ip(resolver),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &an, &ar)),
    );
}

/// A-record lookup answered with `a` (or NXDOMAIN / NODATA when `a` is None and `nx`).
fn a_lookup(s: &mut Scenario, client: &str, name: &str, a: Option<&str>) {
    let an: Vec<Rr> = a.map(|x| addr(name, x)).into_iter().collect();
    s.dns(
        ip(client),
        ip(RESOLVER),
        name,
        T_A,
        Some((NOERROR, &an, &[])),
    );
}

/// A healthy activation of `product` by (`cmid`, `ws`) from `client` at `server`.
fn activate(s: &mut Scenario, client: &str, server: (IpAddr, u16), n: u32, ws: &str, count: u32) {
    let req = s.request(WIN10, &cmid(n), ws);
    s.kms(ip(client), server, &Call::new(req, Reply::count(count)));
}

/// Healthy discovery and activation: SRV with two hosts, A lookup, activation with count 50.
fn healthy() -> Scenario {
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[
            (0, 1688, "kms1.corp.example", KMS1),
            (10, 1688, "kms2.corp.example", KMS2),
        ],
    );
    a_lookup(&mut s, CLIENT, "kms1.corp.example", Some(KMS1));
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC-01.corp.example", 50);
    s
}

#[test]
fn healthy_discovery_and_activation_is_silent() {
    let ev = run(&healthy(), &[]);
    assert!(ids(&ev).is_empty(), "{:?}", ids(&ev));
    let summary = ev
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let d = &summary["client_list"][0]["discovery"];
    assert_eq!(d["method"], "dns_srv");
    assert_eq!(d["target"]["target"], "kms1.corp.example");
    assert_eq!(d["target"]["priority"], 0);
    assert_eq!(d["address_lookup"]["answers"][0], KMS1);
    assert_eq!(d["call"]["result"], "activated");
}

#[test]
fn discovery_chain_survives_a_busy_client_history() {
    // After activating, the client makes many unrelated lookups (more than the history keeps).
    let mut s = healthy();
    for i in 0..40 {
        a_lookup(
            &mut s,
            CLIENT,
            &format!("www{i}.example.org"),
            Some("10.77.0.30"),
        );
    }
    let ev = run(&s, &[]);
    assert!(ids(&ev).is_empty(), "{:?}", ids(&ev));
    let summary = ev
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let d = &summary["client_list"][0]["discovery"];
    assert_eq!(d["method"], "dns_srv");
    assert_eq!(d["address_lookup"]["name"], "kms1.corp.example");
    assert_eq!(d["srv_query"]["name"], SRV_NAME);
}

// ---------------------------------------------------------------------------------------------
// DNS

#[test]
fn dns_01_nxdomain_fires_and_recovery_lowers_it() {
    let mut s = Scenario::new();
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        "_VLMCS._TCP.branch.example",
        T_SRV,
        Some((NXDOMAIN, &[], &[])),
    );
    s.wait_us(5 * 1_000_000);
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-01");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["predicts"], "0x8007232B");
    assert_eq!(f["subject"]["query"], "_VLMCS._TCP.branch.example");
    assert_msg(f, &["NXDOMAIN", CLIENT, "branch.example"]);
    // Same NXDOMAIN, then the client finds hosts in its second suffix and activates: info only.
    let mut s = Scenario::new();
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        "_vlmcs._tcp.branch.example",
        T_SRV,
        Some((NXDOMAIN, &[], &[])),
    );
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[
            (0, 1688, "kms1.corp.example", KMS1),
            (0, 1688, "kms2.corp.example", KMS2),
        ],
    );
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC-01", 50);
    let ev = run(&s, &[]);
    assert_eq!(one(&ev, "DNS-01")["severity"], "info");
    assert_msg(one(&ev, "DNS-01"), &["later found a KMS host"]);
    // Silent on the healthy capture.
    assert!(find(&run(&healthy(), &[]), "DNS-01").is_empty());
}

#[test]
fn dns_02_nodata_and_dns_03_servfail() {
    let mut s = Scenario::new();
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &[], &[])),
    );
    s.dns(
        ip(CLIENT2),
        ip(RESOLVER2),
        "_vlmcs._tcp.other.example",
        T_SRV,
        Some((SERVFAIL, &[], &[])),
    );
    s.dns(
        ip(CLIENT2),
        ip(RESOLVER2),
        "_vlmcs._tcp.third.example",
        T_SRV,
        Some((REFUSED, &[], &[])),
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-02");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["predicts"], "0x8007251D");
    assert_eq!(f["subject"]["query"], SRV_NAME);
    assert_msg(f, &["without any SRV record", CLIENT]);
    let f3 = find(&ev, "DNS-03");
    assert_eq!(f3.len(), 2);
    let servfail = f3
        .iter()
        .find(|f| f["subject"]["query"] == "_vlmcs._tcp.other.example")
        .expect("servfail");
    assert_eq!(servfail["predicts"], "0x8007232A");
    assert_msg(servfail, &["SERVFAIL", CLIENT2]);
    let refused = f3
        .iter()
        .find(|f| f["subject"]["query"] == "_vlmcs._tcp.third.example")
        .expect("refused");
    assert_eq!(refused["predicts"], "0x8007232D");
    // An A NODATA for another name is no SRV problem.
    let mut s = healthy();
    a_lookup(&mut s, CLIENT, "intranet.corp.example", None);
    let ev = run(&s, &[]);
    assert!(find(&ev, "DNS-02").is_empty() && find(&ev, "DNS-03").is_empty());
}

#[test]
fn dns_04_unanswered_srv_query() {
    let mut s = Scenario::new();
    s.dns(ip(CLIENT), ip(RESOLVER), SRV_NAME, T_SRV, None);
    s.wait_us(3_000_000);
    activate(&mut s, CLIENT2, ep(KMS1, 1688), 2, "OTHER", 50); // keeps the capture going
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-04");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["query"], SRV_NAME);
    assert_msg(f, &["no answer", CLIENT]);
    // A query the capture ends right after is not evidence.
    let mut s = Scenario::new();
    activate(&mut s, CLIENT2, ep(KMS1, 1688), 2, "OTHER", 50);
    s.dns(ip(CLIENT), ip(RESOLVER), SRV_NAME, T_SRV, None);
    assert!(find(&run(&s, &[]), "DNS-04").is_empty());
}

#[test]
fn dns_05_unresolvable_target() {
    let mut s = Scenario::new();
    let an = [srv(ZONE, 0, 1688, "kms9.corp.example")];
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &an, &[])),
    );
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        "kms9.corp.example",
        T_A,
        Some((NXDOMAIN, &[], &[])),
    );
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        "kms9.corp.example",
        T_AAAA,
        Some((NXDOMAIN, &[], &[])),
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-05");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["predicts"], "0xC004F074");
    assert_eq!(f["subject"]["host"], "kms9.corp.example");
    assert_msg(f, &["kms9.corp.example:1688", "NXDOMAIN"]);
    // The AAAA lookup finds nothing but the A lookup does: resolvable.
    let mut s = Scenario::new();
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &an, &[])),
    );
    a_lookup(&mut s, CLIENT, "kms9.corp.example", Some(KMS1));
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        "kms9.corp.example",
        T_AAAA,
        Some((NOERROR, &[], &[])),
    );
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC", 50);
    let ev = run(&s, &[]);
    assert!(find(&ev, "DNS-05").is_empty(), "{:?}", ids(&ev));
}

#[test]
fn dns_06_stale_target_and_rpc_02_filtered() {
    // Refused.
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[(0, 1688, "kms-old.corp.example", DEAD)],
    );
    s.refused(ip(CLIENT), ep(DEAD, 1688));
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-06");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"]["host"], "kms-old.corp.example");
    assert_eq!(f["subject"]["server"], "10.77.0.12:1688");
    assert_msg(f, &["refused", SRV_NAME]);
    assert_eq!(one(&ev, "RPC-01")["subject"]["server"], "10.77.0.12:1688");
    // Filtered: three SYNs, no answer.
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[(0, 1688, "kms-old.corp.example", DEAD)],
    );
    s.no_answer(ip(CLIENT), ep(DEAD, 1688), 3);
    let ev = run(&s, &[]);
    assert_msg(one(&ev, "DNS-06"), &["never answered"]);
    let r2 = one(&ev, "RPC-02");
    assert_eq!(r2["severity"], "error");
    assert_eq!(r2["subject"]["server"], "10.77.0.12:1688");
    assert_msg(r2, &["up to 3 SYNs", "kms-old.corp.example"]);
    // The engine's connection outcome event behind it.
    let c = connects(&ev);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["result"], "no_answer");
    assert_eq!(c[0]["syn_count"], 3);
    assert_eq!(c[0]["server"]["ip"], DEAD);
    // One SYN at the very end of the capture proves nothing.
    let mut s = healthy();
    s.no_answer(ip(CLIENT), ep(DEAD, 1688), 1);
    let ev = run(&s, &[]);
    assert!(find(&ev, "RPC-02").is_empty(), "{:?}", ids(&ev));
    // A target that answers is not stale.
    assert!(find(&run(&healthy(), &[]), "DNS-06").is_empty());
}

#[test]
fn dns_07_dead_primary_with_fallback() {
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[
            (0, 1688, "kms-a.corp.example", DEAD),
            (10, 1688, "kms-b.corp.example", KMS2),
        ],
    );
    s.refused(ip(CLIENT), ep(DEAD, 1688));
    activate(&mut s, CLIENT, ep(KMS2, 1688), 1, "PC-01", 50);
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-07");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["host"], "kms-a.corp.example");
    assert_msg(f, &["10.77.0.11:1688", "fell back"]);
    // The stale record and the refusal are still reported, lowered to warnings since the client
    // recovered through the same SRV answer.
    assert_eq!(one(&ev, "DNS-06")["severity"], "warning");
    let r1 = one(&ev, "RPC-01");
    assert_eq!(r1["severity"], "warning");
    assert_eq!(r1["predicts"], "0x800706BA");
    // Silent when the client goes straight to a working best-priority host.
    assert!(find(&run(&healthy(), &[]), "DNS-07").is_empty());
}

#[test]
fn rpc_01_refused_address_with_fallback_to_another_is_a_warning() {
    let mut s = Scenario::new();
    let an = [
        srv(ZONE, 0, 1688, "kms1.corp.example"),
        srv(ZONE, 0, 1688, "kms2.corp.example"),
    ];
    let ar = [
        addr("kms1.corp.example", "fd77::10"),
        addr("kms1.corp.example", KMS1),
        addr("kms2.corp.example", KMS2),
    ];
    s.dns(
        ip("fd77::20"),
        ip("fd77::2"),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &an, &ar)),
    );
    s.refused(ip("fd77::20"), ep("fd77::10", 1688));
    let ev = run(&s, &[]);
    // Nothing else answered: the refusal stops activation.
    let r1 = one(&ev, "RPC-01");
    assert_eq!(r1["severity"], "error");
    assert_eq!(r1["subject"]["server"], "[fd77::10]:1688");
    assert_msg(r1, &["kms1.corp.example", "0xC004F074"]);
    assert_eq!(one(&ev, "DNS-06")["severity"], "error");
    // kms1 has two addresses; the client is refused on one and reaches the other.
    let mut s = Scenario::new();
    let ar = [
        addr("kms1.corp.example", "10.77.0.13"),
        addr("kms1.corp.example", KMS1),
        addr("kms2.corp.example", KMS2),
    ];
    s.dns(
        ip(CLIENT),
        ip(RESOLVER),
        SRV_NAME,
        T_SRV,
        Some((NOERROR, &an, &ar)),
    );
    s.refused(ip(CLIENT), ep("10.77.0.13", 1688));
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC", 50);
    let ev = run(&s, &[]);
    assert_eq!(one(&ev, "RPC-01")["severity"], "warning");
    assert!(
        findings(&ev).iter().all(|f| f["severity"] != "error"),
        "{:?}",
        ids(&ev)
    );
}

#[test]
fn dns_08_single_host_and_dns_09_port() {
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[(0, 1700, "kms1.corp.example", KMS1)],
    );
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1700),
        &Call::new(s.request(WIN10, &cmid(1), "PC"), Reply::count(50)),
    );
    let ev = run(&s, &[]);
    assert_msg(one(&ev, "DNS-08"), &["kms1.corp.example:1700"]);
    let f = one(&ev, "DNS-09");
    assert_eq!(f["subject"]["host"], "kms1.corp.example:1700");
    // The KMS host on a custom port: RPC-08.
    let r8 = one(&ev, "RPC-08");
    assert_eq!(r8["severity"], "info");
    assert_eq!(r8["subject"]["server"], "10.77.0.10:1700");
    // Two hosts on 1688: neither.
    let ev = run(&healthy(), &[]);
    assert!(find(&ev, "DNS-08").is_empty() && find(&ev, "DNS-09").is_empty());
    assert!(find(&ev, "RPC-08").is_empty());
}

#[test]
fn dns_10_unapproved_host_by_name_or_address() {
    let s = healthy();
    let ev = run(
        &s,
        &[
            "--allow-host",
            "kms1.corp.example",
            "--allow-host",
            "10.77.0.0/24",
        ],
    );
    assert!(find(&ev, "DNS-10").is_empty() && find(&ev, "KMS-12").is_empty());
    let ev = run(&s, &["--allow-host", "kms1.corp.example"]);
    let f = one(&ev, "DNS-10");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["subject"]["host"], "kms2.corp.example");
    assert_msg(f, &["10.77.0.11", "not an approved KMS host"]);
    // kms1 is approved by name; the session with 10.77.0.10 is fine.
    assert!(find(&ev, "KMS-12").is_empty());
    // Without an allow-list, DNS-10 does not run.
    assert!(find(&run(&s, &[]), "DNS-10").is_empty());
}

#[test]
fn dns_11_unexpected_domain() {
    let mut s = healthy();
    s.dns(
        ip(CLIENT2),
        ip(RESOLVER),
        "_vlmcs._tcp.home.local",
        T_SRV,
        Some((NXDOMAIN, &[], &[])),
    );
    let ev = run(&s, &["--kms-domain", "corp.example"]);
    let f = one(&ev, "DNS-11");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["query"], "_vlmcs._tcp.home.local");
    assert_msg(f, &["home.local", CLIENT2, "corp.example"]);
    assert!(
        find(&run(&s, &[]), "DNS-11").is_empty(),
        "off without --kms-domain"
    );
}

#[test]
fn dns_12_static_host_without_srv() {
    let mut s = Scenario::new();
    a_lookup(&mut s, CLIENT, "intranet.corp.example", Some("10.77.0.30"));
    activate(&mut s, CLIENT, ep(KMS2, 1688), 1, "PC-STATIC", 50);
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-12");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["subject"]["client"], CLIENT);
    assert_eq!(f["subject"]["server"], "10.77.0.11:1688");
    assert_msg(f, &["by address", "no SRV answer in the capture"]);
    let summary = ev
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    assert_eq!(
        summary["client_list"][0]["discovery"]["method"],
        "static_address"
    );
    // No DNS of this client at all in the capture: cannot tell, stays silent.
    let mut s = Scenario::new();
    activate(&mut s, CLIENT, ep(KMS2, 1688), 1, "PC-STATIC", 50);
    assert!(find(&run(&s, &[]), "DNS-12").is_empty());
    // ... unless the capture's SRV answers (to another client) publish other hosts only.
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT2,
        RESOLVER,
        &[(0, 1688, "kms1.corp.example", KMS1)],
    );
    activate(&mut s, CLIENT, ep(KMS2, 1688), 1, "PC-STATIC", 50);
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-12");
    assert_eq!(f["subject"]["server"], "10.77.0.11:1688");
    assert_msg(
        f,
        &["NOT among the published hosts (kms1.corp.example:1688)"],
    );
    // A client without DNS in the capture that uses a published host: silent.
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT2,
        RESOLVER,
        &[(0, 1688, "kms1.corp.example", KMS1)],
    );
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC", 50);
    assert!(find(&run(&s, &[]), "DNS-12").is_empty());
}

#[test]
fn dns_13_divergent_answers() {
    let mut s = Scenario::new();
    srv_lookup(
        &mut s,
        CLIENT,
        RESOLVER,
        &[
            (0, 1688, "kms1.corp.example", KMS1),
            (0, 1688, "kms2.corp.example", KMS2),
        ],
    );
    srv_lookup(
        &mut s,
        CLIENT2,
        RESOLVER2,
        &[
            (0, 1688, "kms-old.corp.example", DEAD),
            (0, 1688, "kms2.corp.example", KMS2),
        ],
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "DNS-13");
    assert_eq!(f["severity"], "warning");
    assert_msg(
        f,
        &[
            "2 different target sets",
            "kms-old.corp.example:1688",
            RESOLVER2,
        ],
    );
    // The same answer from both resolvers: silent.
    let mut s = Scenario::new();
    for (c, r) in [(CLIENT, RESOLVER), (CLIENT2, RESOLVER2)] {
        srv_lookup(
            &mut s,
            c,
            r,
            &[
                (0, 1688, "kms1.corp.example", KMS1),
                (0, 1688, "kms2.corp.example", KMS2),
            ],
        );
    }
    assert!(find(&run(&s, &[]), "DNS-13").is_empty());
}

// ---------------------------------------------------------------------------------------------
// RPC

#[test]
fn rpc_03_bind_nak_and_bind_rejecting_everything() {
    let mut s = Scenario::new();
    let mut c = Call::new(s.request(WIN10, &cmid(1), "PC"), Reply::Nothing);
    c.bind = Bind::Nak;
    s.kms(ip(CLIENT), ep(KMS1, 1688), &c);
    c.bind = Bind::RejectAll;
    s.kms(ip(CLIENT), ep(KMS2, 1688), &c);
    let ev = run(&s, &[]);
    let f = find(&ev, "RPC-03");
    assert_eq!(f.len(), 2);
    let nak = f
        .iter()
        .find(|f| f["subject"]["server"] == "10.77.0.10:1688")
        .expect("nak");
    assert_eq!(nak["severity"], "error");
    assert_msg(nak, &["bind_nak", "protocol_version_not_supported"]);
    let rej = f
        .iter()
        .find(|f| f["subject"]["server"] == "10.77.0.11:1688")
        .expect("reject");
    assert_msg(rej, &["rejected every proposed KMS context"]);
    // NDR64 rejected but NDR32 accepted (the normal case): silent.
    assert!(find(&run(&healthy(), &[]), "RPC-03").is_empty());
}

/// Findings gathered from several clients come out the same on every run, although the tables
/// behind them are seeded per run (each run of the binary iterates them in another order): DNS-07
/// labels its clients in address order, RPC-03 in frame order; the clients act here in reverse
/// address order, so the two orders differ.
#[test]
fn multi_client_findings_do_not_depend_on_hash_seeds() {
    let clients: Vec<String> = (1..=6).rev().map(|i| format!("10.77.2.{i}")).collect();
    let mut s = Scenario::new();
    for (n, c) in clients.iter().enumerate() {
        srv_lookup(
            &mut s,
            c,
            RESOLVER,
            &[
                (0, 1688, "kms-a.corp.example", DEAD),
                (10, 1688, "kms-b.corp.example", KMS2),
            ],
        );
        s.refused(ip(c), ep(DEAD, 1688));
        activate(&mut s, c, ep(KMS2, 1688), n as u32 + 1, "PC", 50);
        let mut call = Call::new(
            s.request(WIN10, &cmid(100 + n as u32), "PC"),
            Reply::Nothing,
        );
        call.bind = Bind::RejectAll;
        s.kms(ip(c), ep(KMS1, 1688), &call);
    }
    // Each run reads its own temporary file: every event but the `source` path must match.
    let runs: Vec<Vec<Value>> = (0..3)
        .map(|_| {
            let mut ev = run(&s, &[]);
            for e in &mut ev {
                e.as_object_mut().map(|o| o.remove("source"));
            }
            ev
        })
        .collect();
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "output differs between runs"
    );
    let ev = &runs[0];
    let by_addr: Vec<&str> = clients.iter().rev().map(String::as_str).collect();
    let by_frame: Vec<&str> = clients.iter().map(String::as_str).collect();
    assert_msg(
        one(ev, "DNS-07"),
        &[&format!("clients {}", by_addr.join(", "))],
    );
    let rej = find(ev, "RPC-03");
    assert_eq!(rej.len(), 1);
    assert_msg(rej[0], &[&format!("clients {}", by_frame.join(", "))]);
}

#[test]
fn rpc_04_fault_names_the_status() {
    let mut s = Scenario::new();
    let c = Call::new(s.request(WIN10, &cmid(1), "PC"), Reply::Fault(0x1C01_0003));
    s.kms(ip(CLIENT), ep(KMS1, 1688), &c);
    let ev = run(&s, &[]);
    let f = one(&ev, "RPC-04");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"]["server"], "10.77.0.10:1688");
    assert_msg(f, &["nca_unk_if", "0x1C010003"]);
    assert!(find(&run(&healthy(), &[]), "RPC-04").is_empty());
}

#[test]
fn rpc_05_no_response_and_rpc_06_slow() {
    let mut s = Scenario::new();
    let mut c = Call::new(s.request(WIN10, &cmid(1), "PC-1"), Reply::Nothing);
    s.kms(ip(CLIENT), ep(KMS1, 1688), &c);
    c.close = Close::ServerReset;
    s.kms(ip(CLIENT), ep(KMS1, 1688), &c);
    let mut slow = Call::new(s.request(WIN10, &cmid(2), "PC-2"), Reply::count(50));
    slow.rtt_us = 3_500_000;
    s.kms(ip(CLIENT2), ep(KMS2, 1688), &slow);
    let ev = run(&s, &[]);
    let f = one(&ev, "RPC-05");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["count"], 2);
    assert_eq!(f["predicts"], "0xC004F074");
    assert_msg(f, &["connection closed", "connection reset"]);
    let c = connects(&ev);
    assert_eq!(
        c.len(),
        1,
        "only the reset with a call open is a connection outcome"
    );
    assert_eq!(c[0]["result"], "reset");
    assert!(
        c[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("the server reset")
    );
    let f = one(&ev, "RPC-06");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["server"], "10.77.0.11:1688");
    assert_msg(f, &["2000 ms", "slowest 3500 ms"]);
    // 500 ms is fine by default, slow with --slow-rpc-ms 100.
    let mut s = Scenario::new();
    let mut c = Call::new(s.request(WIN10, &cmid(2), "PC-2"), Reply::count(50));
    c.rtt_us = 500_000;
    s.kms(ip(CLIENT2), ep(KMS2, 1688), &c);
    assert!(ids(&run(&s, &[])).is_empty());
    assert_eq!(
        one(&run(&s, &["--slow-rpc-ms", "100"]), "RPC-06")["count"],
        1
    );
}

#[test]
fn rpc_07_not_dcerpc_on_the_kms_port() {
    let http_req = b"GET / HTTP/1.1\r\nHost: kms1\r\n\r\n";
    let http_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let mut s = Scenario::new();
    s.raw_tcp(ip(CLIENT), ep(KMS1, 1688), http_req, http_resp);
    let ev = run(&s, &[]);
    let f = one(&ev, "RPC-07");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["server"], "10.77.0.10:1688");
    // The same on port 80 is none of our business.
    let mut s = Scenario::new();
    s.raw_tcp(ip(CLIENT), ep(KMS1, 80), http_req, http_resp);
    assert!(ids(&run(&s, &[])).is_empty());
}

// ---------------------------------------------------------------------------------------------
// KMS

#[test]
fn kms_03_count_not_growing() {
    let mut s = Scenario::new();
    for i in 1..=3 {
        let req = s.request(SERVER2019, &cmid(i), &format!("SRV-{i}"));
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(6)));
    }
    for i in 1..=3 {
        let req = s.request(WIN10, &cmid(10 + i), &format!("PC-{i}"));
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(1)));
    }
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-03");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["product"], "Windows 10/11 2015 (Volume)");
    assert_msg(f, &["count 1", "after answering 2 distinct machines"]);
    assert_eq!(f["count"], 2);
    // Server group: 3 machines, count 6 (>= 3): fine. Growing counts are fine too.
    let mut s = Scenario::new();
    for i in 1..=3 {
        let req = s.request(WIN10, &cmid(i), &format!("PC-{i}"));
        s.kms(
            ip(CLIENT),
            ep(KMS1, 1688),
            &Call::new(req, Reply::count(25 + i)),
        );
    }
    assert!(find(&run(&s, &[]), "KMS-03").is_empty());
}

#[test]
fn kms_04_same_cmid_from_two_addresses_at_once() {
    let mut s = Scenario::new();
    activate(&mut s, CLIENT, ep(KMS1, 1688), 7, "CLONE", 50);
    s.wait_us(MINUTE_US);
    activate(&mut s, CLIENT2, ep(KMS1, 1688), 7, "CLONE", 50);
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-04");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"]["cmid"], cmid(7));
    assert_msg(f, &["2 addresses", CLIENT, CLIENT2]);
    // A machine that moved to another address hours later is no clone.
    let mut s = Scenario::new();
    activate(&mut s, CLIENT, ep(KMS1, 1688), 7, "LAPTOP", 50);
    s.wait_us(2 * HOUR_US);
    activate(&mut s, CLIENT2, ep(KMS1, 1688), 7, "LAPTOP", 50);
    assert!(find(&run(&s, &[]), "KMS-04").is_empty());
}

#[test]
fn kms_06_clock_skew() {
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "FAST-PC");
    req.client_time = s.filetime(5 * 3600 * 1_000_000);
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::Refuse(0xC004_F06C)),
    );
    let mut req = s.request(WIN10, &cmid(2), "SLOW-PC");
    req.client_time = s.filetime(-(2 * 3600 + 10 * 60) * 1_000_000);
    s.kms(
        ip(CLIENT2),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    let ev = run(&s, &[]);
    let f = find(&ev, "KMS-06");
    assert_eq!(f.len(), 2);
    let fast = f
        .iter()
        .find(|f| f["subject"]["workstation"] == "FAST-PC")
        .expect("fast");
    assert_eq!(fast["severity"], "error");
    assert_eq!(fast["predicts"], "0xC004F06C");
    assert_msg(
        fast,
        &["5 h 0 min ahead of", "the capture's clock is the reference"],
    );
    let slow = f
        .iter()
        .find(|f| f["subject"]["workstation"] == "SLOW-PC")
        .expect("slow");
    assert_eq!(slow["severity"], "warning");
    assert_msg(
        slow,
        &["2 h 10 min behind", "the capture's clock is the reference"],
    );
    // The host's refusal is KMS-07 with the same code.
    assert_eq!(one(&ev, "KMS-07")["predicts"], "0xC004F06C");
    // 30 minutes off: silent; and the skew limits are policy.
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "PC");
    req.client_time = s.filetime(30 * 60 * 1_000_000);
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    assert!(ids(&run(&s, &[])).is_empty());
    assert_eq!(
        one(&run(&s, &["--skew-warn-min", "20"]), "KMS-06")["severity"],
        "warning"
    );
}

#[test]
fn kms_07_host_refusals_map_to_their_codes() {
    let mut s = Scenario::new();
    let codes = [0xC004_F042u32, 0x8007_000D, 0xC004_F041];
    for (i, code) in codes.iter().enumerate() {
        let req = s.request(OFFICE2016, &cmid(i as u32 + 1), &format!("PC-{i}"));
        s.kms(
            ip(CLIENT),
            ep(KMS1, 1688),
            &Call::new(req, Reply::Refuse(*code)),
        );
    }
    let ev = run(&s, &[]);
    let f = find(&ev, "KMS-07");
    assert_eq!(f.len(), 3);
    for (code, fix_part) in [
        ("0xC004F042", "CSVLK"),
        ("0x8007000D", "protocol version"),
        ("0xC004F041", "slmgr /ato"),
    ] {
        let x = f
            .iter()
            .find(|x| x["predicts"] == code)
            .unwrap_or_else(|| panic!("{code}"));
        assert_eq!(x["subject"]["code"], code);
        assert_eq!(x["severity"], "error");
        assert_eq!(x["subject"]["host"], "10.77.0.10:1688");
        assert!(
            msg(x).contains(code) && msg(x).contains("Office Professional Plus 2016"),
            "{}",
            msg(x)
        );
        assert!(x["fix"].as_str().unwrap_or("").contains(fix_part), "{code}");
    }
    assert!(find(&run(&healthy(), &[]), "KMS-07").is_empty());
}

#[test]
fn kms_08_corrupt_response() {
    let mut s = Scenario::new();
    let req = s.request(WIN10, &cmid(1), "PC");
    let reply = Reply::Answer {
        count: 50,
        epid: EPID.into(),
        hwid: Some(HWID),
        activation: 120,
        renewal: 10080,
        corrupt: true,
    };
    s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, reply));
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-08");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"]["host"], "10.77.0.10:1688");
    assert_msg(f, &["failed validation", "1 bad response"]);
    assert!(find(&run(&healthy(), &[]), "KMS-08").is_empty());
}

#[test]
fn kms_09_malformed_epid_and_kms_10_identity_change() {
    let mut s = Scenario::new();
    for (i, epid) in [
        "03612-00206-565-940149-03-0-17763.0000-2552023",
        "03612-00206-565-940149-03-1033-17763.0000-3652031",
    ]
    .iter()
    .enumerate()
    {
        let req = s.request(WIN10, &cmid(i as u32 + 1), "PC");
        let reply = Reply::Answer {
            count: 50,
            epid: epid.to_string(),
            hwid: Some(HWID),
            activation: 120,
            renewal: 10080,
            corrupt: false,
        };
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, reply));
    }
    let ev = run(&s, &[]);
    let f9 = one(&ev, "KMS-09");
    assert_eq!(f9["severity"], "warning");
    assert_eq!(f9["subject"]["host"], "10.77.0.10:1688");
    assert_msg(
        f9,
        &[
            "2 ePID(s)",
            "03612-00206-565-940149-03-0-17763.0000-2552023 (implausible language id",
            "03612-00206-565-940149-03-1033-17763.0000-3652031 (key installation date after the capture date",
        ],
    );
    let f10 = one(&ev, "KMS-10");
    assert_eq!(f10["severity"], "warning");
    assert_msg(f10, &["2 different ePIDs", "Windows 10/11 2015 (Volume)"]);
    // The consistent default ePID, returned every time: silent.
    let mut s = healthy();
    activate(&mut s, CLIENT, ep(KMS1, 1688), 2, "PC-2", 50);
    let ev = run(&s, &[]);
    assert!(find(&ev, "KMS-09").is_empty() && find(&ev, "KMS-10").is_empty());
}

#[test]
fn kms_11_emulator_fingerprints() {
    let mut s = Scenario::new();
    let mut c = Call::new(s.request(WIN10, &cmid(1), "PC"), Reply::count(60));
    c.assoc_group = 0x1063_BF3F;
    s.kms(ip(CLIENT), ep(KMS1, 1688), &c);
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-11");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["host"], "10.77.0.10:1688");
    assert_msg(f, &["0x1063BF3F", "count 60", "exceeds the 50"]);
    assert_eq!(
        one(&run(&s, &["--emulator-critical"]), "KMS-11")["severity"],
        "critical"
    );
    // vlmcsd's default HwId.
    let mut s = Scenario::new();
    let req = s.request(WIN10, &cmid(1), "PC");
    let reply = Reply::Answer {
        count: 50,
        epid: EPID.into(),
        hwid: Some([0x3a, 0x1c, 0x04, 0x96, 0x00, 0xb6, 0x00, 0x76]),
        activation: 120,
        renewal: 10080,
        corrupt: false,
    };
    s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, reply));
    assert_msg(one(&run(&s, &[]), "KMS-11"), &["3A1C049600B60076"]);
    assert!(find(&run(&healthy(), &[]), "KMS-11").is_empty());
}

#[test]
fn kms_12_public_kms_host() {
    let mut s = Scenario::new();
    activate(&mut s, CLIENT, ep("45.33.32.156", 1688), 1, "PC", 50);
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-12");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["subject"]["host"], "45.33.32.156:1688");
    assert_msg(f, &["globally routable Internet address", CLIENT]);
    // Microsoft's Azure KMS is public and legitimate; private hosts are never flagged.
    let mut s = Scenario::new();
    activate(&mut s, CLIENT, ep("20.118.99.224", 1688), 1, "AZ-VM", 50);
    activate(&mut s, CLIENT, ep(KMS1, 1688), 2, "PC", 50);
    let ev = run(&s, &[]);
    assert!(find(&ev, "KMS-12").is_empty(), "{:?}", ids(&ev));
    // With an allow-list, a private host outside it is flagged too.
    let ev = run(&s, &["--allow-host", "20.118.99.224"]);
    assert_eq!(one(&ev, "KMS-12")["subject"]["host"], "10.77.0.10:1688");
}

#[test]
fn kms_13_unknown_or_inconsistent_product() {
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "PC");
    req.sku_id = kms_encoder::guid("11111111-2222-3333-4444-555555555555");
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    let mut req = s.request(OFFICE2016, &cmid(2), "PC-2");
    req.app_id = kms_encoder::guid("55c92734-d682-4d71-983e-d6ec3f16059f");
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(10)),
    );
    let ev = run(&s, &[]);
    let f = find(&ev, "KMS-13");
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f["severity"] == "warning"));
    assert!(
        f.iter()
            .any(|f| msg(f).contains("unknown SKU 11111111-2222-3333-4444-555555555555"))
    );
    assert!(
        f.iter()
            .any(|f| msg(f).contains("does not match the KMS counted id"))
    );
    assert!(find(&run(&healthy(), &[]), "KMS-13").is_empty());
}

#[test]
fn kms_14_n_policy_over_1000() {
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "CRAFTED");
    req.required_count = 1001;
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::Refuse(0x8007_000D)),
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-14");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["predicts"], "0x8007000D");
    assert_eq!(f["subject"]["product"], "Windows 10/11 2015 (Volume)");
    assert_msg(f, &["N policy 1001 (from CRAFTED)"]);
    assert!(find(&run(&healthy(), &[]), "KMS-14").is_empty());
}

#[test]
fn kms_15_lapsed_and_kms_16_grace() {
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "LAPSED");
    req.license_status = LicenseStatus(5);
    req.binding_expiration = 0;
    s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(1)));
    let mut req = s.request(WIN10, &cmid(2), "GRACE");
    req.binding_expiration = 2000;
    s.kms(
        ip(CLIENT2),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-15");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["subject"]["cmid"], cmid(1));
    assert_msg(f, &["notification (5)", "LAPSED"]);
    let g = one(&ev, "KMS-16");
    assert_eq!(g["severity"], "warning");
    assert_eq!(g["subject"]["workstation"], "GRACE");
    assert_msg(g, &["oob_grace", "33 h 20 min"]);
    // Licensed with 180 days left, OOB grace with 30 days left: silent.
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "OK");
    req.license_status = LicenseStatus(1);
    req.binding_expiration = 259_200;
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    assert!(ids(&run(&s, &[])).is_empty());
}

#[test]
fn kms_17_intervals() {
    let mut s = Scenario::new();
    let req = s.request(WIN10, &cmid(1), "PC");
    let reply = |a: u32, r: u32| Reply::Answer {
        count: 50,
        epid: EPID.into(),
        hwid: Some(HWID),
        activation: a,
        renewal: r,
        corrupt: false,
    };
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req.clone(), reply(60, 10080)),
    );
    s.kms(
        ip(CLIENT),
        ep(KMS2, 1688),
        &Call::new(req, reply(5, 100_000)),
    );
    let ev = run(&s, &[]);
    let f = find(&ev, "KMS-17");
    assert_eq!(f.len(), 2);
    let mild = f
        .iter()
        .find(|f| f["subject"]["host"] == "10.77.0.10:1688")
        .expect("mild");
    assert_eq!(mild["severity"], "info");
    assert_msg(mild, &["every 60 min", "120 / 10080"]);
    let extreme = f
        .iter()
        .find(|f| f["subject"]["host"] == "10.77.0.11:1688")
        .expect("extreme");
    assert_eq!(extreme["severity"], "warning");
    assert!(find(&run(&healthy(), &[]), "KMS-17").is_empty());
}

#[test]
fn kms_18_retry_loop() {
    let mut s = Scenario::new();
    for _ in 0..3 {
        let req = s.request(WIN10, &cmid(1), "STUCK");
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(3)));
        s.wait_us(2 * HOUR_US);
    }
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-18");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["subject"]["workstation"], "STUCK");
    assert_msg(
        f,
        &[
            "3 separate activation tries",
            "about every 120 min",
            "count_insufficient",
        ],
    );
    // A capture where the client's clock was moved on 2 h between quick tries (faketime) still
    // shows the retry timer through the request times.
    let mut s = Scenario::new();
    for i in 0..3i64 {
        let mut req = s.request(WIN10, &cmid(1), "SHIFTED");
        req.client_time = s.filetime(i * 2 * 3600 * 1_000_000);
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(3)));
    }
    let ev = run(&s, &[]);
    assert_msg(
        one(&ev, "KMS-18"),
        &["3 separate activation tries", "about every 120 min"],
    );
    // Three failures within a minute are one try.
    let mut s = Scenario::new();
    for _ in 0..3 {
        let req = s.request(WIN10, &cmid(1), "STUCK");
        s.kms(ip(CLIENT), ep(KMS1, 1688), &Call::new(req, Reply::count(3)));
    }
    assert!(find(&run(&s, &[]), "KMS-18").is_empty());
}

#[test]
fn kms_19_renewal_overdue_and_kms_20_population() {
    // Day 0: three machines activate; day 9: only one renews. Windows N = 25.
    let mut s = Scenario::new();
    for i in 1..=3 {
        activate(&mut s, CLIENT, ep(KMS1, 1688), i, &format!("PC-{i}"), 30);
    }
    s.wait_us(9 * DAY_US);
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC-1", 30);
    let ev = run(&s, &[]);
    let f19 = find(&ev, "KMS-19");
    assert_eq!(f19.len(), 2, "PC-2 and PC-3");
    assert!(f19.iter().all(|f| f["severity"] == "info"));
    assert!(
        f19.iter()
            .any(|f| msg(f).contains("PC-2") && msg(f).contains("9 days"))
    );
    let f20 = one(&ev, "KMS-20");
    assert_eq!(f20["severity"], "info");
    assert_msg(f20, &["only 3 distinct machine(s)", "N policy 25"]);
    // Over one hour nothing is overdue and the population is not estimated.
    let mut s = Scenario::new();
    for i in 1..=3 {
        activate(&mut s, CLIENT, ep(KMS1, 1688), i, &format!("PC-{i}"), 30);
    }
    s.wait_us(HOUR_US);
    activate(&mut s, CLIENT, ep(KMS1, 1688), 1, "PC-1", 30);
    let ev = run(&s, &[]);
    assert!(find(&ev, "KMS-19").is_empty() && find(&ev, "KMS-20").is_empty());
}

#[test]
fn kms_21_v5_client_and_kms_22_vm() {
    let mut s = Scenario::new();
    let mut req = s.request(WIN10, &cmid(1), "OLD-PC");
    req.version = KmsVersion::V5;
    req.vm_info = 1;
    s.kms(
        ip(CLIENT),
        ep(KMS1, 1688),
        &Call::new(req, Reply::count(50)),
    );
    let ev = run(&s, &[]);
    let f = one(&ev, "KMS-21");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["subject"]["host"], "10.77.0.10:1688");
    assert_msg(f, &["OLD-PC", "protocol 5.0"]);
    assert_msg(one(&ev, "KMS-22"), &["OLD-PC", "virtual machines"]);
    let ev = run(&healthy(), &[]);
    assert!(find(&ev, "KMS-21").is_empty() && find(&ev, "KMS-22").is_empty());
}

#[test]
fn bad_policy_flag_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .args(["read", "/nonexistent.pcap", "--allow-host", "not a host"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid allowed host"));
}
