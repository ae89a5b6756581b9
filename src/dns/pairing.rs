//! Pairs DNS queries with their responses (RFC 1035 section 7.3: a response is matched by
//! transaction ID and question to the query it answers), in packet time and bounded memory.
//!
//! A pending query is keyed by client endpoint, server endpoint, transport and ID, and matched on
//! its first question (name compared ASCII-case-insensitively, because resolvers may echo the
//! question with different case, e.g. under 0x20 randomisation; QTYPE exactly). A response without
//! a question section (some FORMERR/SERVFAIL answers) takes the oldest pending query with the same
//! key. Every message ends up in exactly one [`Exchange`], with an [`Outcome`] saying how it ended:
//!
//! * the response arrives: `Answered`;
//! * a response matches nothing pending (no query captured, a duplicate answer, an mDNS
//!   announcement): `ResponseOnly`, never dropped;
//! * the query waits longer than the timeout (packet time since its last transmission):
//!   `TimedOut`; at [`DnsTracker::finish`]: `CaptureEnded`;
//! * the table is full ([`MAX_PENDING_QUERIES`] or [`MAX_PENDING_QUERY_BYTES`]): the oldest query
//!   is `Evicted` as unanswered; the caller should emit an anomaly (`dns`, `pending_limit`);
//! * a query sent to a multicast group (mDNS, LLMNR): `Multicast`, emitted at once, because its
//!   answers go to the group or come from any member and cannot be paired by endpoints.
//!
//! A query seen again with the same key and question before it is answered is a retransmission:
//! it is counted in [`Exchange::retransmissions`] and restarts the timeout; the exchange keeps the
//! first transmission's frame and time (so `rtt_ms` spans the whole wait).
//!
//! Exchanges that end together (one [`DnsTracker::expire`] or [`DnsTracker::finish`] call) come out
//! sorted by query frame, so output is deterministic whatever the hash order.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use super::message::{DnsMessage, Opcode, Question};
use crate::hash::SeededMap;
use crate::time::Ts;

/// Default time a query waits for its answer, in nanoseconds of packet time: 10 s. Longer than a
/// stub resolver's per-try timeout (dig 5 s, Windows 1-4 s per server) and close to the whole
/// Windows retry schedule, so slow answers still pair.
pub const DEFAULT_TIMEOUT_NS: i64 = 10_000_000_000;

/// Most queries waiting for an answer at once; beyond it the oldest is evicted as unanswered.
/// KMS clients send a handful of queries; a sensor in front of a busy resolver may see
/// thousands per second, and at 16,384 the table holds about 1.6 s of a 10,000 q/s server.
pub const MAX_PENDING_QUERIES: usize = 16_384;

/// Most wire bytes of queries waiting at once (8 MiB); a query is normally under 100 bytes, but
/// an UPDATE over TCP may be up to 64 KiB, and the parsed form is a small multiple of this.
pub const MAX_PENDING_QUERY_BYTES: usize = 8 << 20;

/// An (address, port) pair.
pub type Endpoint = (IpAddr, u16);

/// Transport the message came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// DNS over UDP (RFC 1035 section 4.2.1).
    Udp,
    /// DNS over TCP (RFC 1035 section 4.2.2, RFC 7766).
    Tcp,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Query and response both seen.
    Answered,
    /// A response that matched no pending query.
    ResponseOnly,
    /// No response within the timeout.
    TimedOut,
    /// Still waiting when the capture ended.
    CaptureEnded,
    /// Pushed out of a full pending table (the caller reports the limit as an anomaly).
    Evicted,
    /// A query to a multicast group; not tracked.
    Multicast,
}

/// One DNS transaction: a query and/or its response.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// The side that sent the query (for a response-only exchange: the response's destination).
    pub client: Endpoint,
    /// The side that answered (or was asked).
    pub server: Endpoint,
    /// UDP or TCP.
    pub transport: Transport,
    /// The query, if captured.
    pub query: Option<DnsMessage>,
    /// Frame of the query's first transmission.
    pub query_frame: Option<u64>,
    /// Time of the query's first transmission.
    pub query_ts: Option<Ts>,
    /// The response, if captured.
    pub response: Option<DnsMessage>,
    /// Frame of the response.
    pub response_frame: Option<u64>,
    /// Time of the response.
    pub response_ts: Option<Ts>,
    /// Further transmissions of the same query before it was answered.
    pub retransmissions: u32,
    /// How the exchange ended.
    pub outcome: Outcome,
}

impl Exchange {
    fn from_query(
        client: Endpoint,
        server: Endpoint,
        transport: Transport,
        msg: DnsMessage,
        frame: u64,
        ts: Ts,
        outcome: Outcome,
    ) -> Exchange {
        Exchange {
            client,
            server,
            transport,
            query: Some(msg),
            query_frame: Some(frame),
            query_ts: Some(ts),
            response: None,
            response_frame: None,
            response_ts: None,
            retransmissions: 0,
            outcome,
        }
    }

    /// `true` when a response was seen (the event's `status: answered`).
    pub fn is_answered(&self) -> bool {
        self.response.is_some()
    }

    /// The message that defines the exchange: the query, else the response.
    fn first(&self) -> Option<&DnsMessage> {
        self.query.as_ref().or(self.response.as_ref())
    }

    /// Transaction ID.
    pub fn id(&self) -> u16 {
        self.first().map_or(0, |m| m.id)
    }

    /// OPCODE (of the query, else of the response).
    pub fn opcode(&self) -> Opcode {
        self.first().map_or(Opcode::QUERY, |m| m.opcode)
    }

    /// The first question of the query, else of the response.
    pub fn question(&self) -> Option<&Question> {
        self.query
            .as_ref()
            .and_then(DnsMessage::question)
            .or_else(|| self.response.as_ref().and_then(DnsMessage::question))
    }

    /// The response's RCODE (extended), `None` when unanswered.
    pub fn rcode(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.rcode)
    }

    /// Query-to-response time in milliseconds, when both were seen.
    pub fn rtt_ms(&self) -> Option<f64> {
        Some(self.response_ts?.millis_since(self.query_ts?))
    }

    /// The event's `frame`: the query's, else the response's.
    pub fn frame(&self) -> u64 {
        self.query_frame.or(self.response_frame).unwrap_or(0)
    }

    /// The event's `ts`: the query's, else the response's.
    pub fn ts(&self) -> Ts {
        self.query_ts.or(self.response_ts).unwrap_or_default()
    }

    /// `true` when either endpoint is a multicast address (mDNS, LLMNR).
    pub fn is_multicast(&self) -> bool {
        self.client.0.is_multicast() || self.server.0.is_multicast()
    }
}

/// Plain data (no heap), so the per-packet lookups hash and copy it cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TxKey {
    client: Endpoint,
    server: Endpoint,
    transport: Transport,
    id: u16,
}

/// Whether two messages ask the same first question: name ASCII-case-insensitively and QTYPE
/// (both without a question also match).
fn same_question(a: Option<&Question>, b: Option<&Question>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.qtype == b.qtype && a.name.eq_ignore_ascii_case(&b.name),
        (None, None) => true,
        _ => false,
    }
}

struct Pending {
    seq: u64,
    last_ts: Ts,
    exchange: Exchange,
}

impl Pending {
    /// The first question of the pending query.
    fn question(&self) -> Option<&Question> {
        self.exchange.query.as_ref().and_then(DnsMessage::question)
    }
}

/// The pending queries of one key, oldest first. Almost always exactly one, kept inline so that a
/// query costs no allocation of its own; `more` (empty, unallocated) takes the rare others.
struct PendingList {
    first: Pending,
    more: Vec<Pending>,
}

impl PendingList {
    fn iter(&self) -> impl Iterator<Item = &Pending> {
        std::iter::once(&self.first).chain(self.more.iter())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        std::iter::once(&mut self.first).chain(self.more.iter_mut())
    }
}

/// Query/response pairing table, see the module docs.
pub struct DnsTracker {
    timeout_ns: i64,
    max_pending: usize,
    max_pending_bytes: usize,
    /// Pending queries per key, oldest first (almost always one). Seeded: the endpoints and IDs
    /// are the capture's choice. Never iterated (eviction and expiry go by `by_time`), so its
    /// order cannot reach output.
    pending: SeededMap<TxKey, PendingList>,
    /// (time of last transmission, sequence) of every pending query.
    by_time: BTreeMap<(Ts, u64), TxKey>,
    count: usize,
    bytes: usize,
    next_seq: u64,
    evicted: u64,
}

impl DnsTracker {
    /// A tracker with the given timeout (nanoseconds of packet time; negative counts as 0) and the
    /// default limits.
    pub fn new(timeout_ns: i64) -> Self {
        Self::with_limits(timeout_ns, MAX_PENDING_QUERIES, MAX_PENDING_QUERY_BYTES)
    }

    /// A tracker with explicit limits (at least one pending query is always allowed).
    pub fn with_limits(timeout_ns: i64, max_pending: usize, max_pending_bytes: usize) -> Self {
        DnsTracker {
            timeout_ns: timeout_ns.max(0),
            max_pending: max_pending.max(1),
            max_pending_bytes,
            pending: SeededMap::default(),
            by_time: BTreeMap::new(),
            count: 0,
            bytes: 0,
            next_seq: 0,
            evicted: 0,
        }
    }

    /// Queries waiting for an answer.
    pub fn pending_len(&self) -> usize {
        self.count
    }

    /// Queries evicted so far because the table was full.
    pub fn evicted_total(&self) -> u64 {
        self.evicted
    }

    /// Feeds one parsed message seen from `src` to `dst`. First expires queries older than the
    /// timeout at `ts` (so results do not depend on how often [`DnsTracker::expire`] is called),
    /// then appends any exchange this message completes, or that it pushes out of a full table.
    #[allow(clippy::too_many_arguments)]
    pub fn on_message(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        transport: Transport,
        msg: DnsMessage,
        frame: u64,
        ts: Ts,
        out: &mut Vec<Exchange>,
    ) {
        self.expire(ts, out);
        if msg.is_response {
            self.on_response(src, dst, transport, msg, frame, ts, out);
        } else {
            self.on_query(src, dst, transport, msg, frame, ts, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_query(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        transport: Transport,
        msg: DnsMessage,
        frame: u64,
        ts: Ts,
        out: &mut Vec<Exchange>,
    ) {
        if dst.0.is_multicast() {
            out.push(Exchange::from_query(
                src,
                dst,
                transport,
                msg,
                frame,
                ts,
                Outcome::Multicast,
            ));
            return;
        }
        let key = TxKey {
            client: src,
            server: dst,
            transport,
            id: msg.id,
        };
        let question = msg.question();
        if let Some(p) = self.pending.get_mut(&key).and_then(|list| {
            list.iter_mut()
                .find(|p| same_question(p.question(), question))
        }) {
            p.exchange.retransmissions = p.exchange.retransmissions.saturating_add(1);
            self.by_time.remove(&(p.last_ts, p.seq));
            p.last_ts = p.last_ts.max(ts);
            self.by_time.insert((p.last_ts, p.seq), key);
            return;
        }
        let size = msg.wire_len;
        while self.count >= self.max_pending
            || (self.count > 0 && self.bytes.saturating_add(size) > self.max_pending_bytes)
        {
            match self.take_oldest() {
                Some(mut ex) => {
                    ex.outcome = Outcome::Evicted;
                    self.evicted += 1;
                    out.push(ex);
                }
                None => break,
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_time.insert((ts, seq), key);
        self.count += 1;
        self.bytes += size;
        let p = Pending {
            seq,
            last_ts: ts,
            exchange: Exchange::from_query(src, dst, transport, msg, frame, ts, Outcome::TimedOut),
        };
        match self.pending.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().more.push(p),
            Entry::Vacant(e) => {
                e.insert(PendingList {
                    first: p,
                    more: Vec::new(),
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_response(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        transport: Transport,
        msg: DnsMessage,
        frame: u64,
        ts: Ts,
        out: &mut Vec<Exchange>,
    ) {
        let key = TxKey {
            client: dst,
            server: src,
            transport,
            id: msg.id,
        };
        let question = msg.question();
        let idx = self.pending.get(&key).and_then(|list| {
            list.iter()
                .position(|p| same_question(p.question(), question))
                .or_else(|| {
                    list.iter()
                        .position(|p| p.question().is_none() || question.is_none())
                })
        });
        let mut ex = match idx.and_then(|i| self.remove(&key, i)) {
            Some(ex) => ex,
            None => Exchange {
                client: dst,
                server: src,
                transport,
                query: None,
                query_frame: None,
                query_ts: None,
                response: None,
                response_frame: None,
                response_ts: None,
                retransmissions: 0,
                outcome: Outcome::ResponseOnly,
            },
        };
        if ex.query.is_some() {
            ex.outcome = Outcome::Answered;
        }
        ex.response = Some(msg);
        ex.response_frame = Some(frame);
        ex.response_ts = Some(ts);
        out.push(ex);
    }

    /// Removes entry `idx` of `key`'s list and its index entries.
    fn remove(&mut self, key: &TxKey, idx: usize) -> Option<Exchange> {
        let list = self.pending.get_mut(key)?;
        let p = if idx == 0 {
            if list.more.is_empty() {
                self.pending.remove(key)?.first
            } else {
                let next = list.more.remove(0);
                std::mem::replace(&mut list.first, next)
            }
        } else if idx <= list.more.len() {
            list.more.remove(idx - 1)
        } else {
            return None;
        };
        self.by_time.remove(&(p.last_ts, p.seq));
        self.count -= 1;
        self.bytes = self
            .bytes
            .saturating_sub(p.exchange.query.as_ref().map_or(0, |q| q.wire_len));
        Some(p.exchange)
    }

    /// Removes the query with the oldest last transmission.
    fn take_oldest(&mut self) -> Option<Exchange> {
        let (&(_, seq), key) = self.by_time.first_key_value()?;
        let key = *key;
        let idx = self
            .pending
            .get(&key)
            .and_then(|list| list.iter().position(|p| p.seq == seq));
        match idx {
            Some(idx) => self.remove(&key, idx),
            None => {
                // Unreachable while the indexes agree; drop the stale entry rather than loop.
                self.by_time.pop_first();
                None
            }
        }
    }

    /// Ends, as `TimedOut`, every query whose last transmission is more than the timeout before
    /// `now`; call as packet time advances. Appends them sorted by query frame.
    pub fn expire(&mut self, now: Ts, out: &mut Vec<Exchange>) {
        let start = out.len();
        while let Some((&(last, _), _)) = self.by_time.first_key_value() {
            if now.0.saturating_sub(last.0) <= self.timeout_ns {
                break;
            }
            match self.take_oldest() {
                Some(mut ex) => {
                    ex.outcome = Outcome::TimedOut;
                    out.push(ex);
                }
                None => continue,
            }
        }
        sort_by_frame(&mut out[start..]);
    }

    /// End of capture: every pending query ends as `CaptureEnded`, appended sorted by query frame.
    pub fn finish(&mut self, out: &mut Vec<Exchange>) {
        let start = out.len();
        while !self.by_time.is_empty() {
            if let Some(mut ex) = self.take_oldest() {
                ex.outcome = Outcome::CaptureEnded;
                out.push(ex);
            }
        }
        self.pending.clear();
        self.count = 0;
        self.bytes = 0;
        sort_by_frame(&mut out[start..]);
    }
}

impl Default for DnsTracker {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT_NS)
    }
}

fn sort_by_frame(exchanges: &mut [Exchange]) {
    exchanges.sort_by_key(|e| (e.frame(), e.response_frame));
}
