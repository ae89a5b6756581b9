//! The UI state. Owned by the UI thread alone (house style: single owner of UI state): the engine
//! sends batches of events over a bounded channel, the loop hands them to [`App::ingest`], keys go
//! to [`App::key`], and the views only read it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::filter::{Filter, Subject};
use super::{Msg, detail};
use crate::event::{Body, Endpoint, Event, KmsCall, Severity};

/// At most this many calls are kept for display; later ones are counted (`calls_over_limit`) but
/// not listed, so that a capture running for days cannot exhaust memory.
pub const MAX_CALLS: usize = 2_000_000;
/// At most this many DNS exchanges are kept for the DNS pane.
pub const MAX_DNS: usize = 100_000;
/// Count samples kept per host and product group for the sparkline.
pub const MAX_HISTORY: usize = 256;

/// The panes, in Tab order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pane {
    #[default]
    Calls,
    Detail,
    Findings,
    Hosts,
    Dns,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Calls,
        Pane::Detail,
        Pane::Findings,
        Pane::Hosts,
        Pane::Dns,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Calls => "Calls",
            Pane::Detail => "Detail",
            Pane::Findings => "Findings",
            Pane::Hosts => "Hosts",
            Pane::Dns => "DNS",
        }
    }

    fn next(self, back: bool) -> Pane {
        let i = Pane::ALL.iter().position(|p| *p == self).unwrap_or(0);
        let n = Pane::ALL.len();
        Pane::ALL[if back { (i + n - 1) % n } else { (i + 1) % n }]
    }
}

/// A selection in a list: the selected item and the first one shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub sel: usize,
    pub top: usize,
}

impl Cursor {
    /// Moves by `delta` items in a list of `len` shown `height` at a time.
    fn move_by(&mut self, delta: isize, len: usize, height: usize) {
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        let sel = self.sel as isize + delta;
        self.sel = sel.clamp(0, len as isize - 1) as usize;
        self.fit(len, height);
    }

    fn set(&mut self, sel: usize, len: usize, height: usize) {
        self.sel = sel;
        self.fit(len, height);
    }

    /// Keeps `sel` within the list and the window.
    pub fn fit(&mut self, len: usize, height: usize) {
        let height = height.max(1);
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        self.sel = self.sel.min(len - 1);
        if self.sel < self.top {
            self.top = self.sel;
        } else if self.sel >= self.top + height {
            self.top = self.sel + 1 - height;
        }
        self.top = self.top.min(len.saturating_sub(height));
    }
}

/// One KMS call in the list.
#[derive(Clone, Debug)]
pub struct CallRow {
    /// The `kms` event.
    pub ev: Arc<Event>,
    /// The last bind/alter_context result seen on the same connection, if any.
    pub bind: Option<Arc<Event>>,
}

impl CallRow {
    pub fn call(&self) -> &KmsCall {
        match &self.ev.body {
            Body::Kms(c) => c,
            // Rows are only built from `kms` events (see `App::add_event`).
            _ => unreachable_call(),
        }
    }
}

fn unreachable_call() -> &'static KmsCall {
    static EMPTY: std::sync::OnceLock<KmsCall> = std::sync::OnceLock::new();
    EMPTY.get_or_init(KmsCall::default)
}

/// One KMS host and product group (KMS counted id).
#[derive(Clone, Debug, Default)]
pub struct HostRow {
    pub server: Option<Endpoint>,
    pub kms_id: String,
    pub kms_name: Option<&'static str>,
    pub app_name: Option<&'static str>,
    pub epid: Option<String>,
    pub last_count: Option<u32>,
    pub max_count: Option<u32>,
    /// The highest RequiredClientCount seen from clients of this group: the activation threshold.
    pub required: u32,
    pub requests: u64,
    pub refused: u64,
    pub cmids: HashSet<String>,
    /// From the `summary`, when one arrived (authoritative).
    pub distinct_cmids: Option<u64>,
    /// Counts returned, in capture order (last [`MAX_HISTORY`]).
    pub history: Vec<u64>,
}

/// The filter being typed after `/`.
#[derive(Clone, Debug, Default)]
pub struct Edit {
    pub text: String,
    /// Why the text does not parse; `None` when valid.
    pub error: Option<String>,
    /// The filter text to go back to on Esc.
    pub previous: String,
}

/// Engine-side counters shown in the status bar.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub source: String,
    pub packets: u64,
    pub bytes: u64,
    /// Events dropped because the UI fell behind (live only; files apply back-pressure).
    pub dropped: u64,
    /// Packets the kernel or interface dropped (live, from the `summary`).
    pub capture_dropped: u64,
    pub anomalies: u64,
    pub calls_over_limit: u64,
    /// Packets per second over the last second of wall time (set by the loop; `None` in tests).
    pub rate: Option<f64>,
    pub done: bool,
    pub errors: Vec<String>,
}

/// What the loop must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    WriteReport,
}

/// Inner heights (rows) of the panes, from the last layout.
#[derive(Clone, Copy, Debug)]
pub struct Heights {
    pub calls: usize,
    pub detail: usize,
    pub findings: usize,
    pub hosts: usize,
    pub dns: usize,
}

impl Default for Heights {
    fn default() -> Self {
        Heights {
            calls: 10,
            detail: 10,
            findings: 10,
            hosts: 10,
            dns: 10,
        }
    }
}

/// The whole UI state.
#[derive(Debug, Default)]
pub struct App {
    /// Every event received and applied, in order (for `w`).
    pub events: Vec<Arc<Event>>,
    pub calls: Vec<CallRow>,
    /// Indices into `calls` that pass the filter, ascending.
    pub view: Vec<u32>,
    pub filter_text: String,
    pub filter: Option<Filter>,
    pub edit: Option<Edit>,
    pub findings: Vec<Arc<Event>>,
    /// Frame -> indices of the findings citing it.
    pub frame_findings: HashMap<u64, Vec<u32>>,
    /// Frame (request or response) -> call index.
    pub frame_call: HashMap<u64, u32>,
    pub hosts: Vec<HostRow>,
    host_index: HashMap<(Option<Endpoint>, String), usize>,
    pub dns: Vec<Arc<Event>>,
    /// How many of `dns` are SRV queries.
    pub dns_srv: usize,
    /// Last bind result per (client, server).
    binds: HashMap<(Endpoint, Endpoint), Arc<Event>>,
    pub status: Status,
    pub frozen: bool,
    /// Keep the newest call selected as calls arrive (set by `G`, cleared by moving up).
    pub follow: bool,
    /// Events received while frozen, applied when the view thaws.
    pub pending: Vec<Arc<Event>>,
    pub focus: Pane,
    /// The pane shown under the call list when the screen is too small for all of them.
    pub lower: Pane,
    pub calls_cur: Cursor,
    pub detail_cur: Cursor,
    pub findings_cur: Cursor,
    pub hosts_cur: Cursor,
    pub dns_cur: Cursor,
    /// Detail sections whose open/closed state the user flipped.
    pub toggled: BTreeSet<&'static str>,
    pub help: bool,
    /// A one-line message (report written, no more findings, ...).
    pub notice: Option<String>,
    pub heights: Heights,
    /// Whether the last layout was the wide one (hex beside the tree).
    pub wide: bool,
}

impl App {
    pub fn new(source: &str) -> App {
        App {
            status: Status {
                source: source.to_string(),
                ..Status::default()
            },
            lower: Pane::Detail,
            ..App::default()
        }
    }

    /// Lays the screen out for `area` (the loop calls this before each frame; tests too) so that
    /// the cursors scroll by the real pane heights.
    pub fn resize(&mut self, area: ratatui::layout::Rect) {
        let a = super::view::layout(area, self.lower);
        self.wide = a.wide;
        self.heights = super::view::heights(&a);
        self.calls_cur.fit(self.view.len(), self.heights.calls);
        self.findings_cur
            .fit(self.findings.len(), self.heights.findings);
        self.hosts_cur
            .fit(self.hosts.len(), (self.heights.hosts / 2).max(1));
        self.dns_cur.fit(self.dns.len(), self.heights.dns);
        let n = self.detail_len();
        self.detail_cur.fit(n, self.heights.detail);
    }

    // ------------------------------------------------------------------------------------------
    // Ingest

    /// Applies one message from the engine. While frozen, events wait in `pending`; counters move.
    pub fn ingest(&mut self, msg: Msg) {
        match msg {
            Msg::Events(batch) => {
                if self.frozen {
                    self.pending.extend(batch);
                } else {
                    for ev in batch {
                        self.add_event(ev);
                    }
                }
            }
            Msg::Progress { packets, bytes } => {
                self.status.packets = packets;
                self.status.bytes = bytes;
            }
            Msg::Error(e) => self.status.errors.push(e),
            Msg::Done => self.status.done = true,
        }
    }

    /// Applies one event.
    pub fn add_event(&mut self, ev: Arc<Event>) {
        if self.status.source.is_empty() {
            self.status.source = ev.source.to_string();
        }
        match &ev.body {
            Body::Kms(call) => {
                self.add_host_sample(&ev, call);
                if self.calls.len() >= MAX_CALLS {
                    self.status.calls_over_limit += 1;
                } else {
                    let idx = self.calls.len() as u32;
                    self.frame_call.entry(ev.frame).or_insert(idx);
                    if let Some(f) = call.response_frame {
                        self.frame_call.entry(f).or_insert(idx);
                    }
                    let bind = match (ev.client, ev.server) {
                        (Some(c), Some(s)) => self.binds.get(&(c, s)).cloned(),
                        _ => None,
                    };
                    self.calls.push(CallRow {
                        ev: ev.clone(),
                        bind,
                    });
                    if self.passes(idx as usize) {
                        self.view.push(idx);
                        if self.follow && !self.frozen {
                            let n = self.view.len();
                            self.calls_cur.set(n - 1, n, self.heights.calls);
                        }
                    }
                }
            }
            Body::Finding(f) => {
                let i = self.findings.len() as u32;
                for fr in &f.frames {
                    self.frame_findings.entry(*fr).or_default().push(i);
                }
                self.findings.push(ev.clone());
                if self.filter.as_ref().is_some_and(Filter::uses_checks) {
                    self.refilter();
                }
            }
            Body::Dns(d) => {
                if self.dns.len() < MAX_DNS {
                    self.dns.push(ev.clone());
                    if d.qtype.as_deref() == Some("SRV") {
                        self.dns_srv += 1;
                    }
                }
            }
            Body::Rpc(r) => {
                // Failed connections (to an SRV target, typically) are listed with the DNS.
                if r.pdu == "connect"
                    && r.result.is_some_and(|x| x != "established")
                    && self.dns.len() < MAX_DNS
                {
                    self.dns.push(ev.clone());
                }
                if matches!(r.pdu, "bind_ack" | "alter_context_resp" | "bind_nak")
                    && let (Some(c), Some(s)) = (ev.client, ev.server)
                {
                    self.binds.insert((c, s), ev.clone());
                }
            }
            Body::Anomaly(_) => self.status.anomalies += 1,
            Body::Summary(s) => {
                self.status.packets = self.status.packets.max(s.packets);
                self.status.bytes = self.status.bytes.max(s.bytes);
                self.status.capture_dropped = s.dropped.unwrap_or(0) + s.if_dropped.unwrap_or(0);
                for h in &s.hosts {
                    let server = Some(Endpoint {
                        ip: h.ip,
                        port: h.port,
                    });
                    for a in &h.apps {
                        let row = self.host_row(server, &a.kms_id);
                        row.kms_name = row.kms_name.or(a.kms_name);
                        row.app_name = row.app_name.or(a.app_name);
                        row.required = row.required.max(a.required_count);
                        row.requests = row.requests.max(a.requests);
                        row.refused = row.refused.max(a.refused);
                        row.distinct_cmids = Some(a.distinct_cmids);
                        if row.last_count.is_none() {
                            row.last_count = a.last_count;
                        }
                        row.max_count = row.max_count.max(a.max_count);
                        if row.epid.is_none() {
                            row.epid = h.epids.first().cloned();
                        }
                    }
                }
            }
        }
        self.events.push(ev);
    }

    fn host_row(&mut self, server: Option<Endpoint>, kms_id: &str) -> &mut HostRow {
        let key = (server, kms_id.to_string());
        let i = match self.host_index.get(&key) {
            Some(i) => *i,
            None => {
                self.hosts.push(HostRow {
                    server,
                    kms_id: kms_id.to_string(),
                    ..HostRow::default()
                });
                self.host_index.insert(key, self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[i]
    }

    fn add_host_sample(&mut self, ev: &Event, call: &KmsCall) {
        let kms_id = call
            .request
            .as_ref()
            .map(|r| r.kms_id.as_str())
            .unwrap_or("");
        if call.request.is_none() && call.response.is_none() {
            return;
        }
        let row = self.host_row(ev.server, kms_id);
        row.requests += 1;
        if call.status == "refused" || call.status == "fault" {
            row.refused += 1;
        }
        if let Some(r) = &call.request {
            row.kms_name = row.kms_name.or(r.kms_name);
            row.app_name = row.app_name.or(r.app_name);
            row.required = row.required.max(r.required_count);
            if row.cmids.len() < 1_000_000 {
                row.cmids.insert(r.cmid.as_str().to_owned());
            }
        }
        if let Some(resp) = &call.response {
            row.last_count = Some(resp.current_count);
            row.max_count = Some(row.max_count.unwrap_or(0).max(resp.current_count));
            if row.epid.is_none() {
                row.epid = Some(resp.epid.to_string());
            }
            if row.history.len() >= MAX_HISTORY {
                row.history.remove(0);
            }
            row.history.push(u64::from(resp.current_count));
        }
    }

    // ------------------------------------------------------------------------------------------
    // Queries used by the views

    /// The checks of the findings citing call `idx` (by its request or response frame).
    pub fn checks_of(&self, idx: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        for fi in self.finding_indices(idx) {
            if let Body::Finding(f) = &self.findings[fi as usize].body
                && !out.contains(&f.check)
            {
                out.push(f.check);
            }
        }
        out
    }

    /// Indices of the findings citing call `idx`.
    pub fn finding_indices(&self, idx: usize) -> Vec<u32> {
        let Some(row) = self.calls.get(idx) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = Vec::new();
        let frames = [Some(row.ev.frame), row.call().response_frame];
        for f in frames.into_iter().flatten() {
            if let Some(v) = self.frame_findings.get(&f) {
                for i in v {
                    if !out.contains(i) {
                        out.push(*i);
                    }
                }
            }
        }
        out
    }

    /// The most severe finding citing call `idx`.
    pub fn severity_of(&self, idx: usize) -> Option<Severity> {
        if self.frame_findings.is_empty() {
            return None;
        }
        self.finding_indices(idx)
            .into_iter()
            .filter_map(|i| match &self.findings[i as usize].body {
                Body::Finding(f) => Some(f.severity),
                _ => None,
            })
            .max()
    }

    fn passes(&self, idx: usize) -> bool {
        let Some(f) = &self.filter else {
            return true;
        };
        let row = &self.calls[idx];
        let checks = if f.uses_checks() {
            self.checks_of(idx)
        } else {
            Vec::new()
        };
        f.matches(&Subject {
            ev: &row.ev,
            call: row.call(),
            checks: &checks,
        })
    }

    /// Recomputes the filtered view, keeping the selected call selected when it still passes.
    pub fn refilter(&mut self) {
        let keep = self.selected_call_index();
        self.view = (0..self.calls.len())
            .filter(|i| self.passes(*i))
            .map(|i| i as u32)
            .collect();
        let pos = keep
            .map(|k| self.view.partition_point(|v| (*v as usize) < k))
            .unwrap_or(0);
        self.calls_cur.set(pos, self.view.len(), self.heights.calls);
        self.detail_cur = Cursor::default();
    }

    /// Index into `calls` of the selected call.
    pub fn selected_call_index(&self) -> Option<usize> {
        self.view.get(self.calls_cur.sel).map(|i| *i as usize)
    }

    pub fn selected_call(&self) -> Option<&CallRow> {
        self.selected_call_index().and_then(|i| self.calls.get(i))
    }

    /// Whether the detail section `id` is open (`default` unless the user flipped it).
    pub fn section_open(&self, id: &'static str, default: bool) -> bool {
        default != self.toggled.contains(id)
    }

    /// The frames of the calls shown in the view, with their positions (used by `n`/`N`).
    fn cited(&self, pos: usize) -> bool {
        self.view
            .get(pos)
            .is_some_and(|i| !self.finding_indices(*i as usize).is_empty())
    }

    // ------------------------------------------------------------------------------------------
    // Keys

    /// Handles one key press.
    pub fn key(&mut self, k: KeyEvent) -> Action {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.edit.is_some() {
            self.edit_key(k);
            return Action::None;
        }
        if self.help {
            self.help = false;
            if k.code == KeyCode::Char('q') {
                return Action::Quit;
            }
            return Action::None;
        }
        self.notice = None;
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('w') => return Action::WriteReport,
            KeyCode::Char(' ') => self.toggle_freeze(),
            KeyCode::Char('/') => {
                self.edit = Some(Edit {
                    text: self.filter_text.clone(),
                    error: None,
                    previous: self.filter_text.clone(),
                });
            }
            KeyCode::Char('n') => self.next_finding(false),
            KeyCode::Char('N') => self.next_finding(true),
            KeyCode::Tab => self.set_focus(self.focus.next(false)),
            KeyCode::BackTab => self.set_focus(self.focus.next(true)),
            KeyCode::Char('1') => self.set_focus(Pane::Calls),
            KeyCode::Char('2') => self.set_focus(Pane::Detail),
            KeyCode::Char('3') => self.set_focus(Pane::Findings),
            KeyCode::Char('4') => self.set_focus(Pane::Hosts),
            KeyCode::Char('5') => self.set_focus(Pane::Dns),
            KeyCode::Esc => self.set_focus(Pane::Calls),
            KeyCode::Enter => self.enter(),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown | KeyCode::Char('f') => {
                let h = self.focused_height() as isize;
                self.move_by(h.max(1));
            }
            KeyCode::PageUp | KeyCode::Char('b') => {
                let h = self.focused_height() as isize;
                self.move_by(-h.max(1));
            }
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Left | KeyCode::Char('h') if self.focus == Pane::Detail => {
                self.set_focus(Pane::Calls)
            }
            _ => {}
        }
        Action::None
    }

    fn set_focus(&mut self, p: Pane) {
        self.focus = p;
        if p != Pane::Calls {
            self.lower = p;
        }
    }

    fn focused_height(&self) -> usize {
        match self.focus {
            Pane::Calls => self.heights.calls,
            Pane::Detail => self.heights.detail,
            Pane::Findings => self.heights.findings,
            Pane::Hosts => self.heights.hosts / 2,
            Pane::Dns => self.heights.dns,
        }
    }

    fn move_by(&mut self, d: isize) {
        match self.focus {
            Pane::Calls => {
                let before = self.calls_cur.sel;
                self.calls_cur
                    .move_by(d, self.view.len(), self.heights.calls);
                self.follow = d > 0 && self.calls_cur.sel + 1 >= self.view.len();
                if self.calls_cur.sel != before {
                    self.detail_cur = Cursor::default();
                }
            }
            Pane::Detail => {
                let n = self.detail_len();
                self.detail_cur.move_by(d, n, self.heights.detail);
            }
            Pane::Findings => {
                self.findings_cur
                    .move_by(d, self.findings.len(), self.heights.findings)
            }
            Pane::Hosts => {
                self.hosts_cur
                    .move_by(d, self.hosts.len(), (self.heights.hosts / 2).max(1))
            }
            Pane::Dns => self.dns_cur.move_by(d, self.dns.len(), self.heights.dns),
        }
    }

    /// Number of lines of the detail tree of the selected call.
    pub fn detail_len(&self) -> usize {
        match self.selected_call() {
            Some(_) => detail::tree(self).len(),
            None => 0,
        }
    }

    fn enter(&mut self) {
        match self.focus {
            Pane::Calls => {
                if self.selected_call().is_some() {
                    self.set_focus(Pane::Detail);
                }
            }
            Pane::Detail => {
                let lines = detail::tree(self);
                if let Some(l) = lines.get(self.detail_cur.sel)
                    && let Some((id, _)) = l.header
                    && !self.toggled.remove(id)
                {
                    self.toggled.insert(id);
                }
                let n = self.detail_len();
                self.detail_cur.fit(n, self.heights.detail);
            }
            Pane::Findings => self.goto_finding_call(self.findings_cur.sel),
            Pane::Hosts => {
                if let Some(h) = self.hosts.get(self.hosts_cur.sel) {
                    let mut f = String::new();
                    if let Some(s) = h.server {
                        f.push_str(&format!("host={s}"));
                    }
                    if !h.kms_id.is_empty() {
                        f.push_str(&format!(" product={}", h.kms_id));
                    }
                    self.apply_filter_text(f.trim());
                    self.set_focus(Pane::Calls);
                }
            }
            Pane::Dns => {}
        }
    }

    /// Selects the first call that finding `fi` cites.
    fn goto_finding_call(&mut self, fi: usize) {
        let Some(Body::Finding(f)) = self.findings.get(fi).map(|e| &e.body) else {
            return;
        };
        let Some(idx) = f
            .frames
            .iter()
            .find_map(|fr| self.frame_call.get(fr).copied())
        else {
            // Not a KMS call: perhaps a DNS exchange or a failed connection.
            let pos = self.dns.iter().position(|e| {
                f.frames.contains(&e.frame)
                    || matches!(&e.body, Body::Dns(d) if d.response_frame.is_some_and(|r| f.frames.contains(&r)))
            });
            match pos {
                Some(p) => {
                    self.dns_cur.set(p, self.dns.len(), self.heights.dns);
                    self.set_focus(Pane::Dns);
                }
                None => self.notice = Some(format!("{} cites no KMS call", f.check)),
            }
            return;
        };
        match self.view.binary_search(&idx) {
            Ok(pos) => {
                self.calls_cur.set(pos, self.view.len(), self.heights.calls);
                self.detail_cur = Cursor::default();
                self.set_focus(Pane::Calls);
            }
            Err(_) => {
                self.notice = Some("the cited call is hidden by the filter".into());
            }
        }
    }

    /// `n` / `N`: the next (previous) call in the view cited by a finding.
    fn next_finding(&mut self, back: bool) {
        let n = self.view.len();
        if n == 0 || self.frame_findings.is_empty() {
            self.notice = Some("no call is cited by a finding".into());
            return;
        }
        let start = self.calls_cur.sel;
        for step in 1..=n {
            let pos = if back {
                (start + n - step % n) % n
            } else {
                (start + step) % n
            };
            if self.cited(pos) {
                self.calls_cur.set(pos, n, self.heights.calls);
                self.detail_cur = Cursor::default();
                if let Some(fi) = self
                    .selected_call_index()
                    .and_then(|i| self.finding_indices(i).first().copied())
                {
                    self.findings_cur
                        .set(fi as usize, self.findings.len(), self.heights.findings);
                }
                return;
            }
        }
        self.notice = Some("no shown call is cited by a finding".into());
    }

    fn toggle_freeze(&mut self) {
        self.frozen = !self.frozen;
        if !self.frozen {
            for ev in std::mem::take(&mut self.pending) {
                self.add_event(ev);
            }
        }
    }

    fn edit_key(&mut self, k: KeyEvent) {
        let Some(edit) = self.edit.as_mut() else {
            return;
        };
        match k.code {
            KeyCode::Esc => {
                let prev = edit.previous.clone();
                self.edit = None;
                self.apply_filter_text(&prev);
                return;
            }
            KeyCode::Enter => {
                if edit.error.is_none() {
                    self.edit = None;
                }
                return;
            }
            KeyCode::Backspace => {
                edit.text.pop();
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                edit.text.clear();
            }
            KeyCode::Char(c) if !c.is_control() => {
                if edit.text.chars().count() < 256 {
                    edit.text.push(c);
                }
            }
            _ => return,
        }
        let text = edit.text.clone();
        match Filter::parse(&text) {
            Ok(f) => {
                if let Some(e) = self.edit.as_mut() {
                    e.error = None;
                }
                if text.trim() != self.filter_text.trim() {
                    self.filter = f;
                    self.filter_text = text;
                    self.refilter();
                }
            }
            Err(e) => {
                if let Some(ed) = self.edit.as_mut() {
                    ed.error = Some(e);
                }
            }
        }
    }

    /// Sets and applies a filter (ignored when it does not parse).
    pub fn apply_filter_text(&mut self, text: &str) {
        if let Ok(f) = Filter::parse(text) {
            self.filter = f;
            self.filter_text = text.to_string();
            self.refilter();
        }
    }
}
