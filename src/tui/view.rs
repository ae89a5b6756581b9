//! Layout and the top-level widget. Rendering only reads the [`App`] (`impl Widget for &View`); every
//! string from the wire goes through [`esc`] before it reaches a cell.

use std::borrow::Cow;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Widget, Wrap};
use unicode_width::UnicodeWidthChar;

use super::app::{App, Heights, Pane};
use super::detail::{self, Tone};
use super::{calls, dns, findings, hosts};
use crate::output::escape::escape;

/// The screen is wide enough for every pane at once from this size on.
pub const WIDE_MIN_COLS: u16 = 140;
pub const WIDE_MIN_ROWS: u16 = 36;
/// From this size on, hosts and findings (or DNS) stand beside calls and detail.
pub const MEDIUM_MIN_COLS: u16 = 110;
pub const MEDIUM_MIN_ROWS: u16 = 28;

/// Where each pane goes. `None` for panes not shown in this layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Areas {
    pub header: Rect,
    pub calls: Rect,
    pub detail: Option<Rect>,
    pub hex: Option<Rect>,
    pub findings: Option<Rect>,
    pub hosts: Option<Rect>,
    pub dns: Option<Rect>,
    pub filter: Rect,
    pub status: Rect,
    pub wide: bool,
}

/// Lays the panes out in `area`. Wide: calls and detail (tree | hex) on the left, hosts, findings
/// and DNS on the right. Medium: the same without the hex pane, and findings or DNS (the one last
/// focused). Narrow: the call list on top and one other pane below it (the one last focused; the
/// detail by default).
pub fn layout(area: Rect, lower: Pane) -> Areas {
    let [header, body, filter, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut a = Areas {
        header,
        filter,
        status,
        ..Areas::default()
    };
    if area.width >= WIDE_MIN_COLS && area.height >= WIDE_MIN_ROWS {
        a.wide = true;
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(body);
        let [calls, detail] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(left);
        let [tree, hex] =
            Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)])
                .areas(detail);
        let [hosts, findings, dns] = Layout::vertical([
            Constraint::Percentage(34),
            Constraint::Percentage(40),
            Constraint::Percentage(26),
        ])
        .areas(right);
        a.calls = calls;
        a.detail = Some(tree);
        a.hex = Some(hex);
        a.hosts = Some(hosts);
        a.findings = Some(findings);
        a.dns = Some(dns);
    } else if area.width >= MEDIUM_MIN_COLS && area.height >= MEDIUM_MIN_ROWS {
        // Calls and detail (bytes in the tree) on the left; hosts, and findings or DNS, on the right.
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(body);
        let [calls, detail] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(left);
        let [hosts, other] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(right);
        a.calls = calls;
        a.detail = Some(detail);
        a.hosts = Some(hosts);
        if lower == Pane::Dns {
            a.dns = Some(other);
        } else {
            a.findings = Some(other);
        }
    } else {
        let [calls, lower_area] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        a.calls = calls;
        match lower {
            Pane::Findings => a.findings = Some(lower_area),
            Pane::Hosts => a.hosts = Some(lower_area),
            Pane::Dns => a.dns = Some(lower_area),
            Pane::Calls | Pane::Detail => a.detail = Some(lower_area),
        }
    }
    a
}

/// Inner heights of the panes of a layout (what the cursors scroll by).
pub fn heights(a: &Areas) -> Heights {
    let inner = |r: Option<Rect>| r.map(|r| r.height.saturating_sub(2) as usize).unwrap_or(10);
    Heights {
        // Borders and the column header.
        calls: a.calls.height.saturating_sub(3).max(1) as usize,
        detail: inner(a.detail).max(1),
        findings: inner(a.findings).max(1),
        hosts: inner(a.hosts).max(1),
        dns: inner(a.dns).max(1),
    }
}

/// The whole screen, drawn from the state.
pub struct View<'a> {
    pub app: &'a App,
}

impl<'a> View<'a> {
    pub fn new(app: &'a App) -> View<'a> {
        View { app }
    }
}

impl Widget for &View<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        if area.width < 20 || area.height < 8 {
            Paragraph::new("kmsscope: terminal too small").render(area, buf);
            return;
        }
        let a = layout(area, app.lower);
        header(app, a.header, buf);
        calls::render(app, a.calls, buf);
        if a.detail.is_some() || a.hex.is_some() {
            let lines = detail::tree(app);
            if let Some(r) = a.detail {
                detail::render_tree(app, &lines, r, buf);
            }
            if let Some(r) = a.hex {
                detail::render_hex(app, &lines, r, buf);
            }
        }
        if let Some(r) = a.findings {
            findings::render(app, r, buf);
        }
        if let Some(r) = a.hosts {
            hosts::render(app, r, buf);
        }
        if let Some(r) = a.dns {
            dns::render(app, r, buf);
        }
        filter_bar(app, a.filter, buf);
        status_bar(app, a.status, buf);
        if app.help {
            help(area, buf);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers shared by the views

/// Escapes a wire string for the terminal: control characters and bidi overrides (the shared
/// `output::escape`), and also the invisible or line-breaking format characters a terminal may
/// render surprisingly (line/paragraph separators, zero-width and tag characters).
pub fn esc(s: &str) -> Cow<'_, str> {
    let e = escape(s);
    if !e.chars().any(invisible) {
        return e;
    }
    let mut out = String::with_capacity(e.len() + 8);
    for c in e.chars() {
        if invisible(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200d}' | '\u{2028}' | '\u{2029}' | '\u{2060}'..='\u{2064}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// Cuts `s` to at most `w` columns, marking a cut with `…`.
pub fn fit(s: &str, w: usize) -> String {
    let mut width = 0;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= w {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if width + cw + 1 > w {
            break;
        }
        width += cw;
        out.push(c);
    }
    if w > 0 {
        out.push('…');
    }
    out
}

/// `fit` and pad to exactly `w` columns.
pub fn cell(s: &str, w: usize) -> String {
    let f = fit(s, w);
    let fw: usize = f.chars().map(|c| c.width().unwrap_or(0)).sum();
    let mut out = f;
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(fw)));
    out
}

/// A bordered block, highlighted when focused.
pub fn block(title: &str, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::default()
            .fg(Color::LightCyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::Gray)
    };
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(style)
        .title(Span::styled(format!(" {} ", esc(title)), style))
}

pub fn tone_style(t: Tone) -> Style {
    match t {
        Tone::Normal => Style::default(),
        Tone::Good => Style::default().fg(Color::Green),
        Tone::Warn => Style::default().fg(Color::Yellow),
        Tone::Bad => Style::default().fg(Color::LightRed),
        Tone::Dim => Style::default().fg(Color::DarkGray),
    }
}

/// The style of a selected row: bright when its pane has the focus.
pub fn selected_style(focused: bool) -> Style {
    if focused {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default().bg(Color::DarkGray)
    }
}

/// Word-wraps `s` into lines of at most `w` columns (long words are cut).
pub fn wrap(s: &str, w: usize) -> Vec<String> {
    let w = w.max(8);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut lw = 0usize;
    for word in s.split(' ') {
        let ww: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
        if lw > 0 && lw + 1 + ww > w {
            out.push(std::mem::take(&mut line));
            lw = 0;
        }
        if lw > 0 {
            line.push(' ');
            lw += 1;
        }
        if ww > w {
            // A word longer than a line: cut it.
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if lw + cw > w {
                    out.push(std::mem::take(&mut line));
                    lw = 0;
                }
                line.push(c);
                lw += cw;
            }
        } else {
            line.push_str(word);
            lw += ww;
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Bars and overlays

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = vec![Span::styled(
        " kmsscope ",
        Style::default()
            .fg(Color::Black)
            .bg(Color::Cyan)
            .add_modifier(Modifier::BOLD),
    )];
    for (i, p) in Pane::ALL.iter().enumerate() {
        let count = match p {
            Pane::Calls => format!(" ({})", app.view.len()),
            Pane::Findings => format!(" ({})", app.findings.len()),
            Pane::Hosts => format!(" ({})", app.hosts.len()),
            Pane::Dns => format!(" ({})", app.dns.len()),
            Pane::Detail => String::new(),
        };
        let text = format!(" {}:{}{} ", i + 1, p.title(), count);
        let style = if *p == app.focus {
            Style::default()
                .fg(Color::Black)
                .bg(Color::LightCyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(Color::Gray)
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(text, style));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

fn filter_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let line = if let Some(e) = &app.edit {
        let (style, msg) = match &e.error {
            None => (
                Style::default().fg(Color::Black).bg(Color::Green),
                "  Enter keeps, Esc reverts".to_string(),
            ),
            Some(err) => (
                Style::default().fg(Color::White).bg(Color::Red),
                format!("  {}", esc(err)),
            ),
        };
        Line::from(vec![
            Span::styled("/", Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(format!("{}▏", esc(&e.text)), style),
            Span::styled(msg, Style::default().fg(Color::Gray)),
        ])
    } else if let Some(n) = &app.notice {
        Line::styled(format!(" {}", esc(n)), Style::default().fg(Color::Yellow))
    } else if !app.filter_text.trim().is_empty() {
        Line::from(vec![
            Span::styled(
                " filter ",
                Style::default().fg(Color::Black).bg(Color::Green),
            ),
            Span::raw(format!(
                " {}  ({} of {} calls)",
                esc(&app.filter_text),
                app.view.len(),
                app.calls.len()
            )),
        ])
    } else {
        Line::styled(
            " / filter  j/k move  Tab pane  Enter open  n/N finding  space freeze  w report  ? help  q quit",
            Style::default().fg(Color::DarkGray),
        )
    };
    Paragraph::new(line).render(area, buf);
}

fn status_bar(app: &App, area: Rect, buf: &mut Buffer) {
    let s = &app.status;
    let source = esc(&s.source).into_owned();
    let short = source
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&source)
        .to_string();
    let essential = [
        format!("{} pkts", s.packets),
        format!("{} calls", app.calls.len() as u64 + s.calls_over_limit),
        format!("{} findings", app.findings.len()),
    ];
    let mut optional = vec![format!("{} anomalies", s.anomalies)];
    if let (Some(r), false) = (s.rate, s.done) {
        optional.push(format!("{r:.0} pkt/s"));
    }
    let mut tail = vec![
        format!("{} drops", s.dropped + s.capture_dropped),
        if s.done {
            "done".into()
        } else {
            "reading…".into()
        },
    ];
    if !s.errors.is_empty() {
        tail.push(format!("{} errors: {}", s.errors.len(), esc(&s.errors[0])));
    }
    let frozen = if app.frozen {
        format!(" FROZEN +{} ", app.pending.len())
    } else {
        String::new()
    };
    // The most that fits: the source in full, or by file name, then the optional counters.
    let room = (area.width as usize).saturating_sub(frozen.chars().count() + 2);
    let join = |src: Option<&String>, opt: bool| {
        let mut v: Vec<&str> = src.map(|x| x.as_str()).into_iter().collect();
        v.extend(essential.iter().map(String::as_str));
        if opt {
            v.extend(optional.iter().map(String::as_str));
        }
        v.extend(tail.iter().map(String::as_str));
        v.join(" │ ")
    };
    let candidates = [
        join(Some(&source), true),
        join(Some(&short), true),
        join(Some(&short), false),
    ];
    let text = candidates
        .into_iter()
        .find(|t| t.chars().count() <= room)
        .unwrap_or_else(|| join(None, false));
    let mut spans = Vec::new();
    if app.frozen {
        spans.push(Span::styled(
            frozen,
            Style::default()
                .fg(Color::White)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD),
        ));
    }
    spans.push(Span::styled(
        format!(" {text} "),
        Style::default().fg(Color::Black).bg(Color::Gray),
    ));
    Paragraph::new(Line::from(spans))
        .style(Style::default().bg(Color::Gray))
        .render(area, buf);
}

const HELP: &[(&str, &str)] = &[
    ("j k ↓ ↑", "move; f b PgDn PgUp page; g G first / last"),
    ("Tab S-Tab 1-5", "next / previous pane, or pane by number"),
    ("Enter", "calls: open detail; detail: open/close section;"),
    ("", "findings: go to the cited call; hosts: filter by host"),
    (
        "/",
        "filter (green valid, red not); Enter keeps, Esc reverts",
    ),
    ("n N", "next / previous call cited by a finding"),
    ("space", "freeze the view (capture and analysis go on)"),
    ("w", "write the report"),
    ("Esc", "back to the call list"),
    ("? q", "this help; quit"),
    ("", ""),
    ("filter terms", "all must match; `!term` negates"),
    ("key=value", "field starts with value (case-insensitive)"),
    ("key~value", "field contains value; a bare word: any field"),
    ("keys", "client host ws product outcome status check"),
    ("", "version cmid epid frame"),
    ("e.g.", "client=10.77. ws~CLONE outcome=count check=KMS-01"),
];

fn help(area: Rect, buf: &mut Buffer) {
    let w = 72.min(area.width.saturating_sub(2));
    let h = (HELP.len() as u16 + 2).min(area.height.saturating_sub(2));
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    Clear.render(r, buf);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<14}"), Style::default().fg(Color::Cyan)),
                Span::raw(*v),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block("Help (any key closes)", true))
        .render(r, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_hides_nothing() {
        assert_eq!(esc("PC-01"), "PC-01");
        assert_eq!(esc("a\x1bb"), "a\\x1bb");
        assert_eq!(esc("a\u{2028}b\u{200b}"), "a\\u{2028}b\\u{200b}");
    }

    #[test]
    fn fit_and_wrap() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(cell("ab", 4), "ab  ");
        assert_eq!(cell("日本語です", 5), "日本…");
        assert_eq!(wrap("aaaa bbb cc", 8), vec!["aaaa bbb", "cc"]);
        assert_eq!(wrap("x abcdefghij", 8), vec!["x", "abcdefgh", "ij"]);
    }
}
