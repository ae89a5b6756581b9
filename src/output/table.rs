//! The readable default output: a table of KMS calls fitted to the terminal width, then per source a
//! summary of the hosts' counts per product group, anomalies and findings, and last the verdict (the
//! same sentences the Markdown report opens with). Wire strings are escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use super::Sink;
use super::escape::escape;
use super::verdict::{Facts, verdict};
use crate::event::{Body, Endpoint, Event, KmsCall, Severity, Summary};

/// Text table sink.
pub struct TableSink<W: Write> {
    out: W,
    width: usize,
    header_done: bool,
    anomalies: BTreeMap<&'static str, u64>,
    findings: Vec<(Severity, String, String, String)>,
    dns: Vec<String>,
    rpc: Vec<String>,
    /// Lines not kept beyond [`MAX_LISTED_LINES`] (DNS, connections and RPC).
    dns_more: u64,
    rpc_more: u64,
    /// What the verdict is made from, for the current source.
    facts: Facts,
    /// Reused row buffers, and the `HH:MM:SS` of the last row's second.
    line: String,
    cell: String,
    time_secs: Option<i64>,
    time_text: String,
}

/// Fixed column widths: time, client, server, version, count, outcome (plus separators).
const W_TIME: usize = 8;
const W_EP: usize = 21;
const W_VER: usize = 3;
const W_COUNT: usize = 7;
const W_OUTCOME: usize = 20;

/// Lines listed per source under "Connections and RPC:" and under "DNS:"; further ones are counted
/// in one closing line (the JSON Lines log and the report have them all or their tallies). Keeps
/// the table readable and its memory bounded on a flood (200,000 unanswered SYNs to port 1688
/// would otherwise be 200,000 lines held until the summary).
pub const MAX_LISTED_LINES: usize = 200;

impl<W: Write> TableSink<W> {
    /// `width` is the terminal width in columns (at least 80 is used).
    pub fn new(out: W, width: usize) -> Self {
        TableSink {
            out,
            width: width.max(80),
            header_done: false,
            anomalies: BTreeMap::new(),
            findings: Vec::new(),
            dns: Vec::new(),
            rpc: Vec::new(),
            dns_more: 0,
            rpc_more: 0,
            facts: Facts::new(),
            line: String::new(),
            cell: String::new(),
            time_secs: None,
            time_text: String::new(),
        }
    }

    /// The server column is dropped on narrow terminals (the summary lists the hosts).
    fn show_server(&self) -> bool {
        self.width >= 110
    }

    fn flexible(&self) -> (usize, usize) {
        let eps = if self.show_server() {
            2 * W_EP + 2
        } else {
            W_EP + 1
        };
        let fixed = W_TIME + eps + W_VER + W_COUNT + W_OUTCOME + 6;
        let rest = self.width.saturating_sub(fixed).max(20);
        let product = rest * 11 / 20;
        (product, rest - product)
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        let (wp, ww) = self.flexible();
        let server = if self.show_server() {
            format!("{:<W_EP$} ", "SERVER")
        } else {
            String::new()
        };
        let line = format!(
            "{:<W_TIME$} {:<W_EP$} {server}{:<W_VER$} {:<wp$} {:<ww$} {:>W_COUNT$} {}",
            "TIME", "CLIENT", "VER", "PRODUCT", "WORKSTATION", "COUNT", "OUTCOME"
        );
        writeln!(self.out, "{}", line.trim_end())
    }

    fn kms_row(&mut self, ev: &Event, call: &KmsCall) -> io::Result<()> {
        self.header()?;
        let (wp, ww) = self.flexible();
        // One row per call: built in reused buffers (no allocation per row once they have grown).
        let mut line = std::mem::take(&mut self.line);
        let mut cell = std::mem::take(&mut self.cell);
        line.clear();
        if self.time_secs != Some(ev.ts.secs()) {
            self.time_secs = Some(ev.ts.secs());
            self.time_text = short_time(ev);
        }
        push_cell(&mut line, &self.time_text, W_TIME, Align::Left);
        line.push(' ');
        endpoint_text(&mut cell, ev.client);
        push_cell(&mut line, &cell, W_EP, Align::Left);
        line.push(' ');
        if self.show_server() {
            endpoint_text(&mut cell, ev.server);
            push_cell(&mut line, &cell, W_EP, Align::Left);
            line.push(' ');
        }
        let ver = call
            .version
            .as_deref()
            .unwrap_or("?")
            .trim_end_matches(".0");
        push_cell(&mut line, ver, ver.chars().count().max(W_VER), Align::Left);
        line.push(' ');
        let required = match &call.request {
            Some(r) => {
                let product = r.sku_name.or(r.kms_name).unwrap_or(r.sku_id.as_str());
                push_cell(&mut line, product, wp, Align::Left);
                line.push(' ');
                push_cell(&mut line, &escape(&r.workstation), ww, Align::Left);
                Some(r.required_count)
            }
            None => {
                push_cell(&mut line, "(request not captured)", wp, Align::Left);
                line.push(' ');
                push_cell(&mut line, "", ww, Align::Left);
                None
            }
        };
        line.push(' ');
        cell.clear();
        match (&call.response, required) {
            (Some(resp), Some(req)) => {
                let _ = write!(cell, "{}/{}", resp.current_count, req);
            }
            (None, Some(req)) => {
                let _ = write!(cell, "-/{req}");
            }
            _ => cell.push('-'),
        }
        push_cell(&mut line, &cell, W_COUNT, Align::Right);
        line.push(' ');
        line.push_str(match call.outcome {
            "count_insufficient" => "COUNT LOW",
            "invalid_response" => "INVALID",
            "no_response" => "no reply",
            other => other,
        });
        if let Some(h) = &call.hresult {
            line.push(' ');
            line.push_str(&h.code);
        }
        if !call.integrity.failures.is_empty() {
            line.push_str(" [");
            for (i, f) in call.integrity.failures.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(f);
            }
            line.push(']');
        }
        let trimmed = line.trim_end().len();
        line.truncate(trimmed);
        let width = self.width;
        let r = match line.char_indices().nth(width) {
            // Longer than the terminal: cut to `width` characters, the last one marking the cut.
            Some(_) => {
                let cut = line
                    .char_indices()
                    .nth(width.saturating_sub(1))
                    .map_or(line.len(), |(i, _)| i);
                line.truncate(cut);
                line.push('~');
                writeln!(self.out, "{line}")
            }
            None => {
                line.push('\n');
                self.out.write_all(line.as_bytes())
            }
        };
        self.line = line;
        self.cell = cell;
        r
    }

    /// A periodic live summary (`last` false): one line of running counters; the lists stay
    /// gathered for the final summary.
    fn progress(&mut self, ev: &Event, s: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "-- {} {}: {} packets, {} KMS calls, {} DNS queries, {} anomalies; drops: {} kernel, {} interface",
            short_time(ev),
            escape(&ev.source),
            s.packets,
            s.kms_calls,
            s.dns_queries,
            s.anomalies,
            s.dropped.unwrap_or(0),
            s.if_dropped.unwrap_or(0)
        )
    }

    fn summary(&mut self, ev: &Event, s: &Summary) -> io::Result<()> {
        if !s.last {
            return self.progress(ev, s);
        }
        // The next source gets its own header.
        self.header_done = false;
        let out = &mut self.out;
        writeln!(out)?;
        let by_status: Vec<String> = s
            .kms_by_status
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(
            out,
            "== {}: {} to {}, {} packets, {} bytes, {:.1} s; {} KMS calls{}; {} DNS queries; {} anomalies",
            escape(&ev.source),
            s.first_ts.as_deref().unwrap_or("-"),
            ev.ts.rfc3339_secs(),
            s.packets,
            s.bytes,
            s.duration_s,
            s.kms_calls,
            if by_status.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_status.join(", "))
            },
            s.dns_queries,
            s.anomalies
        )?;
        if let (Some(d), Some(i)) = (s.dropped, s.if_dropped) {
            writeln!(
                out,
                "   capture drops: {d} by the kernel, {i} by the interface"
            )?;
        }
        if !s.hosts.is_empty() {
            writeln!(
                out,
                "KMS hosts (counts per product group, as `slmgr /dlv` would show them on the host):"
            )?;
            for h in &s.hosts {
                let epids: Vec<String> = h.epids.iter().map(|e| escape(e).into_owned()).collect();
                writeln!(
                    out,
                    "  {}{}  ePID {}",
                    crate::event::Endpoint {
                        ip: h.ip,
                        port: h.port
                    },
                    h.hwid
                        .as_ref()
                        .map(|w| format!("  HwId {w}"))
                        .unwrap_or_default(),
                    if epids.is_empty() {
                        "-".to_string()
                    } else {
                        epids.join(", ")
                    }
                )?;
                for a in &h.apps {
                    let count = match (a.last_count, a.max_count) {
                        (Some(l), Some(m)) if l != m => format!("count {l} (max {m})"),
                        (Some(l), _) => format!("count {l}"),
                        _ => "no count".to_string(),
                    };
                    let verdict = match a.last_count {
                        Some(c) if c >= a.required_count => "meets threshold",
                        Some(_) => "BELOW threshold",
                        None => "",
                    };
                    let statuses: Vec<String> = a
                        .by_license_status
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    writeln!(
                        out,
                        "    {:<34} {} / {} required {}; {} requests, {} refused, {} distinct CMIDs; {}",
                        a.kms_name
                            .map(str::to_string)
                            .unwrap_or_else(|| a.kms_id.clone()),
                        count,
                        a.required_count,
                        verdict,
                        a.requests,
                        a.refused,
                        a.distinct_cmids,
                        statuses.join(", ")
                    )?;
                }
            }
        }
        if !self.rpc.is_empty() {
            writeln!(out, "Connections and RPC:")?;
            for l in self.rpc.drain(..) {
                writeln!(out, "  {l}")?;
            }
            if self.rpc_more > 0 {
                writeln!(out, "  ... and {} more", std::mem::take(&mut self.rpc_more))?;
            }
        }
        if !self.dns.is_empty() {
            writeln!(out, "DNS:")?;
            for l in self.dns.drain(..) {
                writeln!(out, "  {l}")?;
            }
            if self.dns_more > 0 {
                writeln!(out, "  ... and {} more", std::mem::take(&mut self.dns_more))?;
            }
        }
        if !self.anomalies.is_empty() {
            let list: Vec<String> = self
                .anomalies
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect();
            writeln!(out, "Anomalies: {}", list.join(", "))?;
            self.anomalies.clear();
        }
        if !self.findings.is_empty() {
            self.findings.sort_by_key(|f| std::cmp::Reverse(f.0));
            writeln!(out, "Findings:")?;
            for (sev, check, msg, fix) in self.findings.drain(..) {
                writeln!(
                    out,
                    "  [{}] {}: {}",
                    sev.as_str().to_uppercase(),
                    check,
                    msg
                )?;
                writeln!(out, "      fix: {fix}")?;
            }
        }
        if s.last {
            let v = verdict(&self.facts, &|w| escape(w).into_owned());
            writeln!(out, "Verdict: {}", v.text())?;
            self.facts = Facts::new();
        }
        Ok(())
    }

    /// Appends the text another table sink wrote for whole sources, each ended by its last summary
    /// (`read -j`: an input analysed on another thread). Nothing of a source outlives its summary
    /// here, so the text is what this sink would have written for the same events.
    pub fn append(&mut self, text: &mut impl io::Read) -> io::Result<()> {
        io::copy(text, &mut self.out).map(drop)
    }

    /// Gives back the writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for TableSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.facts.observe(ev);
        match &ev.body {
            Body::Kms(call) => self.kms_row(ev, call),
            Body::Anomaly(a) => {
                *self.anomalies.entry(a.kind).or_insert(0) += 1;
                Ok(())
            }
            Body::Finding(f) => {
                self.findings.push((
                    f.severity,
                    f.check.to_string(),
                    escape(&f.message).into_owned(),
                    escape(&f.fix).into_owned(),
                ));
                Ok(())
            }
            Body::Dns(_) if self.dns.len() >= MAX_LISTED_LINES => {
                self.dns_more += 1;
                Ok(())
            }
            Body::Dns(d) => {
                let answers: Vec<String> = d
                    .answers
                    .iter()
                    .map(|r| match (&r.target, r.address) {
                        (Some(t), _) => format!(
                            "{} {} {} {}:{}",
                            r.rtype,
                            r.priority.unwrap_or(0),
                            r.weight.unwrap_or(0),
                            escape(t),
                            r.port.unwrap_or(0)
                        ),
                        (None, Some(a)) => format!("{} {a}", r.rtype),
                        _ => r.rtype.clone(),
                    })
                    .collect();
                self.dns.push(format!(
                    "{} {} {} {} -> {} {}",
                    short_time(ev),
                    ev.client.map(|c| c.to_string()).unwrap_or_default(),
                    d.qtype.as_deref().unwrap_or("?"),
                    escape(d.query.as_deref().unwrap_or("?")),
                    d.rcode.as_deref().unwrap_or(d.status),
                    answers.join("; ")
                ));
                Ok(())
            }
            Body::Rpc(r) => {
                if (r.pdu == "connect" || r.pdu == "fault" || r.pdu == "bind_nak")
                    && self.rpc.len() >= MAX_LISTED_LINES
                {
                    self.rpc_more += 1;
                } else if r.pdu == "connect" || r.pdu == "fault" || r.pdu == "bind_nak" {
                    self.rpc.push(format!(
                        "{} {} -> {} {} {}{}",
                        short_time(ev),
                        ev.client.map(|c| c.to_string()).unwrap_or_default(),
                        ev.server.map(|c| c.to_string()).unwrap_or_default(),
                        r.pdu,
                        r.result.unwrap_or(""),
                        r.status
                            .as_ref()
                            .map(|s| format!(" {} {}", s.code, s.name.unwrap_or("")))
                            .unwrap_or_default()
                    ));
                }
                Ok(())
            }
            Body::Summary(s) => self.summary(ev, s),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `HH:MM:SS` of the event (the date is in the source's summary line).
fn short_time(ev: &Event) -> String {
    let s = ev.ts.rfc3339_micros().to_string();
    s.get(11..19).map(str::to_string).unwrap_or(s)
}

/// `out` = the endpoint's `Display` (`a.b.c.d:port`, `[v6]:port`), or empty; IPv4 without
/// `core::fmt` (one per row and column).
fn endpoint_text(out: &mut String, ep: Option<Endpoint>) {
    out.clear();
    let Some(ep) = ep else {
        return;
    };
    match ep.ip {
        IpAddr::V4(a) => {
            let mut b = itoa::Buffer::new();
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(octet));
            }
            out.push(':');
            out.push_str(b.format(ep.port));
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ep}");
        }
    }
}

enum Align {
    Left,
    Right,
}

/// Appends `s` padded with spaces to `w` characters; a longer `s` is cut to `w` characters, the
/// last one a `~` marking the cut.
fn push_cell(line: &mut String, s: &str, w: usize, align: Align) {
    let n = s.chars().count();
    if n > w {
        let cut = s
            .char_indices()
            .nth(w.saturating_sub(1))
            .map_or(s.len(), |(i, _)| i);
        line.push_str(&s[..cut]);
        line.push('~');
        return;
    }
    let pad = w - n;
    if matches!(align, Align::Right) {
        line.extend(std::iter::repeat_n(' ', pad));
    }
    line.push_str(s);
    if matches!(align, Align::Left) {
        line.extend(std::iter::repeat_n(' ', pad));
    }
}

#[cfg(test)]
mod tests {
    use super::{Align, push_cell};

    /// The `format!("{:<w$}", fit(s, w))` the row was built with before.
    fn reference(s: &str, w: usize, right: bool) -> String {
        let fitted = if s.chars().count() <= w {
            s.to_string()
        } else {
            let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
            t.push('~');
            t
        };
        if right {
            format!("{fitted:>w$}")
        } else {
            format!("{fitted:<w$}")
        }
    }

    #[test]
    fn endpoints_as_display() {
        use crate::event::Endpoint;
        let mut out = String::from("stale");
        for (ip, port) in [
            ("0.0.0.0", 0),
            ("198.51.100.13", 1688),
            ("255.255.255.255", 65535),
            ("10.0.0.1", 9),
            ("2001:db8::1", 1688),
            ("::ffff:192.0.2.1", 80),
        ] {
            let ep = Endpoint {
                ip: ip.parse().unwrap(),
                port,
            };
            super::endpoint_text(&mut out, Some(ep));
            assert_eq!(out, ep.to_string());
        }
        super::endpoint_text(&mut out, None);
        assert_eq!(out, "");
    }

    #[test]
    fn cells_fit_and_pad_by_characters() {
        for s in [
            "",
            "a",
            "abc",
            "ünïcödé",
            "日本語テキスト",
            "x~y",
            "ws-000001.corp.example",
        ] {
            for w in 0..12 {
                for right in [false, true] {
                    let mut line = String::from("|");
                    let align = if right { Align::Right } else { Align::Left };
                    push_cell(&mut line, s, w, align);
                    assert_eq!(line[1..], reference(s, w, right), "{s:?} {w} {right}");
                }
            }
        }
    }
}
