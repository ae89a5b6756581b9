//! The DNS pane: the queries seen (the `_vlmcs._tcp` SRV lookups among them) with their answers and
//! state: answered, NXDOMAIN, unanswered, or an SRV record pointing away from 1688; and the
//! connections that failed (refused, no answer), which is what a wrong SRV record leads to.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, Pane};
use super::view::{block, esc, fit, selected_style};
use crate::event::{Body, DnsExchange, DnsRecord, Event, RpcInfo};

/// State of an exchange, and how it looks.
fn state(d: &DnsExchange) -> (String, Color) {
    match (d.status, d.rcode.as_deref()) {
        ("unanswered", _) => ("unanswered".into(), Color::DarkGray),
        (_, Some("NOERROR")) if d.answers.is_empty() => ("no answer".into(), Color::Yellow),
        (_, Some("NOERROR")) => {
            let off_port = d
                .answers
                .iter()
                .any(|r| r.rtype == "SRV" && r.port.is_some_and(|p| p != 1688));
            if off_port {
                ("port ≠ 1688".into(), Color::Yellow)
            } else {
                ("ok".into(), Color::Green)
            }
        }
        (_, Some(rc)) => (esc(rc).into_owned(), Color::LightRed),
        (status, None) => (status.to_string(), Color::DarkGray),
    }
}

fn record(r: &DnsRecord) -> String {
    match (&r.target, r.address, &r.data) {
        (Some(t), _, _) => format!(
            "{} {} {} {}:{}",
            esc(&r.rtype),
            r.priority.unwrap_or(0),
            r.weight.unwrap_or(0),
            esc(t),
            r.port.unwrap_or(0)
        ),
        (None, Some(a), _) => format!("{} {a}", esc(&r.rtype)),
        (None, None, Some(d)) => format!("{} {}", esc(&r.rtype), esc(d)),
        _ => esc(&r.rtype).into_owned(),
    }
}

fn lines_of(ev: &Event, d: &DnsExchange, width: usize) -> Line<'static> {
    let (st, colour) = state(d);
    let ts = ev.ts.rfc3339_micros().to_string();
    let time = ts.get(11..19).unwrap_or("").to_string();
    let q = format!(
        "{} {}",
        esc(d.qtype.as_deref().unwrap_or("?")),
        esc(d.query.as_deref().unwrap_or("?"))
    );
    let answers: Vec<String> = d.answers.iter().map(record).collect();
    let rest = width.saturating_sub(time.len() + 1 + st.chars().count() + 2);
    let body = if answers.is_empty() {
        q
    } else {
        format!("{q} → {}", answers.join("; "))
    };
    Line::from(vec![
        Span::styled(time, Style::default().fg(Color::Gray)),
        Span::raw(" "),
        Span::styled(st, Style::default().fg(colour).add_modifier(Modifier::BOLD)),
        Span::raw("  "),
        Span::raw(fit(&body, rest)),
    ])
}

/// A failed connection: `refused  TCP 10.77.0.20 → 10.77.0.12:1688 (1 SYN)`.
fn connect_line(ev: &Event, r: &RpcInfo, width: usize) -> Line<'static> {
    let ts = ev.ts.rfc3339_micros().to_string();
    let time = ts.get(11..19).unwrap_or("").to_string();
    let st = esc(r.result.unwrap_or("failed")).into_owned();
    let body = format!(
        "TCP {} → {}{}",
        ev.client.map(|c| c.ip.to_string()).unwrap_or_default(),
        ev.server.map(|s| s.to_string()).unwrap_or_default(),
        r.syn_count
            .map(|n| format!(" ({n} SYN{})", if n == 1 { "" } else { "s" }))
            .unwrap_or_default()
    );
    let rest = width.saturating_sub(time.len() + 1 + st.chars().count() + 2);
    Line::from(vec![
        Span::styled(time, Style::default().fg(Color::Gray)),
        Span::raw(" "),
        Span::styled(
            st,
            Style::default()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        ),
        Span::raw("  "),
        Span::raw(fit(&body, rest)),
    ])
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Dns;
    let blk = block(
        &format!(
            "DNS and connections {} ({} SRV)",
            app.dns.len(),
            app.dns_srv
        ),
        focused,
    );
    let inner = blk.inner(area);
    blk.render(area, buf);
    let height = inner.height as usize;
    if height == 0 {
        return;
    }
    if app.dns.is_empty() {
        Paragraph::new(Line::styled(
            "no DNS seen, no failed connection",
            Style::default().fg(Color::DarkGray),
        ))
        .render(inner, buf);
        return;
    }
    let mut cur = app.dns_cur;
    cur.fit(app.dns.len(), height);
    let lines: Vec<Line> = app
        .dns
        .iter()
        .enumerate()
        .skip(cur.top)
        .take(height)
        .filter_map(|(i, ev)| {
            let l = match &ev.body {
                Body::Dns(d) => lines_of(ev, d, inner.width as usize),
                Body::Rpc(r) => connect_line(ev, r, inner.width as usize),
                _ => return None,
            };
            Some(if i == cur.sel && focused {
                l.patch_style(selected_style(true))
            } else {
                l
            })
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}
