//! Discovery correlation (issue 3, item 3): what each client asked DNS and whom it then contacted.
//! Built from `dns` events (SRV queries for `_vlmcs._tcp.<domain>`, A/AAAA lookups, every address a
//! response carried) and from `rpc`/`kms` events (connection attempts, binds, calls), keyed by the
//! client's address. From it [`NetState::chain`] rebuilds, for one connection, the chain SRV query
//! -> chosen target -> address lookup -> TCP connect -> bind -> call, matching SRV targets and ports
//! against the addresses and ports actually contacted.
//!
//! Every table is bounded by a named constant; what does not fit is counted, not stored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::evidence::{Evidence, insert_bounded};
use super::policy::normalize_name;
use crate::event::{ChainDns, ChainStep, ChainTarget, DiscoveryChain, DnsExchange, Endpoint};
use crate::hash::{SeededMap, SeededSet};
use crate::time::Ts;

/// The SRV owner-name prefix of KMS discovery (kms-protocol.md §1, checks.md 5.3).
pub const VLMCS_PREFIX: &str = "_vlmcs._tcp.";
/// Client addresses whose DNS and connection history is kept.
pub const MAX_CLIENT_IPS: usize = 8_192;
/// SRV lookups kept per client address (the latest ones by frame).
pub const MAX_SRV_LOOKUPS_PER_CLIENT: usize = 8;
/// A/AAAA lookups kept per client address (the latest ones by frame).
pub const MAX_ADDR_LOOKUPS_PER_CLIENT: usize = 16;
/// Connection attempts kept per client address (the first ones).
pub const MAX_ATTEMPTS_PER_CLIENT: usize = 32;
/// Distinct `_vlmcs._tcp` names tracked.
pub const MAX_SRV_NAMES: usize = 4096;
/// Distinct target sets kept per SRV name (DNS-13).
pub const MAX_TARGET_SETS: usize = 8;
/// SRV records kept per answer.
pub const MAX_TARGETS_PER_ANSWER: usize = 16;
/// Names whose addresses (A/AAAA/CNAME) are remembered.
pub const MAX_NAMES: usize = 65_536;
/// Addresses remembered per name.
pub const MAX_ADDRS_PER_NAME: usize = 16;
/// SRV target names whose addresses are remembered even when [`MAX_NAMES`] other names fill the
/// tables (busy resolvers must not push the KMS hosts out).
pub const MAX_SRV_TARGET_NAMES: usize = 4096;
/// Unanswered queries remembered per SRV name (DNS-04).
pub const MAX_UNANSWERED_KEPT: usize = 16;
/// CNAME hops followed when resolving a name from the remembered answers.
pub const MAX_CNAME_HOPS: usize = 8;

/// One SRV record as a client received it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SrvTarget {
    /// Target name, normalised (lower case, no trailing dot).
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// One `_vlmcs._tcp` SRV lookup of a client.
#[derive(Clone, Debug)]
pub struct SrvLookup {
    pub frame: u64,
    pub ts: Ts,
    /// Queried name as on the wire.
    pub name: String,
    /// `NOERROR`, `NXDOMAIN`, ...; `None` when unanswered.
    pub rcode: Option<String>,
    pub targets: Vec<SrvTarget>,
    /// Addresses the additional section gave for the targets: (normalised name, address).
    pub additional: Vec<(String, IpAddr)>,
}

/// One A/AAAA lookup of a client.
#[derive(Clone, Debug)]
pub struct AddrLookup {
    pub frame: u64,
    pub ts: Ts,
    /// Normalised queried name.
    pub name: String,
    pub qtype: String,
    pub rcode: Option<String>,
    pub addrs: Vec<IpAddr>,
}

/// How a connection attempt ended at the TCP level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectResult {
    Established,
    Refused,
    NoAnswer,
    Reset,
}

impl ConnectResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectResult::Established => "established",
            ConnectResult::Refused => "refused",
            ConnectResult::NoAnswer => "no_answer",
            ConnectResult::Reset => "reset",
        }
    }

    /// Refused or never answered: the client reached nothing.
    pub fn failed(self) -> bool {
        matches!(self, ConnectResult::Refused | ConnectResult::NoAnswer)
    }
}

/// One TCP connection of a client towards a KMS (or SRV-advertised) port.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Frame of the first evidence (SYN for failed connects, bind_ack or request otherwise).
    pub frame: u64,
    pub ts: Ts,
    pub client_port: u16,
    pub server: Endpoint,
    pub connect: ConnectResult,
    /// SYNs the client sent (failed connects).
    pub syns: u32,
    /// (frame, `accepted` / `rejected` / `bind_nak`) of the bind.
    pub bind: Option<(u64, &'static str)>,
    /// (frame, outcome) of the last call.
    pub call: Option<(u64, &'static str)>,
    /// The DNS part of the chain (SRV query, target, address lookup, method), taken when the
    /// attempt was first seen, while the client's recent lookups were still in its bounded history.
    pub dns: Option<DnsPart>,
}

/// The DNS part of a discovery chain (SRV query, target, address lookup, method), as taken when a
/// connection was first seen. Its connect / bind / call steps are filled in when a chain is built.
#[derive(Clone, Debug)]
pub enum DnsPart {
    /// Nothing but the method: no lookup of the client came before the connection (the common
    /// case, held without an allocation).
    Method(&'static str),
    /// A chain with its DNS fields set (steps empty).
    Chain(Box<DiscoveryChain>),
}

impl DnsPart {
    /// The chain's `method`.
    pub fn method(&self) -> &'static str {
        match self {
            DnsPart::Method(method) => method,
            DnsPart::Chain(ch) => ch.method,
        }
    }

    /// The chain's `address_lookup`.
    pub fn address_lookup(&self) -> Option<&ChainDns> {
        match self {
            DnsPart::Method(_) => None,
            DnsPart::Chain(ch) => ch.address_lookup.as_ref(),
        }
    }

    /// A chain with this DNS part and no steps.
    pub fn to_chain(&self) -> DiscoveryChain {
        match self {
            DnsPart::Method(method) => DiscoveryChain {
                method,
                ..DiscoveryChain::default()
            },
            DnsPart::Chain(ch) => (**ch).clone(),
        }
    }

    fn into_chain(self) -> DiscoveryChain {
        match self {
            DnsPart::Chain(ch) => *ch,
            method => method.to_chain(),
        }
    }
}

/// DNS and connection history of one client address.
#[derive(Clone, Debug, Default)]
pub struct ClientNet {
    /// Any DNS query from this address was captured.
    pub dns_seen: bool,
    pub srv: Vec<SrvLookup>,
    pub lookups: Vec<AddrLookup>,
    pub attempts: Vec<Attempt>,
    pub attempts_dropped: u64,
    /// Latest frame at which the client got a usable SRV answer or an activation.
    pub last_success_frame: u64,
}

/// Everything seen for one `_vlmcs._tcp.<domain>` name.
#[derive(Clone, Debug, Default)]
pub struct SrvName {
    /// The name as first seen on the wire.
    pub display: String,
    pub nxdomain: Evidence,
    pub nodata: Evidence,
    /// Other failing RCODEs (SERVFAIL, REFUSED, ...), by name.
    pub failed: BTreeMap<String, Evidence>,
    /// Unanswered queries: (frame, ts, retransmissions, client).
    pub unanswered: Vec<(u64, Ts, u32, IpAddr)>,
    pub unanswered_count: u64,
    /// Answers with at least one SRV record.
    pub answered: Evidence,
    /// Distinct target sets, each with the resolvers that gave it and its evidence.
    pub target_sets: Vec<(Vec<SrvTarget>, Vec<IpAddr>, Evidence)>,
    /// Most SRV records in one answer (DNS-08: every answer had exactly one when this is 1).
    pub max_targets: usize,
}

/// Failed address lookups of one name (DNS-05).
#[derive(Clone, Debug, Default)]
pub struct LookupFailure {
    pub nxdomain: Evidence,
    pub a_nodata: Evidence,
    pub aaaa_nodata: Evidence,
}

/// The discovery state of one source.
///
/// Its hash tables are keyed by addresses and names from the wire, so they are seeded
/// ([`SeededMap`]) and their iteration order changes from run to run: whatever iterates them
/// must not let that order reach output (see [`NetState::clients_by_addr`]).
#[derive(Clone, Debug, Default)]
pub struct NetState {
    pub clients: SeededMap<IpAddr, ClientNet>,
    /// Client addresses not tracked because [`MAX_CLIENT_IPS`] were.
    pub clients_untracked: u64,
    pub srv_names: BTreeMap<String, SrvName>,
    /// Addresses per normalised name, from every answer and additional section.
    pub name_addrs: SeededMap<String, Vec<IpAddr>>,
    /// CNAME per normalised name.
    pub cnames: SeededMap<String, String>,
    /// Reverse indexes: names per address, CNAME owners per target (bounded like the forward ones).
    addr_names: SeededMap<IpAddr, Vec<String>>,
    cname_owners: SeededMap<String, Vec<String>>,
    /// Names advertised as SRV targets (they always get room in the tables above).
    srv_targets: SeededSet<String>,
    pub lookup_failures: SeededMap<String, LookupFailure>,
    /// Reused buffer for normalised record names (no allocation per record for known names).
    scratch: String,
    /// Any DNS exchange was captured.
    pub dns_seen: bool,
}

/// [`normalize_name`] into a reused buffer.
fn normalize_into(buf: &mut String, name: &str) {
    buf.clear();
    buf.push_str(name.trim_end_matches('.'));
    buf.make_ascii_lowercase();
}

fn is_multicast_dns(server: Option<Endpoint>) -> bool {
    server.is_some_and(|s| s.ip.is_multicast() || s.port == 5353 || s.port == 5355)
}

impl NetState {
    /// The tracked client histories that `keep` selects, in address order. [`NetState::clients`]
    /// is seeded, so its own order changes from run to run; whatever iterates the clients in an
    /// order that can reach output (bounded lists filled first come, first served; labels in
    /// order of first appearance) goes through here. Only the selected ones are sorted: most
    /// clients of a KMS capture have nothing a caller wants.
    pub fn clients_by_addr(&self, keep: impl Fn(&ClientNet) -> bool) -> Vec<(IpAddr, &ClientNet)> {
        let mut v: Vec<(IpAddr, &ClientNet)> = self
            .clients
            .iter()
            .filter(|(_, c)| keep(c))
            .map(|(ip, c)| (*ip, c))
            .collect();
        v.sort_unstable_by_key(|&(ip, _)| ip);
        v
    }

    /// The history of `ip`, created if there is room. Addresses seen only in ordinary lookups may
    /// fill half the table; KMS discovery (SRV queries) and connections may use all of it.
    fn client_mut(&mut self, ip: IpAddr, essential: bool) -> Option<&mut ClientNet> {
        let cap = if essential {
            MAX_CLIENT_IPS
        } else {
            MAX_CLIENT_IPS / 2
        };
        let full = self.clients.len() >= cap;
        // The key is `Copy`: one lookup, whether the address is known or not.
        match self.clients.entry(ip) {
            std::collections::hash_map::Entry::Occupied(o) => Some(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(_) if full => {
                self.clients_untracked += 1;
                None
            }
            std::collections::hash_map::Entry::Vacant(v) => Some(v.insert(ClientNet::default())),
        }
    }

    /// True when a table of `len` entries may take `name`: below [`MAX_NAMES`], or an SRV target
    /// below the reserve.
    fn room(&self, len: usize, name: &str) -> bool {
        len < MAX_NAMES
            || (len < MAX_NAMES + MAX_SRV_TARGET_NAMES && self.srv_targets.contains(name))
    }

    fn learn(&mut self, d: &DnsExchange) {
        for r in d.answers.iter() {
            if let (true, Some(t)) = (r.rtype == "SRV", &r.target)
                && self.srv_targets.len() < MAX_SRV_TARGET_NAMES
            {
                self.srv_targets.insert(normalize_name(t));
            }
        }
        let mut name = std::mem::take(&mut self.scratch);
        for r in d.answers.iter().chain(d.additional.iter()) {
            match (r.rtype.as_str(), r.address, &r.target) {
                ("A" | "AAAA", Some(a), _) => {
                    // Normalised into the reused buffer; owned copies only for new entries.
                    normalize_into(&mut name, &r.name);
                    let known = self.name_addrs.contains_key(name.as_str());
                    if !known && !self.room(self.name_addrs.len(), &name) {
                        continue;
                    }
                    if self.room(self.addr_names.len(), &name) || self.addr_names.contains_key(&a) {
                        let r = self.addr_names.entry(a).or_default();
                        // insert_bounded without cloning a name already there.
                        if !r.contains(&name) && r.len() < MAX_ADDRS_PER_NAME {
                            r.push(name.clone());
                        }
                    }
                    if !known {
                        self.name_addrs.insert(name.clone(), Vec::new());
                    }
                    if let Some(v) = self.name_addrs.get_mut(name.as_str()) {
                        insert_bounded(v, a, MAX_ADDRS_PER_NAME);
                    }
                }
                ("CNAME", _, Some(t)) => {
                    let name = normalize_name(&r.name);
                    let t = normalize_name(t);
                    if self.cname_owners.len() < MAX_NAMES || self.cname_owners.contains_key(&t) {
                        let r = self.cname_owners.entry(t.clone()).or_default();
                        insert_bounded(r, name.clone(), MAX_ADDRS_PER_NAME);
                    }
                    if self.cnames.len() < MAX_NAMES || self.cnames.contains_key(&name) {
                        self.cnames.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        self.scratch = name;
    }

    /// Folds one `dns` event in.
    pub fn observe_dns(
        &mut self,
        frame: u64,
        ts: Ts,
        client: Option<Endpoint>,
        server: Option<Endpoint>,
        d: &DnsExchange,
    ) {
        self.dns_seen = true;
        self.learn(d);
        if d.opcode != "QUERY" || is_multicast_dns(server) {
            return;
        }
        let (Some(query), Some(qtype)) = (&d.query, &d.qtype) else {
            return;
        };
        let Some(client) = client else {
            return;
        };
        let name = normalize_name(query);
        let answered = d.status != "unanswered";
        let nodata =
            d.rcode.as_deref() == Some("NOERROR") && !d.answers.iter().any(|r| r.rtype == *qtype);
        let query_seen = d.status != "response_only";
        if qtype == "SRV" && name.starts_with(VLMCS_PREFIX) {
            self.observe_srv(frame, ts, client, server, query, &name, d);
        } else if qtype == "A" || qtype == "AAAA" {
            let addrs: Vec<IpAddr> = d.answers.iter().filter_map(|r| r.address).collect();
            let failed = answered && (d.rcode.as_deref() == Some("NXDOMAIN") || nodata);
            if failed
                && (self.room(self.lookup_failures.len(), &name)
                    || self.lookup_failures.contains_key(&name))
            {
                let f = self.lookup_failures.entry(name.clone()).or_default();
                let ip = client.ip.to_string();
                if d.rcode.as_deref() == Some("NXDOMAIN") {
                    f.nxdomain.add_labeled(frame, ts, &ip);
                } else if qtype == "A" {
                    f.a_nodata.add_labeled(frame, ts, &ip);
                } else {
                    f.aaaa_nodata.add_labeled(frame, ts, &ip);
                }
            }
            if let Some(c) = self.client_mut(client.ip, false) {
                c.dns_seen |= query_seen;
                push_latest(
                    &mut c.lookups,
                    AddrLookup {
                        frame,
                        ts,
                        name,
                        qtype: qtype.clone(),
                        rcode: d.rcode.clone(),
                        addrs,
                    },
                    MAX_ADDR_LOOKUPS_PER_CLIENT,
                    |l| l.frame,
                );
            }
        } else if query_seen && let Some(c) = self.client_mut(client.ip, false) {
            c.dns_seen = true;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn observe_srv(
        &mut self,
        frame: u64,
        ts: Ts,
        client: Endpoint,
        server: Option<Endpoint>,
        query: &str,
        name: &str,
        d: &DnsExchange,
    ) {
        let mut targets: Vec<SrvTarget> = d
            .answers
            .iter()
            .filter(|r| r.rtype == "SRV")
            .filter_map(|r| {
                Some(SrvTarget {
                    target: normalize_name(r.target.as_deref()?),
                    port: r.port?,
                    priority: r.priority.unwrap_or(0),
                    weight: r.weight.unwrap_or(0),
                })
            })
            // RFC 2782: a target of "." means the service is decidedly not available.
            .filter(|t| !t.target.is_empty())
            .take(MAX_TARGETS_PER_ANSWER)
            .collect();
        targets.sort();
        targets.dedup();
        let additional: Vec<(String, IpAddr)> = d
            .answers
            .iter()
            .chain(d.additional.iter())
            .filter_map(|r| Some((normalize_name(&r.name), r.address?)))
            .take(MAX_ADDRS_PER_NAME)
            .collect();
        let answered = d.status != "unanswered";
        let ok = d.rcode.as_deref() == Some("NOERROR") && !targets.is_empty();
        let ip = client.ip.to_string();
        if self.srv_names.len() < MAX_SRV_NAMES || self.srv_names.contains_key(name) {
            let s = self.srv_names.entry(name.to_string()).or_default();
            if s.display.is_empty() {
                s.display = query.to_string();
            }
            match d.rcode.as_deref() {
                None if !answered => {
                    s.unanswered_count += 1;
                    if s.unanswered.len() < MAX_UNANSWERED_KEPT {
                        s.unanswered.push((frame, ts, d.retransmissions, client.ip));
                    }
                }
                Some("NXDOMAIN") => s.nxdomain.add_labeled(frame, ts, &ip),
                Some("NOERROR") if targets.is_empty() => s.nodata.add_labeled(frame, ts, &ip),
                Some("NOERROR") => {
                    s.answered.add_labeled(frame, ts, &ip);
                    s.max_targets = s.max_targets.max(targets.len());
                }
                Some(other) => s
                    .failed
                    .entry(other.to_string())
                    .or_default()
                    .add_labeled(frame, ts, &ip),
                None => {}
            }
            // Target sets for DNS-13: answers with records, and definite "no record" answers.
            let definite = matches!(d.rcode.as_deref(), Some("NOERROR" | "NXDOMAIN"));
            if definite {
                let key: Vec<SrvTarget> = targets.clone();
                let resolver = server.map(|e| e.ip);
                let n_sets = s.target_sets.len();
                match s.target_sets.iter_mut().find(|(t, _, _)| *t == key) {
                    Some((_, resolvers, ev)) => {
                        ev.add_labeled(frame, ts, &ip);
                        if let Some(r) = resolver {
                            insert_bounded(resolvers, r, MAX_EVIDENCE_RESOLVERS);
                        }
                    }
                    None if n_sets < MAX_TARGET_SETS => {
                        let mut ev = Evidence::default();
                        ev.add_labeled(frame, ts, &ip);
                        s.target_sets
                            .push((key, resolver.into_iter().collect(), ev));
                    }
                    None => {}
                }
            }
        }
        if let Some(c) = self.client_mut(client.ip, true) {
            c.dns_seen |= d.status != "response_only";
            if ok {
                c.last_success_frame = c.last_success_frame.max(frame);
            }
            push_latest(
                &mut c.srv,
                SrvLookup {
                    frame,
                    ts,
                    name: query.to_string(),
                    rcode: d.rcode.clone(),
                    targets,
                    additional,
                },
                MAX_SRV_LOOKUPS_PER_CLIENT,
                |l| l.frame,
            );
        }
    }

    /// Records a connection outcome or a bind / call on a connection of `client` to `server`.
    /// Whether the connection is among the tracked attempts (see [`NetState::is_tracked`]), and
    /// if not, whether its client address is.
    pub fn observe_attempt(
        &mut self,
        client: Endpoint,
        server: Endpoint,
        frame: u64,
        ts: Ts,
        update: AttemptUpdate,
    ) -> AttemptSeen {
        let Some(c) = self.client_mut(client.ip, true) else {
            return AttemptSeen::UnknownClient;
        };
        if let AttemptUpdate::Call("activated") = update {
            c.last_success_frame = c.last_success_frame.max(frame);
        }
        let idx = c
            .attempts
            .iter()
            .position(|a| a.client_port == client.port && a.server == server);
        let a = match idx {
            Some(i) => &mut c.attempts[i],
            None => {
                if c.attempts.len() >= MAX_ATTEMPTS_PER_CLIENT {
                    c.attempts_dropped += 1;
                    return AttemptSeen::Dropped;
                }
                // Snapshot the DNS part of the chain now, while the client's recent lookups are
                // in its history (a client without lookups needs no look at the name tables).
                let dns = match DnsPart::without_lookups(c) {
                    Some(part) => part,
                    None => {
                        // Immutable borrow of the history and the name tables.
                        let Some(c) = self.clients.get(&client.ip) else {
                            return AttemptSeen::UnknownClient;
                        };
                        let part = self.dns_part(c, frame, server);
                        let Some(c) = self.clients.get_mut(&client.ip) else {
                            return AttemptSeen::UnknownClient;
                        };
                        c.attempts
                            .push(Attempt::new(frame, ts, client.port, server, part));
                        let last = c.attempts.len() - 1;
                        Self::update_attempt(&mut c.attempts[last], frame, ts, update);
                        return AttemptSeen::Tracked;
                    }
                };
                c.attempts
                    .push(Attempt::new(frame, ts, client.port, server, dns));
                let last = c.attempts.len() - 1;
                &mut c.attempts[last]
            }
        };
        Self::update_attempt(a, frame, ts, update);
        AttemptSeen::Tracked
    }

    fn update_attempt(a: &mut Attempt, frame: u64, ts: Ts, update: AttemptUpdate) {
        if frame < a.frame {
            a.frame = frame;
            a.ts = ts;
        }
        match update {
            AttemptUpdate::Connect(r, syns) => {
                a.connect = r;
                a.syns = a.syns.max(syns);
            }
            AttemptUpdate::Bind(result) => {
                // A later acceptance (alter_context) overrides an earlier rejection.
                if a.bind.is_none_or(|(_, r)| r != "accepted") {
                    a.bind = Some((frame, result));
                }
            }
            AttemptUpdate::Call(outcome) => a.call = Some((frame, outcome)),
        }
    }

    /// Addresses of `name` (normalised) from every answer seen, following CNAMEs.
    pub fn addrs_of(&self, name: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let mut n = name.to_string();
        for _ in 0..MAX_CNAME_HOPS {
            if let Some(v) = self.name_addrs.get(&n) {
                for a in v {
                    if !out.contains(a) {
                        out.push(*a);
                    }
                }
            }
            match self.cnames.get(&n) {
                Some(t) if *t != n => n = t.clone(),
                _ => break,
            }
        }
        out
    }

    /// Names (normalised) that resolved to `ip` in any answer seen (CNAME owners included).
    pub fn names_of(&self, ip: IpAddr) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .addr_names
            .get(&ip)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default();
        let mut frontier: Vec<String> = out.iter().cloned().collect();
        for _ in 0..MAX_CNAME_HOPS {
            let mut next = Vec::new();
            for n in &frontier {
                for owner in self.cname_owners.get(n).into_iter().flatten() {
                    if out.insert(owner.clone()) {
                        next.push(owner.clone());
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        out
    }

    /// Addresses of an SRV target as a lookup saw them: its additional section, then every answer.
    pub fn target_addrs(&self, lookup: &SrvLookup, target: &str) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = lookup
            .additional
            .iter()
            .filter(|(n, _)| n == target)
            .map(|(_, a)| *a)
            .collect();
        for a in self.addrs_of(target) {
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }

    /// Every SRV record seen in an answer, with the SRV names that carried it.
    pub fn advertised(&self) -> BTreeMap<(String, u16), AdvertisedTarget> {
        let mut out: BTreeMap<(String, u16), AdvertisedTarget> = BTreeMap::new();
        for s in self.srv_names.values() {
            for (set, _, ev) in &s.target_sets {
                for t in set {
                    let e =
                        out.entry((t.target.clone(), t.port))
                            .or_insert_with(|| AdvertisedTarget {
                                target: t.target.clone(),
                                port: t.port,
                                priority: t.priority,
                                queries: Vec::new(),
                                addrs: self.addrs_of(&t.target),
                                evidence: Evidence::default(),
                            });
                    e.priority = e.priority.min(t.priority);
                    insert_bounded(&mut e.queries, s.display.clone(), 8);
                    e.evidence.merge(ev);
                }
            }
        }
        // Addresses carried only in additional sections of client lookups; in client address
        // order, because the list is bounded and its order is shown (DNS-10).
        if out.is_empty() {
            return out;
        }
        for (_, c) in self.clients_by_addr(|c| !c.srv.is_empty()) {
            for l in &c.srv {
                for t in &l.targets {
                    if let Some(e) = out.get_mut(&(t.target.clone(), t.port)) {
                        for a in self.target_addrs(l, &t.target) {
                            insert_bounded(&mut e.addrs, a, MAX_ADDRS_PER_NAME);
                        }
                    }
                }
            }
        }
        out
    }

    /// The discovery chain of the connection `client` -> `server` whose first evidence is `frame`
    /// (its attempt, when tracked, gives the connect / bind / call steps; `fallback` otherwise).
    pub fn chain(&self, client: Endpoint, server: Endpoint, fallback: &Attempt) -> DiscoveryChain {
        let Some(c) = self.clients.get(&client.ip) else {
            let mut ch = match &fallback.dns {
                Some(snap) => snap.to_chain(),
                None => DiscoveryChain {
                    method: "unknown",
                    ..DiscoveryChain::default()
                },
            };
            fill_steps(&mut ch, fallback);
            return ch;
        };
        let attempt = c
            .attempts
            .iter()
            .find(|a| a.client_port == client.port && a.server == server)
            .unwrap_or(fallback);
        self.chain_of(c, attempt)
    }

    /// True when the connection `client` -> `server` is among the tracked attempts.
    pub fn is_tracked(&self, client: Endpoint, server: Endpoint) -> bool {
        self.clients.get(&client.ip).is_some_and(|c| {
            c.attempts
                .iter()
                .any(|a| a.client_port == client.port && a.server == server)
        })
    }

    /// The DNS part of the chain of a connection `client` -> `server` first seen at `frame` that
    /// is not among the tracked attempts (see [`NetState::chain`]), to keep for later.
    pub fn dns_snapshot(&self, client: Endpoint, server: Endpoint, frame: u64) -> DnsPart {
        match self.clients.get(&client.ip) {
            Some(c) => self.dns_part(c, frame, server),
            None => DnsPart::Method("unknown"),
        }
    }

    /// The DNS part of the chain of one attempt of client history `c` (see [`NetState::chain_of`]):
    /// its snapshot, or rebuilt from the history now; no steps, no copy of a snapshot.
    pub fn dns_part_of<'a>(
        &self,
        c: &ClientNet,
        attempt: &'a Attempt,
    ) -> std::borrow::Cow<'a, DnsPart> {
        match &attempt.dns {
            Some(snap) => std::borrow::Cow::Borrowed(snap),
            None => std::borrow::Cow::Owned(self.dns_part(c, attempt.frame, attempt.server)),
        }
    }

    /// The discovery chain of one attempt of client history `c`: the DNS part snapshotted when the
    /// attempt was first seen (or rebuilt from the history now), then its connect / bind / call.
    pub fn chain_of(&self, c: &ClientNet, attempt: &Attempt) -> DiscoveryChain {
        let mut ch = match &attempt.dns {
            Some(snap) => snap.to_chain(),
            None => self.dns_part(c, attempt.frame, attempt.server).into_chain(),
        };
        fill_steps(&mut ch, attempt);
        ch
    }

    /// The DNS part of the chain of a connection to `server` first seen at `frame`, from client
    /// history `c`: the SRV query and target that led to it, the address lookup, the method.
    fn dns_part(&self, c: &ClientNet, frame: u64, server: Endpoint) -> DnsPart {
        if let Some(part) = DnsPart::without_lookups(c) {
            return part;
        }
        let mut ch = DiscoveryChain::default();
        let mut srv_before: Vec<&SrvLookup> = c.srv.iter().filter(|l| l.frame < frame).collect();
        srv_before.sort_by_key(|l| std::cmp::Reverse(l.frame));
        let mut chosen: Option<(&SrvLookup, &SrvTarget)> = None;
        for l in &srv_before {
            if let Some(t) = l.targets.iter().find(|t| {
                t.port == server.port && self.target_addrs(l, &t.target).contains(&server.ip)
            }) {
                chosen = Some((l, t));
                break;
            }
        }
        let shown_srv = chosen.map(|(l, _)| l).or(srv_before.first().copied());
        ch.srv_query = shown_srv.map(|l| ChainDns {
            frame: l.frame,
            name: l.name.clone(),
            qtype: "SRV".into(),
            rcode: l.rcode.clone(),
            answers: l
                .targets
                .iter()
                .map(|t| format!("{}:{}", t.target, t.port))
                .collect(),
        });
        let mut lookups: Vec<&AddrLookup> = c.lookups.iter().filter(|l| l.frame < frame).collect();
        lookups.sort_by_key(|l| std::cmp::Reverse(l.frame));
        // Prefer the lookup whose own answer carried the contacted address (the A answer rather
        // than the empty AAAA answer next to it), then any lookup of the right name.
        let by_name = |name: &str| {
            lookups
                .iter()
                .find(|l| l.name == name && l.addrs.contains(&server.ip))
                .or_else(|| lookups.iter().find(|l| l.name == name))
                .copied()
        };
        let lookup = match chosen {
            Some((_, t)) => by_name(&t.target),
            None => lookups
                .iter()
                .find(|l| l.addrs.contains(&server.ip))
                .or_else(|| {
                    lookups
                        .iter()
                        .find(|l| self.addrs_of(&l.name).contains(&server.ip))
                })
                .copied(),
        };
        ch.address_lookup = lookup.map(|l| ChainDns {
            frame: l.frame,
            name: l.name.clone(),
            qtype: l.qtype.clone(),
            rcode: l.rcode.clone(),
            answers: l.addrs.iter().map(|a| a.to_string()).collect(),
        });
        ch.target = chosen.map(|(_, t)| ChainTarget {
            target: t.target.clone(),
            port: t.port,
            priority: t.priority,
            weight: t.weight,
        });
        ch.method = if chosen.is_some() {
            "dns_srv"
        } else if lookup.is_some() {
            "static_name"
        } else if c.dns_seen {
            "static_address"
        } else {
            "unknown"
        };
        DnsPart::Chain(Box::new(ch))
    }
}

impl DnsPart {
    /// The DNS part of a client history without SRV and address lookups: only its method, the
    /// same whatever the connection; `None` when there are lookups.
    fn without_lookups(c: &ClientNet) -> Option<DnsPart> {
        (c.srv.is_empty() && c.lookups.is_empty()).then_some(DnsPart::Method(if c.dns_seen {
            "static_address"
        } else {
            "unknown"
        }))
    }
}

impl Attempt {
    fn new(frame: u64, ts: Ts, client_port: u16, server: Endpoint, dns: DnsPart) -> Attempt {
        Attempt {
            frame,
            ts,
            client_port,
            server,
            connect: ConnectResult::Established,
            syns: 0,
            bind: None,
            call: None,
            dns: Some(dns),
        }
    }
}

/// Resolvers remembered per SRV target set.
const MAX_EVIDENCE_RESOLVERS: usize = 8;

fn fill_steps(ch: &mut DiscoveryChain, a: &Attempt) {
    ch.connect = Some(ChainStep {
        frame: a.frame,
        server: Some(a.server),
        result: a.connect.as_str().to_string(),
    });
    ch.bind = a.bind.map(|(frame, r)| ChainStep {
        frame,
        server: None,
        result: r.to_string(),
    });
    ch.call = a.call.map(|(frame, r)| ChainStep {
        frame,
        server: None,
        result: r.to_string(),
    });
}

/// What [`NetState::observe_attempt`] did with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptSeen {
    /// Among the tracked attempts of its client address.
    Tracked,
    /// Not tracked: its client address has all the attempts it may keep.
    Dropped,
    /// Not tracked: its client address is not (the table of addresses is full).
    UnknownClient,
}

/// What an `rpc` or `kms` event tells about a connection attempt.
#[derive(Clone, Copy, Debug)]
pub enum AttemptUpdate {
    /// TCP outcome and SYN count.
    Connect(ConnectResult, u32),
    /// `accepted`, `rejected`, `bind_nak`.
    Bind(&'static str),
    /// Call outcome.
    Call(&'static str),
}

/// One SRV record (target and port) as advertised anywhere in the capture.
#[derive(Clone, Debug)]
pub struct AdvertisedTarget {
    pub target: String,
    pub port: u16,
    /// Lowest priority it was advertised with.
    pub priority: u16,
    /// SRV names (as on the wire) that advertised it.
    pub queries: Vec<String>,
    /// Its addresses from every answer seen.
    pub addrs: Vec<IpAddr>,
    /// The answers that carried it.
    pub evidence: Evidence,
}

/// Keeps the latest `max` items by key (`frame`), inserting in key order.
fn push_latest<T>(v: &mut Vec<T>, item: T, max: usize, key: impl Fn(&T) -> u64) {
    let k = key(&item);
    let pos = v.iter().position(|x| key(x) > k).unwrap_or(v.len());
    v.insert(pos, item);
    if v.len() > max {
        v.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two states with the same clients, built with different seeds and in opposite orders (so
    /// their tables iterate the clients in different orders), give the same advertised targets:
    /// the bounded address list is filled in client address order, not in table order.
    #[test]
    fn advertised_does_not_depend_on_table_order() {
        const TARGET: &str = "kms.corp.example";
        let srv_target = SrvTarget {
            target: TARGET.into(),
            port: 1688,
            priority: 0,
            weight: 0,
        };
        // More clients than the list keeps, each told a different address in its additional
        // section (none in the name tables, so only the clients' lookups give addresses).
        let n = MAX_ADDRS_PER_NAME as u8 + 24;
        let client = |i: u8| -> (IpAddr, ClientNet) {
            let lookup = SrvLookup {
                frame: 10 + u64::from(i),
                ts: Ts(i64::from(i)),
                name: "_vlmcs._tcp.corp.example".into(),
                rcode: Some("NOERROR".into()),
                targets: vec![srv_target.clone()],
                additional: vec![(TARGET.into(), IpAddr::from([192, 0, 2, i]))],
            };
            let c = ClientNet {
                dns_seen: true,
                srv: vec![lookup],
                ..ClientNet::default()
            };
            (IpAddr::from([10, 0, 0, i]), c)
        };
        let state = |order: &mut dyn Iterator<Item = u8>| {
            let mut net = NetState::default();
            net.srv_names.insert(
                "_vlmcs._tcp.corp.example".into(),
                SrvName {
                    display: "_vlmcs._tcp.corp.example".into(),
                    target_sets: vec![(vec![srv_target.clone()], Vec::new(), Evidence::default())],
                    ..SrvName::default()
                },
            );
            for i in order {
                let (ip, c) = client(i);
                net.clients.insert(ip, c);
            }
            net
        };
        let up = state(&mut (0..n));
        let down = state(&mut (0..n).rev());
        let ips = |net: &NetState| -> Vec<IpAddr> { net.clients.keys().copied().collect() };
        // The premise: the two tables do iterate differently (or the test proves nothing).
        assert_ne!(ips(&up), ips(&down));
        let (a, b) = (up.advertised(), down.advertised());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let expected: Vec<IpAddr> = (0..MAX_ADDRS_PER_NAME as u8)
            .map(|i| IpAddr::from([192, 0, 2, i]))
            .collect();
        assert_eq!(a[&(TARGET.to_string(), 1688)].addrs, expected);
        // clients_by_addr: the selected clients, in address order.
        let odd = up.clients_by_addr(|c| c.srv[0].frame % 2 == 1);
        let odd_ips: Vec<IpAddr> = odd.iter().map(|(ip, _)| *ip).collect();
        let expected: Vec<IpAddr> = (0..n)
            .filter(|i| (10 + u64::from(*i)) % 2 == 1)
            .map(|i| IpAddr::from([10, 0, 0, i]))
            .collect();
        assert_eq!(odd_ips, expected);
    }

    /// [`NetState::dns_part_of`] (what DNS-12 reads) gives the method and address lookup of
    /// [`NetState::chain_of`], for attempts with a snapshot and without one.
    #[test]
    fn dns_part_of_agrees_with_chain_of() {
        let server = Endpoint {
            ip: "192.0.2.10".parse().unwrap(),
            port: 1688,
        };
        let other = Endpoint {
            ip: "192.0.2.11".parse().unwrap(),
            port: 1688,
        };
        let lookup = AddrLookup {
            frame: 5,
            ts: Ts(5),
            name: "kms.corp.example".into(),
            qtype: "A".into(),
            rcode: Some("NOERROR".into()),
            addrs: vec![server.ip],
        };
        let srv = SrvLookup {
            frame: 3,
            ts: Ts(3),
            name: "_vlmcs._tcp.corp.example".into(),
            rcode: Some("NOERROR".into()),
            targets: vec![SrvTarget {
                target: "kms.corp.example".into(),
                port: 1688,
                priority: 0,
                weight: 0,
            }],
            additional: vec![("kms.corp.example".into(), server.ip)],
        };
        let attempt = |frame: u64, server: Endpoint, dns: Option<DnsPart>| Attempt {
            dns,
            ..Attempt::new(frame, Ts(frame as i64), 50_000, server, DnsPart::Method(""))
        };
        let net = NetState::default();
        for (srv, lookups, dns_seen) in [
            (vec![], vec![], false),
            (vec![], vec![], true),
            (vec![], vec![lookup.clone()], true),
            (vec![srv.clone()], vec![lookup.clone()], true),
        ] {
            let c = ClientNet {
                dns_seen,
                srv,
                lookups,
                ..ClientNet::default()
            };
            let rebuilt = net.dns_part(&c, 9, server);
            for a in [
                attempt(9, server, None),
                attempt(9, other, None),
                attempt(2, server, None),
                attempt(9, server, Some(DnsPart::Method("unknown"))),
                attempt(9, server, Some(rebuilt.clone())),
            ] {
                let part = net.dns_part_of(&c, &a);
                let chain = net.chain_of(&c, &a);
                assert_eq!(part.method(), chain.method);
                assert_eq!(part.address_lookup(), chain.address_lookup.as_ref());
            }
        }
    }
}
