//! The `Event` envelope and payloads of the JSON Lines contract (docs/events.md). This is the only type
//! the sinks (JSON Lines, text table, report, terminal UI) see, so they can never disagree.
//!
//! Absent values are omitted, never `null`. Names are a contract: add fields, never rename.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Serialize, Serializer};

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
    /// the `Event` with serde, without serde's `flatten` machinery (which goes through a map
    /// serializer for the body). The envelope is written directly; the body struct is serialised
    /// into `scratch` and spliced in after the envelope.
    pub fn write_json(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> serde_json::Result<()> {
        use std::io::Write as _;
        out.extend_from_slice(b"{\"ts\":\"");
        write!(out, "{}", self.ts.rfc3339_micros()).map_err(serde_json::Error::io)?;
        out.extend_from_slice(b"\",\"event\":");
        serde_json::to_writer(&mut *out, self.event)?;
        out.extend_from_slice(b",\"source\":");
        serde_json::to_writer(&mut *out, &*self.source)?;
        if self.frame != 0 {
            out.extend_from_slice(b",\"frame\":");
            write!(out, "{}", self.frame).map_err(serde_json::Error::io)?;
        }
        if let Some(c) = &self.client {
            out.extend_from_slice(b",\"client\":");
            serde_json::to_writer(&mut *out, c)?;
        }
        if let Some(c) = &self.server {
            out.extend_from_slice(b",\"server\":");
            serde_json::to_writer(&mut *out, c)?;
        }
        if let Body::Dns(d) = &self.body {
            // Hand-written, same bytes as serde (see crate::dns::json).
            out.push(b',');
            crate::dns::json::write_fields(d, out);
            out.push(b'}');
            return Ok(());
        }
        scratch.clear();
        serde_json::to_writer(&mut *scratch, &self.body)?;
        // `scratch` is `{...}`: splice its fields after the envelope's.
        if scratch.len() > 2 {
            out.push(b',');
            out.extend_from_slice(&scratch[1..]);
        } else {
            out.push(b'}');
        }
        Ok(())
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
    pub version: Option<String>,
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
    pub app_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<&'static str>,
    pub sku_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_name: Option<&'static str>,
    pub kms_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_name: Option<&'static str>,
    pub cmid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_cmid: Option<String>,
    pub workstation: String,
    pub required_count: u32,
    pub is_vm: bool,
    pub license_status: String,
    pub license_status_code: u32,
    pub binding_expiration_min: u32,
    pub client_time: String,
    /// Threshold the product catalog gives for this KMS counted id (the client's own is `required_count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_threshold: Option<u32>,
}

/// The decoded KMS response (kms-protocol.md §2.2).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KmsResponseInfo {
    pub epid: String,
    pub host: EpidInfo,
    pub current_count: u32,
    pub activation_interval_min: u32,
    pub renewal_interval_min: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid: Option<String>,
    /// The echoed CMID and client time (they must equal the request's; see `integrity`).
    pub cmid: String,
    pub client_time: String,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_installed: Option<String>,
}

/// An HRESULT or RPC status with its name and meaning.
#[derive(Clone, Debug, Serialize)]
pub struct Hresult {
    /// `0xC004F042` form.
    pub code: String,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transfer_syntaxes: Vec<TransferSyntaxResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assoc_group: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sec_addr: Option<String>,
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
    pub syntax: String,
    pub syntax_name: &'static str,
    /// `accepted`, `user_rejection`, `provider_rejection`, `negotiate_ack`, or `result_<n>`.
    pub result: String,
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
        let (mut line, mut scratch) = (Vec::new(), Vec::new());
        ev.write_json(&mut line, &mut scratch).unwrap();
        assert_eq!(String::from_utf8(line).unwrap(), s);
    }
}
