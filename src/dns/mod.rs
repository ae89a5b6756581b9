//! DNS: parse messages and pair queries with answers.
//!
//! KMS clients find their host with the SRV record `_VLMCS._TCP.<domain>` (RFC 2782; Windows sends
//! the name upper-case) and then A/AAAA lookups of the target; KMS hosts publish that record with
//! dynamic UPDATE (RFC 2136). This module turns DNS payloads into owned [`DnsMessage`]s and
//! [`Exchange`]s; it knows nothing of flows, events or output (the caller builds the `dns` event
//! of events.md from an [`Exchange`] and turns errors, issues and evictions into anomalies).
//!
//! Data flow, per packet the flow layer hands over:
//!
//! 1. UDP: if either port passes [`is_dns_port`] (53, 5353), or [`looks_like_dns`] accepts the
//!    payload, call [`parse_message`]. TCP: buffer each direction, [`split_tcp_messages`] it
//!    (consumed/needed contract), and parse each message; on other ports gate the stream with
//!    [`looks_like_dns_tcp`].
//! 2. Feed each message to [`DnsTracker::on_message`] with its endpoints, frame and packet time;
//!    call [`DnsTracker::expire`] as packet time advances and [`DnsTracker::finish`] at the end.
//! 3. Each [`Exchange`] that comes out is one `dns` event: `query` is the first question's name
//!    exactly as on the wire ([`message`] explains the rendering), `qtype`/`rcode` through
//!    [`qtype_name`]/[`rcode_name`], `status` from [`Exchange::is_answered`], `rtt_ms` from
//!    [`Exchange::rtt_ms`]. [`Outcome::Evicted`] means the pending-query limit was hit (anomaly).
//!
//! Specifications: RFC 1035 (message format, names, compression, TCP framing), RFC 2782 (SRV),
//! RFC 2136 (UPDATE), RFC 3596 (AAAA), RFC 6891 (EDNS), RFC 6762 (mDNS).

pub mod detect;
mod fast;
pub mod json;
pub mod message;
pub mod pairing;
pub mod tcp;

#[cfg(test)]
mod tests;

pub use detect::{
    DNS_PORT, MAX_DETECT_QUESTIONS, MDNS_PORT, is_dns_port, looks_like_dns, looks_like_dns_tcp,
};
pub use message::{
    DnsError, DnsMessage, Edns, HEADER_LEN, Header, MAX_MESSAGE_LEN, Opcode, Question, Record,
    RecordData, Section, class_name, parse_header, parse_message, parse_message_hickory,
    push_label, qtype_name, rcode_name,
};
pub use pairing::{
    DEFAULT_TIMEOUT_NS, DnsTracker, Endpoint, Exchange, MAX_PENDING_QUERIES,
    MAX_PENDING_QUERY_BYTES, Outcome, Transport,
};
pub use tcp::{TCP_LENGTH_PREFIX, TcpFrames, split_tcp_messages};
