//! The hosts pane: per KMS host and product group, the count the host returned against the
//! activation threshold as a gauge, and the count over the capture as a sparkline.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, HostRow, Pane};
use super::view::{block, esc, fit, selected_style};

/// Widest sparkline drawn (the last this many count samples).
const MAX_SPARK: usize = 32;

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A text gauge of `count` against `required`, `w` cells wide.
pub fn gauge(count: u32, required: u32, w: usize) -> String {
    let filled = if required == 0 {
        w
    } else {
        ((count.min(required) as usize) * w).div_ceil(required as usize)
    };
    let mut s = String::with_capacity(w * 3);
    for i in 0..w {
        s.push(if i < filled { '█' } else { '░' });
    }
    s
}

/// A sparkline of the last `w` values, scaled to their maximum.
pub fn sparkline(values: &[u64], w: usize) -> String {
    let tail = &values[values.len().saturating_sub(w)..];
    let max = tail.iter().copied().max().unwrap_or(0).max(1);
    tail.iter()
        .map(|v| SPARK[((*v * 7) / max).min(7) as usize])
        .collect()
}

/// The two lines of one host row.
fn row_lines(h: &HostRow, width: usize) -> [Line<'static>; 2] {
    let server = h
        .server
        .map(|s| s.to_string())
        .unwrap_or_else(|| "?".into());
    let group = esc(h.kms_name.or(h.app_name).unwrap_or(if h.kms_id.is_empty() {
        "(product group unknown)"
    } else {
        &h.kms_id
    }))
    .into_owned();
    let epid = h
        .epid
        .as_deref()
        .map(|e| format!("  ePID {}", esc(e)))
        .unwrap_or_default();
    let first = Line::from(vec![
        Span::styled(
            server.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw("  "),
        Span::raw(fit(
            &format!("{group}{epid}"),
            width.saturating_sub(server.len() + 2),
        )),
    ]);
    let meets = h.last_count.is_some_and(|c| c >= h.required);
    let colour = match h.last_count {
        None => Color::DarkGray,
        Some(_) if meets => Color::Green,
        Some(_) => Color::Yellow,
    };
    let count = match h.last_count {
        Some(c) => format!(" count {c}/{}", h.required),
        None => format!(" count -/{}", h.required),
    };
    let verdict = match h.last_count {
        Some(_) if meets => " meets threshold ",
        Some(_) => " BELOW threshold ",
        None => " no count seen ",
    };
    let cmids = h.distinct_cmids.unwrap_or(h.cmids.len() as u64);
    let stats = format!(
        " {} req, {} refused, {} CMIDs",
        h.requests, h.refused, cmids
    );
    let gw = (width / 6).clamp(5, 20);
    let used = 2 + gw + count.len() + verdict.len();
    let spark_w = width.saturating_sub(used + 12).min(MAX_SPARK);
    let spark = sparkline(&h.history, spark_w);
    let tail = width.saturating_sub(used + spark.chars().count());
    let second = Line::from(vec![
        Span::raw("  "),
        Span::styled(
            gauge(h.last_count.unwrap_or(0), h.required, gw),
            Style::default().fg(colour),
        ),
        Span::styled(
            count,
            Style::default().fg(colour).add_modifier(Modifier::BOLD),
        ),
        Span::styled(verdict, Style::default().fg(colour)),
        Span::styled(spark, Style::default().fg(Color::Cyan)),
        Span::styled(fit(&stats, tail), Style::default().fg(Color::Gray)),
    ]);
    [first, second]
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Pane::Hosts;
    let blk = block(&format!("KMS hosts {}", app.hosts.len()), focused);
    let inner = blk.inner(area);
    blk.render(area, buf);
    let rows = (inner.height / 2) as usize;
    if inner.height == 0 {
        return;
    }
    if app.hosts.is_empty() {
        Paragraph::new(Line::styled(
            "no KMS host seen",
            Style::default().fg(Color::DarkGray),
        ))
        .render(inner, buf);
        return;
    }
    let mut cur = app.hosts_cur;
    cur.fit(app.hosts.len(), rows.max(1));
    let mut lines = Vec::new();
    for (i, h) in app.hosts.iter().enumerate().skip(cur.top).take(rows.max(1)) {
        let [a, b] = row_lines(h, inner.width as usize);
        if i == cur.sel && focused {
            lines.push(a.patch_style(selected_style(true)));
        } else {
            lines.push(a);
        }
        lines.push(b);
    }
    Paragraph::new(lines).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_and_sparkline() {
        assert_eq!(gauge(0, 25, 5), "░░░░░");
        assert_eq!(gauge(12, 25, 5), "███░░");
        assert_eq!(gauge(30, 25, 5), "█████");
        assert_eq!(gauge(3, 0, 3), "███");
        assert_eq!(sparkline(&[0, 7, 14], 10), "▁▄█");
        assert_eq!(sparkline(&[1, 2, 3, 4], 2), "▆█");
        assert_eq!(sparkline(&[], 4), "");
    }
}
