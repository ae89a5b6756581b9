//! DNS checks (checks.md, DNS-01…DNS-13): the `_vlmcs._tcp` SRV lookups clients make, the targets
//! they advertise, and how the clients' connections relate to them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{Findings, frames_text, subject, times};
use crate::analysis::State;
use crate::analysis::discovery::{ClientNet, ConnectResult, VLMCS_PREFIX};
use crate::analysis::evidence::{Evidence, join_list};
use crate::analysis::policy::Policy;
use crate::event::{Endpoint, Severity, Subject};
use crate::time::Ts;

/// A client that falls back to another target within this time of a failed connection recovered
/// (DNS-07): Windows tries the next SRV target after ~2 s of SYN retries.
pub const FALLBACK_WINDOW_NS: i64 = 120 * 1_000_000_000;

/// Runs the DNS family.
pub fn run(state: &State, policy: &Policy, out: &mut Findings) {
    dns_01_srv_nxdomain(state, out);
    dns_02_srv_nodata(state, out);
    dns_03_srv_servfail(state, out);
    dns_04_srv_unanswered(state, policy, out);
    dns_05_srv_target_unresolvable(state, out);
    dns_06_srv_target_stale(state, policy, out);
    dns_07_srv_dead_primary(state, out);
    dns_08_srv_single_host(state, out);
    dns_09_srv_nondefault_port(state, out);
    dns_10_srv_unapproved_host(state, policy, out);
    dns_11_srv_unexpected_domain(state, policy, out);
    dns_12_static_kms_host(state, out);
    dns_13_srv_divergent_answers(state, out);
}

/// The domain part of `_vlmcs._tcp.<domain>`.
fn domain_of(query: &str) -> &str {
    let n = query.trim_end_matches('.');
    if n.len() > VLMCS_PREFIX.len() && n.is_char_boundary(VLMCS_PREFIX.len()) {
        &n[VLMCS_PREFIX.len()..]
    } else {
        n
    }
}

fn query_subject(display: &str) -> Subject {
    Subject {
        query: Some(display.to_string()),
        ..subject()
    }
}

/// True when every client named in `ev` later got a usable SRV answer or an activation: the
/// failure did not stop them (another suffix, another resolver, a retry).
fn all_recovered(state: &State, ev: &Evidence) -> bool {
    let first = ev.frames.first().copied().unwrap_or(0);
    !ev.labels.is_empty()
        && ev.labels.iter().all(|l| {
            l.parse::<IpAddr>().ok().is_some_and(|ip| {
                state
                    .net
                    .clients
                    .get(&ip)
                    .is_some_and(|c| c.last_success_frame > first)
            })
        })
}

fn recovered_note(recovered: bool) -> &'static str {
    if recovered {
        "; the client(s) later found a KMS host another way (another suffix, resolver or /skms), so this alone does not stop activation"
    } else {
        ""
    }
}

/// DNS-01 srv_nxdomain: a `_vlmcs._tcp.<domain>` SRV query answered NXDOMAIN. Error (info when every
/// such client later found a KMS host); predicts 0x8007232B.
pub fn dns_01_srv_nxdomain(state: &State, out: &mut Findings) {
    for s in state.net.srv_names.values() {
        let ev = &s.nxdomain;
        if ev.is_empty() {
            continue;
        }
        let d = domain_of(&s.display);
        let rec = all_recovered(state, ev);
        out.add(
            "DNS-01",
            if rec { Severity::Info } else { Severity::Error },
            query_subject(&s.display),
            format!(
                "SRV query {} was answered NXDOMAIN {} (clients {}, {}): clients in {d} cannot find a KMS host through DNS and report 0x8007232B{}",
                s.display,
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                recovered_note(rec)
            ),
            format!(
                "Publish the KMS SRV record in {d}: on the KMS host add {d} to DnsDomainPublishList (HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\SoftwareProtectionPlatform) and restart sppsvc, or create it by hand (dnscmd <dns-server> /recordadd {d} _vlmcs._tcp SRV 0 0 1688 <kms-host-fqdn>); or give the clients the right suffix (primary DNS suffix / DHCP option 15) or run slmgr /skms-domain <kms-zone> on them"
            ),
            Some("0x8007232B"),
            ev,
        );
    }
}

/// DNS-02 srv_nodata: the SRV query answered NOERROR with no SRV record (the zone exists, the KMS
/// record does not). Error (info when recovered); predicts 0x8007251D.
pub fn dns_02_srv_nodata(state: &State, out: &mut Findings) {
    for s in state.net.srv_names.values() {
        let ev = &s.nodata;
        if ev.is_empty() {
            continue;
        }
        let d = domain_of(&s.display);
        let rec = all_recovered(state, ev);
        out.add(
            "DNS-02",
            if rec { Severity::Info } else { Severity::Error },
            query_subject(&s.display),
            format!(
                "SRV query {} was answered NOERROR without any SRV record {} (clients {}, {}): the zone {d} exists but publishes no KMS host, so clients report 0x8007251D{}",
                s.display,
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                recovered_note(rec)
            ),
            format!(
                "On the KMS host check event 12293 (publishing failed) and re-enable publishing with slmgr /sdns, then restart sppsvc; give the host (or a 'KMS hosts' group) the right to update _vlmcs._tcp.{d} (secure dynamic updates), or add the record by hand: dnscmd <dns-server> /recordadd {d} _vlmcs._tcp SRV 0 0 1688 <kms-host-fqdn>"
            ),
            Some("0x8007251D"),
            ev,
        );
    }
}

/// The client HRESULT of a failed DNS RCODE (DNS_ERROR_RCODE_* = 9000 + RCODE, as HRESULT).
fn rcode_hresult(rcode: &str) -> Option<&'static str> {
    match rcode {
        "FORMERR" => Some("0x80072329"),
        "SERVFAIL" => Some("0x8007232A"),
        "NOTIMP" => Some("0x8007232C"),
        "REFUSED" => Some("0x8007232D"),
        _ => None,
    }
}

/// DNS-03 srv_servfail: the SRV query answered SERVFAIL (or another failure RCODE such as REFUSED):
/// the resolver failed. Error (info when recovered); predicts 0x8007232A for SERVFAIL.
pub fn dns_03_srv_servfail(state: &State, out: &mut Findings) {
    for s in state.net.srv_names.values() {
        for (rcode, ev) in &s.failed {
            let rec = all_recovered(state, ev);
            let predicts = rcode_hresult(rcode);
            out.add(
                "DNS-03",
                if rec { Severity::Info } else { Severity::Error },
                query_subject(&s.display),
                format!(
                    "SRV query {} was answered {rcode} {} (clients {}, {}): the DNS server failed to resolve the KMS record{}{}",
                    s.display,
                    times(ev.count),
                    ev.label_list(),
                    frames_text(&ev.frames),
                    predicts
                        .map(|p| format!(", so clients report {p}"))
                        .unwrap_or_default(),
                    recovered_note(rec)
                ),
                "Fix the DNS server the clients use: check its forwarders / conditional forwarders and zone delegation for the KMS zone (nslookup -type=SRV _vlmcs._tcp.<zone> <server>), its event log, and that it allows recursion for these clients".to_string(),
                predicts,
                ev,
            );
        }
    }
}

/// DNS-04 srv_unanswered: an SRV query without answer that was retried, or after which the capture
/// went on for at least `dns_wait_s`. Warning (info when recovered); activation fails or stalls.
pub fn dns_04_srv_unanswered(state: &State, policy: &Policy, out: &mut Findings) {
    let end = state.last_ts.unwrap_or_default();
    let wait = i64::try_from(policy.dns_wait_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    for s in state.net.srv_names.values() {
        let mut ev = Evidence::default();
        for (frame, ts, retrans, ip) in &s.unanswered {
            if *retrans > 0 || end.0.saturating_sub(ts.0) >= wait {
                ev.add_labeled(*frame, *ts, &ip.to_string());
            }
        }
        if ev.is_empty() {
            continue;
        }
        // Queries beyond the kept list count too.
        ev.count += s.unanswered_count.saturating_sub(s.unanswered.len() as u64);
        let rec = all_recovered(state, &ev);
        out.add(
            "DNS-04",
            if rec { Severity::Info } else { Severity::Warning },
            query_subject(&s.display),
            format!(
                "SRV query {} got no answer {} (clients {}, {}): the DNS server is unreachable or drops the query, so KMS discovery fails or stalls{}",
                s.display,
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                recovered_note(rec)
            ),
            "Check that the clients' DNS servers (ipconfig /all) are reachable on UDP and TCP 53 and answer: nslookup -type=SRV _vlmcs._tcp.<zone> <server>; fix firewalls or the DHCP-assigned resolver list".to_string(),
            None,
            &ev,
        );
    }
}

/// DNS-05 srv_target_unresolvable: an SRV record's target has no address in any answer or additional
/// section, and its lookup failed (NXDOMAIN, or NODATA for A). Error; predicts 0xC004F074.
pub fn dns_05_srv_target_unresolvable(state: &State, out: &mut Findings) {
    for ((target, port), adv) in state.net.advertised() {
        if !adv.addrs.is_empty() {
            continue;
        }
        let Some(f) = state.net.lookup_failures.get(&target) else {
            continue;
        };
        let mut ev = Evidence::default();
        ev.merge(&f.nxdomain);
        ev.merge(&f.a_nodata);
        if ev.is_empty() {
            continue;
        }
        let how = if !f.nxdomain.is_empty() {
            "NXDOMAIN"
        } else {
            "no A record (NODATA)"
        };
        let query = adv.queries.first().cloned().unwrap_or_default();
        out.add(
            "DNS-05",
            Severity::Error,
            Subject {
                query: Some(query.clone()),
                host: Some(target.clone()),
                ..subject()
            },
            format!(
                "SRV record {query} points at {target}:{port}, but looking up {target} gave {how} {} (clients {}, {}) and no answer carried an address for it: clients cannot reach this KMS host and, without another, report 0xC004F074",
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            format!(
                "Register an A/AAAA record for {target} (the host's dynamic DNS registration: ipconfig /registerdns on it), or remove the stale SRV record: dnscmd <dns-server> /recorddelete <zone> _vlmcs._tcp SRV"
            ),
            Some("0xC004F074"),
            &ev,
        );
    }
}

/// Failed connections (refused, or unanswered conclusively) to `ep`: evidence labelled by client.
pub(crate) fn failed_connects(state: &State, policy: &Policy, ep: &Endpoint) -> Evidence {
    let mut ev = Evidence::default();
    let Some(s) = state.servers.get(ep) else {
        return ev;
    };
    ev.merge(&s.refused);
    for (frame, ts, _, ip) in conclusive_no_answer(state, policy, s) {
        ev.add_labeled(frame, ts, &ip.to_string());
    }
    ev
}

/// The unanswered connection attempts of a server that are conclusive: the client retried the SYN,
/// or the capture went on for `connect_wait_s` after it.
pub(crate) fn conclusive_no_answer(
    state: &State,
    policy: &Policy,
    s: &crate::analysis::state::ServerRpc,
) -> Vec<(u64, Ts, u32, IpAddr)> {
    let end = state.last_ts.unwrap_or_default();
    let wait = i64::try_from(policy.connect_wait_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    s.no_answer
        .iter()
        .filter(|(_, ts, syns, _)| *syns >= 2 || end.0.saturating_sub(ts.0) >= wait)
        .copied()
        .collect()
}

/// True when every tracked client that failed to connect to `dead` then, within
/// [`FALLBACK_WINDOW_NS`], reached a related endpoint: another address of a name that resolves to
/// `dead` on the same port (e.g. IPv6 refused, IPv4 answered), or another target of the SRV answer
/// that led to `dead`. Such a failure costs time but does not stop activation.
pub(crate) fn clients_fell_back(state: &State, dead: &Endpoint) -> bool {
    let names = state.net.names_of(dead.ip);
    let same_host = |ep: &Endpoint| {
        ep.port == dead.port && names.iter().any(|n| state.net.addrs_of(n).contains(&ep.ip))
    };
    let mut any = false;
    // Any order: the answer (some failure, none unrecovered) does not depend on it.
    for c in state.net.clients.values() {
        for a in c
            .attempts
            .iter()
            .filter(|a| a.server == *dead && a.connect.failed())
        {
            any = true;
            // The SRV answer that advertised `dead` to this client, if that is how it got there.
            let ch_a = state.net.chain_of(c, a);
            let srv_of_a = ch_a
                .srv_query
                .filter(|_| ch_a.method == "dns_srv")
                .map(|q| q.frame);
            let recovered = c.attempts.iter().any(|b| {
                b.connect == ConnectResult::Established
                    && b.server != *dead
                    && b.frame > a.frame
                    && b.ts.0.saturating_sub(a.ts.0) <= FALLBACK_WINDOW_NS
                    && (same_host(&b.server) || {
                        let ch = state.net.chain_of(c, b);
                        ch.method == "dns_srv"
                            && srv_of_a.is_some()
                            && ch.srv_query.map(|q| q.frame) == srv_of_a
                    })
            });
            if !recovered {
                return false;
            }
        }
    }
    any
}

/// DNS-06 srv_target_stale: an address of an SRV target refuses the advertised port (RST) or never
/// answers it, and no connection to it ever worked in the capture. Error; warning when every
/// failing client then reached another host (DNS-07 tells that story). Predicts 0xC004F074.
pub fn dns_06_srv_target_stale(state: &State, policy: &Policy, out: &mut Findings) {
    for ((target, port), adv) in state.net.advertised() {
        for ip in &adv.addrs {
            let ep = Endpoint { ip: *ip, port };
            if state
                .servers
                .get(&ep)
                .is_some_and(|s| s.established.is_some())
            {
                continue;
            }
            let ev = failed_connects(state, policy, &ep);
            if ev.is_empty() {
                continue;
            }
            let recovered = clients_fell_back(state, &ep);
            let refused = state
                .servers
                .get(&ep)
                .is_some_and(|s| !s.refused.is_empty());
            let what = if refused {
                "refused the connection (SYN answered by RST)"
            } else {
                "never answered the SYN"
            };
            let port_note = if port != crate::engine::KMS_PORT {
                format!(
                    " (the record advertises the non-default port {port}; if the host listens on 1688 the record's port is wrong)"
                )
            } else {
                String::new()
            };
            let query = adv.queries.first().cloned().unwrap_or_default();
            out.add(
                "DNS-06",
                if recovered {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                Subject {
                    query: Some(query.clone()),
                    host: Some(target.clone()),
                    server: Some(ep.to_string()),
                    ..subject()
                },
                format!(
                    "SRV record {query} advertises {target}:{port}, and its address {ep} {what} {} (clients {}, {}){port_note}: the published host is gone or blocked; each client loses about 2 s per try{}",
                    times(ev.count),
                    ev.label_list(),
                    frames_text(&ev.frames),
                    if recovered {
                        ", but these clients then reached another host"
                    } else {
                        " and reports 0xC004F074 when no other host answers"
                    }
                ),
                format!(
                    "If {target} is decommissioned, delete its SRV record (dnscmd <dns-server> /recorddelete <zone> _vlmcs._tcp SRV) and stop it publishing (slmgr /cdns on it); otherwise start sppsvc on it, make it listen on {port} (slmgr /sprt {port}) and open TCP {port} inbound in its firewall"
                ),
                Some("0xC004F074"),
                &ev,
            );
        }
    }
}

/// DNS-07 srv_dead_primary: a client's connection to the best-priority target of the SRV answer it
/// used failed, and within two minutes it connected to another advertised target. Warning.
pub fn dns_07_srv_dead_primary(state: &State, out: &mut Findings) {
    let mut found: BTreeMap<(String, Endpoint), (Evidence, BTreeSet<String>)> = BTreeMap::new();
    // In address order: one finding gathers several clients, labelled in order of first
    // appearance. Only clients with a failed connection can have a dead primary.
    let failed = |c: &ClientNet| c.attempts.iter().any(|a| a.connect.failed());
    for (ip, c) in state.net.clients_by_addr(failed) {
        let mut attempts: Vec<_> = c.attempts.iter().collect();
        attempts.sort_by_key(|a| a.frame);
        for (i, a) in attempts.iter().enumerate() {
            if !a.connect.failed() {
                continue;
            }
            let ch = state.net.chain_of(c, a);
            let (Some(t), Some(q)) = (&ch.target, &ch.srv_query) else {
                continue;
            };
            let Some(lookup) = c.srv.iter().find(|l| l.frame == q.frame) else {
                continue;
            };
            let best = lookup.targets.iter().map(|t| t.priority).min();
            if best != Some(t.priority) {
                continue;
            }
            let fallback = attempts[i + 1..].iter().find(|b| {
                b.connect == ConnectResult::Established
                    && b.server != a.server
                    && b.ts.0.saturating_sub(a.ts.0) <= FALLBACK_WINDOW_NS
                    && state.net.chain_of(c, b).method == "dns_srv"
            });
            if let Some(b) = fallback {
                let e = found
                    .entry((t.target.clone(), a.server))
                    .or_insert_with(|| (Evidence::default(), BTreeSet::new()));
                e.0.add_labeled(a.frame, a.ts, &ip.to_string());
                e.0.add_frame(b.frame);
                e.1.insert(b.server.to_string());
            }
        }
    }
    for ((target, dead), (ev, others)) in found {
        let others: Vec<String> = others.into_iter().collect();
        out.add(
            "DNS-07",
            Severity::Warning,
            Subject {
                host: Some(target.clone()),
                server: Some(dead.to_string()),
                ..subject()
            },
            format!(
                "The best-priority SRV target {target} ({dead}) failed {} (clients {}, {}) and the clients fell back to {}: activation works, but each attempt first waits on the dead host",
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                join_list(&others, false)
            ),
            format!(
                "Bring {target} back (start sppsvc, open its KMS port), or remove or demote its SRV record (higher priority number) so clients try the working host first"
            ),
            None,
            &ev,
        );
    }
}

/// DNS-08 srv_single_host: every answer to an SRV name carried exactly one target. Info.
pub fn dns_08_srv_single_host(state: &State, out: &mut Findings) {
    for s in state.net.srv_names.values() {
        if s.answered.is_empty() || s.max_targets != 1 {
            continue;
        }
        let hosts: BTreeSet<String> = s
            .target_sets
            .iter()
            .flat_map(|(set, _, _)| set.iter().map(|t| format!("{}:{}", t.target, t.port)))
            .collect();
        let hosts: Vec<String> = hosts.into_iter().collect();
        out.add(
            "DNS-08",
            Severity::Info,
            query_subject(&s.display),
            format!(
                "SRV name {} publishes a single KMS host ({}) in all {} answer(s), {}: there is no failover if it goes down",
                s.display,
                join_list(&hosts, false),
                s.answered.count,
                frames_text(&s.answered.frames)
            ),
            "Microsoft recommends at least two KMS hosts: install a second host (it publishes itself when it can update the record; give both hosts rights on _vlmcs._tcp) or add its SRV record by hand".to_string(),
            None,
            &s.answered,
        );
    }
}

/// DNS-09 srv_nondefault_port: an SRV record advertises a port other than 1688. Info.
pub fn dns_09_srv_nondefault_port(state: &State, out: &mut Findings) {
    for ((target, port), adv) in state.net.advertised() {
        if port == crate::engine::KMS_PORT {
            continue;
        }
        let query = adv.queries.first().cloned().unwrap_or_default();
        out.add(
            "DNS-09",
            Severity::Info,
            Subject {
                query: Some(query.clone()),
                host: Some(format!("{target}:{port}")),
                ..subject()
            },
            format!(
                "SRV record {query} advertises {target} on port {port} instead of 1688 ({}, {})",
                times(adv.evidence.count),
                frames_text(&adv.evidence.frames)
            ),
            format!(
                "Make sure the host listens on {port} (slmgr /sprt {port} on {target}, then restart sppsvc) and that TCP {port} is open inbound; otherwise correct the record's port"
            ),
            None,
            &adv.evidence,
        );
    }
}

/// DNS-10 srv_unapproved_host: with an allow-list (`--allow-host`), an SRV target whose name and
/// addresses are all outside it. Critical (a rogue or unauthorized KMS host is published).
pub fn dns_10_srv_unapproved_host(state: &State, policy: &Policy, out: &mut Findings) {
    let allow = policy.allow_list();
    if allow.is_empty() {
        return;
    }
    for ((target, port), adv) in state.net.advertised() {
        let ok = allow.iter().any(|a| a.matches_name(&target))
            || adv
                .addrs
                .iter()
                .any(|ip| allow.iter().any(|a| a.matches_ip(*ip)));
        if ok {
            continue;
        }
        let addrs: Vec<String> = adv.addrs.iter().map(IpAddr::to_string).collect();
        let query = adv.queries.first().cloned().unwrap_or_default();
        out.add(
            "DNS-10",
            Severity::Critical,
            Subject {
                query: Some(query.clone()),
                host: Some(target.clone()),
                ..subject()
            },
            format!(
                "SRV record {query} advertises {target}:{port}{} which is not an approved KMS host ({}, {}): a rogue or unauthorized KMS host is published to the clients",
                if addrs.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", addrs.join(", "))
                },
                times(adv.evidence.count),
                frames_text(&adv.evidence.frames)
            ),
            format!(
                "Find and remove unauthorized KMS hosts: list the records (nslookup -type=SRV {query}), delete this one (dnscmd <dns-server> /recorddelete <zone> _vlmcs._tcp SRV), run slmgr /cdns and remove the KMS key on that machine, and restrict who may update _vlmcs._tcp; if the host is legitimate, add it to the allow-list"
            ),
            None,
            &adv.evidence,
        );
    }
}

/// DNS-11 srv_unexpected_domain: with configured KMS zones (`--kms-domain`), a client queried
/// `_vlmcs._tcp` in another zone (a `.local`, ISP or wrong suffix). Warning.
pub fn dns_11_srv_unexpected_domain(state: &State, policy: &Policy, out: &mut Findings) {
    let domains = policy.domains();
    if domains.is_empty() {
        return;
    }
    for (name, s) in &state.net.srv_names {
        let d = domain_of(name);
        if domains.iter().any(|x| x == d) {
            continue;
        }
        let mut ev = Evidence::default();
        ev.merge(&s.nxdomain);
        ev.merge(&s.nodata);
        ev.merge(&s.answered);
        for e in s.failed.values() {
            ev.merge(e);
        }
        for (frame, ts, _, ip) in &s.unanswered {
            ev.add_labeled(*frame, *ts, &ip.to_string());
        }
        if ev.is_empty() {
            continue;
        }
        out.add(
            "DNS-11",
            Severity::Warning,
            query_subject(&s.display),
            format!(
                "Clients {} looked for KMS hosts in {} ({}, {}), which is not a configured KMS zone ({}): their DNS suffix points elsewhere",
                ev.label_list(),
                domain_of(&s.display),
                times(ev.count),
                frames_text(&ev.frames),
                domains.join(", ")
            ),
            format!(
                "Set the clients' primary DNS suffix or DHCP option 15 to the KMS zone, or run slmgr /skms-domain {} on them",
                domains.first().cloned().unwrap_or_default()
            ),
            None,
            &ev,
        );
    }
}

/// DNS-12 static_kms_host: a client whose DNS traffic is in the capture connected to a KMS host that
/// no SRV answer it received advertised (a `/skms` setting or a cached host), or any client
/// connected to a KMS host that none of the capture's SRV answers publishes; the message says
/// whether the host is among the published ones. Info.
pub fn dns_12_static_kms_host(state: &State, out: &mut Findings) {
    let advertised = state.net.advertised();
    let published: BTreeSet<Endpoint> = advertised
        .values()
        .flat_map(|a| {
            a.addrs.iter().map(|ip| Endpoint {
                ip: *ip,
                port: a.port,
            })
        })
        .collect();
    let published_names: Vec<String> = advertised.keys().map(|(t, p)| format!("{t}:{p}")).collect();
    let kms_like = |ep: &Endpoint| {
        ep.port == crate::engine::KMS_PORT
            || state.hosts.contains_key(ep)
            || state.servers.get(ep).is_some_and(|s| s.kms)
            || advertised.keys().any(|(_, p)| *p == ep.port)
    };
    let mut found: BTreeMap<(IpAddr, Endpoint), (Evidence, Option<String>)> = BTreeMap::new();
    // Any order: each entry of `found` belongs to one client and is filled from its attempts alone.
    for (ip, c) in &state.net.clients {
        for a in &c.attempts {
            if !kms_like(&a.server) {
                continue;
            }
            // Only the DNS part of the chain matters here (its steps are not built).
            let part = state.net.dns_part_of(c, a);
            let method = part.method();
            let static_host = method == "static_name" || method == "static_address";
            // Without this client's DNS in the capture, only a host that the capture's SRV answers
            // do not publish is evidence.
            let unpublished =
                method == "unknown" && !published.is_empty() && !published.contains(&a.server);
            if !static_host && !unpublished {
                continue;
            }
            let e = found
                .entry((*ip, a.server))
                .or_insert_with(|| (Evidence::default(), None));
            e.0.add(a.frame, a.ts);
            if let Some(l) = part.address_lookup() {
                e.0.add_frame(l.frame);
                e.1.get_or_insert_with(|| format!("{} (looked up at frame {})", l.name, l.frame));
            }
        }
    }
    for ((ip, server), (ev, name)) in found {
        let dns_seen = state.net.clients.get(&ip).is_some_and(|c| c.dns_seen);
        let how = match (&name, dns_seen) {
            (Some(n), _) => format!("by the name {n}"),
            (None, true) => "by address, with no lookup of it in the capture".to_string(),
            (None, false) => "(its DNS traffic is not in the capture)".to_string(),
        };
        let published_note = if published_names.is_empty() {
            "no SRV answer in the capture publishes any KMS host".to_string()
        } else if published.contains(&server) {
            format!(
                "it is one of the published hosts ({})",
                published_names.join(", ")
            )
        } else {
            format!(
                "it is NOT among the published hosts ({}): the client is configured for a different host than DNS advertises",
                published_names.join(", ")
            )
        };
        out.add(
            "DNS-12",
            Severity::Info,
            Subject {
                client: Some(ip.to_string()),
                server: Some(server.to_string()),
                ..subject()
            },
            format!(
                "Client {ip} contacted the KMS host {server} {how} without an SRV answer advertising it ({}, {}): it uses a static KMS host (slmgr /skms) or a cached one; {published_note}",
                times(ev.count),
                frames_text(&ev.frames)
            ),
            "If the client should use DNS discovery, clear the static host with slmgr /ckms; if the static host is intended, make sure it is kept in service (and consider publishing it)".to_string(),
            None,
            &ev,
        );
    }
}

/// DNS-13 srv_divergent_answers: one SRV name answered with different target sets (by different
/// resolvers or over time; NXDOMAIN/NODATA count as the empty set). Warning.
pub fn dns_13_srv_divergent_answers(state: &State, out: &mut Findings) {
    for s in state.net.srv_names.values() {
        if s.target_sets.len() < 2 {
            continue;
        }
        let mut ev = Evidence::default();
        let mut sets: Vec<String> = Vec::new();
        for (set, resolvers, e) in &s.target_sets {
            ev.merge(e);
            let targets: Vec<String> = set
                .iter()
                .map(|t| format!("{}:{}", t.target, t.port))
                .collect();
            let rs: Vec<String> = resolvers.iter().map(IpAddr::to_string).collect();
            sets.push(format!(
                "{{{}}} from {} at {}",
                if targets.is_empty() {
                    "no record".to_string()
                } else {
                    targets.join(", ")
                },
                if rs.is_empty() {
                    "?".to_string()
                } else {
                    rs.join("/")
                },
                frames_text(&e.frames[..e.frames.len().min(2)])
            ));
        }
        out.add(
            "DNS-13",
            Severity::Warning,
            query_subject(&s.display),
            format!(
                "SRV name {} was answered with {} different target sets: {}; clients see different KMS hosts depending on resolver or time",
                s.display,
                s.target_sets.len(),
                sets.join("; ")
            ),
            "Check replication of the KMS zone between the DNS servers (repadmin /replsummary for AD-integrated zones, zone transfers otherwise) and remove stale copies of the record".to_string(),
            None,
            &ev,
        );
    }
}
