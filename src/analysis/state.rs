//! What the wire tells about KMS hosts and clients: the host counters `slmgr /dlv` shows on a host
//! (count per product group over time, requests by license status, refusals, ePIDs), rebuilt from
//! `kms` events; per-client facts (CMID, workstation names, addresses, products, last outcome);
//! RPC-level evidence per server endpoint (connection outcomes, binds, faults, slow or missing
//! replies); and the discovery correlation of [`super::discovery`]. Feeds the `summary` event and the
//! checks.
//!
//! Packet time only: every time is an event `ts`. Memory is bounded: every table and evidence list
//! has a named limit; what does not fit is counted (`*_untracked`), never stored.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::hash_map::Entry as HashEntry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use smallvec::SmallVec;

use super::discovery::{Attempt, AttemptSeen, AttemptUpdate, ConnectResult, DnsPart, NetState};
use super::evidence::Evidence;
use crate::event::{
    Body, ClientEntry, CountSample, Endpoint, Event, HostApp, HostSummary, KmsCall, KmsRequestInfo,
    RpcInfo,
};
use crate::guid::{Guid, GuidText, InlineText, TimeText};
use crate::hash::SeededMap;
use crate::kms;
use crate::time::{Ts, days_from_civil};

/// Client machines (CMIDs) tracked; more are counted in [`State::clients_untracked`]. Each costs
/// about 1.5-3.5 KiB, so this bounds the client table to about 40 MiB whatever the capture's size.
pub const MAX_CLIENTS: usize = 12_000;
/// Clients listed in the summary's `client_list` (the first by first frame).
pub const MAX_CLIENT_LIST: usize = 1000;
/// KMS host endpoints tracked.
pub const MAX_HOSTS: usize = 4096;
/// Server endpoints with RPC-level evidence tracked.
pub const MAX_SERVERS: usize = 16_384;
/// Product groups (KMS counted ids) tracked per host.
pub const MAX_APPS_PER_HOST: usize = 256;
/// Distinct CMIDs remembered per host and product group.
pub const MAX_CMIDS_PER_APP: usize = 100_000;
/// Frames remembered per client.
const MAX_FRAMES_PER_CLIENT: usize = 16;
/// Product identifications (ApplicationId, SKU) whose KMS-13 check is remembered per group.
const MAX_PRODUCT_CHECKS: usize = 8;
/// Workstation names, addresses and products remembered per client.
pub const MAX_CLIENT_FACTS: usize = 16;
/// Count changes remembered per host and product group (`count_history`).
pub const MAX_COUNT_HISTORY: usize = 64;
/// Distinct ePIDs remembered per host and per product group.
pub const MAX_EPIDS: usize = 16;
/// Failed requests remembered per client (KMS-18).
pub const MAX_FAILURES_PER_CLIENT: usize = 32;
/// Bind rejections waiting for a later acceptance on the same connection (RPC-03).
pub const MAX_PENDING_BINDS: usize = 4096;
/// Entries of small per-host maps (refusal codes, fault codes, interval pairs, N values).
pub const MAX_SMALL_MAP: usize = 32;
/// Window of the host's CMID cache: clients not seen for 30 days drop out (kms-protocol.md §6).
pub const CMID_WINDOW_NS: i64 = 30 * 86_400 * 1_000_000_000;
/// Two requests of one CMID from different addresses within this time are two machines (KMS-04).
pub const DUPLICATE_ADDR_WINDOW_NS: i64 = 10 * 60 * 1_000_000_000;
/// Known default HwIds of KMS emulators (kms-protocol.md §8; py-kms `-w` default).
pub const EMULATOR_HWIDS: [(&str, &str); 2] = [
    ("3A1C049600B60076", "vlmcsd's default HwId 3A1C049600B60076"),
    ("364F463A8863D35F", "py-kms's default HwId 364F463A8863D35F"),
];
/// The constant bind_ack association group of py-kms (checks.md KMS-11).
pub const PYKMS_ASSOC_GROUP: u32 = 0x1063_BF3F;

/// Per host and counted product group.
///
/// `repr(C)`, the fields every call reads or writes first (see [`ClientState`]).
#[derive(Debug, Default)]
#[repr(C)]
pub struct AppState {
    /// Unique in the state (the clients' [`ClientState::counted_in`] names groups by it).
    uid: u32,
    /// Largest N policy of the requests.
    pub required_count: u32,
    pub requests: u64,
    pub refused: u64,
    pub failed: u64,
    pub app_name: Option<&'static str>,
    pub kms_name: Option<&'static str>,
    /// Threshold the catalog gives for this product group.
    pub catalog_threshold: Option<u32>,
    pub last_count: Option<u32>,
    pub max_count: Option<u32>,
    pub min_count: Option<u32>,
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    /// Distinct CMIDs the host answered validly (so it counted them).
    pub answered_cmids: usize,
    pub cmids_untracked: u64,
    pub app_id: GuidText,
    pub by_license_status: SmallMap<Cow<'static, str>, u64>,
    pub count_history: Vec<CountSample>,
    /// ePIDs returned for this group, in order, with the frame of first appearance.
    pub epids: Vec<(String, u64)>,
    /// The product identifications last checked for this group and their issues (at most
    /// [`MAX_PRODUCT_CHECKS`], the oldest replaced first): the clients of a group send a few
    /// combinations of ids over and over, and checking one means parsing three GUIDs.
    product_checks: Vec<ProductCheck>,
    /// The slot of [`AppState::product_checks`] replaced next once it is full.
    product_checks_next: usize,
    /// Distinct CMIDs that asked; value: true when the host answered one of its calls validly.
    pub cmids: SeededMap<CmidKey, bool>,
    /// Answers below the client's N policy (KMS-01), labelled by workstation; the last (count, N).
    pub below: Evidence,
    pub last_below: Option<(u32, u32)>,
    /// Answers in `[N, N + margin)` (KMS-02); the last (count, N).
    pub thin: Evidence,
    pub last_thin: Option<(u32, u32)>,
    /// Answers whose count is below the distinct CMIDs the host answered before (KMS-03):
    /// (frame, count, distinct CMIDs) of the first.
    pub flat: Evidence,
    pub first_flat: Option<(u64, u32, usize)>,
    /// Counts above any genuine host's cache (2 × threshold): (count, N) of the first, KMS-11.
    pub above_cache: Evidence,
    pub first_above_cache: Option<(u32, u32)>,
    /// Responses whose ePID differs from the previous one of this group (KMS-10).
    pub epid_changes: Evidence,
    /// N policy values other than 25 / 5 (KMS-14), by value.
    pub odd_n: BTreeMap<u32, Evidence>,
    /// Product identification problems (KMS-13), by description.
    pub product_issues: BTreeMap<String, Evidence>,
}

/// The ids of a request [`product_issues`] checked, and what it found (KMS-13).
#[derive(Debug)]
struct ProductCheck {
    app_id: crate::guid::GuidText,
    sku_id: crate::guid::GuidText,
    app_name_known: bool,
    issues: Vec<String>,
}

/// Per host (address and port) state.
#[derive(Debug, Default)]
pub struct HostState {
    pub epids: BTreeSet<String>,
    /// ePIDs per KMS counted id, in order of first appearance, with the frame of first appearance.
    pub epids_by_kms: BTreeMap<String, Vec<(String, u64)>>,
    pub hwids: BTreeSet<String>,
    /// The HwId of the last response and its emulator description (KMS-11), if any.
    last_hwid: Option<(InlineText<16>, Option<&'static str>)>,
    pub apps: SmallMap<GuidText, AppState>,
    pub first_frame: u64,
    /// Host HRESULTs (KMS-07) by code: (name, evidence labelled by client and product).
    pub refusals: BTreeMap<String, (Option<&'static str>, Evidence)>,
    /// Calls whose response failed validation (KMS-08), and the failed checks.
    pub bad_responses: Evidence,
    pub bad_requests: Evidence,
    pub integrity_failures: BTreeSet<&'static str>,
    /// ePIDs with consistency issues (KMS-09): issues and evidence.
    pub epid_issues: SmallMap<String, (Vec<&'static str>, Evidence)>,
    /// Emulator fingerprints (KMS-11): description and evidence.
    pub fingerprints: BTreeMap<&'static str, (String, Evidence)>,
    /// Non-default (activation, renewal) interval pairs (KMS-17).
    pub intervals: BTreeMap<(u32, u32), Evidence>,
    /// Old protocol versions (KMS-21) by version, labelled by workstation.
    pub old_versions: BTreeMap<String, Evidence>,
    /// Requests flagged as virtual machines (KMS-22), labelled by workstation.
    pub vm: Evidence,
    /// KMS calls seen.
    pub calls: u64,
}

/// `a == b` without a call to `memcmp` (what `==` on `str` makes): the keys compared per KMS call
/// (GUIDs, ePIDs, status names) are a few tens of bytes, compared eight bytes at a time inline.
/// Static names are often the same text (one pointer).
#[inline]
pub fn text_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if std::ptr::eq(a.as_ptr(), b.as_ptr()) {
        return true;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        let p = u64::from_ne_bytes(p.try_into().unwrap_or_default());
        let q = u64::from_ne_bytes(q.try_into().unwrap_or_default());
        if p != q {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// The order of `a.cmp(b)` (bytes, then length), settled by the texts' [`key_prefix`]es when they
/// differ, inline: GUID keys mostly differ there, and `cmp` calls `memcmp`.
#[inline]
pub fn text_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    // Different prefixes order the texts as `str` does (see `key_prefix`); equal ones need the
    // whole texts.
    key_prefix(a).cmp(&key_prefix(b)).then_with(|| a.cmp(b))
}

/// A small map (a few keys, at most a few hundred) kept as vectors sorted by key: the iteration
/// order of a `BTreeMap`. Per call the same group, status or ePID nearly always comes again: the
/// entry found last is tried first, by [`text_eq`]; then a few keys, held apart from the (large)
/// values, are scanned, or more are searched by their first eight bytes, held as numbers apart
/// from the keys: a search reads a few cache lines of numbers and the one key that matches (a
/// host's product groups, a few dozen GUID keys of 48 bytes, are found in a different one at
/// nearly every call).
#[derive(Clone, Debug)]
pub struct SmallMap<K, V> {
    keys: Vec<K>,
    /// [`key_prefix`] of each key: ascending (not strictly), as the keys are.
    prefixes: Vec<u64>,
    values: Vec<V>,
    /// Index of the entry found or inserted last.
    last: usize,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap {
            keys: Vec::new(),
            prefixes: Vec::new(),
            values: Vec::new(),
            last: 0,
        }
    }
}

/// The first eight bytes of `s` as a big-endian number, zeros after a shorter text: keys in
/// `str` order have ascending prefixes (equal ones for keys alike in their first eight bytes, or
/// differing only in trailing zero bytes).
#[inline]
fn key_prefix(s: &str) -> u64 {
    let b = s.as_bytes();
    match b.first_chunk::<8>() {
        Some(c) => u64::from_be_bytes(*c),
        None => {
            let mut c = [0u8; 8];
            c[..b.len()].copy_from_slice(b);
            u64::from_be_bytes(c)
        }
    }
}

/// Up to this many entries a [`SmallMap`] is searched by a scan of its keys (a line or two),
/// beyond by their prefixes.
const SMALL_MAP_SCAN: usize = 8;

impl<K: std::borrow::Borrow<str> + Ord, V> SmallMap<K, V> {
    /// The index of `key`, if present.
    fn find(&mut self, key: &str) -> Option<usize> {
        if let Some(k) = self.keys.get(self.last)
            && text_eq(k.borrow(), key)
        {
            return Some(self.last);
        }
        let at = if self.keys.len() <= SMALL_MAP_SCAN {
            self.keys.iter().position(|k| text_eq(k.borrow(), key))
        } else {
            // The keys with this prefix follow one another from the first of them.
            let p = key_prefix(key);
            let first = self.prefixes.partition_point(|&q| q < p);
            let same = self.prefixes.get(first..)?.iter().take_while(|&&q| q == p);
            same.zip(self.keys.get(first..)?)
                .position(|(_, k)| text_eq(k.borrow(), key))
                .map(|i| first + i)
        };
        if let Some(i) = at {
            self.last = i;
        }
        at
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = self.find(key)?;
        self.values.get_mut(i)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        let i = self
            .keys
            .binary_search_by(|k| text_cmp(k.borrow(), key))
            .ok()?;
        self.values.get(i)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Inserts `key` (which must not be present) in order; its value.
    fn insert_new(&mut self, key: K, value: V) -> Option<&mut V> {
        let (Ok(i) | Err(i)) = self
            .keys
            .binary_search_by(|k| text_cmp(k.borrow(), key.borrow()));
        self.prefixes.insert(i, key_prefix(key.borrow()));
        self.keys.insert(i, key);
        self.values.insert(i, value);
        self.last = i;
        self.values.get_mut(i)
    }

    /// The value of `key`, inserted with `make` when absent.
    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> (K, V)) -> Option<&mut V> {
        match self.find(key) {
            Some(i) => self.values.get_mut(i),
            None => {
                let (k, v) = make();
                self.insert_new(k, v)
            }
        }
    }
}

impl<K, V> SmallMap<K, V> {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> std::iter::Zip<std::slice::Iter<'_, K>, std::slice::Iter<'_, V>> {
        self.keys.iter().zip(self.values.iter())
    }

    pub fn keys(&self) -> std::slice::Iter<'_, K> {
        self.keys.iter()
    }

    pub fn values(&self) -> std::slice::Iter<'_, V> {
        self.values.iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, K>, std::slice::Iter<'a, V>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A small set kept as a sorted vector: the iteration order of a `BTreeSet` without its
/// allocations (a `BTreeSet` allocates a whole B-tree node, hundreds of bytes, for its first
/// element). The first element is held inline: most client machines have one workstation name,
/// one address and one product, and a new client was an allocation per field.
#[derive(Clone, Debug)]
pub struct SortedSet<T>(SmallVec<[T; 1]>);

impl<T> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet(SmallVec::new())
    }
}

impl<T: Ord> SortedSet<T> {
    /// Adds `v`; false when it was already there.
    pub fn insert(&mut self, v: T) -> bool {
        match self.0.binary_search(&v) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, v);
                true
            }
        }
    }

    pub fn contains<Q: Ord + ?Sized>(&self, v: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
    {
        self.0.binary_search_by(|x| x.borrow().cmp(v)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// [`SortedSet::contains`] for text: a scan by [`text_eq`] while the set is small (most hold
    /// one element).
    pub fn contains_str(&self, v: &str) -> bool
    where
        T: std::borrow::Borrow<str>,
    {
        if self.0.len() <= 4 {
            return self.0.iter().any(|x| text_eq(x.borrow(), v));
        }
        self.0.binary_search_by(|x| text_cmp(x.borrow(), v)).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements in ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

/// A CMID as a map key. The engine writes CMIDs as canonical lower-case GUID text: those are held
/// as the number the 32 hex digits spell (16 bytes to hash and compare instead of a 36-byte string
/// and its allocation). Its order is the text's order (same length, same hyphens, digits before
/// letters); any other text is kept as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmidKey {
    Guid(u128),
    Text(Box<str>),
}

impl CmidKey {
    pub fn new(s: &str) -> CmidKey {
        match canonical_guid_bits(s) {
            Some(v) => CmidKey::Guid(v),
            None => CmidKey::Text(s.into()),
        }
    }

    /// The key of a decoded CMID: [`CmidKey::new`] of its canonical text, without the text.
    pub fn from_guid(g: &Guid) -> CmidKey {
        // The text spells Data1, Data2 and Data3 (little-endian on the wire), then Data4.
        let w = &g.0;
        let data1 = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let data2 = u16::from_le_bytes([w[4], w[5]]);
        let data3 = u16::from_le_bytes([w[6], w[7]]);
        let data4 = u64::from_be_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15]]);
        CmidKey::Guid(
            (u128::from(data1) << 96)
                | (u128::from(data2) << 80)
                | (u128::from(data3) << 64)
                | u128::from(data4),
        )
    }

    /// The key of a request's CMID: from the decoded GUID the engine gives, else (hand-built
    /// events) from the text.
    pub fn of_request(req: &KmsRequestInfo) -> CmidKey {
        match &req.cmid_guid {
            Some(g) => CmidKey::from_guid(g),
            None => CmidKey::new(&req.cmid),
        }
    }

    /// The CMID as the events wrote it.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            CmidKey::Guid(v) => Cow::Owned(guid_bits_text(*v)),
            CmidKey::Text(t) => Cow::Borrowed(t),
        }
    }
}

// The number alone (no discriminant): one round of the hasher per search. A text may hash as a
// number does; equality tells them apart.
impl std::hash::Hash for CmidKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            CmidKey::Guid(v) => state.write_u128(*v),
            CmidKey::Text(t) => t.hash(state),
        }
    }
}

impl Ord for CmidKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (CmidKey::Guid(a), CmidKey::Guid(b)) => a.cmp(b),
            _ => self.text().cmp(&other.text()),
        }
    }
}

impl PartialOrd for CmidKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for CmidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// The 32 hex digits of canonical lower-case GUID text (`8-4-4-4-12`) as one number, first digit
/// most significant; `None` for any other text.
fn canonical_guid_bits(s: &str) -> Option<u128> {
    guid_bits(s.as_bytes())
}

/// [`canonical_guid_bits`] of bytes. The digits are read eight at a time, as one `u64` (a CMID
/// per KMS call: a digit at a time cost about 280 instructions).
fn guid_bits(b: &[u8]) -> Option<u128> {
    let b: &[u8; 36] = b.try_into().ok()?;
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let pair = |x: &[u8], y: &[u8]| -> [u8; 8] {
        let mut c = [0u8; 8];
        c[..4].copy_from_slice(x);
        c[4..].copy_from_slice(y);
        c
    };
    let (c0, c3) = (b[0..8].try_into().ok()?, b[28..36].try_into().ok()?);
    let c1 = pair(&b[9..13], &b[14..18]);
    let c2 = pair(&b[19..23], &b[24..28]);
    let hi = (u64::from(hex8(c0)?) << 32) | u64::from(hex8(c1)?);
    let lo = (u64::from(hex8(c2)?) << 32) | u64::from(hex8(c3)?);
    Some((u128::from(hi) << 64) | u128::from(lo))
}

/// Eight lower-case hex digits as a number, the first most significant; `None` when any byte is
/// not one. Works on all eight bytes at once (SWAR): no byte reaches 0x80 after the first test,
/// so the per-byte additions below never carry into the next byte.
fn hex8(digits: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_le_bytes(digits);
    if x & HIGH != 0 {
        return None;
    }
    // High bit of each byte: set when the byte is >= lo, resp. <= hi.
    let at_least = |lo: u8| x.wrapping_add(ONES * u64::from(0x80 - lo)) & HIGH;
    let at_most = |hi: u8| !x.wrapping_add(ONES * u64::from(0x7F - hi)) & HIGH;
    let digit = at_least(b'0') & at_most(b'9');
    let letter = at_least(b'a') & at_most(b'f');
    if digit | letter != HIGH {
        return None;
    }
    // Values: the low nibble, plus 9 for letters (bit 6 set): '0' -> 0, 'a' (0x61) -> 10.
    let v = (x & (ONES * 0x0F)) + ((x >> 6) & ONES) * 9;
    // The first digit is the lowest byte: reverse, then pack nibble pairs, byte pairs, halves.
    let v = v.swap_bytes();
    let v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    let v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    let v = (v | (v >> 16)) & 0xFFFF_FFFF;
    u32::try_from(v).ok()
}

/// The canonical text of [`canonical_guid_bits`]'s number.
fn guid_bits_text(v: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            s.push('-');
        }
        let nibble = (v >> (124 - 4 * i)) & 15;
        s.push(char::from(HEX[nibble as usize]));
    }
    s
}

/// Per client machine (CMID) state.
///
/// `repr(C)`, the fields in the order a call reads them: a busy capture keeps thousands of clients
/// and a call of one finds its state out of cache, so the fields every call reads or writes come
/// first, packed into adjacent cache lines (which [`ClientState::warm`] reads ahead); those a call
/// touches only when something changes (a new name or failure) or on rare statuses (lapsed, grace)
/// come after them. Aligned to a cache line, so that the first line holds the first fields.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct ClientState {
    // The order below packs the fields of a call into cache lines (sizes of Rust 1.95 on
    // x86-64 in brackets): line 0.
    /// The product groups ([`AppState::uid`]) whose CMID set holds this client, with its value
    /// there (answered validly): a copy, so that most calls need not search that set. At most
    /// [`MAX_CLIENT_FACTS`]; the sets of further groups are searched at every call. [32]
    counted_in: SmallVec<[(u32, bool); 2]>,
    pub requests: u64,
    pub last_frame: u64,
    pub last_ts: Option<Ts>,
    // Line 1.
    /// Workstation of the last request. [40]
    pub last_workstation: ShortText,
    pub last_outcome: &'static str,
    /// A copy of `names.more_labels` (which only this state's updates change), read by every
    /// call: the rest of `names` only when the workstation changes.
    names_more: bool,
    // Line 2.
    last_addr: Option<(IpAddr, Ts)>,
    /// Most clients make a request or two: their frames are kept inline.
    pub frames: SmallVec<[u64; 2]>,
    // Line 3.
    /// SKU names (static) or, for SKUs the catalog does not know, their ids. [40]
    pub products: SortedSet<Cow<'static, str>>,
    pub last_license_status: Option<Cow<'static, str>>,
    // Line 4.
    /// Read when the address changes, which on captures of address pools is every call.
    pub addresses: SortedSet<IpAddr>,
    /// DNS part of the discovery chain of the last call, when its connection was not among the
    /// tracked attempts of its address (a busy address): taken when the call was seen.
    pub discovery_snapshot: Option<DnsPart>,
    pub failure_count: u64,
    // Line 5.
    pub last_server: Option<Endpoint>,
    pub last_client: Option<Endpoint>,
    /// The seconds of `skew` (compared by every call with a client time).
    skew_secs: Option<i64>,
    pub first_frame: u64,
    // Line 6.
    /// Last activation (KMS-19): (ts, frame, renewal interval in minutes).
    pub last_success: Option<(Ts, u64, u32)>,
    /// Non-zero previous CMID (KMS-05): value and frame. [32]
    pub previous_cmid: Option<(String, u64)>,
    // Lines 7 and 9: two evidence lists [128] whose first line is what `add` reads.
    pub skew_evidence: Evidence,
    /// Requests of this CMID from a second address within [`DUPLICATE_ADDR_WINDOW_NS`] (KMS-04).
    pub addr_overlap: Evidence,
    // Read when something changes.
    /// Largest clock difference (KMS-06): seconds (client − capture), frame, client time, capture
    /// time. Written when the difference grows (its seconds are in `skew_secs`).
    pub skew: Option<(i64, u64, TimeText, Ts)>,
    /// Case-insensitive distinct workstation names, with the frame of each first appearance.
    pub names: Evidence,
    pub workstations: SortedSet<ShortText>,
    /// Failed requests (KMS-18), the first ones.
    pub failures: Vec<Failure>,
    /// Lapsed license status (KMS-15): (status, code, minutes left, frame).
    pub lapsed: Option<(String, u32, u32, u64)>,
    pub lapsed_evidence: Evidence,
    /// Grace nearly exhausted (KMS-16): (status, minutes left, frame).
    pub grace: Option<(String, u32, u64)>,
    pub grace_evidence: Evidence,
}

impl State {
    /// Reads ahead the state [`State::observe`] will update for `ev`, where that is mostly out of
    /// cache (a KMS call's client machine, one of thousands): the engine calls this before it
    /// writes the event out, so that the misses overlap that work.
    #[inline]
    pub fn prefetch(&self, ev: &Event) {
        if let Body::Kms(call) = &ev.body
            && let Some(req) = &call.request
            && let Some(c) = self.clients.get(&CmidKey::of_request(req))
        {
            c.warm();
        }
    }
}

impl ClientState {
    /// Reads a word of each cache line a call uses (see [`State::observe_kms`]): independent
    /// loads, whose misses the processor overlaps with one another and with the work that
    /// follows, where the call's own reads would meet them one after another.
    #[inline]
    fn warm(&self) {
        std::hint::black_box((
            self.requests,
            self.names_more,
            self.frames.len(),
            self.products.len(),
            self.addresses.len(),
            self.skew_secs,
            self.last_success.is_some(),
            self.skew_evidence.last_ts,
            self.addr_overlap.last_ts,
            self.addr_overlap.labels.len(),
        ));
    }
}

/// One failed request of a client (KMS-18).
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    /// Capture time of the request.
    pub ts: Ts,
    pub frame: u64,
    /// The call's `outcome`.
    pub outcome: &'static str,
    /// The request's ClientRequestTime, seconds since the epoch (when it parsed).
    pub client_secs: Option<i64>,
}

/// RPC-level evidence per server endpoint.
#[derive(Debug, Default)]
pub struct ServerRpc {
    /// SYN answered by RST (RPC-01), labelled by client address.
    pub refused: Evidence,
    /// SYNs without answer (RPC-02): (frame, ts, SYN count, client).
    pub no_answer: Vec<(u64, Ts, u32, IpAddr)>,
    pub no_answer_count: u64,
    /// Reset with calls open.
    pub reset: Evidence,
    /// First frame of a working connection (bind_ack, call): the endpoint answers.
    pub established: Option<u64>,
    /// The KMS interface was bound (bind_ack naming it) or a KMS call was decoded.
    pub kms: bool,
    /// bind_nak (RPC-03) and its reasons.
    pub bind_nak: Evidence,
    pub nak_reasons: BTreeSet<String>,
    /// bind_acks rejecting every context, not recovered on the connection (RPC-03).
    pub bind_rejected: Evidence,
    /// Faults (RPC-04) by status code: (name, evidence).
    pub faults: BTreeMap<String, (Option<&'static str>, Evidence)>,
    /// Calls without reply (RPC-05) and why.
    pub unanswered: Evidence,
    pub unanswered_reasons: BTreeSet<&'static str>,
    /// Calls slower than the policy's limit (RPC-06) and the slowest of them.
    pub slow: Evidence,
    pub max_rtt_ms: f64,
    /// Payload that is not DCE/RPC (RPC-07), with the first detail.
    pub not_dcerpc: Evidence,
    pub not_dcerpc_detail: Option<String>,
    /// py-kms association group in bind_acks (KMS-11).
    pub pykms_assoc: Evidence,
    /// Frame of the first KMS evidence (for RPC-08).
    pub kms_evidence: Evidence,
}

/// State rebuilt from the event stream of one source.
#[derive(Debug, Default)]
pub struct State {
    pub hosts: BTreeMap<Endpoint, HostState>,
    pub clients: SeededMap<CmidKey, Box<ClientState>>,
    /// KMS requests whose CMID was not tracked because [`MAX_CLIENTS`] were.
    pub clients_untracked: u64,
    pub hosts_untracked: u64,
    pub servers: BTreeMap<Endpoint, ServerRpc>,
    pub net: NetState,
    /// Capture span (packet time), set by the engine before the checks; otherwise the span of the
    /// events seen.
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    /// All-rejecting bind_acks per connection, waiting for a later acceptance: (frame, ts).
    /// Seeded: the connections are the capture's choice.
    pending_binds: SeededMap<(Endpoint, Endpoint), (u64, Ts)>,
    /// Policy values used while folding events in (KMS-02 margin, RPC-06 limit).
    limits: Limits,
    /// Reused buffer for `workstation (product)` labels (no allocation per call).
    label_buf: String,
    /// The next [`AppState::uid`].
    app_uids: u32,
}

/// A client's workstation names: inline up to 32 bytes (most names), on the heap beyond.
pub type ShortText = InlineText<32>;

/// The policy values [`State::observe`] needs (the rest is applied by the checks).
#[derive(Clone, Copy, Debug)]
struct Limits {
    thin_margin: u32,
    slow_rpc_ms: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            thin_margin: super::policy::DEFAULT_THIN_MARGIN,
            slow_rpc_ms: super::policy::DEFAULT_SLOW_RPC_MS as f64,
        }
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time as the events write it
/// (`2026-11-23T15:18:34Z`, year of 4 or more digits); `None` when it does not parse.
pub fn parse_rfc3339_secs(s: &str) -> Option<i64> {
    // Every `kms` event's client time has the fixed 20-byte form: read it in place (the general
    // path below costs about thirty times more). Anything else, or a value this rejects, takes
    // the general path, which applies the same range checks.
    if let Some(v) = parse_rfc3339_fixed(s.as_bytes()) {
        return Some(v);
    }
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.rsplitn(3, '-');
    let day: u32 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let year: i64 = d.next()?.parse().ok()?;
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let m: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly (see [`parse_rfc3339_secs`]).
fn parse_rfc3339_fixed(b: &[u8]) -> Option<i64> {
    let b: &[u8; 20] = b.try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, m, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(h * 3600 + m * 60 + sec))
}

impl State {
    /// Sets the capture span (first and last packet time) the time-based checks use.
    pub fn set_span(&mut self, first: Option<Ts>, last: Ts) {
        if first.is_some() {
            self.first_ts = first;
        }
        self.last_ts = Some(last);
    }

    /// An empty state that applies `policy`'s KMS-02 margin and RPC-06 limit while folding events
    /// in ([`State::default`] uses the default policy).
    pub fn with_policy(policy: &super::Policy) -> State {
        State {
            limits: Limits {
                thin_margin: policy.thin_margin,
                slow_rpc_ms: policy.slow_rpc_ms as f64,
            },
            ..State::default()
        }
    }

    /// Capture span in nanoseconds.
    pub fn span_ns(&self) -> i64 {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => 0,
        }
    }

    fn server_mut(&mut self, ep: Endpoint) -> Option<&mut ServerRpc> {
        server_in(&mut self.servers, ep)
    }

    /// Folds one event into the state.
    pub fn observe(&mut self, ev: &Event) {
        if ev.event != "summary" && ev.event != "finding" {
            self.first_ts = Some(self.first_ts.map_or(ev.ts, |t| t.min(ev.ts)));
            self.last_ts = Some(self.last_ts.map_or(ev.ts, |t| t.max(ev.ts)));
        }
        match &ev.body {
            Body::Kms(call) => self.observe_kms(ev, call),
            Body::Dns(d) => self
                .net
                .observe_dns(ev.frame, ev.ts, ev.client, ev.server, d),
            Body::Rpc(r) => self.observe_rpc(ev, r),
            Body::Anomaly(a) => {
                if a.kind == crate::dcerpc::anomaly_kind::NOT_DCERPC
                    && let Some(server) = ev.server
                {
                    let client = ev.client.map(|c| c.ip.to_string()).unwrap_or_default();
                    if let Some(s) = self.server_mut(server) {
                        s.not_dcerpc.add_labeled(ev.frame, ev.ts, &client);
                        if s.not_dcerpc_detail.is_none() {
                            s.not_dcerpc_detail = Some(a.detail.clone());
                        }
                    }
                }
            }
            Body::Finding(_) | Body::Summary(_) => {}
        }
    }

    fn observe_rpc(&mut self, ev: &Event, r: &RpcInfo) {
        let (Some(client), Some(server)) = (ev.client, ev.server) else {
            return;
        };
        let mut cip = ClientLabel::new(Some(client.ip));
        match r.pdu {
            "connect" => {
                let result = match r.result {
                    Some("refused") => ConnectResult::Refused,
                    Some("no_answer") => ConnectResult::NoAnswer,
                    Some("reset") => ConnectResult::Reset,
                    _ => ConnectResult::Established,
                };
                let syns = r.syn_count.unwrap_or(0);
                if let Some(s) = self.server_mut(server) {
                    match result {
                        ConnectResult::Refused => cip.add_to(&mut s.refused, ev.frame, ev.ts),
                        ConnectResult::NoAnswer => {
                            s.no_answer_count += 1;
                            if s.no_answer.len() < super::evidence::MAX_EVIDENCE_FRAMES * 4 {
                                s.no_answer.push((ev.frame, ev.ts, syns, client.ip));
                            }
                        }
                        ConnectResult::Reset => {
                            s.reset
                                .add_labeled(ev.frame, ev.ts, r.detail.as_deref().unwrap_or(""))
                        }
                        ConnectResult::Established => {}
                    }
                }
                self.net.observe_attempt(
                    client,
                    server,
                    ev.frame,
                    ev.ts,
                    AttemptUpdate::Connect(result, syns),
                );
            }
            "bind_ack" | "alter_context_resp" => {
                let kms = r.interface_name == Some("KMS");
                // Results other than the bind-time feature negotiation acknowledgement (no list
                // is collected: one pass answers both questions).
                let (mut accepted, mut any_real) = (false, false);
                for t in r.transfer_syntaxes.iter() {
                    let result: &str = &t.result;
                    if result != "negotiate_ack" {
                        any_real = true;
                        accepted |= result == "accepted";
                    }
                }
                let key = (client, server);
                if accepted {
                    // Rejected binds are rare: skip hashing the connection when none wait.
                    if !self.pending_binds.is_empty() {
                        self.pending_binds.remove(&key);
                    }
                } else if any_real && self.pending_binds.len() < MAX_PENDING_BINDS {
                    self.pending_binds.entry(key).or_insert((ev.frame, ev.ts));
                }
                let assoc = r.assoc_group;
                if let Some(s) = self.server_mut(server) {
                    s.established.get_or_insert(ev.frame);
                    if kms {
                        s.kms = true;
                        cip.add_to(&mut s.kms_evidence, ev.frame, ev.ts);
                    }
                    if assoc == Some(PYKMS_ASSOC_GROUP) {
                        cip.add_to(&mut s.pykms_assoc, ev.frame, ev.ts);
                    }
                }
                let result = if accepted { "accepted" } else { "rejected" };
                self.net.observe_attempt(
                    client,
                    server,
                    ev.frame,
                    ev.ts,
                    AttemptUpdate::Bind(result),
                );
            }
            "bind_nak" => {
                let reason = r
                    .status
                    .as_ref()
                    .map(|h| match h.name {
                        Some(n) => format!("{n} ({})", h.code),
                        None => format!("reason {}", h.code),
                    })
                    .unwrap_or_default();
                if let Some(s) = self.server_mut(server) {
                    s.established.get_or_insert(ev.frame);
                    cip.add_to(&mut s.bind_nak, ev.frame, ev.ts);
                    if s.nak_reasons.len() < MAX_SMALL_MAP {
                        s.nak_reasons.insert(reason);
                    }
                }
                self.net.observe_attempt(
                    client,
                    server,
                    ev.frame,
                    ev.ts,
                    AttemptUpdate::Bind("bind_nak"),
                );
            }
            "fault" => {
                let (code, name) = r
                    .status
                    .as_ref()
                    .map(|h| (h.code.to_string(), h.name))
                    .unwrap_or_default();
                if let Some(s) = self.server_mut(server) {
                    s.established.get_or_insert(ev.frame);
                    if s.faults.len() < MAX_SMALL_MAP || s.faults.contains_key(&code) {
                        s.faults
                            .entry(code)
                            .or_insert_with(|| (name, Evidence::default()))
                            .1
                            .add_labeled(ev.frame, ev.ts, cip.get());
                    }
                }
            }
            _ => {}
        }
    }

    fn observe_kms(&mut self, ev: &Event, call: &KmsCall) {
        let Some(server) = ev.server else {
            return;
        };
        // The client machine's state, searched first: a busy capture keeps thousands, and the
        // one of this call is mostly out of cache. Its first line is read here, so that the
        // misses of the search and of that read overlap the server, connection and host work
        // below instead of stalling the call where the state is used. A new CMID is inserted
        // only where the call reaches the client facts (`clients_full` is the table's size
        // before this call: nothing is inserted in between).
        let clients_full = self.clients.len() >= MAX_CLIENTS;
        let cmid = call.request.as_ref().map(CmidKey::of_request);
        // The table grows with the clients (not sized to its bound at once): a capture of a few
        // hundred machines keeps a table of a few cache lines of control bytes and buckets.
        let client_entry = match &cmid {
            Some(key) => {
                let entry = self.clients.entry(key.clone());
                if let HashEntry::Occupied(o) = &entry {
                    o.get().warm();
                }
                Some(entry)
            }
            None => None,
        };
        let client_ep = ev.client;
        // The client address as a label, formatted on the stack (no allocation per call) and
        // only when an evidence list still takes labels.
        let mut cip = ClientLabel::new(client_ep.map(|c| c.ip));
        // The status and integrity words, compared once.
        let unanswered = call.status == "unanswered";
        let answered = !unanswered && call.status == "answered";
        let refused = !unanswered && !answered && call.status == "refused";
        let rtt_ms = call.rtt_ms.unwrap_or(0.0);
        let slow = !unanswered && rtt_ms > self.limits.slow_rpc_ms;
        // Per server endpoint: RPC-level facts.
        if let Some(s) = server_in(&mut self.servers, server) {
            s.kms = true;
            if !unanswered {
                s.established.get_or_insert(ev.frame);
            }
            cip.add_to(&mut s.kms_evidence, ev.frame, ev.ts);
            if unanswered
                && let Some(reason @ ("connection_closed" | "connection_reset" | "idle_timeout")) =
                    call.reason
            {
                cip.add_to(&mut s.unanswered, ev.frame, ev.ts);
                s.unanswered_reasons.insert(reason);
            }
            if slow {
                cip.add_to(&mut s.slow, ev.frame, ev.ts);
                s.max_rtt_ms = s.max_rtt_ms.max(rtt_ms);
            }
        }
        // Whether the connection is among the tracked attempts of its client (else the client
        // table keeps a snapshot of its DNS part).
        let mut conn_seen = AttemptSeen::Tracked;
        if let Some(c) = client_ep {
            // Rejected binds are rare: skip hashing the connection when none wait.
            if !self.pending_binds.is_empty() {
                self.pending_binds.remove(&(c, server));
            }
            conn_seen = self.net.observe_attempt(
                c,
                server,
                ev.frame,
                ev.ts,
                AttemptUpdate::Call(call.outcome),
            );
        }
        // Host-level facts hold even when the request did not decode (e.g. a protocol version the
        // host refused with 0x8007000D).
        let margin = self.limits.thin_margin;
        let hosts_full = self.hosts.len() >= MAX_HOSTS;
        let host = match self.hosts.entry(server) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(_) if hosts_full => {
                self.hosts_untracked += 1;
                return;
            }
            Entry::Vacant(v) => v.insert(HostState::default()),
        };
        if host.first_frame == 0 {
            host.first_frame = ev.frame;
        }
        host.calls += 1;
        let req = call.request.as_ref();
        // Without a decoded request the client address stands for the workstation.
        let fallback_ws = match req {
            Some(_) => None,
            None => client_ep.map(|c| IpText::new(c.ip)),
        };
        let ws: &str = match req {
            Some(r) => r.workstation.as_str(),
            None => fallback_ws.as_ref().map_or("", IpText::as_str),
        };
        // `{ws} ({product})` labels are written into a reused buffer, and only for lists that
        // still take labels.
        let label = WsProduct {
            ws,
            product: req.map(|r| r.sku_name.unwrap_or(r.sku_id.as_str())),
            known_product: req.and_then(|r| r.sku_name),
            version: call.version.as_deref(),
        };
        let buf = &mut self.label_buf;
        // Host error, integrity, intervals, versions, VMs.
        if let Some(h) = &call.hresult
            && (refused || answered)
        {
            let room = host.refusals.len() < MAX_SMALL_MAP;
            match host.refusals.get_mut(h.code.as_str()) {
                Some((_, e)) => label.add_to(e, ev.frame, ev.ts, buf),
                None if room => {
                    let mut e = Evidence::default();
                    label.add_to(&mut e, ev.frame, ev.ts, buf);
                    host.refusals
                        .insert(h.code.as_str().to_owned(), (h.name, e));
                }
                None => {}
            }
        }
        let integrity = &call.integrity;
        if !integrity.failures.is_empty() {
            let soft = |f: &&&str| !kms::validate::failure::SOFT.contains(*f);
            if matches!(integrity.response, Some("invalid" | "undecodable")) {
                host.bad_responses.add_labeled(ev.frame, ev.ts, ws);
                host.integrity_failures
                    .extend(integrity.failures.iter().filter(soft).copied());
            } else if matches!(integrity.request, Some("invalid"))
                // An unsupported protocol version is not damage: the host's refusal says it
                // (KMS-07).
                && integrity
                    .failures
                    .iter()
                    .any(|f| *f != kms::validate::failure::UNSUPPORTED_VERSION)
            {
                host.bad_requests.add_labeled(ev.frame, ev.ts, ws);
                host.integrity_failures
                    .extend(integrity.failures.iter().filter(soft).copied());
            }
            if integrity
                .failures
                .contains(&kms::validate::failure::IV_REUSE)
            {
                fingerprint(
                    host,
                    "iv_reuse",
                    "v6 responses reuse the request's IV (the v5 rule; vlmcsd's emulator tell)",
                    ev.frame,
                    ev.ts,
                    &mut cip,
                );
            }
        } else if matches!(integrity.response, Some("invalid" | "undecodable")) {
            host.bad_responses.add_labeled(ev.frame, ev.ts, ws);
        }
        if let Some(v) = call.version.as_deref()
            && (v == "4.0" || v == "5.0")
        {
            let room = host.old_versions.len() < MAX_SMALL_MAP;
            match host.old_versions.get_mut(v) {
                Some(e) => label.add_to(e, ev.frame, ev.ts, buf),
                None if room => {
                    let mut e = Evidence::default();
                    label.add_to(&mut e, ev.frame, ev.ts, buf);
                    host.old_versions.insert(v.to_owned(), e);
                }
                None => {}
            }
        }
        let Some(req) = req else {
            return;
        };
        if req.is_vm {
            host.vm.add_labeled(ev.frame, ev.ts, ws);
        }
        // Per product group.
        let kms_id = req.kms_id.as_str();
        // One search for a known group; `entry` would take an owned key (an allocation) every
        // call.
        let apps_full = host.apps.len() >= MAX_APPS_PER_HOST;
        let app = match host.apps.find(kms_id) {
            Some(i) => host.apps.values.get_mut(i),
            None if apps_full => return,
            None => {
                let uid = self.app_uids;
                self.app_uids = self.app_uids.wrapping_add(1);
                let app = AppState {
                    uid,
                    ..AppState::default()
                };
                host.apps.insert_new(req.kms_id.clone(), app)
            }
        };
        let Some(app) = app else {
            return;
        };
        if !text_eq(&app.app_id, &req.app_id) {
            app.app_id = req.app_id.clone();
        }
        app.app_name = req.app_name;
        app.kms_name = req.kms_name;
        app.catalog_threshold = req.catalog_threshold;
        app.required_count = app.required_count.max(req.required_count);
        app.requests += 1;
        app.first_ts.get_or_insert(ev.ts);
        app.last_ts = Some(ev.ts);
        if let Some(n) = app.by_license_status.get_mut(&req.license_status) {
            *n += 1;
        } else if app.by_license_status.len() >= MAX_SMALL_MAP {
            // Unknown status codes are named by number: bounded like the other small maps, the
            // statuses beyond the bound counted together.
            if let Some(n) = app
                .by_license_status
                .get_or_insert_with("other", || (Cow::Borrowed("other"), 0))
            {
                *n += 1;
            }
        } else {
            app.by_license_status
                .insert_new(req.license_status.clone(), 1);
        }
        let valid_answer = answered && integrity.response == Some("valid");
        if refused {
            app.refused += 1;
        } else if !valid_answer {
            app.failed += 1;
        }
        // The CMID's key, made once for the client and the group's table (cheap to clone: a
        // number).
        let (Some(cmid), Some(client_entry)) = (cmid, client_entry) else {
            return;
        };
        // The client, searched above: what it remembers of the group's CMID set spares most
        // calls the search of that set. (Untracked when the table is full: counted below.)
        let mut client: Option<&mut ClientState> = match client_entry {
            HashEntry::Occupied(o) => Some(o.into_mut()),
            HashEntry::Vacant(_) if clients_full => None,
            HashEntry::Vacant(v) => Some(v.insert(Box::default())),
        };
        let memo = client.as_deref_mut().and_then(|c| {
            let i = c.counted_in.iter().position(|(uid, _)| *uid == app.uid)?;
            c.counted_in.get_mut(i)
        });
        match memo {
            // In the group's set already, and nothing to change there.
            Some((_, counted)) if *counted || !valid_answer => {}
            _ => {
                // One search, known CMID or not.
                let tracked = app.cmids.len();
                let in_set = match app.cmids.entry(cmid) {
                    HashEntry::Occupied(o) => {
                        let counted = o.into_mut();
                        if valid_answer && !*counted {
                            *counted = true;
                            app.answered_cmids += 1;
                        }
                        Some(*counted)
                    }
                    HashEntry::Vacant(v) if tracked < MAX_CMIDS_PER_APP => {
                        v.insert(valid_answer);
                        if valid_answer {
                            app.answered_cmids += 1;
                        }
                        Some(valid_answer)
                    }
                    HashEntry::Vacant(_) => {
                        app.cmids_untracked += 1;
                        None
                    }
                };
                if let (Some(counted), Some(c)) = (in_set, client.as_deref_mut()) {
                    let room = c.counted_in.len() < MAX_CLIENT_FACTS;
                    match c.counted_in.iter_mut().find(|(uid, _)| *uid == app.uid) {
                        Some(m) => m.1 = counted,
                        None if room => c.counted_in.push((app.uid, counted)),
                        None => {}
                    }
                }
            }
        }
        let n = req.required_count;
        if n != 25 && n != 5 {
            let len = app.odd_n.len();
            if len < MAX_SMALL_MAP || app.odd_n.contains_key(&n) {
                app.odd_n
                    .entry(n)
                    .or_default()
                    .add_labeled(ev.frame, ev.ts, ws);
            }
        }
        product_issues(app, req, ev.frame, ev.ts, ws);
        if let Some(resp) = &call.response {
            let epid = resp.epid.as_str();
            let count = resp.current_count;
            let frame = call.response_frame.unwrap_or(ev.frame);
            app.last_count = Some(count);
            app.max_count = Some(app.max_count.map_or(count, |m| m.max(count)));
            app.min_count = Some(app.min_count.map_or(count, |m| m.min(count)));
            if app.count_history.last().is_none_or(|s| s.count != count)
                && app.count_history.len() < MAX_COUNT_HISTORY
            {
                app.count_history.push(CountSample {
                    frame,
                    count,
                    required_count: n,
                });
            }
            if valid_answer {
                if count < n {
                    app.below.add_labeled(ev.frame, ev.ts, ws);
                    app.last_below = Some((count, n));
                } else if count < n.saturating_add(margin) {
                    app.thin.add_labeled(ev.frame, ev.ts, ws);
                    app.last_thin = Some((count, n));
                }
                // KMS-03: the host has answered (so counted) more distinct machines in the last 30
                // days than the count it returns, and the count is below its cache size.
                let threshold = app.catalog_threshold.unwrap_or(0).max(n);
                let cache = threshold.saturating_mul(2);
                let within_window = app
                    .first_ts
                    .is_some_and(|f| ev.ts.0.saturating_sub(f.0) <= CMID_WINDOW_NS);
                let distinct = app.answered_cmids;
                let expected = u32::try_from(distinct).unwrap_or(u32::MAX).min(cache);
                if within_window && app.cmids_untracked == 0 && count < expected {
                    app.flat.add_labeled(ev.frame, ev.ts, ws);
                    app.first_flat.get_or_insert((ev.frame, count, distinct));
                }
                let catalog_cache = app.catalog_threshold.map(|t| t.saturating_mul(2));
                if catalog_cache.is_some_and(|c| count > c) {
                    cip.add_to(&mut app.above_cache, ev.frame, ev.ts);
                    app.first_above_cache.get_or_insert((count, n));
                }
            }
            // The group's ePIDs: nearly always the last one again.
            let known = if app.epids.last().is_some_and(|(e, _)| text_eq(e, epid)) {
                true
            } else if app.epids.iter().any(|(e, _)| e == epid) {
                app.epid_changes.add_labeled(ev.frame, ev.ts, epid);
                true
            } else {
                if !app.epids.is_empty() {
                    app.epid_changes.add_labeled(ev.frame, ev.ts, epid);
                }
                if app.epids.len() < MAX_EPIDS {
                    app.epids.push((epid.to_owned(), ev.frame));
                }
                false
            };
            // An ePID the group knows was offered to the host's lists when the group first saw it
            // (they only grow, up to their bound): only a new one needs the lookups.
            if !known {
                if host.epids.len() < MAX_EPIDS && !host.epids.contains(epid) {
                    host.epids.insert(epid.to_owned());
                }
                match host.epids_by_kms.get_mut(kms_id) {
                    Some(list) => {
                        if list.len() < MAX_EPIDS && !list.iter().any(|(e, _)| e == epid) {
                            list.push((epid.to_owned(), ev.frame));
                        }
                    }
                    None => {
                        host.epids_by_kms
                            .insert(kms_id.to_owned(), vec![(epid.to_owned(), ev.frame)]);
                    }
                }
            }
            let room = host.epid_issues.len() < MAX_EPIDS;
            match host.epid_issues.get_mut(epid) {
                Some((_, e)) => cip.add_to(e, ev.frame, ev.ts),
                None if room => {
                    let mut issues = kms::parse_epid(epid).issues();
                    if let Some(inst) = resp.host.key_installed.as_deref() {
                        let now = ev.ts.date();
                        let today = format!("{:04}-{:02}-{:02}", now.0, now.1, now.2);
                        if inst > today.as_str() {
                            issues.push("installed_in_future");
                        }
                    }
                    let mut e = Evidence::default();
                    cip.add_to(&mut e, ev.frame, ev.ts);
                    host.epid_issues.insert_new(epid.to_owned(), (issues, e));
                }
                None => {}
            }
            if let Some(h) = resp.hwid.as_deref() {
                // A host answers with one HwId: the list and the emulator test only for a new one
                // (the list only grows: the last HwId was offered to it).
                let why = match &host.last_hwid {
                    Some((last, why)) if text_eq(last, h) => *why,
                    _ => {
                        if host.hwids.len() < MAX_EPIDS && !host.hwids.contains(h) {
                            host.hwids.insert(h.to_owned());
                        }
                        let why = EMULATOR_HWIDS
                            .iter()
                            .find(|(id, _)| *id == h)
                            .map(|(_, why)| *why);
                        host.last_hwid = Some((InlineText::from(h), why));
                        why
                    }
                };
                if let Some(why) = why {
                    fingerprint(host, "default_hwid", why, ev.frame, ev.ts, &mut cip);
                }
            }
            let iv = (resp.activation_interval_min, resp.renewal_interval_min);
            if iv != (120, 10080)
                && (host.intervals.len() < MAX_SMALL_MAP || host.intervals.contains_key(&iv))
            {
                host.intervals
                    .entry(iv)
                    .or_default()
                    .add_labeled(ev.frame, ev.ts, ws);
            }
        }
        // Per client machine (looked up above).
        let Some(client) = client else {
            self.clients_untracked += 1;
            return;
        };
        let workstation = req.workstation.as_str();
        if client.requests == 0 {
            client.first_frame = ev.frame;
        }
        // The workstation of the previous request is known to the sets below already.
        let same_ws = client.requests > 0 && text_eq(&client.last_workstation, workstation);
        client.requests += 1;
        if !same_ws
            && client.workstations.len() < MAX_CLIENT_FACTS
            && !client.workstations.contains_str(workstation)
        {
            client.workstations.insert(ShortText::from(workstation));
        }
        // The previous workstation's name is among the labels unless some did not fit.
        let name_known = same_ws && !client.names_more;
        if !name_known && !has_lowercase_label(&client.names, workstation) {
            client.names.add(ev.frame, ev.ts);
            // `str::to_lowercase` treats some letters by context; ASCII names need no tables.
            client.names.label_owned(if workstation.is_ascii() {
                workstation.to_ascii_lowercase()
            } else {
                workstation.to_lowercase()
            });
            client.names_more = client.names.more_labels;
        }
        if let Some(c) = client_ep {
            // The previous request's address is in the set already (or the set was full).
            if client.last_addr.is_none_or(|(ip, _)| ip != c.ip)
                && client.addresses.len() < MAX_CLIENT_FACTS
            {
                client.addresses.insert(c.ip);
            }
            if let Some((ip, t)) = client.last_addr
                && ip != c.ip
                && ev.ts.0.saturating_sub(t.0).abs() <= DUPLICATE_ADDR_WINDOW_NS
            {
                // Both addresses as labels, formatted on the stack and only while the list
                // takes labels (cloned images make this the common case of some captures).
                let e = &mut client.addr_overlap;
                e.add(ev.frame, ev.ts);
                for a in [c.ip, ip] {
                    if !e.labels_settled() {
                        e.label(IpText::new(a).as_str());
                    }
                }
            }
            client.last_addr = Some((c.ip, ev.ts));
        }
        if let Some(product) = label.product
            && client.products.len() < MAX_CLIENT_FACTS
            && !client.products.contains_str(product)
        {
            // A catalog name is kept without a copy.
            client.products.insert(match label.known_product {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(product.to_owned()),
            });
        }
        if client.frames.len() < MAX_FRAMES_PER_CLIENT {
            client.frames.push(ev.frame);
        }
        client.last_frame = client.last_frame.max(ev.frame);
        client.last_ts = Some(ev.ts);
        client.last_outcome = call.outcome;
        client.last_server = Some(server);
        client.last_client = client_ep;
        // Mostly the same status again (an unknown one is a copy on the heap).
        if client
            .last_license_status
            .as_deref()
            .is_none_or(|s| !text_eq(s, &req.license_status))
        {
            client.last_license_status = Some(req.license_status.clone());
        }
        if !same_ws {
            client.last_workstation.set(workstation);
        }
        client.discovery_snapshot = match client_ep {
            Some(cl) if conn_seen == AttemptSeen::Dropped => {
                Some(self.net.dns_snapshot(cl, server, ev.frame))
            }
            // What `dns_snapshot` gives an address without history, without searching for it.
            Some(_) if conn_seen == AttemptSeen::UnknownClient => Some(DnsPart::Method("unknown")),
            _ => None,
        };
        if let Some(p) = &req.previous_cmid
            && client.previous_cmid.is_none()
        {
            client.previous_cmid = Some((p.as_str().to_owned(), ev.frame));
        }
        // The skew (KMS-06) and the failure list (KMS-18) both use it. The engine gives the
        // seconds with the text; a hand-built event has only the text.
        let client_secs = req
            .client_secs
            .or_else(|| parse_rfc3339_secs(&req.client_time));
        if let Some(ct) = client_secs {
            let skew = ct - ev.ts.secs();
            client.skew_evidence.add(ev.frame, ev.ts);
            if client.skew_secs.is_none_or(|s| skew.abs() > s.abs()) {
                client.skew_secs = Some(skew);
                client.skew = Some((skew, ev.frame, req.client_time.clone(), ev.ts));
            }
        }
        let code = req.license_status_code;
        let status = &*req.license_status;
        if (3..=6).contains(&code) {
            client.lapsed_evidence.add(ev.frame, ev.ts);
            // Updated in place: a lapsed client says so at every request.
            match &mut client.lapsed {
                Some(l) => {
                    if l.0 != status {
                        l.0.clear();
                        l.0.push_str(status);
                    }
                    l.1 = code;
                    l.2 = req.binding_expiration_min;
                }
                None => {
                    client.lapsed = Some((
                        status.to_owned(),
                        code,
                        req.binding_expiration_min,
                        ev.frame,
                    ));
                }
            }
        } else if (code == 1 || code == 2)
            && req.binding_expiration_min > 0
            && req.binding_expiration_min < super::checks::kms::GRACE_WARN_MIN
        {
            client.grace_evidence.add(ev.frame, ev.ts);
            if client
                .grace
                .as_ref()
                .is_none_or(|g| req.binding_expiration_min < g.1)
            {
                client.grace = Some((status.to_owned(), req.binding_expiration_min, ev.frame));
            }
        }
        if call.outcome == "activated" {
            let renewal = call
                .response
                .as_ref()
                .map_or(10080, |r| r.renewal_interval_min);
            client.last_success = Some((ev.ts, ev.frame, renewal));
        } else if !unanswered || call.reason != Some("capture_ended") {
            client.failure_count += 1;
            if client.failures.len() < MAX_FAILURES_PER_CLIENT {
                client.failures.push(Failure {
                    ts: ev.ts,
                    frame: ev.frame,
                    outcome: call.outcome,
                    client_secs,
                });
            }
        }
    }

    /// All-rejecting binds never followed by an acceptance on their connection (RPC-03), by frame
    /// then connection: a total order, so the order RPC-03 labels its clients in does not depend
    /// on the seeded table's iteration order (the old Fx order only happened to be the same every
    /// run).
    pub fn unrecovered_binds(&self) -> Vec<((Endpoint, Endpoint), (u64, Ts))> {
        let mut v: Vec<_> = self.pending_binds.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable_by_key(|&(conn, (frame, _))| (frame, conn));
        v
    }

    /// The `hosts` array of the summary event.
    pub fn host_summaries(&self) -> Vec<HostSummary> {
        self.hosts
            .iter()
            .map(|(ep, h)| HostSummary {
                ip: ep.ip,
                port: ep.port,
                epids: h.epids.iter().cloned().collect(),
                hwid: h.hwids.iter().next().cloned(),
                apps: h
                    .apps
                    .iter()
                    .map(|(kms_id, a)| HostApp {
                        app_id: a.app_id.to_string(),
                        app_name: a.app_name,
                        kms_id: kms_id.to_string(),
                        kms_name: a.kms_name,
                        last_count: a.last_count,
                        max_count: a.max_count,
                        required_count: a.required_count,
                        requests: a.requests,
                        refused: a.refused,
                        failed: a.failed,
                        distinct_cmids: a.cmids.len() as u64 + a.cmids_untracked,
                        by_license_status: a
                            .by_license_status
                            .iter()
                            .map(|(k, v)| (k.to_string(), *v))
                            .collect(),
                        epids: a.epids.iter().map(|(e, _)| e.clone()).collect(),
                        count_history: a.count_history.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The `client_list` of the summary: the first [`MAX_CLIENT_LIST`] clients by first frame, each
    /// with the discovery chain of its last call.
    pub fn client_list(&self) -> Vec<ClientEntry> {
        let mut v: Vec<(&CmidKey, &ClientState)> =
            self.clients.iter().map(|(k, c)| (k, &**c)).collect();
        // Only the first MAX_CLIENT_LIST are kept: select them, then sort those (no key clones).
        let order = |a: &(&CmidKey, &ClientState), b: &(&CmidKey, &ClientState)| {
            (a.1.first_frame, a.0).cmp(&(b.1.first_frame, b.0))
        };
        if v.len() > MAX_CLIENT_LIST {
            v.select_nth_unstable_by(MAX_CLIENT_LIST, order);
            v.truncate(MAX_CLIENT_LIST);
        }
        v.sort_unstable_by(order);
        v.into_iter()
            .map(|(cmid, c)| {
                let discovery = match (c.last_client, c.last_server) {
                    (Some(cl), Some(sv)) => {
                        let fallback = Attempt {
                            frame: c.last_frame,
                            ts: c.last_ts.unwrap_or_default(),
                            client_port: cl.port,
                            server: sv,
                            connect: ConnectResult::Established,
                            syns: 0,
                            bind: None,
                            call: Some((c.last_frame, c.last_outcome)),
                            dns: c.discovery_snapshot.clone(),
                        };
                        self.net.chain(cl, sv, &fallback)
                    }
                    _ => crate::event::DiscoveryChain {
                        method: "unknown",
                        ..Default::default()
                    },
                };
                ClientEntry {
                    cmid: cmid.to_string(),
                    workstations: c.workstations.iter().map(|w| w.to_string()).collect(),
                    addresses: c.addresses.iter().copied().collect(),
                    products: c.products.iter().map(|p| p.to_string()).collect(),
                    requests: c.requests,
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                    last_outcome: c.last_outcome,
                    last_server: c.last_server,
                    license_status: c.last_license_status.as_deref().map(str::to_string),
                    discovery,
                }
            })
            .collect()
    }
}

/// The RPC-level state of `ep`, created while there is room ([`MAX_SERVERS`]).
fn server_in(servers: &mut BTreeMap<Endpoint, ServerRpc>, ep: Endpoint) -> Option<&mut ServerRpc> {
    let full = servers.len() >= MAX_SERVERS;
    // The key is `Copy`: one search, whether the endpoint is known or not.
    match servers.entry(ep) {
        Entry::Occupied(o) => Some(o.into_mut()),
        Entry::Vacant(_) if full => None,
        Entry::Vacant(v) => Some(v.insert(ServerRpc::default())),
    }
}

/// KMS-11 evidence, labelled by the client address (formatted only while the list takes labels).
fn fingerprint(
    host: &mut HostState,
    key: &'static str,
    why: &str,
    frame: u64,
    ts: Ts,
    client: &mut ClientLabel,
) {
    if let Some((_, e)) = host.fingerprints.get_mut(key) {
        client.add_to(e, frame, ts);
        return;
    }
    let mut e = Evidence::default();
    client.add_to(&mut e, frame, ts);
    host.fingerprints.insert(key, (why.to_string(), e));
}

/// KMS-13 evidence: product ids the catalog does not know, or an ApplicationId that does not match
/// the catalog's for the KMS counted id / SKU.
/// True when `names` already holds the lower-case form of `name` (ASCII names are compared in
/// place; others are lowered, as `str::to_lowercase` treats some letters by context).
fn has_lowercase_label(names: &Evidence, name: &str) -> bool {
    if name.is_ascii() {
        let lower_eq = |l: &String| {
            l.len() == name.len()
                && l.bytes()
                    .zip(name.bytes())
                    .all(|(a, b)| a == b.to_ascii_lowercase())
        };
        return names.labels.iter().any(lower_eq);
    }
    names.labels.contains(&name.to_lowercase())
}

/// The `workstation (product)` label of a call (KMS-07, KMS-21); `undecoded KMS <version>
/// request` stands for the product when the request did not decode.
struct WsProduct<'a> {
    ws: &'a str,
    product: Option<&'a str>,
    /// The product when it is the catalog's (static) SKU name.
    known_product: Option<&'static str>,
    version: Option<&'a str>,
}

impl WsProduct<'_> {
    /// [`Evidence::add_labeled`] with this label, written into `buf` only when `e` still takes
    /// labels (most calls of a busy host find the list settled).
    fn add_to(&self, e: &mut Evidence, frame: u64, ts: Ts, buf: &mut String) {
        e.add(frame, ts);
        if e.labels_settled() {
            return;
        }
        buf.clear();
        buf.push_str(self.ws);
        buf.push_str(" (");
        match self.product {
            Some(p) => buf.push_str(p),
            None => {
                buf.push_str("undecoded KMS ");
                buf.push_str(self.version.unwrap_or("?"));
                buf.push_str(" request");
            }
        }
        buf.push(')');
        e.label(buf);
    }
}

/// A client address as an evidence label, formatted on first use: most evidence lists of a busy
/// server have all the labels they keep, so most calls need no text at all.
struct ClientLabel {
    ip: Option<IpAddr>,
    text: Option<IpText>,
}

impl ClientLabel {
    fn new(ip: Option<IpAddr>) -> ClientLabel {
        ClientLabel { ip, text: None }
    }

    /// The address as text; empty without an address.
    fn get(&mut self) -> &str {
        match self.ip {
            Some(ip) => self.text.get_or_insert_with(|| IpText::new(ip)).as_str(),
            None => "",
        }
    }

    /// [`Evidence::add_labeled`] with this label.
    fn add_to(&mut self, e: &mut Evidence, frame: u64, ts: Ts) {
        e.add(frame, ts);
        if !e.labels_settled() {
            e.label(self.get());
        }
    }
}

/// An IP address as text in a stack buffer (labels are formatted for every call).
struct IpText {
    buf: [u8; 46],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> IpText {
        use std::io::Write as _;
        let mut t = IpText {
            buf: [0; 46],
            len: 0,
        };
        let mut w = &mut t.buf[..];
        match ip {
            IpAddr::V4(a) => {
                for (i, o) in a.octets().iter().enumerate() {
                    if i > 0 {
                        let _ = w.write_all(b".");
                    }
                    let _ = w.write_all(itoa::Buffer::new().format(*o).as_bytes());
                }
            }
            // The longest IPv6 text is 45 bytes: writing cannot run out of room.
            IpAddr::V6(a) => {
                let _ = write!(w, "{a}");
            }
        }
        let room = w.len();
        t.len = t.buf.len() - room;
        t
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

fn product_issues(
    app: &mut AppState,
    req: &crate::event::KmsRequestInfo,
    frame: u64,
    ts: Ts,
    ws: &str,
) {
    // Ids the engine found in the catalog, belonging together: no issue (the common case).
    if req.products_consistent {
        return;
    }
    // The group's key is the KMS counted id: the issues depend only on these ids otherwise.
    let app_name_known = req.app_name.is_some();
    let cached = app.product_checks.iter().position(|c| {
        text_eq(&c.sku_id, &req.sku_id)
            && text_eq(&c.app_id, &req.app_id)
            && c.app_name_known == app_name_known
    });
    let at = match cached {
        Some(at) => at,
        None => {
            let check = ProductCheck {
                app_id: req.app_id.clone(),
                sku_id: req.sku_id.clone(),
                app_name_known,
                issues: find_product_issues(req),
            };
            if app.product_checks.len() < MAX_PRODUCT_CHECKS {
                app.product_checks.push(check);
                app.product_checks.len() - 1
            } else {
                // Full: the oldest goes (the entries rotate through the slots).
                let at = app.product_checks_next % MAX_PRODUCT_CHECKS;
                app.product_checks_next = app.product_checks_next.wrapping_add(1);
                if let Some(slot) = app.product_checks.get_mut(at) {
                    *slot = check;
                }
                at
            }
        }
    };
    let Some(check) = app.product_checks.get(at) else {
        return;
    };
    for i in &check.issues {
        if let Some(e) = app.product_issues.get_mut(i) {
            e.add_labeled(frame, ts, ws);
        } else if app.product_issues.len() < MAX_SMALL_MAP {
            let mut e = Evidence::default();
            e.add_labeled(frame, ts, ws);
            app.product_issues.insert(i.clone(), e);
        }
    }
}

/// The KMS-13 issues of a request's product ids (see [`product_issues`]).
pub(crate) fn find_product_issues(req: &crate::event::KmsRequestInfo) -> Vec<String> {
    let mut issues: Vec<String> = Vec::new();
    let parse = crate::guid::Guid::parse;
    let app_id = parse(&req.app_id);
    if req.app_name.is_none() {
        issues.push(format!("unknown ApplicationId {}", req.app_id));
    }
    match parse(&req.kms_id).and_then(|g| kms::products::kms(&g)) {
        None => issues.push(format!("unknown KMS counted id {}", req.kms_id)),
        Some(k) if app_id.is_some_and(|a| a != k.app) => issues.push(format!(
            "ApplicationId {} does not match the KMS counted id {} ({}), which belongs to {}",
            req.app_id, req.kms_id, k.name, k.app
        )),
        Some(_) => {}
    }
    match parse(&req.sku_id).and_then(|g| kms::products::sku(&g)) {
        None => issues.push(format!("unknown SKU {}", req.sku_id)),
        Some(s) if app_id.is_some_and(|a| a != s.app) => issues.push(format!(
            "SKU {} ({}) belongs to ApplicationId {}, not {}",
            req.sku_id, s.name, s.app, req.app_id
        )),
        Some(_) => {}
    }
    issues
}

/// Every server address seen with KMS traffic or a KMS bind.
pub fn kms_servers(state: &State) -> BTreeSet<Endpoint> {
    let mut v: BTreeSet<Endpoint> = state.hosts.keys().copied().collect();
    v.extend(state.servers.iter().filter(|(_, s)| s.kms).map(|(e, _)| *e));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine gives a request's client time twice: as text and as seconds
    /// (`KmsRequestInfo::client_secs`); the analysis uses the seconds, and parses the text only
    /// for hand-built events. Both must agree over the whole FILETIME range.
    #[test]
    fn client_secs_agree_with_the_text() {
        use crate::time::{filetime_rfc3339, filetime_unix_secs};
        const EPOCH: u64 = 116_444_736_000_000_000;
        const S: u64 = 10_000_000;
        let mut fts = vec![
            0,
            1,
            S - 1,
            EPOCH - 1,
            EPOCH,
            EPOCH + 1,
            EPOCH + 59 * S + (S - 1),
            EPOCH + 951_782_400 * S,     // 2000-02-29
            EPOCH - 2_203_891_200 * S,   // 1900-03-01 (no leap day in 1900)
            EPOCH + 1_795_447_114 * S,   // 2026-11-23T15:18:34Z
            EPOCH + 253_402_300_799 * S, // 9999-12-31T23:59:59Z: the last 4-digit year
            EPOCH + 253_402_300_800 * S, // 10000-01-01T00:00:00Z
            u64::MAX,
        ];
        // And a spread of others (a fixed LCG: the same values every run).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            fts.push(x);
            fts.push(EPOCH + (x >> 8) % (200 * 365 * 86_400 * S));
        }
        for ft in fts {
            let text = TimeText::display(&filetime_rfc3339(ft));
            assert_eq!(
                parse_rfc3339_secs(&text),
                Some(filetime_unix_secs(ft)),
                "{ft} {text}"
            );
        }
        // Against values worked out independently (Python's calendar.timegm).
        assert_eq!(filetime_unix_secs(0), -11_644_473_600);
        assert_eq!(
            parse_rfc3339_secs("2026-11-23T15:18:34Z"),
            Some(1_795_447_114)
        );
        assert_eq!(
            parse_rfc3339_secs("10000-01-01T00:00:00Z"),
            Some(253_402_300_800)
        );
        assert_eq!(
            TimeText::display(&filetime_rfc3339(u64::MAX)).as_str(),
            "60056-05-28T05:36:10Z"
        );
    }

    /// A request with the seconds and the CMID's GUID (as the engine builds it) and the same
    /// request with the texts only (hand-built) leave the same client state.
    #[test]
    fn carried_values_and_texts_agree() {
        let guid = Guid([
            0x3c, 0x2d, 0x1e, 0x0f, 0x5a, 0x4b, 0x78, 0x69, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
            0xe1, 0xf0,
        ]);
        let cmid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(guid.inline_text().as_str(), cmid);
        let observe = |carried: bool, time: &str, secs: i64| {
            let mut st = State::default();
            let req = KmsRequestInfo {
                cmid: cmid.into(),
                kms_id: "k".into(),
                client_time: time.into(),
                cmid_guid: carried.then_some(guid),
                client_secs: carried.then_some(secs),
                ..KmsRequestInfo::default()
            };
            let server = "192.0.2.2".parse().unwrap();
            let ts = Ts::from_parts(1_795_447_000, 0);
            st.observe(&kms_event(
                req,
                ts,
                7,
                server,
                ("unanswered", "no_response"),
            ));
            let (key, c) = st.clients.iter().next().unwrap();
            (
                key.clone(),
                c.skew.as_ref().map(|s| (s.0, s.2.to_string())),
                c.failures.iter().map(|f| f.client_secs).collect::<Vec<_>>(),
            )
        };
        for (time, secs) in [
            ("2026-11-23T15:18:34Z", 1_795_447_114),
            ("1601-01-01T00:00:00Z", -11_644_473_600),
            ("60056-05-28T05:36:10Z", filetime_unix_secs_max()),
        ] {
            let carried = observe(true, time, secs);
            assert_eq!(carried, observe(false, time, secs), "{time}");
            assert_eq!(carried.0, CmidKey::new(cmid));
            assert_eq!(carried.1.unwrap().0, secs - 1_795_447_000);
        }
    }

    /// The clients' copy of their groups' CMID sets ([`ClientState::counted_in`]) keeps the
    /// sets and the counts of validly answered CMIDs what searching the sets at every call
    /// gives: CMIDs in several groups and hosts, unanswered then answered, in more groups than
    /// the copy holds.
    #[test]
    fn counted_in_mirrors_the_group_sets() {
        let call = |st: &mut State, cmid: u8, kms: usize, host: u8, valid: bool, frame: u64| {
            let g = Guid([cmid; 16]);
            let req = KmsRequestInfo {
                cmid: g.inline_text(),
                cmid_guid: Some(g),
                kms_id: format!("kms-{kms}").into(),
                ..KmsRequestInfo::default()
            };
            let ts = Ts::from_parts(1_700_000_000 + frame as i64, 0);
            let server = std::net::IpAddr::from([192, 0, 2, host]);
            let status = if valid {
                ("answered", "activated")
            } else {
                ("unanswered", "no_response")
            };
            let mut ev = kms_event(req, ts, frame, server, status);
            if let Body::Kms(kc) = &mut ev.body {
                kc.integrity.response = valid.then_some("valid");
            }
            st.observe(&ev);
        };
        let mut st = State::default();
        // Expected: per (host, group) the set of CMIDs and which were answered validly.
        let mut expect: BTreeMap<(u8, usize), BTreeMap<u8, bool>> = BTreeMap::new();
        let mut x = 1u32;
        for frame in 1..3000u64 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let cmid = (x >> 16) as u8 % 6;
            let kms = (x >> 8) as usize % (MAX_CLIENT_FACTS + 4);
            let host = 10 + (x >> 24) as u8 % 2;
            let valid = (x >> 4).is_multiple_of(3);
            call(&mut st, cmid, kms, host, valid, frame);
            *expect
                .entry((host, kms))
                .or_default()
                .entry(cmid)
                .or_default() |= valid;
        }
        for ((host, kms), cmids) in &expect {
            let ep = Endpoint {
                ip: std::net::IpAddr::from([192, 0, 2, *host]),
                port: 1688,
            };
            let app = st.hosts[&ep].apps.get(&format!("kms-{kms}")).unwrap();
            let got: BTreeMap<u8, bool> = app
                .cmids
                .iter()
                .map(|(k, v)| match k {
                    CmidKey::Guid(g) => ((g & 0xff) as u8, *v),
                    CmidKey::Text(_) => unreachable!(),
                })
                .collect();
            assert_eq!(&got, cmids, "{host} {kms}");
            assert_eq!(app.answered_cmids, cmids.values().filter(|v| **v).count());
        }
    }

    /// A KMS call of `cmid` (a GUID of that byte) from `ws` to host `192.0.2.<host>`, product
    /// group `kms`.
    fn kms_call(cmid: u8, ws: &str, host: [u8; 2], kms: &str, frame: u64) -> Event {
        let g = Guid([cmid; 16]);
        let req = KmsRequestInfo {
            cmid: g.inline_text(),
            cmid_guid: Some(g),
            kms_id: kms.into(),
            workstation: ws.into(),
            ..KmsRequestInfo::default()
        };
        let ts = Ts::from_parts(1_700_000_000 + frame as i64, 0);
        let server = std::net::IpAddr::from([192, 0, host[0], host[1]]);
        kms_event(req, ts, frame, server, ("answered", "activated"))
    }

    /// The `kms` event of a call with request `req` from 192.0.2.1:50000 to `server`:1688, with
    /// `(status, outcome)`.
    fn kms_event(
        req: KmsRequestInfo,
        ts: Ts,
        frame: u64,
        server: std::net::IpAddr,
        (status, outcome): (&'static str, &'static str),
    ) -> Event {
        Event {
            ts,
            event: "kms",
            frame,
            client: Some(Endpoint {
                ip: "192.0.2.1".parse().unwrap(),
                port: 50000,
            }),
            server: Some(Endpoint {
                ip: server,
                port: 1688,
            }),
            body: Body::Kms(Box::new(KmsCall {
                status,
                outcome,
                request: Some(req),
                ..KmsCall::default()
            })),
            source: "t".into(),
        }
    }

    /// The client is searched at the start of a call but created only where the call reaches
    /// the client facts: a call that stops at a full host or group table leaves no client.
    #[test]
    fn no_client_for_a_call_that_stops_early() {
        let mut st = State::default();
        let mut frame = 0;
        for i in 0..MAX_HOSTS {
            frame += 1;
            let host = [(i >> 8) as u8, i as u8];
            st.observe(&kms_call(1, "ws", host, "k", frame));
        }
        assert_eq!(st.hosts.len(), MAX_HOSTS);
        assert_eq!(st.clients.len(), 1);
        st.observe(&kms_call(2, "ws", [255, 255], "k", frame + 1));
        assert_eq!((st.hosts_untracked, st.clients.len()), (1, 1));
        // A full group table of a known host.
        let mut st = State::default();
        for i in 0..MAX_APPS_PER_HOST {
            frame += 1;
            st.observe(&kms_call(1, "ws", [0, 1], &format!("k{i:03}"), frame));
        }
        st.observe(&kms_call(3, "ws", [0, 1], "new", frame + 1));
        assert_eq!(st.clients.len(), 1);
        assert!(!st.clients.contains_key(&CmidKey::from_guid(&Guid([3; 16]))));
        // A known group: the new client is created.
        st.observe(&kms_call(3, "ws", [0, 1], "k000", frame + 2));
        assert_eq!(st.clients.len(), 2);
    }

    /// The case-insensitive workstation names of a client (`names`) are what searching the
    /// labels at every call gives, also once more names were seen than are kept (the call skips
    /// the search for a repeated name only while all fit).
    #[test]
    fn client_names_match_a_search_at_every_call() {
        use crate::analysis::evidence::MAX_EVIDENCE_LABELS;
        let mut st = State::default();
        let (mut count, mut labels, mut more) = (0u64, Vec::<String>::new(), false);
        let mut x = 7u32;
        for frame in 1..400u64 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Runs of one name, of 12 names (more than are kept) in two cases.
            let n = (x >> 16) % 12;
            let ws = if (x >> 8).is_multiple_of(2) {
                format!("WS-{n}")
            } else {
                format!("ws-{n}")
            };
            for _ in 0..=(x >> 4) % 3 {
                st.observe(&kms_call(1, &ws, [0, 1], "k", frame));
                let lower = ws.to_lowercase();
                if !labels.contains(&lower) {
                    count += 1;
                    if labels.len() < MAX_EVIDENCE_LABELS {
                        labels.push(lower);
                    } else {
                        more = true;
                    }
                }
            }
        }
        let c = st.clients.values().next().unwrap();
        assert!(more);
        assert_eq!(
            (c.names.count, &c.names.labels[..], c.names.more_labels),
            (count, &labels[..], more)
        );
        assert_eq!(c.names_more, c.names.more_labels);
    }

    /// The packing [`ClientState`]'s comments describe (64-bit targets): the fields of a call in
    /// its first lines, the two per-call evidence lists starting lines of their own.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn client_state_hot_lines() {
        use std::mem::offset_of;
        assert_eq!(std::mem::align_of::<ClientState>(), 64);
        assert_eq!(offset_of!(ClientState, skew_evidence), 7 * 64);
        assert_eq!(offset_of!(ClientState, addr_overlap), 9 * 64);
        for hot in [
            offset_of!(ClientState, last_success),
            offset_of!(ClientState, skew_secs),
            offset_of!(ClientState, last_client),
            offset_of!(ClientState, discovery_snapshot),
        ] {
            assert!(hot < 7 * 64);
        }
    }

    fn filetime_unix_secs_max() -> i64 {
        crate::time::filetime_unix_secs(u64::MAX)
    }

    /// The key made from a decoded GUID is the key of its text (and so orders as the text).
    #[test]
    fn cmid_key_from_guid() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut keys = Vec::new();
        for _ in 0..500 {
            let mut b = [0u8; 16];
            for chunk in b.chunks_mut(8) {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1442695040888963407);
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            let g = Guid(b);
            let text = g.inline_text();
            assert_eq!(CmidKey::from_guid(&g), CmidKey::new(&text), "{text}");
            keys.push((CmidKey::from_guid(&g), text.to_string()));
        }
        keys.push((CmidKey::from_guid(&Guid::ZERO), Guid::ZERO.text()));
        keys.push((
            CmidKey::from_guid(&Guid([0xff; 16])),
            Guid([0xff; 16]).text(),
        ));
        for (a, ta) in &keys {
            for (b, tb) in keys.iter().take(40) {
                assert_eq!(a.cmp(b), ta.cmp(tb), "{ta} {tb}");
            }
        }
    }

    #[test]
    fn text_eq_and_cmp_agree_with_str() {
        let texts = [
            "",
            "a",
            "a\u{0}",
            "a\u{0}b",
            "a\u{1}",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghj",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1",
            "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "05426-00206-271-298891-03-1033-9600.0000-3352026",
            "05426-00206-271-298891-03-1033-9600.0000-3352027",
            "\u{e9}t\u{e9}",
            "abcdefgh\u{e9}",
            "abcdefghabcdefgh",
            "abcdefghabcdefg",
            "\u{ff}bcdefgh",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(text_cmp(a, b), a.cmp(b), "{a} {b}");
                assert_eq!(text_eq(a, b), a == b, "{a} {b}");
                // Another copy: not the same pointer.
                let copy = String::from(b);
                assert_eq!(text_eq(a, &copy), a == b, "{a} {b}");
            }
        }
    }

    /// A [`SmallMap`] finds, inserts and iterates as a `BTreeMap` does, whether it scans or
    /// bisects, from its memo or not.
    #[test]
    fn small_map_is_an_ordered_map() {
        let mut m: SmallMap<String, u32> = SmallMap::default();
        let mut b: BTreeMap<String, u32> = BTreeMap::new();
        let mut x = 7u32;
        for round in 0..400u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Keys of several lengths, the same ones often again.
            let mut key = format!("k{}", (x >> 8) % 40).repeat(1 + (x as usize >> 20) % 3);
            // Keys alike in their first eight bytes: a trailing zero byte, a shared beginning.
            match (x >> 12) % 8 {
                0 => key.push('\0'),
                1 => key.insert_str(0, "shared-prefix-"),
                _ => {}
            }
            match (m.get_mut(&key), b.get_mut(&key)) {
                (Some(v), Some(w)) => {
                    *v += round;
                    *w += round;
                }
                (None, None) => {
                    m.insert_new(key.clone(), round);
                    b.insert(key.clone(), round);
                }
                other => panic!("{key}: {other:?}"),
            }
            assert_eq!(m.get(&key), b.get(&key));
            assert!(!m.contains_key("absent"));
        }
        assert!(m.len() > SMALL_MAP_SCAN);
        let pairs: Vec<(&String, &u32)> = m.iter().collect();
        assert_eq!(pairs, b.iter().collect::<Vec<_>>());
        assert_eq!((&m).into_iter().count(), b.len());
        assert!(m.keys().eq(b.keys()) && m.values().eq(b.values()));
        let mut small: SmallMap<Cow<'static, str>, u64> = SmallMap::default();
        for k in ["b", "a", "c"] {
            small.insert_new(Cow::Borrowed(k), 1);
        }
        *small.get_or_insert_with("a", || unreachable!()).unwrap() += 1;
        *small
            .get_or_insert_with("other", || (Cow::Borrowed("other"), 0))
            .unwrap() += 1;
        let got: Vec<(&str, u64)> = small.iter().map(|(k, v)| (&**k, *v)).collect();
        assert_eq!(got, [("a", 2), ("b", 1), ("c", 1), ("other", 1)]);
    }

    #[test]
    fn short_text_inline_and_heap() {
        let mut t = ShortText::from("PC-1");
        assert!(t.is_inline());
        assert_eq!(t, "PC-1");
        let long = "a-workstation-name-longer-than-32.example.com";
        t.set(long);
        assert!(!t.is_inline());
        assert_eq!(t.to_string(), long);
        t.set("x");
        assert_eq!(t.as_str(), "x");
        assert!(t.is_inline());
        let mut set = SortedSet::default();
        for w in ["b", long, "a", "b"] {
            set.insert(ShortText::from(w));
        }
        assert!(set.contains("a") && set.contains(long) && !set.contains("c"));
        let order: Vec<&str> = set.iter().map(ShortText::as_str).collect();
        assert_eq!(order, ["a", long, "b"]);
    }

    #[test]
    fn rfc3339_parse() {
        assert_eq!(parse_rfc3339_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_secs("2026-11-23T15:18:34Z"),
            Some(1_795_447_114)
        );
        assert_eq!(parse_rfc3339_secs("2026-11-23T15:18:34"), None);
        assert_eq!(parse_rfc3339_secs("2026-13-23T15:18:34Z"), None);
        assert_eq!(parse_rfc3339_secs("2026-11-23T24:18:34Z"), None);
        assert_eq!(parse_rfc3339_secs("2026-11-23T15:1a:34Z"), None);
        assert_eq!(
            parse_rfc3339_secs("2026-11-23T15:18:60Z"),
            parse_rfc3339_secs("2026-11-23T15:19:00Z")
        );
        // The fixed form and the general path agree (fractions and 5-digit years: general only).
        assert_eq!(
            parse_rfc3339_secs("2026-11-23T15:18:34.5Z"),
            parse_rfc3339_secs("2026-11-23T15:18:34Z")
        );
        assert_eq!(
            parse_rfc3339_fixed(b"1601-01-01T00:00:00Z"),
            Some(-11_644_473_600)
        );
        for ip in [
            "0.0.0.0",
            "198.51.100.255",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
        let mut names = Evidence::default();
        names.label("pc-01.corp");
        assert!(has_lowercase_label(&names, "PC-01.Corp"));
        assert!(!has_lowercase_label(&names, "PC-01.Corp2"));
        assert!(parse_rfc3339_secs("60056-05-28T05:36:10Z").is_some());
    }

    #[test]
    fn cmid_keys() {
        let a = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let b = "ff1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert!(matches!(CmidKey::new(a), CmidKey::Guid(_)));
        assert_eq!(CmidKey::new(a).to_string(), a);
        // Anything but canonical lower-case text is kept as text, and the order is the text's.
        for other in [
            "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "0f1e2d3c4b5a-6978-8796-a5b4c3d2e1f0-",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "",
        ] {
            let k = CmidKey::new(other);
            assert!(matches!(k, CmidKey::Text(_)), "{other}");
            assert_eq!(k.to_string(), other);
            assert_eq!(k.cmp(&CmidKey::new(a)), other.cmp(a));
        }
        assert_eq!(CmidKey::new(a).cmp(&CmidKey::new(b)), a.cmp(b));
        // The eight-at-a-time digits against a digit-at-a-time reading, for every byte value at
        // every digit position.
        let reference = |t: &[u8]| -> Option<u128> {
            let mut v = 0u128;
            for (i, &c) in t.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    if c != b'-' {
                        return None;
                    }
                    continue;
                }
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                v = (v << 4) | u128::from(d);
            }
            Some(v)
        };
        for base in [
            a.as_bytes(),
            b.as_bytes(),
            b"0123abcd-ef45-6789-0aaf-ff09fa00e19b",
        ] {
            assert_eq!(guid_bits(base), reference(base));
            for pos in 0..36 {
                for c in 0..=255u8 {
                    let mut t = base.to_vec();
                    t[pos] = c;
                    assert_eq!(guid_bits(&t), reference(&t), "{pos} {c}");
                }
            }
        }
        assert_eq!(
            CmidKey::new("00000000-0000-0000-0000-00000000000a")
                .cmp(&CmidKey::new("00000000-0000-0000-0000-000000000009")),
            std::cmp::Ordering::Greater
        );
    }
}
