//! Owned event payloads from the parsers' wire structs (the event boundary of the house style).

use std::borrow::Cow;
use std::cell::RefCell;

use arrayvec::ArrayVec;

use crate::dns::{self, Exchange, RecordData};
use crate::event::{DnsExchange, DnsRecord, EpidInfo, KmsRequestInfo, KmsResponseInfo};
use crate::guid::{Guid, GuidText, InlineText, TimeText, WireText};
use crate::kms::{self, KmsRequest, KmsResponse};
use crate::time::{Ts, filetime_rfc3339, filetime_unix_secs};

/// The `request` and `response` objects of a `kms` event, from the decoded messages (taken by
/// value: the workstation name and the ePID move into the event). The response's echoes of the
/// CMID and the client time reuse the request's text when they agree, as they nearly always do.
pub fn kms_infos(
    q: Option<KmsRequest>,
    a: Option<KmsResponse>,
) -> (Option<KmsRequestInfo>, Option<KmsResponseInfo>) {
    let echo = q.as_ref().map(|q| (q.cmid, q.client_time));
    let req = q.map(request_info);
    let resp = a.map(|a| {
        let cmid = match (&req, echo) {
            (Some(r), Some((c, _))) if c == a.cmid => r.cmid.clone(),
            _ => a.cmid.inline_text(),
        };
        let client_time = match (&req, echo) {
            (Some(r), Some((_, t))) if t == a.client_time => r.client_time.clone(),
            _ => TimeText::display(&filetime_rfc3339(a.client_time)),
        };
        response_info(a, cmid, client_time)
    });
    (req, resp)
}

/// The `request` object of a `kms` event. The product ids nearly always name catalog rows, whose
/// text is prebuilt: only the CMIDs are formatted here.
fn request_info(q: KmsRequest) -> KmsRequestInfo {
    let text = |e: Option<&GuidText>, g: &Guid| e.cloned().unwrap_or_else(|| g.inline_text());
    let app = kms::products::app_entry(&q.app_id);
    let sku = kms::products::sku_entry(&q.sku_id);
    let kms_info = kms::products::kms_entry(&q.kms_id);
    KmsRequestInfo {
        app_id: text(app.map(|e| &e.text), &q.app_id),
        app_name: app.map(|a| a.info.name),
        sku_id: text(sku.map(|e| &e.text), &q.sku_id),
        sku_name: sku.map(|s| s.info.name),
        kms_id: text(kms_info.map(|e| &e.text), &q.kms_id),
        kms_name: kms_info.map(|k| k.info.name),
        cmid: q.cmid.inline_text(),
        previous_cmid: (!q.previous_cmid.is_zero()).then(|| q.previous_cmid.inline_text()),
        required_count: q.required_count,
        is_vm: q.is_vm(),
        license_status: q.license_status.name(),
        license_status_code: q.license_status.0,
        binding_expiration_min: q.binding_expiration,
        client_time: TimeText::display(&filetime_rfc3339(q.client_time)),
        catalog_threshold: kms_info.map(|k| k.info.threshold),
        // For the analysis (not written): no parsing of the texts back.
        cmid_guid: Some(q.cmid),
        client_secs: Some(filetime_unix_secs(q.client_time)),
        products_consistent: app.is_some()
            && kms_info.is_some_and(|k| k.info.app == q.app_id)
            && sku.is_some_and(|s| s.info.app == q.app_id),
        workstation: q.workstation,
    }
}

/// The `response` object of a `kms` event, with the text of its CMID and client time.
fn response_info(r: KmsResponse, cmid: GuidText, client_time: TimeText) -> KmsResponseInfo {
    KmsResponseInfo {
        host: epid_info(&r.epid),
        epid: r.epid,
        current_count: r.current_count,
        activation_interval_min: r.activation_interval,
        renewal_interval_min: r.renewal_interval,
        hwid: r.hwid.map(hwid_text),
        cmid,
        client_time,
    }
}

/// ePIDs remembered per thread by [`epid_info`].
const EPID_MEMO: usize = 8;

/// Recently decoded ePIDs and their `host` objects, and the slot the next new one replaces.
#[derive(Default)]
struct EpidMemo {
    entries: ArrayVec<(WireText, EpidInfo), EPID_MEMO>,
    next: usize,
}

thread_local! {
    /// A host sends the same ePID in every response, and a capture holds few hosts: the last
    /// few ePIDs decoded on this thread nearly always include the next one.
    static EPIDS: RefCell<EpidMemo> = RefCell::default();
}

/// The `host` object of an ePID (kms-protocol.md §4), memoised per thread.
fn epid_info(epid: &str) -> EpidInfo {
    EPIDS.with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            // Re-entered on this thread (cannot happen): decode without the memo.
            return epid_info_uncached(epid);
        };
        if let Some((_, info)) = memo.entries.iter().find(|(e, _)| e == epid) {
            return info.clone();
        }
        let info = epid_info_uncached(epid);
        let entry = (WireText::from(epid), info.clone());
        if memo.entries.is_full() {
            // Round robin: a host whose ePID changes per response cannot flush the others at once.
            let at = memo.next;
            memo.next = (at + 1) % EPID_MEMO;
            if let Some(slot) = memo.entries.get_mut(at) {
                *slot = entry;
            }
        } else {
            memo.entries.push(entry);
        }
        info
    })
}

fn epid_info_uncached(epid: &str) -> EpidInfo {
    let e = kms::parse_epid(epid);
    EpidInfo {
        platform_id: e.platform_id,
        group_id: e.group_id,
        key_id: e.key_id,
        channel: e.channel,
        lcid: e.lcid,
        os_build: e.os_build,
        key_installed: e.key_installed.map(date_text),
    }
}

/// The `version` of a `kms` event: `6.0` (borrowed for the versions in use).
pub fn version_text(v: kms::KmsVersion) -> Cow<'static, str> {
    match (v.major, v.minor) {
        (4, 0) => Cow::Borrowed("4.0"),
        (5, 0) => Cow::Borrowed("5.0"),
        (6, 0) => Cow::Borrowed("6.0"),
        _ => Cow::Owned(v.to_string()),
    }
}

// Text forms of the per-call values without `core::fmt` (its `{:02}`-style arguments cost several
// times more than these loops; every `kms` event carries them).

/// `{:016X}` of the HwId (its `Display`).
fn hwid_text(h: kms::HwId) -> InlineText<16> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = [0u8; 16];
    for (i, b) in h.0.iter().enumerate() {
        s[2 * i] = HEX[usize::from(b >> 4)];
        s[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    // Hex digits: always UTF-8.
    InlineText::from(std::str::from_utf8(&s).unwrap_or_default())
}

/// `YYYY-MM-DD` (the `Display` of [`kms::Date`]), inline.
fn date_text(d: kms::Date) -> InlineText<10> {
    if d.year > 9999 {
        return InlineText::from(d.to_string());
    }
    let mut b = *b"0000-00-00";
    for (at, v, width) in [
        (0, d.year, 4),
        (5, u16::from(d.month), 2),
        (8, u16::from(d.day), 2),
    ] {
        let mut v = v;
        for c in b[at..at + width].iter_mut().rev() {
            *c = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    // Digits and dashes: always UTF-8.
    InlineText::from(std::str::from_utf8(&b).unwrap_or_default())
}

fn record(r: &dns::Record) -> DnsRecord {
    let mut out = DnsRecord {
        rtype: dns::qtype_name(r.rtype).into_owned(),
        name: r.name.clone(),
        ttl: r.ttl,
        ..DnsRecord::default()
    };
    match &r.data {
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            out.priority = Some(*priority);
            out.weight = Some(*weight);
            out.port = Some(*port);
            out.target = Some(target.clone());
        }
        RecordData::A(a) => out.address = Some((*a).into()),
        RecordData::Aaaa(a) => out.address = Some((*a).into()),
        RecordData::Cname(n) | RecordData::Ptr(n) | RecordData::Ns(n) => {
            out.target = Some(n.clone())
        }
        RecordData::Mx {
            preference,
            exchange,
        } => {
            out.priority = Some(*preference);
            out.target = Some(exchange.clone());
        }
        RecordData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => {
            out.data = Some(format!(
                "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
            ));
        }
        RecordData::Txt(parts) => {
            let t: Vec<String> = parts
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            out.data = Some(t.join(" "));
        }
        RecordData::Opt(_) | RecordData::Empty => {}
        RecordData::Other(b) | RecordData::Malformed(b) => {
            out.data = Some(format!("{} bytes", b.len()))
        }
    }
    out
}

fn records(rs: &[dns::Record]) -> Vec<DnsRecord> {
    rs.iter()
        .filter(|r| !matches!(r.data, RecordData::Opt(_)))
        .map(record)
        .collect()
}

/// The payload of a `dns` event, with the frame and time of its first evidence packet.
pub fn dns_exchange(ex: &Exchange) -> (DnsExchange, u64, Ts) {
    let q = ex.question();
    let mut d = DnsExchange {
        id: ex.id(),
        opcode: ex.opcode().name().into_owned(),
        transport: match ex.transport {
            dns::Transport::Udp => "udp",
            dns::Transport::Tcp => "tcp",
        },
        query: q.map(|q| q.name.clone()),
        qtype: q.map(|q| dns::qtype_name(q.qtype).into_owned()),
        rcode: ex.rcode().map(|r| dns::rcode_name(r).into_owned()),
        status: match (&ex.query, &ex.response) {
            (Some(_), Some(_)) => "answered",
            (None, Some(_)) => "response_only",
            _ => "unanswered",
        },
        response_frame: ex.response_frame,
        rtt_ms: ex.rtt_ms().map(|v| (v * 1000.0).round() / 1000.0),
        retransmissions: ex.retransmissions,
        ..DnsExchange::default()
    };
    if let Some(r) = &ex.response {
        d.answers = records(&r.answers);
        d.authority = records(&r.authority);
        d.additional = records(&r.additional);
        d.authoritative = r.authoritative;
        d.truncated = r.truncated;
    } else if let Some(qm) = &ex.query {
        // A dynamic UPDATE carries its records in the query: show them.
        if qm.opcode.0 == 5 {
            d.authority = records(&qm.authority);
        }
    }
    (d, ex.frame(), ex.ts())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values carried for the analysis agree with the texts: the CMID's GUID, the client
    /// time's seconds, and `products_consistent` exactly when KMS-13 finds nothing to say.
    #[test]
    fn carried_values_agree_with_the_texts() {
        // (kind, guid, application) of the catalog rows.
        let rows: Vec<(&str, Guid, Guid)> = kms::products::PRODUCTS_CSV
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split(',');
                let (kind, guid) = (f.next()?, Guid::parse(f.next()?)?);
                Some((kind, guid, Guid::parse(f.nth(1)?)?))
            })
            .collect();
        let unknown = Guid([0x5a; 16]);
        let first = |kind: &str, app: Guid| {
            rows.iter()
                .find(|(k, _, a)| *k == kind && *a == app)
                .map_or(unknown, |r| r.1)
        };
        let other_kms = |app: Guid| {
            rows.iter()
                .find(|(k, _, a)| *k == "kms" && *a != app)
                .map_or(unknown, |r| r.1)
        };
        // For a sample of SKUs: matching and mismatching ApplicationIds and KMS counted ids,
        // and unknown ids in each place.
        let mut triples = Vec::new();
        for &(_, sku, app) in rows.iter().filter(|r| r.0 == "sku").step_by(5) {
            for app_id in [app, first("app", other_kms(app)), unknown] {
                for kms_id in [first("kms", app), other_kms(app), unknown] {
                    for sku_id in [sku, unknown] {
                        triples.push((app_id, kms_id, sku_id));
                    }
                }
            }
        }
        let mut consistent = 0;
        for (i, &(app_id, kms_id, sku_id)) in triples.iter().enumerate() {
            let q = KmsRequest {
                version: kms::KmsVersion { major: 6, minor: 0 },
                vm_info: 0,
                license_status: kms::LicenseStatus(2),
                binding_expiration: 0,
                app_id,
                sku_id,
                kms_id,
                cmid: Guid([i as u8; 16]),
                required_count: 25,
                client_time: 133_000_000_000_000_000 + i as u64 * 10_000_001,
                previous_cmid: Guid::ZERO,
                workstation: "pc".into(),
            };
            let r = request_info(q.clone());
            let issues = crate::analysis::state::find_product_issues(&r);
            assert_eq!(r.products_consistent, issues.is_empty(), "{issues:?}");
            consistent += usize::from(r.products_consistent);
            assert_eq!(r.cmid_guid, Some(q.cmid));
            assert_eq!(r.cmid.as_str(), q.cmid.inline_text().as_str());
            assert_eq!(
                r.client_secs,
                crate::analysis::state::parse_rfc3339_secs(&r.client_time)
            );
        }
        assert!(consistent > 0);
    }

    #[test]
    fn text_forms_match_display() {
        for (major, minor) in [(4, 0), (5, 0), (6, 0), (6, 1), (65535, 65535)] {
            let v = kms::KmsVersion { major, minor };
            assert_eq!(version_text(v), v.to_string());
        }
        for v in [0u64, 1, 0x3A1C_0496_00B6_0076, u64::MAX] {
            let h = kms::HwId(v.to_be_bytes());
            assert_eq!(hwid_text(h), h.to_string());
        }
        for (year, month, day) in [
            (0, 1, 1),
            (7, 9, 30),
            (2026, 12, 31),
            (9999, 1, 2),
            (10000, 3, 4),
            (u16::MAX, 12, 31),
        ] {
            let d = kms::Date { year, month, day };
            assert_eq!(*date_text(d), d.to_string());
        }
    }
}
