//! Owned event payloads from the parsers' wire structs (the event boundary of the house style).

use std::borrow::Cow;

use arrayvec::ArrayVec;

use crate::dns::{self, Exchange, RecordData};
use crate::event::{DnsExchange, DnsRecord, EpidInfo, KmsRequestInfo, KmsResponseInfo};
use crate::guid::{Guid, GuidText, InlineText, TimeText, WireText};
use crate::kms::{self, KmsRequest, KmsResponse};
use crate::time::{Ts, civil_from_days, filetime_rfc3339, filetime_unix_secs};

/// Fills the `request` and `response` objects of a `kms` event in place (`req` and `resp`, kept
/// from the previous event: no struct is built and moved) from the decoded messages, or clears
/// them. The workstation name and the ePID move into the event. The response's echoes of the
/// CMID and the client time reuse the request's text when they agree, as they nearly always do.
pub fn kms_infos(
    q: Option<&mut KmsRequest>,
    a: Option<&mut KmsResponse>,
    req: &mut Option<KmsRequestInfo>,
    resp: &mut Option<KmsResponseInfo>,
    texts: &mut Texts,
) {
    let echo = q.as_ref().map(|q| (q.cmid, q.client_time));
    match q {
        Some(q) => request_info(q, req.get_or_insert_with(KmsRequestInfo::default)),
        None => *req = None,
    }
    let Some(a) = a else {
        *resp = None;
        return;
    };
    let r = resp.get_or_insert_with(KmsResponseInfo::default);
    response_info(a, r, texts);
    match (&*req, echo) {
        (Some(q), Some((c, _))) if c == a.cmid => r.cmid.clone_from(&q.cmid),
        _ => r.cmid = a.cmid.inline_text(),
    }
    match (&*req, echo) {
        (Some(q), Some((_, t))) if t == a.client_time => r.client_time.clone_from(&q.client_time),
        _ => r.client_time = filetime_text(a.client_time),
    }
}

/// Sets `to` to the text of `g`: the catalog's prebuilt text when there is one.
fn set_guid_text(to: &mut GuidText, catalog: Option<&GuidText>, g: &Guid) {
    match catalog {
        Some(t) => to.clone_from(t),
        None => *to = g.inline_text(),
    }
}

/// Fills the `request` object of a `kms` event. The product ids nearly always name catalog rows,
/// whose text is prebuilt: only the CMIDs are formatted here.
fn request_info(q: &mut KmsRequest, r: &mut KmsRequestInfo) {
    let app = kms::products::app_entry(&q.app_id);
    let sku = kms::products::sku_entry(&q.sku_id);
    let kms_info = kms::products::kms_entry(&q.kms_id);
    // Destructured so that a field added to `KmsRequestInfo` cannot be left over from the last
    // event.
    let KmsRequestInfo {
        app_id,
        app_name,
        sku_id,
        sku_name,
        kms_id,
        kms_name,
        cmid,
        previous_cmid,
        workstation,
        required_count,
        is_vm,
        license_status,
        license_status_code,
        binding_expiration_min,
        client_time,
        catalog_threshold,
        cmid_guid,
        client_secs,
        products_consistent,
    } = r;
    set_guid_text(app_id, app.map(|e| &e.text), &q.app_id);
    *app_name = app.map(|a| a.info.name);
    set_guid_text(sku_id, sku.map(|e| &e.text), &q.sku_id);
    *sku_name = sku.map(|s| s.info.name);
    set_guid_text(kms_id, kms_info.map(|e| &e.text), &q.kms_id);
    *kms_name = kms_info.map(|k| k.info.name);
    *cmid = q.cmid.inline_text();
    *previous_cmid = (!q.previous_cmid.is_zero()).then(|| q.previous_cmid.inline_text());
    *required_count = q.required_count;
    *is_vm = q.is_vm();
    *license_status = q.license_status.name();
    *license_status_code = q.license_status.0;
    *binding_expiration_min = q.binding_expiration;
    *client_time = filetime_text(q.client_time);
    *catalog_threshold = kms_info.map(|k| k.info.threshold);
    // For the analysis (not written): no parsing of the texts back.
    *cmid_guid = Some(q.cmid);
    *client_secs = Some(filetime_unix_secs(q.client_time));
    *products_consistent = app.is_some()
        && kms_info.is_some_and(|k| k.info.app == q.app_id)
        && sku.is_some_and(|s| s.info.app == q.app_id);
    *workstation = std::mem::take(&mut q.workstation);
}

/// Fills the `response` object of a `kms` event but for its CMID and client time (see
/// [`kms_infos`]).
fn response_info(a: &mut KmsResponse, r: &mut KmsResponseInfo, texts: &mut Texts) {
    let KmsResponseInfo {
        epid,
        host,
        current_count,
        activation_interval_min,
        renewal_interval_min,
        hwid,
        cmid: _,
        client_time: _,
    } = r;
    *host = texts.epid_info(&a.epid);
    *epid = std::mem::take(&mut a.epid);
    *current_count = a.current_count;
    *activation_interval_min = a.activation_interval;
    *renewal_interval_min = a.renewal_interval;
    *hwid = a.hwid.map(hwid_text);
}

/// Entries of each memo of [`Texts`].
const MEMO: usize = 8;

/// A few values and the text (or object) made from each, and the slot the next new one
/// replaces (round robin: a value that changes every time cannot flush the others at once).
struct Memo<K, V> {
    entries: ArrayVec<(K, V), MEMO>,
    next: usize,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            entries: ArrayVec::new(),
            next: 0,
        }
    }
}

impl<K, V: Clone> Memo<K, V> {
    /// The value remembered for a key `is` accepts, or `make`'s (then remembered under `key()`).
    fn get(
        &mut self,
        is: impl Fn(&K) -> bool,
        key: impl FnOnce() -> K,
        make: impl FnOnce() -> V,
    ) -> V {
        if let Some((_, v)) = self.entries.iter().find(|(k, _)| is(k)) {
            return v.clone();
        }
        let v = make();
        let entry = (key(), v.clone());
        if self.entries.is_full() {
            let at = self.next;
            self.next = (at + 1) % MEMO;
            if let Some(slot) = self.entries.get_mut(at) {
                *slot = entry;
            }
        } else {
            self.entries.push(entry);
        }
        v
    }
}

/// What the event texts of one source remember between events: the interface and transfer
/// syntaxes of bind_acks are the same few GUIDs in every connection (KMS, NDR32, NDR64, bind-time
/// feature negotiation), and a host sends the same ePID in every response while a capture holds
/// few hosts.
#[derive(Default)]
pub struct Texts {
    guids: Memo<Guid, GuidText>,
    epids: Memo<WireText, EpidInfo>,
}

impl Texts {
    /// The canonical text of `g`.
    pub fn guid(&mut self, g: &Guid) -> GuidText {
        self.guids.get(|k| k == g, || *g, || g.inline_text())
    }

    /// The `host` object of an ePID (kms-protocol.md §4).
    fn epid_info(&mut self, epid: &str) -> EpidInfo {
        self.epids.get(
            |k| k == epid,
            || WireText::from(epid),
            || epid_info_uncached(epid),
        )
    }
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

/// `YYYY-MM-DDTHH:MM:SSZ` of a FILETIME (the `Display` of [`filetime_rfc3339`]), inline.
fn filetime_text(ft: u64) -> TimeText {
    let secs = filetime_unix_secs(ft);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let Ok(year) = u16::try_from(y) else {
        return TimeText::display(&filetime_rfc3339(ft));
    };
    if year > 9999 {
        return TimeText::display(&filetime_rfc3339(ft));
    }
    // Two digits at a time (every value is below 100): a division by 10 per pair, not per digit.
    let pair = |v: u32| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    let sod = sod as u32;
    let year = u32::from(year);
    let [y1, y2, mm, dd, hh, mi, ss] = [
        year / 100,
        year % 100,
        m,
        d,
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
    ]
    .map(pair);
    let b = [
        y1[0], y1[1], y2[0], y2[1], b'-', mm[0], mm[1], b'-', dd[0], dd[1], b'T', hh[0], hh[1],
        b':', mi[0], mi[1], b':', ss[0], ss[1], b'Z',
    ];
    // Digits and separators: always UTF-8.
    TimeText::from(std::str::from_utf8(&b).unwrap_or_default())
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
            let mut r = KmsRequestInfo::default();
            request_info(&mut q.clone(), &mut r);
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
        // FILETIMEs: 1601, the Unix epoch, recent times, the last second of 9999, the first of
        // 10000 (the general formatter), u64::MAX, and a spread in between.
        let mut fts = vec![
            0u64,
            116_444_736_000_000_000,
            134_080_000_000_000_000,
            2_650_467_743_990_000_000,
            2_650_467_744_000_000_000,
            u64::MAX,
        ];
        fts.extend((0..2000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2));
        for ft in fts {
            assert_eq!(*filetime_text(ft), filetime_rfc3339(ft).to_string(), "{ft}");
        }
    }
}
