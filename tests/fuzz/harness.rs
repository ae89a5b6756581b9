//! Fuzz harness bodies, shared by the cargo-fuzz targets in `tests/fuzz/fuzz_targets/` and by the
//! corpus replay / bounded random-input test `tests/fuzz_replay.rs` of the main test suite (which
//! runs on stable Rust in CI). Each function takes arbitrary bytes and must neither panic nor hang;
//! the few properties checked here (`assert!`) are contracts of the public API.
//!
//! Targets (one public parser entry each, house style "fuzz targets per public parser entry"):
//! * [`capture_reader`]: bytes as a capture file (pcap, pcapng, gzip, zip) → every packet and
//!   notice → link/IP/TCP/UDP decode;
//! * [`dcerpc_session`]: bytes as a script of two-direction TCP deliveries with arbitrary split
//!   points, gaps and a close → [`Session`], checked against the same bytes delivered coalesced;
//! * [`kms_decode`]: bytes as a KMS request, or as the response to a valid captured request;
//! * [`dns`]: bytes as a DNS message, as a DNS-over-TCP stream, and as a script of messages for
//!   the query/answer pairing with tiny limits;
//! * [`engine`]: bytes as a capture through the whole pipeline and every text sink.
#![allow(dead_code)]

use std::io::{self, Cursor};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use kmsscope::Direction;
use kmsscope::capture::{self, Opened};
use kmsscope::dcerpc::{CloseReason, RpcEvent, Session};
use kmsscope::decode::Decoder;
use kmsscope::dns;
use kmsscope::kms;
use kmsscope::output::Sink;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::output::report::ReportSink;
use kmsscope::output::table::TableSink;
use kmsscope::run::{RunOptions, analyze_source};
use kmsscope::time::Ts;

/// Packets read per source at most (a tiny gzip can expand to many packets; the fuzzer wants
/// executions, not long runs). The reader's own limits are tested by `tests/hostile.rs`.
const MAX_PACKETS: usize = 20_000;

/// Capture reader: open, read every packet and notice, decode each packet.
pub fn capture_reader(data: &[u8]) {
    let Ok(sources) = capture::open_reader("fuzz", Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    for item in sources {
        let mut src = match item {
            Ok(Opened::Source(s)) => s,
            Ok(Opened::Skipped(n)) => {
                let _ = n.to_string();
                continue;
            }
            Err(e) => {
                let line = e.to_string();
                assert!(!line.contains('\n'), "error is one line: {line:?}");
                continue;
            }
        };
        let mut dec = Decoder::new();
        let mut n = 0;
        loop {
            match src.next_packet() {
                Ok(Some(pkt)) => {
                    assert!(pkt.data.len() <= capture::MAX_RECORD_LEN as usize);
                    let _ = dec.decode(&pkt);
                    let _ = dec.take_anomalies().count();
                }
                Ok(None) => break,
                Err(e) => {
                    let line = e.to_string();
                    assert!(!line.contains('\n'), "error is one line: {line:?}");
                    break;
                }
            }
            for notice in src.take_notices() {
                let _ = notice.to_string();
            }
            n += 1;
            if n >= MAX_PACKETS {
                break;
            }
        }
        let _ = src.take_notices();
        dec.finish();
        let _ = dec.take_anomalies().count();
    }
}

/// One step of a DCE/RPC script.
#[derive(Clone, Debug)]
enum Step<'a> {
    Data(Direction, &'a [u8]),
    Gap(Direction, u64),
}

/// Reads the script: each step is a control byte then, for data, a length byte and that many
/// bytes (fewer at the end). Control: bit 0 direction (1 = server to client), bit 1..=6 zero →
/// data, `0x7e` → gap of `len` bytes, `0x7f` stops (the session is closed with a reason from the
/// next byte).
fn script(data: &[u8]) -> (Vec<Step<'_>>, CloseReason) {
    let mut steps = Vec::new();
    let mut i = 0;
    let mut reason = CloseReason::CaptureEnded;
    while i < data.len() {
        let ctl = data[i];
        let dir = if ctl & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let len = usize::from(data.get(i + 1).copied().unwrap_or(0));
        match ctl >> 1 {
            0x3f => {
                reason = match data.get(i + 1).copied().unwrap_or(0) % 5 {
                    0 => CloseReason::ConnectionClosed,
                    1 => CloseReason::Reset,
                    2 => CloseReason::Timeout,
                    3 => CloseReason::Gap,
                    _ => CloseReason::CaptureEnded,
                };
                break;
            }
            0x3e => {
                steps.push(Step::Gap(dir, len as u64));
                i += 2;
            }
            _ => {
                // The low bits besides the direction scale the chunk: long PDUs need long chunks.
                let len = len * (1 + usize::from((ctl >> 1) & 0x7));
                let start = (i + 2).min(data.len());
                let end = start.saturating_add(len).min(data.len());
                steps.push(Step::Data(dir, &data[start..end]));
                i = end.max(i + 2);
            }
        }
    }
    (steps, reason)
}

/// Runs a script through a session the way the engine drives it (the caller keeps what was not
/// consumed and hands it in again with the next bytes) and returns the events.
fn run_session(steps: &[Step<'_>], reason: CloseReason, port_kms: bool) -> Vec<RpcEvent> {
    let mut s = Session::new(port_kms);
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    let ts = Ts(1_700_000_000_000_000_000);
    for step in steps {
        match *step {
            Step::Data(dir, bytes) => {
                let b = &mut bufs[dir.index()];
                b.extend_from_slice(bytes);
                loop {
                    let n = s.on_data(dir, b, 1, ts, &mut out);
                    assert!(n <= b.len(), "consumed {n} of {} bytes", b.len());
                    b.drain(..n);
                    if n == 0 || b.is_empty() {
                        break;
                    }
                }
                assert!(
                    b.len() <= 1 << 20,
                    "session left {} bytes unconsumed",
                    b.len()
                );
            }
            Step::Gap(dir, n) => {
                bufs[dir.index()].clear();
                s.on_gap(dir, n, 1, ts, &mut out);
            }
        }
    }
    let _ = s.open_calls();
    s.on_close(reason, 1, ts, &mut out);
    for ev in &out {
        if let RpcEvent::Call(call) = ev
            && let Some(Ok(q)) = call.kms_request()
        {
            let req = kms::decode_request(q);
            if let Some(Ok(kmsscope::dcerpc::KmsReply::Success { kms: a, .. })) = call.kms_reply() {
                let resp = kms::decode_response(&req, a);
                let _ = kms::outcome(&req, &resp);
            }
        }
    }
    out
}

/// Merges consecutive data steps of the same direction (same bytes, fewer and larger deliveries);
/// only for scripts without gaps.
fn coalesce(steps: &[Step<'_>]) -> Vec<(Direction, Vec<u8>)> {
    let mut v: Vec<(Direction, Vec<u8>)> = Vec::new();
    for step in steps {
        if let Step::Data(dir, bytes) = *step {
            match v.last_mut() {
                Some((d, buf)) if *d == dir => buf.extend_from_slice(bytes),
                _ => v.push((dir, bytes.to_vec())),
            }
        }
    }
    v
}

/// DCE/RPC session fed with arbitrary splits, gaps and a close. Property: when the script has no
/// gap, delivering the same bytes coalesced gives the same events (the consumed/needed contract).
pub fn dcerpc_session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let port_kms = flags & 1 == 1;
    let (steps, reason) = script(rest);
    let split = run_session(&steps, reason, port_kms);
    if steps.iter().all(|s| matches!(s, Step::Data(..))) {
        let merged = coalesce(&steps);
        let steps2: Vec<Step<'_>> = merged.iter().map(|(d, b)| Step::Data(*d, b)).collect();
        let whole = run_session(&steps2, reason, port_kms);
        assert_eq!(split, whole, "events depend on how the stream was split");
    }
}

/// Valid captured requests (v4, v5, v6) from `tests/data/kms_capture_payloads.tsv`.
fn captured_requests() -> &'static [Vec<u8>] {
    static REQS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    REQS.get_or_init(|| {
        let tsv = include_str!("../data/kms_capture_payloads.tsv");
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for line in tsv.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 5 || seen.contains(&cols[2]) {
                continue;
            }
            seen.push(cols[2]);
            out.push(hex(cols[3]));
        }
        out
    })
}

/// Lowercase/uppercase hex to bytes (test data only).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// KMS decoder and validator. First byte 0: the rest is a request; 1..=3: the rest is the response
/// to captured request v4/v5/v6; otherwise the rest is decoded as a request and then as the
/// response to itself.
pub fn kms_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let reqs = captured_requests();
    match mode {
        0 => {
            let r = kms::decode_request(rest);
            let _ = kms::Integrity::new(&r, None);
        }
        1..=3 => {
            let Some(q) = reqs.get(usize::from(mode - 1)) else {
                return;
            };
            let r = kms::decode_request(q);
            let resp = kms::decode_response(&r, rest);
            let _ = kms::Integrity::new(&r, Some(&resp));
            let _ = kms::outcome(&r, &resp);
            if let Some(rr) = &resp.response {
                let e = kms::parse_epid(&rr.epid);
                let _ = e.issues();
                let _ = e.csvlk();
            }
        }
        _ => {
            let r = kms::decode_request(rest);
            let resp = kms::decode_response(&r, rest);
            let _ = kms::outcome(&r, &resp);
        }
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        let e = kms::parse_epid(s);
        let _ = e.issues();
    }
}

/// DNS layer: message parser, detectors, TCP framing, and the pairing table with tiny limits
/// fed with the messages of the input read as a DNS-over-TCP stream.
pub fn dns(data: &[u8]) {
    if let Ok(m) = dns::parse_message(data) {
        let _ = m.rcode_name();
        let _ = m.question().map(|q| dns::qtype_name(q.qtype));
    }
    let _ = dns::looks_like_dns(data);
    let _ = dns::looks_like_dns_tcp(data);
    let _ = dns::parse_header(data);
    let frames = dns::split_tcp_messages(data);
    assert!(frames.consumed <= data.len());
    let mut t = dns::DnsTracker::with_limits(1_000_000_000, 4, 512);
    let mut out = Vec::new();
    let client: dns::Endpoint = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50_000);
    let server: dns::Endpoint = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)), 53);
    let mcast: dns::Endpoint = (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);
    for (i, m) in frames.messages.iter().enumerate() {
        let Ok(msg) = dns::parse_message(m) else {
            continue;
        };
        // Time from the message length, endpoints from its ID: deterministic, input-driven.
        let ts = Ts(i as i64 * 300_000_000 + m.len() as i64 * 1_000_000);
        let tr = if msg.id & 1 == 0 {
            dns::Transport::Udp
        } else {
            dns::Transport::Tcp
        };
        let (src, dst) = match (msg.is_response, msg.id & 6) {
            (_, 6) => (client, mcast),
            (false, _) => (client, server),
            (true, _) => (server, client),
        };
        t.on_message(src, dst, tr, msg, i as u64 + 1, ts, &mut out);
        t.expire(ts, &mut out);
    }
    t.finish(&mut out);
    assert_eq!(t.pending_len(), 0);
    for ex in &out {
        let _ = (ex.rtt_ms(), ex.rcode(), ex.question(), ex.is_answered());
    }
}

/// Whole pipeline: capture bytes through the engine into the JSON Lines, table and report sinks.
pub fn engine(data: &[u8]) {
    let Ok(sources) = capture::open_reader("fuzz", Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(JsonlSink::new(io::sink(), false)),
        Box::new(TableSink::new(io::sink(), 100)),
        Box::new(ReportSink::new(io::sink())),
    ];
    let opts = RunOptions::default();
    for item in sources {
        if let Ok(Opened::Source(src)) = item {
            let _ = analyze_source(src, &opts, &mut sinks);
        }
    }
    for s in &mut sinks {
        let _ = s.finish();
    }
}
