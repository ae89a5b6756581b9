//! Flow table: TCP connections keyed by their address pair, each with per-direction reassembly
//! ([`stream::Stream`]) and, once the content is known, the application state that parses it.
//!
//! Cheap by default: a flow whose first payload is neither DCE/RPC nor DNS, and that does not go to a
//! watched port, is marked `Ignored` and costs one hash lookup per packet from then on. Memory is
//! bounded by [`MAX_FLOWS`] and idle flows expire after [`IDLE_TIMEOUT_NS`] of packet time.

pub mod stream;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::Direction;
use crate::event::Endpoint;
use crate::time::Ts;

/// Most flows tracked at once; a new flow beyond it is not tracked and an anomaly is reported.
pub const MAX_FLOWS: usize = 262_144;
/// A flow with no packet for this long (packet time) is closed as idle.
pub const IDLE_TIMEOUT_NS: i64 = 120 * 1_000_000_000;
/// A connection attempt (SYNs only, no answer) is declared `no_answer` after this long.
pub const SYN_TIMEOUT_NS: i64 = 30 * 1_000_000_000;
/// How often (packet time) the table is swept for idle flows.
pub const SWEEP_INTERVAL_NS: i64 = 5 * 1_000_000_000;

/// Canonical key of a connection: the two endpoints in sorted order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

impl FlowKey {
    pub fn new(a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }
}

/// FxHash-style hasher: flow keys come from the wire but the table is bounded, and the hot path
/// needs a cheap hash more than DoS resistance.
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

/// A hash map with the Fx hasher.
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
#[derive(Debug)]
pub struct Flow<A> {
    pub client: Endpoint,
    pub server: Endpoint,
    pub last_ts: Ts,
    pub hs: Handshake,
    /// True when the server port is one the engine watches for connection outcomes (KMS ports,
    /// SRV-advertised ports).
    pub watched: bool,
    pub app: A,
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
}

/// The flow table.
pub struct FlowTable<A> {
    map: FxMap<FlowKey, Flow<A>>,
    last_sweep: Ts,
    /// Flows refused because the table was full.
    pub refused_flows: u64,
}

impl<A> Default for FlowTable<A> {
    fn default() -> Self {
        FlowTable {
            map: FxMap::default(),
            last_sweep: Ts(i64::MIN),
            refused_flows: 0,
        }
    }
}

impl<A> FlowTable<A> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow<A>> {
        self.map.get_mut(key)
    }

    /// Inserts a new flow; `Err(flow)` when the table is full.
    pub fn insert(&mut self, key: FlowKey, flow: Flow<A>) -> Result<&mut Flow<A>, Flow<A>> {
        if self.map.len() >= MAX_FLOWS {
            self.refused_flows += 1;
            return Err(flow);
        }
        Ok(self.map.entry(key).or_insert(flow))
    }

    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow<A>> {
        self.map.remove(key)
    }

    /// True when a sweep for idle flows is due at packet time `now` (or the table is full).
    pub fn sweep_due(&self, now: Ts) -> bool {
        self.map.len() >= MAX_FLOWS || now.0.saturating_sub(self.last_sweep.0) >= SWEEP_INTERVAL_NS
    }

    /// Removes and returns the flows idle at `now`: no packet for [`IDLE_TIMEOUT_NS`], or only
    /// unanswered SYNs for [`SYN_TIMEOUT_NS`].
    pub fn take_idle(&mut self, now: Ts, out: &mut Vec<Flow<A>>) {
        self.last_sweep = now;
        // (first frame, key): first frames are distinct, so an unstable sort of the pairs gives the
        // same order as sorting by first frame, without a table lookup per comparison.
        let mut idle: Vec<(u64, FlowKey)> = self
            .map
            .iter()
            .filter(|(_, f)| {
                let age = now.0.saturating_sub(f.last_ts.0);
                age >= IDLE_TIMEOUT_NS
                    || (!f.hs.syn_ack && !f.hs.data_seen && age >= SYN_TIMEOUT_NS)
            })
            .map(|(k, f)| (f.hs.first_frame, *k))
            .collect();
        idle.sort_unstable_by_key(|p| p.0);
        out.reserve(idle.len());
        for (_, k) in idle {
            if let Some(f) = self.map.remove(&k) {
                out.push(f);
            }
        }
    }

    /// Removes every flow (end of capture), in order of first packet.
    pub fn drain_all(&mut self, out: &mut Vec<Flow<A>>) {
        // Sort (first frame, key) pairs, not the flows themselves (large structs).
        let mut keys: Vec<(u64, FlowKey)> = self
            .map
            .iter()
            .map(|(k, f)| (f.hs.first_frame, *k))
            .collect();
        keys.sort_unstable_by_key(|p| p.0);
        out.reserve(keys.len());
        for (_, k) in keys {
            if let Some(f) = self.map.remove(&k) {
                out.push(f);
            }
        }
    }
}
