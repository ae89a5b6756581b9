//! The checks of docs/checks.md: each a small function with its stable ID and snake_case name that
//! looks at the [`State`] rebuilt from the wire and returns findings. One file per family:
//! [`dns`] (DNS-01…13), [`rpc`] (RPC-01…08), [`kms`] (KMS-01…22). [`CHECKS`] is the table of every
//! check (also in README.md, section "Checks").
//!
//! Findings are de-duplicated per (check, subject): a second finding for the same pair adds its
//! count and frames to the first. Where passive evidence cannot be certain, the message says what
//! the evidence is and what it predicts.

pub mod dns;
pub mod kms;
pub mod rpc;

use std::collections::BTreeMap;

use super::State;
use super::evidence::{Evidence, MAX_EVIDENCE_FRAMES};
use super::policy::Policy;
use crate::event::{Finding, Severity, Subject};

/// One row of the check table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckInfo {
    /// Stable ID from checks.md.
    pub id: &'static str,
    /// Stable snake_case name (the `name` of a finding).
    pub name: &'static str,
    /// Default severity (some checks lower or raise it as their doc comment says).
    pub severity: Severity,
    /// One-line description.
    pub summary: &'static str,
}

const fn c(
    id: &'static str,
    name: &'static str,
    severity: Severity,
    summary: &'static str,
) -> CheckInfo {
    CheckInfo {
        id,
        name,
        severity,
        summary,
    }
}

use Severity::{Critical, Error, Info, Warning};

/// Every check, in catalog order.
pub const CHECKS: [CheckInfo; 43] = [
    c(
        "DNS-01",
        "srv_nxdomain",
        Error,
        "`_vlmcs._tcp.<domain>` SRV answered NXDOMAIN (predicts 0x8007232B)",
    ),
    c(
        "DNS-02",
        "srv_nodata",
        Error,
        "SRV answered NOERROR without SRV records (predicts 0x8007251D)",
    ),
    c(
        "DNS-03",
        "srv_servfail",
        Error,
        "SRV answered SERVFAIL or another failure RCODE (predicts 0x8007232A)",
    ),
    c(
        "DNS-04",
        "srv_unanswered",
        Warning,
        "SRV query retried or left without answer",
    ),
    c(
        "DNS-05",
        "srv_target_unresolvable",
        Error,
        "SRV target's A/AAAA lookup fails and no address is known (predicts 0xC004F074)",
    ),
    c(
        "DNS-06",
        "srv_target_stale",
        Error,
        "SRV target refuses or never answers the advertised port (predicts 0xC004F074)",
    ),
    c(
        "DNS-07",
        "srv_dead_primary",
        Warning,
        "best-priority SRV target fails and the client falls back to another",
    ),
    c(
        "DNS-08",
        "srv_single_host",
        Info,
        "every SRV answer has exactly one target: no failover",
    ),
    c(
        "DNS-09",
        "srv_nondefault_port",
        Info,
        "SRV advertises a port other than 1688",
    ),
    c(
        "DNS-10",
        "srv_unapproved_host",
        Critical,
        "SRV target outside the allow-list (needs --allow-host)",
    ),
    c(
        "DNS-11",
        "srv_unexpected_domain",
        Warning,
        "client queries `_vlmcs._tcp` in a zone not configured (needs --kms-domain)",
    ),
    c(
        "DNS-12",
        "static_kms_host",
        Info,
        "KMS connection not explained by an SRV answer the client received (/skms or cache)",
    ),
    c(
        "DNS-13",
        "srv_divergent_answers",
        Warning,
        "same SRV name answered with different target sets",
    ),
    c(
        "RPC-01",
        "connect_refused",
        Error,
        "SYN to a KMS port answered by RST (predicts 0xC004F074 / 0x800706BA)",
    ),
    c(
        "RPC-02",
        "connect_filtered",
        Error,
        "SYN to a KMS port retried without any answer (predicts 0xC004F074)",
    ),
    c(
        "RPC-03",
        "bind_rejected",
        Error,
        "bind_nak, or bind_ack rejecting every KMS context",
    ),
    c(
        "RPC-04",
        "rpc_fault",
        Error,
        "fault PDU in answer to a call (status named, e.g. nca_unk_if 0x1C010003)",
    ),
    c(
        "RPC-05",
        "no_response",
        Error,
        "request sent, connection closed or idle without a response (predicts 0xC004F074)",
    ),
    c(
        "RPC-06",
        "slow_response",
        Warning,
        "request-to-response time above the limit (default 2 s)",
    ),
    c(
        "RPC-07",
        "not_dcerpc",
        Warning,
        "payload on a KMS port is not DCE/RPC",
    ),
    c(
        "RPC-08",
        "nonstandard_port",
        Info,
        "KMS interface bound on a port other than 1688",
    ),
    c(
        "KMS-01",
        "count_below_threshold",
        Error,
        "returned count below the client's N policy (predicts 0xC004F038)",
    ),
    c(
        "KMS-02",
        "thin_margin",
        Warning,
        "count at or just above N policy (within the margin, default 5)",
    ),
    c(
        "KMS-03",
        "count_not_growing",
        Warning,
        "count below the distinct machines the host answered in 30 days",
    ),
    c(
        "KMS-04",
        "duplicate_cmid",
        Error,
        "one CMID from several workstation names, or from two addresses within 10 min",
    ),
    c(
        "KMS-05",
        "cmid_changed",
        Info,
        "request carries a previous CMID (rearmed / resealed machine)",
    ),
    c(
        "KMS-06",
        "client_clock_skew",
        Error,
        "request time vs capture clock above 4 h (warning above 1 h; predicts 0xC004F06C)",
    ),
    c(
        "KMS-07",
        "host_error",
        Error,
        "host returned an HRESULT (0xC004F042, 0xC004F06C, 0x8007000D, 0xC004F041, ...)",
    ),
    c(
        "KMS-08",
        "response_integrity",
        Error,
        "response (or request) fails decryption / MAC / hash / HMAC / echo checks",
    ),
    c(
        "KMS-09",
        "malformed_epid",
        Warning,
        "host ePID fails structure, LCID, build or date sanity",
    ),
    c(
        "KMS-10",
        "host_identity_changed",
        Warning,
        "same host and product group return different ePIDs",
    ),
    c(
        "KMS-11",
        "emulator_fingerprint",
        Warning,
        "emulator tells: default HwId, py-kms assoc group, count above cache, v6 IV reuse (critical by policy)",
    ),
    c(
        "KMS-12",
        "off_network_kms",
        Critical,
        "KMS session to a public address, or to a host outside the allow-list",
    ),
    c(
        "KMS-13",
        "unknown_product",
        Warning,
        "SKU / KMS id / App id unknown or inconsistent with the catalog",
    ),
    c(
        "KMS-14",
        "odd_n_policy",
        Warning,
        "N policy other than 25 / 5 (or above 1000)",
    ),
    c(
        "KMS-15",
        "client_lapsed",
        Error,
        "license status OOT grace, non-genuine, notification or extended grace",
    ),
    c(
        "KMS-16",
        "grace_nearly_exhausted",
        Warning,
        "licensed / OOB grace with less than 7 days left",
    ),
    c(
        "KMS-17",
        "nondefault_intervals",
        Info,
        "activation / renewal interval not 120 / 10080 min (warning outside 15 min - 30 days)",
    ),
    c(
        "KMS-18",
        "retry_loop",
        Warning,
        "same CMID failing again and again, at least 15 min apart",
    ),
    c(
        "KMS-19",
        "renewal_overdue",
        Info,
        "activated client not seen renewing within renewal interval + slack (warning past 180 days)",
    ),
    c(
        "KMS-20",
        "population_below_threshold",
        Info,
        "distinct CMIDs over a capture of 7+ days below N policy",
    ),
    c(
        "KMS-21",
        "old_protocol",
        Info,
        "KMS protocol 4.0 / 5.0 clients present",
    ),
    c(
        "KMS-22",
        "vm_client",
        Info,
        "request flagged as a virtual machine",
    ),
];

/// The snake_case name of check `id` (`"unknown"` for an ID not in [`CHECKS`]).
pub fn name_of(id: &str) -> &'static str {
    CHECKS
        .iter()
        .find(|c| c.id == id)
        .map_or("unknown", |c| c.name)
}

/// The findings of one run, de-duplicated per (check, subject).
#[derive(Debug, Default)]
pub struct Findings {
    map: BTreeMap<(&'static str, Subject), Finding>,
}

impl Findings {
    /// Adds a finding, or merges it into the one with the same check and subject (counts add up,
    /// frames merge, the more severe severity wins, the first message stays).
    pub fn push(&mut self, f: Finding) {
        match self.map.get_mut(&(f.check, f.subject.clone())) {
            Some(old) => {
                old.count += f.count;
                let mut frames = std::mem::take(&mut old.frames);
                frames.extend(f.frames);
                frames.sort_unstable();
                frames.dedup();
                frames.truncate(MAX_EVIDENCE_FRAMES);
                old.frames = frames;
                old.severity = old.severity.max(f.severity);
                old.first_ts = match (old.first_ts, f.first_ts) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => {
                self.map.insert((f.check, f.subject.clone()), f);
            }
        }
    }

    /// Builds and adds a finding from its parts and evidence.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        subject: Subject,
        message: String,
        fix: String,
        predicts: Option<&'static str>,
        ev: &Evidence,
    ) {
        self.push(Finding {
            check: id,
            name: name_of(id),
            severity,
            message,
            fix,
            predicts,
            frames: ev.frames.to_vec(),
            count: ev.count.max(1),
            subject,
            first_ts: ev.first_ts,
        });
    }

    /// The findings, most severe first, then by first evidence frame, then by check.
    pub fn into_sorted(self) -> Vec<Finding> {
        let mut v: Vec<Finding> = self.map.into_values().collect();
        v.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(
                    a.frames
                        .first()
                        .copied()
                        .unwrap_or(u64::MAX)
                        .cmp(&b.frames.first().copied().unwrap_or(u64::MAX)),
                )
                .then(a.check.cmp(b.check))
                .then(a.subject.cmp(&b.subject))
        });
        v
    }

    /// Number of findings so far.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Runs every check that passive evidence supports and returns the findings, de-duplicated per check
/// and subject, ordered by severity (most severe first), then by first evidence frame.
pub fn run(state: &State, policy: &Policy) -> Vec<Finding> {
    let mut out = Findings::default();
    dns::run(state, policy, &mut out);
    rpc::run(state, policy, &mut out);
    kms::run(state, policy, &mut out);
    out.into_sorted()
}

/// "1 time" / "3 times".
pub(crate) fn times(n: u64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

/// "frame 7" / "frames 7, 9, 12".
pub(crate) fn frames_text(frames: &[u64]) -> String {
    let list: Vec<String> = frames.iter().map(u64::to_string).collect();
    match list.len() {
        0 => "no frame".to_string(),
        1 => format!("frame {}", list[0]),
        _ => format!("frames {}", list.join(", ")),
    }
}

/// A subject with only the given fields.
pub(crate) fn subject() -> Subject {
    Subject::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn table_ids_and_names_are_unique_and_well_formed() {
        let ids: BTreeSet<&str> = CHECKS.iter().map(|c| c.id).collect();
        let names: BTreeSet<&str> = CHECKS.iter().map(|c| c.name).collect();
        assert_eq!(ids.len(), CHECKS.len());
        assert_eq!(names.len(), CHECKS.len());
        for c in &CHECKS {
            assert!(
                c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                c.name
            );
        }
        assert_eq!(
            CHECKS.iter().filter(|c| c.id.starts_with("DNS-")).count(),
            13
        );
        assert_eq!(
            CHECKS.iter().filter(|c| c.id.starts_with("RPC-")).count(),
            8
        );
        assert_eq!(
            CHECKS.iter().filter(|c| c.id.starts_with("KMS-")).count(),
            22
        );
        assert_eq!(name_of("KMS-01"), "count_below_threshold");
    }

    #[test]
    fn findings_merge_per_check_and_subject() {
        let mut f = Findings::default();
        let mut e = Evidence::default();
        e.add(9, crate::time::Ts(0));
        let s = Subject {
            server: Some("10.0.0.1:1688".into()),
            ..Subject::default()
        };
        f.add(
            "RPC-01",
            Error,
            s.clone(),
            "m1".into(),
            "x".into(),
            None,
            &e,
        );
        let mut e2 = Evidence::default();
        e2.add(3, crate::time::Ts(0));
        e2.add(4, crate::time::Ts(0));
        f.add(
            "RPC-01",
            Error,
            s.clone(),
            "m2".into(),
            "x".into(),
            None,
            &e2,
        );
        f.add("RPC-02", Error, s, "m3".into(), "x".into(), None, &e2);
        let v = f.into_sorted();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].check, "RPC-01");
        assert_eq!(v[0].count, 3);
        assert_eq!(v[0].frames, vec![3, 4, 9]);
        assert_eq!(v[0].message, "m1");
        assert_eq!(v[1].check, "RPC-02");
    }
}
