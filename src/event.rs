//! The `Event` envelope and payloads of the JSON Lines contract (docs/events.md). This is the only type
//! the sinks (JSON Lines, text table, report, terminal UI) see, so they can never disagree.
//!
//! Absent values are omitted, never `null`. Names are a contract: add fields, never rename.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::guid::{Guid, GuidText, InlineText, TimeText, WireText};
use crate::output::json;
use crate::time::Ts;

/// One line of output.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Capture time of the event's first evidence packet (for `summary`: of the last packet).
    #[serde(serialize_with = "ser_ts")]
    pub ts: Ts,
    /// `kms`, `dns`, `rpc`, `finding`, `anomaly`, `summary`.
    pub event: &'static str,
    /// Capture file name as given on the command line, `archive.zip:member`, or `live:<iface>`.
    pub source: Arc<str>,
    /// 1-based frame number of the packet that completed the evidence; 0 (omitted) when none.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Endpoint>,
    #[serde(flatten)]
    pub body: Body,
}

impl Event {
    /// Appends this event as one JSON object (no newline) to `out`: the same bytes as serialising
    /// the `Event` with serde (field order, omissions and value forms of the derives above), but
    /// written by hand with the primitives of [`crate::output::json`]: no `flatten` machinery (a
    /// map serializer for the body), no formatting of values into intermediate strings. The `dns`
    /// body is written by [`crate::dns::json::write_fields`].
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":\"");
        self.ts.rfc3339_micros().write_to(out);
        out.extend_from_slice(b"\",\"event\":\"");
        json::name_close(out, self.event);
        write_source(out, &self.source);
        if self.frame != 0 {
            json::kv_uint!(out, "frame", self.frame);
        }
        if let Some(c) = &self.client {
            json::key_lit!(out, "client");
            c.write_json(out);
        }
        if let Some(c) = &self.server {
            json::key_lit!(out, "server");
            c.write_json(out);
        }
        // Every body has at least one field: each writer starts with a comma.
        match &self.body {
            Body::Dns(d) => {
                out.push(b',');
                crate::dns::json::write_fields(d, out);
            }
            Body::Kms(k) => k.write_fields(out),
            Body::Rpc(r) => r.write_fields(out),
            Body::Finding(f) => f.write_fields(out),
            Body::Anomaly(a) => a.write_fields(out),
            Body::Summary(s) => s.write_fields(out),
        }
        out.push(b'}');
    }
}

/// Appends `,"source":"…"`. Every event of an input names the same source: its escaped text is
/// kept per thread with the `Arc` it came from (held, so that its address cannot be reused by
/// another text) and copied while events of that source follow.
fn write_source(out: &mut Vec<u8>, source: &Arc<str>) {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Arc<str>, Vec<u8>)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((src, text)) if Arc::ptr_eq(src, source) => out.extend_from_slice(text),
        _ => {
            let mut text = Vec::new();
            json::kv_str!(&mut text, "source", source);
            out.extend_from_slice(&text);
            *last = Some((Arc::clone(source), text));
        }
    });
}

/// Memos of the JSON text of parts of `kms` and `rpc` events that recur with the same values
/// (see [`json::Memo`]), per thread (events are written on the thread that made them). Each key
/// holds every value its text is made from, compared exactly; a part whose values do not fit a
/// key (longer text, an unknown result code) is written as usual.
struct Memos {
    products: json::Memo<ProductKey, 16>,
    hosts: json::Memo<HostKey, 16>,
    syntaxes: json::Memo<SyntaxesKey, 4>,
}

thread_local! {
    static MEMOS: std::cell::RefCell<Memos> = const {
        std::cell::RefCell::new(Memos {
            products: json::Memo::new(),
            hosts: json::Memo::new(),
            syntaxes: json::Memo::new(),
        })
    };
}

/// Appends the text `write` makes, through the memo `table` picks when there is a `key`.
fn memoized<K: PartialEq, const N: usize>(
    out: &mut Vec<u8>,
    table: fn(&mut Memos) -> &mut json::Memo<K, N>,
    key: Option<(u64, K)>,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let mut write = Some(write);
    if let Some((hash, key)) = key {
        // Not re-entered (the writers do not use the memos); should it be, or the thread be
        // ending, the text is written as usual.
        let _ = MEMOS.try_with(|m| {
            if let (Ok(mut m), Some(w)) = (m.try_borrow_mut(), write.take()) {
                table(&mut m).write(out, hash, key, w);
            }
        });
    }
    if let Some(w) = write {
        w(out);
    }
}

/// A `&'static str` (program-supplied names) compared by address and length: equal pairs are the
/// same text (the same text at another address only misses a memo).
#[derive(Clone, Copy)]
struct StaticName(Option<&'static str>);

impl PartialEq for StaticName {
    fn eq(&self, other: &StaticName) -> bool {
        match (self.0, other.0) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The 8 bytes of `b` from `at` as a word (0 when there are fewer), for a memo hash.
fn word_at(b: &[u8], at: usize) -> u64 {
    b.get(at..)
        .and_then(<[u8]>::first_chunk::<8>)
        .map_or(0, |w| u64::from_le_bytes(*w))
}

/// The `kms` request's product part: its three GUIDs (as text, 36 bytes each) and names.
#[derive(PartialEq)]
struct ProductKey {
    ids: [[u8; 36]; 3],
    names: [StaticName; 3],
}

impl ProductKey {
    fn new(r: &KmsRequestInfo) -> Option<(u64, ProductKey)> {
        let id = |g: &GuidText| <[u8; 36]>::try_from(g.as_bytes()).ok();
        let ids = [id(&r.app_id)?, id(&r.sku_id)?, id(&r.kms_id)?];
        let hash = json::memo_hash(&[word_at(&ids[1], 0), word_at(&ids[2], 0)]);
        let names = [r.app_name, r.sku_name, r.kms_name].map(StaticName);
        Some((hash, ProductKey { ids, names }))
    }
}

/// The `kms` response's host part: the ePID text (32 to 64 bytes, held as its first and last 32
/// bytes and its length, which together are the text) and its decoded fields.
#[derive(PartialEq)]
struct HostKey {
    epid: ([u8; 32], [u8; 32], usize),
    ids: [Option<u32>; 5],
    key_id: Option<u64>,
    key_installed: Option<[u8; 10]>,
}

impl HostKey {
    fn new(r: &KmsResponseInfo) -> Option<(u64, HostKey)> {
        let e = r.epid.as_bytes();
        let epid = (*e.first_chunk::<32>()?, *e.last_chunk::<32>()?, e.len());
        if epid.2 > 64 {
            return None;
        }
        let key_installed = match &r.host.key_installed {
            Some(k) => Some(<[u8; 10]>::try_from(k.as_bytes()).ok()?),
            None => None,
        };
        let h = &r.host;
        let hash = json::memo_hash(&[
            word_at(&epid.0, 6),
            word_at(&epid.0, 14),
            word_at(&epid.1, 24),
        ]);
        Some((
            hash,
            HostKey {
                epid,
                ids: [h.platform_id, h.group_id, h.channel, h.lcid, h.os_build],
                key_id: h.key_id,
                key_installed,
            },
        ))
    }
}

/// An `rpc` event's transfer syntaxes (up to 4, each result a known name).
#[derive(PartialEq)]
struct SyntaxKey {
    ctx_id: Option<u16>,
    syntax: [u8; 36],
    name: StaticName,
    result: StaticName,
    reason: u16,
}

type SyntaxesKey = [Option<SyntaxKey>; 4];

fn syntaxes_key(list: &[TransferSyntaxResult]) -> Option<(u64, SyntaxesKey)> {
    if list.len() > 4 {
        return None;
    }
    let mut key: SyntaxesKey = [const { None }; 4];
    let mut hash = list.len() as u64;
    for (k, t) in key.iter_mut().zip(list) {
        let Cow::Borrowed(result) = t.result else {
            return None;
        };
        let syntax = <[u8; 36]>::try_from(t.syntax.as_bytes()).ok()?;
        hash = hash.rotate_left(8)
            ^ word_at(&syntax, 0)
            ^ u64::from(t.reason)
            ^ (u64::from(t.ctx_id.unwrap_or(u16::MAX)) << 16)
            ^ ((result.len() as u64) << 32);
        *k = Some(SyntaxKey {
            ctx_id: t.ctx_id,
            syntax,
            name: StaticName(Some(t.syntax_name)),
            result: StaticName(Some(result)),
            reason: t.reason,
        });
    }
    Some((json::memo_hash(&[hash]), key))
}

// Hand-written JSON of the bodies (see `Event::write_json`). Each `write_fields` appends the
// struct's fields, every one preceded by a comma, in the order of the struct and with the omissions
// of its `skip_serializing_if`; each `write_json` appends a whole object. Keep in step with the
// derives: `tests::hand_written_json_matches_serde` compares the two on fully populated values.

/// A JSON object from a map with string keys (serde writes map keys as strings).
fn str_map<K: AsRef<str>>(out: &mut Vec<u8>, map: &BTreeMap<K, u64>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        json::key_str(out, i == 0, k.as_ref());
        json::uint(out, *v);
    }
    out.push(b'}');
}

impl Endpoint {
    fn write_json(&self, out: &mut Vec<u8>) {
        json::endpoint(out, &self.ip, self.port);
    }
}

impl KmsCall {
    fn write_fields(&self, out: &mut Vec<u8>) {
        json::opt_str!(out, "version", self.version.as_deref());
        json::kv_uint!(out, "call_id", self.call_id);
        json::kv_uint!(out, "ctx_id", self.ctx_id);
        json::kv_name!(out, "ndr", self.ndr);
        json::opt_uint!(out, "response_frame", self.response_frame);
        if let Some(v) = self.rtt_ms {
            json::key_lit!(out, "rtt_ms");
            json::float(out, v);
        }
        json::kv_name!(out, "status", self.status);
        json::opt_str!(out, "reason", self.reason);
        if let Some(r) = &self.request {
            json::key_lit!(out, "request");
            r.write_json(out);
        }
        if let Some(r) = &self.response {
            json::key_lit!(out, "response");
            r.write_json(out);
        }
        if let Some(h) = &self.hresult {
            json::key_lit!(out, "hresult");
            h.write_json(out);
        }
        json::key_lit!(out, "integrity");
        self.integrity.write_json(out);
        json::kv_name!(out, "outcome", self.outcome);
        json::opt_uint!(out, "request_size", self.request_size);
        json::opt_uint!(out, "response_size", self.response_size);
    }
}

impl KmsRequestInfo {
    fn write_json(&self, out: &mut Vec<u8>) {
        memoized(
            out,
            |m| &mut m.products,
            ProductKey::new(self),
            |out| self.write_product(out),
        );
        json::kv_str!(out, "cmid", &self.cmid);
        json::opt_str!(out, "previous_cmid", self.previous_cmid.as_deref());
        json::kv_str!(out, "workstation", &self.workstation);
        json::kv_uint!(out, "required_count", self.required_count);
        json::key_lit!(out, "is_vm");
        json::bool(out, self.is_vm);
        json::kv_str!(out, "license_status", &self.license_status);
        json::kv_uint!(out, "license_status_code", self.license_status_code);
        json::kv_uint!(out, "binding_expiration_min", self.binding_expiration_min);
        json::kv_str!(out, "client_time", &self.client_time);
        json::opt_uint!(out, "catalog_threshold", self.catalog_threshold);
        out.push(b'}');
    }

    /// `{"app_id":…` to the `kms_name`: the same for every call of a product (see [`ProductKey`]).
    fn write_product(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"app_id\":\"");
        json::str_close(out, &self.app_id);
        json::opt_name!(out, "app_name", self.app_name);
        json::kv_str!(out, "sku_id", &self.sku_id);
        json::opt_name!(out, "sku_name", self.sku_name);
        json::kv_str!(out, "kms_id", &self.kms_id);
        json::opt_name!(out, "kms_name", self.kms_name);
    }
}

impl KmsResponseInfo {
    fn write_json(&self, out: &mut Vec<u8>) {
        memoized(
            out,
            |m| &mut m.hosts,
            HostKey::new(self),
            |out| {
                out.extend_from_slice(b"{\"epid\":\"");
                json::str_close(out, &self.epid);
                json::key_lit!(out, "host");
                self.host.write_json(out);
            },
        );
        json::kv_uint!(out, "current_count", self.current_count);
        json::kv_uint!(out, "activation_interval_min", self.activation_interval_min);
        json::kv_uint!(out, "renewal_interval_min", self.renewal_interval_min);
        json::opt_str!(out, "hwid", self.hwid.as_deref());
        json::kv_str!(out, "cmid", &self.cmid);
        json::kv_str!(out, "client_time", &self.client_time);
        out.push(b'}');
    }
}

impl EpidInfo {
    fn write_json(&self, out: &mut Vec<u8>) {
        // Every field is optional: see `json::open_fields`.
        let start = json::open_fields(out);
        json::opt_uint!(out, "platform_id", self.platform_id);
        json::opt_uint!(out, "group_id", self.group_id);
        json::opt_uint!(out, "key_id", self.key_id);
        json::opt_uint!(out, "channel", self.channel);
        json::opt_uint!(out, "lcid", self.lcid);
        json::opt_uint!(out, "os_build", self.os_build);
        json::opt_str!(out, "key_installed", self.key_installed.as_deref());
        json::close_fields(out, start);
    }
}

impl Hresult {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"code\":\"");
        json::str_close(out, &self.code);
        json::opt_str!(out, "name", self.name);
        json::opt_str!(out, "meaning", self.meaning);
        out.push(b'}');
    }
}

impl Integrity {
    fn write_json(&self, out: &mut Vec<u8>) {
        let start = json::open_fields(out);
        json::opt_name!(out, "request", self.request);
        json::opt_name!(out, "response", self.response);
        if !self.failures.is_empty() {
            json::key_lit!(out, "failures");
            json::str_array(out, &self.failures);
        }
        json::close_fields(out, start);
    }
}

impl RpcInfo {
    fn write_fields(&self, out: &mut Vec<u8>) {
        json::kv_name!(out, "pdu", self.pdu);
        json::opt_uint!(out, "call_id", self.call_id);
        json::opt_str!(out, "interface", self.interface.as_deref());
        json::opt_name!(out, "interface_name", self.interface_name);
        if !self.transfer_syntaxes.is_empty() {
            let list = &self.transfer_syntaxes;
            memoized(
                out,
                |m| &mut m.syntaxes,
                syntaxes_key(list),
                |out| {
                    json::key_lit!(out, "transfer_syntaxes");
                    json::array(out, list, TransferSyntaxResult::write_json);
                },
            );
        }
        json::opt_uint!(out, "assoc_group", self.assoc_group);
        json::opt_str!(out, "sec_addr", self.sec_addr.as_deref());
        if let Some(h) = &self.status {
            json::key_lit!(out, "status");
            h.write_json(out);
        }
        json::opt_name!(out, "result", self.result);
        json::opt_uint!(out, "syn_count", self.syn_count);
        json::opt_str!(out, "detail", self.detail.as_deref());
    }
}

impl TransferSyntaxResult {
    fn write_json(&self, out: &mut Vec<u8>) {
        let start = json::open_fields(out);
        json::opt_uint!(out, "ctx_id", self.ctx_id);
        json::kv_str!(out, "syntax", &self.syntax);
        json::kv_name!(out, "syntax_name", self.syntax_name);
        json::kv_str!(out, "result", &self.result);
        json::kv_uint!(out, "reason", self.reason);
        json::close_fields(out, start);
    }
}

impl Finding {
    fn write_fields(&self, out: &mut Vec<u8>) {
        json::kv_str!(out, "check", self.check);
        json::kv_str!(out, "name", self.name);
        json::kv_str!(out, "severity", self.severity.as_str());
        json::kv_str!(out, "message", &self.message);
        json::kv_str!(out, "fix", &self.fix);
        json::opt_str!(out, "predicts", self.predicts);
        json::key_lit!(out, "frames");
        out.push(b'[');
        for (i, f) in self.frames.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::uint(out, *f);
        }
        out.push(b']');
        json::kv_uint!(out, "count", self.count);
        json::key_lit!(out, "subject");
        self.subject.write_json(out);
    }
}

impl Subject {
    fn write_json(&self, out: &mut Vec<u8>) {
        let start = json::open_fields(out);
        json::opt_str!(out, "client", self.client.as_deref());
        json::opt_str!(out, "server", self.server.as_deref());
        json::opt_str!(out, "cmid", self.cmid.as_deref());
        json::opt_str!(out, "workstation", self.workstation.as_deref());
        json::opt_str!(out, "query", self.query.as_deref());
        json::opt_str!(out, "host", self.host.as_deref());
        json::opt_str!(out, "product", self.product.as_deref());
        json::opt_str!(out, "code", self.code.as_deref());
        json::close_fields(out, start);
    }
}

impl Anomaly {
    fn write_fields(&self, out: &mut Vec<u8>) {
        json::kv_str!(out, "layer", self.layer);
        json::kv_str!(out, "kind", self.kind);
        json::kv_str!(out, "detail", &self.detail);
    }
}

impl Summary {
    fn write_fields(&self, out: &mut Vec<u8>) {
        json::opt_str!(out, "first_ts", self.first_ts.as_deref());
        json::kv_uint!(out, "packets", self.packets);
        json::kv_uint!(out, "bytes", self.bytes);
        json::key_lit!(out, "duration_s");
        json::float(out, self.duration_s);
        json::opt_uint!(out, "dropped", self.dropped);
        json::opt_uint!(out, "if_dropped", self.if_dropped);
        json::kv_uint!(out, "kms_calls", self.kms_calls);
        json::key_lit!(out, "kms_by_status");
        str_map(out, &self.kms_by_status);
        json::kv_uint!(out, "dns_queries", self.dns_queries);
        json::kv_uint!(out, "anomalies", self.anomalies);
        json::key_lit!(out, "findings");
        str_map(out, &self.findings);
        json::key_lit!(out, "hosts");
        json::array(out, &self.hosts, HostSummary::write_json);
        json::kv_uint!(out, "clients", self.clients);
        if !self.client_list.is_empty() {
            json::key_lit!(out, "client_list");
            json::array(out, &self.client_list, ClientEntry::write_json);
        }
        if self.last {
            json::key_lit!(out, "last");
            json::bool(out, true);
        }
    }
}

impl HostSummary {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ip\":");
        json::ip(out, &self.ip);
        json::kv_uint!(out, "port", self.port);
        json::key_lit!(out, "epids");
        json::str_array(out, &self.epids);
        json::opt_str!(out, "hwid", self.hwid.as_deref());
        json::key_lit!(out, "apps");
        json::array(out, &self.apps, HostApp::write_json);
        out.push(b'}');
    }
}

impl HostApp {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"app_id\":\"");
        json::str_close(out, &self.app_id);
        json::opt_name!(out, "app_name", self.app_name);
        json::kv_str!(out, "kms_id", &self.kms_id);
        json::opt_name!(out, "kms_name", self.kms_name);
        json::opt_uint!(out, "last_count", self.last_count);
        json::opt_uint!(out, "max_count", self.max_count);
        json::kv_uint!(out, "required_count", self.required_count);
        json::kv_uint!(out, "requests", self.requests);
        json::kv_uint!(out, "refused", self.refused);
        json::kv_uint!(out, "failed", self.failed);
        json::kv_uint!(out, "distinct_cmids", self.distinct_cmids);
        json::key_lit!(out, "by_license_status");
        str_map(out, &self.by_license_status);
        if !self.epids.is_empty() {
            json::key_lit!(out, "epids");
            json::str_array(out, &self.epids);
        }
        if !self.count_history.is_empty() {
            json::key_lit!(out, "count_history");
            json::array(out, &self.count_history, |c, out| {
                out.extend_from_slice(b"{\"frame\":");
                json::uint(out, c.frame);
                json::kv_uint!(out, "count", c.count);
                json::kv_uint!(out, "required_count", c.required_count);
                out.push(b'}');
            });
        }
        out.push(b'}');
    }
}

impl ClientEntry {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"cmid\":\"");
        json::str_close(out, &self.cmid);
        json::key_lit!(out, "workstations");
        json::str_array(out, &self.workstations);
        json::key_lit!(out, "addresses");
        json::array(out, &self.addresses, |a, out| json::ip(out, a));
        json::key_lit!(out, "products");
        json::str_array(out, &self.products);
        json::kv_uint!(out, "requests", self.requests);
        json::kv_uint!(out, "first_frame", self.first_frame);
        json::kv_uint!(out, "last_frame", self.last_frame);
        json::kv_str!(out, "last_outcome", self.last_outcome);
        if let Some(e) = &self.last_server {
            json::key_lit!(out, "last_server");
            e.write_json(out);
        }
        json::opt_str!(out, "license_status", self.license_status.as_deref());
        json::key_lit!(out, "discovery");
        self.discovery.write_json(out);
        out.push(b'}');
    }
}

impl DiscoveryChain {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"method\":\"");
        json::str_close(out, self.method);
        if let Some(d) = &self.srv_query {
            json::key_lit!(out, "srv_query");
            d.write_json(out);
        }
        if let Some(t) = &self.target {
            json::key_lit!(out, "target");
            out.extend_from_slice(b"{\"target\":\"");
            json::str_close(out, &t.target);
            json::kv_uint!(out, "port", t.port);
            json::kv_uint!(out, "priority", t.priority);
            json::kv_uint!(out, "weight", t.weight);
            out.push(b'}');
        }
        if let Some(d) = &self.address_lookup {
            json::key_lit!(out, "address_lookup");
            d.write_json(out);
        }
        for (name, step) in [
            ("connect", &self.connect),
            ("bind", &self.bind),
            ("call", &self.call),
        ] {
            if let Some(s) = step {
                json::key(out, false, name);
                s.write_json(out);
            }
        }
        out.push(b'}');
    }
}

impl ChainDns {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"frame\":");
        json::uint(out, self.frame);
        json::kv_str!(out, "name", &self.name);
        json::kv_str!(out, "qtype", &self.qtype);
        json::opt_str!(out, "rcode", self.rcode.as_deref());
        if !self.answers.is_empty() {
            json::key_lit!(out, "answers");
            json::str_array(out, &self.answers);
        }
        out.push(b'}');
    }
}

impl ChainStep {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"frame\":");
        json::uint(out, self.frame);
        if let Some(e) = &self.server {
            json::key_lit!(out, "server");
            e.write_json(out);
        }
        json::kv_str!(out, "result", &self.result);
        out.push(b'}');
    }
}

/// An address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// The payload, one variant per `event` kind.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Body {
    Kms(Box<KmsCall>),
    Dns(Box<DnsExchange>),
    Rpc(RpcInfo),
    Finding(Finding),
    Anomaly(Anomaly),
    Summary(Box<Summary>),
}

impl Body {
    /// The `event` name of this payload.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Kms(_) => "kms",
            Body::Dns(_) => "dns",
            Body::Rpc(_) => "rpc",
            Body::Finding(_) => "finding",
            Body::Anomaly(_) => "anomaly",
            Body::Summary(_) => "summary",
        }
    }
}

/// `kms`: one KMS activation call (request and its response, if any).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KmsCall {
    /// KMS protocol version of the request, `"6.0"`; omitted when the request was not seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'static, str>>,
    pub call_id: u32,
    /// Presentation context id the request named.
    pub ctx_id: u16,
    /// Transfer syntax of the stub: `ndr32`, `ndr64`, or `unknown`.
    pub ndr: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// `answered`, `refused`, `fault`, `unanswered`.
    pub status: &'static str,
    /// Why an `unanswered` call has no reply: `connection_closed`, `connection_reset`, `idle_timeout`,
    /// `capture_ended`, `tcp_gap`, `limit`; or `request_not_captured` when only the reply was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<KmsRequestInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<KmsResponseInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hresult: Option<Hresult>,
    pub integrity: Integrity,
    /// `activated`, `count_insufficient`, `refused`, `invalid_response`, `no_response`.
    pub outcome: &'static str,
    /// Size in bytes of the KMS request and response messages (inside the NDR stubs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_size: Option<usize>,
    /// The KMS message bytes and their decryptions, for the terminal UI's hex view only. Filled
    /// only when `EngineConfig::keep_payloads` is set; never serialised (the JSON contract is
    /// unchanged).
    #[serde(skip)]
    pub raw: Option<Arc<KmsRaw>>,
}

/// The bytes behind a `kms` event (UI only, see [`KmsCall::raw`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KmsRaw {
    /// The KMS request message as carried in the NDR stub (kms-protocol.md §2.1); the whole stub
    /// when it did not parse.
    pub request: Option<Vec<u8>>,
    /// The KMS response message (or the whole `[out]` stub of a refusal or an unparsable reply).
    pub response: Option<Vec<u8>>,
    /// v5/v6: the 256 decrypted request bytes (S_c ‖ base request ‖ pad).
    pub request_plain: Option<Vec<u8>>,
    /// v5/v6: the decrypted response bytes (S_s ‖ base response ‖ trailer ‖ pad).
    pub response_plain: Option<Vec<u8>>,
}

/// The decoded KMS request (kms-protocol.md §2.1).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KmsRequestInfo {
    pub app_id: GuidText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<&'static str>,
    pub sku_id: GuidText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_name: Option<&'static str>,
    pub kms_id: GuidText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_name: Option<&'static str>,
    pub cmid: GuidText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_cmid: Option<GuidText>,
    pub workstation: WireText,
    pub required_count: u32,
    pub is_vm: bool,
    /// A known status name (borrowed) or `unknown_<n>`.
    pub license_status: Cow<'static, str>,
    pub license_status_code: u32,
    pub binding_expiration_min: u32,
    pub client_time: TimeText,
    /// Threshold the product catalog gives for this KMS counted id (the client's own is `required_count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_threshold: Option<u32>,
    /// The CMID as decoded, set by the engine (`None` in hand-built events: the analysis reads
    /// `cmid` then). Not written: `cmid` is its text.
    #[serde(skip)]
    pub cmid_guid: Option<Guid>,
    /// `client_time` in seconds since the Unix epoch, set by the engine so that the analysis does
    /// not parse the text back (`None` in hand-built events: the text is parsed then). Not written.
    #[serde(skip)]
    pub client_secs: Option<i64>,
    /// Set by the engine when the ApplicationId, KMS counted id and SKU are catalog rows that
    /// belong together (the analysis then has nothing to check for KMS-13). Not written.
    #[serde(skip)]
    pub products_consistent: bool,
}

/// The decoded KMS response (kms-protocol.md §2.2).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KmsResponseInfo {
    pub epid: WireText,
    pub host: EpidInfo,
    pub current_count: u32,
    pub activation_interval_min: u32,
    pub renewal_interval_min: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid: Option<InlineText<16>>,
    /// The echoed CMID and client time (they must equal the request's; see `integrity`).
    pub cmid: GuidText,
    pub client_time: TimeText,
}

/// The host ePID decoded (kms-protocol.md §4); fields that do not parse are omitted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpidInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lcid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_build: Option<u32>,
    /// `YYYY-MM-DD`, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_installed: Option<InlineText<10>>,
}

/// An HRESULT or RPC status with its name and meaning.
#[derive(Clone, Debug, Serialize)]
pub struct Hresult {
    /// `0xC004F042` form (a bind_nak's reason in decimal).
    pub code: InlineText<10>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<&'static str>,
}

/// Integrity verdicts of kms-protocol.md §2.8.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Integrity {
    /// `valid`, `invalid`, `undecodable`; omitted when that half was not captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<&'static str>,
}

/// `dns`: one query and its answer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DnsExchange {
    pub id: u16,
    pub opcode: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// `answered` or `unanswered` (or `response_only` when the query was not captured).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_frame: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<DnsRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authority: Vec<DnsRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional: Vec<DnsRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "is_false")]
    pub authoritative: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub retransmissions: u32,
}

/// One resource record in a `dns` event.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub rtype: String,
    pub name: String,
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Other record data in text form (SOA, TXT, unknown types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `rpc`: a DCE/RPC event other than the KMS call itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RpcInfo {
    /// `bind`, `bind_ack`, `bind_nak`, `alter_context`, `alter_context_resp`, `fault`, `connect`.
    pub pdu: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u32>,
    /// Held inline, like the GUIDs of `kms` events (no heap text per bind_ack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<GuidText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transfer_syntaxes: Vec<TransferSyntaxResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assoc_group: Option<u32>,
    /// Inline when short (a port number in practice; any text fits, longer on the heap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sec_addr: Option<GuidText>,
    /// Fault status or bind_nak reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Hresult>,
    /// For `connect`: `established`, `refused`, `no_answer`, `reset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    /// For `connect`: SYNs sent by the client (retries + 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One presentation context result in a bind_ack / alter_context_resp.
#[derive(Clone, Debug, Serialize)]
pub struct TransferSyntaxResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx_id: Option<u16>,
    /// Proposed transfer syntax (from the bind, matched by position) or the acked one.
    pub syntax: GuidText,
    pub syntax_name: &'static str,
    /// `accepted`, `user_rejection`, `provider_rejection`, `negotiate_ack`, or `result_<n>` (the
    /// known names borrowed, only an unknown code formatted).
    pub result: Cow<'static, str>,
    pub reason: u16,
}

/// `finding`: a diagnosis (docs/checks.md).
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicts: Option<&'static str>,
    pub frames: Vec<u64>,
    pub count: u64,
    pub subject: Subject,
    /// Capture time of the first evidence (becomes the event's `ts`; not serialised here).
    #[serde(skip)]
    pub first_ts: Option<Ts>,
}

/// Severity of a finding, ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// What a finding is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workstation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The HRESULT or RPC status the finding is about (`0xC004F042`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `anomaly`: something in the input that is not as it should be.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// `capture`, `link`, `ip`, `tcp`, `udp`, `dcerpc`, `kms`, `dns`.
    pub layer: &'static str,
    pub kind: &'static str,
    pub detail: String,
}

/// `summary`: per source, at the end (and periodically when live).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Capture time of the first packet (the envelope `ts` is the last packet's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_dropped: Option<u64>,
    pub kms_calls: u64,
    /// KMS calls by status (`answered`, `refused`, ...).
    pub kms_by_status: BTreeMap<&'static str, u64>,
    pub dns_queries: u64,
    pub anomalies: u64,
    pub findings: BTreeMap<&'static str, u64>,
    pub hosts: Vec<HostSummary>,
    /// Distinct CMIDs seen.
    pub clients: u64,
    /// Per client machine: the first [`crate::analysis::state::MAX_CLIENT_LIST`] clients by first
    /// frame, with their discovery chain (SRV query -> target -> address lookup -> connect -> bind
    /// -> call).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_list: Vec<ClientEntry>,
    /// Set on the last summary of a source.
    #[serde(skip_serializing_if = "is_false")]
    pub last: bool,
}

/// One KMS host in the summary: what `slmgr /dlv` shows on the host, rebuilt from the wire.
#[derive(Clone, Debug, Serialize)]
pub struct HostSummary {
    pub ip: IpAddr,
    pub port: u16,
    pub epids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid: Option<String>,
    pub apps: Vec<HostApp>,
}

/// Per host and counted product group (KMS counted id).
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostApp {
    pub app_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<&'static str>,
    pub kms_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    pub required_count: u32,
    pub requests: u64,
    pub refused: u64,
    pub failed: u64,
    pub distinct_cmids: u64,
    pub by_license_status: BTreeMap<String, u64>,
    /// ePIDs this host returned for this product group, in order of first appearance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub epids: Vec<String>,
    /// The counts returned over time: one sample per change of the count (the first answer and
    /// every answer whose count differs from the previous one), bounded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub count_history: Vec<CountSample>,
}

/// One count returned by a host (`count_history`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CountSample {
    /// Frame of the response.
    pub frame: u64,
    pub count: u32,
    /// N policy of the request it answered.
    pub required_count: u32,
}

/// One client machine (CMID) in the summary: what py-kms's client table and `slmgr /dlv` show,
/// rebuilt from the wire.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientEntry {
    pub cmid: String,
    /// Workstation names sent with this CMID (more than one: a cloned image, KMS-04).
    pub workstations: Vec<String>,
    pub addresses: Vec<IpAddr>,
    /// Editions (SKU names, or SkuIds when unknown).
    pub products: Vec<String>,
    pub requests: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// `outcome` of the client's last call (`activated`, `count_insufficient`, ...).
    pub last_outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_server: Option<Endpoint>,
    /// License status of the last request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_status: Option<String>,
    /// How the client reached the host of its last call.
    pub discovery: DiscoveryChain,
}

/// The discovery chain of one connection attempt (issue 3, item 3): SRV query -> chosen target ->
/// address lookup -> TCP connect -> bind -> call, correlated across the DNS and KMS flows by the
/// client's address, the SRV targets and ports, and the addresses their lookups returned.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DiscoveryChain {
    /// How the client found the host: `dns_srv` (an SRV answer it received advertised the host and
    /// port), `static_name` (it looked up a name that no SRV answer advertised: `/skms name`),
    /// `static_address` (no lookup of the host seen: `/skms address` or a cached host),
    /// `unknown` (no DNS traffic of this client in the capture).
    pub method: &'static str,
    /// The last `_vlmcs._tcp` SRV query of the client before the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srv_query: Option<ChainDns>,
    /// The SRV record whose target and port the client contacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<ChainTarget>,
    /// The last A/AAAA lookup of the contacted host's name before the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_lookup: Option<ChainDns>,
    /// `established`, `refused`, `no_answer`, `reset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ChainStep>,
    /// `accepted`, `rejected` (every context), `bind_nak`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<ChainStep>,
    /// The call's `outcome`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<ChainStep>,
}

/// A DNS step of a discovery chain.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ChainDns {
    pub frame: u64,
    pub name: String,
    pub qtype: String,
    /// Omitted when unanswered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// Addresses (A/AAAA) or `target:port` (SRV) the answer carried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<String>,
}

/// The SRV record a client followed.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ChainTarget {
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// A TCP / RPC / KMS step of a discovery chain.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ChainStep {
    pub frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Endpoint>,
    pub result: String,
}

fn ser_ts<S: Serializer>(ts: &Ts, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&ts.rfc3339_micros())
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_in_contract_shape() {
        let ev = Event {
            ts: Ts(1_795_446_604_123_456_789),
            event: "anomaly",
            source: Arc::from("x.pcap"),
            frame: 7,
            client: Some(Endpoint {
                ip: "10.1.2.3".parse().unwrap(),
                port: 49731,
            }),
            server: None,
            body: Body::Anomaly(Anomaly {
                layer: "tcp",
                kind: "tcp_gap",
                detail: "12 bytes".into(),
            }),
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            s,
            r#"{"ts":"2026-11-23T15:10:04.123456Z","event":"anomaly","source":"x.pcap","frame":7,"client":{"ip":"10.1.2.3","port":49731},"layer":"tcp","kind":"tcp_gap","detail":"12 bytes"}"#
        );
        let mut line = Vec::new();
        ev.write_json(&mut line);
        assert_eq!(String::from_utf8(line).unwrap(), s);
    }

    fn envelope(body: Body, full: bool) -> Event {
        Event {
            ts: Ts(1_795_446_604_123_456_789),
            event: body.kind(),
            source: Arc::from("dir/\"odd\"\\name\u{1}.pcap"),
            frame: u64::from(full) * 42,
            client: full.then(|| Endpoint {
                ip: "10.1.2.3".parse().unwrap(),
                port: 49731,
            }),
            server: full.then(|| Endpoint {
                ip: "fe80::1:2".parse().unwrap(),
                port: 1688,
            }),
            body,
        }
    }

    fn assert_same(ev: &Event) {
        let want = serde_json::to_string(ev).unwrap();
        let mut line = b"prefix".to_vec();
        line.clear();
        ev.write_json(&mut line);
        assert_eq!(String::from_utf8(line).unwrap(), want);
    }

    fn hresult() -> Hresult {
        Hresult {
            code: "0xC004F042".into(),
            name: Some("SL_E_X"),
            meaning: Some("a \"meaning\"\n"),
        }
    }

    fn full_bodies() -> Vec<Body> {
        let kms = KmsCall {
            version: Some("6.0".into()),
            call_id: 7,
            ctx_id: 1,
            ndr: "ndr32",
            response_frame: Some(9),
            rtt_ms: Some(0.064),
            status: "answered",
            reason: Some("tcp_gap"),
            request: Some(KmsRequestInfo {
                app_id: "a".into(),
                app_name: Some("Windows"),
                sku_id: "s".into(),
                sku_name: Some("Pro"),
                kms_id: "k".into(),
                kms_name: Some("KMS"),
                cmid: "c".into(),
                previous_cmid: Some("p".into()),
                workstation: "ws\u{7}\u{202e}".into(),
                required_count: 25,
                is_vm: true,
                license_status: "grace".into(),
                license_status_code: 2,
                binding_expiration_min: 43200,
                client_time: "2026-11-23T15:10:00Z".into(),
                catalog_threshold: Some(25),
                cmid_guid: None,
                client_secs: None,
                products_consistent: false,
            }),
            response: Some(KmsResponseInfo {
                epid: "05426-00206-271-298891-03-1033-9600.0000-3352026".into(),
                host: EpidInfo {
                    platform_id: Some(5426),
                    group_id: Some(206),
                    key_id: Some(271_298_891),
                    channel: Some(3),
                    lcid: Some(1033),
                    os_build: Some(9600),
                    key_installed: Some("2026-12-01".into()),
                },
                current_count: 50,
                activation_interval_min: 120,
                renewal_interval_min: 10080,
                hwid: Some("3A1C049600B60076".into()),
                cmid: "c".into(),
                client_time: "2026-11-23T15:10:00Z".into(),
            }),
            hresult: Some(hresult()),
            integrity: Integrity {
                request: Some("valid"),
                response: Some("invalid"),
                failures: vec!["hmac", "cmid_echo"],
            },
            outcome: "activated",
            request_size: Some(260),
            response_size: Some(174),
            raw: None,
        };
        let rpc = RpcInfo {
            pdu: "bind_ack",
            call_id: Some(1),
            interface: Some("51c82175-844e-4750-b0d8-ec255555bc06".into()),
            interface_name: Some("KMS"),
            transfer_syntaxes: vec![
                TransferSyntaxResult {
                    ctx_id: Some(0),
                    syntax: "x".into(),
                    syntax_name: "ndr32",
                    result: "accepted".into(),
                    reason: 0,
                },
                TransferSyntaxResult {
                    ctx_id: None,
                    syntax: "y".into(),
                    syntax_name: "ndr64",
                    result: "provider_rejection".into(),
                    reason: 2,
                },
            ],
            assoc_group: Some(0x1234),
            sec_addr: Some("\\PIPE\\x".into()),
            status: Some(hresult()),
            result: Some("established"),
            syn_count: Some(3),
            detail: Some("d".into()),
        };
        let finding = Finding {
            check: "KMS-01",
            name: "n",
            severity: Severity::Critical,
            message: "m\t".into(),
            fix: "f".into(),
            predicts: Some("0xC004F038"),
            frames: vec![1, 2, 3],
            count: 3,
            subject: Subject {
                client: Some("a".into()),
                server: Some("b".into()),
                cmid: Some("c".into()),
                workstation: Some("d".into()),
                query: Some("e".into()),
                host: Some("f".into()),
                product: Some("g".into()),
                code: Some("h".into()),
            },
            first_ts: Some(Ts(5)),
        };
        let chain_dns = ChainDns {
            frame: 3,
            name: "_vlmcs._tcp.corp".into(),
            qtype: "SRV".into(),
            rcode: Some("NOERROR".into()),
            answers: vec!["kms.corp:1688".into()],
        };
        let step = ChainStep {
            frame: 5,
            server: Some(Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 1688,
            }),
            result: "established".into(),
        };
        let summary = Summary {
            first_ts: Some("2026-11-23T15:10:00.000000Z".into()),
            packets: 10,
            bytes: 1000,
            duration_s: 1.25,
            dropped: Some(1),
            if_dropped: Some(2),
            kms_calls: 3,
            kms_by_status: [("answered", 2), ("refused", 1)].into_iter().collect(),
            dns_queries: 4,
            anomalies: 5,
            findings: [("KMS-\"01", 1)].into_iter().collect(),
            hosts: vec![HostSummary {
                ip: "10.0.0.1".parse().unwrap(),
                port: 1688,
                epids: vec!["e1".into(), "e2".into()],
                hwid: Some("h".into()),
                apps: vec![HostApp {
                    app_id: "a".into(),
                    app_name: Some("Windows"),
                    kms_id: "k".into(),
                    kms_name: Some("K"),
                    last_count: Some(50),
                    max_count: Some(50),
                    required_count: 25,
                    requests: 3,
                    refused: 1,
                    failed: 0,
                    distinct_cmids: 2,
                    by_license_status: [("grace".to_string(), 2)].into_iter().collect(),
                    epids: vec!["e1".into()],
                    count_history: vec![CountSample {
                        frame: 9,
                        count: 50,
                        required_count: 25,
                    }],
                }],
            }],
            clients: 2,
            client_list: vec![ClientEntry {
                cmid: "c".into(),
                workstations: vec!["w".into()],
                addresses: vec!["10.1.2.3".parse().unwrap(), "::1".parse().unwrap()],
                products: vec!["p".into()],
                requests: 2,
                first_frame: 1,
                last_frame: 9,
                last_outcome: "activated",
                last_server: step.server,
                license_status: Some("licensed".into()),
                discovery: DiscoveryChain {
                    method: "dns_srv",
                    srv_query: Some(chain_dns.clone()),
                    target: Some(ChainTarget {
                        target: "kms.corp".into(),
                        port: 1688,
                        priority: 0,
                        weight: 100,
                    }),
                    address_lookup: Some(chain_dns),
                    connect: Some(step.clone()),
                    bind: Some(step.clone()),
                    call: Some(step),
                },
            }],
            last: true,
        };
        vec![
            Body::Kms(Box::new(kms)),
            Body::Rpc(rpc),
            Body::Finding(finding),
            Body::Anomaly(Anomaly {
                layer: "tcp",
                kind: "k",
                detail: "\u{0}".into(),
            }),
            Body::Summary(Box::new(summary)),
            Body::Dns(Box::new(DnsExchange {
                id: 1,
                opcode: "QUERY".into(),
                transport: "udp",
                status: "answered",
                ..DnsExchange::default()
            })),
        ]
    }

    fn minimal_bodies() -> Vec<Body> {
        vec![
            Body::Kms(Box::default()),
            Body::Rpc(RpcInfo::default()),
            Body::Finding(Finding {
                check: "c",
                name: "n",
                severity: Severity::Info,
                message: String::new(),
                fix: String::new(),
                predicts: None,
                frames: Vec::new(),
                count: 0,
                subject: Subject::default(),
                first_ts: None,
            }),
            Body::Summary(Box::new(Summary {
                hosts: vec![HostSummary {
                    ip: "10.0.0.1".parse().unwrap(),
                    port: 1,
                    epids: Vec::new(),
                    hwid: None,
                    apps: vec![HostApp::default()],
                }],
                client_list: vec![ClientEntry::default()],
                ..Summary::default()
            })),
            Body::Kms(Box::new(KmsCall {
                request: Some(KmsRequestInfo::default()),
                response: Some(KmsResponseInfo::default()),
                integrity: Integrity {
                    failures: vec!["x"],
                    ..Integrity::default()
                },
                ..KmsCall::default()
            })),
        ]
    }

    #[test]
    fn source_cache_follows_the_source() {
        // Alternating sources, one needing escapes, and a new `Arc` with the same text.
        let sources = [
            Arc::from("a.pcap"),
            Arc::from("dir\\\"b\"\n.pcap"),
            Arc::from("a.pcap"),
        ];
        for _ in 0..2 {
            for src in &sources {
                let mut ev = envelope(full_bodies().swap_remove(3), true);
                ev.source = Arc::clone(src);
                assert_same(&ev);
            }
        }
    }

    /// `json::name_close` copies `&'static str` names without the escape scan. This walks every
    /// name the program can put in the fields written that way and asserts none needs an escape.
    #[test]
    fn static_names_need_no_json_escape() {
        use crate::kms::products;
        // Catalog names (app_name, sku_name, kms_name) are trimmed slices of single lines of the
        // embedded CSV: when no line holds a byte that needs an escape, no name can.
        for line in products::PRODUCTS_CSV.lines() {
            assert!(json::is_plain(line), "{line:?}");
        }
        // And the names the lookups actually return, row by row.
        let mut names = 0;
        for line in products::PRODUCTS_CSV.lines().skip(1) {
            let Some(g) = line.split(',').nth(1).and_then(crate::guid::Guid::parse) else {
                continue;
            };
            let found = [
                products::app(&g).map(|a| a.name),
                products::kms(&g).map(|k| k.name),
                products::sku(&g).map(|s| s.name),
            ];
            for n in found.into_iter().flatten() {
                assert!(json::is_plain(n), "{n:?}");
                names += 1;
            }
        }
        let (apps, kms, skus) = products::catalog().counts();
        assert!(
            names >= apps + kms + skus,
            "every catalog row was looked up"
        );
        // Table names: event kinds, NDR flavours, integrity verdicts, outcomes, and the `status`
        // and `outcome` words the engine sets directly (the debug assertion in `name_close`
        // catches any word not listed here in debug builds).
        use crate::dcerpc::TransferSyntax;
        use crate::kms::{Outcome, Verdict};
        let bodies: Vec<Body> = minimal_bodies().into_iter().chain(full_bodies()).collect();
        let tables = bodies
            .iter()
            .map(Body::kind)
            .chain(
                [
                    TransferSyntax::Ndr32,
                    TransferSyntax::Ndr64,
                    TransferSyntax::Unknown,
                ]
                .map(TransferSyntax::as_str),
            )
            .chain([Verdict::Valid, Verdict::Invalid, Verdict::Undecodable].map(Verdict::as_str))
            .chain(
                [
                    Outcome::Activated,
                    Outcome::CountInsufficient,
                    Outcome::Refused,
                    Outcome::InvalidResponse,
                    Outcome::NoResponse,
                ]
                .map(Outcome::as_str),
            )
            .chain(["answered", "refused", "unanswered", "fault"])
            // `rpc` events: PDU names (the PTYPE table and the engine's own), the interface
            // name, transfer syntax names, connect results.
            .chain((0..=u8::MAX).filter_map(|t| crate::dcerpc::PacketType(t).known_name()))
            .chain(["connect", "bind_ack", "bind_nak", "fault", "KMS"])
            .chain([
                "bind_time_feature_negotiation",
                "none",
                "ndr32",
                "ndr64",
                "other",
            ])
            .chain(["refused", "no_answer", "reset"]);
        for n in tables {
            assert!(json::is_plain(n), "{n:?}");
        }
        let kinds: std::collections::BTreeSet<_> = bodies.iter().map(Body::kind).collect();
        assert_eq!(kinds.len(), 6, "a body of each kind");
    }

    /// The memoized parts (product, host, transfer syntaxes) give serde's text: repeated, with
    /// each value a key holds changed one at a time, with more distinct keys than slots, and with
    /// values that do not fit a key (longer text, escapes, an unknown result code). Also many
    /// endpoints, repeated.
    #[test]
    fn memoized_parts_match_serde() {
        let mut bodies = full_bodies();
        let Body::Rpc(rpc) = bodies.swap_remove(1) else {
            panic!("rpc body")
        };
        let Body::Kms(kms) = bodies.swap_remove(0) else {
            panic!("kms body")
        };
        let guid =
            |i: usize| GuidText::from(format!("{i:08x}-0000-4000-8000-00000000abcd").as_str());
        let mut calls: Vec<KmsCall> = Vec::new();
        let mut with = |f: &dyn Fn(&mut KmsRequestInfo, &mut KmsResponseInfo)| {
            let mut c = (*kms).clone();
            if let (Some(q), Some(a)) = (&mut c.request, &mut c.response) {
                f(q, a);
            }
            calls.push(c);
        };
        with(&|_, _| {});
        for i in 0..40 {
            with(&|q, _| q.sku_id = guid(i));
        }
        with(&|q, _| q.app_id = guid(1));
        with(&|q, _| q.kms_id = guid(2));
        with(&|q, _| q.kms_id = "short".into());
        with(&|q, _| q.sku_id = "0123456789abcdef0123456789abcdef\"\\\n\u{1}".into());
        with(&|q, _| q.app_name = None);
        with(&|q, _| q.sku_name = Some("Other"));
        with(&|q, _| q.kms_name = None);
        for i in 0..20 {
            with(&|_, a| {
                a.epid = format!("{i:05}-00206-271-298891-03-1033-9600.0000-3352026").into()
            });
        }
        with(&|_, a| a.epid = "e\"p\\id\n".into());
        with(&|_, a| a.epid = "x".repeat(65).into());
        with(&|_, a| a.epid = String::new().into());
        with(&|_, a| a.host.platform_id = None);
        with(&|_, a| a.host.group_id = Some(1));
        with(&|_, a| a.host.key_id = Some(u64::MAX));
        with(&|_, a| a.host.channel = None);
        with(&|_, a| a.host.lcid = Some(1031));
        with(&|_, a| a.host.os_build = Some(26100));
        with(&|_, a| a.host.key_installed = None);
        with(&|_, a| a.host.key_installed = Some("2026-12-02".into()));
        with(&|_, a| a.host.key_installed = Some("2026-12-02 and more".into()));
        with(&|_, a| a.epid = "0".repeat(31).into());
        with(&|_, a| a.epid = "0".repeat(32).into());
        with(&|_, a| a.epid = "0".repeat(64).into());
        with(&|_, a| a.epid = format!("{}1{}", "0".repeat(31), "0".repeat(32)).into());
        with(&|_, a| a.current_count = 51);
        with(&|_, a| a.activation_interval_min = 121);
        with(&|_, a| a.renewal_interval_min = 10081);
        with(&|_, a| a.hwid = None);
        with(&|_, a| a.hwid = Some("3A1C049600B60077".into()));
        with(&|_, a| a.hwid = Some("3A1C".into()));
        let mut with_call = |f: &dyn Fn(&mut KmsCall)| {
            let mut c = (*kms).clone();
            f(&mut c);
            calls.push(c);
        };
        with_call(&|c| c.integrity.request = None);
        with_call(&|c| c.integrity.response = Some("valid"));
        with_call(&|c| c.integrity.failures.clear());
        with_call(&|c| c.integrity.failures = vec!["a", "b", "c", "d"]);
        with_call(&|c| c.integrity.failures = vec!["a", "b", "c", "d", "e"]);
        with_call(&|c| c.outcome = "refused");
        with_call(&|c| c.request_size = None);
        with_call(&|c| c.response_size = Some(261));
        for i in 0..20 {
            with_call(&|c| c.request_size = Some(i));
        }
        let mut rpcs: Vec<RpcInfo> = Vec::new();
        let mut with_syntaxes = |f: &dyn Fn(&mut Vec<TransferSyntaxResult>)| {
            let mut r = rpc.clone();
            f(&mut r.transfer_syntaxes);
            rpcs.push(r);
        };
        with_syntaxes(&|_| {});
        with_syntaxes(&|l| l[0].ctx_id = Some(5));
        with_syntaxes(&|l| l[1].ctx_id = Some(0));
        with_syntaxes(&|l| l[0].syntax = guid(7));
        with_syntaxes(&|l| l[0].syntax = "not a guid".into());
        with_syntaxes(&|l| l[0].syntax_name = "ndr64");
        with_syntaxes(&|l| l[1].result = Cow::Borrowed("accepted"));
        with_syntaxes(&|l| l[1].result = Cow::Owned("result_9".into()));
        with_syntaxes(&|l| l[1].reason = 3);
        with_syntaxes(&|l| l.truncate(1));
        with_syntaxes(&|l| {
            let more = l.clone();
            l.extend(more);
        });
        for i in 0..10 {
            with_syntaxes(&|l| l[0].reason = i);
        }
        let mut endpoints: Vec<Endpoint> = (0..40u8)
            .map(|i| Endpoint {
                ip: IpAddr::from([10, 0, i / 3, i]),
                port: 1688 + u16::from(i % 4),
            })
            .collect();
        endpoints.extend((0..8u16).map(|i| Endpoint {
            ip: IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, i]),
            port: i,
        }));
        for _ in 0..2 {
            for (i, c) in endpoints.iter().enumerate() {
                let mut ev = envelope(full_bodies().swap_remove(3), true);
                ev.client = Some(*c);
                ev.server = Some(endpoints[i % 5]);
                assert_same(&ev);
            }
            for c in &calls {
                assert_same(&envelope(Body::Kms(Box::new(c.clone())), true));
            }
            for r in &rpcs {
                assert_same(&envelope(Body::Rpc(r.clone()), true));
            }
        }
    }

    #[test]
    fn hand_written_json_matches_serde() {
        for body in full_bodies() {
            assert_same(&envelope(body, true));
        }
        for body in minimal_bodies().into_iter().chain(full_bodies()) {
            assert_same(&envelope(body, false));
        }
    }
}
