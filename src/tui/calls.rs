//! The call list: one row per KMS call (time, client, workstation, product, version,
//! count/required, outcome, finding mark), coloured by outcome. Only the visible window is drawn,
//! so a frame costs the same with ten calls or a million.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, Pane};
use super::detail::outcome_tone;
use super::view::{block, cell, esc, fit, selected_style, tone_style};
use crate::event::{Event, KmsCall, Severity};

/// Column widths: (time, client, version, count, outcome); workstation and product share the rest.
fn widths(total: usize) -> (usize, usize, usize, usize, usize, usize, usize) {
    let (time, client, ver, count, outcome) = if total >= 110 {
        (12, 21, 3, 7, 18)
    } else if total >= 90 {
        (8, 15, 3, 7, 12)
    } else {
        // 80 columns: the version as its major number only.
        (8, 15, 1, 6, 11)
    };
    // mark + 7 separating spaces
    let fixed = 1 + time + client + ver + count + outcome + 7;
    let rest = total.saturating_sub(fixed).max(10);
    let ws = (rest * 9 / 20).max(5);
    let product = rest.saturating_sub(ws).max(5);
    (time, client, ws, product, ver, count, outcome)
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
    let (w_time, w_client, w_ws, w_prod, w_ver, w_count, w_out) = widths(inner.width as usize);
    let head = format!(
        " {} {} {} {} {} {} {}",
        cell("TIME", w_time),
        cell("CLIENT", w_client),
        cell("WORKSTATION", w_ws),
        cell("PRODUCT", w_prod),
        cell(if w_ver < 3 { "V" } else { "VER" }, w_ver),
        cell(if wide { "COUNT/REQ" } else { "CNT/REQ" }, w_count + 1),
        "OUTCOME"
    );
    let mut lines = vec![Line::styled(
        head,
        Style::default()
            .fg(Color::Gray)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    )];
    let height = inner.height.saturating_sub(1) as usize;
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
    let mut cur = app.calls_cur;
    cur.fit(app.view.len(), height);
    for (pos, idx) in app.view.iter().enumerate().skip(cur.top).take(height) {
        let Some(row) = app.calls.get(*idx as usize) else {
            continue;
        };
        let call = row.call();
        let mut t = row_text(&row.ev, call, wide);
        if t.version.chars().count() > w_ver {
            t.version = t.version.split('.').next().unwrap_or("?").to_string();
        }
        if t.workstation.chars().count() > w_ws {
            // A cut FQDN reads worse than its host name: keep the first label.
            if let Some((host, _)) = t.workstation.split_once('.') {
                t.workstation = format!("{host}…");
            }
        }
        let mark = match app.severity_of(*idx as usize) {
            Some(s) => Span::styled("!", sev_style(s)),
            None => Span::raw(" "),
        };
        let ostyle = tone_style(outcome_tone(call.outcome));
        let mut outcome = short_outcome(call.outcome, w_out).to_string();
        if !call.integrity.failures.is_empty() && wide {
            outcome.push('*');
        }
        let mut line = Line::from(vec![
            mark,
            Span::raw(format!(
                "{} {} {} {} {} ",
                cell(&t.time, w_time),
                cell(&t.client, w_client),
                cell(&t.workstation, w_ws),
                cell(&t.product, w_prod),
                cell(&t.version, w_ver),
            )),
            Span::styled(format!("{:>w_count$} ", fit(&t.count, w_count)), ostyle),
            Span::styled(cell(&outcome, w_out), ostyle),
        ]);
        if pos == cur.sel {
            line = line.patch_style(selected_style(focused));
        }
        lines.push(line);
    }
    Paragraph::new(lines).render(inner, buf);
}
