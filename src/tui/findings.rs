//! The findings pane: severity, check, message and fix of each diagnosis. The selected finding is
//! shown in full with the frames it cites; Enter selects the first cited call, `n`/`N` walk them.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, Pane};
use super::view::{block, esc, fit, selected_style, wrap};
use crate::event::{Body, Finding, Severity};

pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Info => Style::default().fg(Color::LightBlue),
        Severity::Warning => Style::default().fg(Color::Yellow),
        Severity::Error => Style::default().fg(Color::LightRed),
        Severity::Critical => Style::default()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
    }
}

fn sev_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO ",
        Severity::Warning => "WARN ",
        Severity::Error => "ERROR",
        Severity::Critical => "CRIT ",
    }
}

/// The lines of one finding: one when collapsed; message, fix and frames when selected.
fn finding_lines(f: &Finding, selected: bool, focused: bool, width: usize) -> Vec<Line<'static>> {
    let head = format!(" {} ", f.check);
    let count = if f.count > 1 {
        format!(" ×{}", f.count)
    } else {
        String::new()
    };
    let message = esc(&f.message).into_owned();
    if !selected {
        let room = width.saturating_sub(6 + head.len() + count.len());
        return vec![Line::from(vec![
            Span::styled(sev_label(f.severity), severity_style(f.severity)),
            Span::styled(head, Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(fit(&message, room)),
            Span::styled(count, Style::default().fg(Color::DarkGray)),
        ])];
    }
    let mut out = vec![
        Line::from(vec![
            Span::styled(sev_label(f.severity), severity_style(f.severity)),
            Span::styled(head, Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(esc(f.name).into_owned()),
            Span::styled(count, Style::default().fg(Color::DarkGray)),
        ])
        .patch_style(selected_style(focused)),
    ];
    let w = width.saturating_sub(2);
    out.extend(
        wrap(&message, w)
            .into_iter()
            .map(|l| Line::raw(format!("  {l}"))),
    );
    let fix = esc(&f.fix).into_owned();
    for l in wrap(&format!("fix: {fix}"), w) {
        out.push(Line::styled(
            format!("  {l}"),
            Style::default().fg(Color::Green),
        ));
    }
    let mut tail = String::new();
    if let Some(p) = f.predicts {
        tail.push_str(&format!("predicts {}  ", esc(p)));
    }
    if !f.frames.is_empty() {
        let frames: Vec<String> = f.frames.iter().take(8).map(|f| f.to_string()).collect();
        tail.push_str(&format!(
            "frames {}{}  (Enter: go to call)",
            frames.join(", "),
            if f.frames.len() > 8 { ", …" } else { "" }
        ));
    }
    if !tail.is_empty() {
        out.extend(
            wrap(&tail, w)
                .into_iter()
                .map(|l| Line::styled(format!("  {l}"), Style::default().fg(Color::DarkGray))),
        );
    }
    out
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Findings;
    let blk = block(&format!("Findings {}", app.findings.len()), focused);
    let inner = blk.inner(area);
    blk.render(area, buf);
    let height = inner.height as usize;
    if height == 0 {
        return;
    }
    if app.findings.is_empty() {
        let msg = if app.status.done {
            "no findings"
        } else {
            "no findings yet (checks run at the end of a file)"
        };
        Paragraph::new(Line::styled(msg, Style::default().fg(Color::DarkGray))).render(inner, buf);
        return;
    }
    let width = inner.width as usize;
    let mut cur = app.findings_cur;
    cur.fit(app.findings.len(), height);
    let selected_lines = match app.findings.get(cur.sel).map(|e| &e.body) {
        Some(Body::Finding(f)) => finding_lines(f, true, focused, width).len(),
        _ => 1,
    };
    // The selected finding takes several lines: start late enough for all of them to show.
    let mut top = cur.top;
    while top < cur.sel && (cur.sel - top) + selected_lines > height {
        top += 1;
    }
    let mut lines: Vec<Line> = Vec::new();
    for (i, ev) in app.findings.iter().enumerate().skip(top) {
        if lines.len() >= height {
            break;
        }
        if let Body::Finding(f) = &ev.body {
            lines.extend(finding_lines(f, i == cur.sel, focused, width));
        }
    }
    lines.truncate(height);
    Paragraph::new(lines).render(inner, buf);
}
