//! Link, IP, TCP and UDP headers into one borrowed view of a packet ([`Decoded`]).
//!
//! Link types: Ethernet II with any mix of up to [`MAX_VLAN_TAGS`] 802.1Q / 802.1ad / QinQ tags,
//! Linux cooked capture v1 and v2, raw IP (LINKTYPE_RAW and DLT_RAW 12/14, IPv4 228, IPv6 229),
//! BSD NULL and OpenBSD LOOP with the address family in either byte order. IPv4 (options, total
//! length 0 as written by segmentation offload) and IPv6 with extension headers (hop-by-hop,
//! routing, destination options, mobility, HIP, shim6, experimental, authentication header).
//! IPv4 and IPv6 fragments are reassembled within named limits (RFC 791, RFC 8200 §4.5), keyed by
//! addresses, identification and protocol; the reassembled datagram is returned borrowed from the
//! decoder's buffer. Checksums are not validated (loopback captures carry offload checksums).
//!
//! Anomalies: `decode` returns one [`DecodeAnomaly`] for the packet it could not decode; other
//! findings (fragment overlap, datagrams timed out or evicted) are queued and must be drained with
//! [`Decoder::take_anomalies`] after each call, and after [`Decoder::finish`] at the end of a
//! source. Decode with one `Decoder` per source.
//!
//! The common path (no fragments) does not allocate.

use std::net::IpAddr;

use etherparse::err::{LenError, ipv4, ipv6, tcp};
use etherparse::{
    Ethernet2Slice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, SingleVlanSlice, TcpSlice, UdpSlice,
};

use crate::capture::{LinkType, RawPacket};
use crate::time::Ts;

/// VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, legacy QinQ 0x9100/0x9200) accepted in front of
/// the network layer; more is reported as `too_many_vlan_tags`.
pub const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers followed before the transport header (RFC 8200 sets no limit; real
/// packets carry a handful); more is reported as `bad_ipv6_extension`.
pub const MAX_IPV6_EXT_HEADERS: usize = 16;
/// Datagrams being reassembled at once per decoder; the oldest is dropped (with a
/// `reassembly_limit` anomaly) to make room.
pub const MAX_FRAG_DATAGRAMS: usize = 64;
/// Bytes buffered for reassembly at once per decoder (the oldest datagrams are dropped to make
/// room, with a `reassembly_limit` anomaly).
pub const MAX_FRAG_BYTES: usize = 4 << 20;
/// Largest reassembled datagram payload: the IPv4 total length / IPv6 payload length limit
/// (RFC 791, RFC 8200; jumbograms are not fragmented).
pub const MAX_REASSEMBLED_LEN: usize = 65_535;
/// Packet-time after which an incomplete datagram is dropped (`ip_fragment_timeout`): Linux's
/// `ipfrag_time` default, 30 s (RFC 8200 §4.5 allows 60 s for IPv6).
pub const FRAG_TIMEOUT_NS: i64 = 30_000_000_000;
/// Queued anomalies kept between two `take_anomalies` calls; further ones are counted and
/// reported in one `anomalies_suppressed` anomaly.
pub const MAX_PENDING_ANOMALIES: usize = 256;

/// A packet the decoder could not decode, or something odd it saw; meant to become an `anomaly`
/// event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{layer} {kind}: {detail}")]
pub struct DecodeAnomaly {
    /// `link`, `ip`, `tcp` or `udp`.
    pub layer: &'static str,
    /// snake_case kind: `unknown_link_type`, `truncated_packet`, `bad_ip_header`,
    /// `bad_ipv6_extension`, `bad_tcp_header`, `too_many_vlan_tags`, `ip_fragment`,
    /// `ip_fragment_overlap`, `ip_fragment_timeout`, `ip_fragment_incomplete`,
    /// `reassembly_limit`, `anomalies_suppressed`.
    pub kind: &'static str,
    /// Human-readable detail, one line.
    pub detail: String,
}

fn anomaly(layer: &'static str, kind: &'static str, detail: String) -> DecodeAnomaly {
    DecodeAnomaly {
        layer,
        kind,
        detail,
    }
}

fn cut(layer: &'static str, what: &str, e: &LenError) -> DecodeAnomaly {
    anomaly(
        layer,
        "truncated_packet",
        format!("{what} cut: {} of {} bytes captured", e.len, e.required_len),
    )
}

/// A TCP segment (RFC 9293 header fields used downstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    /// The ACK flag (`ack` is the acknowledgment number).
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub window: u16,
    /// Segment payload as captured (shorter than sent when `Decoded::truncated`).
    pub payload: &'a [u8],
}

/// A UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload bounded by the UDP length (or what was captured).
    pub payload: &'a [u8],
}

/// Transport layer of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    /// Any other IP protocol (ICMP, ESP, ...), by number.
    Other {
        protocol: u8,
    },
}

/// One IP packet (or reassembled datagram), headers decoded, payload borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
    /// The capture holds less than the IP/UDP header says was sent (snap length): the payload
    /// is cut short.
    pub truncated: bool,
}

/// What the link layer carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Net {
    V4,
    V6,
    /// Raw IP: version from the first nibble.
    Any,
}

/// Reassembly key: addresses, identification and protocol (RFC 791 / RFC 8200).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

/// Bitmap words covering every 8-byte fragment block of a 64 KiB datagram.
const BLOCK_WORDS: usize = 65_536 / 8 / 64;

struct FragEntry {
    key: FragKey,
    first: Ts,
    data: Vec<u8>,
    have: [u64; BLOCK_WORDS],
    blocks: usize,
    total: Option<usize>,
    /// Already reported as unusable; later fragments are absorbed silently.
    broken: bool,
}

impl FragEntry {
    fn has(&self, b: usize) -> bool {
        self.have
            .get(b / 64)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
    fn set(&mut self, b: usize) {
        if let Some(w) = self.have.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }
    fn describe(&self) -> String {
        let have: usize = self
            .have
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            * 8;
        let of = match self.total {
            Some(t) => t.to_string(),
            None => "?".into(),
        };
        format!(
            "{} {} -> {} id {:#x} proto {}: about {} of {} bytes received",
            if self.key.src.is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            },
            self.key.src,
            self.key.dst,
            self.key.id,
            self.key.proto,
            have.min(self.data.len()),
            of
        )
    }
}

/// Packet decoder with IP reassembly state. One per source.
#[derive(Default)]
pub struct Decoder {
    frags: Vec<FragEntry>,
    spare: Vec<Vec<u8>>,
    frag_bytes: usize,
    out: Vec<u8>,
    pending: Vec<DecodeAnomaly>,
    suppressed: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("datagrams_in_reassembly", &self.frags.len())
            .field("bytes_in_reassembly", &self.frag_bytes)
            .field("pending_anomalies", &self.pending.len())
            .finish()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one packet. `Ok(None)`: not IP (ARP, LLDP, ...), or a fragment held for
    /// reassembly. Drain [`Decoder::take_anomalies`] afterwards.
    pub fn decode<'a>(
        &'a mut self,
        pkt: &RawPacket<'a>,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        if let Some(d) = self.decode_fast(pkt) {
            return Ok(Some(d));
        }
        self.decode_slow(pkt)
    }

    /// [`Decoder::decode`] of a packet [`Decoder::decode_fast`] has already declined (so that the
    /// caller that tried it does not try it again).
    pub fn decode_slow<'a>(
        &'a mut self,
        pkt: &RawPacket<'a>,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        if !self.frags.is_empty() {
            self.expire(pkt.ts);
        }
        self.decode_general(pkt)
    }

    /// [`Decoder::decode`] of the common packet (see [`fast_ethernet`]) when it is one, without
    /// touching the decoder; `None` otherwise (then call `decode`). Inlined into the caller so
    /// that the decoded headers need not be copied through a `Result`.
    #[inline]
    pub fn decode_fast<'a>(&self, pkt: &RawPacket<'a>) -> Option<Decoded<'a>> {
        // With datagrams in reassembly, `decode` first expires the old ones (anomalies).
        if pkt.link == LinkType::ETHERNET && self.frags.is_empty() {
            fast_ethernet(pkt.data)
        } else {
            None
        }
    }

    /// [`Decoder::decode`] without the fast path for the common packet.
    fn decode_general<'a>(
        &'a mut self,
        pkt: &RawPacket<'a>,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        let short = (pkt.data.len() as u64) < u64::from(pkt.orig_len);
        let Some((net, l3)) = link(pkt.link, pkt.data)? else {
            return Ok(None);
        };
        let net = match net {
            Net::Any => match l3.first().map(|b| b >> 4) {
                Some(4) => Net::V4,
                Some(6) => Net::V6,
                Some(v) => {
                    return Err(anomaly(
                        "ip",
                        "bad_ip_header",
                        format!("raw IP packet with IP version {v}"),
                    ));
                }
                None => {
                    return Err(anomaly(
                        "ip",
                        "truncated_packet",
                        "raw IP packet with no bytes captured".into(),
                    ));
                }
            },
            n => n,
        };
        match net {
            Net::V6 => self.ipv6(l3, short, pkt.ts),
            _ => self.ipv4(l3, short, pkt.ts),
        }
    }

    /// True when [`Decoder::take_anomalies`] has something to give (cheap; for the hot path).
    pub fn has_queued_anomalies(&self) -> bool {
        !self.pending.is_empty() || self.suppressed > 0
    }

    /// Anomalies queued by earlier calls (fragment overlaps, timeouts, evictions).
    pub fn take_anomalies(&mut self) -> std::vec::Drain<'_, DecodeAnomaly> {
        if self.suppressed > 0 {
            let n = std::mem::take(&mut self.suppressed);
            self.pending.push(anomaly(
                "ip",
                "anomalies_suppressed",
                format!("{n} further decoder anomalies were not reported individually"),
            ));
        }
        self.pending.drain(..)
    }

    /// At the end of a source: reports datagrams still incomplete and drops them.
    pub fn finish(&mut self) {
        let frags = std::mem::take(&mut self.frags);
        for e in frags {
            if !e.broken {
                let d = e.describe();
                self.push(anomaly(
                    "ip",
                    "ip_fragment_incomplete",
                    format!("capture ended with datagram incomplete: {d}; discarded"),
                ));
            }
            self.recycle(e.data);
        }
        self.frag_bytes = 0;
    }

    fn push(&mut self, a: DecodeAnomaly) {
        if self.pending.len() < MAX_PENDING_ANOMALIES {
            self.pending.push(a);
        } else {
            self.suppressed += 1;
        }
    }

    fn recycle(&mut self, mut v: Vec<u8>) {
        if self.spare.len() < MAX_FRAG_DATAGRAMS && v.capacity() > 0 {
            v.clear();
            self.spare.push(v);
        }
    }

    fn remove_entry(&mut self, idx: usize) -> FragEntry {
        let e = self.frags.swap_remove(idx);
        self.frag_bytes = self.frag_bytes.saturating_sub(e.data.len());
        e
    }

    fn expire(&mut self, now: Ts) {
        let mut i = 0;
        while i < self.frags.len() {
            let age = now.0.saturating_sub(self.frags[i].first.0);
            if age > FRAG_TIMEOUT_NS {
                let e = self.remove_entry(i);
                if !e.broken {
                    let d = e.describe();
                    self.push(anomaly(
                        "ip",
                        "ip_fragment_timeout",
                        format!(
                            "datagram incomplete after {} s: {d}; discarded",
                            FRAG_TIMEOUT_NS / 1_000_000_000
                        ),
                    ));
                }
                self.recycle(e.data);
            } else {
                i += 1;
            }
        }
    }

    fn ipv4<'a>(
        &'a mut self,
        b: &'a [u8],
        short: bool,
        ts: Ts,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        let h = Ipv4HeaderSlice::from_slice(b).map_err(|e| match e {
            ipv4::HeaderSliceError::Len(l) => cut("ip", "IPv4 header", &l),
            ipv4::HeaderSliceError::Content(c) => {
                anomaly("ip", "bad_ip_header", format!("IPv4 header: {c}"))
            }
        })?;
        let hl = h.slice().len();
        let total = usize::from(h.total_len());
        // total < hl (0 under segmentation offload): trust the capture.
        let (payload, incomplete, known) = if total < hl {
            (b.get(hl..).unwrap_or(&[]), false, false)
        } else if b.len() < total {
            (b.get(hl..).unwrap_or(&[]), true, true)
        } else {
            (b.get(hl..total).unwrap_or(&[]), false, true)
        };
        let truncated = incomplete || (!known && short);
        let src = IpAddr::V4(h.source_addr());
        let dst = IpAddr::V4(h.destination_addr());
        let proto = h.protocol().0;
        let offset = usize::from(h.fragments_offset().value()) * 8;
        if h.more_fragments() || offset != 0 {
            let key = FragKey {
                src,
                dst,
                id: u32::from(h.identification()),
                proto,
            };
            return self.fragment(key, offset, h.more_fragments(), payload, truncated, ts);
        }
        ipv4_upper(src, dst, proto, payload, truncated).map(Some)
    }

    fn ipv6<'a>(
        &'a mut self,
        b: &'a [u8],
        short: bool,
        ts: Ts,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        let h = Ipv6HeaderSlice::from_slice(b).map_err(|e| match e {
            ipv6::HeaderSliceError::Len(l) => cut("ip", "IPv6 header", &l),
            ipv6::HeaderSliceError::Content(c) => {
                anomaly("ip", "bad_ip_header", format!("IPv6 header: {c}"))
            }
        })?;
        let plen = usize::from(h.payload_length());
        let rest = b.get(40..).unwrap_or(&[]);
        // Payload length 0: jumbogram or offload; trust the capture.
        let (payload, incomplete, known) = if plen == 0 {
            (rest, false, false)
        } else if rest.len() < plen {
            (rest, true, true)
        } else {
            (rest.get(..plen).unwrap_or(&[]), false, true)
        };
        let truncated = incomplete || (!known && short);
        let src = IpAddr::V6(h.source_addr());
        let dst = IpAddr::V6(h.destination_addr());
        match ipv6_exts(h.next_header().0, payload, true)? {
            Ext::Upper(proto, p) => transport(src, dst, proto, p, truncated).map(Some),
            Ext::Fragment {
                next,
                offset,
                more,
                id,
                data,
            } => {
                let key = FragKey {
                    src,
                    dst,
                    id,
                    proto: next,
                };
                self.fragment(key, offset, more, data, truncated, ts)
            }
        }
    }

    /// Adds one fragment; returns the datagram when it completes.
    fn fragment<'a>(
        &'a mut self,
        key: FragKey,
        offset: usize,
        more: bool,
        data: &[u8],
        truncated: bool,
        ts: Ts,
    ) -> Result<Option<Decoded<'a>>, DecodeAnomaly> {
        let end = offset + data.len();
        let idx = match self.frags.iter().position(|e| e.key == key) {
            Some(i) => i,
            None => self.new_entry(key, ts),
        };
        if self.frags[idx].broken {
            return Ok(None);
        }
        let problem = if truncated {
            Some("fragment cut by the capture's snap length")
        } else if end > MAX_REASSEMBLED_LEN {
            Some("fragment ends beyond the 65535-byte datagram limit")
        } else if more && !data.len().is_multiple_of(8) {
            Some("non-final fragment length is not a multiple of 8")
        } else {
            let e = &self.frags[idx];
            match (e.total, more) {
                (Some(t), false) if t != end => Some("conflicting final fragments"),
                (Some(t), true) if end > t => Some("fragment extends past the final fragment"),
                (None, false) if e.data.len() > end => {
                    Some("final fragment ends before data already received")
                }
                _ => None,
            }
        };
        if let Some(p) = problem {
            let e = &mut self.frags[idx];
            e.broken = true;
            let d = e.describe();
            return Err(anomaly(
                "ip",
                "ip_fragment",
                format!(
                    "{p} (offset {offset}, {} bytes): {d}; datagram not reassembled",
                    data.len()
                ),
            ));
        }
        // Room for the data.
        let grow = end.saturating_sub(self.frags[idx].data.len());
        if grow > 0 {
            self.frag_bytes += grow;
            self.frags[idx].data.resize(end, 0);
        }
        let mut conflict = false;
        {
            let e = &mut self.frags[idx];
            let mut lo = offset;
            while lo < end {
                let b = lo / 8;
                let hi = ((b + 1) * 8).min(end);
                let src = data.get(lo - offset..hi - offset).unwrap_or(&[]);
                if e.has(b) {
                    if e.data.get(lo..hi) != Some(src) {
                        conflict = true;
                    }
                } else {
                    if let Some(dst) = e.data.get_mut(lo..hi) {
                        dst.copy_from_slice(src);
                    }
                    e.set(b);
                    e.blocks += 1;
                }
                lo = hi;
            }
            if !more {
                e.total = Some(end);
            }
        }
        if conflict {
            let d = self.frags[idx].describe();
            self.push(anomaly(
                "ip",
                "ip_fragment_overlap",
                format!("overlapping fragments carry different data: {d}; first copy kept"),
            ));
        }
        self.enforce_bytes(idx);
        let Some(idx) = self.frags.iter().position(|e| e.key == key) else {
            return Ok(None);
        };
        let complete = {
            let e = &self.frags[idx];
            matches!(e.total, Some(t) if e.blocks >= t.div_ceil(8))
        };
        if !complete {
            return Ok(None);
        }
        let e = self.remove_entry(idx);
        let total = e.total.unwrap_or(0);
        let old = std::mem::replace(&mut self.out, e.data);
        self.recycle(old);
        self.out.truncate(total);
        let this: &'a Decoder = self;
        let payload: &'a [u8] = &this.out;
        let decoded = if key.src.is_ipv4() {
            ipv4_upper(key.src, key.dst, key.proto, payload, false)?
        } else {
            match ipv6_exts(key.proto, payload, false)? {
                Ext::Upper(proto, p) => transport(key.src, key.dst, proto, p, false)?,
                Ext::Fragment { .. } => {
                    return Err(anomaly(
                        "ip",
                        "ip_fragment",
                        "reassembled IPv6 datagram holds another fragment header".into(),
                    ));
                }
            }
        };
        Ok(Some(decoded))
    }

    /// Creates a reassembly entry, evicting the oldest when at the datagram limit.
    fn new_entry(&mut self, key: FragKey, ts: Ts) -> usize {
        if self.frags.len() >= MAX_FRAG_DATAGRAMS {
            self.evict_oldest(None, "datagrams");
        }
        let data = self.spare.pop().unwrap_or_default();
        self.frags.push(FragEntry {
            key,
            first: ts,
            data,
            have: [0; BLOCK_WORDS],
            blocks: 0,
            total: None,
            broken: false,
        });
        self.frags.len() - 1
    }

    /// Drops the oldest datagrams (other than `keep`) while over the byte limit.
    fn enforce_bytes(&mut self, keep: usize) {
        let keep_key = self.frags.get(keep).map(|e| e.key);
        while self.frag_bytes > MAX_FRAG_BYTES {
            if !self.evict_oldest(keep_key, "bytes") {
                break;
            }
        }
    }

    fn evict_oldest(&mut self, keep: Option<FragKey>, what: &str) -> bool {
        let victim = self
            .frags
            .iter()
            .enumerate()
            .filter(|(_, e)| Some(e.key) != keep)
            .min_by_key(|(_, e)| e.first)
            .map(|(i, _)| i);
        let Some(i) = victim else {
            return false;
        };
        let e = self.remove_entry(i);
        if !e.broken {
            let d = e.describe();
            let limit = if what == "bytes" {
                format!("{MAX_FRAG_BYTES} bytes")
            } else {
                format!("{MAX_FRAG_DATAGRAMS} datagrams")
            };
            self.push(anomaly(
                "ip",
                "reassembly_limit",
                format!("IP reassembly limit of {limit} reached; dropped oldest datagram: {d}"),
            ));
        }
        self.recycle(e.data);
        true
    }
}

/// The common packet without the general decoders: Ethernet II without VLAN tag, then an
/// IPv4 header (not a fragment, total length covering the header and fully captured) or an IPv6
/// header without extension headers (payload length non-zero and fully captured), then a
/// well-formed TCP header or a UDP header. `None` for anything else, which the general path
/// decodes (to the same result for the packets accepted here: the conditions are exactly those
/// under which it takes no other branch). Every packet goes through here, so it reads the
/// fixed-offset fields directly.
#[inline]
fn fast_ethernet(d: &[u8]) -> Option<Decoded<'_>> {
    let (eth, b) = d.split_at_checked(14)?;
    let (src, dst, proto, payload) = match u16::from_be_bytes([eth[12], eth[13]]) {
        0x0800 => {
            let h: &[u8; 20] = b.first_chunk()?;
            let hl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // Version 4, header at least 20 bytes, total length covering the header and
            // captured, no MF flag and fragment offset 0.
            if h[0] >> 4 != 4
                || hl < 20
                || total < hl
                || b.len() < total
                || h[6] & 0x3f != 0
                || h[7] != 0
            {
                return None;
            }
            let src = IpAddr::V4(std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            let dst = IpAddr::V4(std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            (src, dst, h[9], b.get(hl..total)?)
        }
        0x86dd => {
            let h: &[u8; 40] = b.first_chunk()?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || plen == 0 || b.len() < 40 + plen {
                return None;
            }
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&h[i..i + 16]);
                IpAddr::V6(std::net::Ipv6Addr::from(o))
            };
            (a(8), a(24), h[6], b.get(40..40 + plen)?)
        }
        _ => return None,
    };
    let transport = match proto {
        6 => {
            let t: &[u8; 20] = payload.first_chunk()?;
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < 20 {
                return None;
            }
            let flags = t[13];
            Transport::Tcp(TcpSegment {
                src_port: u16::from_be_bytes([t[0], t[1]]),
                dst_port: u16::from_be_bytes([t[2], t[3]]),
                seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
                ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
                syn: flags & 0x02 != 0,
                ack_flag: flags & 0x10 != 0,
                fin: flags & 0x01 != 0,
                rst: flags & 0x04 != 0,
                psh: flags & 0x08 != 0,
                window: u16::from_be_bytes([t[14], t[15]]),
                payload: payload.get(hl..)?,
            })
        }
        17 => {
            let u: &[u8; 8] = payload.first_chunk()?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            // As `UdpSlice::from_slice_lax`: the UDP length bounds the payload when it is
            // plausible; a length beyond the IP payload marks the datagram truncated.
            let end = if len < 8 || len > payload.len() {
                payload.len()
            } else {
                len
            };
            return Some(Decoded {
                src,
                dst,
                transport: Transport::Udp(UdpDatagram {
                    src_port: u16::from_be_bytes([u[0], u[1]]),
                    dst_port: u16::from_be_bytes([u[2], u[3]]),
                    payload: payload.get(8..end)?,
                }),
                truncated: len > payload.len(),
            });
        }
        _ => return None,
    };
    Some(Decoded {
        src,
        dst,
        transport,
        truncated: false,
    })
}

/// Link layer: what it carries and where the network layer starts. `None`: not IP.
fn link(lt: LinkType, d: &[u8]) -> Result<Option<(Net, &[u8])>, DecodeAnomaly> {
    match lt {
        LinkType::ETHERNET => {
            let eth = Ethernet2Slice::from_slice_without_fcs(d)
                .map_err(|e| cut("link", "Ethernet header", &e))?;
            let p = eth.payload();
            ether(p.ether_type.0, p.payload)
        }
        LinkType::LINUX_SLL => {
            let Some(h) = d.get(..16) else {
                return Err(short_link("Linux cooked (SLL) header", d.len(), 16));
            };
            ether(
                u16::from_be_bytes([h[14], h[15]]),
                d.get(16..).unwrap_or(&[]),
            )
        }
        LinkType::LINUX_SLL2 => {
            let Some(h) = d.get(..20) else {
                return Err(short_link("Linux cooked (SLL2) header", d.len(), 20));
            };
            ether(u16::from_be_bytes([h[0], h[1]]), d.get(20..).unwrap_or(&[]))
        }
        LinkType::RAW | LinkType::RAW_DLT12 | LinkType::RAW_DLT14 => Ok(Some((Net::Any, d))),
        LinkType::IPV4 => Ok(Some((Net::V4, d))),
        LinkType::IPV6 => Ok(Some((Net::V6, d))),
        LinkType::NULL | LinkType::LOOP => {
            let Some(h) = d.get(..4) else {
                return Err(short_link("loopback header", d.len(), 4));
            };
            let a = [h[0], h[1], h[2], h[3]];
            // Host byte order of the capturing machine (NULL) or network order (LOOP): the
            // family is small, so the smaller reading is the right one.
            let family = u32::from_le_bytes(a).min(u32::from_be_bytes(a));
            let rest = d.get(4..).unwrap_or(&[]);
            Ok(match family {
                2 => Some((Net::V4, rest)),
                // BSD 24, FreeBSD 28, Darwin 30, Windows/Npcap 23.
                23 | 24 | 28 | 30 => Some((Net::V6, rest)),
                _ => None,
            })
        }
        other => Err(anomaly(
            "link",
            "unknown_link_type",
            format!("link type {other} is not supported; packets on it are not decoded"),
        )),
    }
}

fn short_link(what: &str, have: usize, need: usize) -> DecodeAnomaly {
    anomaly(
        "link",
        "truncated_packet",
        format!("{what} cut: {have} of {need} bytes captured"),
    )
}

/// Follows VLAN tags to the network layer.
fn ether(mut et: u16, mut p: &[u8]) -> Result<Option<(Net, &[u8])>, DecodeAnomaly> {
    let mut tags = 0;
    loop {
        match et {
            0x0800 => return Ok(Some((Net::V4, p))),
            0x86dd => return Ok(Some((Net::V6, p))),
            0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(anomaly(
                        "link",
                        "too_many_vlan_tags",
                        format!("more than {MAX_VLAN_TAGS} VLAN tags; packet not decoded"),
                    ));
                }
                let v = SingleVlanSlice::from_slice(p).map_err(|e| cut("link", "VLAN tag", &e))?;
                let next = v.payload();
                et = next.ether_type.0;
                p = next.payload;
            }
            _ => return Ok(None),
        }
    }
}

/// IPv4 payload: skips an authentication header, then the transport layer.
fn ipv4_upper<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload: &'a [u8],
    truncated: bool,
) -> Result<Decoded<'a>, DecodeAnomaly> {
    if proto == 51 {
        let ah = IpAuthHeaderSlice::from_slice(payload).map_err(|e| match e {
            etherparse::err::ip_auth::HeaderSliceError::Len(l) => {
                cut("ip", "IP authentication header", &l)
            }
            etherparse::err::ip_auth::HeaderSliceError::Content(c) => anomaly(
                "ip",
                "bad_ip_header",
                format!("IP authentication header: {c}"),
            ),
        })?;
        let n = ah.slice().len();
        return transport(
            src,
            dst,
            ah.next_header().0,
            payload.get(n..).unwrap_or(&[]),
            truncated,
        );
    }
    transport(src, dst, proto, payload, truncated)
}

/// Result of walking IPv6 extension headers.
enum Ext<'a> {
    /// Upper-layer protocol and its bytes.
    Upper(u8, &'a [u8]),
    /// A (non-atomic) fragment: the fragmentable part's first header type and this fragment's
    /// data.
    Fragment {
        next: u8,
        offset: usize,
        more: bool,
        id: u32,
        data: &'a [u8],
    },
}

/// Walks IPv6 extension headers (RFC 8200 §4) from `next` over `p`.
fn ipv6_exts(mut next: u8, mut p: &[u8], at_start: bool) -> Result<Ext<'_>, DecodeAnomaly> {
    let mut count = 0;
    loop {
        match next {
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                if next == 0 && !(at_start && count == 0) {
                    return Err(anomaly(
                        "ip",
                        "bad_ipv6_extension",
                        "hop-by-hop options header not directly after the IPv6 header".into(),
                    ));
                }
                let h = Ipv6RawExtHeaderSlice::from_slice(p)
                    .map_err(|e| cut("ip", "IPv6 extension header", &e))?;
                next = h.next_header().0;
                p = p.get(h.slice().len()..).unwrap_or(&[]);
            }
            44 => {
                let f = Ipv6FragmentHeaderSlice::from_slice(p)
                    .map_err(|e| cut("ip", "IPv6 fragment header", &e))?;
                let data = p.get(f.slice().len()..).unwrap_or(&[]);
                let offset = usize::from(f.fragment_offset().value()) * 8;
                if offset != 0 || f.more_fragments() {
                    return Ok(Ext::Fragment {
                        next: f.next_header().0,
                        offset,
                        more: f.more_fragments(),
                        id: f.identification(),
                        data,
                    });
                }
                // Atomic fragment (RFC 6946): not fragmented at all.
                next = f.next_header().0;
                p = data;
            }
            51 => {
                let ah = IpAuthHeaderSlice::from_slice(p).map_err(|e| match e {
                    etherparse::err::ip_auth::HeaderSliceError::Len(l) => {
                        cut("ip", "IP authentication header", &l)
                    }
                    etherparse::err::ip_auth::HeaderSliceError::Content(c) => anomaly(
                        "ip",
                        "bad_ipv6_extension",
                        format!("IP authentication header: {c}"),
                    ),
                })?;
                next = ah.next_header().0;
                p = p.get(ah.slice().len()..).unwrap_or(&[]);
            }
            _ => return Ok(Ext::Upper(next, p)),
        }
        count += 1;
        if count > MAX_IPV6_EXT_HEADERS {
            return Err(anomaly(
                "ip",
                "bad_ipv6_extension",
                format!("more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers"),
            ));
        }
    }
}

/// TCP / UDP header; other protocols by number.
fn transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    p: &'a [u8],
    mut truncated: bool,
) -> Result<Decoded<'a>, DecodeAnomaly> {
    let transport = match proto {
        6 => {
            let t = TcpSlice::from_slice(p).map_err(|e| match e {
                tcp::HeaderSliceError::Len(l) => cut("tcp", "TCP header", &l),
                tcp::HeaderSliceError::Content(c) => {
                    anomaly("tcp", "bad_tcp_header", format!("TCP header: {c}"))
                }
            })?;
            Transport::Tcp(TcpSegment {
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                syn: t.syn(),
                ack_flag: t.ack(),
                fin: t.fin(),
                rst: t.rst(),
                psh: t.psh(),
                window: t.window_size(),
                payload: t.payload(),
            })
        }
        17 => {
            let u = UdpSlice::from_slice_lax(p).map_err(|e| cut("udp", "UDP header", &e))?;
            if usize::from(u.length()) > p.len() {
                truncated = true;
            }
            Transport::Udp(UdpDatagram {
                src_port: u.source_port(),
                dst_port: u.destination_port(),
                payload: u.payload(),
            })
        }
        protocol => Transport::Other { protocol },
    };
    Ok(Decoded {
        src,
        dst,
        transport,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ethernet + IPv4 + TCP (payload "abcd"), Ethernet + IPv6 + UDP (payload "xyz"), Ethernet +
    /// IPv4 + UDP (payload "dns!"), Ethernet + IPv6 + TCP (payload "kms"), Ethernet + IPv4 + TCP
    /// with 12 bytes of options (payload "opt").
    fn templates() -> [Vec<u8>; 5] {
        let mut v4 = vec![0u8; 12];
        v4.extend([0x08, 0x00]);
        v4.extend([
            0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        v4.extend([
            0xc3, 0x50, 0x06, 0x98, 0, 0, 0, 7, 0, 0, 0, 9, 0x50, 0x18, 1, 0, 0, 0, 0, 0,
        ]);
        v4.extend(b"abcd");
        let mut v6 = vec![0u8; 12];
        v6.extend([0x86, 0xdd]);
        v6.extend([0x60, 0, 0, 0, 0, 11, 17, 64]);
        v6.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        v6.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[2]));
        v6.extend([0, 53, 0xc0, 0, 0, 11, 0, 0]);
        v6.extend(b"xyz");
        let mut v4u = vec![0u8; 12];
        v4u.extend([0x08, 0x00]);
        v4u.extend([
            0x45, 0, 0, 32, 0, 2, 0, 0, 64, 17, 0, 0, 192, 0, 2, 7, 192, 0, 2, 53,
        ]);
        v4u.extend([0xd4, 0x31, 0, 53, 0, 12, 0, 0]);
        v4u.extend(b"dns!");
        let mut v6t = vec![0u8; 12];
        v6t.extend([0x86, 0xdd]);
        v6t.extend([0x60, 0, 0, 0, 0, 23, 6, 64]);
        v6t.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[3]));
        v6t.extend([0x20, 1, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[4]));
        v6t.extend([
            0xc3, 0x51, 0x06, 0x98, 0, 0, 1, 0, 0, 0, 2, 0, 0x50, 0x10, 2, 0, 0, 0, 0, 0,
        ]);
        v6t.extend(b"kms");
        let mut v4o = vec![0u8; 12];
        v4o.extend([0x08, 0x00]);
        v4o.extend([
            0x45, 0, 0, 55, 0, 3, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 3, 10, 0, 0, 4,
        ]);
        v4o.extend([
            0x06, 0x98, 0xc3, 0x52, 0, 0, 0, 5, 0, 0, 0, 6, 0x80, 0x11, 0, 64, 0, 0, 0, 0,
        ]);
        v4o.extend([2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1]);
        v4o.extend(b"opt");
        [v4, v6, v4u, v6t, v4o]
    }

    proptest! {
        /// The fast path decodes exactly like the general decoders whenever it accepts a packet.
        #[test]
        fn fast_path_agrees_with_the_general_decoders(
            which in 0usize..5,
            edits in proptest::collection::vec((0usize..90, any::<u8>()), 0..4),
            cut in 0usize..90,
        ) {
            let mut d = templates()[which].clone();
            for (i, v) in edits {
                if let Some(b) = d.get_mut(i) {
                    *b = v;
                }
            }
            d.truncate(d.len().saturating_sub(cut % 8));
            let pkt = RawPacket {
                frame: 1,
                ts: Ts(0),
                link: LinkType::ETHERNET,
                data: &d,
                orig_len: d.len() as u32 + (cut % 3) as u32,
            };
            if let Some(fast) = fast_ethernet(&d) {
                let mut dec = Decoder::new();
                prop_assert_eq!(dec.decode_general(&pkt), Ok(Some(fast)));
            }
        }
    }

    #[test]
    fn templates_take_the_fast_path() {
        /// Source, destination, TCP (or UDP), ports and payload of a template.
        type Want = (&'static str, &'static str, bool, u16, u16, &'static [u8]);
        let want: [Want; 5] = [
            ("10.0.0.1", "10.0.0.2", true, 50000, 1688, b"abcd"),
            ("2001:db8::1", "2001:db8::2", false, 53, 49152, b"xyz"),
            ("192.0.2.7", "192.0.2.53", false, 54321, 53, b"dns!"),
            ("2001:db8::3", "2001:db8::4", true, 50001, 1688, b"kms"),
            ("10.0.0.3", "10.0.0.4", true, 1688, 50002, b"opt"),
        ];
        for (t, (src, dst, tcp, sport, dport, payload)) in templates().iter().zip(want) {
            let d = fast_ethernet(t).expect("fast path");
            assert_eq!(d.src, src.parse::<IpAddr>().unwrap());
            assert_eq!(d.dst, dst.parse::<IpAddr>().unwrap());
            assert!(!d.truncated);
            match d.transport {
                Transport::Tcp(seg) if tcp => {
                    assert_eq!(
                        (seg.src_port, seg.dst_port, seg.payload),
                        (sport, dport, payload)
                    );
                }
                Transport::Udp(u) if !tcp => {
                    assert_eq!((u.src_port, u.dst_port, u.payload), (sport, dport, payload));
                }
                other => panic!("{src}: {other:?}"),
            }
            // And the general decoders read it the same.
            let pkt = RawPacket {
                frame: 1,
                ts: Ts(0),
                link: LinkType::ETHERNET,
                data: t,
                orig_len: t.len() as u32,
            };
            assert_eq!(Decoder::new().decode_general(&pkt), Ok(Some(d)));
        }
    }
}
