//! KMS payload checks (checks.md, KMS-01…KMS-22), on the decrypted and validated calls: counts and
//! thresholds, client identity and clock, host errors and identity, emulator tells, product
//! catalog, license state and timers.

use std::net::IpAddr;

use super::{Findings, frames_text, subject};
use crate::analysis::State;
use crate::analysis::evidence::{Evidence, join_list};
use crate::analysis::policy::{AllowedHost, Policy};
use crate::analysis::state::{AppState, ClientState, CmidKey, Failure, kms_servers};
use crate::event::{Endpoint, Severity, Subject};

/// KMS-16: a licensed or OOB-grace client with fewer minutes than this left (7 days) is warned.
pub const GRACE_WARN_MIN: u32 = 7 * 24 * 60;
/// KMS-17: the range Microsoft accepts for the activation / renewal intervals (15 min - 30 days).
pub const INTERVAL_RANGE_MIN: std::ops::RangeInclusive<u32> = 15..=43_200;
/// KMS-18: failed requests of one CMID at least this far apart (the shortest activation interval)
/// are separate retries.
pub const RETRY_MIN_GAP_NS: i64 = 15 * 60 * 1_000_000_000;
/// KMS-18: this many separate failed tries make a retry loop.
pub const RETRY_LOOP_MIN: usize = 3;
/// KMS-19: a successful activation is valid this long (180 days).
pub const ACTIVATION_VALIDITY_NS: i64 = 180 * 86_400 * 1_000_000_000;
/// KMS-12: Microsoft's own KMS endpoints for Azure VMs (public, legitimate): never flagged as
/// off-network without an allow-list.
pub const AZURE_KMS: [&str; 5] = [
    "kms.core.windows.net",
    "azkms.core.windows.net",
    "23.102.135.246",
    "20.118.99.224",
    "40.83.235.53",
];

/// Runs the KMS family.
pub fn run(state: &State, policy: &Policy, out: &mut Findings) {
    // Sorted once for the checks that go through the clients.
    let clients = sorted_clients(state);
    kms_01_count_below_threshold(state, out);
    kms_02_thin_margin(state, policy, out);
    kms_03_count_not_growing(state, out);
    kms_04_duplicate_cmid(&clients, out);
    kms_05_cmid_changed(&clients, out);
    kms_06_client_clock_skew(&clients, policy, out);
    kms_07_host_error(state, out);
    kms_08_response_integrity(state, out);
    kms_09_malformed_epid(state, out);
    kms_10_host_identity_changed(state, out);
    kms_11_emulator_fingerprint(state, policy, out);
    kms_12_off_network_kms(state, policy, out);
    kms_13_unknown_product(state, out);
    kms_14_odd_n_policy(state, out);
    kms_15_client_lapsed(&clients, out);
    kms_16_grace_nearly_exhausted(&clients, out);
    kms_17_nondefault_intervals(state, out);
    kms_18_retry_loop(&clients, out);
    kms_19_renewal_overdue(state, &clients, policy, out);
    kms_20_population_below_threshold(state, policy, out);
    kms_21_old_protocol(state, out);
    kms_22_vm_client(state, out);
}

fn product_name(kms_id: &str, a: &AppState) -> String {
    a.kms_name
        .map_or_else(|| kms_id.to_string(), str::to_string)
}

fn host_product_subject(host: &Endpoint, product: String) -> Subject {
    Subject {
        host: Some(host.to_string()),
        product: Some(product),
        ..subject()
    }
}

fn host_subject(host: &Endpoint) -> Subject {
    Subject {
        host: Some(host.to_string()),
        ..subject()
    }
}

fn client_subject(cmid: &CmidKey, c: &ClientState) -> Subject {
    Subject {
        cmid: Some(cmid.to_string()),
        workstation: Some(c.last_workstation.to_string()),
        client: c.last_client.map(|e| e.ip.to_string()),
        ..subject()
    }
}

/// `WS (10.0.0.1, CMID x)`.
fn who(cmid: &CmidKey, c: &ClientState) -> String {
    let addr = c
        .last_client
        .map(|e| format!("{}, ", e.ip))
        .unwrap_or_default();
    format!("{} ({addr}CMID {cmid})", c.last_workstation)
}

/// A client and its CMID, as [`sorted_clients`] lists them.
pub type ClientRef<'a> = (&'a CmidKey, &'a ClientState);

/// The clients by first frame (then CMID): the order of the findings about them.
fn sorted_clients(state: &State) -> Vec<ClientRef<'_>> {
    // The first frame is copied next to the references: the comparisons read no client state.
    let mut v: Vec<(u64, &CmidKey, &ClientState)> = state
        .clients
        .iter()
        .map(|(k, c)| (c.first_frame, k, &**c))
        .collect();
    // (first frame, CMID) is unique: an unstable sort by reference gives the same order, without
    // cloning the key on every comparison.
    v.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    v.into_iter().map(|(_, k, c)| (k, c)).collect()
}

fn client_evidence(frames: &[u64], count: u64, first_ts: Option<crate::time::Ts>) -> Evidence {
    let mut e = Evidence {
        first_ts,
        ..Evidence::default()
    };
    for f in frames {
        e.add_frame(*f);
    }
    e.count = count.max(1);
    e
}

/// KMS-01 count_below_threshold: the host returned a count below the requesting client's N policy,
/// so that client stays unactivated. Error; predicts 0xC004F038.
pub fn kms_01_count_below_threshold(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            let Some((count, n)) = a.last_below else {
                continue;
            };
            let ev = &a.below;
            let product = product_name(kms_id, a);
            let answers = a.requests - a.refused - a.failed;
            out.add(
                "KMS-01",
                Severity::Error,
                host_product_subject(host, product.clone()),
                format!(
                    "KMS host {host} returned count {count}/{n} for {product}: {} of {answers} answer(s) were below the clients' N policy{}, so these clients fail with 0xC004F038 ({}; {})",
                    ev.count,
                    match (a.min_count, a.max_count) {
                        (Some(lo), Some(hi)) if lo != hi => format!(" (counts {lo} to {hi})"),
                        _ => String::new(),
                    },
                    ev.label_list(),
                    frames_text(&ev.frames)
                ),
                format!(
                    "The host counts distinct machines per product group and activates {product} clients only from {n} on (25 for Windows clients, 5 for servers and Office): add machines (VMs count), wait for more clients to contact it, check for cloned CMIDs (KMS-04), or activate these clients with MAK or Active Directory-based activation; slmgr /dlv on the host shows the current count"
                ),
                Some("0xC004F038"),
                ev,
            );
        }
    }
}

/// KMS-02 thin_margin: a count at or just above N policy (below N + `thin_margin`): clients
/// aging out after 30 days could drop the host below the threshold. Warning.
pub fn kms_02_thin_margin(state: &State, policy: &Policy, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            let Some((count, n)) = a.last_thin else {
                continue;
            };
            let product = product_name(kms_id, a);
            out.add(
                "KMS-02",
                Severity::Warning,
                host_product_subject(host, product.clone()),
                format!(
                    "KMS host {host} returned count {count} for {product}, at or just above the N policy {n} (margin {}; {} answer(s), {}): clients activate now, but machines that stop renewing drop out after 30 days and the count can fall below {n}",
                    policy.thin_margin,
                    a.thin.count,
                    frames_text(&a.thin.frames)
                ),
                "Add a few machines above the threshold (VMs count) or plan MAK / Active Directory-based activation as a fallback; watch slmgr /dlv on the host".to_string(),
                None,
                &a.thin,
            );
        }
    }
}

/// KMS-03 count_not_growing: the host answered more distinct machines of a product group in the
/// last 30 days than the count it returns (and the count is below its cache size): it is not
/// counting new machines (duplicate CMIDs, or the requests reach another host behind the address).
/// Warning.
pub fn kms_03_count_not_growing(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            let Some((frame, count, distinct)) = a.first_flat else {
                continue;
            };
            let product = product_name(kms_id, a);
            out.add(
                "KMS-03",
                Severity::Warning,
                host_product_subject(host, product.clone()),
                format!(
                    "KMS host {host} returned count {count} for {product} at frame {frame} after answering {distinct} distinct machines in the capture ({} such answer(s), {}): the count does not grow with new machines",
                    a.flat.count,
                    frames_text(&a.flat.frames)
                ),
                "Check whether several KMS hosts share this address (load balancer / NAT) and whether the clients are clones (KMS-04); on the host compare slmgr /dlv's count with the machines you expect".to_string(),
                Some("0xC004F038"),
                &a.flat,
            );
        }
    }
}

/// KMS-04 duplicate_cmid: one CMID sent with more than one workstation name, or from two addresses
/// within 10 minutes: cloned images not generalised; the host counts them once. Error.
pub fn kms_04_duplicate_cmid(clients: &[ClientRef<'_>], out: &mut Findings) {
    for &(cmid, c) in clients {
        let names = c.names.labels.len();
        let overlap = !c.addr_overlap.is_empty();
        if names < 2 && !overlap {
            continue;
        }
        let ws: Vec<String> = c.workstations.iter().map(|w| w.to_string()).collect();
        let addrs: Vec<String> = c.addresses.iter().map(IpAddr::to_string).collect();
        let mut ev = c.names.clone();
        ev.merge(&c.addr_overlap);
        ev.count = c.requests;
        let what = if names >= 2 {
            format!(
                "was sent by {} different workstations ({})",
                names + usize::from(c.names.more_labels),
                join_list(&ws, c.names.more_labels)
            )
        } else {
            format!(
                "was sent by the workstation {} from {}{} addresses within minutes ({})",
                c.last_workstation,
                addrs.len(),
                if addrs.len() >= crate::analysis::state::MAX_CLIENT_FACTS {
                    "+"
                } else {
                    ""
                },
                addrs.join(", ")
            )
        };
        out.add(
            "KMS-04",
            Severity::Error,
            Subject {
                cmid: Some(cmid.to_string()),
                ..subject()
            },
            format!(
                "CMID {cmid} {what} from {} in {} request(s) ({}): these machines are clones of one image that was not generalised, and the host counts them as one",
                addrs.join(", "),
                c.requests,
                frames_text(&ev.frames)
            ),
            "On each clone run slmgr /rearm (then reboot) to get a new CMID, and generalise images with sysprep /generalize before deploying them; then slmgr /ato".to_string(),
            Some("0xC004F038"),
            &ev,
        );
    }
}

/// KMS-05 cmid_changed: the request carries a non-zero previous CMID: the machine was rearmed or
/// resealed (expected after imaging). Info.
pub fn kms_05_cmid_changed(clients: &[ClientRef<'_>], out: &mut Findings) {
    for &(cmid, c) in clients {
        let Some((prev, frame)) = &c.previous_cmid else {
            continue;
        };
        out.add(
            "KMS-05",
            Severity::Info,
            client_subject(cmid, c),
            format!(
                "Client {} reports the previous CMID {prev} (frame {frame}): the machine was rearmed or resealed and now counts as a new machine",
                who(cmid, c)
            ),
            "Expected after slmgr /rearm or sysprep; if it happens repeatedly on one machine, find what rearms it".to_string(),
            None,
            &client_evidence(&[*frame], 1, None),
        );
    }
}

fn hm(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (h, m) = (s / 3600, s / 60 % 60);
    if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min {} s", s % 60)
    }
}

/// KMS-06 client_clock_skew: the request's ClientRequestTime differs from the capture time of the
/// request frame by more than `skew_error_min` (error; the host refuses with 0xC004F06C) or
/// `skew_warn_min` (warning). The capture's clock is the reference.
pub fn kms_06_client_clock_skew(clients: &[ClientRef<'_>], policy: &Policy, out: &mut Findings) {
    let warn = i64::try_from(policy.skew_warn_min.saturating_mul(60)).unwrap_or(i64::MAX);
    let error = i64::try_from(policy.skew_error_min.saturating_mul(60)).unwrap_or(i64::MAX);
    for &(cmid, c) in clients {
        let Some((skew, frame, client_time, ts)) = &c.skew else {
            continue;
        };
        let abs = skew.abs();
        if abs <= warn {
            continue;
        }
        let sev = if abs > error {
            Severity::Error
        } else {
            Severity::Warning
        };
        let dir = if *skew > 0 { "ahead of" } else { "behind" };
        let consequence = if abs > error {
            format!(
                "more than {} min: a KMS host whose clock agrees with the capture refuses it with 0xC004F06C",
                policy.skew_error_min
            )
        } else {
            format!(
                "above {} min but within the host's {} min limit: activation still works, but the clock is drifting",
                policy.skew_warn_min, policy.skew_error_min
            )
        };
        out.add(
            "KMS-06",
            sev,
            client_subject(cmid, c),
            format!(
                "Client {} sent the request time {client_time}, {} {dir} the capture's clock ({}, frame {frame}; the capture's clock is the reference); that is {consequence}",
                who(cmid, c),
                hm(abs),
                ts.rfc3339_secs()
            ),
            "Fix time synchronisation on the client (w32tm /resync; w32tm /query /status) and check the time zone; also verify the KMS host's and the sensor's clocks against a reliable source".to_string(),
            (abs > error).then_some("0xC004F06C"),
            &client_evidence(&[*frame], 1, Some(*ts)),
        );
    }
}

/// Fix and predicted client error per host HRESULT.
fn host_error_advice(code: &str, product: &str) -> (String, Option<&'static str>) {
    match code {
        "0xC004F042" => (
            format!("The host's KMS host key (CSVLK) does not cover {product} (or the client's product is retail, preview or misidentified): install a CSVLK for this product group or a newer one on the host (slmgr /ipk <CSVLK>, slmgr /ato; for Office use the Office volume activation pack), or point these clients at a host that has one; check the client has a GVLK (slmgr /ipk <GVLK>)"),
            Some("0xC004F042"),
        ),
        "0xC004F06C" => (
            "The host found the client's clock more than 4 hours off its own: fix time synchronisation on the client and the host (w32tm /resync; domain time hierarchy)".to_string(),
            Some("0xC004F06C"),
        ),
        "0x8007000D" => (
            "The host does not support this client's KMS protocol version or rejected its data (N policy above 1000): update the KMS host (install the update that lets it serve newer clients, or move it to a newer Windows Server) and install a CSVLK for the newer product group".to_string(),
            Some("0x8007000D"),
        ),
        "0xC004F041" => (
            "The KMS host itself is not activated: activate it (slmgr /ato on the host, or by phone: slui 4), then restart sppsvc".to_string(),
            Some("0xC004F041"),
        ),
        "0xC004D104" => (
            "The host (vlmcsd) refused because its client list is full; this is an emulator, see KMS-11".to_string(),
            Some("0xC004D104"),
        ),
        "0xC004F039" => (
            "The host reports KMS as not enabled: check its KMS key and sppsvc (slmgr /dlv on the host)".to_string(),
            Some("0xC004F039"),
        ),
        _ => (
            "Look the code up in Microsoft's activation error list and check the host's Key Management Service event log (event 12290) at this time".to_string(),
            None,
        ),
    }
}

/// KMS-07 host_error: the host completed the call with a non-zero HRESULT instead of a KMS response
/// (0xC004F042 product not covered, 0xC004F06C clock, 0x8007000D version / N policy, 0xC004F041
/// host not activated, 0xC004D104 vlmcsd list full). Error; predicts that HRESULT. One finding per
/// host and code.
pub fn kms_07_host_error(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (code, (name, ev)) in &h.refusals {
            let named = name.map(|n| format!(" {n}")).unwrap_or_default();
            let products = ev.label_list();
            let (fix, predicts) = host_error_advice(code, &products);
            out.add(
                "KMS-07",
                Severity::Error,
                Subject {
                    host: Some(host.to_string()),
                    code: Some(code.clone()),
                    ..subject()
                },
                format!(
                    "KMS host {host} refused {} request(s) with {code}{named} ({products}; {}): the clients are not activated and report {code}",
                    ev.count,
                    frames_text(&ev.frames)
                ),
                fix,
                predicts,
                ev,
            );
        }
    }
}

/// KMS-08 response_integrity: a response failed the decrypt-and-validate checks of kms-protocol.md
/// §2.8 (MAC, hash, HMAC, XoredIVs, CMID or time echo, version, ePID size, padding), or a request
/// did: the client rejects the response; the host is broken or the traffic was altered. Error.
pub fn kms_08_response_integrity(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        let mut ev = h.bad_responses.clone();
        ev.merge(&h.bad_requests);
        if ev.is_empty() {
            continue;
        }
        let failures: Vec<String> = h.integrity_failures.iter().map(|s| s.to_string()).collect();
        out.add(
            "KMS-08",
            Severity::Error,
            host_subject(host),
            format!(
                "{} KMS exchange(s) with {host} failed validation ({} bad response(s), {} bad request(s); checks failed: {}; clients {}, {}): the client rejects such a response, so the host is broken or something alters the traffic",
                ev.count,
                h.bad_responses.count,
                h.bad_requests.count,
                if failures.is_empty() {
                    "undecodable".to_string()
                } else {
                    failures.join(", ")
                },
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            "Check for a middlebox rewriting TCP 1688 (proxy, IPS, NAT helper) and for a non-Microsoft KMS implementation (KMS-11); on a Microsoft host repair or reinstall the KMS key and restart sppsvc".to_string(),
            None,
            &ev,
        );
    }
}

fn epid_issue_text(issue: &str) -> &'static str {
    match issue {
        "malformed" => "not the PPPPP-GGGGG-KKK-KKKKKK-CC-LLLL-BBBBB.0000-DDDYYYY format",
        "unknown_platform_id" => "unknown platform id",
        "platform_build_mismatch" => "platform id does not match the host build",
        "channel_not_volume" => "license channel is not volume (03)",
        "invalid_install_day" => "invalid day of year",
        "install_year_too_early" => "installed before KMS existed",
        "install_before_release" => "installed before the host's Windows build was released",
        "implausible_lcid" => "implausible language id (LCID)",
        "csvlk_host_mismatch" => {
            "its key id is a CSVLK that a Windows Vista / Server 2008 host (build < 7600) cannot hold"
        }
        "install_before_csvlk_release" => "installed before its CSVLK was released",
        "installed_in_future" => "key installation date after the capture date",
        _ => "inconsistent field",
    }
}

/// KMS-09 malformed_epid: the host's ePID fails structure / LCID / build / date sanity (see
/// `kms::Epid::issues`; a date after the capture counts too): the host identity looks synthetic or
/// corrupt. Warning.
pub fn kms_09_malformed_epid(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        let mut ev = Evidence::default();
        let mut parts: Vec<String> = Vec::new();
        for (epid, (issues, e)) in &h.epid_issues {
            if issues.is_empty() {
                continue;
            }
            let texts: Vec<&str> = issues.iter().map(|i| epid_issue_text(i)).collect();
            parts.push(format!("{epid} ({})", texts.join("; ")));
            ev.merge(e);
        }
        if parts.is_empty() {
            continue;
        }
        out.add(
            "KMS-09",
            Severity::Warning,
            host_subject(host),
            format!(
                "KMS host {host} returned {} ePID(s) that look synthetic or corrupt: {} ({} response(s), {})",
                parts.len(),
                parts.join("; "),
                ev.count,
                frames_text(&ev.frames)
            ),
            "A Microsoft host's ePID follows from its OS build, language and CSVLK: compare with slmgr /dlv on the host; an inconsistent ePID usually means a KMS emulator (see KMS-11) answers at this address".to_string(),
            None,
            &ev,
        );
    }
}

/// KMS-10 host_identity_changed: one host address and product group returned different ePIDs: host
/// key reinstalled, host rebuilt, several hosts behind one address, or an emulator randomising its
/// ePID. Warning.
pub fn kms_10_host_identity_changed(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            if a.epids.len() < 2 {
                continue;
            }
            let product = product_name(kms_id, a);
            let list: Vec<String> = a
                .epids
                .iter()
                .map(|(e, f)| format!("{e} (frame {f})"))
                .collect();
            let mut ev = a.epid_changes.clone();
            for (_, f) in &a.epids {
                ev.add_frame(*f);
            }
            out.add(
                "KMS-10",
                Severity::Warning,
                host_product_subject(host, product.clone()),
                format!(
                    "KMS host {host} returned {} different ePIDs for {product}: {} ({} change(s)): the host key was reinstalled, the host rebuilt, several hosts share the address, or an emulator randomises its ePID",
                    a.epids.len(),
                    list.join(", "),
                    a.epid_changes.count
                ),
                "Check which machine(s) answer at this address (load balancer, NAT, DNS round robin) and slmgr /dlv on each; a new ePID per request points at an emulator (KMS-11)".to_string(),
                None,
                &ev,
            );
        }
    }
}

/// KMS-11 emulator_fingerprint: tells of a KMS emulator (vlmcsd, py-kms): a default emulator HwId,
/// py-kms's constant bind_ack association group 0x1063BF3F, a count above any genuine host's cache
/// (2 × threshold), a v6 response reusing the request IV. Warning (critical with
/// `emulator_critical`).
pub fn kms_11_emulator_fingerprint(state: &State, policy: &Policy, out: &mut Findings) {
    for host in kms_servers(state) {
        let mut ev = Evidence::default();
        let mut tells: Vec<String> = Vec::new();
        if let Some(h) = state.hosts.get(&host) {
            for (why, e) in h.fingerprints.values() {
                tells.push(why.clone());
                ev.merge(e);
            }
            for (kms_id, a) in &h.apps {
                if let Some((count, n)) = a.first_above_cache {
                    let cache = a.catalog_threshold.unwrap_or(n).saturating_mul(2);
                    tells.push(format!(
                        "count {count} for {} (N {n}) exceeds the {cache} machines a Microsoft host remembers",
                        product_name(kms_id, a)
                    ));
                    ev.merge(&a.above_cache);
                }
            }
        }
        if let Some(s) = state.servers.get(&host)
            && !s.pykms_assoc.is_empty()
        {
            tells.push("bind_ack association group 0x1063BF3F (py-kms's constant)".into());
            ev.merge(&s.pykms_assoc);
        }
        if tells.is_empty() {
            continue;
        }
        let sev = if policy.emulator_critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        out.add(
            "KMS-11",
            sev,
            host_subject(&host),
            format!(
                "KMS host {host} shows emulator fingerprints: {}; it is likely a KMS emulator (vlmcsd, py-kms), not a Microsoft KMS host",
                tells.join("; ")
            ),
            "Identify the machine at this address and what answers on its KMS port; a KMS emulator is a licensing-compliance and integrity risk: replace it with a Microsoft KMS host (or ADBA / MAK) and remove its SRV record".to_string(),
            None,
            &ev,
        );
    }
}

/// True for an address that is globally reachable (IANA special-purpose registries): not private
/// (RFC 1918), loopback, link-local, shared (100.64/10), benchmarking (198.18/15), IETF
/// (192.0.0/24), documentation (192.0.2/24, 198.51.100/24, 203.0.113/24), reserved (240/4),
/// multicast, unspecified or broadcast; IPv6 not loopback, unspecified, unique-local (fc00::/7),
/// link-local, documentation (2001:db8::/32) or multicast (IPv4-mapped addresses are judged as
/// IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
                || (o[0] == 198 && (o[1] & 0xFE) == 18)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || a.is_documentation()
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xFE00) == 0xFC00
                || (s[0] & 0xFFC0) == 0xFE80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// KMS-12 off_network_kms: a KMS session to a globally routable address (always checked; Microsoft's
/// Azure KMS endpoints excepted), or, with an allow-list, to a host whose address and DNS names are
/// all outside it. Critical.
pub fn kms_12_off_network_kms(state: &State, policy: &Policy, out: &mut Findings) {
    let allow = policy.allow_list();
    for host in kms_servers(state) {
        let names = state.net.names_of(host.ip);
        let allowed =
            |a: &AllowedHost| a.matches_ip(host.ip) || names.iter().any(|n| a.matches_name(n));
        let (reason, fix) = if !allow.is_empty() {
            if allow.iter().any(allowed) {
                continue;
            }
            (
                "which is not an approved KMS host".to_string(),
                "Find the clients' KMS setting (slmgr /dlv: 'KMS machine name'), clear it (slmgr /ckms) or set an approved host (slmgr /skms <host>), and remove any SRV record or DHCP/GPO setting that points at this host; if it is legitimate, add it to the allow-list",
            )
        } else {
            let azure = AZURE_KMS.contains(&host.ip.to_string().as_str())
                || names.iter().any(|n| AZURE_KMS.contains(&n.as_str()));
            if !is_public(host.ip) || azure {
                continue;
            }
            (
                "a globally routable Internet address outside the organisation".to_string(),
                "Clients activating against an outside KMS host usually run a piracy tool or were pointed there by one: find the setting (slmgr /dlv), clear it (slmgr /ckms), remove the tool and activate against your own KMS host; block outbound TCP 1688 at the perimeter",
            )
        };
        let mut ev = Evidence::default();
        if let Some(s) = state.servers.get(&host) {
            ev.merge(&s.kms_evidence);
        }
        let names_note = if names.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        out.add(
            "KMS-12",
            Severity::Critical,
            host_subject(&host),
            format!(
                "Clients {} held KMS sessions with {host}{names_note}, {reason} ({} bind(s)/call(s), {})",
                ev.label_list(),
                ev.count,
                frames_text(&ev.frames)
            ),
            fix.to_string(),
            None,
            &ev,
        );
    }
}

/// KMS-13 unknown_product: the request's SKU, KMS counted id or ApplicationId is not in the product
/// catalog, or the ApplicationId does not match the catalog's for the KMS id / SKU: the host may
/// refuse (0xC004F042) or the product is misidentified. Warning.
pub fn kms_13_unknown_product(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            if a.product_issues.is_empty() {
                continue;
            }
            let mut ev = Evidence::default();
            let mut issues: Vec<String> = Vec::new();
            for (i, e) in &a.product_issues {
                issues.push(i.clone());
                ev.merge(e);
            }
            let product = product_name(kms_id, a);
            out.add(
                "KMS-13",
                Severity::Warning,
                host_product_subject(host, product),
                format!(
                    "Requests to KMS host {host} name a product the catalog does not know or that is inconsistent: {} (workstations {}; {})",
                    issues.join("; "),
                    ev.label_list(),
                    frames_text(&ev.frames)
                ),
                "If the product is new, update kmsscope's product catalog; otherwise check the client's product key (slmgr /dlv: it must be a GVLK of a volume edition, slmgr /ipk <GVLK>) and that the host's CSVLK covers it".to_string(),
                Some("0xC004F042"),
                &ev,
            );
        }
    }
}

/// KMS-14 odd_n_policy: a request's N policy (RequiredClientCount) other than 25 or 5 (real hosts
/// refuse above 1000): a crafted or non-standard client. Warning.
pub fn kms_14_odd_n_policy(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            if a.odd_n.is_empty() {
                continue;
            }
            let product = product_name(kms_id, a);
            let mut ev = Evidence::default();
            let mut values: Vec<String> = Vec::new();
            for (n, e) in &a.odd_n {
                values.push(format!("{n} (from {})", e.label_list()));
                ev.merge(e);
            }
            let over = a.odd_n.keys().any(|n| *n > 1000);
            out.add(
                "KMS-14",
                Severity::Warning,
                host_product_subject(host, product.clone()),
                format!(
                    "Clients asked KMS host {host} for {product} with N policy {} instead of 25 or 5 ({} request(s), {}){}: a crafted or non-standard KMS client",
                    values.join(", "),
                    ev.count,
                    frames_text(&ev.frames),
                    if over {
                        "; real hosts refuse more than 1000 with 0x8007000D"
                    } else {
                        ""
                    }
                ),
                "Windows and Office clients send 25 (client editions) or 5 (servers, Office); find the tool that sends this value on those machines".to_string(),
                over.then_some("0x8007000D"),
                &ev,
            );
        }
    }
}

/// KMS-15 client_lapsed: the request's license status is OOT grace (3), non-genuine grace (4),
/// notification (5) or extended grace (6): the client already lost its activation. Error.
pub fn kms_15_client_lapsed(clients: &[ClientRef<'_>], out: &mut Findings) {
    for &(cmid, c) in clients {
        let Some((status, code, minutes, frame)) = &c.lapsed else {
            continue;
        };
        out.add(
            "KMS-15",
            Severity::Error,
            client_subject(cmid, c),
            format!(
                "Client {} reports license status {status} ({code}) with {minutes} min left in that state ({} request(s) so, first at frame {frame}; last outcome {}): it has already lost its activation",
                who(cmid, c),
                c.lapsed_evidence.count,
                c.last_outcome
            ),
            "Find why its renewals failed: run slmgr /ato on the client and read the error, check events 12288/12289, and follow this client's discovery chain in the summary (DNS, connection, host answer)".to_string(),
            None,
            &client_evidence(
                &c.lapsed_evidence.frames,
                c.lapsed_evidence.count,
                c.lapsed_evidence.first_ts,
            ),
        );
    }
}

/// KMS-16 grace_nearly_exhausted: licensed (1) or OOB grace (2) with 0 < minutes left < 7 days: the
/// client enters notification mode soon unless it activates. Warning.
pub fn kms_16_grace_nearly_exhausted(clients: &[ClientRef<'_>], out: &mut Findings) {
    for &(cmid, c) in clients {
        let Some((status, minutes, frame)) = &c.grace else {
            continue;
        };
        out.add(
            "KMS-16",
            Severity::Warning,
            client_subject(cmid, c),
            format!(
                "Client {} is in {status} with only {} left (frame {frame}; last outcome {}): it enters notification mode soon unless it activates",
                who(cmid, c),
                hm(i64::from(*minutes) * 60),
                c.last_outcome
            ),
            "Activate it now (slmgr /ato) and fix whatever blocks renewal; check its discovery chain and the host's count".to_string(),
            None,
            &client_evidence(
                &c.grace_evidence.frames,
                c.grace_evidence.count,
                c.grace_evidence.first_ts,
            ),
        );
    }
}

/// KMS-17 nondefault_intervals: the host sends activation / renewal intervals other than 120 / 10080
/// minutes: info; outside 15 min - 30 days: warning (extreme values delay recovery).
pub fn kms_17_nondefault_intervals(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        if h.intervals.is_empty() {
            continue;
        }
        let mut ev = Evidence::default();
        let mut pairs: Vec<String> = Vec::new();
        let mut extreme = false;
        for ((act, ren), e) in &h.intervals {
            extreme |= !INTERVAL_RANGE_MIN.contains(act) || !INTERVAL_RANGE_MIN.contains(ren);
            pairs.push(format!(
                "retry activation every {act} min and renew every {ren} min ({} response(s))",
                e.count
            ));
            ev.merge(e);
        }
        out.add(
            "KMS-17",
            if extreme {
                Severity::Warning
            } else {
                Severity::Info
            },
            host_subject(host),
            format!(
                "KMS host {host} tells clients to {} instead of the defaults 120 / 10080 min{} ({})",
                pairs.join("; "),
                if extreme {
                    ", outside the 15 min - 30 days range Microsoft documents"
                } else {
                    ""
                },
                frames_text(&ev.frames)
            ),
            "An administrator changed them with slmgr /sai and /sri on the host; reset with slmgr /sai 120 and slmgr /sri 10080 unless intended".to_string(),
            None,
            &ev,
        );
    }
}

/// Time between two failed requests in nanoseconds: the larger of the capture-time and the
/// client-time difference (a capture whose client clock was shifted between tries still shows the
/// client's retry timer).
fn failure_gap_ns(a: &Failure, b: &Failure) -> i64 {
    let capture = b.ts.0.saturating_sub(a.ts.0);
    let client = match (a.client_secs, b.client_secs) {
        (Some(x), Some(y)) => y.saturating_sub(x).saturating_mul(1_000_000_000),
        _ => 0,
    };
    capture.max(client)
}

/// KMS-18 retry_loop: one CMID failed at least three times, each try at least 15 minutes after the
/// previous counted one (the shortest activation retry interval; by capture time or by the client's
/// own request times): a persistent failure. Warning.
pub fn kms_18_retry_loop(clients: &[ClientRef<'_>], out: &mut Findings) {
    for &(cmid, c) in clients {
        let mut tries: Vec<&Failure> = Vec::new();
        let mut sorted: Vec<&Failure> = c.failures.iter().collect();
        sorted.sort_by_key(|f| (f.ts, f.frame));
        for f in sorted {
            if tries
                .last()
                .is_none_or(|p| failure_gap_ns(p, f) >= RETRY_MIN_GAP_NS)
            {
                tries.push(f);
            }
        }
        if tries.len() < RETRY_LOOP_MIN {
            continue;
        }
        let mut gaps: Vec<i64> = tries
            .windows(2)
            .map(|w| failure_gap_ns(w[0], w[1]) / 60_000_000_000)
            .collect();
        gaps.sort_unstable();
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
        let frames: Vec<u64> = tries.iter().map(|t| t.frame).collect();
        out.add(
            "KMS-18",
            Severity::Warning,
            client_subject(cmid, c),
            format!(
                "Client {} failed {} separate activation tries about every {median} min (outcomes: first {}, last {}; {} failed request(s) in all): it is stuck in its retry loop",
                who(cmid, c),
                tries.len(),
                tries.first().map_or("", |t| t.outcome),
                tries.last().map_or("", |t| t.outcome),
                c.failure_count
            ),
            "Fix the first failing step of this client's discovery chain (see the other findings for its host and the summary's client_list); then slmgr /ato".to_string(),
            None,
            &client_evidence(&frames, c.failure_count, tries.first().map(|t| t.ts)),
        );
    }
}

/// KMS-19 renewal_overdue: an activated client that sent nothing more although the capture went on
/// past its renewal interval + `renewal_slack_days` (info), or past the 180-day validity (warning):
/// offline, moved, or using another host.
pub fn kms_19_renewal_overdue(
    state: &State,
    clients: &[ClientRef<'_>],
    policy: &Policy,
    out: &mut Findings,
) {
    let Some(end) = state.last_ts else {
        return;
    };
    let slack = i64::try_from(policy.renewal_slack_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(86_400_000_000_000);
    for &(cmid, c) in clients {
        let Some((ts, frame, renewal_min)) = c.last_success else {
            continue;
        };
        if c.last_ts.is_some_and(|l| l > ts) {
            continue;
        }
        let due = i64::from(renewal_min)
            .saturating_mul(60_000_000_000)
            .saturating_add(slack);
        let silent = end.0.saturating_sub(ts.0);
        if silent <= due {
            continue;
        }
        let expired = silent > ACTIVATION_VALIDITY_NS;
        out.add(
            "KMS-19",
            if expired {
                Severity::Warning
            } else {
                Severity::Info
            },
            client_subject(cmid, c),
            format!(
                "Client {} activated at frame {frame} ({}) and sent no request in the {} days the capture went on after it, although it should renew every {} days{}",
                who(cmid, c),
                ts.rfc3339_secs(),
                silent / 86_400_000_000_000,
                renewal_min / 1440,
                if expired {
                    "; past 180 days its activation has expired"
                } else {
                    ""
                }
            ),
            "Check whether the machine is still in use, offline, or activating against another host (slmgr /dlv on it)".to_string(),
            None,
            &client_evidence(&[frame], 1, Some(ts)),
        );
    }
}

/// KMS-20 population_below_threshold: over a capture spanning at least `population_min_span_days`
/// (every activated client renews within 7 days), fewer distinct machines asked a host for a
/// product group than its N policy: an independent estimate that explains KMS-01. Info.
pub fn kms_20_population_below_threshold(state: &State, policy: &Policy, out: &mut Findings) {
    let min_span = i64::try_from(policy.population_min_span_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(86_400_000_000_000);
    if state.span_ns() < min_span {
        return;
    }
    for (host, h) in &state.hosts {
        for (kms_id, a) in &h.apps {
            let distinct = a.cmids.len() as u64 + a.cmids_untracked;
            let n = u64::from(a.required_count);
            if distinct >= n || a.required_count == 0 {
                continue;
            }
            let product = product_name(kms_id, a);
            let mut ev = a.below.clone();
            ev.count = a.requests;
            out.add(
                "KMS-20",
                Severity::Info,
                host_product_subject(host, product.clone()),
                format!(
                    "Over the {} days of the capture only {distinct} distinct machine(s) asked KMS host {host} for {product}, fewer than the N policy {n}: the real population is below the threshold (last count returned: {})",
                    state.span_ns() / 86_400_000_000_000,
                    a.last_count.map_or("none".to_string(), |c| c.to_string())
                ),
                "KMS cannot activate this product group with so few machines: use MAK or Active Directory-based activation for it".to_string(),
                None,
                &ev,
            );
        }
    }
}

/// KMS-21 old_protocol: clients speak KMS protocol 4.0 (Vista/7/2008 R2/Office 2010) or 5.0
/// (Windows 8/2012/Office 2013): old products still in use; the host must serve their group. Info.
pub fn kms_21_old_protocol(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        if h.old_versions.is_empty() {
            continue;
        }
        let mut ev = Evidence::default();
        let mut parts: Vec<String> = Vec::new();
        for (version, e) in &h.old_versions {
            let era = if version == "4.0" {
                "Windows Vista/7, Server 2008/2008 R2, Office 2010 era"
            } else {
                "Windows 8, Server 2012, Office 2013 era"
            };
            parts.push(format!(
                "{} request(s) use KMS protocol {version} ({era}): {}",
                e.count,
                e.label_list()
            ));
            ev.merge(e);
        }
        out.add(
            "KMS-21",
            Severity::Info,
            host_subject(host),
            format!(
                "Old clients at KMS host {host}: {} ({})",
                parts.join("; "),
                frames_text(&ev.frames)
            ),
            "Old operating systems or Office versions are still in use: plan their retirement, and keep a host key (CSVLK) that covers their product group".to_string(),
            None,
            &ev,
        );
    }
}

/// KMS-22 vm_client: requests flagged as coming from a virtual machine (counted by modern hosts).
/// Info.
pub fn kms_22_vm_client(state: &State, out: &mut Findings) {
    for (host, h) in &state.hosts {
        let ev = &h.vm;
        if ev.is_empty() {
            continue;
        }
        out.add(
            "KMS-22",
            Severity::Info,
            host_subject(host),
            format!(
                "{} request(s) to KMS host {host} come from virtual machines: {} ({})",
                ev.count,
                ev.label_list(),
                frames_text(&ev.frames)
            ),
            "Informational: modern hosts count VMs toward the threshold; on Hyper-V hosts Automatic VM Activation is an alternative".to_string(),
            None,
            ev,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for a in [
            "8.8.8.8",
            "45.33.32.156",
            "2001:4860::8888",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.10",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "224.0.0.251",
            "::1",
            "fd77::10",
            "fe80::1",
            "::ffff:10.0.0.1",
            "203.0.113.5",
            "198.51.100.10",
            "192.0.2.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
    }
}
