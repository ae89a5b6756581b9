//! Flow table: TCP connections keyed by their address pair, each with per-direction reassembly
//! ([`stream::Stream`]) and, once the content is known, the application state that parses it.
//!
//! Cheap by default: a flow whose first payload is neither DCE/RPC nor DNS, and that does not go to a
//! watched port, is marked `Ignored` and costs one hash lookup per packet from then on. Memory is
//! bounded by [`MAX_FLOWS`] and idle flows expire after [`IDLE_TIMEOUT_NS`] of packet time.
//!
//! A connection seen only as its opening handshake (the client's SYNs, perhaps the server's
//! SYN-ACK; no data yet) is not a [`Flow`]: it is a compact entry (80 bytes with its key, against
//! about 160 for a flow) in a second map, promoted to a flow by [`FlowTable::promote`] when any
//! other packet of the connection arrives. A SYN flood (every packet a new connection that never
//! goes further) thus costs a fraction of the memory of as many flows: 200,000 lone SYNs hold
//! about 21 MiB. Such an entry that times out is reported only when it is an unanswered attempt
//! on a watched port (the engine's `no_answer` connection outcome); the others go silently.

pub mod stream;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use hashbrown::HashTable;

use crate::Direction;
use crate::event::Endpoint;
use crate::time::Ts;

/// Most flows tracked at once; a new flow beyond it is not tracked and an anomaly is reported.
pub const MAX_FLOWS: usize = 262_144;
/// Most connections tracked at once as handshake-only entries (see the module documentation); a
/// SYN beyond it is not tracked (counted in the `flow_limit` anomaly with the flows refused).
/// 229,376 is the most entries a hash table of 2^18 slots holds (at the 7/8 load factor of
/// `std`'s table): one more would double the table (21 MiB to 42 MiB, both held while it grows).
/// Within [`MAX_FLOWS`] too.
pub const MAX_SYN_ONLY: usize = 229_376;
/// A flow with no packet for this long (packet time) is closed as idle.
pub const IDLE_TIMEOUT_NS: i64 = 120 * 1_000_000_000;
/// A connection attempt (SYNs only, no answer) is declared `no_answer` after this long.
pub const SYN_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// How often (packet time) the table is swept for idle flows.
pub const SWEEP_INTERVAL_NS: i64 = 5 * 1_000_000_000;
/// How often (packet time) a full table is swept to make room. A sweep walks the whole table, so
/// sweeping on every packet while full (a flood beyond [`MAX_FLOWS`]) would be quadratic.
pub const FULL_SWEEP_INTERVAL_NS: i64 = 1_000_000_000;

/// Canonical key of a connection: the two endpoints in sorted order (IPv4 before IPv6, then
/// address, then port: the order of `(IpAddr, u16)` tuples), as plain integers so that building,
/// hashing and comparing a key (on every TCP packet) needs no `IpAddr` matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Addresses of the lower and the higher endpoint, each as its high and low 64 bits (an
    /// IPv4 address is its 32-bit value): [lower high, lower low, higher high, higher low].
    /// Halves rather than `u128`s, whose 16-byte alignment would make the key (and every table
    /// entry) 8 bytes larger.
    addrs: [u64; 4],
    /// Ports of the lower and the higher endpoint.
    ports: [u16; 2],
    /// Which endpoints are IPv6: bit 0 the lower, bit 1 the higher (an IPv4 address and the
    /// IPv6 address of the same value are different endpoints).
    v6: u8,
}

/// An endpoint as the integers of the key, in the order of the key: (is IPv6, address, port).
#[inline]
fn key_parts((ip, port): (IpAddr, u16)) -> (bool, u128, u16) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(a.to_bits()), port),
        IpAddr::V6(a) => (true, a.to_bits(), port),
    }
}

impl FlowKey {
    /// The key of the connection between `a` and `b`, and whether `a` is its lower endpoint.
    #[inline]
    pub fn with_side(a: (IpAddr, u16), b: (IpAddr, u16)) -> (FlowKey, bool) {
        if let (IpAddr::V4(x), IpAddr::V4(y)) = (a.0, b.0) {
            // The common case, ordered as one integer each: address, then port.
            let ka = (u64::from(x.to_bits()) << 16) | u64::from(a.1);
            let kb = (u64::from(y.to_bits()) << 16) | u64::from(b.1);
            let a_first = ka <= kb;
            debug_assert_eq!(a_first, a <= b);
            let (lo, hi) = if a_first { (ka, kb) } else { (kb, ka) };
            let key = FlowKey {
                addrs: [0, lo >> 16, 0, hi >> 16],
                ports: [lo as u16, hi as u16],
                v6: 0,
            };
            return (key, a_first);
        }
        let (pa, pb) = (key_parts(a), key_parts(b));
        let a_first = pa <= pb;
        debug_assert_eq!(a_first, a <= b);
        let (lo, hi) = if a_first { (pa, pb) } else { (pb, pa) };
        let key = FlowKey {
            addrs: [
                (lo.1 >> 64) as u64,
                lo.1 as u64,
                (hi.1 >> 64) as u64,
                hi.1 as u64,
            ],
            ports: [lo.2, hi.2],
            v6: u8::from(lo.0) | (u8::from(hi.0) << 1),
        };
        (key, a_first)
    }

    /// The key of the connection between `a` and `b`.
    #[inline]
    pub fn new(a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
        FlowKey::with_side(a, b).0
    }

    /// Endpoint `i` (0 the lower, 1 the higher) as the integers of the key.
    fn parts(&self, i: usize) -> (bool, u128, u16) {
        let addr = (u128::from(self.addrs[2 * i]) << 64) | u128::from(self.addrs[2 * i + 1]);
        (self.v6 & (1 << i) != 0, addr, self.ports[i])
    }

    /// Endpoint `i` (0 the lower, 1 the higher).
    fn endpoint(&self, i: usize) -> (IpAddr, u16) {
        let (v6, addr, port) = self.parts(i);
        let ip = if v6 {
            IpAddr::V6(std::net::Ipv6Addr::from_bits(addr))
        } else {
            // Built from a u32: the truncation loses nothing.
            IpAddr::V4(std::net::Ipv4Addr::from_bits(addr as u32))
        };
        (ip, port)
    }

    /// The lower endpoint.
    pub fn lo(&self) -> (IpAddr, u16) {
        self.endpoint(0)
    }

    /// The higher endpoint.
    pub fn hi(&self) -> (IpAddr, u16) {
        self.endpoint(1)
    }

    /// Whether `ep` is the lower endpoint.
    pub fn is_lo(&self, ep: (IpAddr, u16)) -> bool {
        key_parts(ep) == self.parts(0)
    }
}

impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let [a_hi, a_lo, b_hi, b_lo] = self.addrs;
        let ports = u64::from(self.ports[0]) | (u64::from(self.ports[1]) << 16);
        if self.v6 == 0 {
            // Both IPv4 (the common case, the high halves are 0): the whole key in one 128-bit
            // word, one round of the hasher. Equal keys take the same branch, so Hash agrees
            // with Eq.
            h.write_u128(u128::from(a_lo | (b_lo << 32)) | (u128::from(ports) << 64));
        } else {
            h.write_u128((u128::from(a_hi) << 64) | u128::from(a_lo));
            h.write_u128((u128::from(b_hi) << 64) | u128::from(b_lo));
            h.write_u64(ports | (u64::from(self.v6) << 32));
        }
    }
}

/// The hash of the flow tables: foldhash with a seed chosen per table at run time. Flow keys
/// come from the wire, so a fixed hash (such as Fx) would let a capture choose keys that all
/// collide and make every lookup walk the whole table; foldhash is as cheap on these keys
/// (one folded multiply for an IPv4 key). Both tables of a [`FlowTable`] share one seed, so that
/// one hash of a packet's key ([`HashedKey`]) serves both.
type FlowHash = crate::hash::SeededState;

/// A flow key with its hash in the tables of one [`FlowTable`] ([`FlowTable::hashed`]): a packet's
/// key is hashed once, whatever the packet does to the tables (look up its flow, then record a SYN,
/// promote a handshake entry, create or remove a flow).
#[derive(Clone, Copy, Debug)]
pub struct HashedKey {
    key: FlowKey,
    hash: u64,
}

impl HashedKey {
    /// The key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }
}

/// FxHash-style hasher, for small tables whose keys the input does not choose (the engine's
/// anomaly counters, keyed by `&'static str`). The flow tables, keyed by what the wire says, use
/// a seeded hash instead (see `FlowHash`).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(v));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.hash = (self.hash.rotate_left(5) ^ v).wrapping_mul(FX_SEED);
    }
}

/// A hash map with the Fx hasher: only for keys the capture does not choose (tables keyed by
/// values from the wire use [`crate::hash::SeededMap`]).
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// TCP handshake bookkeeping of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Handshake {
    /// SYNs (without ACK) sent by the client.
    pub syns: u32,
    pub syn_ack: bool,
    pub rst_from: Option<Direction>,
    pub fin: [bool; 2],
    pub data_seen: bool,
    pub first_frame: u64,
    pub first_ts: Ts,
    /// Initial sequence numbers seen in the SYN (client) and SYN-ACK (server), by direction index.
    pub isn: [Option<u32>; 2],
}

/// A TCP connection being tracked; `A` is the application state (set by the engine).
///
/// Laid out in declaration order (`repr(C)`), what every packet reads first: in a table entry,
/// after the 40-byte key, what a packet without data reads (`watched`, `last_ts`, the variant of
/// `app`) lies within the entry's first 64 bytes, so that such a packet touches at most two
/// cache lines of the entry (these fields spread over 150 bytes, three or four lines).
#[derive(Debug)]
#[repr(C)]
pub struct Flow<A> {
    /// True when the server port is one the engine watches for connection outcomes (KMS ports,
    /// SRV-advertised ports).
    pub watched: bool,
    /// The client is the lower endpoint of the flow's key ([`FlowKey::is_lo`]).
    pub client_is_lo: bool,
    pub last_ts: Ts,
    pub app: A,
    pub hs: Handshake,
    pub client: Endpoint,
    pub server: Endpoint,
}

impl<A> Flow<A> {
    /// Direction of a packet from `src`.
    pub fn direction(&self, src: (IpAddr, u16)) -> Direction {
        if src == (self.client.ip, self.client.port) {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }

    /// Direction of a packet of this flow whose source is the lower endpoint of the key when
    /// `src_is_lo` (as [`FlowKey::with_side`] says): the same as [`Flow::direction`] without
    /// comparing addresses.
    #[inline]
    pub fn direction_from_side(&self, src_is_lo: bool) -> Direction {
        if src_is_lo == self.client_is_lo {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }
}

/// A connection seen only as its handshake: SYNs (without ACK) from its client, perhaps the
/// server's SYN-ACK; no data yet.
#[derive(Clone, Copy, Debug)]
struct SynOnly {
    first_frame: u64,
    first_ts: Ts,
    last_ts: Ts,
    isn: u32,
    /// The server's ISN, valid with `syn_ack`.
    server_isn: u32,
    syns: u16,
    syn_ack: bool,
    /// The client is the key's `lo` endpoint.
    client_is_lo: bool,
    watched: bool,
}

impl SynOnly {
    /// An unanswered attempt on a watched port: its end is a `no_answer` outcome to report.
    fn reportable(&self) -> bool {
        self.watched && !self.syn_ack
    }
}

/// The flow table: two hash tables keyed by [`FlowKey`] (flows, and handshake-only entries),
/// searched with the hash the caller got from [`FlowTable::hashed`].
pub struct FlowTable<A> {
    /// The hash of both tables (one seed, see [`FlowHash`]).
    hasher: FlowHash,
    map: HashTable<(FlowKey, Flow<A>)>,
    /// Connections seen only as client SYNs (see the module documentation).
    syn_only: HashTable<(FlowKey, SynOnly)>,
    last_sweep: Ts,
    /// Flows refused because the table was full.
    pub refused_flows: u64,
}

impl<A> Default for FlowTable<A> {
    fn default() -> Self {
        FlowTable {
            hasher: FlowHash::default(),
            map: HashTable::new(),
            syn_only: HashTable::new(),
            last_sweep: Ts(i64::MIN),
            refused_flows: 0,
        }
    }
}

/// The test of a table entry for `key` (for the tables' `find`).
#[inline]
fn is_key<V>(key: &FlowKey) -> impl Fn(&(FlowKey, V)) -> bool + '_ {
    move |(k, _)| k == key
}

impl<A> FlowTable<A> {
    /// Connections tracked: flows plus SYN-only entries (what [`MAX_FLOWS`] bounds).
    pub fn len(&self) -> usize {
        self.map.len() + self.syn_only.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.syn_only.is_empty()
    }

    /// `key` with its hash in this table's tables, for the methods that take a [`HashedKey`].
    #[inline]
    pub fn hashed(&self, key: FlowKey) -> HashedKey {
        HashedKey {
            key,
            hash: self.hasher.hash_one(key),
        }
    }

    /// A SYN without ACK and without payload, from the key's lower endpoint when `client_is_lo`,
    /// for a connection that has no flow.
    /// Records it (or counts a retransmission) as a SYN-only entry and returns true; returns false
    /// when the connection already has a SYN-only entry whose client is the other side (a
    /// simultaneous open: the caller promotes the entry and handles the packet as a flow). A SYN
    /// refused because the table is full is counted in [`FlowTable::refused_flows`] (true).
    pub fn on_lone_syn(
        &mut self,
        hk: &HashedKey,
        client_is_lo: bool,
        isn: u32,
        frame: u64,
        ts: Ts,
        watched: bool,
    ) -> bool {
        if let Some((_, e)) = self.syn_only.find_mut(hk.hash, is_key(&hk.key)) {
            if e.client_is_lo != client_is_lo {
                return false;
            }
            e.syns = e.syns.saturating_add(1);
            e.last_ts = ts;
            e.watched |= watched;
            return true;
        }
        if self.len() >= MAX_FLOWS || self.syn_only.len() >= MAX_SYN_ONLY {
            self.refused_flows += 1;
            return true;
        }
        let entry = SynOnly {
            first_frame: frame,
            first_ts: ts,
            last_ts: ts,
            isn,
            server_isn: 0,
            syns: 1,
            syn_ack: false,
            client_is_lo,
            watched,
        };
        let hasher = &self.hasher;
        self.syn_only
            .insert_unique(hk.hash, (hk.key, entry), |(k, _)| hasher.hash_one(k));
        true
    }

    /// A SYN-ACK without payload, from the key's lower endpoint when `server_is_lo`, for a
    /// connection that has no flow: recorded in its SYN-only entry (true) when there is one whose
    /// client is the other side; false otherwise (the caller handles the packet as a flow).
    pub fn on_syn_ack(&mut self, hk: &HashedKey, server_is_lo: bool, isn: u32, ts: Ts) -> bool {
        let Some((_, e)) = self.syn_only.find_mut(hk.hash, is_key(&hk.key)) else {
            return false;
        };
        if e.client_is_lo == server_is_lo {
            return false;
        }
        if !e.syn_ack {
            e.syn_ack = true;
            e.server_isn = isn;
        }
        e.last_ts = ts;
        true
    }

    /// Turns the SYN-only entry of `hk`, if any, into a flow with application state `app`, as
    /// if the flow had been created by the first SYN; `None` when there is no such entry. The
    /// connection has no flow (the caller looked it up).
    pub fn promote(&mut self, hk: &HashedKey, app: impl FnOnce() -> A) -> Option<&mut Flow<A>> {
        debug_assert!(self.get_mut(hk).is_none());
        let flow = self.take_syn_only(hk, app)?;
        // Once a flood of SYNs turns into flows, give the SYN table's memory back rather than
        // hold it next to the flows it became (amortised: at most once per halving).
        self.shrink_syn_only();
        let hasher = &self.hasher;
        let entry = self
            .map
            .insert_unique(hk.hash, (hk.key, flow), |(k, _)| hasher.hash_one(k));
        Some(&mut entry.into_mut().1)
    }

    fn take_syn_only(&mut self, hk: &HashedKey, app: impl FnOnce() -> A) -> Option<Flow<A>> {
        let ((key, e), _) = self
            .syn_only
            .find_entry(hk.hash, is_key(&hk.key))
            .ok()?
            .remove();
        let (c, s) = if e.client_is_lo {
            (key.lo(), key.hi())
        } else {
            (key.hi(), key.lo())
        };
        Some(Flow {
            client: Endpoint { ip: c.0, port: c.1 },
            server: Endpoint { ip: s.0, port: s.1 },
            last_ts: e.last_ts,
            hs: Handshake {
                syns: u32::from(e.syns),
                syn_ack: e.syn_ack,
                first_frame: e.first_frame,
                first_ts: e.first_ts,
                isn: [Some(e.isn), e.syn_ack.then_some(e.server_isn)],
                ..Handshake::default()
            },
            watched: e.watched,
            client_is_lo: e.client_is_lo,
            app: app(),
        })
    }

    /// Halves the SYN table's memory once it is three-quarters empty.
    fn shrink_syn_only(&mut self) {
        let cap = self.syn_only.capacity();
        if cap > 4096 && self.syn_only.len() * 4 < cap {
            let hasher = &self.hasher;
            self.syn_only
                .shrink_to(self.syn_only.len() * 2, |(k, _)| hasher.hash_one(k));
        }
    }

    /// Removes the connection `key` (flow or SYN-only entry, the latter made a flow with `app`).
    pub fn take(&mut self, key: &FlowKey, app: impl FnOnce() -> A) -> Option<Flow<A>> {
        let hk = self.hashed(*key);
        self.remove(&hk).or_else(|| self.take_syn_only(&hk, app))
    }

    /// The flow of `hk`, if any.
    #[inline]
    pub fn get_mut(&mut self, hk: &HashedKey) -> Option<&mut Flow<A>> {
        self.map.find_mut(hk.hash, is_key(&hk.key)).map(|(_, f)| f)
    }

    /// Inserts a new flow for `hk`, which has none; `Err(flow)` when the table is full.
    pub fn insert(&mut self, hk: &HashedKey, flow: Flow<A>) -> Result<&mut Flow<A>, Flow<A>> {
        debug_assert!(self.get_mut(hk).is_none());
        if self.len() >= MAX_FLOWS {
            self.refused_flows += 1;
            return Err(flow);
        }
        let hasher = &self.hasher;
        let entry = self
            .map
            .insert_unique(hk.hash, (hk.key, flow), |(k, _)| hasher.hash_one(k));
        Ok(&mut entry.into_mut().1)
    }

    /// Removes the flow of `hk`, if any.
    pub fn remove(&mut self, hk: &HashedKey) -> Option<Flow<A>> {
        let ((_, flow), _) = self.map.find_entry(hk.hash, is_key(&hk.key)).ok()?.remove();
        Some(flow)
    }

    /// True when a sweep for idle flows is due at packet time `now`: every
    /// [`SWEEP_INTERVAL_NS`], or every [`FULL_SWEEP_INTERVAL_NS`] while the table is full.
    pub fn sweep_due(&self, now: Ts) -> bool {
        // Asked on every packet: the table's size only matters once the shorter interval is up.
        let age = now.0.saturating_sub(self.last_sweep.0);
        age >= FULL_SWEEP_INTERVAL_NS && (age >= SWEEP_INTERVAL_NS || self.len() >= MAX_FLOWS)
    }

    /// The connections idle at `now`, in order of first packet: no packet for
    /// [`IDLE_TIMEOUT_NS`], or only unanswered SYNs for [`SYN_TIMEOUT_NS`]. Remove each with
    /// [`FlowTable::take`] (one at a time, so that a sweep never holds all flows twice).
    /// Handshake-only entries whose end has nothing to report are dropped here instead.
    pub fn idle_keys(&mut self, now: Ts) -> Vec<FlowKey> {
        self.last_sweep = now;
        let age = |t: Ts| now.0.saturating_sub(t.0);
        self.syn_only.retain(|(_, e)| {
            e.reportable()
                || age(e.last_ts)
                    < if e.syn_ack {
                        IDLE_TIMEOUT_NS
                    } else {
                        SYN_TIMEOUT_NS
                    }
        });
        self.shrink_syn_only();
        let mut idle: Vec<(u64, FlowKey)> = self
            .map
            .iter()
            .filter(|(_, f)| {
                age(f.last_ts) >= IDLE_TIMEOUT_NS
                    || (!f.hs.syn_ack && !f.hs.data_seen && age(f.last_ts) >= SYN_TIMEOUT_NS)
            })
            .map(|(k, f)| (f.hs.first_frame, *k))
            .chain(
                self.syn_only
                    .iter()
                    .filter(|(_, e)| e.reportable() && age(e.last_ts) >= SYN_TIMEOUT_NS)
                    .map(|(k, e)| (e.first_frame, *k)),
            )
            .collect();
        idle.sort_unstable_by_key(|(frame, _)| *frame);
        idle.into_iter().map(|(_, k)| k).collect()
    }

    /// Every connection (end of capture), in order of first packet; remove each with
    /// [`FlowTable::take`]. Handshake-only entries whose end has nothing to report are dropped.
    pub fn all_keys(&mut self) -> Vec<FlowKey> {
        self.syn_only.retain(|(_, e)| e.reportable());
        let mut all: Vec<(u64, FlowKey)> = self
            .map
            .iter()
            .map(|(k, f)| (f.hs.first_frame, *k))
            .chain(self.syn_only.iter().map(|(k, e)| (e.first_frame, *k)))
            .collect();
        all.sort_unstable_by_key(|(frame, _)| *frame);
        all.into_iter().map(|(_, k)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> (IpAddr, u16) {
        (s.parse().expect("ip"), port)
    }

    #[test]
    fn flow_key_order_is_the_tuple_order() {
        let eps = [
            ep("10.0.0.1", 1688),
            ep("10.0.0.1", 50000),
            ep("10.0.0.2", 1),
            ep("9.255.255.255", 65535),
            ep("200.0.0.1", 80),
            ep("::1", 1688),
            ep("::1", 2),
            ep("2001:db8::1", 53),
            ep("fe80::1", 53),
        ];
        for a in eps {
            for b in eps {
                let (k, a_lo) = FlowKey::with_side(a, b);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                assert_eq!((k.lo(), k.hi()), (lo, hi), "{a:?} {b:?}");
                assert_eq!(a_lo, a <= b);
                assert!(k.is_lo(lo));
                assert_eq!(k.is_lo(hi), lo == hi);
                assert_eq!(k, FlowKey::new(b, a));
            }
        }
    }

    #[test]
    fn a_key_stays_compact() {
        // The table's memory bounds (see MAX_SYN_ONLY) assume 40-byte keys.
        assert_eq!(std::mem::size_of::<FlowKey>(), 40);
    }

    #[test]
    fn a_flow_entry_keeps_its_hot_fields_together() {
        // See `Flow`: the key, then what a packet without data reads, within 64 bytes.
        type Entry = (FlowKey, Flow<[usize; 2]>);
        let e = std::mem::offset_of!(Entry, 1);
        assert!(
            std::mem::offset_of!(Entry, 0) == 0 && e == 40,
            "the key first: {e}"
        );
        let f = |o: usize| e + o;
        assert_eq!(f(std::mem::offset_of!(Flow<[usize; 2]>, watched)), 40);
        assert_eq!(f(std::mem::offset_of!(Flow<[usize; 2]>, last_ts)), 48);
        assert_eq!(f(std::mem::offset_of!(Flow<[usize; 2]>, app)) + 16, 72);
    }

    #[test]
    fn ipv4_and_ipv6_endpoints_of_the_same_value_are_different_connections() {
        let v4 = FlowKey::new(ep("1.2.3.4", 1), ep("5.6.7.8", 2));
        let v6 = FlowKey::new(ep("::1.2.3.4", 1), ep("::5.6.7.8", 2));
        assert_ne!(v4, v6);
        let mut t: FlowTable<u8> = FlowTable::default();
        for (k, c) in [(v4, ep("1.2.3.4", 1)), (v6, ep("::1.2.3.4", 1))] {
            assert!(t.on_lone_syn(&t.hashed(k), k.is_lo(c), 1, 1, Ts(0), false));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.promote(&t.hashed(v6), || 6).map(|f| f.app), Some(6));
        assert_eq!(t.promote(&t.hashed(v4), || 4).map(|f| f.app), Some(4));
        assert_eq!(
            t.get_mut(&t.hashed(v4)).map(|f| f.client.ip),
            Some(ep("1.2.3.4", 0).0)
        );
        assert_eq!(
            t.get_mut(&t.hashed(v6)).map(|f| f.client.ip),
            Some(ep("::1.2.3.4", 0).0)
        );
    }

    #[test]
    fn direction_from_the_key_side_is_direction_from_the_address() {
        let (c, s) = (ep("10.0.0.9", 50000), ep("10.0.0.1", 1688));
        let mut t: FlowTable<u8> = FlowTable::default();
        let key = FlowKey::new(c, s);
        assert!(t.on_lone_syn(&t.hashed(key), key.is_lo(c), 1, 1, Ts(0), false));
        let f = t.promote(&t.hashed(key), || 0).expect("promoted");
        for (src, dst) in [(c, s), (s, c)] {
            let (k, src_is_lo) = FlowKey::with_side(src, dst);
            assert_eq!(k, key);
            assert_eq!(f.direction_from_side(src_is_lo), f.direction(src));
        }
        assert_eq!(f.direction(c), Direction::ToServer);
        // A packet from an endpoint to itself: always towards the server.
        let me = ep("::1", 7);
        let (k, side) = FlowKey::with_side(me, me);
        assert!(side && k.is_lo(me) && k.is_lo(k.hi()));
    }

    #[test]
    fn lone_syns_are_compact_until_promoted() {
        let mut t: FlowTable<u8> = FlowTable::default();
        let (c, s) = (ep("10.0.0.9", 50000), ep("10.0.0.1", 1688));
        let key = FlowKey::new(c, s);
        assert!(t.on_lone_syn(&t.hashed(key), key.is_lo(c), 77, 1, Ts(10), true));
        assert!(t.on_lone_syn(&t.hashed(key), key.is_lo(c), 77, 2, Ts(20), true)); // retransmission
        assert_eq!(t.len(), 1);
        assert!(t.get_mut(&t.hashed(key)).is_none(), "not a flow yet");
        // The server's SYN (simultaneous open) is not the entry's client: promote instead.
        assert!(!t.on_lone_syn(&t.hashed(key), key.is_lo(s), 5, 3, Ts(30), true));
        let f = t.promote(&t.hashed(key), || 7).expect("promoted");
        assert_eq!((f.client.ip, f.client.port), c);
        assert_eq!((f.server.ip, f.server.port), s);
        assert_eq!(f.hs.syns, 2);
        assert_eq!(f.hs.isn, [Some(77), None]);
        assert_eq!(
            (f.hs.first_frame, f.hs.first_ts, f.last_ts),
            (1, Ts(10), Ts(20))
        );
        assert!(f.watched);
        assert_eq!(f.app, 7);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_syn_ack_stays_in_the_compact_entry() {
        let mut t: FlowTable<u8> = FlowTable::default();
        let (c, s) = (ep("10.0.0.9", 50000), ep("10.0.0.1", 1688));
        let key = FlowKey::new(c, s);
        assert!(
            !t.on_syn_ack(&t.hashed(key), key.is_lo(s), 9, Ts(5)),
            "no entry: not recorded"
        );
        assert!(t.on_lone_syn(&t.hashed(key), key.is_lo(c), 77, 1, Ts(10), true));
        assert!(
            !t.on_syn_ack(&t.hashed(key), key.is_lo(c), 9, Ts(15)),
            "from the client: not a SYN-ACK to record"
        );
        assert!(t.on_syn_ack(&t.hashed(key), key.is_lo(s), 9, Ts(20)));
        assert!(t.get_mut(&t.hashed(key)).is_none());
        // Answered: nothing to report when it ends, so it goes silently.
        assert!(t.all_keys().is_empty());
        assert!(t.is_empty());
        assert!(t.on_lone_syn(&t.hashed(key), key.is_lo(c), 77, 1, Ts(10), true));
        assert!(t.on_syn_ack(&t.hashed(key), key.is_lo(s), 9, Ts(20)));
        let f = t.promote(&t.hashed(key), || 0).expect("promoted");
        assert!(f.hs.syn_ack);
        assert_eq!(f.hs.isn, [Some(77), Some(9)]);
    }

    #[test]
    fn unwatched_lone_syns_expire_silently_and_watched_ones_are_handed_back() {
        let mut t: FlowTable<u8> = FlowTable::default();
        let s = ep("10.0.0.1", 80);
        for i in 0..10u16 {
            let c = ep("10.0.0.2", 1000 + i);
            let k = FlowKey::new(c, s);
            t.on_lone_syn(&t.hashed(k), k.is_lo(c), 1, u64::from(i), Ts(0), i % 2 == 0);
        }
        let idle = t.idle_keys(Ts(SYN_TIMEOUT_NS));
        assert_eq!(idle.len(), 5, "the watched ones, to report no_answer");
        assert_eq!(t.len(), 5, "the unwatched ones are gone");
        for k in idle {
            assert!(t.take(&k, || 0).is_some());
        }
        assert!(t.is_empty());
    }

    #[test]
    fn one_hash_serves_both_tables() {
        let mut t: FlowTable<u8> = FlowTable::default();
        let (c, s) = (ep("10.0.0.9", 50000), ep("10.0.0.1", 1688));
        let key = FlowKey::new(c, s);
        let hk = t.hashed(key);
        assert!(t.on_lone_syn(&hk, key.is_lo(c), 1, 1, Ts(0), true));
        assert!(t.get_mut(&hk).is_none());
        assert_eq!(t.promote(&hk, || 3).map(|f| f.app), Some(3));
        assert!(t.promote(&hk, || 4).is_none(), "promoted once");
        assert_eq!(t.get_mut(&hk).map(|f| f.app), Some(3));
        assert_eq!(t.remove(&hk).map(|f| f.app), Some(3));
        assert!(t.remove(&hk).is_none() && t.is_empty());
        // A flow made without a handshake, then taken by its key alone (sweeps, end of capture).
        let flow = Flow {
            client: Endpoint { ip: c.0, port: c.1 },
            server: Endpoint { ip: s.0, port: s.1 },
            last_ts: Ts(0),
            hs: Handshake::default(),
            watched: false,
            client_is_lo: key.is_lo(c),
            app: 5,
        };
        assert!(t.insert(&hk, flow).is_ok());
        assert_eq!(t.take(&key, || 0).map(|f| f.app), Some(5));
        assert!(t.is_empty());
    }

    #[test]
    fn each_table_has_its_own_seed() {
        // Keys come from the wire: a hash the input could predict would let it choose colliding
        // keys. Two tables hash the same key differently (but for a 2^-64 chance).
        let key = FlowKey::new(ep("10.0.0.9", 50000), ep("10.0.0.1", 1688));
        let (a, b) = (FlowTable::<u8>::default(), FlowTable::<u8>::default());
        assert_ne!(a.hashed(key).hash, b.hashed(key).hash);
        assert_eq!(a.hashed(key).hash, a.hashed(key).hash);
    }

    #[test]
    fn a_full_table_is_not_swept_on_every_packet() {
        let mut t: FlowTable<u8> = FlowTable::default();
        let _ = t.idle_keys(Ts(0));
        assert!(!t.sweep_due(Ts(FULL_SWEEP_INTERVAL_NS - 1)));
        assert!(t.sweep_due(Ts(SWEEP_INTERVAL_NS)));
    }
}
