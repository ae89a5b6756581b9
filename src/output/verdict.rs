//! The verdict: one or two plain sentences that say whether activation works and, if not, why
//! ("Activation fails because …"). Shared by the text table and the Markdown report so that they
//! never disagree.
//!
//! [`Facts`] collects, per source and with bounded memory, what the verdict needs from the event
//! stream: KMS call outcomes (per host and product group), host refusals, RPC faults and bind
//! rejects, connection outcomes, DNS SRV lookups and the address lookups that name the hosts, and
//! the `finding` events of the checks. [`verdict`] is a pure function over those facts. It works
//! from the KMS outcomes and connection events alone, and uses findings when the checks emit them:
//! checks whose evidence the facts already state (e.g. `KMS-01`, `RPC-01`, `DNS-01`) add nothing,
//! the others are phrased through a small table ([`check_phrase`]); unknown IDs fall back to the
//! finding's own message.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::event::{Body, DnsExchange, Endpoint, Event, Finding, KmsCall, RpcInfo, Severity};

/// At most this many distinct entries are kept per kind of fact (hosts × product groups, refusals,
/// connection outcomes, SRV lookups, …); further distinct ones are only counted.
pub const MAX_FACTS: usize = 64;
/// At most this many address → DNS name pairs are remembered for naming hosts.
pub const MAX_NAMES: usize = 1024;
/// At most this many findings are kept for the verdict.
pub const MAX_FINDINGS: usize = 256;
/// The second sentence names at most this many further issues, then "and K more".
const MAX_EXTRA_CLAUSES: usize = 3;

/// Client error predicted for a count below the client's threshold.
const E_COUNT: &str = "0xC004F038";
/// Client error predicted when no KMS host could be contacted.
const E_NO_KMS: &str = "0xC004F074";

/// Checks whose evidence the facts already phrase (so a finding for them adds no clause).
const COVERED: &[&str] = &[
    "KMS-01", "KMS-07", "KMS-08", "RPC-01", "RPC-02", "RPC-03", "RPC-04", "RPC-05", "DNS-01",
    "DNS-02", "DNS-03", "DNS-04", "DNS-05",
];

/// Verdict phrases for the checks of docs/checks.md that the facts do not cover. The finding's
/// subject (host, workstation, query …) is appended in parentheses.
const PHRASES: &[(&str, &str)] = &[
    (
        "KMS-02",
        "a host's count is only just above the threshold, so clients ageing out may drop it below",
    ),
    (
        "KMS-03",
        "the host count does not grow although new machines ask",
    ),
    (
        "KMS-04",
        "cloned machines share one CMID, so the host counts them once",
    ),
    (
        "KMS-06",
        "a client clock is more than 4 hours off the capture clock; the host will refuse it with 0xC004F06C",
    ),
    ("KMS-09", "the host ePID looks malformed or synthetic"),
    (
        "KMS-10",
        "the host identity (ePID) changed during the capture",
    ),
    (
        "KMS-11",
        "the KMS host looks like an emulator, not a Microsoft KMS",
    ),
    ("KMS-12", "clients activate against an off-network KMS host"),
    (
        "KMS-13",
        "a client asks for a product the host does not serve or the catalog does not know",
    ),
    (
        "KMS-14",
        "a client sends an unusual required count (N policy)",
    ),
    ("KMS-15", "a client has already lost its activation"),
    ("KMS-16", "a client's grace period is nearly over"),
    ("KMS-18", "a client is stuck retrying a failing activation"),
    (
        "DNS-06",
        "a published SRV target does not answer on the KMS port",
    ),
    (
        "DNS-07",
        "the preferred SRV target is dead, so clients fall back slowly",
    ),
    ("DNS-10", "an unapproved KMS host is published in DNS"),
    ("DNS-11", "clients look for KMS in an unexpected DNS domain"),
    ("DNS-13", "DNS servers give different SRV answers"),
    ("RPC-06", "the KMS host answers slowly"),
    ("RPC-07", "something other than KMS answers on the KMS port"),
];

/// The verdict phrase for a check ID, when the table has one.
pub fn check_phrase(check: &str) -> Option<&'static str> {
    PHRASES.iter().find(|(id, _)| *id == check).map(|(_, p)| *p)
}

/// What the verdict concludes, for callers that want more than the sentences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    /// Every completed call activated (issues may still be listed).
    Works,
    /// At least one call failed.
    Fails,
    /// KMS calls were captured but none completed (capture cut, request not captured).
    Inconclusive,
    /// No KMS call was captured.
    NoKms,
}

/// One or two plain sentences, most severe issue first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub sentences: Vec<String>,
}

impl Verdict {
    /// The sentences joined with a space.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

/// A key with a value, a repetition count and the first frame it was seen in.
#[derive(Clone, Debug)]
struct Tally<K, V> {
    key: K,
    val: V,
    count: u64,
    frame: u64,
}

/// Finds or inserts `key` in a bounded list; `None` (and `overflow` bumped) when full.
fn bump<'a, K: PartialEq, V: Default>(
    list: &'a mut Vec<Tally<K, V>>,
    key: K,
    frame: u64,
    overflow: &mut u64,
) -> Option<&'a mut V> {
    let idx = match list.iter().position(|t| t.key == key) {
        Some(i) => i,
        None if list.len() < MAX_FACTS => {
            list.push(Tally {
                key,
                val: V::default(),
                count: 0,
                frame,
            });
            list.len() - 1
        }
        None => {
            *overflow += 1;
            return None;
        }
    };
    let t = &mut list[idx];
    t.count += 1;
    Some(&mut t.val)
}

/// Last count below threshold for one host and product group.
#[derive(Clone, Debug, Default)]
struct Below {
    group: String,
    count: u32,
    required: u32,
}

/// How a `_vlmcs._tcp` SRV lookup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SrvOutcome {
    Found,
    NxDomain,
    ServFail,
    NoData,
    Unanswered,
    Other(String),
}

/// Per address-lookup name: did any answer give an address, and the last failure rcode.
#[derive(Clone, Debug, Default)]
struct AddrLookup {
    resolved: bool,
    failure: Option<String>,
}

/// The facts of one source that the verdict is made from. Feed every event to [`Facts::observe`].
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// KMS calls seen.
    pub calls: u64,
    /// Calls the client will count as activated.
    pub activated: u64,
    /// Calls that failed (count too low, refused, fault, invalid response, no response).
    pub failing: u64,
    /// Calls whose result the capture does not show (capture ended, request not captured, gap).
    pub inconclusive: u64,
    /// Packets and DNS queries, from the `summary` event.
    pub packets: u64,
    pub dns_queries: u64,
    below: Vec<Tally<(Endpoint, String), Below>>,
    refusals: Vec<Tally<(Endpoint, String), Option<&'static str>>>,
    invalid: Vec<Tally<Endpoint, Vec<&'static str>>>,
    silent: Vec<Tally<(Endpoint, &'static str), ()>>,
    pending: Vec<Tally<(Endpoint, &'static str), ()>>,
    faults: Vec<Tally<(Endpoint, String), Option<&'static str>>>,
    bind_rejects: Vec<Tally<Endpoint, ()>>,
    connects: Vec<Tally<(Endpoint, &'static str), ()>>,
    srv: Vec<Tally<(String, SrvOutcome), ()>>,
    targets: Vec<Tally<(String, u16), ()>>,
    lookups: Vec<Tally<String, AddrLookup>>,
    names: BTreeMap<IpAddr, String>,
    findings: Vec<Finding>,
    /// Distinct facts not kept because a list was full.
    pub overflow: u64,
}

/// Reasons of `unanswered` calls that say more about the capture than about the host.
fn inconclusive_reason(reason: Option<&str>) -> bool {
    matches!(
        reason,
        Some("capture_ended" | "request_not_captured" | "tcp_gap" | "limit")
    )
}

impl Facts {
    /// A fresh, empty collection.
    pub fn new() -> Self {
        Facts::default()
    }

    /// Takes in one event of the source.
    pub fn observe(&mut self, ev: &Event) {
        match &ev.body {
            Body::Kms(call) => self.kms(ev, call),
            Body::Rpc(r) => self.rpc(ev, r),
            Body::Dns(d) => self.dns(ev, d),
            Body::Finding(f) => {
                if self.findings.len() < MAX_FINDINGS {
                    self.findings.push(f.clone());
                } else {
                    self.overflow += 1;
                }
            }
            Body::Summary(s) => {
                self.packets = s.packets;
                self.dns_queries = s.dns_queries;
            }
            Body::Anomaly(_) => {}
        }
    }

    /// The DNS name an address was resolved from in this capture, if any.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&ip).map(String::as_str)
    }

    fn kms(&mut self, ev: &Event, call: &KmsCall) {
        self.calls += 1;
        let server = ev.server.unwrap_or(Endpoint {
            ip: IpAddr::from([0, 0, 0, 0]),
            port: 0,
        });
        let frame = ev.frame;
        if call.reason == Some("request_not_captured")
            || (call.outcome == "no_response" && inconclusive_reason(call.reason))
        {
            self.inconclusive += 1;
            let reason = call.reason.unwrap_or("unknown");
            bump(
                &mut self.pending,
                (server, reason),
                frame,
                &mut self.overflow,
            );
            return;
        }
        match call.outcome {
            "activated" => self.activated += 1,
            "count_insufficient" => {
                self.failing += 1;
                if let (Some(q), Some(a)) = (&call.request, &call.response) {
                    let group = q
                        .kms_name
                        .map(str::to_string)
                        .unwrap_or_else(|| q.kms_id.as_str().to_owned());
                    if let Some(b) = bump(
                        &mut self.below,
                        (server, q.kms_id.as_str().to_owned()),
                        frame,
                        &mut self.overflow,
                    ) {
                        *b = Below {
                            group,
                            count: a.current_count,
                            required: q.required_count,
                        };
                    }
                }
            }
            "refused" => {
                self.failing += 1;
                // Faults are counted from their own `rpc` event.
                if call.status != "fault" {
                    let (code, name) = match &call.hresult {
                        Some(h) => (h.code.to_string(), h.name),
                        None => ("an error".to_string(), None),
                    };
                    if let Some(n) = bump(
                        &mut self.refusals,
                        (server, code),
                        frame,
                        &mut self.overflow,
                    ) {
                        *n = name;
                    }
                }
            }
            "invalid_response" => {
                self.failing += 1;
                if let Some(list) = bump(&mut self.invalid, server, frame, &mut self.overflow) {
                    for f in &call.integrity.failures {
                        if !list.contains(f) && list.len() < 8 {
                            list.push(f);
                        }
                    }
                }
            }
            _ => {
                self.failing += 1;
                let reason = call.reason.unwrap_or("no_response");
                bump(
                    &mut self.silent,
                    (server, reason),
                    frame,
                    &mut self.overflow,
                );
            }
        }
    }

    fn rpc(&mut self, ev: &Event, r: &RpcInfo) {
        let Some(server) = ev.server else { return };
        match r.pdu {
            "connect" => {
                if let Some(res @ ("refused" | "no_answer" | "reset")) = r.result {
                    bump(
                        &mut self.connects,
                        (server, res),
                        ev.frame,
                        &mut self.overflow,
                    );
                }
            }
            "fault" => {
                let (code, name) = match &r.status {
                    Some(s) => (s.code.to_string(), s.name),
                    None => ("?".to_string(), None),
                };
                if let Some(n) = bump(
                    &mut self.faults,
                    (server, code),
                    ev.frame,
                    &mut self.overflow,
                ) {
                    *n = name;
                }
            }
            "bind_nak" => {
                bump(&mut self.bind_rejects, server, ev.frame, &mut self.overflow);
            }
            _ if is_bind_reject(r) => {
                bump(&mut self.bind_rejects, server, ev.frame, &mut self.overflow);
            }
            _ => {}
        }
    }

    fn dns(&mut self, ev: &Event, d: &DnsExchange) {
        for rec in d.answers.iter().chain(&d.additional) {
            if rec.rtype == "SRV"
                && let Some(t) = &rec.target
            {
                let port = rec.port.unwrap_or(0);
                bump(
                    &mut self.targets,
                    (t.clone(), port),
                    ev.frame,
                    &mut self.overflow,
                );
            }
            if let Some(addr) = rec.address {
                if self.names.len() < MAX_NAMES || self.names.contains_key(&addr) {
                    self.names.entry(addr).or_insert_with(|| rec.name.clone());
                }
                if let Some(l) = bump(
                    &mut self.lookups,
                    rec.name.to_ascii_lowercase(),
                    ev.frame,
                    &mut self.overflow,
                ) {
                    l.resolved = true;
                }
            }
        }
        let Some(query) = d.query.as_deref() else {
            return;
        };
        match d.qtype.as_deref() {
            Some("SRV") if is_kms_srv(query) => {
                let outcome = match (d.status, d.rcode.as_deref()) {
                    ("unanswered", _) | (_, None) => SrvOutcome::Unanswered,
                    (_, Some("NOERROR")) => {
                        if d.answers.iter().any(|r| r.rtype == "SRV") {
                            SrvOutcome::Found
                        } else {
                            SrvOutcome::NoData
                        }
                    }
                    (_, Some("NXDOMAIN")) => SrvOutcome::NxDomain,
                    (_, Some("SERVFAIL")) => SrvOutcome::ServFail,
                    (_, Some(other)) => SrvOutcome::Other(other.to_string()),
                };
                bump(
                    &mut self.srv,
                    (query.to_string(), outcome),
                    ev.frame,
                    &mut self.overflow,
                );
            }
            Some("A" | "AAAA") => {
                let failure = match d.rcode.as_deref() {
                    Some("NOERROR") | None => None,
                    Some(r) => Some(r.to_string()),
                };
                if let Some(l) = bump(
                    &mut self.lookups,
                    query.to_ascii_lowercase(),
                    ev.frame,
                    &mut self.overflow,
                ) && failure.is_some()
                {
                    l.failure = failure;
                }
            }
            _ => {}
        }
    }

    /// "kms1.corp.example (10.77.0.10:1688)" or "10.77.0.10:1688".
    fn host(&self, ep: Endpoint, with_port: bool, wire: &dyn Fn(&str) -> String) -> String {
        let addr = if with_port {
            ep.to_string()
        } else {
            ep.ip.to_string()
        };
        match self.names.get(&ep.ip) {
            Some(n) => format!("{} ({addr})", wire(n)),
            None => addr,
        }
    }

    /// Every issue the facts show, most severe first.
    fn issues(&self, wire: &dyn Fn(&str) -> String) -> Vec<Issue> {
        let mut out = Vec::new();
        // Host refusals (HRESULT instead of a response).
        for t in &self.refusals {
            let (server, code) = &t.key;
            let name = t.val.map(|n| format!(" ({n})")).unwrap_or_default();
            out.push(Issue {
                severity: Severity::Error,
                rank: 0,
                frame: t.frame,
                call_failure: true,
                text: format!(
                    "the KMS host {} refuses {} with {code}{name}",
                    self.host(*server, true, wire),
                    plural(t.count, "request", "requests"),
                ),
                predicts: code.starts_with("0x").then(|| code.clone()),
            });
        }
        // Counts below threshold, grouped per host in order of first appearance.
        let mut servers: Vec<(Endpoint, u64)> = Vec::new();
        for t in &self.below {
            if !servers.iter().any(|(s, _)| *s == t.key.0) {
                servers.push((t.key.0, t.frame));
            }
        }
        for (server, frame) in servers {
            let parts: Vec<String> = self
                .below
                .iter()
                .filter(|t| t.key.0 == server)
                .enumerate()
                .map(|(i, t)| {
                    let b = &t.val;
                    if i == 0 {
                        format!(
                            "{} of the {} required for {}",
                            b.count,
                            b.required,
                            wire(&b.group)
                        )
                    } else {
                        format!("{} of {} for {}", b.count, b.required, wire(&b.group))
                    }
                })
                .collect();
            out.push(Issue {
                severity: Severity::Error,
                rank: 1,
                frame,
                call_failure: true,
                text: format!(
                    "the KMS host {} reports too few activated clients: {}",
                    self.host(server, true, wire),
                    join_and(&parts)
                ),
                predicts: Some(E_COUNT.to_string()),
            });
        }
        for t in &self.invalid {
            let why = if t.val.is_empty() {
                "undecodable".to_string()
            } else {
                t.val.join(", ")
            };
            out.push(Issue {
                severity: Severity::Error,
                rank: 2,
                frame: t.frame,
                call_failure: true,
                text: format!(
                    "the KMS host {} sends {} that fail validation ({why}), so clients discard them",
                    self.host(t.key, true, wire),
                    plural(t.count, "response", "responses"),
                ),
                predicts: None,
            });
        }
        for t in &self.faults {
            let (server, code) = &t.key;
            let name = t.val.map(|n| format!(" ({n})")).unwrap_or_default();
            out.push(Issue {
                severity: Severity::Error,
                rank: 3,
                frame: t.frame,
                call_failure: true,
                text: format!(
                    "{} rejects the call with RPC fault {code}{name}",
                    self.host(*server, true, wire)
                ),
                predicts: None,
            });
        }
        for t in &self.silent {
            let (server, reason) = t.key;
            out.push(Issue {
                severity: Severity::Error,
                rank: 4,
                frame: t.frame,
                call_failure: true,
                text: format!(
                    "the KMS host {} leaves {} unanswered ({})",
                    self.host(server, true, wire),
                    plural(t.count, "request", "requests"),
                    reason.replace('_', " ")
                ),
                predicts: Some(E_NO_KMS.to_string()),
            });
        }
        for t in &self.bind_rejects {
            out.push(Issue {
                severity: Severity::Error,
                rank: 5,
                frame: t.frame,
                call_failure: false,
                text: format!(
                    "{} rejects the KMS RPC bind, so it is not a working KMS endpoint",
                    self.host(t.key, true, wire)
                ),
                predicts: Some(E_NO_KMS.to_string()),
            });
        }
        for t in &self.connects {
            let (server, result) = t.key;
            let host = self.host(server, false, wire);
            let port = server.port;
            let published = self.names.get(&server.ip).is_some_and(|n| {
                self.targets
                    .iter()
                    .any(|t| t.key.1 == port && t.key.0.eq_ignore_ascii_case(n))
            });
            let odd_port = match (port != 1688, published) {
                (true, true) => {
                    "; the DNS SRV record publishes this port, while KMS listens on 1688 unless set up otherwise"
                }
                (true, false) => "; KMS listens on 1688 unless set up otherwise",
                _ => "",
            };
            let (text, call_failure) = match result {
                "refused" => (
                    format!("{host} refuses TCP {port} (nothing listens there{odd_port})"),
                    false,
                ),
                "no_answer" => (
                    format!(
                        "{host} does not answer on TCP {port} (host down or port filtered{odd_port})"
                    ),
                    false,
                ),
                _ => (
                    format!(
                        "{} resets the connection with a KMS call open",
                        self.host(server, true, wire)
                    ),
                    true,
                ),
            };
            out.push(Issue {
                severity: Severity::Error,
                rank: 6,
                frame: t.frame,
                call_failure,
                text,
                predicts: Some(E_NO_KMS.to_string()),
            });
        }
        // SRV lookups that failed, unless the same name was also answered with records.
        for t in &self.srv {
            let (query, outcome) = &t.key;
            if *outcome == SrvOutcome::Found {
                continue;
            }
            let found_elsewhere = self
                .srv
                .iter()
                .any(|o| o.key.1 == SrvOutcome::Found && o.key.0.eq_ignore_ascii_case(query));
            let q = wire(query);
            let (text, predicts, severity) = match outcome {
                SrvOutcome::NxDomain => (
                    format!(
                        "the DNS lookup for {q} returns NXDOMAIN, so clients cannot find a KMS host"
                    ),
                    Some("0x8007232B"),
                    Severity::Error,
                ),
                SrvOutcome::ServFail => (
                    format!("the DNS server fails the lookup for {q} (SERVFAIL)"),
                    Some("0x8007232A"),
                    Severity::Error,
                ),
                SrvOutcome::NoData => (
                    format!("the DNS zone has no KMS SRV record for {q} (NOERROR, no answer)"),
                    Some("0x8007251D"),
                    Severity::Error,
                ),
                SrvOutcome::Unanswered => (
                    format!("the DNS lookup for {q} gets no answer"),
                    None,
                    Severity::Warning,
                ),
                SrvOutcome::Other(rcode) => (
                    format!("the DNS lookup for {q} fails with {}", wire(rcode)),
                    None,
                    Severity::Error,
                ),
                SrvOutcome::Found => continue,
            };
            out.push(Issue {
                severity: if found_elsewhere {
                    Severity::Warning
                } else {
                    severity
                },
                rank: 7,
                frame: t.frame,
                call_failure: false,
                text,
                predicts: predicts.map(str::to_string),
            });
        }
        // SRV targets that never resolve to an address.
        for t in &self.targets {
            let (target, _port) = &t.key;
            let lower = target.to_ascii_lowercase();
            if let Some(l) = self.lookups.iter().find(|l| l.key == lower)
                && !l.val.resolved
            {
                let how = l
                    .val
                    .failure
                    .as_deref()
                    .map(|r| format!(" ({})", wire(r)))
                    .unwrap_or_else(|| " (no address in any answer)".to_string());
                out.push(Issue {
                    severity: Severity::Error,
                    rank: 8,
                    frame: t.frame,
                    call_failure: false,
                    text: format!(
                        "the published KMS host {} does not resolve{how}",
                        wire(target)
                    ),
                    predicts: Some(E_NO_KMS.to_string()),
                });
            }
        }
        for t in &self.pending {
            let (server, reason) = t.key;
            let text = match reason {
                "request_not_captured" => format!(
                    "the capture holds {} from {} without the request, so they cannot be checked",
                    plural(t.count, "response", "responses"),
                    self.host(server, true, wire)
                ),
                "capture_ended" => format!(
                    "the capture ended before {} answered {}",
                    self.host(server, true, wire),
                    plural(t.count, "request", "requests")
                ),
                other => format!(
                    "{} to {} cannot be judged ({})",
                    plural(t.count, "call", "calls"),
                    self.host(server, true, wire),
                    other.replace('_', " ")
                ),
            };
            out.push(Issue {
                severity: Severity::Warning,
                rank: 9,
                frame: t.frame,
                call_failure: false,
                text,
                predicts: None,
            });
        }
        // Findings the facts do not already state.
        for f in &self.findings {
            if f.severity < Severity::Warning || COVERED.contains(&f.check) {
                continue;
            }
            let text = match check_phrase(f.check) {
                Some(p) => match subject_label(f) {
                    Some(s) => format!("{p} ({})", wire(s)),
                    None => p.to_string(),
                },
                None => wire(f.message.trim_end_matches('.')),
            };
            if out.iter().any(|i| i.text == text) {
                continue;
            }
            out.push(Issue {
                severity: f.severity,
                rank: 10,
                frame: f.frames.first().copied().unwrap_or(u64::MAX),
                call_failure: false,
                text,
                predicts: f.predicts.map(str::to_string),
            });
        }
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.rank.cmp(&b.rank))
                .then(a.frame.cmp(&b.frame))
        });
        out
    }
}

/// True for a bind_ack / alter_context_resp that accepted no presentation context.
fn is_bind_reject(r: &RpcInfo) -> bool {
    matches!(r.pdu, "bind_ack" | "alter_context_resp")
        && !r.transfer_syntaxes.is_empty()
        && !r.transfer_syntaxes.iter().any(|t| t.result == "accepted")
}

/// True for the `_VLMCS._TCP.<domain>` name KMS clients look up (any case).
pub fn is_kms_srv(query: &str) -> bool {
    query
        .get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("_vlmcs._tcp."))
}

/// The most telling subject of a finding for a verdict clause.
fn subject_label(f: &Finding) -> Option<&str> {
    let s = &f.subject;
    s.host
        .as_deref()
        .or(s.server.as_deref())
        .or(s.workstation.as_deref())
        .or(s.query.as_deref())
        .or(s.client.as_deref())
        .or(s.cmid.as_deref())
}

/// One issue for the verdict.
#[derive(Clone, Debug)]
struct Issue {
    severity: Severity,
    /// Order among issues of the same severity (host answers before connections before DNS).
    rank: u8,
    frame: u64,
    /// The issue explains failed KMS calls (it can follow "Activation fails because").
    call_failure: bool,
    text: String,
    predicts: Option<String>,
}

/// "1 request" / "3 requests".
fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Makes the verdict from the facts of one source. `wire` escapes strings that came from the wire
/// (DNS names, finding subjects and messages) for the output at hand.
pub fn verdict(facts: &Facts, wire: &dyn Fn(&str) -> String) -> Verdict {
    let issues = facts.issues(wire);
    let with_code = |i: &Issue| match &i.predicts {
        Some(code) => format!("{}; clients will get {code}", i.text),
        None => i.text.clone(),
    };
    let (kind, first, lead) = if facts.failing > 0 {
        let lead = issues
            .iter()
            .position(|i| i.call_failure)
            .or(if issues.is_empty() { None } else { Some(0) });
        let scope = if facts.activated + facts.inconclusive > 0 {
            format!(" for {} of {} calls", facts.failing, facts.calls)
        } else {
            String::new()
        };
        let first = match lead {
            Some(i) => format!("Activation fails{scope} because {}.", with_code(&issues[i])),
            None => format!("Activation fails{scope}."),
        };
        (VerdictKind::Fails, first, lead)
    } else if facts.activated > 0 {
        let calls = plural(facts.activated, "call", "calls");
        let first = format!(
            "Activation works: {calls} answered and validated; every client got a count at or above its threshold."
        );
        (VerdictKind::Works, first, None)
    } else if facts.calls > 0 {
        let lead = if issues.is_empty() { None } else { Some(0) };
        let first = match lead {
            Some(i) => format!(
                "No KMS call in this capture completed: {}.",
                with_code(&issues[i])
            ),
            None => "No KMS call in this capture completed.".to_string(),
        };
        (VerdictKind::Inconclusive, first, lead)
    } else if !issues.is_empty() {
        let first = format!(
            "No KMS activation call was captured: {}.",
            with_code(&issues[0])
        );
        (VerdictKind::NoKms, first, Some(0))
    } else {
        let first = if let Some(t) = facts.srv.iter().find(|t| t.key.1 == SrvOutcome::Found) {
            let targets: Vec<String> = facts
                .targets
                .iter()
                .take(3)
                .map(|t| format!("{}:{}", wire(&t.key.0), t.key.1))
                .collect();
            format!(
                "No KMS activation call was captured: the DNS lookup for {} finds {}, but no client connects to a KMS host.",
                wire(&t.key.0),
                if targets.is_empty() {
                    "records".to_string()
                } else {
                    join_and(&targets)
                }
            )
        } else if facts.dns_queries > 0 {
            format!(
                "No KMS traffic was captured: {}, none of them for _vlmcs._tcp, and no connection to a KMS port.",
                plural(facts.dns_queries, "DNS query", "DNS queries")
            )
        } else {
            format!(
                "No KMS traffic was captured: {}, none of them a KMS call, a KMS SRV lookup or a connection attempt to a KMS port.",
                plural(facts.packets, "packet", "packets")
            )
        };
        let second =
            "To diagnose activation, capture on a client while it runs `slmgr /ato`.".to_string();
        return Verdict {
            kind: VerdictKind::NoKms,
            sentences: vec![first, second],
        };
    };
    let mut sentences = vec![first];
    let rest: Vec<&Issue> = issues
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != lead)
        .map(|(_, i)| i)
        .collect();
    if !rest.is_empty() {
        let mut clauses: Vec<String> = rest
            .iter()
            .take(MAX_EXTRA_CLAUSES)
            .map(|i| i.text.clone())
            .collect();
        let more = rest.len().saturating_sub(MAX_EXTRA_CLAUSES) as u64 + facts.overflow;
        if more > 0 {
            clauses.push(format!(
                "{} (see the findings)",
                plural(more, "more issue", "more issues")
            ));
        }
        let lead_word = if kind == VerdictKind::Works {
            "However"
        } else {
            "Also"
        };
        let mut s = String::new();
        let _ = write!(s, "{lead_word}, {}.", clauses.join("; "));
        sentences.push(s);
    }
    Verdict { kind, sentences }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        DnsRecord, Hresult, KmsRequestInfo, KmsResponseInfo, Subject, Summary, TransferSyntaxResult,
    };
    use crate::time::Ts;
    use std::sync::Arc;

    fn ep(s: &str) -> Endpoint {
        let (ip, port) = s.rsplit_once(':').unwrap();
        Endpoint {
            ip: ip.parse().unwrap(),
            port: port.parse().unwrap(),
        }
    }

    fn ev(frame: u64, server: &str, body: Body) -> Event {
        Event {
            ts: Ts(1_795_446_604_000_000_000),
            event: body.kind(),
            source: Arc::from("t.pcap"),
            frame,
            client: Some(ep("10.77.0.20:50000")),
            server: Some(ep(server)),
            body,
        }
    }

    fn call(outcome: &'static str, count: u32, required: u32, group: &'static str) -> Body {
        Body::Kms(Box::new(KmsCall {
            status: "answered",
            outcome,
            request: Some(KmsRequestInfo {
                kms_id: group.to_lowercase().into(),
                kms_name: Some(group),
                required_count: required,
                ..KmsRequestInfo::default()
            }),
            response: Some(KmsResponseInfo {
                current_count: count,
                ..KmsResponseInfo::default()
            }),
            ..KmsCall::default()
        }))
    }

    fn connect(result: &'static str) -> Body {
        Body::Rpc(RpcInfo {
            pdu: "connect",
            result: Some(result),
            ..RpcInfo::default()
        })
    }

    fn dns(query: &str, qtype: &str, rcode: &str, answers: Vec<DnsRecord>) -> Body {
        Body::Dns(Box::new(DnsExchange {
            query: Some(query.into()),
            qtype: Some(qtype.into()),
            rcode: Some(rcode.into()),
            status: "answered",
            answers,
            ..DnsExchange::default()
        }))
    }

    fn a(name: &str, addr: &str) -> DnsRecord {
        DnsRecord {
            rtype: "A".into(),
            name: name.into(),
            address: Some(addr.parse().unwrap()),
            ..DnsRecord::default()
        }
    }

    fn plain(s: &str) -> String {
        s.to_string()
    }

    fn facts(events: &[Event]) -> Facts {
        let mut f = Facts::new();
        for e in events {
            f.observe(e);
        }
        f
    }

    #[test]
    fn below_threshold_and_refused_connect() {
        let f = facts(&[
            ev(
                5,
                "10.77.0.12:53",
                dns(
                    "kms-old.corp.example",
                    "A",
                    "NOERROR",
                    vec![a("kms-old.corp.example", "10.77.0.12")],
                ),
            ),
            ev(
                36,
                "10.77.0.10:1688",
                call("count_insufficient", 1, 25, "Windows 10/11"),
            ),
            ev(61, "10.77.0.12:1688", connect("refused")),
        ]);
        let v = verdict(&f, &plain);
        assert_eq!(v.kind, VerdictKind::Fails);
        assert_eq!(
            v.sentences,
            vec![
                "Activation fails because the KMS host 10.77.0.10:1688 reports too few activated clients: 1 of the 25 required for Windows 10/11; clients will get 0xC004F038.".to_string(),
                "Also, kms-old.corp.example (10.77.0.12) refuses TCP 1688 (nothing listens there).".to_string(),
            ]
        );
    }

    #[test]
    fn several_groups_on_one_host_are_one_clause() {
        let f = facts(&[
            ev(
                1,
                "10.0.0.1:1688",
                call("count_insufficient", 1, 25, "Windows 10/11"),
            ),
            ev(
                2,
                "10.0.0.1:1688",
                call("count_insufficient", 2, 25, "Windows 7"),
            ),
            ev(
                3,
                "10.0.0.1:1688",
                call("count_insufficient", 1, 5, "Office 2016"),
            ),
        ]);
        assert_eq!(
            verdict(&f, &plain).text(),
            "Activation fails because the KMS host 10.0.0.1:1688 reports too few activated clients: 1 of the 25 required for Windows 10/11, 2 of 25 for Windows 7 and 1 of 5 for Office 2016; clients will get 0xC004F038."
        );
    }

    #[test]
    fn healthy() {
        let f = facts(&[
            ev(1, "10.0.0.1:1688", call("activated", 50, 25, "Windows 7")),
            ev(2, "10.0.0.1:1688", call("activated", 50, 25, "Windows 7")),
        ]);
        let v = verdict(&f, &plain);
        assert_eq!(v.kind, VerdictKind::Works);
        assert_eq!(
            v.text(),
            "Activation works: 2 calls answered and validated; every client got a count at or above its threshold."
        );
    }

    #[test]
    fn works_with_a_stale_host_says_however() {
        let f = facts(&[
            ev(1, "10.0.0.9:1688", connect("no_answer")),
            ev(2, "10.0.0.1:1688", call("activated", 50, 25, "Windows 7")),
        ]);
        let v = verdict(&f, &plain);
        assert_eq!(v.kind, VerdictKind::Works);
        assert_eq!(
            v.sentences[1],
            "However, 10.0.0.9 does not answer on TCP 1688 (host down or port filtered)."
        );
    }

    #[test]
    fn partial_failure_names_the_share() {
        let f = facts(&[
            ev(1, "10.0.0.1:1688", call("activated", 5, 5, "Office 2016")),
            ev(
                2,
                "10.0.0.1:1688",
                call("count_insufficient", 5, 25, "Windows 10/11"),
            ),
        ]);
        assert!(
            verdict(&f, &plain).text().starts_with(
                "Activation fails for 1 of 2 calls because the KMS host 10.0.0.1:1688"
            )
        );
    }

    #[test]
    fn no_kms_refused_connect() {
        let f = facts(&[ev(1, "127.0.0.30:1688", connect("refused"))]);
        let v = verdict(&f, &plain);
        assert_eq!(v.kind, VerdictKind::NoKms);
        assert_eq!(
            v.text(),
            "No KMS activation call was captured: 127.0.0.30 refuses TCP 1688 (nothing listens there); clients will get 0xC004F074."
        );
    }

    #[test]
    fn no_kms_srv_nxdomain() {
        let f = facts(&[ev(
            1,
            "10.0.0.2:53",
            dns("_VLMCS._TCP.corp.example", "SRV", "NXDOMAIN", vec![]),
        )]);
        assert_eq!(
            verdict(&f, &plain).text(),
            "No KMS activation call was captured: the DNS lookup for _VLMCS._TCP.corp.example returns NXDOMAIN, so clients cannot find a KMS host; clients will get 0x8007232B."
        );
    }

    #[test]
    fn srv_nodata_and_unresolvable_target() {
        let srv = DnsRecord {
            rtype: "SRV".into(),
            name: "_vlmcs._tcp.b.example".into(),
            port: Some(1688),
            target: Some("gone.b.example".into()),
            ..DnsRecord::default()
        };
        let f = facts(&[
            ev(
                1,
                "10.0.0.2:53",
                dns("_vlmcs._tcp.a.example", "SRV", "NOERROR", vec![]),
            ),
            ev(
                3,
                "10.0.0.2:53",
                dns("_vlmcs._tcp.b.example", "SRV", "NOERROR", vec![srv]),
            ),
            ev(
                5,
                "10.0.0.2:53",
                dns("gone.b.example", "A", "NXDOMAIN", vec![]),
            ),
        ]);
        let v = verdict(&f, &plain);
        assert_eq!(
            v.sentences,
            vec![
                "No KMS activation call was captured: the DNS zone has no KMS SRV record for _vlmcs._tcp.a.example (NOERROR, no answer); clients will get 0x8007251D.".to_string(),
                "Also, the published KMS host gone.b.example does not resolve (NXDOMAIN).".to_string(),
            ]
        );
    }

    #[test]
    fn nothing_at_all() {
        let f = facts(&[Event {
            ts: Ts(0),
            event: "summary",
            source: Arc::from("t"),
            frame: 0,
            client: None,
            server: None,
            body: Body::Summary(Box::new(Summary {
                packets: 12,
                ..Summary::default()
            })),
        }]);
        let v = verdict(&f, &plain);
        assert_eq!(v.kind, VerdictKind::NoKms);
        assert_eq!(
            v.sentences[0],
            "No KMS traffic was captured: 12 packets, none of them a KMS call, a KMS SRV lookup or a connection attempt to a KMS port."
        );
    }

    #[test]
    fn host_refusal_and_fault_and_bind_reject() {
        let refused = Body::Kms(Box::new(KmsCall {
            status: "refused",
            outcome: "refused",
            hresult: Some(Hresult {
                code: "0xC004F042".into(),
                name: Some("SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH"),
                meaning: None,
            }),
            ..KmsCall::default()
        }));
        let nak = Body::Rpc(RpcInfo {
            pdu: "bind_ack",
            transfer_syntaxes: vec![TransferSyntaxResult {
                ctx_id: Some(0),
                syntax: "x".into(),
                syntax_name: "ndr32",
                result: "provider_rejection".into(),
                reason: 2,
            }],
            ..RpcInfo::default()
        });
        let f = facts(&[ev(4, "10.0.0.1:1688", refused), ev(9, "10.0.0.3:1688", nak)]);
        let v = verdict(&f, &plain);
        assert_eq!(
            v.sentences,
            vec![
                "Activation fails because the KMS host 10.0.0.1:1688 refuses 1 request with 0xC004F042 (SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH); clients will get 0xC004F042.".to_string(),
                "Also, 10.0.0.3:1688 rejects the KMS RPC bind, so it is not a working KMS endpoint.".to_string(),
            ]
        );
    }

    fn finding(check: &'static str, severity: Severity, msg: &str, ws: Option<&str>) -> Body {
        Body::Finding(Finding {
            check,
            name: "x",
            severity,
            message: msg.into(),
            fix: "fix it".into(),
            predicts: None,
            frames: vec![7],
            count: 1,
            first_ts: None,
            subject: Subject {
                workstation: ws.map(str::to_string),
                ..Subject::default()
            },
        })
    }

    #[test]
    fn findings_use_the_phrase_table_or_their_message() {
        let f = facts(&[
            ev(
                1,
                "10.0.0.1:1688",
                call("count_insufficient", 1, 25, "Windows 10/11"),
            ),
            ev(
                0,
                "10.0.0.1:1688",
                finding("KMS-01", Severity::Error, "dup", None),
            ),
            ev(
                0,
                "10.0.0.1:1688",
                finding("KMS-04", Severity::Error, "m", Some("W10-CLONE-01")),
            ),
            ev(
                0,
                "10.0.0.1:1688",
                finding(
                    "XYZ-99",
                    Severity::Critical,
                    "Something odd happened.",
                    None,
                ),
            ),
            ev(
                0,
                "10.0.0.1:1688",
                finding("KMS-22", Severity::Info, "vm", None),
            ),
        ]);
        let v = verdict(&f, &plain);
        assert_eq!(
            v.sentences[1],
            "Also, Something odd happened; cloned machines share one CMID, so the host counts them once (W10-CLONE-01)."
        );
    }

    #[test]
    fn capture_cut_is_inconclusive() {
        let cut = Body::Kms(Box::new(KmsCall {
            status: "unanswered",
            outcome: "no_response",
            reason: Some("capture_ended"),
            ..KmsCall::default()
        }));
        let v = verdict(&facts(&[ev(3, "10.0.0.1:1688", cut)]), &plain);
        assert_eq!(v.kind, VerdictKind::Inconclusive);
        assert_eq!(
            v.text(),
            "No KMS call in this capture completed: the capture ended before 10.0.0.1:1688 answered 1 request."
        );
    }

    #[test]
    fn extra_clauses_are_bounded() {
        let events: Vec<Event> = (1..=6)
            .map(|i| ev(i, &format!("10.0.0.{i}:1688"), connect("refused")))
            .collect();
        let v = verdict(&facts(&events), &plain);
        assert!(v.sentences[1].ends_with("; 2 more issues (see the findings)."));
    }

    #[test]
    fn kms_srv_name() {
        assert!(is_kms_srv("_VLMCS._TCP.corp.example"));
        assert!(is_kms_srv("_vlmcs._tcp.x"));
        assert!(!is_kms_srv("_ldap._tcp.x"));
        assert!(!is_kms_srv("_vlmcs"));
        assert!(!is_kms_srv("_vlmcs._tcpé"));
    }
}
