//! The Markdown report (`--report PATH`): what an administrator pastes into a ticket. Per source, in
//! this order: a title with the capture span and counts; the verdict in one or two plain sentences
//! (see [`super::verdict`]); the findings by severity with evidence frames, fix and predicted client
//! error; a table of KMS hosts with the count per product group against the threshold; a table of
//! clients; the DNS lookups about KMS, connection outcomes and RPC errors. A short "How this was
//! produced" footer ends the document.
//!
//! The sink keeps bounded state per source (at most [`MAX_CLIENT_ROWS`] clients, [`MAX_DNS_ROWS`]
//! DNS rows, … with "and K more") and writes a source's section when its last `summary` arrives, so
//! several inputs give several sections in input order. Every string that came from the wire
//! (workstation and DNS names, ePIDs, source names, finding texts) goes through [`md`]: control
//! characters escaped as in the text output, then Markdown punctuation backslash-escaped so that it
//! can neither break a table nor render as markup.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

use super::Sink;
use super::escape::escape;
use super::verdict::{Facts, is_kms_srv, verdict};
use crate::event::{
    Body, DnsExchange, DnsRecord, Endpoint, EpidInfo, Event, Finding, KmsCall, RpcInfo, Severity,
    Summary,
};
use crate::time::Ts;

/// Clients (distinct CMIDs) listed per source; the rest are counted.
pub const MAX_CLIENT_ROWS: usize = 50;
/// Distinct DNS rows (query, type, result, records) kept per source.
pub const MAX_DNS_ROWS: usize = 200;
/// DNS rows shown per source (the KMS-related ones first).
pub const MAX_DNS_SHOWN: usize = 40;
/// Connection outcome and RPC error rows kept per source.
pub const MAX_CONN_ROWS: usize = 50;
/// Host × product group ePID rows kept per source.
pub const MAX_EPID_ROWS: usize = 128;
/// Findings listed per source.
pub const MAX_FINDINGS_LISTED: usize = 100;
/// DNS records shown in one table cell.
const MAX_RECORDS_PER_ROW: usize = 8;
/// Names of unrelated DNS lookups mentioned.
const MAX_OTHER_NAMES: usize = 5;

/// Escapes a wire string for Markdown (table cells and running text): control characters and
/// bidirectional overrides as `\xNN` / `\u{NNNN}` (like the text output), then the characters
/// that could split a table cell or start markup (`\ | ` * _ < > [ ] & # ~`) backslash-escaped.
pub fn md(s: &str) -> String {
    let safe = escape(s);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        if matches!(
            c,
            '\\' | '|' | '`' | '*' | '_' | '<' | '>' | '[' | ']' | '&' | '#' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An endpoint for Markdown (IPv6 brackets escaped).
fn md_ep(ep: Endpoint) -> String {
    md(&ep.to_string())
}

/// ePIDs and decoded host facts seen for one host and product group.
#[derive(Clone, Debug)]
struct EpidRow {
    server: Endpoint,
    kms_id: String,
    epids: Vec<(String, EpidInfo)>,
}

/// One client machine (CMID), last request wins.
#[derive(Clone, Debug, Default)]
struct ClientRow {
    cmid: String,
    client: Option<Endpoint>,
    workstation: String,
    other_names: u32,
    product: String,
    version: String,
    outcome: String,
    count: String,
    host: Option<Endpoint>,
    requests: u64,
}

/// One distinct DNS exchange shape, with how often it was seen.
#[derive(Clone, Debug)]
struct DnsRow {
    query: String,
    qtype: String,
    result: String,
    records: Vec<DnsRecord>,
    additional: Vec<DnsRecord>,
    times: u64,
    frame: u64,
}

/// A connection outcome or RPC error.
#[derive(Clone, Debug)]
struct ConnRow {
    client: Option<IpAddr>,
    server: Option<Endpoint>,
    what: String,
    times: u64,
    frame: u64,
}

/// What the report keeps of one source until its summary.
#[derive(Default)]
struct SourceReport {
    facts: Facts,
    epids: Vec<EpidRow>,
    clients: Vec<ClientRow>,
    client_index: HashMap<String, usize>,
    dns: Vec<DnsRow>,
    dns_dropped: u64,
    conns: Vec<ConnRow>,
    rpc_errors: Vec<ConnRow>,
    rows_dropped: u64,
    findings: Vec<Finding>,
    findings_dropped: u64,
    anomalies: BTreeMap<&'static str, u64>,
    /// The latest summary (live mode sends several; the last one is marked `last`).
    summary: Option<(Ts, Summary)>,
}

/// Markdown report sink.
pub struct ReportSink<W: Write> {
    out: W,
    /// Sources seen and not yet written, by name.
    pending: BTreeMap<Arc<str>, SourceReport>,
    /// Sections written so far.
    written: u64,
}

impl<W: Write> ReportSink<W> {
    /// A report written to `out`.
    pub fn new(out: W) -> Self {
        ReportSink {
            out,
            pending: BTreeMap::new(),
            written: 0,
        }
    }

    /// Gives back the writer (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_source(&mut self, name: &str, src: SourceReport) -> io::Result<()> {
        let text = render(name, &src);
        if self.written > 0 {
            self.out.write_all(b"\n")?;
        }
        self.written += 1;
        self.out.write_all(text.as_bytes())
    }

    /// Gives back the writer and what was written to it, without the footer: for a sink given
    /// whole sources of its own (`read -j`: an input analysed on another thread), to be
    /// [`append`](Self::append)ed to the one that writes the report.
    pub fn into_sections(self) -> (W, Sections) {
        let sections = Sections {
            written: self.written,
            pending: self.pending,
        };
        (self.out, sections)
    }

    /// Appends the sections another sink wrote (`text`, described by `sections`), as if their
    /// sources' events had come here: separated like the others, the footer still last.
    pub fn append(&mut self, text: &mut impl io::Read, sections: Sections) -> io::Result<()> {
        if sections.written > 0 {
            if self.written > 0 {
                self.out.write_all(b"\n")?;
            }
            io::copy(text, &mut self.out)?;
            self.written += sections.written;
        }
        // Sources whose last summary never came are written at `finish`, as they would be here.
        for (name, src) in sections.pending {
            self.pending.entry(name).or_insert(src);
        }
        Ok(())
    }
}

/// The sections a [`ReportSink`] wrote, and the sources it holds unwritten (see
/// [`ReportSink::into_sections`]).
pub struct Sections {
    written: u64,
    pending: BTreeMap<Arc<str>, SourceReport>,
}

impl<W: Write> Sink for ReportSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        let src = self.pending.entry(ev.source.clone()).or_default();
        src.facts.observe(ev);
        match &ev.body {
            Body::Kms(call) => src.kms(ev, call),
            Body::Dns(d) => src.dns(ev, d),
            Body::Rpc(r) => src.rpc(ev, r),
            Body::Finding(f) => {
                if src.findings.len() < MAX_FINDINGS_LISTED {
                    src.findings.push(f.clone());
                } else {
                    src.findings_dropped += 1;
                }
            }
            Body::Anomaly(a) => *src.anomalies.entry(a.kind).or_insert(0) += 1,
            Body::Summary(s) => {
                src.summary = Some((ev.ts, (**s).clone()));
                if s.last
                    && let Some(src) = self.pending.remove(&ev.source)
                {
                    self.write_source(&ev.source, src)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // Sources whose last summary never came (e.g. live capture stopped): write what is known.
        let pending = std::mem::take(&mut self.pending);
        for (name, src) in pending {
            self.write_source(&name, src)?;
        }
        if self.written > 0 {
            self.out.write_all(footer().as_bytes())?;
        }
        self.out.flush()
    }
}

impl SourceReport {
    fn kms(&mut self, ev: &Event, call: &KmsCall) {
        if let (Some(server), Some(q), Some(a)) = (ev.server, &call.request, &call.response) {
            let idx = match self
                .epids
                .iter()
                .position(|r| r.server == server && r.kms_id == *q.kms_id)
            {
                Some(i) => Some(i),
                None if self.epids.len() < MAX_EPID_ROWS => {
                    self.epids.push(EpidRow {
                        server,
                        kms_id: q.kms_id.as_str().to_owned(),
                        epids: Vec::new(),
                    });
                    Some(self.epids.len() - 1)
                }
                None => None,
            };
            if let Some(i) = idx {
                let row = &mut self.epids[i];
                if !row.epids.iter().any(|(e, _)| *e == *a.epid) && row.epids.len() < 4 {
                    row.epids.push((a.epid.to_string(), a.host.clone()));
                }
            }
        }
        let Some(q) = &call.request else { return };
        let idx = match self.client_index.get(q.cmid.as_str()) {
            Some(&i) => i,
            None if self.clients.len() < MAX_CLIENT_ROWS => {
                self.clients.push(ClientRow {
                    cmid: q.cmid.as_str().to_owned(),
                    workstation: q.workstation.to_string(),
                    ..ClientRow::default()
                });
                self.client_index
                    .insert(q.cmid.as_str().to_owned(), self.clients.len() - 1);
                self.clients.len() - 1
            }
            None => return,
        };
        let row = &mut self.clients[idx];
        if row.workstation != *q.workstation {
            row.other_names = row.other_names.saturating_add(1);
            row.workstation = q.workstation.to_string();
        }
        row.client = ev.client;
        row.host = ev.server;
        row.product = q
            .sku_name
            .or(q.kms_name)
            .map(str::to_string)
            .unwrap_or_else(|| q.sku_id.as_str().to_owned());
        row.version = call.version.as_deref().unwrap_or_default().to_string();
        row.outcome = outcome_text(call);
        row.count = match &call.response {
            Some(a) => format!("{} / {}", a.current_count, q.required_count),
            None => format!("- / {}", q.required_count),
        };
        row.requests += 1;
    }

    fn dns(&mut self, ev: &Event, d: &DnsExchange) {
        let query = d.query.clone().unwrap_or_default();
        let qtype = d.qtype.clone().unwrap_or_else(|| "?".to_string());
        let result = match (d.status, d.rcode.as_deref()) {
            (_, Some(r)) if d.status != "unanswered" => {
                if r == "NOERROR" && d.answers.is_empty() {
                    "NOERROR, no records".to_string()
                } else {
                    r.to_string()
                }
            }
            _ => "no answer".to_string(),
        };
        if let Some(row) = self.dns.iter_mut().find(|r| {
            r.query == query
                && r.qtype == qtype
                && r.result == result
                && r.records == d.answers
                && r.additional == d.additional
        }) {
            row.times += 1;
            return;
        }
        if self.dns.len() >= MAX_DNS_ROWS {
            self.dns_dropped += 1;
            return;
        }
        self.dns.push(DnsRow {
            query,
            qtype,
            result,
            records: d
                .answers
                .iter()
                .take(MAX_RECORDS_PER_ROW)
                .cloned()
                .collect(),
            additional: d
                .additional
                .iter()
                .take(MAX_RECORDS_PER_ROW)
                .cloned()
                .collect(),
            times: 1,
            frame: ev.frame,
        });
    }

    fn rpc(&mut self, ev: &Event, r: &RpcInfo) {
        let what = match r.pdu {
            "connect" => match r.result {
                Some("refused") => "refused (SYN answered by RST)".to_string(),
                Some("no_answer") => format!(
                    "no answer ({} SYN{} unanswered)",
                    r.syn_count.unwrap_or(1),
                    if r.syn_count.unwrap_or(1) == 1 {
                        ""
                    } else {
                        "s"
                    }
                ),
                Some("reset") => match &r.detail {
                    Some(d) => format!("reset: {d}"),
                    None => "reset".to_string(),
                },
                _ => return,
            },
            "fault" | "bind_nak" => {
                let status = r
                    .status
                    .as_ref()
                    .map(|s| match s.name {
                        Some(n) => format!(" {} ({n})", s.code),
                        None => format!(" {}", s.code),
                    })
                    .unwrap_or_default();
                format!("{}{status}", r.pdu)
            }
            "bind_ack" | "alter_context_resp"
                if !r.transfer_syntaxes.is_empty()
                    && !r.transfer_syntaxes.iter().any(|t| t.result == "accepted") =>
            {
                let why: Vec<String> = r
                    .transfer_syntaxes
                    .iter()
                    .map(|t| format!("{} {}", t.syntax_name, t.result))
                    .collect();
                format!("{}: no context accepted ({})", r.pdu, why.join(", "))
            }
            _ => return,
        };
        let list = if r.pdu == "connect" {
            &mut self.conns
        } else {
            &mut self.rpc_errors
        };
        let client = ev.client.map(|c| c.ip);
        if let Some(row) = list
            .iter_mut()
            .find(|x| x.client == client && x.server == ev.server && x.what == what)
        {
            row.times += 1;
            return;
        }
        if list.len() >= MAX_CONN_ROWS {
            self.rows_dropped += 1;
            return;
        }
        list.push(ConnRow {
            client,
            server: ev.server,
            what,
            times: 1,
            frame: ev.frame,
        });
    }
}

/// The whole section of one source.
fn render(name: &str, src: &SourceReport) -> String {
    let mut o = String::new();
    let (last_ts, sum) = match &src.summary {
        Some((ts, s)) => (*ts, s.clone()),
        None => (Ts(0), Summary::default()),
    };
    // 1. Title, capture span and counts.
    let _ = writeln!(o, "# KMS activation report: {}", md(name));
    let _ = writeln!(o);
    let span = if sum.packets == 0 {
        "Capture: no packets".to_string()
    } else {
        let first = Ts(last_ts
            .0
            .saturating_sub((sum.duration_s * 1e9).round() as i64));
        format!(
            "Capture: {} to {} ({:.1} s); {}",
            first.rfc3339_micros(),
            last_ts.rfc3339_micros(),
            sum.duration_s,
            plural(sum.packets, "packet", "packets")
        )
    };
    let by_status: Vec<String> = sum
        .kms_by_status
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let _ = write!(
        o,
        "{span}; {}{}; {}; {}",
        plural(sum.kms_calls, "KMS call", "KMS calls"),
        if by_status.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_status.join(", "))
        },
        plural(sum.dns_queries, "DNS query", "DNS queries"),
        plural(sum.anomalies, "anomaly", "anomalies"),
    );
    if !src.anomalies.is_empty() {
        let kinds: Vec<String> = src
            .anomalies
            .iter()
            .map(|(k, v)| format!("{} ×{v}", md(k)))
            .collect();
        let _ = write!(o, " ({})", kinds.join(", "));
    }
    let _ = writeln!(o, ".");
    if let (Some(d), Some(i)) = (sum.dropped, sum.if_dropped) {
        let _ = writeln!(
            o,
            "\nThe capture lost packets: {d} dropped by the kernel, {i} by the interface; counts may be low."
        );
    }
    // 2. Verdict.
    let v = verdict(&src.facts, &|s| md(s));
    let _ = writeln!(o, "\n## Verdict\n\n{}", v.text());
    // 3. Findings.
    findings_section(&mut o, src);
    // 4. Hosts.
    hosts_section(&mut o, src, &sum);
    // 5. Clients.
    clients_section(&mut o, src, &sum);
    // 6. DNS, connections, RPC errors.
    network_section(&mut o, src);
    o
}

fn findings_section(o: &mut String, src: &SourceReport) {
    let _ = writeln!(o, "\n## Findings\n");
    if src.findings.is_empty() {
        let _ = writeln!(o, "The checks reported no findings.");
        return;
    }
    let mut list: Vec<&Finding> = src.findings.iter().collect();
    list.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for sev in [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
    ] {
        let group: Vec<&&Finding> = list.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(o, "### {} ({})\n", severity_title(sev), group.len());
        for f in group {
            let _ = writeln!(
                o,
                "- **{}** `{}`: {}",
                md(f.check),
                f.name.replace('`', "'"),
                md(&f.message)
            );
            let frames: Vec<String> = f.frames.iter().map(u64::to_string).collect();
            let seen = if f.count > 1 {
                format!(" (seen {} times)", f.count)
            } else {
                String::new()
            };
            if frames.is_empty() {
                let _ = writeln!(o, "  - Evidence: no frame{seen}");
            } else {
                let _ = writeln!(
                    o,
                    "  - Evidence: frame{} {}{seen}",
                    if frames.len() == 1 { "" } else { "s" },
                    frames.join(", ")
                );
            }
            let _ = writeln!(o, "  - Fix: {}", md(&f.fix));
            if let Some(p) = f.predicts {
                let _ = writeln!(o, "  - Client error: {}", md(p));
            }
        }
        let _ = writeln!(o);
    }
    if src.findings_dropped > 0 {
        let _ = writeln!(
            o,
            "And {} more findings (see the JSON Lines output).",
            src.findings_dropped
        );
    } else {
        // Drop the blank line after the last group: sections add their own.
        if o.ends_with("\n\n") {
            o.pop();
        }
    }
}

fn severity_title(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

/// "kms1.corp.example (10.77.0.10:1688)" or "10.77.0.10:1688", Markdown-escaped.
fn host_cell(src: &SourceReport, ep: Endpoint) -> String {
    match src.facts.name_of(ep.ip) {
        Some(n) => format!("{} ({})", md_ep(ep), md(n)),
        None => md_ep(ep),
    }
}

fn epid_cells(row: Option<&EpidRow>, fallback: &[String]) -> (String, String) {
    match row {
        Some(r) if !r.epids.is_empty() => {
            let epids: Vec<String> = r.epids.iter().map(|(e, _)| md(e)).collect();
            let infos: Vec<String> = r
                .epids
                .iter()
                .map(|(_, h)| {
                    let mut parts = Vec::new();
                    if let Some(b) = h.os_build {
                        parts.push(format!("build {b}"));
                    }
                    if let Some(l) = h.lcid {
                        parts.push(format!("LCID {l}"));
                    }
                    if let Some(k) = &h.key_installed {
                        parts.push(format!("key installed {}", md(k)));
                    }
                    if parts.is_empty() {
                        "-".to_string()
                    } else {
                        parts.join(", ")
                    }
                })
                .collect();
            (epids.join("; "), infos.join("; "))
        }
        _ if !fallback.is_empty() => (
            fallback
                .iter()
                .map(|e| md(e))
                .collect::<Vec<_>>()
                .join("; "),
            "-".to_string(),
        ),
        _ => ("-".to_string(), "-".to_string()),
    }
}

fn hosts_section(o: &mut String, src: &SourceReport, sum: &Summary) {
    let _ = writeln!(o, "\n## KMS hosts\n");
    if sum.hosts.is_empty() {
        let _ = writeln!(o, "No KMS host answered in this capture.");
        return;
    }
    let _ = writeln!(
        o,
        "Counts per product group as `slmgr /dlv` shows them on the host, rebuilt from the responses.\n"
    );
    let _ = writeln!(
        o,
        "| Host | ePID | Host build / LCID / key | Product group | Count / required | Max count | Requests | Refused | Distinct CMIDs | Verdict |"
    );
    let _ = writeln!(o, "|---|---|---|---|---:|---:|---:|---:|---:|---|");
    for h in &sum.hosts {
        let ep = Endpoint {
            ip: h.ip,
            port: h.port,
        };
        for a in &h.apps {
            let row = src
                .epids
                .iter()
                .find(|r| r.server == ep && r.kms_id == a.kms_id);
            let (epids, info) = epid_cells(row, &h.epids);
            let group = a.kms_name.map(str::to_string).unwrap_or(a.kms_id.clone());
            let count = match a.last_count {
                Some(c) => format!("{c} / {}", a.required_count),
                None => format!("- / {}", a.required_count),
            };
            let max = a
                .max_count
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".to_string());
            let verdict = match a.last_count {
                Some(c) if c >= a.required_count => "meets threshold",
                Some(_) => "**BELOW threshold**",
                None => "no count returned",
            };
            let _ = writeln!(
                o,
                "| {} | {epids} | {info} | {} | {count} | {max} | {} | {} | {} | {verdict} |",
                host_cell(src, ep),
                md(&group),
                a.requests,
                a.refused,
                a.distinct_cmids,
            );
        }
    }
}

fn clients_section(o: &mut String, src: &SourceReport, sum: &Summary) {
    let _ = writeln!(o, "\n## Clients\n");
    if src.clients.is_empty() {
        let _ = writeln!(o, "No KMS client request was captured.");
        return;
    }
    let _ = writeln!(
        o,
        "| Client | Workstation | CMID | Product | Version | Last outcome | Count / required | Host | Requests |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---:|---|---:|");
    for c in &src.clients {
        let ws = if c.other_names > 0 {
            format!(
                "{} (and {} other name{})",
                md(&c.workstation),
                c.other_names,
                if c.other_names == 1 { "" } else { "s" }
            )
        } else {
            md(&c.workstation)
        };
        let _ = writeln!(
            o,
            "| {} | {ws} | {} | {} | {} | {} | {} | {} | {} |",
            c.client
                .map(|e| md(&e.ip.to_string()))
                .unwrap_or("-".into()),
            md(&c.cmid),
            md(&c.product),
            md(&c.version),
            md(&c.outcome),
            c.count,
            c.host.map(|h| host_cell(src, h)).unwrap_or("-".into()),
            c.requests
        );
    }
    let more = sum.clients.saturating_sub(src.clients.len() as u64);
    if more > 0 {
        let _ = writeln!(
            o,
            "\nAnd {} not listed.",
            plural(more, "more client (CMID)", "more clients (CMIDs)")
        );
    }
}

/// A call's outcome in plain words, with the client error it leads to where known.
fn outcome_text(call: &KmsCall) -> String {
    let code = call.hresult.as_ref().map(|h| h.code.as_str());
    match (call.outcome, call.status, code) {
        ("activated", _, _) => "activated".to_string(),
        ("count_insufficient", _, _) => "count too low (0xC004F038)".to_string(),
        ("refused", "fault", Some(c)) => format!("RPC fault {c}"),
        ("refused", _, Some(c)) => format!("refused with {c}"),
        ("invalid_response", _, _) => {
            if call.integrity.failures.is_empty() {
                "invalid response".to_string()
            } else {
                format!("invalid response ({})", call.integrity.failures.join(", "))
            }
        }
        ("no_response", _, _) => match call.reason {
            Some(r) => format!("no response ({})", r.replace('_', " ")),
            None => "no response".to_string(),
        },
        (other, _, Some(c)) => format!("{other} {c}"),
        (other, _, None) => other.to_string(),
    }
}

/// Formats the records of a DNS row for one table cell.
fn records_cell(row: &DnsRow) -> String {
    let fmt = |r: &DnsRecord| -> String {
        match (&r.target, r.address, &r.data) {
            (Some(t), _, _) => format!(
                "{} priority {} weight {} port {} target {}",
                md(&r.rtype),
                r.priority.unwrap_or(0),
                r.weight.unwrap_or(0),
                r.port.unwrap_or(0),
                md(t)
            ),
            (None, Some(a), _) => format!("{} {} {}", md(&r.rtype), md(&r.name), a),
            (None, None, Some(d)) => format!("{} {}", md(&r.rtype), md(d)),
            _ => md(&r.rtype),
        }
    };
    let mut parts: Vec<String> = row.records.iter().map(fmt).collect();
    parts.extend(
        row.additional
            .iter()
            .map(|r| format!("{} (additional)", fmt(r))),
    );
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join("; ")
    }
}

fn network_section(o: &mut String, src: &SourceReport) {
    let _ = writeln!(o, "\n## DNS and connections\n");
    // Which DNS rows are about KMS: SRV lookups for _vlmcs._tcp, lookups of SRV targets, and
    // lookups that resolve to (or name) an address clients talked KMS to or tried to reach.
    let mut kms_ips: Vec<IpAddr> = src
        .conns
        .iter()
        .chain(&src.rpc_errors)
        .filter_map(|c| c.server.map(|s| s.ip))
        .chain(src.clients.iter().filter_map(|c| c.host.map(|h| h.ip)))
        .chain(src.epids.iter().map(|e| e.server.ip))
        .collect();
    kms_ips.sort();
    kms_ips.dedup();
    let mut names: Vec<String> = Vec::new();
    for r in &src.dns {
        for rec in r.records.iter().chain(&r.additional) {
            if let Some(t) = &rec.target {
                names.push(t.to_ascii_lowercase());
            }
            if rec.address.is_some_and(|a| kms_ips.contains(&a)) {
                names.push(rec.name.to_ascii_lowercase());
                names.push(r.query.to_ascii_lowercase());
            }
        }
    }
    let related =
        |r: &DnsRow| is_kms_srv(&r.query) || names.contains(&r.query.to_ascii_lowercase());
    let shown: Vec<&DnsRow> = src
        .dns
        .iter()
        .filter(|r| related(r))
        .take(MAX_DNS_SHOWN)
        .collect();
    let related_total = src.dns.iter().filter(|r| related(r)).count();
    if shown.is_empty() {
        let _ = writeln!(o, "No DNS lookup for a KMS host was captured.");
    } else {
        let _ = writeln!(
            o,
            "| Query | Type | Result | Records | Times | First frame |"
        );
        let _ = writeln!(o, "|---|---|---|---|---:|---:|");
        for r in &shown {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                md(&r.query),
                md(&r.qtype),
                md(&r.result),
                records_cell(r),
                r.times,
                r.frame
            );
        }
        if related_total > shown.len() {
            let _ = writeln!(
                o,
                "\nAnd {} more KMS-related DNS rows not listed.",
                related_total - shown.len()
            );
        }
    }
    let others: Vec<&DnsRow> = src.dns.iter().filter(|r| !related(r)).collect();
    if !others.is_empty() || src.dns_dropped > 0 {
        let mut seen: Vec<&str> = Vec::new();
        for r in &others {
            if !seen.contains(&r.query.as_str()) && seen.len() < MAX_OTHER_NAMES {
                seen.push(&r.query);
            }
        }
        let n: u64 = others.iter().map(|r| r.times).sum::<u64>() + src.dns_dropped;
        let list: Vec<String> = seen.iter().map(|q| md(q)).collect();
        let _ = writeln!(
            o,
            "\n{} not about KMS left out{}.",
            plural(n, "other DNS lookup", "other DNS lookups"),
            if list.is_empty() {
                String::new()
            } else {
                format!(" ({})", list.join(", "))
            }
        );
    }
    conn_table(
        o,
        "Connections to KMS ports that failed",
        &src.conns,
        "No failed connection to a KMS port was seen.",
    );
    conn_table(
        o,
        "RPC faults and rejected binds",
        &src.rpc_errors,
        "No RPC fault or rejected bind was seen.",
    );
    if src.rows_dropped > 0 {
        let _ = writeln!(
            o,
            "\nAnd {} more connection or RPC rows not listed.",
            src.rows_dropped
        );
    }
}

fn conn_table(o: &mut String, title: &str, rows: &[ConnRow], none: &str) {
    let _ = writeln!(o, "\n### {title}\n");
    if rows.is_empty() {
        let _ = writeln!(o, "{none}");
        return;
    }
    let _ = writeln!(o, "| Client | Server | Result | Times | First frame |");
    let _ = writeln!(o, "|---|---|---|---:|---:|");
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            r.client.map(|c| md(&c.to_string())).unwrap_or("-".into()),
            r.server.map(md_ep).unwrap_or("-".into()),
            md(&r.what),
            r.times,
            r.frame
        );
    }
}

fn footer() -> String {
    format!(
        "\n---\n\n## How this was produced\n\n\
         Made by kmsscope {} from the packets alone (passive; nothing was sent). \
         \"Count\" is the CurrentCount a KMS host returns in its response: the number of distinct \
         machines it has seen for that product group in the last 30 days, as `slmgr /dlv` shows on \
         the host. A client activates only when the count is at least its own required count \
         (25 for Windows client editions, 5 for Windows Server and volume Office); otherwise it \
         reports 0xC004F038. All times are the capture's timestamps in UTC: the capture's clock is \
         the reference, not the clocks of the clients or hosts. Frame numbers are those Wireshark \
         shows for the same file.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// "1 packet" / "3 packets".
fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests;
