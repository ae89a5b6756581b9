//! TCP and DCE/RPC checks (checks.md, RPC-01…RPC-08): connection outcomes towards KMS ports and
//! SRV-advertised ports, binds, faults, missing or slow replies, foreign payload.

use std::collections::BTreeMap;

use super::dns::{clients_fell_back, conclusive_no_answer};
use super::{Findings, frames_text, subject, times};
use crate::analysis::State;
use crate::analysis::evidence::{Evidence, join_list};
use crate::analysis::policy::Policy;
use crate::analysis::state::kms_servers;
use crate::event::{Endpoint, Severity, Subject};

/// Runs the RPC family.
pub fn run(state: &State, policy: &Policy, out: &mut Findings) {
    rpc_01_connect_refused(state, out);
    rpc_02_connect_filtered(state, policy, out);
    rpc_03_bind_rejected(state, out);
    rpc_04_rpc_fault(state, out);
    rpc_05_no_response(state, out);
    rpc_06_slow_response(state, policy, out);
    rpc_07_not_dcerpc(state, out);
    rpc_08_nonstandard_port(state, out);
}

fn server_subject(ep: &Endpoint) -> Subject {
    Subject {
        server: Some(ep.to_string()),
        ..subject()
    }
}

/// The names an address had in DNS answers, as ` (kms-old.corp.example)`.
fn names_note(state: &State, ep: &Endpoint) -> String {
    let names: Vec<String> = state.net.names_of(ep.ip).into_iter().take(3).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// RPC-01 connect_refused: a SYN to a KMS or SRV-advertised port answered by RST: nothing listens.
/// Error (warning when every such client then reached another address of the same host name or
/// another target of the same SRV answer); predicts 0xC004F074 (0x800706BA in the event log).
pub fn rpc_01_connect_refused(state: &State, out: &mut Findings) {
    for (ep, s) in &state.servers {
        let ev = &s.refused;
        if ev.is_empty() {
            continue;
        }
        let worked = s
            .established
            .map(|f| format!("; other connections to it worked (first at frame {f})"))
            .unwrap_or_default();
        let recovered = clients_fell_back(state, ep);
        out.add(
            "RPC-01",
            if recovered {
                Severity::Warning
            } else {
                Severity::Error
            },
            server_subject(ep),
            format!(
                "Connection to {ep}{} was refused (SYN answered by RST) {} (clients {}, {}): nothing listens on that port, so these attempts fail with 0x800706BA{}{worked}",
                names_note(state, ep),
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                if recovered {
                    "; the clients then reached another address or SRV target of the same service, so activation only slows down"
                } else {
                    " and, without another host, 0xC004F074"
                }
            ),
            format!(
                "On {ip}: start the Software Protection service (net start sppsvc) and check the KMS port (slmgr /dlv; slmgr /sprt {port}); if the host is decommissioned, point the clients elsewhere (slmgr /ckms to use DNS discovery) and delete its SRV record",
                ip = ep.ip,
                port = ep.port
            ),
            Some(if recovered {
                "0x800706BA"
            } else {
                "0xC004F074"
            }),
            ev,
        );
    }
}

/// RPC-02 connect_filtered: SYNs to a KMS port without any answer, retried (or with the capture
/// going on for `connect_wait_s` after it): a firewall drops the port. Error (warning when the
/// clients fell back as for RPC-01); predicts 0xC004F074.
pub fn rpc_02_connect_filtered(state: &State, policy: &Policy, out: &mut Findings) {
    for (ep, s) in &state.servers {
        let list = conclusive_no_answer(state, policy, s);
        if list.is_empty() {
            continue;
        }
        let mut ev = Evidence::default();
        let mut max_syns = 0;
        for (frame, ts, syns, ip) in &list {
            ev.add_labeled(*frame, *ts, &ip.to_string());
            max_syns = max_syns.max(*syns);
        }
        ev.count += s.no_answer_count.saturating_sub(s.no_answer.len() as u64);
        let recovered = clients_fell_back(state, ep);
        out.add(
            "RPC-02",
            if recovered {
                Severity::Warning
            } else {
                Severity::Error
            },
            server_subject(ep),
            format!(
                "Connections to {ep}{} got no answer at all {} (up to {max_syns} SYNs each; clients {}, {}): a firewall drops TCP {} or the host is down, so clients wait{}",
                names_note(state, ep),
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                ep.port,
                if recovered {
                    ", then reach another address or SRV target of the same service"
                } else {
                    " and report 0xC004F074"
                }
            ),
            format!(
                "Open TCP {port} inbound on {ip} (netsh advfirewall firewall add rule name=\"KMS\" dir=in action=allow protocol=TCP localport={port}) and in network firewalls between the clients and the host; check that the host is up",
                ip = ep.ip,
                port = ep.port
            ),
            Some("0xC004F074"),
            &ev,
        );
    }
}

/// RPC-03 bind_rejected: a bind_nak, or a bind_ack / alter_context_resp that rejected every proposed
/// KMS context with no later acceptance on the connection. Error.
pub fn rpc_03_bind_rejected(state: &State, out: &mut Findings) {
    let mut rejected: BTreeMap<Endpoint, Evidence> = BTreeMap::new();
    for ((client, server), (frame, ts)) in state.unrecovered_binds() {
        rejected
            .entry(server)
            .or_default()
            .add_labeled(frame, ts, &client.ip.to_string());
    }
    for (ep, s) in &state.servers {
        if !s.bind_nak.is_empty() {
            let reasons: Vec<String> = s.nak_reasons.iter().cloned().collect();
            out.add(
                "RPC-03",
                Severity::Error,
                server_subject(ep),
                format!(
                    "{ep} rejected the association with bind_nak {} ({}; clients {}, {}): the listener is not a KMS endpoint or refuses this client's RPC protocol",
                    times(s.bind_nak.count),
                    join_list(&reasons, false),
                    s.bind_nak.label_list(),
                    frames_text(&s.bind_nak.frames)
                ),
                format!(
                    "Check what listens on {ep} (netstat -abno on the host): it should be sppsvc; restart sppsvc, or point the clients at a real KMS host"
                ),
                Some("0xC004F074"),
                &s.bind_nak,
            );
        }
    }
    for (ep, ev) in rejected {
        out.add(
            "RPC-03",
            Severity::Error,
            server_subject(&ep),
            format!(
                "{ep} accepted the connection but its bind_ack rejected every proposed KMS context {} (clients {}, {}): the listener does not offer the KMS interface 51c82175-844e-4750-b0d8-ec255555bc06 or refuses the transfer syntaxes",
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            format!(
                "Check what listens on {ep}: it should be the KMS host's sppsvc; if it is another RPC service, move one of them (slmgr /sprt <port> on the KMS host) and update the SRV record"
            ),
            Some("0xC004F074"),
            &ev,
        );
    }
}

/// RPC-04 rpc_fault: fault PDUs answered calls (the status codes are named, e.g. nca_unk_if).
/// Error; one finding per server listing every status.
pub fn rpc_04_rpc_fault(state: &State, out: &mut Findings) {
    for (ep, s) in &state.servers {
        if s.faults.is_empty() {
            continue;
        }
        let mut ev = Evidence::default();
        let mut what: Vec<String> = Vec::new();
        for (code, (name, e)) in &s.faults {
            ev.merge(e);
            what.push(match name {
                Some(n) => format!("{n} ({code}) x{}", e.count),
                None => format!("{code} x{}", e.count),
            });
        }
        out.add(
            "RPC-04",
            Severity::Error,
            server_subject(ep),
            format!(
                "{ep} answered {} call(s) with an RPC fault: {} (clients {}, {}); the host rejected the call at the RPC level, before any KMS processing",
                ev.count,
                what.join(", "),
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            "nca_unk_if / nca_op_rng_error: the listener is not a KMS host, or the client named a context or operation it never bound (update the KMS host, check the client); nca_proto_error: broken client or a middlebox altering the stream; for others check the host's System and Application logs".to_string(),
            None,
            &ev,
        );
    }
}

/// RPC-05 no_response: a KMS request whose connection was closed, reset or went idle before any
/// response. Error; predicts 0xC004F074.
pub fn rpc_05_no_response(state: &State, out: &mut Findings) {
    for (ep, s) in &state.servers {
        let ev = &s.unanswered;
        if ev.is_empty() {
            continue;
        }
        let reasons: Vec<String> = s
            .unanswered_reasons
            .iter()
            .map(|r| r.replace('_', " "))
            .collect();
        let resets: Vec<String> = s
            .reset
            .labels
            .iter()
            .filter(|l| !l.is_empty())
            .cloned()
            .collect();
        out.add(
            "RPC-05",
            Severity::Error,
            server_subject(ep),
            format!(
                "{} KMS request(s) to {ep} got no response ({}{}; clients {}, {}): the host dropped the call (crash, overload or policy), so the client reports 0xC004F074",
                ev.count,
                reasons.join(", "),
                if resets.is_empty() {
                    String::new()
                } else {
                    format!("; {}", resets.join("; "))
                },
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            format!(
                "Check the KMS host {}: sppsvc state and the Application / Key Management Service event logs at these times; look for a middlebox closing TCP {} connections",
                ep.ip, ep.port
            ),
            Some("0xC004F074"),
            ev,
        );
    }
}

/// RPC-06 slow_response: request-to-response time above `slow_rpc_ms` (default 2 s). Warning.
pub fn rpc_06_slow_response(state: &State, policy: &Policy, out: &mut Findings) {
    for (ep, s) in &state.servers {
        let ev = &s.slow;
        if ev.is_empty() {
            continue;
        }
        out.add(
            "RPC-06",
            Severity::Warning,
            server_subject(ep),
            format!(
                "{} KMS call(s) to {ep} took longer than {} ms to answer (slowest {:.0} ms; clients {}, {}): the host is overloaded or low priority, or the path is slow",
                ev.count,
                policy.slow_rpc_ms,
                s.max_rtt_ms,
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            "Check the KMS host's load and its KMS priority (slmgr /cpri for normal priority), and the network path (latency, packet loss) between the clients and the host".to_string(),
            None,
            ev,
        );
    }
}

/// RPC-07 not_dcerpc: the payload of a connection to a KMS port (1688, an SRV-advertised port or a
/// known KMS host) is not DCE/RPC: something else owns the port. Warning.
pub fn rpc_07_not_dcerpc(state: &State, out: &mut Findings) {
    let advertised_ports: Vec<u16> = state.net.advertised().keys().map(|(_, p)| *p).collect();
    let kms = kms_servers(state);
    for (ep, s) in &state.servers {
        let ev = &s.not_dcerpc;
        if ev.is_empty() {
            continue;
        }
        if !(ep.port == crate::engine::KMS_PORT
            || advertised_ports.contains(&ep.port)
            || kms.contains(ep))
        {
            continue;
        }
        out.add(
            "RPC-07",
            Severity::Warning,
            server_subject(ep),
            format!(
                "Traffic to {ep} on the KMS port is not DCE/RPC {} (clients {}, {}; {}): another service owns the port, so KMS clients cannot activate there",
                times(ev.count),
                ev.label_list(),
                frames_text(&ev.frames),
                s.not_dcerpc_detail.as_deref().unwrap_or("")
            ),
            format!(
                "Find the process listening on TCP {} on {} (netstat -abno) and move it, or move the KMS host to another port (slmgr /sprt) and update the SRV record",
                ep.port, ep.ip
            ),
            None,
            ev,
        );
    }
}

/// RPC-08 nonstandard_port: the KMS interface bound, or a KMS call decoded, on a port other than
/// 1688. Info.
pub fn rpc_08_nonstandard_port(state: &State, out: &mut Findings) {
    for (ep, s) in &state.servers {
        if !s.kms || ep.port == crate::engine::KMS_PORT || s.kms_evidence.is_empty() {
            continue;
        }
        let ev = &s.kms_evidence;
        out.add(
            "RPC-08",
            Severity::Info,
            server_subject(ep),
            format!(
                "A KMS host answers on the non-standard port {} at {ep} ({} KMS bind(s)/call(s); clients {}, {})",
                ep.port,
                ev.count,
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            format!(
                "Custom port in use: keep the host's port (slmgr /sprt {p}), its firewall rule, the SRV record's port and any static client setting (slmgr /skms host:{p}) in agreement",
                p = ep.port
            ),
            None,
            ev,
        );
    }
}
