//! Owned event payloads from the parsers' wire structs (the event boundary of the house style).

use std::borrow::Cow;

use crate::dns::{self, Exchange, RecordData};
use crate::event::{DnsExchange, DnsRecord, EpidInfo, KmsRequestInfo, KmsResponseInfo};
use crate::kms::{self, KmsRequest, KmsResponse};
use crate::time::{Ts, filetime_rfc3339};

/// The `request` object of a `kms` event.
pub fn request_info(q: &KmsRequest) -> KmsRequestInfo {
    let kms_info = kms::products::kms(&q.kms_id);
    KmsRequestInfo {
        app_id: q.app_id.inline_text(),
        app_name: kms::products::app(&q.app_id).map(|a| a.name),
        sku_id: q.sku_id.inline_text(),
        sku_name: kms::products::sku(&q.sku_id).map(|s| s.name),
        kms_id: q.kms_id.inline_text(),
        kms_name: kms_info.map(|k| k.name),
        cmid: q.cmid.inline_text(),
        previous_cmid: (!q.previous_cmid.is_zero()).then(|| q.previous_cmid.inline_text()),
        workstation: q.workstation.clone(),
        required_count: q.required_count,
        is_vm: q.is_vm(),
        license_status: q.license_status.name(),
        license_status_code: q.license_status.0,
        binding_expiration_min: q.binding_expiration,
        client_time: filetime_rfc3339(q.client_time).text(),
        catalog_threshold: kms_info.map(|k| k.threshold),
    }
}

/// The `response` object of a `kms` event.
pub fn response_info(r: &KmsResponse) -> KmsResponseInfo {
    let e = kms::parse_epid(&r.epid);
    KmsResponseInfo {
        epid: r.epid.clone(),
        host: EpidInfo {
            platform_id: e.platform_id,
            group_id: e.group_id,
            key_id: e.key_id,
            channel: e.channel,
            lcid: e.lcid,
            os_build: e.os_build,
            key_installed: e.key_installed.map(date_text),
        },
        current_count: r.current_count,
        activation_interval_min: r.activation_interval,
        renewal_interval_min: r.renewal_interval,
        hwid: r.hwid.map(hwid_text),
        cmid: r.cmid.inline_text(),
        client_time: filetime_rfc3339(r.client_time).text(),
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
fn hwid_text(h: kms::HwId) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = [0u8; 16];
    for (i, b) in h.0.iter().enumerate() {
        s[2 * i] = HEX[usize::from(b >> 4)];
        s[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    // Hex digits: always UTF-8.
    std::str::from_utf8(&s).unwrap_or_default().to_owned()
}

/// `YYYY-MM-DD` (the `Display` of [`kms::Date`]).
fn date_text(d: kms::Date) -> String {
    if d.year > 9999 {
        return d.to_string();
    }
    let mut s = String::with_capacity(10);
    for (v, width) in [(d.year, 4), (u16::from(d.month), 2), (u16::from(d.day), 2)] {
        if !s.is_empty() {
            s.push('-');
        }
        let mut div = 10u16.pow(width - 1);
        while div > 0 {
            s.push(char::from(b'0' + (v / div % 10) as u8));
            div /= 10;
        }
    }
    s
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
            assert_eq!(date_text(d), d.to_string());
        }
    }
}
