//! BENCH/TEST-ONLY: deterministic generator of large capture corpora for the benches and the corpus
//! test, so that `cargo bench` works on a plain clone.
//!
//! Writes a classic little-endian microsecond pcap (Ethernet, IPv4, every IPv4/TCP/UDP/ICMP checksum
//! valid) to any `Write`, streamed packet by packet, so a corpus of gigabytes needs no more memory
//! than a few flows. Two modes:
//!
//! * [`Mode::Mixed`]: KMS connections inside background traffic, until the file reaches the
//!   requested size: bulk TCP downloads of full-size segments with their ACKs, DNS A and SRV
//!   (`_vlmcs._tcp`) query/answer pairs over UDP, NTP, ICMP echo and ARP. KMS carries
//!   [`CorpusConfig::kms_share`] of the packets (default 3%), like `make-corpus.sh` of the reference
//!   corpora.
//! * [`Mode::Kms`]: KMS connections only, until [`CorpusConfig::calls`] calls were started; every
//!   connection is completed, so the counts are exact.
//!
//! A KMS connection is built with the test encoders (`tests/common/kms_encoder.rs`,
//! `tests/common/dcerpc_encoder.rs`), so every call decrypts and validates: handshake, bind with the
//! modern client's three contexts (or NDR32 + BTFN), bind_ack in the vlmcsd, py-kms or older-host
//! style, alter_context where the host rejected NDR32, one to four v4/v5/v6 calls on NDR32 or NDR64,
//! a few refusals and count-insufficient answers, a PDU now and then split over two segments, and
//! the close. Clients come from a pool (address, CMID, workstation, product, protocol version), so
//! they renew; four KMS hosts answer with their own ePID and HwId.
//!
//! Same configuration, same bytes: the random numbers come from a seeded xorshift64*. The
//! [`Manifest`] says what was put in (packets, bytes, calls per version and NDR flavour, refusals),
//! so an analyzer's counts can be checked against it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufWriter, Write};

use kmsscope::dcerpc::{AckResult, ContextElem, SyntaxId, TransferSyntax};
use kmsscope::guid::Guid;
use kmsscope::kms::{KmsRequest, KmsVersion, LicenseStatus};

#[path = "../../tests/common/dcerpc_encoder.rs"]
pub mod dcerpc_encoder;
#[path = "../../tests/common/kms_encoder.rs"]
pub mod kms_encoder;

use dcerpc_encoder as rpc;
use kms_encoder as kmsenc;

/// The KMS port.
pub const KMS_PORT: u16 = 1688;
/// TCP payload of a full-size segment (Ethernet MTU 1500).
pub const MSS: usize = 1460;
/// Capture time of the first packet: 2023-11-14T22:13:20Z, in microseconds.
const START_US: u64 = 1_700_000_000_000_000;
/// FILETIME of the Unix epoch (100 ns units since 1601).
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

// ------------------------------------------------------------------------------------------------
// Configuration and manifest
// ------------------------------------------------------------------------------------------------

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// KMS inside background traffic, up to a file size.
    Mixed,
    /// KMS connections only, up to a number of calls.
    Kms,
}

/// Generator options.
#[derive(Clone, Debug)]
pub struct CorpusConfig {
    pub mode: Mode,
    /// Mixed mode: stop once the file holds this many bytes (KMS connections in flight are then
    /// completed, so the file is slightly larger).
    pub size: u64,
    /// Mixed mode: share of packets that belong to KMS connections (0.03 = 3%).
    pub kms_share: f64,
    /// KMS mode: calls to generate (the last connection may add up to three more).
    pub calls: u64,
    /// KMS connections open at once (interleaved packet by packet).
    pub concurrency: usize,
    /// Seed of the random numbers: same configuration and seed, same bytes.
    pub seed: u64,
}

impl CorpusConfig {
    /// A mixed corpus of about `size` bytes with 3% KMS packets, 16 KMS connections at once.
    pub fn mixed(size: u64) -> CorpusConfig {
        CorpusConfig {
            mode: Mode::Mixed,
            size,
            kms_share: 0.03,
            calls: 0,
            concurrency: 16,
            seed: 1,
        }
    }

    /// A KMS-only corpus of `calls` calls, 64 connections at once.
    pub fn kms(calls: u64) -> CorpusConfig {
        CorpusConfig {
            mode: Mode::Kms,
            size: 0,
            kms_share: 1.0,
            calls,
            concurrency: 64,
            seed: 1,
        }
    }
}

/// What a generated corpus holds.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub mode: &'static str,
    pub seed: u64,
    /// Packet records.
    pub packets: u64,
    /// File size in bytes (header and records).
    pub bytes: u64,
    pub kms_connections: u64,
    /// KMS calls (request/response exchanges), answered or refused.
    pub kms_calls: u64,
    /// Calls answered with a KMS response.
    pub kms_answered: u64,
    /// Calls refused with an HRESULT in the stub.
    pub kms_refused: u64,
    /// Answered calls whose count is below the client's required count.
    pub kms_count_insufficient: u64,
    /// Packets of KMS connections (handshake and close included).
    pub kms_packets: u64,
    /// Calls per protocol version, `"4.0"`, `"5.0"`, `"6.0"`.
    pub calls_by_version: BTreeMap<String, u64>,
    /// Calls per transfer syntax, `"ndr32"`, `"ndr64"`.
    pub calls_by_ndr: BTreeMap<String, u64>,
    /// Connections with an alter_context.
    pub alter_contexts: u64,
    /// PDUs split over two TCP segments.
    pub split_pdus: u64,
    /// Distinct client machines (CMIDs) that made at least one call.
    pub clients: u64,
    pub bulk_flows: u64,
    /// DNS queries sent (the last ones may be unanswered when the capture ends).
    pub dns_queries: u64,
    pub srv_queries: u64,
    pub ntp: u64,
    pub icmp: u64,
    pub arp: u64,
}

impl Manifest {
    /// The manifest as a JSON object (keys compatible with `make-corpus.sh` where they overlap:
    /// `packets`, `bytes_pcap`, `kms_connections`, `kms_exchanges`, `kms_packets`, `kms_versions`).
    pub fn to_json(&self) -> String {
        let share = if self.packets == 0 {
            0.0
        } else {
            (self.kms_packets as f64 / self.packets as f64 * 1e4).round() / 1e4
        };
        let v = serde_json::json!({
            "generator": "kmsscope benches/common/corpus.rs",
            "mode": self.mode,
            "rng": self.seed,
            "packets": self.packets,
            "bytes_pcap": self.bytes,
            "kms_connections": self.kms_connections,
            "kms_calls": self.kms_calls,
            "kms_exchanges": self.kms_calls,
            "kms_answered": self.kms_answered,
            "kms_refused": self.kms_refused,
            "kms_count_insufficient": self.kms_count_insufficient,
            "kms_packets": self.kms_packets,
            "kms_share_of_packets": share,
            "kms_versions": self.calls_by_version,
            "kms_ndr": self.calls_by_ndr,
            "alter_contexts": self.alter_contexts,
            "split_pdus": self.split_pdus,
            "clients": self.clients,
            "bulk_flows": self.bulk_flows,
            "dns_queries": self.dns_queries,
            "srv_queries": self.srv_queries,
            "ntp": self.ntp,
            "icmp": self.icmp,
            "arp": self.arp,
            "kms_port": KMS_PORT,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// Writes the corpus of `cfg` to `w` (buffered here) and returns its manifest.
pub fn write_corpus<W: Write>(cfg: &CorpusConfig, w: W) -> io::Result<Manifest> {
    let mut g = Gen::new(cfg, w)?;
    g.run()?;
    g.finish()
}

/// The corpus of `cfg` in memory, with its manifest.
pub fn corpus_bytes(cfg: &CorpusConfig) -> (Vec<u8>, Manifest) {
    let mut v = Vec::with_capacity(usize::try_from(cfg.size).unwrap_or(0) + (1 << 20));
    let m = write_corpus(cfg, &mut v).expect("writing to a Vec cannot fail");
    (v, m)
}

/// Parses a size such as `64M`, `1G`, `512K` or `1000` (bytes; K/M/G are powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

// ------------------------------------------------------------------------------------------------
// Random numbers
// ------------------------------------------------------------------------------------------------

/// xorshift64* (Vigna 2016): small, fast, good enough for traffic shapes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that 0, 1, 2 ... give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for c in b.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
        b
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------------------------------------
// Wire: Ethernet / IPv4 / TCP / UDP / ICMP frames with valid checksums, pcap records
// ------------------------------------------------------------------------------------------------

/// RFC 1071 sum of big-endian 16-bit words (not folded; an odd last byte is padded with zero).
fn sum16(b: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut it = b.chunks_exact(2);
    for c in &mut it {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [x] = it.remainder() {
        s += u32::from(*x) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Addresses and IP fields of one packet.
#[derive(Clone, Copy, Debug)]
struct Ip4 {
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ipid: u16,
    ttl: u8,
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
/// Next hop for background traffic.
const ROUTER_MAC: [u8; 6] = [2, 0, 0xc0, 0, 2, 1];
const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];

fn mac_for(ip: [u8; 4]) -> [u8; 6] {
    [2, 0, ip[0], ip[1], ip[2], ip[3]]
}

/// The pcap writer: one reused frame buffer, records streamed to a `BufWriter`.
struct Wire<W: Write> {
    w: BufWriter<W>,
    frame: Vec<u8>,
    packets: u64,
    bytes: u64,
    t_us: u64,
}

impl<W: Write> Wire<W> {
    fn new(w: W) -> io::Result<Wire<W>> {
        let mut w = BufWriter::with_capacity(1 << 20, w);
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&262_144u32.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        Ok(Wire {
            w,
            frame: Vec::with_capacity(2048),
            packets: 0,
            bytes: 24,
            t_us: START_US,
        })
    }

    /// Starts a frame: Ethernet header and room for the IPv4 header.
    fn begin(&mut self, smac: [u8; 6], dmac: [u8; 6], ethertype: u16) {
        self.frame.clear();
        self.frame.extend_from_slice(&dmac);
        self.frame.extend_from_slice(&smac);
        self.frame.extend_from_slice(&ethertype.to_be_bytes());
    }

    /// Writes the 20-byte IPv4 header in front of the transport bytes (`frame[34..]`).
    fn ipv4_header(&mut self, h: &Ip4, proto: u8) {
        let total = (self.frame.len() - 14) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&h.ipid.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = h.ttl;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&h.src);
        ip[16..20].copy_from_slice(&h.dst);
        let c = fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        self.frame[14..34].copy_from_slice(&ip);
    }

    fn pseudo(h: &Ip4, proto: u8, len: usize) -> u32 {
        sum16(&h.src) + sum16(&h.dst) + u32::from(proto) + len as u32
    }

    /// Pads to the Ethernet minimum and writes the record at the current time.
    fn record(&mut self) -> io::Result<()> {
        if self.frame.len() < 60 {
            self.frame.resize(60, 0);
        }
        let n = self.frame.len() as u32;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&((self.t_us / 1_000_000) as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&((self.t_us % 1_000_000) as u32).to_le_bytes());
        hdr[8..12].copy_from_slice(&n.to_le_bytes());
        hdr[12..16].copy_from_slice(&n.to_le_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(&self.frame)?;
        self.packets += 1;
        self.bytes += 16 + u64::from(n);
        Ok(())
    }

    /// A TCP segment. `psum`: the precomputed [`sum16`] of `payload`, if known.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        h: &Ip4,
        ports: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        win: u16,
        opts: &[u8],
        payload: &[u8],
        psum: Option<u32>,
    ) -> io::Result<()> {
        self.begin(h.smac, h.dmac, ETH_IPV4);
        self.frame.extend_from_slice(&[0; 20]);
        let start = self.frame.len();
        let hl = 20 + opts.len();
        self.frame.extend_from_slice(&ports.0.to_be_bytes());
        self.frame.extend_from_slice(&ports.1.to_be_bytes());
        self.frame.extend_from_slice(&seq.to_be_bytes());
        self.frame
            .extend_from_slice(&(if flags & TCP_ACK != 0 { ack } else { 0 }).to_be_bytes());
        self.frame.push(((hl / 4) as u8) << 4);
        self.frame.push(flags);
        self.frame.extend_from_slice(&win.to_be_bytes());
        self.frame.extend_from_slice(&[0, 0, 0, 0]);
        self.frame.extend_from_slice(opts);
        let s = Self::pseudo(h, 6, hl + payload.len())
            + sum16(&self.frame[start..])
            + psum.unwrap_or_else(|| sum16(payload));
        self.frame.extend_from_slice(payload);
        self.frame[start + 16..start + 18].copy_from_slice(&fold(s).to_be_bytes());
        self.ipv4_header(h, 6);
        self.record()
    }

    fn udp(&mut self, h: &Ip4, ports: (u16, u16), payload: &[u8]) -> io::Result<()> {
        self.begin(h.smac, h.dmac, ETH_IPV4);
        self.frame.extend_from_slice(&[0; 20]);
        let start = self.frame.len();
        let len = (8 + payload.len()) as u16;
        self.frame.extend_from_slice(&ports.0.to_be_bytes());
        self.frame.extend_from_slice(&ports.1.to_be_bytes());
        self.frame.extend_from_slice(&len.to_be_bytes());
        self.frame.extend_from_slice(&[0, 0]);
        self.frame.extend_from_slice(payload);
        let mut c = fold(Self::pseudo(h, 17, usize::from(len)) + sum16(&self.frame[start..]));
        if c == 0 {
            c = 0xffff;
        }
        self.frame[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
        self.ipv4_header(h, 17);
        self.record()
    }

    fn icmp_echo(&mut self, h: &Ip4, reply: bool, ident: u16, seq: u16) -> io::Result<()> {
        self.begin(h.smac, h.dmac, ETH_IPV4);
        self.frame.extend_from_slice(&[0; 20]);
        let start = self.frame.len();
        self.frame.push(if reply { 0 } else { 8 });
        self.frame.push(0);
        self.frame.extend_from_slice(&[0, 0]);
        self.frame.extend_from_slice(&ident.to_be_bytes());
        self.frame.extend_from_slice(&seq.to_be_bytes());
        self.frame.extend(0u8..56);
        let c = fold(sum16(&self.frame[start..]));
        self.frame[start + 2..start + 4].copy_from_slice(&c.to_be_bytes());
        self.ipv4_header(h, 1);
        self.record()
    }

    fn arp_request(&mut self, sender: [u8; 4], target: [u8; 4]) -> io::Result<()> {
        let smac = mac_for(sender);
        self.begin(smac, [0xff; 6], ETH_ARP);
        self.frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        self.frame.extend_from_slice(&smac);
        self.frame.extend_from_slice(&sender);
        self.frame.extend_from_slice(&[0; 6]);
        self.frame.extend_from_slice(&target);
        self.record()
    }
}

// ------------------------------------------------------------------------------------------------
// Address pools (documentation and benchmarking ranges)
// ------------------------------------------------------------------------------------------------

/// 198.18.0.0/15 (RFC 2544 benchmarking range).
fn client_ip(rng: &mut Rng) -> [u8; 4] {
    (0xC612_0000u32 + rng.range(1, 0x1_FFFF) as u32).to_be_bytes()
}

fn web_server(rng: &mut Rng) -> [u8; 4] {
    [203, 0, 113, rng.range(1, 60) as u8]
}

const DNS_SERVERS: [[u8; 4]; 2] = [[192, 0, 2, 53], [192, 0, 2, 54]];
const NTP_SERVER: [u8; 4] = [192, 0, 2, 123];

fn ephemeral_port(rng: &mut Rng) -> u16 {
    rng.range(49152, 65536) as u16
}

// ------------------------------------------------------------------------------------------------
// KMS clients, hosts and products
// ------------------------------------------------------------------------------------------------

/// A product a client activates: ids from `src/kms/kms-products.csv`, N policy.
struct Product {
    app: &'static str,
    sku: &'static str,
    kms: &'static str,
    required: u32,
}

const WINDOWS: &str = "55c92734-d682-4d71-983e-d6ec3f16059f";
const OFFICE: &str = "0ff1ce15-a989-479d-af46-f275c6370663";

const PRODUCTS: &[Product] = &[
    // Windows 10/11 Enterprise, counted as Windows 10 2019 (Volume).
    Product {
        app: WINDOWS,
        sku: "73111121-5638-40f6-bc11-f1d7b0d64300",
        kms: "11b15659-e603-4cf1-9c1f-f0ec01b81888",
        required: 25,
    },
    // Windows Server 2019 Standard.
    Product {
        app: WINDOWS,
        sku: "de32eafd-aaee-4662-9444-c1befb41bde2",
        kms: "8449b1fb-f0ea-497a-99ab-66ca96e9a0f5",
        required: 5,
    },
    // Windows Server 2022 Datacenter.
    Product {
        app: WINDOWS,
        sku: "ef6cfc9f-8c5d-44ac-9aad-de6a2ea0ae03",
        kms: "b74263e4-0f92-46c6-bcf8-c11d5efe2959",
        required: 5,
    },
    // Office Professional Plus 2019.
    Product {
        app: OFFICE,
        sku: "85dd8b5f-eaa4-4af3-a628-cce9e77c9a03",
        kms: "617d9eb1-ef36-4f82-86e0-a65ae07b96c6",
        required: 5,
    },
    // Office Professional Plus 2016.
    Product {
        app: OFFICE,
        sku: "d450596f-894d-49e0-966a-fd39ed4c4c64",
        kms: "85b5f61b-320b-4be3-814a-b76b2bfafc82",
        required: 5,
    },
];

/// HRESULTs of refusals (kms-protocol.md §3).
const REFUSALS: [u32; 3] = [0xC004_F042, 0xC004_F06C, 0xC004_F038];

struct Client {
    ip: [u8; 4],
    cmid: Guid,
    workstation: String,
    product: usize,
    version: KmsVersion,
    vm: bool,
    calls: u64,
}

struct Host {
    ip: [u8; 4],
    epid: String,
    hwid: [u8; 8],
}

fn random_guid(rng: &mut Rng) -> Guid {
    let mut b: [u8; 16] = rng.bytes();
    b[7] = (b[7] & 0x0f) | 0x40; // version 4 (Data3 is little-endian on the wire)
    b[8] = (b[8] & 0x3f) | 0x80;
    Guid(b)
}

fn make_client(rng: &mut Rng, n: usize) -> Client {
    let product = match rng.below(100) {
        0..=59 => 0,
        60..=69 => 1,
        70..=74 => 2,
        75..=89 => 3,
        _ => 4,
    };
    let version = match rng.below(100) {
        0..=59 => KmsVersion::V6,
        60..=79 => KmsVersion::V5,
        _ => KmsVersion::V4,
    };
    let dom = ["corp.example", "branch.example", "lab.example.net"][n % 3];
    let prefix = ["ws", "lt", "srv", "vdi"][rng.below(4) as usize];
    Client {
        ip: client_ip(rng),
        cmid: random_guid(rng),
        workstation: format!("{prefix}-{n:06}.{dom}"),
        product,
        version,
        vm: rng.chance(0.3),
        calls: 0,
    }
}

fn make_hosts(rng: &mut Rng) -> Vec<Host> {
    (0..4u8)
        .map(|i| {
            let group = [206, 206, 5426, 3858][usize::from(i)];
            let day = rng.range(1, 366);
            Host {
                ip: [198, 51, 100, 10 + i],
                epid: format!(
                    "03612-{group:05}-{:03}-{:06}-03-1033-17763.0000-{day:03}2023",
                    rng.below(1000),
                    rng.below(1_000_000)
                ),
                hwid: rng.bytes(),
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// KMS connections
// ------------------------------------------------------------------------------------------------

/// One step of a scripted TCP connection.
#[derive(Clone, Debug)]
enum Step {
    Syn,
    SynAck,
    /// A pure ACK from this side (`true`: the client).
    Ack(bool),
    /// Payload from this side.
    Data(bool, Vec<u8>),
    /// FIN|ACK from this side.
    Fin(bool),
}

/// A KMS connection in flight: the script, where it is, and the TCP state.
struct KmsConn {
    steps: Vec<Step>,
    next: usize,
    client: ([u8; 4], u16),
    server: [u8; 4],
    /// Next sequence number per side (0 client, 1 server).
    seq: [u32; 2],
    ipid: [u16; 2],
}

/// The PDU script of one KMS connection (no TCP): what the session layer sees, in order.
#[derive(Clone, Debug, Default)]
pub struct KmsScript {
    /// `(to_server, pdu bytes)`; a PDU the generator splits over two segments is still one entry.
    pub pdus: Vec<(bool, Vec<u8>)>,
    /// `(version, ndr, refused, count_insufficient)` per call.
    pub calls: Vec<(KmsVersion, TransferSyntax, bool, bool)>,
    /// The connection had an alter_context.
    pub alter: bool,
}

/// Builds the DCE/RPC PDUs of one KMS connection of `client` to `host`, at time `t_us`.
fn kms_script(rng: &mut Rng, client: &Client, host: &Host, t_us: u64, calls: usize) -> KmsScript {
    let mut s = KmsScript::default();
    let assoc = rng.u32() | 1;
    let style = rng.below(100);
    // (contexts usable for calls as (ctx_id, ndr))
    let usable: Vec<(u16, TransferSyntax)> = if style < 55 {
        // vlmcsd-like host: NDR32 rejected in the bind, accepted in an alter_context; NDR64 accepted.
        s.pdus.push((true, rpc::bind(2, &rpc::kms_contexts_3())));
        s.pdus.push((
            false,
            rpc::bind_ack(
                2,
                assoc,
                Some("1688"),
                &[
                    rpc::reject(2),
                    rpc::accept(SyntaxId::NDR64),
                    rpc::negotiate_ack(3),
                ],
            ),
        ));
        let alter = [rpc::context(0, SyntaxId::KMS, SyntaxId::NDR32)];
        s.pdus.push((true, rpc::alter_context(2, &alter)));
        s.pdus.push((
            false,
            rpc::alter_context_resp(2, assoc, None, &[], &[rpc::accept(SyntaxId::NDR32)]),
        ));
        s.alter = true;
        vec![(0, TransferSyntax::Ndr32), (1, TransferSyntax::Ndr64)]
    } else if style < 80 {
        // py-kms-like host: NDR32 accepted, NDR64 rejected.
        s.pdus.push((true, rpc::bind(2, &rpc::kms_contexts_3())));
        s.pdus.push((
            false,
            rpc::bind_ack(
                2,
                assoc,
                Some("1688"),
                &[
                    rpc::accept(SyntaxId::NDR32),
                    rpc::reject(2),
                    rpc::negotiate_ack(3),
                ],
            ),
        ));
        vec![(0, TransferSyntax::Ndr32)]
    } else {
        // Older client: NDR32 and BTFN only.
        let ctx: Vec<ContextElem> = vec![
            rpc::context(0, SyntaxId::KMS, SyntaxId::NDR32),
            rpc::context(1, SyntaxId::KMS, SyntaxId::BTFN_BOTH),
        ];
        s.pdus.push((true, rpc::bind(2, &ctx)));
        let results: [AckResult; 2] = [rpc::accept(SyntaxId::NDR32), rpc::negotiate_ack(3)];
        s.pdus
            .push((false, rpc::bind_ack(2, assoc, Some("1688"), &results)));
        vec![(0, TransferSyntax::Ndr32)]
    };
    let product = &PRODUCTS[client.product];
    for i in 0..calls {
        let call_id = 2 + i as u32;
        let (ctx, ndr) = *rng.pick(&usable);
        let ft = FILETIME_UNIX_EPOCH + (t_us + i as u64 * 1000) * 10;
        let renewal = client.calls + i as u64 > 0;
        let req = KmsRequest {
            version: client.version,
            vm_info: u32::from(client.vm),
            license_status: if renewal {
                LicenseStatus::LICENSED
            } else {
                LicenseStatus::OOB_GRACE
            },
            binding_expiration: if renewal {
                rng.range(100_000, 259_200) as u32
            } else {
                43_200
            },
            app_id: kmsenc::guid(product.app),
            sku_id: kmsenc::guid(product.sku),
            kms_id: kmsenc::guid(product.kms),
            cmid: client.cmid,
            required_count: product.required,
            client_time: ft,
            previous_cmid: Guid::ZERO,
            workstation: client.workstation.as_str().into(),
        };
        let salt: [u8; 16] = rng.bytes();
        let q = kmsenc::encode_request(&req, salt);
        s.pdus.push((true, rpc::kms_request(call_id, ctx, &q, ndr)));
        let refused = rng.chance(0.02);
        let mut insufficient = false;
        if refused {
            let hr = *rng.pick(&REFUSALS);
            s.pdus
                .push((false, rpc::kms_refusal(call_id, ctx, hr, ndr)));
        } else {
            insufficient = rng.chance(0.03);
            let count = if insufficient {
                product.required / 2
            } else {
                product.required * 2
            };
            let resp = kmsenc::echo_response(&req, &host.epid, count, 120, 10_080, Some(host.hwid));
            let secrets = kmsenc::ResponseSecrets {
                random: rng.bytes(),
                server_salt: if client.version.major == 5 {
                    salt
                } else {
                    rng.bytes()
                },
                hwid: host.hwid,
                ..Default::default()
            };
            let a = kmsenc::encode_response(&resp, salt, &secrets);
            s.pdus
                .push((false, rpc::kms_response(call_id, ctx, &a, 0, ndr)));
        }
        s.calls.push((client.version, ndr, refused, insufficient));
    }
    s
}

/// KMS PDU scripts for the session benches: `n` connections of `calls` calls each, clients of every
/// version, deterministic.
pub fn kms_scripts(seed: u64, n: usize, calls: usize) -> Vec<KmsScript> {
    let mut rng = Rng::new(seed);
    let hosts = make_hosts(&mut rng);
    (0..n)
        .map(|i| {
            let client = make_client(&mut rng, i);
            let host = &hosts[i % hosts.len()];
            kms_script(&mut rng, &client, host, START_US + i as u64 * 1000, calls)
        })
        .collect()
}

/// Encoded KMS request and response messages (no DCE/RPC) of `n` answered calls of `version`.
pub fn kms_messages(seed: u64, version: KmsVersion, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let hosts = make_hosts(&mut rng);
    (0..n)
        .map(|i| {
            let mut client = make_client(&mut rng, i);
            client.version = version;
            let host = &hosts[i % hosts.len()];
            let p = &PRODUCTS[client.product];
            let req = KmsRequest {
                version,
                vm_info: 0,
                license_status: LicenseStatus::LICENSED,
                binding_expiration: 200_000,
                app_id: kmsenc::guid(p.app),
                sku_id: kmsenc::guid(p.sku),
                kms_id: kmsenc::guid(p.kms),
                cmid: client.cmid,
                required_count: p.required,
                client_time: FILETIME_UNIX_EPOCH + START_US * 10 + i as u64,
                previous_cmid: Guid::ZERO,
                workstation: client.workstation.as_str().into(),
            };
            let salt: [u8; 16] = rng.bytes();
            let q = kmsenc::encode_request(&req, salt);
            let resp = kmsenc::echo_response(
                &req,
                &host.epid,
                p.required * 2,
                120,
                10_080,
                Some(host.hwid),
            );
            let secrets = kmsenc::ResponseSecrets {
                random: rng.bytes(),
                server_salt: if version.major == 5 {
                    salt
                } else {
                    rng.bytes()
                },
                hwid: host.hwid,
                ..Default::default()
            };
            (q, kmsenc::encode_response(&resp, salt, &secrets))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Background flows
// ------------------------------------------------------------------------------------------------

/// A bulk TCP download: handshake, request, `nseg` full-size segments with an ACK every second
/// one, close.
struct Bulk {
    cip: [u8; 4],
    sip: [u8; 4],
    ports: (u16, u16),
    seq: [u32; 2],
    ipid: [u16; 2],
    nseg: u32,
    /// 0 SYN, 1 SYN-ACK, 2 ACK, 3 request, 4 data, 5 FIN s, 6 FIN c, 7 ACK s, 8 done.
    phase: u8,
    i: u32,
    ack_due: bool,
    req_len: usize,
}

/// A two-packet exchange (DNS, NTP, ICMP) or a single ARP request.
enum Misc {
    Dns {
        client: ([u8; 4], u16),
        server: [u8; 4],
        query: Vec<u8>,
        answer: Vec<u8>,
        srv: bool,
        sent: u8,
    },
    Ntp {
        client: [u8; 4],
        sent: u8,
        stamp: u64,
    },
    Icmp {
        client: [u8; 4],
        server: [u8; 4],
        ident: u16,
        seq: u16,
        sent: u8,
    },
    Arp {
        sender: [u8; 4],
        target: [u8; 4],
    },
}

const NAMES: [&str; 10] = [
    "kms", "www", "mail", "update", "cdn", "api", "files", "login", "time", "proxy",
];
const DOMAINS: [&str; 5] = [
    "example.com",
    "example.net",
    "example.org",
    "corp.example",
    "test",
];

fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

/// A DNS query and its answer: A records, or (10%) the `_vlmcs._tcp` SRV look-up KMS clients make,
/// answered with the KMS host on port 1688; 3% of the A queries get NXDOMAIN.
fn dns_pair(rng: &mut Rng) -> (Vec<u8>, Vec<u8>, bool) {
    let id = rng.u16();
    let srv = rng.chance(0.1);
    let domain = *rng.pick(&DOMAINS);
    let name = if srv {
        format!("_vlmcs._tcp.{domain}")
    } else {
        format!("{}{}.{domain}", rng.pick(&NAMES), rng.below(1000))
    };
    let qname = dns_name(&name);
    let qtype: u16 = if srv { 33 } else { 1 };
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    let nx = !srv && rng.chance(0.03);
    let mut a = Vec::with_capacity(128);
    a.extend_from_slice(&id.to_be_bytes());
    a.extend_from_slice(if nx { &[0x81, 0x83] } else { &[0x81, 0x80] });
    a.extend_from_slice(&[0, 1, 0, u8::from(!nx), 0, 0, 0, 0]);
    a.extend_from_slice(&qname);
    a.extend_from_slice(&qtype.to_be_bytes());
    a.extend_from_slice(&[0, 1]);
    if !nx {
        a.extend_from_slice(&[0xc0, 0x0c]);
        a.extend_from_slice(&qtype.to_be_bytes());
        a.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]);
        if srv {
            // priority 0, weight 0, port 1688, target kms.<domain> (pointer past "_vlmcs._tcp.").
            let rdata_len = 6 + 4 + 2;
            a.extend_from_slice(&(rdata_len as u16).to_be_bytes());
            a.extend_from_slice(&[0, 0, 0, 0]);
            a.extend_from_slice(&KMS_PORT.to_be_bytes());
            a.extend_from_slice(&[3, b'k', b'm', b's', 0xc0, 0x18]);
        } else {
            a.extend_from_slice(&[0, 4, 203, 0, 113, rng.range(1, 250) as u8]);
        }
    }
    (q, a, srv)
}

// ------------------------------------------------------------------------------------------------
// The generator
// ------------------------------------------------------------------------------------------------

struct Gen<W: Write> {
    cfg: CorpusConfig,
    rng: Rng,
    wire: Wire<W>,
    m: Manifest,
    used: HashSet<u64>,
    clients: Vec<Client>,
    hosts: Vec<Host>,
    blocks: Vec<(Vec<u8>, u32)>,
    kms: Vec<KmsConn>,
    bulk: Vec<Bulk>,
    misc: Vec<Misc>,
    calls_started: u64,
}

impl<W: Write> Gen<W> {
    fn new(cfg: &CorpusConfig, w: W) -> io::Result<Gen<W>> {
        let mut rng = Rng::new(cfg.seed);
        let hosts = make_hosts(&mut rng);
        let n_clients = match cfg.mode {
            Mode::Mixed => (cfg.size / (512 << 10)).clamp(64, 1 << 20),
            Mode::Kms => (cfg.calls / 2).clamp(64, 1 << 20),
        } as usize;
        let clients = (0..n_clients).map(|i| make_client(&mut rng, i)).collect();
        let blocks = (0..8)
            .map(|_| {
                let b: Vec<u8> = (0..MSS).map(|_| rng.next_u64() as u8).collect();
                let s = sum16(&b);
                (b, s)
            })
            .collect();
        Ok(Gen {
            m: Manifest {
                mode: match cfg.mode {
                    Mode::Mixed => "mixed",
                    Mode::Kms => "kms",
                },
                seed: cfg.seed,
                ..Manifest::default()
            },
            cfg: cfg.clone(),
            rng,
            wire: Wire::new(w)?,
            used: HashSet::new(),
            clients,
            hosts,
            blocks,
            kms: Vec::new(),
            bulk: Vec::new(),
            misc: Vec::new(),
            calls_started: 0,
        })
    }

    /// Advances the clock by 1 µs plus an exponential gap (mean 7 µs: about 140k packets/s).
    fn tick(&mut self) {
        self.wire.t_us += 1 + self.rng.exp(7.0) as u64;
    }

    /// A client port not used before with this address (no 4-tuple reuse in the file).
    fn fresh_port(&mut self, ip: [u8; 4]) -> u16 {
        loop {
            let p = ephemeral_port(&mut self.rng);
            let key = (u64::from(u32::from_be_bytes(ip)) << 16) | u64::from(p);
            if self.used.insert(key) {
                return p;
            }
        }
    }

    fn run(&mut self) -> io::Result<()> {
        match self.cfg.mode {
            Mode::Kms => while self.kms_step(self.calls_started < self.cfg.calls)? {},
            Mode::Mixed => {
                for _ in 0..8 {
                    let b = self.new_bulk();
                    self.bulk.push(b);
                }
                let p_kms = self.cfg.kms_share;
                while self.wire.bytes < self.cfg.size {
                    let r = self.rng.unit();
                    if r < p_kms {
                        self.kms_step(true)?;
                    } else if r < p_kms + (1.0 - p_kms) * 0.8 {
                        self.bulk_step()?;
                    } else {
                        self.misc_step()?;
                    }
                }
                // Complete the KMS connections in flight so that the manifest counts are exact;
                // background flows are cut off at the end of the capture.
                while self.kms_step(false)? {}
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Manifest> {
        self.wire.w.flush()?;
        self.m.packets = self.wire.packets;
        self.m.bytes = self.wire.bytes;
        self.m.clients = self.clients.iter().filter(|c| c.calls > 0).count() as u64;
        Ok(self.m)
    }

    // --------------------------------------------------------------------------------------------
    // KMS

    fn new_kms(&mut self) -> KmsConn {
        let ci = self.rng.below(self.clients.len() as u64) as usize;
        let hi = self.rng.below(self.hosts.len() as u64) as usize;
        let calls = if self.rng.chance(0.85) {
            1
        } else {
            self.rng.range(2, 5) as usize
        };
        let t = self.wire.t_us;
        let script = kms_script(&mut self.rng, &self.clients[ci], &self.hosts[hi], t, calls);
        let client = &mut self.clients[ci];
        client.calls += calls as u64;
        let cip = client.ip;
        self.m.kms_connections += 1;
        self.m.alter_contexts += u64::from(script.alter);
        for &(v, ndr, refused, insufficient) in &script.calls {
            self.m.kms_calls += 1;
            *self.m.calls_by_version.entry(v.to_string()).or_insert(0) += 1;
            let n = match ndr {
                TransferSyntax::Ndr64 => "ndr64",
                _ => "ndr32",
            };
            *self.m.calls_by_ndr.entry(n.to_string()).or_insert(0) += 1;
            if refused {
                self.m.kms_refused += 1;
            } else {
                self.m.kms_answered += 1;
                self.m.kms_count_insufficient += u64::from(insufficient);
            }
        }
        self.calls_started += script.calls.len() as u64;
        // TCP script around the PDUs.
        let mut steps = vec![Step::Syn, Step::SynAck, Step::Ack(true)];
        for (i, (to_server, pdu)) in script.pdus.into_iter().enumerate() {
            if pdu.len() > 48 && self.rng.chance(0.05) {
                let cut = self.rng.range(16, pdu.len() as u64 - 16) as usize;
                steps.push(Step::Data(to_server, pdu[..cut].to_vec()));
                steps.push(Step::Data(to_server, pdu[cut..].to_vec()));
                self.m.split_pdus += 1;
            } else {
                steps.push(Step::Data(to_server, pdu));
            }
            // Delayed ACKs after the bind exchange and now and then after a response.
            if i < 2 || self.rng.chance(0.3) {
                steps.push(Step::Ack(!to_server));
            }
        }
        let client_closes = self.rng.chance(0.9);
        steps.push(Step::Fin(client_closes));
        steps.push(Step::Fin(!client_closes));
        steps.push(Step::Ack(client_closes));
        let cport = self.fresh_port(cip);
        KmsConn {
            steps,
            next: 0,
            client: (cip, cport),
            server: self.hosts[hi].ip,
            seq: [self.rng.u32(), self.rng.u32()],
            ipid: [self.rng.u16(), self.rng.u16()],
        }
    }

    /// Emits one packet of a KMS connection (opening one when `allow_new` and fewer than the
    /// concurrency are open). `false` when no connection is left.
    fn kms_step(&mut self, allow_new: bool) -> io::Result<bool> {
        loop {
            if allow_new {
                while self.kms.len() < self.cfg.concurrency.max(1) {
                    let c = self.new_kms();
                    self.kms.push(c);
                }
            }
            if self.kms.is_empty() {
                return Ok(false);
            }
            let i = self.rng.below(self.kms.len() as u64) as usize;
            if self.kms[i].next >= self.kms[i].steps.len() {
                self.kms.swap_remove(i);
                continue;
            }
            self.tick();
            self.emit_kms(i)?;
            self.m.kms_packets += 1;
            return Ok(true);
        }
    }

    fn emit_kms(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.kms[i];
        let step = std::mem::replace(&mut c.steps[c.next], Step::Ack(true));
        c.next += 1;
        let (from_client, flags, payload): (bool, u8, &[u8]) = match &step {
            Step::Syn => (true, TCP_SYN, &[]),
            Step::SynAck => (false, TCP_SYN | TCP_ACK, &[]),
            Step::Ack(fc) => (*fc, TCP_ACK, &[]),
            Step::Data(fc, p) => (*fc, TCP_ACK | TCP_PSH, p.as_slice()),
            Step::Fin(fc) => (*fc, TCP_FIN | TCP_ACK, &[]),
        };
        let d = usize::from(!from_client);
        c.ipid[d] = c.ipid[d].wrapping_add(1);
        let (cip, cport) = c.client;
        let h = if from_client {
            Ip4 {
                smac: mac_for(cip),
                dmac: mac_for(c.server),
                src: cip,
                dst: c.server,
                ipid: c.ipid[0],
                ttl: 128,
            }
        } else {
            Ip4 {
                smac: mac_for(c.server),
                dmac: mac_for(cip),
                src: c.server,
                dst: cip,
                ipid: c.ipid[1],
                ttl: 128,
            }
        };
        let ports = if from_client {
            (cport, KMS_PORT)
        } else {
            (KMS_PORT, cport)
        };
        let seq = c.seq[d];
        let ack = c.seq[1 - d];
        let opts: &[u8] = if flags & TCP_SYN != 0 {
            &MSS_OPTION
        } else {
            &[]
        };
        let win = if from_client { 64_240 } else { 65_160 };
        let advance = payload.len() as u32 + u32::from(flags & (TCP_SYN | TCP_FIN) != 0);
        c.seq[d] = seq.wrapping_add(advance);
        self.wire
            .tcp(&h, ports, seq, ack, flags, win, opts, payload, None)
    }

    // --------------------------------------------------------------------------------------------
    // Bulk TCP

    fn new_bulk(&mut self) -> Bulk {
        let cip = client_ip(&mut self.rng);
        let cport = self.fresh_port(cip);
        let sport = *self.rng.pick(&[443, 443, 443, 80, 445, 8080, 22, 3389]);
        // Pareto (alpha 1.2, scale 60) segments, capped.
        let u = 1.0 - self.rng.unit();
        let nseg = ((60.0 * u.powf(-1.0 / 1.2)) as u32).min(20_000);
        self.m.bulk_flows += 1;
        Bulk {
            cip,
            sip: web_server(&mut self.rng),
            ports: (cport, sport),
            seq: [self.rng.u32(), self.rng.u32()],
            ipid: [self.rng.u16(), self.rng.u16()],
            nseg,
            phase: 0,
            i: 0,
            ack_due: false,
            req_len: self.rng.range(80, 520) as usize,
        }
    }

    fn bulk_step(&mut self) -> io::Result<()> {
        let i = self.rng.below(self.bulk.len() as u64) as usize;
        if self.bulk[i].phase >= 8 {
            self.bulk[i] = self.new_bulk();
        }
        self.tick();
        let b = &mut self.bulk[i];
        let ch = |b: &mut Bulk| {
            b.ipid[0] = b.ipid[0].wrapping_add(1);
            Ip4 {
                smac: ROUTER_MAC,
                dmac: mac_for(b.cip),
                src: b.cip,
                dst: b.sip,
                ipid: b.ipid[0],
                ttl: 64,
            }
        };
        let sh = |b: &mut Bulk| {
            b.ipid[1] = b.ipid[1].wrapping_add(1);
            Ip4 {
                smac: mac_for(b.cip),
                dmac: ROUTER_MAC,
                src: b.sip,
                dst: b.cip,
                ipid: b.ipid[1],
                ttl: 56,
            }
        };
        let cp = b.ports;
        let sp = (b.ports.1, b.ports.0);
        let [cs, ss] = b.seq;
        let w = &mut self.wire;
        match b.phase {
            0 => {
                let h = ch(b);
                b.seq[0] = cs.wrapping_add(1);
                b.phase = 1;
                w.tcp(&h, cp, cs, 0, TCP_SYN, 64_240, &MSS_OPTION, &[], None)
            }
            1 => {
                let h = sh(b);
                b.seq[1] = ss.wrapping_add(1);
                b.phase = 2;
                w.tcp(
                    &h,
                    sp,
                    ss,
                    cs,
                    TCP_SYN | TCP_ACK,
                    65_160,
                    &MSS_OPTION,
                    &[],
                    None,
                )
            }
            2 => {
                let h = ch(b);
                b.phase = 3;
                w.tcp(&h, cp, cs, ss, TCP_ACK, 64_240, &[], &[], None)
            }
            3 => {
                let h = ch(b);
                let n = b.req_len;
                b.seq[0] = cs.wrapping_add(n as u32);
                b.phase = 4;
                let (blk, _) = &self.blocks[n & 7];
                w.tcp(
                    &h,
                    cp,
                    cs,
                    ss,
                    TCP_ACK | TCP_PSH,
                    64_240,
                    &[],
                    &blk[..n.min(MSS)],
                    None,
                )
            }
            4 if b.ack_due => {
                let h = ch(b);
                b.ack_due = false;
                if b.i >= b.nseg {
                    b.phase = 5;
                }
                w.tcp(&h, cp, cs, ss, TCP_ACK, 64_240, &[], &[], None)
            }
            4 if b.i < b.nseg => {
                let h = sh(b);
                let (blk, sum) = &self.blocks[(b.i as usize + usize::from(sp.0)) & 7];
                b.seq[1] = ss.wrapping_add(MSS as u32);
                b.i += 1;
                b.ack_due = b.i.is_multiple_of(2) || b.i == b.nseg;
                let fl = if b.i.is_multiple_of(8) {
                    TCP_ACK | TCP_PSH
                } else {
                    TCP_ACK
                };
                w.tcp(&h, sp, ss, cs, fl, 65_160, &[], blk, Some(*sum))
            }
            4 | 5 => {
                let h = sh(b);
                b.seq[1] = ss.wrapping_add(1);
                b.phase = 6;
                w.tcp(&h, sp, ss, cs, TCP_FIN | TCP_ACK, 65_160, &[], &[], None)
            }
            6 => {
                let h = ch(b);
                b.seq[0] = cs.wrapping_add(1);
                b.phase = 7;
                w.tcp(&h, cp, cs, ss, TCP_FIN | TCP_ACK, 64_240, &[], &[], None)
            }
            _ => {
                let h = sh(b);
                b.phase = 8;
                w.tcp(&h, sp, ss, cs, TCP_ACK, 65_160, &[], &[], None)
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // DNS, NTP, ICMP, ARP

    fn new_misc(&mut self) -> Misc {
        if self.rng.chance(0.65) {
            let (query, answer, srv) = dns_pair(&mut self.rng);
            let ip = client_ip(&mut self.rng);
            return Misc::Dns {
                client: (ip, ephemeral_port(&mut self.rng)),
                server: *self.rng.pick(&DNS_SERVERS),
                query,
                answer,
                srv,
                sent: 0,
            };
        }
        let k = self.rng.unit();
        let client = client_ip(&mut self.rng);
        if k < 0.5 {
            Misc::Ntp {
                client,
                sent: 0,
                stamp: self.rng.next_u64(),
            }
        } else if k < 0.9 {
            Misc::Icmp {
                client,
                server: web_server(&mut self.rng),
                ident: self.rng.u16(),
                seq: self.rng.u16(),
                sent: 0,
            }
        } else {
            Misc::Arp {
                sender: client,
                target: client_ip(&mut self.rng),
            }
        }
    }

    fn misc_step(&mut self) -> io::Result<()> {
        loop {
            if self.misc.is_empty() || self.rng.chance(0.3) {
                let m = self.new_misc();
                self.misc.push(m);
            }
            let i = self.rng.below(self.misc.len() as u64) as usize;
            let id = self.rng.u16();
            let done = match &mut self.misc[i] {
                Misc::Dns { sent, .. } | Misc::Ntp { sent, .. } | Misc::Icmp { sent, .. } => {
                    *sent >= 2
                }
                Misc::Arp { .. } => false,
            };
            if done {
                self.misc.swap_remove(i);
                continue;
            }
            self.tick();
            let w = &mut self.wire;
            let to_client = |c: [u8; 4], s: [u8; 4], ttl| Ip4 {
                smac: mac_for(c),
                dmac: ROUTER_MAC,
                src: s,
                dst: c,
                ipid: id,
                ttl,
            };
            let to_server = |c: [u8; 4], s: [u8; 4]| Ip4 {
                smac: ROUTER_MAC,
                dmac: mac_for(c),
                src: c,
                dst: s,
                ipid: id,
                ttl: 64,
            };
            match &mut self.misc[i] {
                Misc::Dns {
                    client,
                    server,
                    query,
                    answer,
                    srv,
                    sent,
                } => {
                    *sent += 1;
                    if *sent == 1 {
                        self.m.dns_queries += 1;
                        self.m.srv_queries += u64::from(*srv);
                        w.udp(&to_server(client.0, *server), (client.1, 53), query)?;
                    } else {
                        w.udp(&to_client(client.0, *server, 58), (53, client.1), answer)?;
                    }
                }
                Misc::Ntp {
                    client,
                    sent,
                    stamp,
                } => {
                    *sent += 1;
                    let mut p = [0u8; 48];
                    p[40..48].copy_from_slice(&stamp.to_be_bytes());
                    if *sent == 1 {
                        self.m.ntp += 1;
                        p[0] = 0x23;
                        w.udp(&to_server(*client, NTP_SERVER), (123, 123), &p)?;
                    } else {
                        p[..4].copy_from_slice(&[0x24, 0x02, 0x00, 0xe7]);
                        w.udp(&to_client(*client, NTP_SERVER, 58), (123, 123), &p)?;
                    }
                }
                Misc::Icmp {
                    client,
                    server,
                    ident,
                    seq,
                    sent,
                } => {
                    *sent += 1;
                    if *sent == 1 {
                        self.m.icmp += 1;
                        w.icmp_echo(&to_server(*client, *server), false, *ident, *seq)?;
                    } else {
                        w.icmp_echo(&to_client(*client, *server, 56), true, *ident, *seq)?;
                    }
                }
                Misc::Arp { sender, target } => {
                    self.m.arp += 1;
                    w.arp_request(*sender, *target)?;
                    self.misc.swap_remove(i);
                }
            }
            return Ok(());
        }
    }
}

/// Checks every IPv4 header, TCP, UDP and ICMP checksum of a corpus written by this module (the
/// one's complement sum over each covered range, checksum included, must be 0xffff). Returns the
/// number of IPv4 packets checked.
pub fn verify_checksums(pcap: &[u8]) -> Result<u64, String> {
    let mut off = 24;
    let mut n = 0u64;
    while off + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap_or([0; 4])) as usize;
        let frame = pcap
            .get(off + 16..off + 16 + len)
            .ok_or_else(|| format!("record at {off} cut"))?;
        off += 16 + len;
        if frame.len() < 34 || frame[12..14] != [8, 0] {
            continue;
        }
        let ip = &frame[14..];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let ip = ip.get(..total).ok_or("IP total length beyond the frame")?;
        let ok = |s: u32| {
            let mut s = s;
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s == 0xffff
        };
        if !ok(sum16(&ip[..20])) {
            return Err(format!("IPv4 header checksum of packet {}", n + 1));
        }
        let l4 = &ip[20..];
        let pseudo = sum16(&ip[12..20]) + u32::from(ip[9]) + l4.len() as u32;
        let good = match ip[9] {
            6 | 17 => ok(pseudo + sum16(l4)),
            1 => ok(sum16(l4)),
            _ => true,
        };
        if !good {
            return Err(format!("protocol {} checksum of packet {}", ip[9], n + 1));
        }
        n += 1;
    }
    Ok(n)
}
