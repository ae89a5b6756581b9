//! UI tests: frames rendered with ratatui's `TestBackend` and snapshotted with insta at 80×24 and
//! 160×48 after scripted keys; hostile wire strings; 100,000 calls; the channel's back-pressure.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

use super::app::{Action, App, Pane};
use super::{Backpressure, Msg, View, channel};
use crate::engine::EngineConfig;
use crate::event::{
    Body, DnsExchange, DnsRecord, Endpoint, Event, Finding, KmsCall, KmsRequestInfo,
    KmsResponseInfo, Severity, Subject,
};
use crate::output::Sink;
use crate::run::{self, RunOptions};
use crate::time::Ts;

/// Collects events (the engine runs on this thread in tests).
struct Collect(Rc<RefCell<Vec<Event>>>);

impl Sink for Collect {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.0.borrow_mut().push(ev.clone());
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Events of captures run through the engine with payloads kept (as the UI runs it).
fn events_of(paths: &[&str]) -> Vec<Event> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Collect(got.clone()))];
    let opts = RunOptions {
        engine: EngineConfig {
            keep_payloads: true,
            ..EngineConfig::default()
        },
    };
    for p in paths {
        let r = run::analyze_path(p, &opts, &mut sinks);
        assert!(r.errors.is_empty(), "{p}: {:?}", r.errors);
    }
    got.take()
}

fn finding(check: &'static str, sev: Severity, frames: Vec<u64>, message: &str) -> Event {
    Event {
        ts: Ts(1_795_446_000_000_000_000),
        event: "finding",
        source: Arc::from("captures/interop/s10_duplicate_cmid.pcap"),
        frame: frames.first().copied().unwrap_or(0),
        client: None,
        server: None,
        body: Body::Finding(Finding {
            check,
            name: "duplicate_cmid",
            severity: sev,
            message: message.to_string(),
            fix: "Generalise the image with sysprep /generalize, or run slmgr /rearm on each clone, so that every machine gets its own CMID.".into(),
            predicts: None,
            frames,
            count: 4,
            first_ts: None,            subject: Subject::default(),
        }),
    }
}

/// The app for the two captures, with a hand-made finding citing the s10 clones and one citing no
/// call (the engine's own findings are left out so that the snapshots stay small and fixed; the
/// real ones are tested in `real_findings_link_to_their_calls`).
fn app_with_findings() -> App {
    let evs = events_of(&[
        "captures/interop/s14_ticket_combined.pcapng",
        "captures/interop/s10_duplicate_cmid.pcap",
    ]);
    let mut app = App::new("captures/interop/s14_ticket_combined.pcapng");
    let mut clone_frames = Vec::new();
    for ev in evs {
        if matches!(ev.body, Body::Finding(_)) {
            continue;
        }
        if let Body::Kms(c) = &ev.body
            && ev.source.contains("s10")
            && c.request
                .as_ref()
                .is_some_and(|r| r.workstation.contains("CLONE"))
        {
            clone_frames.push(ev.frame);
        }
        app.add_event(Arc::new(ev));
    }
    assert!(clone_frames.len() >= 2, "s10 has clones");
    app.add_event(Arc::new(finding(
        "KMS-04",
        Severity::Error,
        clone_frames,
        "4 machines (W10-CLONE-01..04) send the same CMID 85b0cf33-f3b5-4d79-b32b-0167aaab763e: the host counts them once.",
    )));
    app.add_event(Arc::new(finding(
        "KMS-99",
        Severity::Info,
        vec![],
        "A finding that cites no call.",
    )));
    app.ingest(Msg::Progress {
        packets: 1234,
        bytes: 99_999,
    });
    app.ingest(Msg::Done);
    app
}

fn key(app: &mut App, code: KeyCode) -> Action {
    app.key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typ(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn draw(app: &mut App, w: u16, h: u16) -> Buffer {
    app.resize(Rect::new(0, 0, w, h));
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(&View::new(app), f.area()))
        .unwrap();
    t.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    text(&draw(app, w, h))
}

/// Every cell of the buffer is free of control characters and bidi controls.
fn assert_terminal_safe(buf: &Buffer) {
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            for c in buf[(x, y)].symbol().chars() {
                assert!(
                    !(c.is_control()
                        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')),
                    "raw {c:?} at ({x},{y}):\n{}",
                    text(buf)
                );
            }
        }
    }
}

/// The scripted session of the issue: j, j, Enter, Tab, /, a filter, Enter, n, space.
fn scripted(w: u16, h: u16) {
    let tag = format!("{w}x{h}");
    let mut app = app_with_findings();
    insta::assert_snapshot!(format!("{tag}_01_open"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(format!("{tag}_02_detail"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!(format!("{tag}_03_findings"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Char('/'));
    typ(&mut app, "ws~CLONE outcome=x");
    insta::assert_snapshot!(format!("{tag}_04_filter_invalid"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Backspace);
    typ(&mut app, "count");
    insta::assert_snapshot!(format!("{tag}_05_filter_valid"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('n'));
    key(&mut app, KeyCode::Char('n'));
    insta::assert_snapshot!(format!("{tag}_06_next_finding"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Char(' '));
    app.ingest(Msg::Events(vec![Arc::new(finding(
        "KMS-01",
        Severity::Warning,
        vec![1],
        "arrives while frozen",
    ))]));
    insta::assert_snapshot!(format!("{tag}_07_frozen"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(format!("{tag}_08_help"), screen(&mut app, w, h));
    key(&mut app, KeyCode::Esc);
    assert_eq!(key(&mut app, KeyCode::Char('q')), Action::Quit);
}

#[test]
fn snapshots_80x24() {
    scripted(80, 24);
}

#[test]
fn snapshots_160x48() {
    scripted(160, 48);
}

#[test]
fn narrow_layout_shows_each_pane_in_turn() {
    let mut app = app_with_findings();
    for (pane, expect) in [
        (Pane::Detail, "Connection"),
        (Pane::Findings, "KMS-04"),
        (Pane::Hosts, "count"),
        (Pane::Dns, "_vlmcs._tcp"),
    ] {
        while app.focus != pane {
            key(&mut app, KeyCode::Tab);
        }
        let s = screen(&mut app, 80, 24);
        assert!(s.contains(expect), "{pane:?}:\n{s}");
    }
    // Hex bytes are a closed section of the tree in the narrow layout; Enter opens it.
    while app.focus != Pane::Detail {
        key(&mut app, KeyCode::Tab);
    }
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('j'));
    let s = screen(&mut app, 80, 24);
    assert!(s.contains("▾ Response bytes") && s.contains("raw"), "{s}");
}

#[test]
fn wide_layout_has_everything_at_once() {
    let mut app = app_with_findings();
    let s = screen(&mut app, 160, 48);
    for want in [
        "FIN-PC-231",
        "W10-CLONE-01",
        "Connection",
        "Hex: request",
        "KMS hosts",
        "count 1/25",
        "KMS-04",
        "_vlmcs._tcp.corp.example",
        "1234 pkts",
    ] {
        assert!(s.contains(want), "missing {want}:\n{s}");
    }
}

#[test]
fn medium_layout_shows_hosts_and_findings_beside_the_calls() {
    let mut app = app_with_findings();
    let s = screen(&mut app, 120, 32);
    for want in [
        "FIN-PC-231",
        "Connection",
        "KMS hosts",
        "count 1/25",
        "KMS-04",
    ] {
        assert!(s.contains(want), "missing {want}:\n{s}");
    }
    while app.focus != Pane::Dns {
        key(&mut app, KeyCode::Tab);
    }
    let s = screen(&mut app, 120, 32);
    assert!(s.contains("_vlmcs._tcp") && s.contains("KMS hosts"), "{s}");
    insta::assert_snapshot!("120x32_dns", s);
}

#[test]
fn outcome_colours_and_finding_marks() {
    let mut app = app_with_findings();
    let buf = draw(&mut app, 160, 48);
    let s = text(&buf);
    // Find the row of a clone (cited by the error finding) and check mark and colour.
    let (y, line) = s
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("W10-CLONE-02"))
        .unwrap();
    let x_mark = line.chars().position(|c| c == '!').expect("finding mark") as u16;
    assert_eq!(buf[(x_mark, y as u16)].fg, Color::LightRed);
    let (y, line) = s
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("FIN-PC-231") && l.contains("count short"))
        .unwrap();
    let x = line.find("count short").unwrap();
    let x = line[..x].chars().count() as u16;
    assert_eq!(buf[(x, y as u16)].fg, Color::Yellow);
}

#[test]
fn enter_on_a_finding_selects_its_call() {
    let mut app = app_with_findings();
    draw(&mut app, 160, 48);
    while app.focus != Pane::Findings {
        key(&mut app, KeyCode::Tab);
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.focus, Pane::Calls);
    let row = app.selected_call().unwrap();
    let ws = &row.call().request.as_ref().unwrap().workstation;
    assert!(ws.contains("CLONE"), "{ws}");
    // The finding that cites nothing says so.
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    assert!(app.notice.as_deref().unwrap_or("").contains("cites no"));
}

#[test]
fn filter_by_check_and_host_enter() {
    let mut app = app_with_findings();
    draw(&mut app, 160, 48);
    app.apply_filter_text("check=KMS-04");
    assert_eq!(app.view.len(), 4);
    app.apply_filter_text("");
    let all = app.view.len();
    assert!(all >= 8);
    while app.focus != Pane::Hosts {
        key(&mut app, KeyCode::Tab);
    }
    key(&mut app, KeyCode::Enter);
    assert!(app.filter_text.starts_with("host="), "{}", app.filter_text);
    assert!(!app.view.is_empty() && app.view.len() < all);
}

#[test]
fn freezing_holds_events_and_thawing_applies_them() {
    let mut app = app_with_findings();
    let n = app.calls.len();
    key(&mut app, KeyCode::Char(' '));
    let more = events_of(&["captures/interop/s07_threshold_below.pcapng"]);
    let k = more.iter().filter(|e| e.event == "kms").count();
    app.ingest(Msg::Events(more.into_iter().map(Arc::new).collect()));
    assert_eq!(app.calls.len(), n, "frozen view does not move");
    assert!(screen(&mut app, 80, 24).contains("FROZEN"));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.calls.len(), n + k);
}

#[test]
fn keys_for_report_follow_and_quit() {
    let mut app = app_with_findings();
    draw(&mut app, 80, 24);
    assert_eq!(key(&mut app, KeyCode::Char('w')), Action::WriteReport);
    // `G` follows the newest call as calls arrive; moving up stops following.
    key(&mut app, KeyCode::Char('G'));
    assert!(app.follow);
    let more = events_of(&["captures/interop/s08_threshold_above.pcap"]);
    app.ingest(Msg::Events(more.into_iter().map(Arc::new).collect()));
    assert_eq!(app.calls_cur.sel + 1, app.view.len());
    key(&mut app, KeyCode::Char('k'));
    assert!(!app.follow);
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
}

#[test]
fn failed_connections_are_listed_with_the_dns() {
    let mut app = App::new("");
    for ev in events_of(&["captures/interop/s13_conn_refused.pcap"]) {
        app.add_event(Arc::new(ev));
    }
    while app.focus != Pane::Dns {
        key(&mut app, KeyCode::Tab);
    }
    let s = screen(&mut app, 80, 24);
    assert!(s.contains("refused") && s.contains(":1688"), "{s}");
}

// ------------------------------------------------------------------------------------------------
// Hostile strings

const HOSTILE: &str =
    "\x1b[2J\x1b]0;pwn\x07evil\u{202e}gpj.exe\u{2066}\r\n\u{9b}31m\u{2028}\u{200b}\u{e0041}";

fn hostile_events() -> Vec<Event> {
    let client = Endpoint {
        ip: "10.9.9.9".parse().unwrap(),
        port: 50123,
    };
    let server = Endpoint {
        ip: "10.0.0.1".parse().unwrap(),
        port: 1688,
    };
    let kms = Event {
        ts: Ts(1_795_446_000_000_000_000),
        event: "kms",
        source: Arc::from(format!("cap{HOSTILE}.pcap")),
        frame: 5,
        client: Some(client),
        server: Some(server),
        body: Body::Kms(Box::new(KmsCall {
            version: Some(format!("6.0{HOSTILE}").into()),
            status: "answered",
            outcome: "count_insufficient",
            response_frame: Some(6),
            request: Some(KmsRequestInfo {
                workstation: HOSTILE.into(),
                cmid: format!("cmid{HOSTILE}").into(),
                kms_id: format!("id{HOSTILE}").into(),
                sku_id: format!("sku{HOSTILE}").into(),
                license_status: format!("ls{HOSTILE}").into(),
                client_time: format!("t{HOSTILE}").into(),
                required_count: 25,
                ..Default::default()
            }),
            response: Some(KmsResponseInfo {
                epid: format!("epid{HOSTILE}").into(),
                current_count: 3,
                hwid: Some(HOSTILE.into()),
                cmid: HOSTILE.into(),
                client_time: HOSTILE.into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    let dns = Event {
        ts: Ts(1_795_446_000_000_000_000),
        event: "dns",
        source: kms.source.clone(),
        frame: 2,
        client: Some(client),
        server: None,
        body: Body::Dns(Box::new(DnsExchange {
            query: Some(format!("_vlmcs._tcp.{HOSTILE}")),
            qtype: Some("SRV".into()),
            rcode: Some("NOERROR".into()),
            status: "answered",
            answers: vec![DnsRecord {
                rtype: "SRV".into(),
                name: HOSTILE.into(),
                target: Some(HOSTILE.into()),
                port: Some(1688),
                ..Default::default()
            }],
            ..Default::default()
        })),
    };
    let mut f = finding("KMS-04", Severity::Critical, vec![5], HOSTILE);
    if let Body::Finding(x) = &mut f.body {
        x.fix = HOSTILE.into();
        x.predicts = Some("0xC004F038");
    }
    vec![dns, kms, f]
}

#[test]
fn hostile_strings_render_escaped_in_every_pane() {
    let mut app = App::new("");
    for ev in hostile_events() {
        app.add_event(Arc::new(ev));
    }
    app.ingest(Msg::Error(format!("bad file {HOSTILE}")));
    let mut seen_escaped = 0;
    for (w, h) in [(80, 24), (160, 48)] {
        for _ in 0..Pane::ALL.len() {
            for open_all in [false, true] {
                if open_all && app.focus == Pane::Detail {
                    // Open the closed sections (the bytes).
                    key(&mut app, KeyCode::Char('G'));
                    key(&mut app, KeyCode::Enter);
                }
                let buf = draw(&mut app, w, h);
                assert_terminal_safe(&buf);
                if text(&buf).contains("\\x1b[2J") {
                    seen_escaped += 1;
                }
            }
            key(&mut app, KeyCode::Tab);
        }
        // The filter bar echoes typed text; the help overlay.
        key(&mut app, KeyCode::Char('/'));
        typ(&mut app, "ws~\u{202e}x");
        assert_terminal_safe(&draw(&mut app, w, h));
        key(&mut app, KeyCode::Esc);
        key(&mut app, KeyCode::Char('?'));
        assert_terminal_safe(&draw(&mut app, w, h));
        key(&mut app, KeyCode::Esc);
    }
    assert!(seen_escaped >= 10, "escaped form shown: {seen_escaped}");
    let s = screen(&mut app, 160, 48);
    assert!(s.contains("\\u{202e}gpj.exe"), "{s}");
}

// ------------------------------------------------------------------------------------------------
// Scale

#[test]
fn hundred_thousand_calls_render_a_window() {
    let template = events_of(&["captures/interop/s10_duplicate_cmid.pcap"])
        .into_iter()
        .find(|e| e.event == "kms")
        .unwrap();
    let n = 100_000u64;
    let t0 = Instant::now();
    let mut app = App::new("synthetic");
    let batch: Vec<Arc<Event>> = (0..n)
        .map(|i| {
            let mut ev = template.clone();
            ev.frame = 2 * i + 1;
            ev.ts = Ts(template.ts.0 + i as i64 * 1_000_000);
            if let Some(c) = &mut ev.client {
                c.port = (i % 60_000) as u16 + 1024;
                c.ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a4d_0000 + (i as u32)));
            }
            if let Body::Kms(c) = &mut ev.body {
                c.response_frame = Some(2 * i + 2);
                if let Some(r) = &mut c.request {
                    r.workstation = format!("PC-{i:06}.corp.example").into();
                }
            }
            Arc::new(ev)
        })
        .collect();
    let built = t0.elapsed();
    let t1 = Instant::now();
    app.ingest(Msg::Events(batch));
    app.add_event(Arc::new(finding(
        "KMS-04",
        Severity::Warning,
        vec![99_991],
        "one",
    )));
    let ingest = t1.elapsed();
    let t2 = Instant::now();
    let mut frames = 0;
    let mut s = String::new();
    for _ in 0..10 {
        s = screen(&mut app, 160, 48);
        frames += 1;
    }
    let render = t2.elapsed() / frames;
    key(&mut app, KeyCode::Char('G'));
    let t3 = Instant::now();
    let end = screen(&mut app, 160, 48);
    let render_end = t3.elapsed();
    let t4 = Instant::now();
    app.apply_filter_text("ws~PC-0999");
    let filter = t4.elapsed();
    let t5 = Instant::now();
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('n'));
    let next = t5.elapsed();
    eprintln!(
        "100k calls: build {built:?}, ingest {ingest:?}, frame {render:?} (at end {render_end:?}), refilter {filter:?} -> {} shown, n {next:?}",
        app.view.len()
    );
    assert!(s.contains("Calls 100000"), "{s}");
    assert!(end.contains("PC-099999"), "{end}");
    assert_eq!(app.view.len(), 100);
}

// ------------------------------------------------------------------------------------------------
// The channel

#[test]
fn drop_mode_never_blocks_and_counts() {
    let (mut sink, rx) = channel(Backpressure::Drop);
    let ev = hostile_events().remove(1);
    for _ in 0..(super::CHANNEL_BATCHES * super::BATCH_EVENTS + 2 * super::MAX_HELD_EVENTS) {
        sink.event(&ev).unwrap();
    }
    sink.progress(1, 1);
    assert!(sink.dropped() > 0);
    drop(rx);
    assert!(sink.event(&ev).is_err(), "a closed UI stops the engine");
    assert!(sink.is_closed());
}

#[test]
fn block_mode_delivers_everything_in_order() {
    let (mut sink, rx) = channel(Backpressure::Block);
    let ev = hostile_events().remove(1);
    let n = 3 * super::CHANNEL_BATCHES * super::BATCH_EVENTS;
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            let mut e = ev.clone();
            e.frame = i as u64;
            sink.event(&e).unwrap();
        }
        sink.finish().unwrap();
    });
    let mut next = 0u64;
    let mut done = false;
    while let Ok(m) = rx.rx.recv() {
        match m {
            Msg::Events(b) => {
                for e in b {
                    assert_eq!(e.frame, next);
                    next += 1;
                }
            }
            Msg::Done => done = true,
            _ => {}
        }
    }
    producer.join().unwrap();
    assert!(done);
    assert_eq!(next, n as u64);
}

#[test]
fn real_findings_link_to_their_calls() {
    // s10: the checks find the duplicate CMID of the four clones (KMS-04) and the low count (KMS-01).
    let mut app = App::new("captures/interop/s10_duplicate_cmid.pcap");
    for ev in events_of(&["captures/interop/s10_duplicate_cmid.pcap"]) {
        app.add_event(Arc::new(ev));
    }
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("KMS-04"), "{text}");
    assert!(text.contains("KMS-01"), "{text}");
    app.apply_filter_text("check=KMS-04");
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("W10-CLONE-01.corp.example"), "{text}");
    assert!(
        text.contains("Calls 4 of 5"),
        "the four clones, not the fresh machine: {text}"
    );
}
