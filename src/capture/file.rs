//! Classic pcap and pcapng readers over a [`ByteReader`].
//!
//! Formats: classic pcap as in draft-ietf-opsawg-pcap (both byte orders, microsecond and
//! nanosecond magics, and the "modified" Kuznetsov variant with 24-byte record headers);
//! pcapng as in draft-ietf-opsawg-pcapng (sections in either byte order, interface description
//! blocks with `if_tsresol` in both forms and `if_tsoffset`, enhanced, simple and obsolete packet
//! blocks). Record headers are parsed here, on the hot path, so that lengths are checked against
//! the limits before anything is buffered and no allocation happens per packet; pcap-parser parses
//! the interface description blocks and their options.

use pcap_parser::pcapng::{
    OptionCode, parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
};

use super::stream::{ByteReader, io_error};
use super::{
    CaptureError, CaptureErrorKind, LinkType, MAX_BLOCK_LEN, MAX_INTERFACES, MAX_NOTICES_PER_KIND,
    MAX_RECORD_LEN, MAX_SKIPPED_BLOCK_LEN, Next, Notice, PacketSource, READ_BUFFER_LEN, RawPacket,
};
use crate::time::Ts;

/// Classic pcap flavour identified by the magic number (read as little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcapMagic {
    big_endian: bool,
    nanos: bool,
    modified: bool,
}

/// The classic pcap flavour for the first four bytes of a file, if any.
pub(crate) fn pcap_magic(m: [u8; 4]) -> Option<PcapMagic> {
    let (big_endian, nanos, modified) = match u32::from_le_bytes(m) {
        0xa1b2_c3d4 => (false, false, false),
        0xd4c3_b2a1 => (true, false, false),
        0xa1b2_3c4d => (false, true, false),
        0x4d3c_b2a1 => (true, true, false),
        0xa1b2_cd34 => (false, false, true),
        0x34cd_b2a1 => (true, false, true),
        _ => return None,
    };
    Some(PcapMagic {
        big_endian,
        nanos,
        modified,
    })
}

#[inline]
fn rd_u32(b: &[u8], at: usize, big: bool) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
fn rd_u16(b: &[u8], at: usize, big: bool) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Non-fatal notices of one source, rate-limited per kind.
#[derive(Default)]
pub(crate) struct Notices {
    pending: Vec<Notice>,
    counts: Vec<(&'static str, u64)>,
    finished: bool,
}

impl Notices {
    /// Records a notice; `detail` is only built when it will be reported.
    pub fn push(
        &mut self,
        source: &str,
        kind: &'static str,
        offset: Option<u64>,
        frame: Option<u64>,
        detail: impl FnOnce() -> String,
    ) {
        let n = match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => {
                *c += 1;
                *c
            }
            None => {
                self.counts.push((kind, 1));
                1
            }
        };
        if n <= MAX_NOTICES_PER_KIND {
            self.pending.push(Notice {
                source: source.to_owned(),
                kind,
                offset,
                frame,
                detail: detail(),
            });
        }
    }

    /// At the end of the source: one summary notice per kind that went over the limit.
    pub fn finish(&mut self, source: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        for &(kind, n) in &self.counts {
            if n > MAX_NOTICES_PER_KIND {
                self.pending.push(Notice {
                    source: source.to_owned(),
                    kind,
                    offset: None,
                    frame: None,
                    detail: format!(
                        "{} more {kind} notices in this source were not reported individually",
                        n - MAX_NOTICES_PER_KIND
                    ),
                });
            }
        }
    }

    pub fn take(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.pending)
    }

    /// Whether [`Notices::take`] has something to give.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// State shared by both readers, apart from the byte reader (kept separate so that a record
/// borrowed from the reader can be parsed while this state changes).
struct Meta {
    name: String,
    frame: u64,
    done: bool,
    decompressed: bool,
    notices: Notices,
}

impl Meta {
    fn new(name: String, decompressed: bool) -> Meta {
        Meta {
            name,
            frame: 0,
            done: false,
            decompressed,
            notices: Notices::default(),
        }
    }

    /// Ends the source with an error (the source reports a clean end afterwards).
    fn fail(&mut self, kind: CaptureErrorKind, offset: u64, frame: Option<u64>) -> CaptureError {
        self.done = true;
        self.notices.finish(&self.name);
        CaptureError::new(&self.name, kind)
            .at(offset, frame)
            .compressed(self.decompressed)
    }

    fn fail_io(&mut self, e: std::io::Error, offset: u64) -> CaptureError {
        self.done = true;
        self.notices.finish(&self.name);
        io_error(&self.name, e, offset, self.decompressed)
    }

    fn clean_end(&mut self) {
        self.done = true;
        self.notices.finish(&self.name);
    }

    fn notice(
        &mut self,
        kind: &'static str,
        off: u64,
        frame: Option<u64>,
        detail: impl FnOnce() -> String,
    ) {
        self.notices
            .push(&self.name, kind, Some(off), frame, detail);
    }
}

/// Makes `n` bytes available; `Ok(false)` at the end of the stream.
fn ensure(rd: &mut ByteReader, m: &mut Meta, n: usize, offset: u64) -> Result<bool, CaptureError> {
    rd.ensure(n).map_err(|e| m.fail_io(e, offset))
}

/// A classic pcap file.
pub struct PcapSource {
    rd: ByteReader,
    m: Meta,
    magic: PcapMagic,
    link: LinkType,
    snaplen: u32,
    /// Record header length: 16, or 24 for the "modified" format.
    header_len: usize,
    /// Largest captured length the fast path hands out: within [`MAX_RECORD_LEN`] and the snap
    /// length (a longer record is an error or a notice: the slow path's business).
    fast_caplen_max: u32,
}

impl PcapSource {
    /// Reads the 24-byte file header (the reader is positioned at the magic).
    pub(crate) fn open(
        name: String,
        mut rd: ByteReader,
        decompressed: bool,
    ) -> Result<PcapSource, CaptureError> {
        rd.set_target(READ_BUFFER_LEN);
        let mut m = Meta::new(name, decompressed);
        if !ensure(&mut rd, &mut m, 24, 0)? {
            let have = rd.data().len();
            return Err(m.fail(
                CaptureErrorKind::Truncated(format!("pcap file header ({have} of 24 bytes)")),
                0,
                None,
            ));
        }
        let h = rd.data();
        let Some(magic) = h
            .get(..4)
            .and_then(|x| pcap_magic([x[0], x[1], x[2], x[3]]))
        else {
            let p = super::preview(h);
            return Err(m.fail(CaptureErrorKind::NotCapture(p), 0, None));
        };
        let big = magic.big_endian;
        let (major, minor) = (rd_u16(h, 4, big), rd_u16(h, 6, big));
        let snaplen = rd_u32(h, 16, big);
        // The upper 16 bits of the link-type field carry FCS information (pcap draft §4);
        // decoding does not need it since IP lengths bound the payload.
        let link = LinkType(rd_u32(h, 20, big) & 0xffff);
        rd.consume(24);
        if major != 2 {
            m.notice("unusual_version", 0, None, || {
                format!("pcap file version {major}.{minor} (expected 2.4); reading anyway")
            });
        }
        Ok(PcapSource {
            rd,
            m,
            header_len: if magic.modified { 24 } else { 16 },
            fast_caplen_max: if snaplen == 0 {
                MAX_RECORD_LEN
            } else {
                snaplen.min(MAX_RECORD_LEN)
            },
            magic,
            link,
            snaplen,
        })
    }

    /// Link type from the file header.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Snap length from the file header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }
}

impl PacketSource for PcapSource {
    fn name(&self) -> &str {
        &self.m.name
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        self.m.notices.take()
    }

    fn has_notices(&self) -> bool {
        self.m.notices.has_pending()
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if let Some(rec) = self.fast_record() {
            return Ok(Some(self.take_fast_record(rec)));
        }
        self.next_packet_slow()
    }

    fn fast_packets(&mut self, f: &mut dyn FnMut(&RawPacket<'_>) -> bool) {
        // The records `next_item` returns without its slow path, which alone notices, refills
        // or fails.
        while let Some(rec) = self.fast_record() {
            if !f(&self.take_fast_record(rec)) {
                break;
            }
        }
    }

    fn next_item(&mut self) -> Result<Next<'_>, CaptureError> {
        if let Some(rec) = self.fast_record() {
            return Ok(Next::Packet(self.take_fast_record(rec)));
        }
        Ok(match self.next_packet_slow()? {
            Some(p) => Next::Packet(p),
            None => Next::End,
        })
    }
}

/// The four fields of a classic pcap record header (seconds, fraction, captured length, original
/// length), in the file's byte order.
#[inline]
fn record_fields(h: &[u8; 16], big: bool) -> [u32; 4] {
    let mut f = [0u32; 4];
    for (v, b) in f.iter_mut().zip(h.as_chunks::<4>().0) {
        *v = u32::from_le_bytes(*b);
    }
    // One branch for the whole header rather than one per field.
    if big {
        f = f.map(u32::swap_bytes);
    }
    f
}

/// Packet time of a classic pcap record. Exact, no saturation needed: at most
/// (2^32 - 1) * 10^9 + (2^32 - 1) * 1000 ns, below `i64::MAX`.
#[inline]
fn record_ts(ts_sec: u32, ts_frac: u32, nanos: bool) -> Ts {
    let frac = if nanos {
        i64::from(ts_frac)
    } else {
        i64::from(ts_frac) * 1000
    };
    Ts(i64::from(ts_sec) * 1_000_000_000 + frac)
}

/// A record [`PcapSource::fast_record`] accepted: its header fields and its length with the
/// header.
#[derive(Clone, Copy)]
struct FastRecord {
    fields: [u32; 4],
    total: usize,
}

impl PcapSource {
    /// The common record, checked without changing any state: the whole record is already in
    /// the buffer and nothing about it is odd (within the limits, nothing to notice). `None`
    /// sends the record to [`PcapSource::next_packet_slow`], which handles every case (refills,
    /// the end, errors and notices).
    #[inline]
    fn fast_record(&self) -> Option<FastRecord> {
        if self.m.done {
            return None;
        }
        let d = self.rd.data();
        let fields = record_fields(d.first_chunk::<16>()?, self.magic.big_endian);
        let [_, _, caplen, orig_len] = fields;
        let total = self.header_len + caplen as usize;
        (caplen <= self.fast_caplen_max && caplen <= orig_len && total <= d.len())
            .then_some(FastRecord { fields, total })
    }

    /// Hands out the record [`PcapSource::fast_record`] accepted.
    #[inline]
    fn take_fast_record(&mut self, rec: FastRecord) -> RawPacket<'_> {
        let [ts_sec, ts_frac, _, orig_len] = rec.fields;
        self.m.frame += 1;
        RawPacket {
            frame: self.m.frame,
            ts: record_ts(ts_sec, ts_frac, self.magic.nanos),
            link: self.link,
            data: self
                .rd
                .take_bytes(rec.total)
                .get(self.header_len..)
                .unwrap_or(&[]),
            orig_len,
        }
    }

    fn next_packet_slow(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.m.done {
            return Ok(None);
        }
        let big = self.magic.big_endian;
        let hl = self.header_len;
        let off = self.rd.offset();
        let frame = self.m.frame + 1;
        if !ensure(&mut self.rd, &mut self.m, hl, off)? {
            let have = self.rd.data().len();
            if have == 0 {
                self.m.clean_end();
                return Ok(None);
            }
            return Err(self.m.fail(
                CaptureErrorKind::Truncated(format!("pcap record header ({have} of {hl} bytes)")),
                off,
                Some(frame),
            ));
        }
        let h = self.rd.data();
        let ts_sec = rd_u32(h, 0, big);
        let ts_frac = rd_u32(h, 4, big);
        let caplen = rd_u32(h, 8, big);
        let orig_len = rd_u32(h, 12, big);
        if caplen > MAX_RECORD_LEN {
            return Err(self.m.fail(
                CaptureErrorKind::Corrupt(format!(
                    "pcap record claims {caplen} captured bytes, more than the limit of \
                     {MAX_RECORD_LEN}"
                )),
                off,
                Some(frame),
            ));
        }
        let total = hl + caplen as usize;
        if !ensure(&mut self.rd, &mut self.m, total, off)? {
            let have = self.rd.data().len().saturating_sub(hl);
            return Err(self.m.fail(
                CaptureErrorKind::Truncated(format!("pcap record data ({have} of {caplen} bytes)")),
                off,
                Some(frame),
            ));
        }
        self.m.frame = frame;
        if self.snaplen != 0 && caplen > self.snaplen {
            let snaplen = self.snaplen;
            self.m
                .notice("caplen_exceeds_snaplen", off, Some(frame), || {
                    format!("record of {caplen} bytes exceeds the file's snap length {snaplen}")
                });
        }
        if caplen > orig_len {
            self.m
                .notice("caplen_exceeds_orig_len", off, Some(frame), || {
                    format!("captured length {caplen} exceeds the original length {orig_len}")
                });
        }
        let ts = record_ts(ts_sec, ts_frac, self.magic.nanos);
        let link = self.link;
        let rec = self.rd.take_bytes(total);
        Ok(Some(RawPacket {
            frame,
            ts,
            link,
            data: rec.get(hl..).unwrap_or(&[]),
            orig_len,
        }))
    }
}

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const NRB: u32 = 0x0000_0004;
const ISB: u32 = 0x0000_0005;
const EPB: u32 = 0x0000_0006;
const SJE: u32 = 0x0000_0009;
const DSB: u32 = 0x0000_000a;
const CB: u32 = 0x0000_0bad;
const DCB: u32 = 0x4000_0bad;
const BOM: u32 = 0x1a2b_3c4d;

/// Block types that are skipped without a notice: they carry no packets.
fn known_skipped(t: u32) -> bool {
    matches!(t, NRB | ISB | SJE | DSB | CB | DCB | 0x8000_0001)
}

/// One pcapng interface (IDB).
#[derive(Clone, Copy, Debug)]
struct Iface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// Timestamp units per second for an `if_tsresol` value: bit 7 clear means 10^-v s, set means
/// 2^-(v & 0x7f) s.
pub(crate) fn tsresol_units(v: u8) -> Option<u64> {
    if v & 0x80 == 0 {
        10u64.checked_pow(u32::from(v))
    } else {
        1u64.checked_shl(u32::from(v & 0x7f))
            .filter(|_| v & 0x7f < 64)
    }
}

fn iface_ts(i: &Iface, hi: u32, lo: u32) -> Ts {
    let t = (u64::from(hi) << 32) | u64::from(lo);
    let units = i.units.max(1);
    let secs = i64::try_from(t / units).unwrap_or(i64::MAX);
    let frac = u128::from(t % units);
    let nanos = (frac * 1_000_000_000 / u128::from(units)) as i64;
    Ts::from_parts(secs.saturating_add(i.offset_secs), nanos)
}

/// A pcapng file.
pub struct PcapNgSource {
    rd: ByteReader,
    st: NgState,
}

/// pcapng parsing state apart from the reader.
struct NgState {
    m: Meta,
    big: bool,
    ifaces: Vec<Iface>,
    last_ts: Ts,
    sections: u64,
}

/// What one parsed block turned out to be.
enum Block {
    /// A packet at `start..start + len` of the block, with its metadata.
    Packet {
        start: usize,
        len: usize,
        ts: Ts,
        link: LinkType,
        orig_len: u32,
    },
    Other,
}

impl PcapNgSource {
    pub(crate) fn open(
        name: String,
        mut rd: ByteReader,
        decompressed: bool,
    ) -> Result<PcapNgSource, CaptureError> {
        rd.set_target(READ_BUFFER_LEN);
        Ok(PcapNgSource {
            rd,
            st: NgState {
                m: Meta::new(name, decompressed),
                big: false,
                ifaces: Vec::new(),
                last_ts: Ts(0),
                sections: 0,
            },
        })
    }
}

impl PcapNgSource {
    /// The common block, checked without changing any state: an enhanced packet block wholly in
    /// the buffer, of a declared interface, with nothing to notice (the conditions under which
    /// [`NgState::packet`] notices nothing), and no notice waiting. Its length; `None` sends the
    /// block to [`PcapNgSource::next_packet`], which handles every case.
    #[inline]
    fn fast_block(&self) -> Option<usize> {
        let st = &self.st;
        if st.m.done || st.m.notices.has_pending() {
            return None;
        }
        let d = self.rd.data();
        let big = st.big;
        // Type, length, interface, timestamp (2 words), captured and original length.
        let h = d.first_chunk::<28>()?;
        if rd_u32(h, 0, big) != EPB {
            return None;
        }
        let blen = rd_u32(h, 4, big);
        let iface = st.ifaces.get(rd_u32(h, 8, big) as usize)?;
        let (caplen, orig_len) = (rd_u32(h, 20, big), rd_u32(h, 24, big));
        // Whole and well-formed, then nothing to notice about the packet (in this order: the
        // room for the data is `blen - 32`).
        let plain = blen >= 32
            && blen.is_multiple_of(4)
            && blen <= MAX_BLOCK_LEN
            && blen as usize <= d.len()
            && rd_u32(d, blen as usize - 4, big) == blen
            && caplen <= blen - 32
            && caplen <= MAX_RECORD_LEN
            && (iface.snaplen == 0 || caplen <= iface.snaplen)
            && caplen <= orig_len;
        plain.then_some(blen as usize)
    }
}

impl NgState {
    fn notice(
        &mut self,
        kind: &'static str,
        off: u64,
        frame: Option<u64>,
        detail: impl FnOnce() -> String,
    ) {
        self.m.notice(kind, off, frame, detail);
    }

    /// Parses a fully buffered block of a type we read (`b` includes header and trailer).
    fn parse_block(&mut self, btype: u32, b: &[u8], off: u64) -> Result<Block, CaptureError> {
        let big = self.big;
        let blen = b.len();
        match btype {
            SHB => {
                if blen < 28 {
                    return Err(self.m.fail(
                        CaptureErrorKind::Corrupt(format!(
                            "pcapng section header block of {blen} bytes is shorter than 28"
                        )),
                        off,
                        None,
                    ));
                }
                let major = rd_u16(b, 12, big);
                let minor = rd_u16(b, 14, big);
                if major != 1 {
                    return Err(self.m.fail(
                        CaptureErrorKind::Corrupt(format!(
                            "unsupported pcapng version {major}.{minor}"
                        )),
                        off,
                        None,
                    ));
                }
                self.sections += 1;
                self.ifaces.clear();
                Ok(Block::Other)
            }
            IDB => {
                if blen < 20 {
                    return Err(self.m.fail(
                        CaptureErrorKind::Corrupt(format!(
                            "pcapng interface description block of {blen} bytes is shorter \
                             than 20"
                        )),
                        off,
                        None,
                    ));
                }
                let mut iface = Iface {
                    link: LinkType(u32::from(rd_u16(b, 8, big))),
                    snaplen: rd_u32(b, 12, big),
                    units: 1_000_000,
                    offset_secs: 0,
                };
                let parsed = if big {
                    parse_interfacedescriptionblock_be(b)
                } else {
                    parse_interfacedescriptionblock_le(b)
                };
                let mut tsresol = None;
                match parsed {
                    Ok((_, idb)) => {
                        for opt in &idb.options {
                            let v = opt.as_bytes().unwrap_or(&[]);
                            if opt.code == OptionCode::IfTsresol {
                                if let Some(&r) = v.first() {
                                    tsresol = Some(r);
                                }
                            } else if opt.code == OptionCode::IfTsoffset && v.len() >= 8 {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(&v[..8]);
                                iface.offset_secs = if big {
                                    i64::from_be_bytes(a)
                                } else {
                                    i64::from_le_bytes(a)
                                };
                            }
                        }
                    }
                    Err(_) => {
                        let n = self.ifaces.len();
                        self.notice("bad_interface_options", off, None, || {
                            format!(
                                "options of interface {n} could not be parsed; assuming \
                                 microsecond timestamps"
                            )
                        });
                    }
                }
                if let Some(r) = tsresol {
                    match tsresol_units(r) {
                        Some(u) => iface.units = u,
                        None => {
                            let n = self.ifaces.len();
                            self.notice("bad_timestamp_resolution", off, None, || {
                                format!(
                                    "interface {n} has invalid if_tsresol {r:#04x}; assuming \
                                     microseconds"
                                )
                            });
                        }
                    }
                }
                if self.ifaces.len() >= MAX_INTERFACES {
                    self.notice("too_many_interfaces", off, None, || {
                        format!(
                            "more than {MAX_INTERFACES} interfaces in one section; interface \
                             ignored"
                        )
                    });
                } else {
                    self.ifaces.push(iface);
                }
                Ok(Block::Other)
            }
            EPB | PB => {
                let what = if btype == EPB {
                    "enhanced packet block"
                } else {
                    "packet block"
                };
                if blen < 32 {
                    self.notice("bad_packet_block", off, None, || {
                        format!("{what} of {blen} bytes is shorter than 32; skipped")
                    });
                    return Ok(Block::Other);
                }
                let if_id = if btype == EPB {
                    rd_u32(b, 8, big)
                } else {
                    u32::from(rd_u16(b, 8, big))
                };
                let hi = rd_u32(b, 12, big);
                let lo = rd_u32(b, 16, big);
                let caplen = rd_u32(b, 20, big);
                let orig_len = rd_u32(b, 24, big);
                self.packet(
                    what,
                    off,
                    if_id,
                    caplen,
                    orig_len,
                    blen - 32,
                    Some((hi, lo)),
                    28,
                )
            }
            SPB => {
                if blen < 16 {
                    self.notice("bad_packet_block", off, None, || {
                        format!("simple packet block of {blen} bytes is shorter than 16; skipped")
                    });
                    return Ok(Block::Other);
                }
                let orig_len = rd_u32(b, 8, big);
                let room = blen - 16;
                let mut caplen = orig_len.min(u32::try_from(room).unwrap_or(u32::MAX));
                if let Some(i) = self.ifaces.first()
                    && i.snaplen != 0
                {
                    caplen = caplen.min(i.snaplen);
                }
                self.packet(
                    "simple packet block",
                    off,
                    0,
                    caplen,
                    orig_len,
                    room,
                    None,
                    12,
                )
            }
            _ => Ok(Block::Other),
        }
    }

    /// Validates a packet record and computes its metadata.
    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        what: &'static str,
        off: u64,
        if_id: u32,
        caplen: u32,
        orig_len: u32,
        room: usize,
        ts: Option<(u32, u32)>,
        start: usize,
    ) -> Result<Block, CaptureError> {
        if caplen as usize > room {
            self.notice("bad_packet_block", off, None, || {
                format!("{what} claims {caplen} captured bytes but holds only {room}; skipped")
            });
            return Ok(Block::Other);
        }
        if caplen > MAX_RECORD_LEN {
            self.notice("record_too_long", off, None, || {
                format!(
                    "{what} of {caplen} captured bytes exceeds the limit of {MAX_RECORD_LEN}; \
                     skipped"
                )
            });
            return Ok(Block::Other);
        }
        let Some(iface) = self.ifaces.get(if_id as usize).copied() else {
            let n = self.ifaces.len();
            self.notice("unknown_interface", off, None, || {
                format!(
                    "{what} refers to interface {if_id} but the section declares {n} \
                     interface(s); skipped"
                )
            });
            return Ok(Block::Other);
        };
        let frame = self.m.frame + 1;
        let ts = match ts {
            Some((hi, lo)) => iface_ts(&iface, hi, lo),
            None => {
                let last = self.last_ts;
                self.notice("no_timestamp", off, Some(frame), || {
                    "simple packet blocks carry no timestamp; using the previous packet's time"
                        .to_owned()
                });
                last
            }
        };
        if iface.snaplen != 0 && caplen > iface.snaplen {
            let snaplen = iface.snaplen;
            self.notice("caplen_exceeds_snaplen", off, Some(frame), || {
                format!("record of {caplen} bytes exceeds the interface's snap length {snaplen}")
            });
        }
        if caplen > orig_len {
            self.notice("caplen_exceeds_orig_len", off, Some(frame), || {
                format!("captured length {caplen} exceeds the original length {orig_len}")
            });
        }
        self.m.frame = frame;
        self.last_ts = ts;
        Ok(Block::Packet {
            start,
            len: caplen as usize,
            ts,
            link: iface.link,
            orig_len,
        })
    }
}

impl PacketSource for PcapNgSource {
    fn name(&self) -> &str {
        &self.st.m.name
    }

    fn fast_packets(&mut self, f: &mut dyn FnMut(&RawPacket<'_>) -> bool) {
        // The blocks `next_item` would turn into a packet with nothing else to do; the rest
        // (other blocks, refills, the end, errors and notices) go through `next_packet`.
        while let Some(blen) = self.fast_block() {
            let off = self.rd.offset();
            let block = self.rd.data().get(..blen).unwrap_or(&[]);
            let (start, len, ts, link, orig_len) = match self.st.parse_block(EPB, block, off) {
                Ok(Block::Packet {
                    start,
                    len,
                    ts,
                    link,
                    orig_len,
                }) => (start, len, ts, link, orig_len),
                // Not reached: `fast_block` checked everything `parse_block` skips a packet block
                // for (and it fails only on section and interface blocks). A skipped block is
                // consumed as `next_packet` would, and its notice goes out with the next item.
                Ok(Block::Other) => {
                    self.rd.consume(blen);
                    return;
                }
                Err(_) => return,
            };
            let frame = self.st.m.frame;
            let b = self.rd.take_bytes(blen);
            let pkt = RawPacket {
                frame,
                ts,
                link,
                data: b.get(start..start + len).unwrap_or(&[]),
                orig_len,
            };
            if !f(&pkt) {
                break;
            }
        }
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        self.st.m.notices.take()
    }

    fn has_notices(&self) -> bool {
        self.st.m.notices.has_pending()
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        let rd = &mut self.rd;
        let st = &mut self.st;
        loop {
            if st.m.done {
                return Ok(None);
            }
            let off = rd.offset();
            if !ensure(rd, &mut st.m, 8, off)? {
                let have = rd.data().len();
                if have == 0 {
                    st.m.clean_end();
                    return Ok(None);
                }
                return Err(st.m.fail(
                    CaptureErrorKind::Truncated(format!("pcapng block header ({have} of 8 bytes)")),
                    off,
                    None,
                ));
            }
            let raw_type = rd_u32(rd.data(), 0, false);
            if raw_type == SHB {
                if !ensure(rd, &mut st.m, 12, off)? {
                    let have = rd.data().len();
                    return Err(st.m.fail(
                        CaptureErrorKind::Truncated(format!(
                            "pcapng section header ({have} of 12 bytes)"
                        )),
                        off,
                        None,
                    ));
                }
                let bom = rd_u32(rd.data(), 8, false);
                st.big = if bom == BOM {
                    false
                } else if bom == BOM.swap_bytes() {
                    true
                } else {
                    return Err(st.m.fail(
                        CaptureErrorKind::Corrupt(format!(
                            "pcapng section header has an invalid byte-order magic {bom:#010x}"
                        )),
                        off,
                        None,
                    ));
                };
            }
            let big = st.big;
            let btype = if raw_type == SHB {
                SHB
            } else {
                rd_u32(rd.data(), 0, big)
            };
            let blen = rd_u32(rd.data(), 4, big);
            if blen < 12 || !blen.is_multiple_of(4) {
                return Err(st.m.fail(
                    CaptureErrorKind::Corrupt(format!(
                        "invalid pcapng block length {blen} (block type {btype:#010x})"
                    )),
                    off,
                    None,
                ));
            }
            if btype != SHB && st.sections == 0 {
                return Err(st.m.fail(
                    CaptureErrorKind::Corrupt("pcapng block before any section header".into()),
                    off,
                    None,
                ));
            }
            if !matches!(btype, SHB | IDB | EPB | SPB | PB) {
                skip_block(rd, st, btype, blen, off)?;
                continue;
            }
            let frame_hint = matches!(btype, EPB | SPB | PB).then_some(st.m.frame + 1);
            if blen > MAX_BLOCK_LEN {
                return Err(st.m.fail(
                    CaptureErrorKind::Corrupt(format!(
                        "pcapng block of type {btype:#010x} claims {blen} bytes, more than the \
                         limit of {MAX_BLOCK_LEN}"
                    )),
                    off,
                    frame_hint,
                ));
            }
            let blen_us = blen as usize;
            if !ensure(rd, &mut st.m, blen_us, off)? {
                let have = rd.data().len();
                return Err(st.m.fail(
                    CaptureErrorKind::Truncated(format!(
                        "pcapng block of type {btype:#010x} ({have} of {blen} bytes)"
                    )),
                    off,
                    frame_hint,
                ));
            }
            let block = rd.data().get(..blen_us).unwrap_or(&[]);
            let trailer = rd_u32(block, blen_us - 4, big);
            if trailer != blen {
                return Err(st.m.fail(
                    CaptureErrorKind::Corrupt(format!(
                        "pcapng block trailer length {trailer} does not match header length \
                         {blen}"
                    )),
                    off,
                    frame_hint,
                ));
            }
            match st.parse_block(btype, block, off)? {
                Block::Other => rd.consume(blen_us),
                Block::Packet {
                    start,
                    len,
                    ts,
                    link,
                    orig_len,
                } => {
                    let frame = st.m.frame;
                    let b = rd.take_bytes(blen_us);
                    let data = b.get(start..start + len).unwrap_or(&[]);
                    return Ok(Some(RawPacket {
                        frame,
                        ts,
                        link,
                        data,
                        orig_len,
                    }));
                }
            }
        }
    }
}

/// Streams past a block that is not parsed, checking its trailer.
fn skip_block(
    rd: &mut ByteReader,
    st: &mut NgState,
    btype: u32,
    blen: u32,
    off: u64,
) -> Result<(), CaptureError> {
    if blen > MAX_SKIPPED_BLOCK_LEN {
        return Err(st.m.fail(
            CaptureErrorKind::Corrupt(format!(
                "pcapng block of type {btype:#010x} claims {blen} bytes, more than the limit of \
                 {MAX_SKIPPED_BLOCK_LEN}"
            )),
            off,
            None,
        ));
    }
    if !known_skipped(btype) {
        st.notice("unknown_block_type", off, None, || {
            format!("pcapng block of unknown type {btype:#010x} ({blen} bytes) skipped")
        });
    }
    let body = u64::from(blen) - 4;
    let skipped = rd.skip(body).map_err(|e| st.m.fail_io(e, off))?;
    if skipped < body || !ensure(rd, &mut st.m, 4, off)? {
        let have = skipped + rd.data().len() as u64;
        return Err(st.m.fail(
            CaptureErrorKind::Truncated(format!(
                "pcapng block of type {btype:#010x} ({have} of {blen} bytes)"
            )),
            off,
            None,
        ));
    }
    let trailer = rd_u32(rd.data(), 0, st.big);
    if trailer != blen {
        return Err(st.m.fail(
            CaptureErrorKind::Corrupt(format!(
                "pcapng block trailer length {trailer} does not match header length {blen}"
            )),
            off,
            None,
        ));
    }
    rd.consume(4);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x` appended in the file's byte order.
    fn put32(v: &mut Vec<u8>, x: u32, big: bool) {
        v.extend_from_slice(&if big {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }

    /// A classic pcap file: the header (magic of the given flavour, snap length, Ethernet) and
    /// records (seconds, fraction, original length, data).
    fn pcap(big: bool, nanos: bool, modified: bool, snaplen: u32, recs: &[Rec]) -> Vec<u8> {
        let magic: u32 = match (nanos, modified) {
            (false, false) => 0xa1b2_c3d4,
            (true, false) => 0xa1b2_3c4d,
            (false, true) => 0xa1b2_cd34,
            (true, true) => unreachable!("no such flavour"),
        };
        let w32 = |v: &mut Vec<u8>, x: u32| put32(v, x, big);
        let mut v = Vec::new();
        w32(&mut v, magic);
        for x in [2u16, 4] {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        }
        for x in [0, 0, snaplen, 1] {
            w32(&mut v, x);
        }
        for &(sec, frac, orig, data) in recs {
            for x in [sec, frac, data.len() as u32, orig] {
                w32(&mut v, x);
            }
            if modified {
                v.extend_from_slice(&[0; 8]);
            }
            v.extend_from_slice(data);
        }
        v
    }

    type Rec = (u32, u32, u32, &'static [u8]);

    /// Hands out at most 7 bytes per read, so that records straddle refills.
    struct Dribble(Vec<u8>, usize);

    impl std::io::Read for Dribble {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let rest = self.0.get(self.1..).unwrap_or(&[]);
            let n = rest.len().min(out.len()).min(7);
            out[..n].copy_from_slice(&rest[..n]);
            self.1 += n;
            Ok(n)
        }
    }

    type Seen = Vec<(
        u64,
        Ts,
        LinkType,
        Vec<u8>,
        u32,
        Vec<(&'static str, Option<u64>)>,
    )>;

    /// The one source of `bytes`, read whole or `dribble`d a few bytes per read.
    fn open_bytes(bytes: Vec<u8>, dribble: bool) -> Box<dyn PacketSource + Send> {
        let rd: Box<dyn std::io::Read + Send> = if dribble {
            Box::new(Dribble(bytes, 0))
        } else {
            Box::new(std::io::Cursor::new(bytes))
        };
        let mut sources = crate::capture::open_reader("t.pcap", rd).expect("opens");
        let Some(Ok(crate::capture::Opened::Source(src))) = sources.next() else {
            panic!("one source");
        };
        src
    }

    /// Every packet (with the notices raised by the read that returned it) and the end.
    fn read_all(bytes: Vec<u8>, dribble: bool) -> Seen {
        let mut src = open_bytes(bytes, dribble);
        let mut seen = Vec::new();
        loop {
            let item = src.next_item().expect("reads");
            let pkt = match item {
                Next::Packet(p) => Some((p.frame, p.ts, p.link, p.data.to_vec(), p.orig_len)),
                Next::End => None,
                Next::Tick => panic!("files do not tick"),
            };
            let has = src.has_notices();
            let notices: Vec<_> = src
                .take_notices()
                .into_iter()
                .map(|n| (n.kind, n.frame))
                .collect();
            assert_eq!(has, !notices.is_empty(), "has_notices tells the truth");
            match pkt {
                Some((f, t, l, d, o)) => seen.push((f, t, l, d, o, notices)),
                None => {
                    seen.push((0, Ts(0), LinkType(0), Vec::new(), 0, notices));
                    return seen;
                }
            }
        }
    }

    /// [`read_all`] as `run` drives a source: the packets `fast_packets` hands over, then one item
    /// of `next_item`, and again. `fast_packets` is stopped after every second packet it hands
    /// over (its early stop). `fast` counts the packets it handed over.
    fn read_all_fast(bytes: Vec<u8>, dribble: bool, fast: &mut usize) -> Seen {
        let mut src = open_bytes(bytes, dribble);
        let mut seen = Vec::new();
        loop {
            let mut n = 0;
            src.fast_packets(&mut |p| {
                let pkt = (p.frame, p.ts, p.link, p.data.to_vec(), p.orig_len);
                seen.push((pkt.0, pkt.1, pkt.2, pkt.3, pkt.4, Vec::new()));
                n += 1;
                n % 2 == 1
            });
            *fast += n;
            assert!(!src.has_notices(), "the fast packets raise no notice");
            let pkt = match src.next_item().expect("reads") {
                Next::Packet(p) => Some((p.frame, p.ts, p.link, p.data.to_vec(), p.orig_len)),
                Next::End => None,
                Next::Tick => panic!("files do not tick"),
            };
            let notices: Vec<_> = src
                .take_notices()
                .into_iter()
                .map(|n| (n.kind, n.frame))
                .collect();
            match pkt {
                Some((f, t, l, d, o)) => seen.push((f, t, l, d, o, notices)),
                None => {
                    seen.push((0, Ts(0), LinkType(0), Vec::new(), 0, notices));
                    return seen;
                }
            }
        }
    }

    #[test]
    fn packets_handed_over_in_runs_are_the_packets_read_one_by_one() {
        let plain: &[Rec] = &[(1, 0, 1, b"a"), (2, 0, 2, b"bc"), (3, 0, 3, b"def")];
        let mut recs = plain.repeat(3);
        recs.insert(4, (4, 0, 6, b"abcdef")); // over the snap length (5): a notice
        for dribble in [false, true] {
            let bytes = pcap(false, false, false, 5, &recs);
            let want = read_all(bytes.clone(), dribble);
            let mut fast = 0;
            assert_eq!(read_all_fast(bytes, dribble, &mut fast), want, "{dribble}");
            assert_eq!(want.len(), recs.len() + 1);
            if !dribble {
                // Wholly buffered: all but the odd record and those after an early stop.
                assert!(fast >= 5, "{fast}");
            }
        }
    }

    /// A pcapng section of `big` byte order: interfaces of the given snap lengths (Ethernet,
    /// microseconds), then the blocks (type, body words, data), each padded and closed.
    fn pcapng(big: bool, snaplens: &[u32], blocks: &[(u32, Vec<u32>, &[u8])]) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| put32(v, x, big);
        let mut v = Vec::new();
        let block = |v: &mut Vec<u8>, btype: u32, words: &[u32], data: &[u8]| {
            let pad = (4 - data.len() % 4) % 4;
            let len = (12 + 4 * words.len() + data.len() + pad) as u32;
            w32(v, btype);
            w32(v, len);
            for &x in words {
                w32(v, x);
            }
            v.extend_from_slice(data);
            v.extend(std::iter::repeat_n(0u8, pad));
            w32(v, len);
        };
        // Byte-order magic, version 1.0, section length unknown (-1).
        let one = if big { 1u32 << 16 } else { 1 };
        block(&mut v, SHB, &[BOM, one, u32::MAX, u32::MAX], &[]);
        for &snaplen in snaplens {
            // Link type 1 (Ethernet), reserved 0: one word in the file's order.
            let link = if big { 1 << 16 } else { 1 };
            block(&mut v, IDB, &[link, snaplen], &[]);
        }
        for (btype, words, data) in blocks {
            block(&mut v, *btype, words, data);
        }
        v
    }

    #[test]
    fn pcapng_packets_handed_over_in_runs_are_the_packets_read_one_by_one() {
        let epb = |if_id: u32, t: u32, data: &'static [u8], orig: u32| {
            (EPB, vec![if_id, 0, t, data.len() as u32, orig], data)
        };
        for big in [false, true] {
            let mut blocks = Vec::new();
            for i in 0..4 {
                blocks.push(epb(0, i, b"abc", 3));
                blocks.push(epb(1, i, b"abcdefgh", 8));
            }
            // Each with something to notice or skip, among plain ones.
            blocks.insert(2, epb(0, 9, b"abcdefgh", 8)); // over interface 0's snap length
            blocks.insert(4, epb(7, 9, b"ab", 2)); // unknown interface: skipped
            blocks.insert(6, epb(1, 9, b"abcd", 2)); // more captured than sent
            blocks.insert(8, (0x0bad, vec![1], b"")); // unknown block type: skipped
            blocks.insert(10, (SPB, vec![3], b"xyz")); // simple packet block: no timestamp
            let bytes = pcapng(big, &[5, 0], &blocks);
            for dribble in [false, true] {
                let want = read_all(bytes.clone(), dribble);
                let mut fast = 0;
                assert_eq!(
                    read_all_fast(bytes.clone(), dribble, &mut fast),
                    want,
                    "{big} {dribble}"
                );
                // Every packet block but the skipped one, and the end.
                assert_eq!(want.len(), blocks.len() - 2 + 1, "{big} {dribble}");
                if !dribble {
                    assert!(fast >= 4, "{big}: {fast}");
                }
            }
        }
    }

    #[test]
    fn records_read_the_same_wholly_buffered_or_straddling_refills() {
        let recs: &[Rec] = &[
            (1, 500_000, 4, b"abcd"),
            (2, 0, 6, b"abcdef"), // over the snap length (5): a notice
            (3, 7, 2, b"xyz"),    // more captured than sent: a notice
            (4, 0, 0, b""),
            (u32::MAX, 999_999, 1, b"z"),
        ];
        for (big, nanos, modified) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, false),
            (false, false, true),
            (true, false, true),
        ] {
            let bytes = pcap(big, nanos, modified, 5, recs);
            let fast = read_all(bytes.clone(), false);
            assert_eq!(fast, read_all(bytes, true), "{big} {nanos} {modified}");
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(fast.len(), recs.len() + 1);
            for (i, (&(sec, frac, orig, data), got)) in recs.iter().zip(&fast).enumerate() {
                let want_ts = Ts(i64::from(sec) * 1_000_000_000 + i64::from(frac) * unit);
                assert_eq!(got.0, i as u64 + 1);
                assert_eq!(
                    (got.1, got.2, &got.3[..], got.4),
                    (want_ts, LinkType::ETHERNET, data, orig)
                );
            }
            let kinds: Vec<_> = fast.iter().flat_map(|p| p.5.clone()).collect();
            assert_eq!(
                kinds,
                [
                    ("caplen_exceeds_snaplen", Some(2)),
                    ("caplen_exceeds_orig_len", Some(3))
                ]
            );
        }
        // Without a snap length (0), any captured length within the limit is taken.
        let bytes = pcap(false, false, false, 0, &[(1, 0, 9, b"123456789")]);
        let got = read_all(bytes, false);
        assert!(got[0].5.is_empty());
    }

    #[test]
    fn a_record_over_the_limit_ends_the_source_wherever_it_lies() {
        for dribble in [false, true] {
            let mut bytes = pcap(false, false, false, 0, &[(1, 0, 1, b"a")]);
            bytes.extend_from_slice(&[0; 8]);
            bytes.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
            bytes.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
            bytes.extend_from_slice(&[0; 64]);
            let mut src = open_bytes(bytes, dribble);
            assert!(matches!(src.next_item(), Ok(Next::Packet(_))));
            let e = src.next_item().expect_err("over the limit");
            assert!(e.to_string().contains("more than the limit"), "{e}");
            assert!(matches!(src.next_item(), Ok(Next::End)));
        }
    }

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(tsresol_units(6), Some(1_000_000));
        assert_eq!(tsresol_units(9), Some(1_000_000_000));
        assert_eq!(tsresol_units(19), Some(10_000_000_000_000_000_000));
        assert_eq!(tsresol_units(20), None);
        assert_eq!(tsresol_units(0x80 | 20), Some(1 << 20));
        assert_eq!(tsresol_units(0x80 | 63), Some(1 << 63));
        assert_eq!(tsresol_units(0x80 | 64), None);
        let i = Iface {
            link: LinkType::ETHERNET,
            snaplen: 0,
            units: 1 << 20,
            offset_secs: -5,
        };
        // 10.75 s in 2^-20 units, minus 5 s offset.
        assert_eq!(iface_ts(&i, 0, (10 << 20) | (3 << 18)), Ts(5_750_000_000));
        let huge = Iface { units: 1, ..i };
        assert_eq!(iface_ts(&huge, u32::MAX, u32::MAX), Ts(i64::MAX));
    }
}
