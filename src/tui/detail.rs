//! The detail pane of the selected call: the decoded fields as a tree (connection → bind → request →
//! response → integrity → findings) and a hex view of the raw and decrypted KMS messages.
//!
//! [`tree`] builds the lines (already escaped) from the state; the view only draws them, and the key
//! handler uses the same lines to move the cursor and open or close sections.

use std::fmt::Write as _;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::app::{App, Pane};
use super::view::{block, esc, tone_style};
use crate::event::{Body, KmsRaw};

/// How a value should look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Normal,
    Good,
    Warn,
    Bad,
    Dim,
}

/// One line of the tree.
#[derive(Clone, Debug)]
pub struct TreeLine {
    /// Section id and whether it is open, for a section header.
    pub header: Option<(&'static str, bool)>,
    pub depth: u16,
    pub key: String,
    pub value: String,
    pub tone: Tone,
}

/// Most bytes a hex view shows (KMS messages are a few hundred bytes).
pub const MAX_HEX_BYTES: usize = 64 * 1024;

struct Builder<'a> {
    app: &'a App,
    lines: Vec<TreeLine>,
    open: bool,
}

impl Builder<'_> {
    fn section(&mut self, id: &'static str, title: String, default_open: bool) {
        self.open = self.app.section_open(id, default_open);
        self.lines.push(TreeLine {
            header: Some((id, self.open)),
            depth: 0,
            key: title,
            value: String::new(),
            tone: Tone::Normal,
        });
    }

    fn kv(&mut self, key: &str, value: impl Into<String>, tone: Tone) {
        self.kv_at(1, key, value, tone);
    }

    fn kv_at(&mut self, depth: u16, key: &str, value: impl Into<String>, tone: Tone) {
        if self.open {
            self.lines.push(TreeLine {
                header: None,
                depth,
                key: key.to_string(),
                value: value.into(),
                tone,
            });
        }
    }

    fn hex(&mut self, label: &str, bytes: Option<&Vec<u8>>) {
        if !self.open {
            return;
        }
        match bytes {
            Some(b) => {
                self.kv(label, format!("{} bytes", b.len()), Tone::Dim);
                for l in hex_lines(b, 8) {
                    self.kv_at(2, "", l, Tone::Normal);
                }
            }
            None => self.kv(label, "not available", Tone::Dim),
        }
    }
}

/// The tree of the selected call (empty when none). In the wide layout the bytes are in the hex
/// pane beside it; otherwise they are two more sections, closed by default.
pub fn tree(app: &App) -> Vec<TreeLine> {
    let Some(row) = app.selected_call() else {
        return Vec::new();
    };
    let ev = &row.ev;
    let call = row.call();
    let mut b = Builder {
        app,
        lines: Vec::new(),
        open: true,
    };

    b.section("connection", "Connection".into(), true);
    if let Some(c) = ev.client {
        b.kv("client", c.to_string(), Tone::Normal);
    }
    if let Some(s) = ev.server {
        b.kv("server", s.to_string(), Tone::Normal);
    }
    let frames = match call.response_frame {
        Some(r) => format!("{} → {}", ev.frame, r),
        None => ev.frame.to_string(),
    };
    b.kv("frames", frames, Tone::Normal);
    b.kv("time", ev.ts.rfc3339_micros().to_string(), Tone::Normal);
    b.kv(
        "call_id",
        format!("{}  ctx {}  {}", call.call_id, call.ctx_id, call.ndr),
        Tone::Normal,
    );
    let status_tone = match call.status {
        "answered" => Tone::Good,
        "unanswered" => Tone::Dim,
        _ => Tone::Bad,
    };
    let mut status = call.status.to_string();
    if let Some(r) = call.reason {
        let _ = write!(status, " ({r})");
    }
    b.kv("status", status, status_tone);
    if let Some(rtt) = call.rtt_ms {
        b.kv("rtt", format!("{rtt:.3} ms"), Tone::Normal);
    }

    b.section("bind", "Bind".into(), true);
    match row.bind.as_deref().map(|e| &e.body) {
        Some(Body::Rpc(r)) => {
            b.kv("pdu", r.pdu, Tone::Normal);
            if let Some(i) = &r.interface {
                let name = r.interface_name.unwrap_or("");
                b.kv("interface", format!("{} {name}", esc(i)), Tone::Normal);
            }
            for t in &r.transfer_syntaxes {
                let tone = if t.result == "accepted" {
                    Tone::Good
                } else {
                    Tone::Dim
                };
                b.kv(
                    &format!(
                        "ctx {}",
                        t.ctx_id.map(|c| c.to_string()).unwrap_or_default()
                    ),
                    format!("{} {}", t.syntax_name, esc(&t.result)),
                    tone,
                );
            }
            if let Some(g) = r.assoc_group {
                b.kv("assoc_group", format!("0x{g:08x}"), Tone::Normal);
            }
            if let Some(s) = &r.status {
                b.kv(
                    "status",
                    format!("{} {}", s.code, s.name.unwrap_or("")),
                    Tone::Bad,
                );
            }
        }
        _ => b.kv("bind", "not captured on this connection", Tone::Dim),
    }

    b.section("request", "Request".into(), true);
    if let Some(v) = &call.version {
        b.kv("version", esc(v), Tone::Normal);
    }
    match &call.request {
        Some(r) => {
            b.kv("workstation", esc(&r.workstation), Tone::Normal);
            b.kv("app", named(r.app_name, &r.app_id), Tone::Normal);
            b.kv("sku", named(r.sku_name, &r.sku_id), Tone::Normal);
            b.kv("kms group", named(r.kms_name, &r.kms_id), Tone::Normal);
            b.kv("cmid", esc(&r.cmid), Tone::Normal);
            if let Some(p) = &r.previous_cmid {
                b.kv("previous cmid", esc(p), Tone::Normal);
            }
            let mut req = r.required_count.to_string();
            if let Some(c) = r.catalog_threshold {
                let _ = write!(req, " (catalog {c})");
            }
            b.kv("required count", req, Tone::Normal);
            b.kv("vm", if r.is_vm { "yes" } else { "no" }, Tone::Normal);
            b.kv(
                "license status",
                format!("{} ({})", esc(&r.license_status), r.license_status_code),
                Tone::Normal,
            );
            b.kv(
                "binding expires",
                format!("{} min", r.binding_expiration_min),
                Tone::Normal,
            );
            b.kv("client time", esc(&r.client_time), Tone::Normal);
        }
        None => b.kv("request", "not captured or not decodable", Tone::Dim),
    }
    if let Some(n) = call.request_size {
        b.kv("size", format!("{n} bytes"), Tone::Dim);
    }

    b.section("response", "Response".into(), true);
    if let Some(h) = &call.hresult {
        let tone = if call.status == "answered" {
            Tone::Warn
        } else {
            Tone::Bad
        };
        b.kv(
            "hresult",
            format!("{} {}", h.code, h.name.unwrap_or("")),
            tone,
        );
        if let Some(m) = h.meaning {
            b.kv("meaning", m, Tone::Normal);
        }
    }
    match &call.response {
        Some(r) => {
            let need = call.request.as_ref().map(|q| q.required_count);
            let tone = match need {
                Some(n) if r.current_count >= n => Tone::Good,
                Some(_) => Tone::Warn,
                None => Tone::Normal,
            };
            let count = match need {
                Some(n) => format!("{} / {} required", r.current_count, n),
                None => r.current_count.to_string(),
            };
            b.kv("count", count, tone);
            b.kv("epid", esc(&r.epid), Tone::Normal);
            let h = &r.host;
            let mut host = String::new();
            if let Some(v) = h.os_build {
                let _ = write!(host, "build {v} ");
            }
            if let Some(v) = h.platform_id {
                let _ = write!(host, "platform {v} ");
            }
            if let Some(v) = h.group_id {
                let _ = write!(host, "group {v} ");
            }
            if let Some(v) = h.channel {
                let _ = write!(host, "channel {v} ");
            }
            if let Some(v) = h.lcid {
                let _ = write!(host, "lcid {v} ");
            }
            if let Some(v) = &h.key_installed {
                let _ = write!(host, "key installed {}", esc(v));
            }
            if !host.is_empty() {
                b.kv("host", host.trim_end().to_string(), Tone::Normal);
            }
            b.kv(
                "intervals",
                format!(
                    "activation {} min, renewal {} min",
                    r.activation_interval_min, r.renewal_interval_min
                ),
                Tone::Normal,
            );
            if let Some(w) = &r.hwid {
                b.kv("hwid", esc(w), Tone::Normal);
            }
            b.kv("echoed cmid", esc(&r.cmid), Tone::Dim);
            b.kv("echoed time", esc(&r.client_time), Tone::Dim);
        }
        None if call.hresult.is_none() => b.kv("response", "none", Tone::Dim),
        None => {}
    }
    if let Some(n) = call.response_size {
        b.kv("size", format!("{n} bytes"), Tone::Dim);
    }

    b.section("integrity", "Integrity".into(), true);
    let verdict_tone = |v: &str| match v {
        "valid" => Tone::Good,
        "invalid" => Tone::Bad,
        _ => Tone::Warn,
    };
    if let Some(v) = call.integrity.request {
        b.kv("request", v, verdict_tone(v));
    }
    if let Some(v) = call.integrity.response {
        b.kv("response", v, verdict_tone(v));
    }
    if !call.integrity.failures.is_empty() {
        b.kv("failures", call.integrity.failures.join(", "), Tone::Bad);
    }
    b.kv("outcome", call.outcome, outcome_tone(call.outcome));

    if let Some(idx) = app.selected_call_index() {
        let fis = app.finding_indices(idx);
        if !fis.is_empty() {
            b.section("findings", format!("Findings ({})", fis.len()), true);
            for fi in fis {
                if let Some(Body::Finding(f)) = app.findings.get(fi as usize).map(|e| &e.body) {
                    let tone = match f.severity {
                        crate::event::Severity::Info => Tone::Normal,
                        crate::event::Severity::Warning => Tone::Warn,
                        _ => Tone::Bad,
                    };
                    b.kv(f.check, esc(&f.message), tone);
                }
            }
        }
    }

    if !app.wide {
        let raw = call.raw.as_deref();
        b.section("request_bytes", "Request bytes".into(), false);
        b.hex("raw", raw.and_then(|r| r.request.as_ref()));
        b.hex("decrypted", raw.and_then(|r| r.request_plain.as_ref()));
        b.section("response_bytes", "Response bytes".into(), false);
        b.hex("raw", raw.and_then(|r| r.response.as_ref()));
        b.hex("decrypted", raw.and_then(|r| r.response_plain.as_ref()));
    }
    b.lines
}

pub fn outcome_tone(o: &str) -> Tone {
    match o {
        "activated" => Tone::Good,
        "count_insufficient" => Tone::Warn,
        "no_response" => Tone::Dim,
        _ => Tone::Bad,
    }
}

fn named(name: Option<&str>, id: &str) -> String {
    match name {
        Some(n) => format!("{} {{{}}}", esc(n), esc(id)),
        None => format!("{{{}}}", esc(id)),
    }
}

/// Hex dump lines: offset, `per_line` bytes in hex, and the printable ASCII (others as `.`).
pub fn hex_lines(bytes: &[u8], per_line: usize) -> Vec<String> {
    let per_line = per_line.max(1);
    let shown = &bytes[..bytes.len().min(MAX_HEX_BYTES)];
    let mut out = Vec::with_capacity(shown.len() / per_line + 2);
    for (i, chunk) in shown.chunks(per_line).enumerate() {
        let mut s = String::with_capacity(8 + per_line * 4);
        let _ = write!(s, "{:04x} ", i * per_line);
        for j in 0..per_line {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(s, " {b:02x}");
                }
                None => s.push_str("   "),
            }
        }
        s.push_str("  ");
        s.extend(chunk.iter().map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        }));
        out.push(s);
    }
    if bytes.len() > shown.len() {
        out.push(format!("… {} more bytes", bytes.len() - shown.len()));
    }
    out
}

/// Which half's bytes the hex pane shows: the response when the cursor is in the response,
/// integrity or findings sections, the request otherwise.
fn hex_half(app: &App, lines: &[TreeLine]) -> bool {
    let mut section = "connection";
    for l in lines.iter().take(app.detail_cur.sel + 1) {
        if let Some((id, _)) = l.header {
            section = id;
        }
    }
    matches!(section, "response" | "integrity" | "findings")
}

/// Draws the tree.
pub fn render_tree(app: &App, lines: &[TreeLine], area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Detail;
    let title = match app.selected_call() {
        Some(r) => format!("Detail: frame {}", r.ev.frame),
        None => "Detail".to_string(),
    };
    let blk = block(&title, focused);
    let inner = blk.inner(area);
    blk.render(area, buf);
    if lines.is_empty() {
        Paragraph::new(Line::styled(
            "no call selected",
            Style::default().fg(Color::DarkGray),
        ))
        .render(inner, buf);
        return;
    }
    let mut cur = app.detail_cur;
    cur.fit(lines.len(), inner.height as usize);
    let key_w = 16usize;
    let out: Vec<Line> = lines
        .iter()
        .enumerate()
        .skip(cur.top)
        .take(inner.height as usize)
        .map(|(i, l)| {
            let mut line = match l.header {
                Some((_, open)) => Line::from(vec![
                    Span::raw(if open { "▾ " } else { "▸ " }),
                    Span::styled(l.key.clone(), Style::default().add_modifier(Modifier::BOLD)),
                ]),
                None => {
                    let indent = "  ".repeat(l.depth as usize);
                    if l.key.is_empty() {
                        Line::from(vec![
                            Span::raw(indent),
                            Span::styled(l.value.clone(), tone_style(l.tone)),
                        ])
                    } else {
                        let w = key_w.saturating_sub(indent.len());
                        Line::from(vec![
                            Span::raw(indent),
                            Span::styled(
                                format!("{:<w$} ", l.key),
                                Style::default().fg(Color::Cyan),
                            ),
                            Span::styled(l.value.clone(), tone_style(l.tone)),
                        ])
                    }
                }
            };
            if i == cur.sel && focused {
                line = line.patch_style(Style::default().add_modifier(Modifier::REVERSED));
            }
            line
        })
        .collect();
    Paragraph::new(out).render(inner, buf);
}

/// Draws the hex pane (wide layout): raw and decrypted bytes of the request or the response.
pub fn render_hex(app: &App, lines: &[TreeLine], area: Rect, buf: &mut Buffer) {
    let response = hex_half(app, lines);
    let raw: Option<&KmsRaw> = app.selected_call().and_then(|r| r.call().raw.as_deref());
    let (title, a, b) = if response {
        (
            "Hex: response",
            raw.and_then(|r| r.response.as_ref()),
            raw.and_then(|r| r.response_plain.as_ref()),
        )
    } else {
        (
            "Hex: request",
            raw.and_then(|r| r.request.as_ref()),
            raw.and_then(|r| r.request_plain.as_ref()),
        )
    };
    let blk: Block = block(title, false);
    let inner = blk.inner(area);
    blk.render(area, buf);
    // 8 bytes need 4+1+24+2+8 = 39 columns; 16 need 71.
    let per_line = if inner.width >= 71 { 16 } else { 8 };
    let head = Style::default()
        .fg(Color::Cyan)
        .add_modifier(Modifier::BOLD);
    let mut out: Vec<Line> = Vec::new();
    if app.selected_call().is_none() {
        out.push(Line::styled(
            "no call selected",
            Style::default().fg(Color::DarkGray),
        ));
    } else if raw.is_none() {
        out.push(Line::styled(
            "bytes not kept (run with the UI to see them)",
            Style::default().fg(Color::DarkGray),
        ));
    } else {
        for (label, bytes) in [("raw", a), ("decrypted", b)] {
            match bytes {
                Some(v) => {
                    out.push(Line::styled(format!("{label} ({} bytes)", v.len()), head));
                    out.extend(hex_lines(v, per_line).into_iter().map(Line::raw));
                }
                None => {
                    let why = if label == "decrypted" {
                        "none (v4 is not encrypted, or undecodable)"
                    } else {
                        "not captured"
                    };
                    out.push(Line::styled(format!("{label}: {why}"), head));
                }
            }
        }
    }
    Paragraph::new(out).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::hex_lines;

    #[test]
    fn hex_lines_show_offsets_and_ascii() {
        let l = hex_lines(b"ABCDEFGHI\x1b", 8);
        assert_eq!(l[0], "0000  41 42 43 44 45 46 47 48  ABCDEFGH");
        assert_eq!(l[1], "0008  49 1b                    I.");
        assert!(hex_lines(&[], 8).is_empty());
    }
}
