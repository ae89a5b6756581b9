//! The readable default output: a table of KMS calls fitted to the terminal width, then per source a
//! summary of the hosts' counts per product group, anomalies and findings, and last the verdict (the
//! same sentences the Markdown report opens with). Wire strings are escaped.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;

use super::Sink;
use super::escape::{escape, is_plain};
use super::json::copy_small;
use super::text;
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
    /// Reused row buffers (bytes of UTF-8 text: every piece appended is a `str`).
    line: Vec<u8>,
    cell: Vec<u8>,
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
            line: Vec::new(),
            cell: Vec::new(),
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
        // Cells of printable ASCII (almost all) take the byte paths: their width is their length.
        let mut line = std::mem::take(&mut self.line);
        let mut cell = std::mem::take(&mut self.cell);
        line.clear();
        // `HH:MM:SS` is the column's width.
        line.extend_from_slice(&ev.ts.hms());
        line.push(b' ');
        push_endpoint(&mut line, ev.client);
        line.push(b' ');
        if self.show_server() {
            push_endpoint(&mut line, ev.server);
            line.push(b' ');
        }
        let mut ver = call.version.as_deref().unwrap_or("?");
        // `trim_end_matches(".0")` without the substring searcher.
        while let Some(v) = ver.strip_suffix(".0") {
            ver = v;
        }
        let w_ver = if ver.is_ascii() {
            ver.len()
        } else {
            ver.chars().count()
        };
        push_cell(&mut line, ver, w_ver.max(W_VER), Align::Left);
        line.push(b' ');
        let required = match &call.request {
            Some(r) => {
                let product = r.sku_name.or(r.kms_name).unwrap_or(r.sku_id.as_str());
                push_cell(&mut line, product, wp, Align::Left);
                line.push(b' ');
                // Wire text: escaped unless it is plain ASCII (its own escape).
                let ws: &str = &r.workstation;
                if is_plain(ws) {
                    push_ascii_cell(&mut line, ws.as_bytes(), ww, Align::Left);
                } else {
                    push_cell(&mut line, &escape(ws), ww, Align::Left);
                }
                Some(r.required_count)
            }
            None => {
                push_cell(&mut line, "(request not captured)", wp, Align::Left);
                line.push(b' ');
                push_ascii_cell(&mut line, b"", ww, Align::Left);
                None
            }
        };
        line.push(b' ');
        cell.clear();
        match (&call.response, required) {
            (Some(resp), Some(req)) => {
                text::push_u64(&mut cell, u64::from(resp.current_count));
                cell.push(b'/');
                text::push_u64(&mut cell, u64::from(req));
            }
            (None, Some(req)) => {
                cell.extend_from_slice(b"-/");
                text::push_u64(&mut cell, u64::from(req));
            }
            _ => cell.push(b'-'),
        }
        push_ascii_cell(&mut line, &cell, W_COUNT, Align::Right);
        line.push(b' ');
        line.extend_from_slice(
            match call.outcome {
                "count_insufficient" => "COUNT LOW",
                "invalid_response" => "INVALID",
                "no_response" => "no reply",
                other => other,
            }
            .as_bytes(),
        );
        if let Some(h) = &call.hresult {
            line.push(b' ');
            line.extend_from_slice(h.code.as_bytes());
        }
        if !call.integrity.failures.is_empty() {
            line.extend_from_slice(b" [");
            for (i, f) in call.integrity.failures.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(f.as_bytes());
            }
            line.push(b']');
        }
        fit_line(&mut line, self.width);
        line.push(b'\n');
        let r = self.out.write_all(&line);
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
    String::from_utf8_lossy(&ev.ts.hms()).into_owned()
}

/// Appends the endpoint's `Display` (`a.b.c.d:port`, `[v6]:port`), or nothing, as a cell of
/// [`W_EP`] characters. IPv4 (every IPv4 endpoint fits) without `core::fmt`: one per row and
/// column.
fn push_endpoint(line: &mut Vec<u8>, ep: Option<Endpoint>) {
    match ep {
        Some(Endpoint {
            ip: IpAddr::V4(a),
            port,
        }) => {
            let mut buf = [b' '; 32];
            let n = text::put_ipv4_port(&mut buf, a.octets(), port);
            let start = line.len();
            line.extend_from_slice(&buf);
            line.truncate(start + n);
            pad_to(line, start + W_EP);
        }
        Some(ep) => push_cell(line, &ep.to_string(), W_EP, Align::Left),
        None => pad_to(line, line.len() + W_EP),
    }
}

/// Appends spaces up to `end` bytes (whole fixed-size pieces, the last one cut back).
#[inline]
fn pad_to(line: &mut Vec<u8>, end: usize) {
    const SPACES: [u8; 32] = [b' '; 32];
    while line.len() + SPACES.len() < end {
        line.extend_from_slice(&SPACES);
    }
    if line.len() < end {
        line.extend_from_slice(&SPACES);
        line.truncate(end);
    }
}

/// Trims the row's trailing white space (as `str::trim_end`) and cuts a row longer than `width`
/// characters to `width`, the last one a `~` marking the cut.
fn fit_line(line: &mut Vec<u8>, width: usize) {
    if line.is_ascii() {
        // ASCII white space as `char::is_whitespace` has it (with vertical tab, unlike
        // `u8::is_ascii_whitespace`).
        let keep = line
            .iter()
            .rposition(|&b| !matches!(b, b'\t'..=b'\r' | b' '))
            .map_or(0, |i| i + 1);
        line.truncate(keep);
        if line.len() > width {
            line.truncate(width.saturating_sub(1));
            line.push(b'~');
        }
        return;
    }
    // Every piece of the row is a `str`: the row is UTF-8.
    let Ok(s) = std::str::from_utf8(line) else {
        return;
    };
    let s = s.trim_end();
    let (keep, cut) = match s.char_indices().nth(width) {
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(width.saturating_sub(1))
                .map_or(s.len(), |(i, _)| i);
            (cut, true)
        }
        None => (s.len(), false),
    };
    line.truncate(keep);
    if cut {
        line.push(b'~');
    }
}

enum Align {
    Left,
    Right,
}

/// Appends `s` padded with spaces to `w` characters; a longer `s` is cut to `w` characters, the
/// last one a `~` marking the cut.
fn push_cell(line: &mut Vec<u8>, s: &str, w: usize, align: Align) {
    if s.is_ascii() {
        return push_ascii_cell(line, s.as_bytes(), w, align);
    }
    let n = s.chars().count();
    if n > w {
        let cut = s
            .char_indices()
            .nth(w.saturating_sub(1))
            .map_or(s.len(), |(i, _)| i);
        line.extend_from_slice(s.as_bytes().get(..cut).unwrap_or_default());
        line.push(b'~');
        return;
    }
    let pad = w - n;
    if matches!(align, Align::Right) {
        pad_to(line, line.len() + pad);
    }
    line.extend_from_slice(s.as_bytes());
    if matches!(align, Align::Left) {
        pad_to(line, line.len() + pad);
    }
}

/// [`push_cell`] for ASCII text (one byte per character).
#[inline]
fn push_ascii_cell(line: &mut Vec<u8>, b: &[u8], w: usize, align: Align) {
    debug_assert!(b.is_ascii());
    let start = line.len();
    match b.get(..w.saturating_sub(1)) {
        Some(cut) if b.len() > w => {
            copy_small(line, cut);
            line.push(b'~');
        }
        _ if matches!(align, Align::Right) => {
            pad_to(line, start + (w - b.len()));
            copy_small(line, b);
        }
        _ => {
            copy_small(line, b);
            pad_to(line, start + w);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::time::Ts;

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
        for (ip, port) in [
            ("0.0.0.0", 0),
            ("198.51.100.13", 1688),
            ("255.255.255.255", 65535),
            ("10.0.0.1", 9),
            ("2001:db8::1", 1688),
            ("::ffff:192.0.2.1", 80),
            ("2001:db8:85a3:1234:5678:8a2e:370:7334", 65535),
        ] {
            let ep = Endpoint {
                ip: ip.parse().unwrap(),
                port,
            };
            let mut out = b"|".to_vec();
            super::push_endpoint(&mut out, Some(ep));
            assert_eq!(
                out[1..],
                *reference(&ep.to_string(), W_EP, false).as_bytes()
            );
        }
        let mut out = b"|".to_vec();
        super::push_endpoint(&mut out, None);
        assert_eq!(out[1..], [b' '; W_EP]);
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
            "a-plain-ascii-name-longer-than-thirty-two-bytes.example",
        ] {
            for w in (0..12).chain([31, 32, 33, 40, 70, 100]) {
                for right in [false, true] {
                    let mut line = b"|".to_vec();
                    let align = |right| if right { Align::Right } else { Align::Left };
                    push_cell(&mut line, s, w, align(right));
                    let want = reference(s, w, right);
                    assert_eq!(line[1..], *want.as_bytes(), "{s:?} {w} {right}");
                    if s.is_ascii() {
                        let mut line = b"|".to_vec();
                        super::push_ascii_cell(&mut line, s.as_bytes(), w, align(right));
                        assert_eq!(line[1..], *want.as_bytes(), "{s:?} {w} {right}");
                    }
                }
            }
        }
    }

    /// The row as it was built before the byte paths: `String` cells padded and cut by
    /// characters, the workstation always through `escape`, the count with `format!`, and the
    /// row trimmed and cut to the width by characters.
    fn reference_row(ev: &Event, call: &KmsCall, width: usize) -> String {
        let sink = TableSink::new(Vec::new(), width);
        let (wp, ww) = sink.flexible();
        let ep = |e: Option<Endpoint>| e.map(|e| e.to_string()).unwrap_or_default();
        let ts = ev.ts.rfc3339_micros().to_string();
        let mut line = format!(
            "{} {} ",
            &ts[11..19],
            reference(&ep(ev.client), W_EP, false)
        );
        if sink.show_server() {
            line += &format!("{} ", reference(&ep(ev.server), W_EP, false));
        }
        let ver = call
            .version
            .as_deref()
            .unwrap_or("?")
            .trim_end_matches(".0");
        line += &format!("{} ", reference(ver, ver.chars().count().max(W_VER), false));
        let required = match &call.request {
            Some(r) => {
                let product = r.sku_name.or(r.kms_name).unwrap_or(r.sku_id.as_str());
                line += &format!(
                    "{} {}",
                    reference(product, wp, false),
                    reference(&escape(&r.workstation), ww, false)
                );
                Some(r.required_count)
            }
            None => {
                line += &format!(
                    "{} {}",
                    reference("(request not captured)", wp, false),
                    reference("", ww, false)
                );
                None
            }
        };
        let count = match (&call.response, required) {
            (Some(resp), Some(req)) => format!("{}/{}", resp.current_count, req),
            (None, Some(req)) => format!("-/{req}"),
            _ => "-".to_string(),
        };
        let outcome = match call.outcome {
            "count_insufficient" => "COUNT LOW",
            "invalid_response" => "INVALID",
            "no_response" => "no reply",
            other => other,
        };
        line += &format!(" {} {outcome}", reference(&count, W_COUNT, true));
        if let Some(h) = &call.hresult {
            line += &format!(" {}", h.code);
        }
        if !call.integrity.failures.is_empty() {
            line += &format!(" [{}]", call.integrity.failures.join(","));
        }
        let line = line.trim_end();
        let mut out = if line.chars().count() > width {
            let mut t: String = line.chars().take(width - 1).collect();
            t.push('~');
            t
        } else {
            line.to_string()
        };
        out.push('\n');
        out
    }

    /// Rows with plain, escaped, wide and over-long workstation names, non-ASCII products and
    /// versions, IPv6 endpoints and every count form, at several terminal widths, against
    /// [`reference_row`]. Wire text must never reach the terminal unescaped.
    #[test]
    fn rows_match_the_character_reference() {
        use crate::event::{Hresult, Integrity, KmsRequestInfo, KmsResponseInfo};
        let workstations = [
            "ws-000001.corp.example",
            "",
            "tab\there\x1b[2Jclear\u{7f}del\\back\u{9b}csi",
            "evil\u{202e}gpj.exe",
            "ünïcödé-pc.example",
            "日本語のワークステーション名前.example",
            "a-very-long-plain-ascii-workstation-name-that-exceeds-any-column.corp.example",
            "trailing spaces   ",
            "\u{3000}ideographic space at the end\u{3000}",
        ];
        let products = [
            Some("Windows 10/11 Enterprise"),
            Some("Prodüct ✓ 日本"),
            None,
        ];
        let endpoints = [
            Some(Endpoint {
                ip: "198.19.149.49".parse().unwrap(),
                port: 61537,
            }),
            Some(Endpoint {
                ip: "2001:db8:85a3:1234:5678:8a2e:370:7334".parse().unwrap(),
                port: 1688,
            }),
            None,
        ];
        let mut checked = 0;
        for (i, ws) in workstations.iter().enumerate() {
            for (j, product) in products.iter().enumerate() {
                let k = i + j;
                let request = (k % 4 != 3).then(|| KmsRequestInfo {
                    sku_id: "73111121-5638-40f6-bc11-f1d7b0d64300".into(),
                    sku_name: *product,
                    kms_name: None,
                    workstation: (*ws).into(),
                    required_count: [25, 5, 0, 4_294_967_295][k % 4],
                    ..KmsRequestInfo::default()
                });
                let response = (k % 3 != 2).then(|| KmsResponseInfo {
                    current_count: [50, 0, 1_000_000][k % 3],
                    ..KmsResponseInfo::default()
                });
                let call = KmsCall {
                    version: [
                        Some("6.0".into()),
                        Some("5.0.0".into()),
                        None,
                        Some("7.ü".into()),
                    ][k % 4]
                        .clone(),
                    request,
                    response,
                    hresult: (k % 2 == 1).then(|| Hresult {
                        code: "0xC004F042".into(),
                        name: None,
                        meaning: None,
                    }),
                    integrity: Integrity {
                        failures: if k % 5 == 4 {
                            vec!["hmac", "cmid_echo"]
                        } else {
                            Vec::new()
                        },
                        ..Integrity::default()
                    },
                    outcome: ["activated", "count_insufficient", "no_response", "refused"][k % 4],
                    ..KmsCall::default()
                };
                let ev = Event {
                    ts: Ts(1_700_000_000_123_456_789 + k as i64 * 1_000_000_007),
                    event: "kms",
                    source: Arc::from("x.pcap"),
                    frame: 1,
                    client: endpoints[k % 3],
                    server: endpoints[(k + 1) % 3],
                    body: Body::Kms(Box::new(call)),
                };
                let Body::Kms(call) = &ev.body else {
                    unreachable!()
                };
                for width in [0, 80, 109, 110, 140, 200, 400] {
                    let mut sink = TableSink::new(Vec::new(), width);
                    sink.header_done = true;
                    sink.kms_row(&ev, call).unwrap();
                    let got = String::from_utf8(sink.into_inner()).unwrap();
                    assert_eq!(
                        got,
                        reference_row(&ev, call, width.max(80)),
                        "{ws:?} {width}"
                    );
                    assert!(
                        !got.contains(['\x1b', '\t', '\u{7f}', '\u{9b}', '\u{202e}']),
                        "{got:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, workstations.len() * products.len() * 7);
    }
}
