//! The call list: one row per KMS call (time, client, workstation, product, version,
//! count/required, outcome, finding mark), coloured by outcome. Only the visible window is drawn,
//! so a frame costs the same with ten calls or a million.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use unicode_width::UnicodeWidthChar;

use super::app::{App, Pane};
use super::detail::outcome_tone;
use super::view::{block, cell, esc, fit, selected_style, tone_style};
use crate::event::{Event, KmsCall, Severity};

/// Column widths of the list.
struct Widths {
    time: usize,
    client: usize,
    ws: usize,
    product: usize,
    ver: usize,
    count: usize,
    outcome: usize,
}

fn text_width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// Widths for `total` columns, fitted to the rows on screen: the client column is as wide as the
/// widest address shown, and workstation and product share the rest by what they need.
fn widths(total: usize, rows: &[&RowText]) -> Widths {
    let (time, client_cap, ver, count, outcome) = if total >= 110 {
        (12, 21, 3, 7, 18)
    } else if total >= 90 {
        (8, 15, 3, 7, 12)
    } else {
        // 80 columns: the version as its major number only.
        (8, 15, 1, 6, 11)
    };
    let widest = |f: fn(&RowText) -> &str| rows.iter().map(|r| text_width(f(r))).max().unwrap_or(0);
    let client = widest(|r| &r.client).clamp(6, client_cap);
    // mark + 7 separating spaces
    let fixed = 1 + time + client + ver + count + outcome + 7;
    let rest = total.saturating_sub(fixed).max(10);
    let ws_need = widest(|r| &r.workstation).max(4);
    let prod_need = widest(|r| &r.product).max(7);
    // The host name (first label) of a workstation tells machines apart: keep it whole if we can.
    let label_need = rows
        .iter()
        .map(|r| match r.workstation.split_once('.') {
            Some((h, _)) => text_width(h) + 1,
            None => text_width(&r.workstation),
        })
        .max()
        .unwrap_or(0);
    let (ws, product) = if ws_need + prod_need <= rest {
        (ws_need, rest - ws_need)
    } else {
        // The workstation first (up to its need), the product at least 16 columns.
        let ws = ws_need
            .min(rest.saturating_sub(prod_need.min(16)))
            .max(label_need.min(rest.saturating_sub(8)));
        // Cut names show as their host name: no wider than the widest of those.
        let ws = if ws < ws_need {
            ws.min(label_need.max(4))
        } else {
            ws
        };
        (ws, rest - ws)
    };
    Widths {
        time,
        client,
        ws,
        product,
        ver,
        count,
        outcome,
    }
}

pub fn short_outcome(o: &str, w: usize) -> &str {
    if w >= 18 {
        return o;
    }
    match o {
        "count_insufficient" if w >= 11 => "count short",
        "count_insufficient" => "count low",
        "invalid_response" => "invalid resp",
        "no_response" => "no response",
        other => other,
    }
}

fn sev_style(s: Severity) -> Style {
    match s {
        Severity::Info => Style::default().fg(Color::LightBlue),
        Severity::Warning => Style::default().fg(Color::Yellow),
        Severity::Error | Severity::Critical => Style::default()
            .fg(Color::LightRed)
            .add_modifier(Modifier::BOLD),
    }
}

/// The columns of one call, already escaped.
pub struct RowText {
    pub time: String,
    pub client: String,
    pub workstation: String,
    pub product: String,
    pub version: String,
    pub count: String,
}

pub fn row_text(ev: &Event, call: &KmsCall, wide: bool) -> RowText {
    let ts = ev.ts.rfc3339_micros().to_string();
    let time = if wide {
        ts.get(11..23).unwrap_or(&ts).to_string()
    } else {
        ts.get(11..19).unwrap_or(&ts).to_string()
    };
    let client = match ev.client {
        Some(c) if wide => c.to_string(),
        Some(c) => c.ip.to_string(),
        None => String::new(),
    };
    let (workstation, product, required) = match &call.request {
        Some(r) => (
            esc(&r.workstation).into_owned(),
            esc(r.sku_name.or(r.kms_name).unwrap_or(&r.sku_id)).into_owned(),
            Some(r.required_count),
        ),
        None => (String::new(), "(request not captured)".to_string(), None),
    };
    let count = match (&call.response, required) {
        (Some(resp), Some(req)) => format!("{}/{}", resp.current_count, req),
        (Some(resp), None) => resp.current_count.to_string(),
        (None, Some(req)) => format!("-/{req}"),
        (None, None) => "-".to_string(),
    };
    let version = call
        .version
        .as_deref()
        .map(|v| esc(v).into_owned())
        .unwrap_or_else(|| "?".into());
    RowText {
        time,
        client,
        workstation,
        product,
        version,
        count,
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Calls;
    let total = app.calls.len();
    let title = if app.view.len() == total {
        format!("Calls {total}")
    } else {
        format!("Calls {} of {total}", app.view.len())
    };
    let blk = block(&title, focused);
    let inner = blk.inner(area);
    blk.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let wide = inner.width >= 110;
    let height = inner.height.saturating_sub(1) as usize;
    let mut cur = app.calls_cur;
    cur.fit(app.view.len(), height);
    // The rows on screen (only those: O(height) per frame whatever the number of calls).
    let rows: Vec<(usize, usize, RowText)> = app
        .view
        .iter()
        .enumerate()
        .skip(cur.top)
        .take(height)
        .filter_map(|(pos, idx)| {
            let row = app.calls.get(*idx as usize)?;
            Some((pos, *idx as usize, row_text(&row.ev, row.call(), wide)))
        })
        .collect();
    let texts: Vec<&RowText> = rows.iter().map(|r| &r.2).collect();
    let w = widths(inner.width as usize, &texts);
    let head = format!(
        " {} {} {} {} {} {} {}",
        cell("TIME", w.time),
        cell("CLIENT", w.client),
        cell("WORKSTATION", w.ws),
        cell("PRODUCT", w.product),
        cell(if w.ver < 3 { "V" } else { "VER" }, w.ver),
        cell(if wide { "COUNT/REQ" } else { "CNT/REQ" }, w.count + 1),
        "OUTCOME"
    );
    let mut lines = vec![Line::styled(
        head,
        Style::default()
            .fg(Color::Gray)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )];
    if app.view.is_empty() {
        let msg = if total == 0 {
            if app.status.done {
                "no KMS calls in this capture"
            } else {
                "waiting for KMS calls…"
            }
        } else {
            "no call matches the filter"
        };
        lines.push(Line::styled(msg, Style::default().fg(Color::DarkGray)));
    }
    for (pos, idx, mut t) in rows {
        let call = app.calls[idx].call();
        if t.version.chars().count() > w.ver {
            t.version = t.version.split('.').next().unwrap_or("?").to_string();
        }
        if text_width(&t.workstation) > w.ws {
            // A cut FQDN reads worse than its host name: keep the first label.
            if let Some((host, _)) = t.workstation.split_once('.') {
                t.workstation = format!("{host}…");
            }
        }
        let mark = match app.severity_of(idx) {
            Some(s) => Span::styled("!", sev_style(s)),
            None => Span::raw(" "),
        };
        let ostyle = tone_style(outcome_tone(call.outcome));
        let mut outcome = short_outcome(call.outcome, w.outcome).to_string();
        if !call.integrity.failures.is_empty() && wide {
            outcome.push('*');
        }
        let w_count = w.count;
        let mut line = Line::from(vec![
            mark,
            Span::raw(format!(
                "{} {} {} {} {} ",
                cell(&t.time, w.time),
                cell(&t.client, w.client),
                cell(&t.workstation, w.ws),
                cell(&t.product, w.product),
                cell(&t.version, w.ver),
            )),
            Span::styled(format!("{:>w_count$} ", fit(&t.count, w_count)), ostyle),
            Span::styled(cell(&outcome, w.outcome), ostyle),
        ]);
        if pos == cur.sel {
            line = line.patch_style(selected_style(focused));
        }
        lines.push(line);
    }
    Paragraph::new(lines).render(inner, buf);
}
