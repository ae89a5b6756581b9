//! Golden tests over the third-party captures in `captures/interop/`: for each capture, the JSON Lines
//! output must match every KMS fact of its `.expect.json` (made from the vlmcsd / py-kms / vlmcs logs
//! and tshark, not from kmsscope).

use std::path::PathBuf;

use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::{interop_dir, run_jsonl};

fn captures() -> Vec<(PathBuf, Value)> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(interop_dir()).expect("captures/interop") {
        let p = entry.expect("dir entry").path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(stem) = name.strip_suffix(".expect.json") {
            let expect: Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read expect"))
                    .expect("expect json");
            let file = expect["file"].as_str().unwrap_or(stem).to_string();
            v.push((interop_dir().join(file), expect));
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        v.len() >= 14,
        "expected the 14 interop captures, found {}",
        v.len()
    );
    v
}

/// Our endpoint object as `(ip, port)`.
fn endpoint(v: &Value) -> (String, u64) {
    (
        v["ip"].as_str().unwrap_or("?").to_string(),
        v["port"].as_u64().unwrap_or(0),
    )
}

/// An expect.json endpoint, `10.77.0.20:49731` or `[fd77::20]:49731` or `fd77::20:49731`.
fn expect_endpoint(v: &Value) -> (String, u64) {
    let s = v.as_str().unwrap_or_default();
    let (ip, port) = s.rsplit_once(':').unwrap_or((s, "0"));
    (
        ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        port.parse().unwrap_or(0),
    )
}

/// `2026-11-23 15:18:34` (expect) vs `2026-11-23T15:18:34Z` (ours), compared to the second.
fn same_second(expect: &str, ours: &str) -> bool {
    ours.replace('T', " ").trim_end_matches('Z').get(..19) == expect.get(..19)
}

fn check_kms(file: &str, ex: &Value, ev: &Value) {
    let ctx = format!("{file} request frame {}", ex["request_frame"]);
    assert_eq!(
        endpoint(&ev["client"]),
        expect_endpoint(&ex["client"]),
        "{ctx}: client"
    );
    assert_eq!(
        endpoint(&ev["server"]),
        expect_endpoint(&ex["server"]),
        "{ctx}: server"
    );
    assert_eq!(ev["call_id"], ex["rpc_call_id"], "{ctx}: call id");
    if !ex["rpc_ctx_id"].is_null() {
        assert_eq!(ev["ctx_id"], ex["rpc_ctx_id"], "{ctx}: context id");
    }
    if !ex["response_frame"].is_null() {
        assert_eq!(
            ev["response_frame"], ex["response_frame"],
            "{ctx}: response frame"
        );
    }
    let req = &ex["request"];
    let ours = &ev["request"];
    if !req.is_null() {
        assert_eq!(ev["version"], req["protocol_version"], "{ctx}: version");
        assert_eq!(ours["app_id"], req["app_id"]["guid"], "{ctx}: app id");
        assert_eq!(ours["sku_id"], req["sku_id"]["guid"], "{ctx}: sku id");
        assert_eq!(
            ours["kms_id"], req["kms_counted_id"]["guid"],
            "{ctx}: kms counted id"
        );
        assert_eq!(ours["cmid"], req["cmid"], "{ctx}: cmid");
        let prev = req["previous_cmid"]
            .as_str()
            .unwrap_or("00000000-0000-0000-0000-000000000000");
        if prev == "00000000-0000-0000-0000-000000000000" {
            assert!(
                ours.get("previous_cmid").is_none(),
                "{ctx}: zero previous cmid must be omitted"
            );
        } else {
            assert_eq!(ours["previous_cmid"], prev, "{ctx}: previous cmid");
        }
        assert_eq!(
            ours["workstation"], req["workstation_name"],
            "{ctx}: workstation"
        );
        assert_eq!(
            ours["required_count"], req["required_client_count"],
            "{ctx}: required count"
        );
        assert_eq!(ours["is_vm"], req["is_vm"], "{ctx}: vm flag");
        assert_eq!(
            ours["license_status_code"], req["license_status"]["code"],
            "{ctx}: license status"
        );
        assert_eq!(
            ours["binding_expiration_min"], req["binding_expiration_minutes"],
            "{ctx}: binding expiration"
        );
        assert!(
            same_second(
                req["client_time_utc"].as_str().unwrap_or_default(),
                ours["client_time"].as_str().unwrap_or_default()
            ),
            "{ctx}: client time {} vs {}",
            req["client_time_utc"],
            ours["client_time"]
        );
    }
    let hresult = ex["hresult"].as_str().unwrap_or("0x00000000");
    if hresult.eq_ignore_ascii_case("0x00000000") {
        assert_eq!(ev["status"], "answered", "{ctx}: status");
        let resp = &ex["response"];
        let r = &ev["response"];
        assert_eq!(r["epid"], resp["host_epid"], "{ctx}: ePID");
        if !resp["host_hwid"].is_null() {
            assert_eq!(r["hwid"], resp["host_hwid"], "{ctx}: HwId");
        } else {
            assert!(r.get("hwid").is_none(), "{ctx}: no HwId before v6");
        }
        assert_eq!(
            r["current_count"], resp["current_count"],
            "{ctx}: current count"
        );
        assert_eq!(
            r["activation_interval_min"], resp["activation_interval_minutes"],
            "{ctx}: activation interval"
        );
        assert_eq!(
            r["renewal_interval_min"], resp["renewal_interval_minutes"],
            "{ctx}: renewal interval"
        );
        assert_eq!(
            ev["integrity"]["request"], "valid",
            "{ctx}: request integrity {}",
            ev["integrity"]
        );
        assert_eq!(
            ev["integrity"]["response"], "valid",
            "{ctx}: response integrity {}",
            ev["integrity"]
        );
        let meets = ex["count_meets_policy"].as_bool().unwrap_or(true);
        assert_eq!(
            ev["outcome"],
            if meets {
                "activated"
            } else {
                "count_insufficient"
            },
            "{ctx}: outcome"
        );
    } else {
        assert!(
            ev["status"] == "refused" || ev["status"] == "fault",
            "{ctx}: status {}",
            ev["status"]
        );
        assert_eq!(
            ev["hresult"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            hresult.to_ascii_lowercase(),
            "{ctx}: HRESULT"
        );
    }
}

#[test]
fn every_kms_fact_of_every_interop_capture() {
    for (path, expect) in captures() {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let events = run_jsonl(&path, &[]);
        let kms: Vec<&Value> = events.iter().filter(|e| e["event"] == "kms").collect();
        let exchanges = expect["kms_exchanges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(kms.len(), exchanges.len(), "{file}: number of KMS calls");
        for ex in &exchanges {
            let ev = kms
                .iter()
                .find(|e| e["frame"] == ex["request_frame"])
                .unwrap_or_else(|| {
                    panic!(
                        "{file}: no kms event for request frame {}",
                        ex["request_frame"]
                    )
                });
            check_kms(&file, ex, ev);
            assert_eq!(
                ev["source"].as_str().map(|s| s.ends_with(&file)),
                Some(true),
                "{file}: source name"
            );
        }
        let summary: Vec<&Value> = events.iter().filter(|e| e["event"] == "summary").collect();
        assert_eq!(summary.len(), 1, "{file}: one summary");
        assert_eq!(
            summary[0]["packets"], expect["capture"]["packets"],
            "{file}: packet count"
        );
        assert_eq!(
            summary[0]["kms_calls"].as_u64(),
            Some(exchanges.len() as u64),
            "{file}: summary kms_calls"
        );
    }
}

#[test]
fn summary_rebuilds_host_counts_per_product_group() {
    // s07: vlmcsd with a real client list returns 1, 2, 3 to Windows 10 clients (N=25) and 1 to Office 2016 (N=5).
    let events = run_jsonl(&interop_dir().join("s07_threshold_below.pcapng"), &[]);
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let hosts = summary["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1);
    let apps = hosts[0]["apps"].as_array().expect("apps");
    let win = apps
        .iter()
        .find(|a| a["kms_id"] == "58e2134f-8e11-4d17-9cb2-91069c151148")
        .expect("Windows 10 group");
    assert_eq!(win["last_count"], 3);
    assert_eq!(win["required_count"], 25);
    assert_eq!(win["requests"], 3);
    assert_eq!(win["distinct_cmids"], 3);
    let office = apps
        .iter()
        .find(|a| a["kms_id"] == "85b5f61b-320b-4be3-814a-b76b2bfafc82")
        .expect("Office 2016 group");
    assert_eq!(office["last_count"], 1);
    assert_eq!(office["required_count"], 5);
    assert_eq!(summary["clients"], 4);
}
