//! Hostile input, tried the way a new user meets it: the real binary on broken captures (the
//! committed corpus in `tests/hostile/`, plus captures generated here when large or many), each
//! run under a deadline with its peak memory measured. Every run must end in bounded time and
//! memory with exit 0 (anomalies reported) or exit 1 with a clear stderr line naming the file,
//! never a panic, and never put a control character or escape sequence on the terminal raw.
//!
//! Peak RSS comes from `/usr/bin/time -f %M` (GNU time); without it the memory assertions are
//! skipped with a printed reason. Run with `--nocapture` to see exit code, time and peak RSS of
//! every case.

#[path = "common/dcerpc_encoder.rs"]
mod dcerpc_encoder;
#[path = "common/kms_conv.rs"]
mod kms_conv;
#[path = "common/kms_encoder.rs"]
mod kms_encoder;
#[path = "common/pcap.rs"]
mod pcap;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kms_conv::{Answer, CallSpec};
use pcap::{Conn, Pkt, pcap_bytes};
use serde_json::Value;

/// A run taking longer than this is a hang: the child is killed and the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Peak resident memory allowed for any run (the issue's bound for the SYN flood).
const MAX_RSS_KIB: u64 = 64 * 1024;

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    secs: f64,
    peak_kib: Option<u64>,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The JSON Lines events (when run with `--jsonl -`).
    fn events(&self) -> Vec<Value> {
        self.out()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn interop(name: &str) -> Vec<u8> {
    std::fs::read(root().join("captures/interop").join(name)).expect("read interop capture")
}

/// A fresh temporary path (unique per process and call).
fn temp_path(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "kmsscope-hostile-{}-{n}-{name}",
        std::process::id()
    ))
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

fn have_gnu_time() -> bool {
    Path::new("/usr/bin/time").exists()
}

/// Runs `kmsscope ARGS` with `stdin`, under [`DEADLINE`], measuring peak RSS when possible.
fn run_with(args: &[&OsStr], stdin: Option<Vec<u8>>) -> Run {
    let bin = env!("CARGO_BIN_EXE_kmsscope");
    let rss_file = temp_path("rss");
    let mut cmd = if have_gnu_time() {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o"]).arg(&rss_file).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn kmsscope");
    let feeder = stdin.map(|data| {
        let mut w = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        })
    });
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("kmsscope {args:?} still running after {DEADLINE:?}: killed (hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = t_out.join().expect("stdout reader");
    let stderr = t_err.join().expect("stderr reader");
    let peak_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
    let _ = std::fs::remove_file(&rss_file);
    Run {
        code: status.code(),
        stdout,
        stderr,
        secs,
        peak_kib,
    }
}

fn run(args: &[&OsStr]) -> Run {
    run_with(args, None)
}

/// Code points that must never reach a terminal raw: C0 controls other than newline, DEL, C1
/// controls, bidirectional overrides and isolates, the BOM.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// No raw escape: byte 0x1b, 0x07, 0x9b (as a lone byte or as U+009B) or any other unsafe
/// character.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    assert!(
        std::str::from_utf8(bytes).is_ok(),
        "{what}: output is not UTF-8 (a lone 0x9b byte would be CSI on a Latin-1 terminal)"
    );
    // 0x9b is checked as U+009B below (as a byte it is also a UTF-8 continuation byte).
    for bad in [0x1bu8, 0x07, b'\r', 0] {
        if let Some(i) = bytes.iter().position(|&b| b == bad) {
            let from = i.saturating_sub(40);
            panic!(
                "{what}: raw byte {bad:#04x} at {i}: {:?}",
                String::from_utf8_lossy(&bytes[from..(i + 40).min(bytes.len())])
            );
        }
    }
    let s = String::from_utf8_lossy(bytes);
    if let Some(c) = s.chars().find(|&c| unsafe_char(c) && c != '\t') {
        panic!("{what}: raw {c:?} reached the terminal");
    }
}

/// The checks every run of a text mode (table, report, errors) must pass; prints the
/// measurements. `label` names the case in messages.
fn check_common(label: &str, r: &Run) {
    check_bounded(label, r, MAX_RSS_KIB);
}

/// [`check_common`] with another peak memory bound.
fn check_bounded(label: &str, r: &Run, max_rss_kib: u64) {
    println!(
        "hostile {label}: exit {:?}, {:.2} s, peak RSS {}",
        r.code,
        r.secs,
        r.peak_kib
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "not measured (no /usr/bin/time)".into())
    );
    let err = r.err();
    assert!(
        !err.contains("panicked") && r.code != Some(101),
        "{label}: panic: {err}"
    );
    assert!(
        matches!(r.code, Some(0) | Some(1)),
        "{label}: exit {:?}: {err}",
        r.code
    );
    for l in err.lines() {
        assert!(
            l.starts_with("kmsscope: "),
            "{label}: stray stderr line {l:?}"
        );
    }
    if r.code == Some(1) {
        assert!(
            err.lines().any(|l| !l.starts_with("kmsscope: note: ")),
            "{label}: exit 1 without an error line: {err}"
        );
    }
    if let Some(k) = r.peak_kib {
        assert!(
            k <= max_rss_kib,
            "{label}: peak RSS {k} KiB above {max_rss_kib} KiB"
        );
    }
}

/// Runs the table (default) and the JSON Lines modes on `path`; returns (table run, events).
fn try_file(label: &str, path: &Path) -> (Run, Vec<Value>) {
    let table = run(&[
        OsStr::new("read"),
        path.as_os_str(),
        OsStr::new("--width"),
        OsStr::new("120"),
    ]);
    check_common(label, &table);
    assert_terminal_safe(&format!("{label} stdout"), &table.stdout);
    assert_terminal_safe(&format!("{label} stderr"), &table.stderr);
    if table.code == Some(1) {
        // One clear line naming the file (escaped as it is shown).
        let shown = kmsscope::output::escape::escape(&path.to_string_lossy()).into_owned();
        let err = table.err();
        assert!(
            err.lines()
                .filter(|l| !l.starts_with("kmsscope: note: "))
                .all(|l| l.contains(&shown)),
            "{label}: error lines must name the file {shown}: {err}"
        );
    }
    let json = run(&[
        OsStr::new("read"),
        path.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    check_common(&format!("{label} (jsonl)"), &json);
    assert_eq!(
        json.code, table.code,
        "{label}: same exit code in both modes"
    );
    assert_terminal_safe(&format!("{label} jsonl stderr"), &json.stderr);
    let events = json.events();
    if json.code == Some(0) {
        assert!(
            events.iter().any(|e| e["event"] == "summary"),
            "{label}: a summary per analysed capture"
        );
    }
    (table, events)
}

fn anomaly_kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "anomaly")
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------
// The committed corpus

/// Each committed file with its expected exit code and a text that must appear: in stderr for
/// exit 1, among the anomaly kinds (or in stderr notes) for exit 0.
const CORPUS: &[(&str, i32, &str)] = &[
    ("bad_version_snaplen0.pcap", 0, "unusual_version"),
    ("caplen_4gib.pcap", 1, "offset 286 (frame 4)"),
    ("caplen_over_max_record.pcap", 1, "offset 204 (frame 3)"),
    ("caplen_over_origlen.pcap", 0, "caplen_exceeds_orig_len"),
    ("caplen_over_snaplen.pcap", 0, "caplen_exceeds_snaplen"),
    ("capture.pcap.xz", 1, "xz-compressed data is not read"),
    ("capture.tar.gz", 0, ""),
    ("capture_and_junk.zip", 1, "broken.pcap: truncated pcap"),
    (
        "double_gzip_bomb.pcap.gz.gz",
        1,
        "possible compression bomb",
    ),
    ("empty.pcap", 1, "empty file"),
    ("header_only_10_bytes.pcap", 1, "truncated pcap file header"),
    (
        "nested_zip_bomb.zip",
        1,
        "larger than the 33554432-byte in-memory limit",
    ),
    (
        "no_capture_inside.zip",
        1,
        "no capture file found in the archive",
    ),
    ("origlen_4gib.pcap", 0, ""),
    ("pcapng_block_length_mismatch.pcapng", 1, "at offset 48"),
    ("pcapng_epb_caplen_4gib.pcapng", 0, "bad_packet_block"),
    (
        "pcapng_huge_block.pcapng",
        1,
        "more than the limit of 1048576 at offset 156",
    ),
    ("pcapng_huge_unknown_block.pcapng", 1, "at offset 156"),
    ("pcapng_interface_99.pcapng", 0, "unknown_interface"),
    ("pcapng_no_interface_block.pcapng", 0, "unknown_interface"),
    (
        "pcapng_odd_length_block.pcapng",
        1,
        "invalid pcapng block length 29",
    ),
    (
        "pcapng_shb_only_truncated.pcapng",
        1,
        "truncated pcapng block",
    ),
    (
        "pcapng_zero_length_block.pcapng",
        1,
        "invalid pcapng block length 0",
    ),
    ("random.bin", 1, "not a capture file"),
    ("ticket_notes.txt", 1, "not a capture file"),
    ("truncated.pcap.gz", 1, "corrupt or truncated"),
    ("truncated.zip", 1, "corrupt or truncated zip"),
    ("truncated_gzip_header.gz", 1, "corrupt or truncated"),
];

#[test]
fn committed_corpus() {
    let dir = root().join("tests/hostile");
    let mut listed: Vec<&str> = CORPUS.iter().map(|c| c.0).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/hostile")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    present.sort();
    assert_eq!(present, listed, "every corpus file has an expectation here");
    for (name, code, needle) in CORPUS {
        let (table, events) = try_file(name, &dir.join(name));
        assert_eq!(table.code, Some(*code), "{name}: {}", table.err());
        if *code == 1 {
            assert!(
                table.err().contains(needle),
                "{name}: {needle:?} not in {}",
                table.err()
            );
        } else {
            let kinds = anomaly_kinds(&events);
            assert!(
                needle.is_empty() || kinds.iter().any(|k| k == needle),
                "{name}: anomaly {needle} not in {kinds:?}"
            );
        }
    }
}

/// A gzipped tar (GNU long names) is analysed like a zip: members streamed, never extracted.
#[test]
fn tar_gz_attachment_is_analysed() {
    let p = root().join("tests/hostile/capture.tar.gz");
    let r = run(&[
        OsStr::new("read"),
        p.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    check_common("capture.tar.gz", &r);
    let events = r.events();
    assert_eq!(events.iter().filter(|e| e["event"] == "kms").count(), 3);
    let src = format!(
        "{}:ticket/{}s05.pcap",
        p.to_string_lossy(),
        "long-directory-name/".repeat(6)
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "summary" && e["source"] == src.as_str()),
        "{src}"
    );
    assert!(r.err().contains("readme.txt"), "{}", r.err());
}

/// The zip with one good capture among broken and non-capture members still analyses the good
/// ones (plain and gzip-compressed, streamed from the archive, nothing extracted to disk).
#[test]
fn zip_with_junk_members_analyses_the_captures() {
    let p = root().join("tests/hostile/capture_and_junk.zip");
    let r = run(&[
        OsStr::new("read"),
        p.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    let events = r.events();
    let kms = events.iter().filter(|e| e["event"] == "kms").count();
    assert_eq!(
        kms,
        3,
        "the three calls of s05 in the gzip member: {}",
        r.err()
    );
    let summaries: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "summary")
        .filter_map(|e| e["source"].as_str())
        .collect();
    assert_eq!(summaries.len(), 3, "s13, broken, s05: {summaries:?}");
    assert!(r.err().contains("readme.txt"), "{}", r.err());
}

// ------------------------------------------------------------------------------------------
// Generated breakage

/// Byte offsets where a classic pcap's headers start and end (global header, each record header).
fn pcap_boundaries(d: &[u8]) -> Vec<usize> {
    let mut v = vec![0, 4, 23, 24];
    let mut off = 24;
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes([d[off + 8], d[off + 9], d[off + 10], d[off + 11]]) as usize;
        v.extend([off + 1, off + 8, off + 15, off + 16, off + 16 + incl / 2]);
        off += 16 + incl;
    }
    v.retain(|&o| o < d.len());
    v
}

/// Byte offsets where pcapng blocks start, plus cuts inside their headers and bodies.
fn pcapng_boundaries(d: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    let mut off = 0;
    while off + 12 <= d.len() {
        let len = u32::from_le_bytes([d[off + 4], d[off + 5], d[off + 6], d[off + 7]]) as usize;
        if len < 12 {
            break;
        }
        v.extend([
            off + 3,
            off + 4,
            off + 8,
            off + 12,
            off + len / 2,
            off + len - 4,
        ]);
        off += len;
        v.push(off);
    }
    v.retain(|&o| o > 0 && o < d.len());
    v.sort_unstable();
    v.dedup();
    v
}

/// Truncated at every header boundary (and inside headers and bodies): exit 1 naming the file and
/// the offset (0 with anomalies when the cut falls exactly between records), everything before
/// the cut analysed.
#[test]
fn truncated_at_every_header_boundary() {
    for (name, cuts) in [
        (
            "s05_v6_office2016_multi.pcap",
            pcap_boundaries as fn(&[u8]) -> Vec<usize>,
        ),
        ("s06_v6_win10_ndr32_prevcmid.pcapng", pcapng_boundaries),
    ] {
        let full = interop(name);
        let cuts = cuts(&full);
        assert!(cuts.len() > 20, "{name}: {cuts:?}");
        for cut in cuts {
            let p = temp_file(&format!("cut{cut}-{name}"), &full[..cut]);
            let label = format!("{name} cut at {cut}");
            let r = run(&[OsStr::new("read"), p.as_os_str(), OsStr::new("-q")]);
            check_common(&label, &r);
            assert_terminal_safe(&label, &r.stderr);
            if r.code == Some(1) {
                let err = r.err();
                assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
                assert!(err.contains(&*p.to_string_lossy()), "{label}: {err}");
                assert!(
                    err.contains("offset")
                        || err.contains("empty file")
                        || err.contains("not a capture file"),
                    "{label}: names the offset: {err}"
                );
            }
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Deterministic xorshift for reproducible mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bit flips anywhere in a pcap and a pcapng (headers included): never a panic, hang or blow-up.
#[test]
fn bit_flips() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for name in ["s05_v6_office2016_multi.pcap", "s14_ticket_combined.pcapng"] {
        let full = interop(name);
        for i in 0..24 {
            let mut d = full.clone();
            let flips = 1 + rng.below(16);
            for _ in 0..flips {
                // Half of the flips land in the first 64 bytes, where the headers are.
                let pos = if rng.next() & 1 == 0 {
                    rng.below(64.min(d.len()))
                } else {
                    rng.below(d.len())
                };
                d[pos] ^= 1 << rng.below(8);
            }
            let p = temp_file(&format!("flip{i}-{name}"), &d);
            let label = format!("{name} with {flips} bit flips (#{i})");
            let r = run(&[OsStr::new("read"), p.as_os_str()]);
            check_common(&label, &r);
            assert_terminal_safe(&label, &r.stdout);
            assert_terminal_safe(&label, &r.stderr);
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// A SYN flood: `n` connection attempts from distinct clients within `span_us`, none answered.
fn syn_flood(n: u32, span_us: u64, dport: u16) -> Vec<u8> {
    let server: IpAddr = "192.0.2.1".parse().expect("ip");
    let mut pkts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let client = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let mut c = Conn::new(
            (client, 1024 + (i % 60_000) as u16),
            (server, dport),
            i.wrapping_mul(2_654_435_761),
            0,
            1_795_446_600_000_000 + span_us * u64::from(i) / u64::from(n),
        );
        c.step_us = 0;
        pkts.push(c.segment_at(true, c.seq[0], true, false, false, false, &[]));
    }
    pcap_bytes(&pkts)
}

/// 200,000 SYNs to an ordinary port within 10 s: peak RSS at most 64 MiB, exit 0.
#[test]
fn syn_flood_200k_flows() {
    let p = temp_file("synflood.pcap", &syn_flood(200_000, 10_000_000, 80));
    let r = run(&[OsStr::new("read"), p.as_os_str()]);
    check_common("SYN flood, 200,000 flows to port 80", &r);
    assert_eq!(r.code, Some(0), "{}", r.err());
    assert!(r.out().contains("200000 packets"), "{}", r.out());
    let _ = std::fs::remove_file(&p);
}

/// 200,000 SYNs to the KMS port: each is a connection attempt without answer. The table lists a
/// bounded number of them; memory stays under 64 MiB.
#[test]
fn syn_flood_200k_flows_to_kms_port() {
    let p = temp_file("synflood1688.pcap", &syn_flood(200_000, 10_000_000, 1688));
    let r = run(&[OsStr::new("read"), p.as_os_str()]);
    check_common("SYN flood, 200,000 flows to port 1688", &r);
    assert_eq!(r.code, Some(0), "{}", r.err());
    let out = r.out();
    assert!(
        out.contains("and 199800 more"),
        "{}",
        &out[out.len().saturating_sub(2000)..]
    );
    assert!(
        out.contains("does not answer on TCP 1688"),
        "verdict: {out}"
    );
    let _ = std::fs::remove_file(&p);
}

/// More connections at once than the flow table holds (MAX_FLOWS, of which MAX_SYN_ONLY lone
/// SYNs): the rest are refused and one `flow_limit` anomaly says so; a full table is not swept on
/// every packet (no quadratic slowdown).
#[test]
fn flow_limit_is_reported() {
    let n = kmsscope::flow::MAX_FLOWS as u32 + 20_000;
    let p = temp_file("synflood-limit.pcap", &syn_flood(n, 2_000_000, 80));
    let r = run(&[
        OsStr::new("read"),
        p.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    check_common("SYN flood beyond MAX_FLOWS", &r);
    let events = r.events();
    let refused = n as usize - kmsscope::flow::MAX_SYN_ONLY;
    let limit: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "flow_limit")
        .collect();
    assert_eq!(limit.len(), 1, "{:?}", anomaly_kinds(&events));
    assert!(
        limit[0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("{refused} connections were not tracked"))),
        "{}",
        limit[0]
    );
    let _ = std::fs::remove_file(&p);
}

/// Packets of one KMS connection (handshake, the conversation's PDUs as 1-byte segments, close).
fn one_byte_segments(shuffle: fn(&mut Rng, &mut Vec<Vec<Pkt>>, &mut Vec<Pkt>)) -> Vec<u8> {
    let calls = vec![
        CallSpec::new(6, Answer::Count(50)),
        CallSpec::new(5, Answer::Refuse(0xC004_F042)),
        CallSpec::new(4, Answer::Count(3)),
        CallSpec::new(6, Answer::Fault(0x1c01_0003)),
    ];
    let pdus = kms_conv::conversation(&calls);
    let client: IpAddr = "10.1.2.3".parse().expect("ip");
    let server: IpAddr = "10.1.2.4".parse().expect("ip");
    let mut c = Conn::new(
        (client, 50_123),
        (server, 1688),
        7,
        900_000,
        1_795_446_600_000_000,
    );
    let mut pkts = c.handshake();
    let mut per_pdu: Vec<Vec<Pkt>> = pdus
        .iter()
        .map(|(to_server, b)| c.data(*to_server, b, 1))
        .collect();
    let close = c.close();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut body = Vec::new();
    shuffle(&mut rng, &mut per_pdu, &mut body);
    pkts.extend(body);
    pkts.extend(close);
    // Capture time in the order written (a capture is in arrival order).
    for (i, p) in pkts.iter_mut().enumerate() {
        p.ts_us = 1_795_446_600_000_000 + i as u64 * 10;
    }
    pcap_bytes(&pkts)
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

/// (call_id, status, outcome, integrity) of one `kms` event.
type CallFacts = (u64, String, String, String);

/// The facts of every `kms` event of a run over `capture`, and the anomaly kinds.
fn calls_of(label: &str, capture: &[u8]) -> (Vec<CallFacts>, Vec<String>) {
    let p = temp_file("shuffled.pcap", capture);
    let r = run(&[
        OsStr::new("read"),
        p.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    check_common(label, &r);
    assert_eq!(r.code, Some(0), "{}", r.err());
    let events = r.events();
    let _ = std::fs::remove_file(&p);
    let calls = events
        .iter()
        .filter(|e| e["event"] == "kms")
        .map(|e| {
            (
                e["call_id"].as_u64().unwrap_or(0),
                e["status"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
                e["integrity"].to_string(),
            )
        })
        .collect();
    (calls, anomaly_kinds(&events))
}

/// Every call of the conversation decoded as when the segments come in order.
fn check_all_calls(label: &str, capture: &[u8]) {
    let (want, _) = calls_of(
        "1-byte segments in order",
        &one_byte_segments(|_, per_pdu, body| {
            for pdu in per_pdu.iter_mut() {
                body.append(pdu);
            }
        }),
    );
    assert_eq!(want.len(), 4, "{want:?}");
    assert!(want.iter().all(|c| c.1 != "unanswered"), "{want:?}");
    let (got, anomalies) = calls_of(label, capture);
    assert_eq!(got, want, "{label}: anomalies {anomalies:?}");
}

/// A KMS stream cut into 1-byte segments, shuffled within each PDU: every call decoded.
#[test]
fn kms_stream_in_shuffled_one_byte_segments() {
    let cap = one_byte_segments(|rng, per_pdu, body| {
        for pdu in per_pdu.iter_mut() {
            shuffle(rng, pdu);
            body.append(pdu);
        }
    });
    check_all_calls("1-byte segments shuffled within each PDU", &cap);
}

/// The same, each direction's whole stream shuffled, the client's bytes before the server's.
#[test]
fn kms_stream_in_shuffled_one_byte_segments_per_direction() {
    let cap = one_byte_segments(|rng, per_pdu, body| {
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        for (i, pdu) in per_pdu.iter_mut().enumerate() {
            if i % 2 == 0 {
                to_server.append(pdu);
            } else {
                to_client.append(pdu);
            }
        }
        shuffle(rng, &mut to_server);
        shuffle(rng, &mut to_client);
        body.append(&mut to_server);
        body.append(&mut to_client);
    });
    check_all_calls("1-byte segments shuffled per direction", &cap);
}

/// The same, every segment of the connection shuffled (both directions interleaved at random).
#[test]
fn kms_stream_in_shuffled_one_byte_segments_both_directions() {
    let cap = one_byte_segments(|rng, per_pdu, body| {
        for pdu in per_pdu.iter_mut() {
            body.append(pdu);
        }
        shuffle(rng, body);
    });
    check_all_calls("1-byte segments shuffled across both directions", &cap);
}

// ------------------------------------------------------------------------------------------
// Terminal safety: wire strings and names never reach the terminal raw; JSON keeps them exact.

/// Control characters, escape sequences, a bidi override and a C1 CSI.
const EVIL: &str = "\u{1b}[2J\u{1b}]0;pwn\u{7}\u{202e}gpj.exe\r\u{9b}31m\u{0}";

/// Runs the table, the report on stdout and the JSON Lines on `path`; checks the text modes are
/// terminal-safe and returns the events.
fn text_modes_safe(label: &str, path: &Path, want_code: i32) -> Vec<Value> {
    for mode in [
        &["--width", "200"][..],
        &["--width", "80"][..],
        &["--report", "-"][..],
    ] {
        let mut args: Vec<&OsStr> = vec![OsStr::new("read"), path.as_os_str()];
        args.extend(mode.iter().map(OsStr::new));
        let r = run(&args);
        let l = format!("{label} {mode:?}");
        check_common(&l, &r);
        assert_eq!(r.code, Some(want_code), "{l}: {}", r.err());
        assert_terminal_safe(&format!("{l} stdout"), &r.stdout);
        assert_terminal_safe(&format!("{l} stderr"), &r.stderr);
    }
    let r = run(&[
        OsStr::new("read"),
        path.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    check_common(&format!("{label} jsonl"), &r);
    assert_terminal_safe(&format!("{label} jsonl stderr"), &r.stderr);
    r.events()
}

/// One KMS call whose request names workstation `ws` and whose response carries ePID `epid`.
fn kms_call_capture(ws: &str, epid: &str) -> Vec<u8> {
    use dcerpc_encoder as rpc;
    use kms_encoder as enc;
    use kmsscope::dcerpc::{SyntaxId, TransferSyntax};
    let mut spec = CallSpec::new(6, Answer::Count(50));
    spec.workstation = ws.to_string();
    let req = kms_conv::request_for(&spec);
    let salt = [0x11u8; 16];
    let q = enc::encode_request(&req, salt);
    let secrets = enc::ResponseSecrets {
        random: [0x5a; 16],
        server_salt: [0x77; 16],
        hwid: [1, 2, 3, 4, 5, 6, 7, 8],
        ..Default::default()
    };
    let resp = enc::echo_response(&req, epid, 50, 120, 10_080, Some(secrets.hwid));
    let a = enc::encode_response(&resp, salt, &secrets);
    let pdus = vec![
        (true, rpc::bind(2, &rpc::kms_contexts_3())),
        (
            false,
            rpc::bind_ack(2, 7, Some("1688"), &[rpc::accept(SyntaxId::NDR32)]),
        ),
        (true, rpc::kms_request(3, 0, &q, TransferSyntax::Ndr32)),
        (false, rpc::kms_response(3, 0, &a, 0, TransferSyntax::Ndr32)),
    ];
    let client: IpAddr = "10.7.0.2".parse().expect("ip");
    let server: IpAddr = "10.7.0.1".parse().expect("ip");
    let mut c = Conn::new(
        (client, 50_000),
        (server, 1688),
        1,
        2,
        1_795_446_600_000_000,
    );
    let mut pkts = c.handshake();
    for (to_server, b) in &pdus {
        pkts.extend(c.data(*to_server, b, 1400));
    }
    pkts.extend(c.close());
    pcap_bytes(&pkts)
}

#[test]
fn hostile_workstation_and_epid_never_reach_the_terminal_raw() {
    // The workstation field holds at most 63 UTF-16 units; EVIL fits.
    let ws = format!("PC{EVIL}");
    let epid = format!("03612-00206-556-123727-03-1033-17763.0000-2972018{EVIL}");
    let p = temp_file("evil-strings.pcap", &kms_call_capture(&ws, &epid));
    let events = text_modes_safe("hostile workstation/ePID", &p, 0);
    let kms: Vec<&Value> = events.iter().filter(|e| e["event"] == "kms").collect();
    assert_eq!(kms.len(), 1, "{events:?}");
    assert_eq!(kms[0]["request"]["workstation"], ws.trim_end_matches('\0'));
    // The ePID ends at its NUL (kms-protocol.md §2.2).
    assert_eq!(kms[0]["response"]["epid"], epid.trim_end_matches('\0'));
    let _ = std::fs::remove_file(&p);
}

/// A DNS name label from text (bytes as UTF-8).
fn dns_name(labels: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in labels {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

#[test]
fn hostile_dns_names_never_reach_the_terminal_raw() {
    let qname = [
        "_VLMCS",
        "_TCP",
        "evil\u{1b}[2J\u{1b}]0;pwn\u{7}",
        "\u{202e}corp\r",
    ];
    let target = ["kms\u{1b}[31m", "\u{9b}1;1H", "example"];
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend(dns_name(&qname));
    query.extend([0, 33, 0, 1]);
    let mut resp = query.clone();
    resp[2..4].copy_from_slice(&[0x81, 0x80]);
    resp[6..8].copy_from_slice(&[0, 1]);
    let mut rdata = vec![0, 0, 0, 100, 0x06, 0x98];
    rdata.extend(dns_name(&target));
    resp.extend([0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0x0e, 0x10]);
    resp.extend((rdata.len() as u16).to_be_bytes());
    resp.extend(rdata);
    let c: IpAddr = "10.8.0.5".parse().expect("ip");
    let s: IpAddr = "10.8.0.1".parse().expect("ip");
    let pkts = vec![
        pcap::udp(1_795_446_600_000_000, (c, 53_000), (s, 53), &query, true),
        pcap::udp(1_795_446_600_001_000, (s, 53), (c, 53_000), &resp, false),
    ];
    let p = temp_file("evil-dns.pcap", &pcap_bytes(&pkts));
    let events = text_modes_safe("hostile DNS names", &p, 0);
    let dns: Vec<&Value> = events.iter().filter(|e| e["event"] == "dns").collect();
    assert_eq!(dns.len(), 1, "{events:?}");
    assert_eq!(dns[0]["query"], qname.join("."), "{}", dns[0]);
    assert_eq!(
        dns[0]["answers"][0]["target"],
        target.join("."),
        "{}",
        dns[0]
    );
    let _ = std::fs::remove_file(&p);
}

#[test]
fn hostile_archive_member_and_file_names_never_reach_the_terminal_raw() {
    // A zip whose capture member and non-capture member have hostile names.
    let member = format!("ticket/{EVIL}.pcap").replace('\u{0}', "");
    let note = format!("{EVIL}readme.txt").replace('\u{0}', "");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file(member.as_str(), opts).expect("zip");
    zip.write_all(&interop("s05_v6_office2016_multi.pcap"))
        .expect("zip");
    zip.start_file(note.as_str(), opts).expect("zip");
    zip.write_all(b"not a capture").expect("zip");
    let zbytes = zip.finish().expect("zip").into_inner();
    // The file names themselves are hostile too (NUL cannot be in a file name).
    let fname = format!("{EVIL}.zip").replace('\u{0}', "");
    let p = temp_file(&fname, &zbytes);
    let events = text_modes_safe("hostile member names", &p, 0);
    let source = format!("{}:{member}", p.to_string_lossy());
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "summary" && e["source"] == source.as_str()),
        "the JSON source keeps the names exact: {source:?}"
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "kms").count(), 3);
    let _ = std::fs::remove_file(&p);

    // A hostile file name in an error line.
    let p = temp_file(
        &format!("{EVIL}.pcap").replace('\u{0}', ""),
        b"\x1b[2Jnot a capture\x07",
    );
    let events = text_modes_safe("hostile file name, not a capture", &p, 1);
    assert!(events.is_empty(), "{events:?}");
    let _ = std::fs::remove_file(&p);

    // A hostile path that does not exist.
    let missing = temp_path(&format!("{EVIL}-missing.pcap").replace('\u{0}', ""));
    let r = run(&[OsStr::new("read"), missing.as_os_str()]);
    check_common("hostile missing file", &r);
    assert_eq!(r.code, Some(1));
    assert_terminal_safe("hostile missing file stderr", &r.stderr);
    assert!(r.err().contains("\\x1b[2J"), "shown escaped: {}", r.err());
}

// ------------------------------------------------------------------------------------------
// Resource limits: each one hit by a synthetic capture, reported as an `anomaly`, with bounded
// memory.

/// Runs `--jsonl -` on `capture`; returns the anomaly kinds (and checks the common bounds).
fn anomalies_of(label: &str, capture: &[u8]) -> Vec<String> {
    let p = temp_file("limit.pcap", capture);
    let r = run(&[
        OsStr::new("read"),
        p.as_os_str(),
        OsStr::new("--jsonl"),
        OsStr::new("-"),
    ]);
    let _ = std::fs::remove_file(&p);
    check_common(label, &r);
    assert_eq!(r.code, Some(0), "{label}: {}", r.err());
    anomaly_kinds(&r.events())
}

fn kms_conn(i: u32) -> Conn {
    let client = IpAddr::from([10, 9, (i >> 8) as u8, i as u8]);
    let server: IpAddr = "10.9.255.1".parse().expect("ip");
    Conn::new(
        (client, 40_000),
        (server, 1688),
        1000,
        5000,
        1_795_446_600_000_000,
    )
}

/// MAX_BUFFERED_PER_DIRECTION: a hole that never fills while data piles up behind it.
#[test]
fn limit_bytes_buffered_per_direction() {
    let mut c = kms_conn(1);
    let mut pkts = c.handshake();
    c.seq[0] = c.seq[0].wrapping_add(1); // byte 0 is never sent
    let n = kmsscope::flow::stream::MAX_BUFFERED_PER_DIRECTION / 1400 + 10;
    pkts.extend(c.data(true, &vec![0x41; n * 1400], 1400));
    let kinds = anomalies_of("per-direction buffer limit", &pcap_bytes(&pkts));
    assert!(kinds.iter().any(|k| k == "tcp_gap"), "{kinds:?}");
}

/// MAX_FLOW_STATE_BYTES: many connections, each holding one byte far behind a hole (each forces a
/// buffer of about 256 KiB): the total stays bounded and `memory_limit` says so.
#[test]
fn limit_total_reassembly_memory() {
    let mut pkts = Vec::new();
    for i in 0..400 {
        let mut c = kms_conn(i);
        pkts.extend(c.handshake());
        let seq = c.seq[0].wrapping_add(250_000);
        pkts.push(c.segment_at(true, seq, false, true, false, false, b"x"));
    }
    let kinds = anomalies_of("total reassembly budget", &pcap_bytes(&pkts));
    assert!(kinds.iter().any(|k| k == "memory_limit"), "{kinds:?}");
}

/// MAX_FLOW_STATE_BYTES again: 200,000 connections, each one segment holding the start of a
/// DCE/RPC bind (each would keep a session and a partial PDU): later ones are not followed, and
/// memory stays bounded (the flow table itself holds 200,000 entries: about 42 MiB).
#[test]
fn limit_total_connection_state_on_a_data_flood() {
    use dcerpc_encoder as rpc;
    let bind = rpc::bind(2, &rpc::kms_contexts_3());
    let server: IpAddr = "192.0.2.9".parse().expect("ip");
    let n = 200_000u32;
    let mut pkts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let client = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let mut c = Conn::new(
            (client, 1024 + (i % 60_000) as u16),
            (server, 135),
            i,
            0,
            1_795_446_600_000_000 + u64::from(i) * 50,
        );
        pkts.push(c.segment_at(true, i, false, true, false, false, &bind[..20]));
    }
    let p = temp_file("dataflood.pcap", &pcap_bytes(&pkts));
    drop(pkts);
    let r = run(&[OsStr::new("read"), p.as_os_str()]);
    check_bounded("data flood, 200,000 DCE/RPC connections", &r, 128 * 1024);
    assert_eq!(r.code, Some(0), "{}", r.err());
    assert!(r.out().contains("memory_limit x"), "{}", r.out());
    let _ = std::fs::remove_file(&p);
}

/// One connection carrying `pdus` (client PDUs and server PDUs in order).
fn rpc_capture(pdus: &[(bool, Vec<u8>)]) -> Vec<u8> {
    let mut c = kms_conn(7);
    let mut pkts = c.handshake();
    for (to_server, b) in pdus {
        pkts.extend(c.data(*to_server, b, 1400));
    }
    pkts.extend(c.close());
    pcap_bytes(&pkts)
}

/// MAX_FRAGMENTS: one request in more fragments than allowed.
#[test]
fn limit_dcerpc_fragments_per_call() {
    use dcerpc_encoder as rpc;
    let stub = vec![0u8; (kmsscope::dcerpc::MAX_FRAGMENTS as usize + 20) * 8];
    let mut pdus = vec![(true, rpc::bind(1, &rpc::kms_contexts_3()))];
    pdus.push((true, rpc::request(2, 0, 0, &stub, Some(8)).concat()));
    let kinds = anomalies_of("DCE/RPC fragment limit", &rpc_capture(&pdus));
    assert!(kinds.iter().any(|k| k == "fragment_limit"), "{kinds:?}");
}

/// MAX_OPEN_CALLS: more requests waiting for an answer than allowed on one connection.
#[test]
fn limit_calls_per_connection() {
    use dcerpc_encoder as rpc;
    let mut pdus = vec![(true, rpc::bind(1, &rpc::kms_contexts_3()))];
    for id in 0..kmsscope::dcerpc::MAX_OPEN_CALLS as u32 + 10 {
        pdus.push((
            true,
            rpc::request(100 + id, 0, 0, &[0u8; 16], None).concat(),
        ));
    }
    let kinds = anomalies_of("calls per connection limit", &rpc_capture(&pdus));
    assert!(kinds.iter().any(|k| k == "call_limit"), "{kinds:?}");
}

/// MAX_FRAG_DATAGRAMS: more IPv4 datagrams in reassembly at once than allowed.
#[test]
fn limit_ip_fragments() {
    let mut pkts = Vec::new();
    for id in 0..kmsscope::decode::MAX_FRAG_DATAGRAMS as u16 + 10 {
        // First fragment only (more fragments, offset 0) of a UDP datagram.
        let mut ip = vec![0x45, 0, 0, 44];
        ip.extend(id.to_be_bytes());
        ip.extend([0x20, 0, 64, 17, 0, 0, 10, 6, 0, 1, 10, 6, 0, 2]);
        ip.extend([0x30, 0x39, 0x00, 0x35, 0, 40, 0, 0]);
        ip.extend([0u8; 16]);
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend(ip);
        pkts.push(Pkt {
            ts_us: 1_795_446_600_000_000 + u64::from(id),
            frame,
        });
    }
    let kinds = anomalies_of("IP fragment limit", &pcap_bytes(&pkts));
    assert!(kinds.iter().any(|k| k == "reassembly_limit"), "{kinds:?}");
}

/// MAX_PENDING_QUERIES: more unanswered DNS queries at once than allowed; each eviction is an
/// anomaly (capped per kind) and the query still comes out as a `dns` event.
#[test]
fn limit_pending_dns_queries() {
    let n = kmsscope::dns::MAX_PENDING_QUERIES as u32 + 50;
    let s: IpAddr = "10.10.0.1".parse().expect("ip");
    let mut pkts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let c = IpAddr::from([10, 11, (i >> 8) as u8, i as u8]);
        let mut q = (i as u16).to_be_bytes().to_vec();
        q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend(dns_name(&["_vlmcs", "_tcp", "corp", "example"]));
        q.extend([0, 33, 0, 1]);
        pkts.push(pcap::udp(
            1_795_446_600_000_000 + u64::from(i) * 100,
            (c, 50_000),
            (s, 53),
            &q,
            true,
        ));
    }
    let kinds = anomalies_of("pending DNS queries limit", &pcap_bytes(&pkts));
    let evicted = kinds.iter().filter(|k| *k == "pending_limit").count();
    assert_eq!(
        evicted,
        50,
        "{:?}",
        kinds.iter().take(5).collect::<Vec<_>>()
    );
}

/// A hostile argument (an attachment named like an option) in a usage error: clap quotes it, and
/// on a terminal would print it raw. Run under a pseudo-terminal (`script`) when available.
#[test]
fn hostile_argument_in_a_usage_error_is_not_printed_raw() {
    let bin = env!("CARGO_BIN_EXE_kmsscope");
    let r = run(&[OsStr::new("read"), OsStr::new("--\u{1b}[31mevil\u{7}.pcap")]);
    assert_eq!(r.code, Some(2));
    assert_terminal_safe("usage error stderr", &r.stderr);
    if !Path::new("/usr/bin/script").exists() {
        println!("skipped the pseudo-terminal run: no /usr/bin/script");
        return;
    }
    let out = Command::new("/usr/bin/script")
        .args(["-qec"])
        .arg(format!("{bin} read $'--\\x1b[31mevil\\x07.pcap'"))
        .arg("/dev/null")
        .env("SHELL", "/bin/bash")
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(text.contains("unexpected argument"), "{text:?}");
    assert_terminal_safe("usage error on a terminal", text.as_bytes());
}
