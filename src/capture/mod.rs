//! Where packets come from: capture files (classic pcap, pcapng), gzip-compressed captures, zip
//! and tar attachments and stdin, all read as streams through one reused buffer per source.
//! Other compressors and archives met in tickets (xz, bzip2, zstd, 7-Zip, RAR, Network Monitor,
//! snoop) are named in the error, with what to do.
//!
//! [`open_path`] (or [`open_reader`] for any byte stream) detects the format by content, never by
//! extension, and returns [`Sources`]: one [`PacketSource`] for a plain or gzip-compressed capture,
//! one per capture member for a zip archive (named `archive.zip:dir/member.pcap`). Members that are
//! not captures come out as [`Opened::Skipped`] notices, not silently dropped.
//!
//! Three ways things surface:
//! * [`CaptureError`]: fatal for one source (not a capture, truncated, corrupt, over a limit, read
//!   error). Its `Display` is one line naming the source and the byte offset and/or frame. Packets
//!   returned before the error stand; the source then reports a clean end.
//! * [`Notice`]: non-fatal, for records that were skipped or look odd (unknown pcapng block type,
//!   packet on an undeclared interface, captured length above the snap length, ...). Drain them with
//!   [`PacketSource::take_notices`] after every `next_packet` call and turn them into `anomaly`
//!   events with layer [`Notice::LAYER`]. Each kind is reported individually
//!   [`MAX_NOTICES_PER_KIND`] times per source, then counted; the count is reported at the end.
//! * [`Opened::Skipped`]: an archive member (or an archive) that holds no capture.
//!
//! Every size limit is a `pub const` below. Timestamps are [`Ts`] (ns since the epoch).

mod archive;
mod file;
#[cfg(feature = "live")]
pub mod live;
pub mod pcapng_writer;
#[cfg(feature = "live")]
pub mod privileges;
mod stream;
mod tar;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use crate::time::Ts;

pub use file::{PcapNgSource, PcapSource};

/// Largest captured length of one packet record (classic pcap record, pcapng EPB/SPB/PB).
/// Equals libpcap's `MAXIMUM_SNAPLEN` (262144), the snap length tcpdump and dumpcap use by default;
/// a classic pcap record claiming more ends the source with an error naming the offset (the length
/// is never allocated), a pcapng packet block claiming more is skipped with a notice.
pub const MAX_RECORD_LEN: u32 = 262_144;

/// Largest pcapng block that is buffered and parsed (section header, interface description and
/// packet blocks). pcapng (draft-ietf-opsawg-pcapng §3.1) allows up to 2^32-4 bytes; a block
/// claiming more than this ends the source with an error naming the offset.
pub const MAX_BLOCK_LEN: u32 = 1 << 20;

/// Largest pcapng block of another type (name resolution, statistics, decryption secrets, custom,
/// unknown) that is skipped. Such blocks are streamed past, never buffered; a longer one is
/// treated as corruption.
pub const MAX_SKIPPED_BLOCK_LEN: u32 = 64 << 20;

/// Interfaces accepted per pcapng section; further interface description blocks are ignored
/// with a notice (packets on them are then reported as on an unknown interface).
pub const MAX_INTERFACES: usize = 1024;

/// Size of the read buffer of an open capture source (one allocation per source, reused for every
/// packet). Must exceed [`MAX_BLOCK_LEN`] so that any accepted block fits.
pub const READ_BUFFER_LEN: usize = 2 << 20;
const _: () = assert!(READ_BUFFER_LEN > MAX_BLOCK_LEN as usize + 8);

/// Buffer used while detecting the format of a stream, before it is known to be a capture.
pub const SNIFF_BUFFER_LEN: usize = 4096;

/// Notices of one kind reported individually per source; the rest are counted and summarised in
/// one final notice of the same kind when the source ends.
pub const MAX_NOTICES_PER_KIND: u64 = 16;

/// Compression and archive layers allowed around a capture (e.g. zip → gzip → pcap is 2).
pub const MAX_NESTING_DEPTH: usize = 4;

/// Decompressed bytes allowed per byte of original input, over all layers of one input given on
/// the command line (a single deflate layer cannot exceed about 1032:1, so only nested
/// compression, a crafted archive or a compression bomb hits this). Checked against
/// `max(input bytes, EXPANSION_FLOOR)`.
pub const MAX_EXPANSION_RATIO: u64 = 2048;

/// Input size below which [`MAX_EXPANSION_RATIO`] is applied as if the input were this large
/// (so a tiny input may still expand to `EXPANSION_FLOOR * MAX_EXPANSION_RATIO` = 128 MiB). The
/// bound on output is also the bound on time: a 2 KB double-gzipped capture of zero-length
/// records took 15 s to read with a 256 KiB floor (33 million records), 4 s with this one.
pub const EXPANSION_FLOOR: u64 = 64 << 10;

/// Entries of one zip archive examined; more are reported with one notice and ignored.
pub const MAX_ARCHIVE_MEMBERS: usize = 4096;

/// Decompressed size of one zip member (members are streamed, never held whole).
pub const MAX_ARCHIVE_MEMBER_LEN: u64 = 16 << 30;

/// A zip archive that cannot be read in place (from stdin, inside gzip, inside another zip) is
/// held in memory to read its central directory; larger ones are refused with an error.
pub const MAX_BUFFERED_ARCHIVE_LEN: u64 = 512 << 20;

/// The same for a zip that comes out of decompression (a zip inside a gzip, or a deflated member
/// of another archive): there a small input could otherwise make [`MAX_BUFFERED_ARCHIVE_LEN`] of
/// memory, so the bound is lower; a bigger nested archive must be extracted first.
pub const MAX_BUFFERED_NESTED_ARCHIVE_LEN: u64 = 32 << 20;

/// Link-layer type of a capture or pcapng interface: the LINKTYPE_/DLT_ value
/// (<https://www.tcpdump.org/linktypes.html>). Open: any value is kept and printed as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// DLT_RAW on most platforms (raw IPv4/IPv6), as written by some tools.
    pub const RAW_DLT12: LinkType = LinkType(12);
    /// DLT_RAW on OpenBSD (raw IPv4/IPv6).
    pub const RAW_DLT14: LinkType = LinkType(14);
    /// LINKTYPE_RAW: raw IPv4/IPv6, version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family, network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The LINKTYPE_ name for the types this crate knows, e.g. `"ETHERNET"`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            LinkType::NULL => "NULL",
            LinkType::ETHERNET => "ETHERNET",
            LinkType::RAW_DLT12 | LinkType::RAW_DLT14 | LinkType::RAW => "RAW",
            LinkType::LOOP => "LOOP",
            LinkType::LINUX_SLL => "LINUX_SLL",
            LinkType::IPV4 => "IPV4",
            LinkType::IPV6 => "IPV6",
            LinkType::LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({n})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// One packet record as read from a capture, borrowed from the source's read buffer (valid until
/// the next call to [`PacketSource::next_packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// 1-based packet number in the source, as Wireshark numbers it (`frame.number`).
    pub frame: u64,
    /// Capture time.
    pub ts: Ts,
    /// Link-layer type of the interface the packet was captured on.
    pub link: LinkType,
    /// The captured bytes (may be shorter than `orig_len` when the snap length cut the packet).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

/// The capture filter of `kmsscope live` unless `-f` replaces it: KMS on its port and DNS (which
/// carries the SRV records that point clients at KMS hosts). A wider filter is fine: KMS is also
/// recognised by content on any port.
pub const DEFAULT_LIVE_FILTER: &str = "tcp port 1688 or port 53";

/// Default kernel capture buffer of `kmsscope live` in MiB (`-B`): about 400 000 small packets in
/// a Linux TPACKET_V3 ring, seconds of slack at a gigabit while the capture thread waits for a CPU.
pub const DEFAULT_LIVE_BUFFER_MIB: u32 = 128;

/// Statistics of a live capture (libpcap's `pcap_stats`), cumulative since the capture started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets that passed the filter and reached the capture buffer (as libpcap counts them).
    pub received: u64,
    /// Packets the kernel dropped because the capture buffer was full (kmsscope read too slowly).
    pub dropped: u64,
    /// Packets the interface or its driver dropped.
    pub if_dropped: u64,
}

/// What a source yields next (see [`PacketSource::next_item`]).
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// A live source says a periodic summary is due (`--summary-every`); files never do.
    /// [`PacketSource::capture_stats`] has the statistics of that moment.
    Tick,
    /// The clean end of the source.
    End,
}

/// A stream of packets from one capture.
pub trait PacketSource {
    /// The source's name: the path as given, `-` for stdin, `archive.zip:path/in/archive` for a
    /// zip member.
    fn name(&self) -> &str;
    /// The next packet; `Ok(None)` at the clean end. After an error the source is finished and
    /// further calls return `Ok(None)`.
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError>;
    /// Non-fatal notices gathered since the last call (empty `Vec`s do not allocate). Call after
    /// every `next_packet`, including the one that returned `Ok(None)` or an error.
    fn take_notices(&mut self) -> Vec<Notice>;
    /// Whether [`PacketSource::take_notices`] would return any notice, so that a driver can skip
    /// the call (and the `Vec` it hands back) after every packet. The default says yes: a source
    /// that does not answer is always asked.
    fn has_notices(&self) -> bool {
        true
    }
    /// The next packet, or a tick between packets (live sources), or the end. Drivers call this
    /// rather than `next_packet` so that files and live captures share one loop; the default
    /// (every file source) never ticks.
    fn next_item(&mut self) -> Result<Next<'_>, CaptureError> {
        Ok(match self.next_packet()? {
            Some(p) => Next::Packet(p),
            None => Next::End,
        })
    }
    /// Capture statistics of a live source, as of the last tick or the end; `None` for files.
    fn capture_stats(&self) -> Option<CaptureStats> {
        None
    }
    /// Hands `f`, one after the other, the next packets that [`PacketSource::next_item`] would
    /// return with nothing else to do (records already read, with no notice), until one needs
    /// more or `f` returns false; then the driver goes on with `next_item`. A driver thus pays
    /// its per-item work (a dynamic call, the match on the item, the test for notices) once per
    /// run of such packets rather than once per packet. The default hands over none.
    fn fast_packets(&mut self, f: &mut dyn FnMut(&RawPacket<'_>) -> bool) {
        let _ = f;
    }
}

/// A non-fatal finding about the input: a record skipped or odd, an archive member that holds no
/// capture. Meant to become an `anomaly` event with layer [`Notice::LAYER`], `kind` and `detail`.
///
/// Kinds: `unknown_block_type`, `unknown_interface`, `bad_packet_block`, `record_too_long`,
/// `caplen_exceeds_snaplen`, `caplen_exceeds_orig_len`, `bad_timestamp_resolution`,
/// `bad_interface_options`, `too_many_interfaces`, `no_timestamp`, `unusual_version`,
/// `non_capture_member`, `unsupported_member`, `archive_member_limit`, `empty_archive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Name of the source (or archive member) concerned.
    pub source: String,
    /// snake_case kind, stable.
    pub kind: &'static str,
    /// Byte offset of the record concerned (in the decompressed stream for compressed input).
    pub offset: Option<u64>,
    /// Frame number concerned, when the notice is about a delivered packet.
    pub frame: Option<u64>,
    /// Human-readable detail, one line.
    pub detail: String,
}

impl Notice {
    /// The `anomaly` layer of every capture notice.
    pub const LAYER: &'static str = "capture";
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}{}",
            self.source,
            self.detail,
            Location {
                offset: self.offset,
                frame: self.frame,
                decompressed: false
            }
        )
    }
}

/// What went wrong with a source. The `Display` text is the message part of
/// [`CaptureError`]'s line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The file could not be opened.
    #[error("cannot open: {0}")]
    Open(io::Error),
    /// Reading failed.
    #[error("read error: {0}")]
    Io(io::Error),
    /// Nothing to read.
    #[error("empty file (not a capture)")]
    Empty,
    /// Content is not a format we read; carries a printable preview of the first bytes.
    #[error("not a capture file (starts with {0})")]
    NotCapture(String),
    /// A known container or capture format that is not read: says what it is and what to do.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The input ends inside a header or record; says which.
    #[error("truncated {0}")]
    Truncated(String),
    /// A header or record is inconsistent.
    #[error("{0}")]
    Corrupt(String),
    /// A named limit of this module was exceeded.
    #[error("{0}")]
    Limit(String),
    /// Decompression failed (corrupt or truncated gzip / deflate data).
    #[error("{0}")]
    Decompress(String),
    /// The zip archive structure could not be read.
    #[error("{0}")]
    Archive(String),
    /// A live capture failed after it had started (interface gone, read error).
    #[error("capture failed: {0}")]
    Live(String),
}

/// A fatal error for one source. `Display` is one line for stderr:
/// `capture.pcap: truncated pcap record header (9 of 16 bytes) at offset 1234 (frame 17)`.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {kind}{}", Location { offset: *offset, frame: *frame, decompressed: *decompressed })]
pub struct CaptureError {
    /// Source name (path as given, `-`, or `archive.zip:member`).
    pub name: String,
    /// Byte offset of the header or record concerned.
    pub offset: Option<u64>,
    /// Frame number the broken record would have had (or the frame concerned).
    pub frame: Option<u64>,
    /// True when `offset` counts bytes of decompressed data (gzip, zip member).
    pub decompressed: bool,
    /// What went wrong.
    pub kind: CaptureErrorKind,
}

impl CaptureError {
    pub(crate) fn new(name: &str, kind: CaptureErrorKind) -> CaptureError {
        CaptureError {
            name: name.to_owned(),
            offset: None,
            frame: None,
            decompressed: false,
            kind,
        }
    }
    pub(crate) fn at(mut self, offset: u64, frame: Option<u64>) -> CaptureError {
        self.offset = Some(offset);
        self.frame = frame;
        self
    }
    pub(crate) fn compressed(mut self, yes: bool) -> CaptureError {
        self.decompressed = yes;
        self
    }
}

struct Location {
    offset: Option<u64>,
    frame: Option<u64>,
    decompressed: bool,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = self.offset {
            write!(f, " at offset {o}")?;
            if self.decompressed {
                f.write_str(" of the decompressed data")?;
            }
        }
        if let Some(n) = self.frame {
            write!(f, " (frame {n})")?;
        }
        Ok(())
    }
}

/// One item of [`Sources`].
pub enum Opened {
    /// A capture to read.
    Source(Box<dyn PacketSource + Send>),
    /// An archive member (or archive) that holds no capture, or that was not examined; print or
    /// emit it and go on.
    Skipped(Notice),
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opened::Source(s) => f.debug_tuple("Source").field(&s.name()).finish(),
            Opened::Skipped(n) => f.debug_tuple("Skipped").field(n).finish(),
        }
    }
}

/// The captures found in one input: a single source, or the members of a zip archive opened one
/// at a time as the iterator advances (hold one at a time to keep memory bounded). An `Err` item
/// concerns one member only; iteration goes on with the next member.
pub struct Sources {
    single: Option<Box<dyn PacketSource + Send>>,
    archives: Vec<archive::Walker>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("single", &self.single.as_ref().map(|s| s.name().to_owned()))
            .field("archives", &self.archives.len())
            .finish()
    }
}

impl Iterator for Sources {
    type Item = Result<Opened, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(s) = self.single.take() {
            return Some(Ok(Opened::Source(s)));
        }
        loop {
            let walker = self.archives.last_mut()?;
            match walker.next_member() {
                None => {
                    let done = self.archives.pop()?;
                    if let Some(n) = done.empty_notice() {
                        return Some(Ok(Opened::Skipped(n)));
                    }
                }
                Some(archive::Member::Opened(o)) => return Some(Ok(o)),
                Some(archive::Member::Nested(w)) => self.archives.push(w),
                Some(archive::Member::Error(e)) => return Some(Err(e)),
            }
        }
    }
}

impl Sources {
    fn from_stream(s: Stream) -> Sources {
        match s {
            Stream::Capture(c) => Sources {
                single: Some(c),
                archives: Vec::new(),
            },
            Stream::Archive(w) => Sources {
                single: None,
                archives: vec![w],
            },
        }
    }
}

/// Opens a capture by path; `-` reads stdin. The format is detected from the content.
/// Errors concern the whole input (cannot open, not a capture, unreadable archive).
pub fn open_path(path: &str) -> Result<Sources, CaptureError> {
    let exp = Arc::new(stream::Expansion::default());
    if path == "-" {
        let rd = stream::Counted::new(io::stdin(), exp.clone());
        return open_reader_inner(path, Box::new(rd), exp);
    }
    let file = File::open(path).map_err(|e| CaptureError::new(path, CaptureErrorKind::Open(e)))?;
    // A zip is read in place only from a regular file; pipes and devices are streams.
    let regular = match file.metadata() {
        Ok(m) if m.is_dir() => {
            return Err(CaptureError::new(
                path,
                CaptureErrorKind::Open(io::Error::other("is a directory")),
            ));
        }
        Ok(m) => m.is_file(),
        Err(_) => false,
    };
    let rd = stream::Counted::new(
        file.try_clone()
            .map_err(|e| CaptureError::new(path, CaptureErrorKind::Open(e)))?,
        exp.clone(),
    );
    let ctx = Ctx {
        depth: 0,
        exp,
        decompressed: false,
    };
    let mut br = stream::ByteReader::new(Box::new(rd), SNIFF_BUFFER_LEN);
    let s = open_stream(path, &mut br, &ctx, regular.then_some(file))?;
    Ok(Sources::from_stream(s.finish(br, path, &ctx)?))
}

/// Opens a capture from any byte stream (not seekable: a zip is buffered in memory up to
/// [`MAX_BUFFERED_ARCHIVE_LEN`]). `name` is used in messages and source names.
pub fn open_reader(name: &str, reader: Box<dyn Read + Send>) -> Result<Sources, CaptureError> {
    let exp = Arc::new(stream::Expansion::default());
    let rd = stream::Counted::new(reader, exp.clone());
    open_reader_inner(name, Box::new(rd), exp)
}

fn open_reader_inner(
    name: &str,
    reader: Box<dyn Read + Send>,
    exp: Arc<stream::Expansion>,
) -> Result<Sources, CaptureError> {
    let ctx = Ctx {
        depth: 0,
        exp,
        decompressed: false,
    };
    let mut br = stream::ByteReader::new(reader, SNIFF_BUFFER_LEN);
    let s = open_stream(name, &mut br, &ctx, None)?;
    Ok(Sources::from_stream(s.finish(br, name, &ctx)?))
}

/// Context of a stream being opened: how deep in compression/archive layers, and the expansion
/// budget shared by every layer of one input.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub depth: usize,
    pub exp: Arc<stream::Expansion>,
    pub decompressed: bool,
}

/// What a stream turned out to be, before its reader is handed over.
pub(crate) enum Sniffed {
    Pcap,
    PcapNg,
    Gzip,
    Zip(Option<File>),
    Tar,
}

/// A stream once opened.
pub(crate) enum Stream {
    Capture(Box<dyn PacketSource + Send>),
    Archive(archive::Walker),
}

/// First step of opening: detect the format. `file` is the same file when the stream is a plain
/// file opened by path (a zip is then read in place).
pub(crate) fn open_stream(
    name: &str,
    br: &mut stream::ByteReader,
    ctx: &Ctx,
    file: Option<File>,
) -> Result<Sniffed, CaptureError> {
    let err = |k| CaptureError::new(name, k).compressed(ctx.decompressed);
    br.ensure(8)
        .map_err(|e| stream::io_error(name, e, 0, ctx.decompressed))?;
    let d = br.data();
    if d.is_empty() {
        return Err(err(CaptureErrorKind::Empty));
    }
    let magic = d.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
    match magic {
        Some(m) if file::pcap_magic(m).is_some() => return Ok(Sniffed::Pcap),
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => return Ok(Sniffed::PcapNg),
        Some([b'P', b'K', 3, 4]) | Some([b'P', b'K', 5, 6]) | Some([b'P', b'K', 7, 8]) => {
            return Ok(Sniffed::Zip(file));
        }
        _ => {}
    }
    if d.len() >= 2 && d[0] == 0x1f && d[1] == 0x8b {
        return Ok(Sniffed::Gzip);
    }
    let _ = br
        .ensure(tar::MAGIC_OFFSET + 6)
        .map_err(|e| stream::io_error(name, e, 0, ctx.decompressed))?;
    if tar::is_tar(br.data()) {
        return Ok(Sniffed::Tar);
    }
    // Formats met in tickets that are not read: say what the file is and what to do.
    if let Some(what) = unsupported_format(br.data()) {
        return Err(err(CaptureErrorKind::Unsupported(what)));
    }
    Err(err(CaptureErrorKind::NotCapture(preview(br.data()))))
}

/// Recognises container and capture formats that are not read, by their magic numbers.
fn unsupported_format(d: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| d.starts_with(m);
    Some(if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz-compressed data is not read: decompress it first (xz -d), or attach a gzip or zip"
    } else if starts(b"BZh") && d.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        "bzip2-compressed data is not read: decompress it first (bunzip2), or attach a gzip or zip"
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd-compressed data is not read: decompress it first (zstd -d), or attach a gzip or zip"
    } else if starts(&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c]) {
        "7-Zip archive is not read: extract the capture first, or attach a zip"
    } else if starts(b"Rar!\x1a\x07") {
        "RAR archive is not read: extract the capture first, or attach a zip"
    } else if starts(b"GMBU") {
        "Microsoft Network Monitor capture is not read: open it in Wireshark and save it as pcapng"
    } else if starts(b"snoop\0\0\0") {
        "snoop capture is not read: convert it to pcapng (editcap -F pcapng)"
    } else {
        return None;
    })
}

impl Sniffed {
    /// Second step: build the source, decompressor or archive walker.
    pub(crate) fn finish(
        self,
        mut br: stream::ByteReader,
        name: &str,
        ctx: &Ctx,
    ) -> Result<Stream, CaptureError> {
        match self {
            Sniffed::Pcap => Ok(Stream::Capture(Box::new(PcapSource::open(
                name.to_owned(),
                br,
                ctx.decompressed,
            )?))),
            Sniffed::PcapNg => Ok(Stream::Capture(Box::new(PcapNgSource::open(
                name.to_owned(),
                br,
                ctx.decompressed,
            )?))),
            Sniffed::Gzip => {
                if ctx.depth >= MAX_NESTING_DEPTH {
                    return Err(nesting_error(name, ctx));
                }
                // Compressed input is read in modest chunks; the output side gets the big buffer.
                br.set_target(64 * 1024);
                let dec = stream::GzMembers::new(br);
                let inflated = stream::Inflated::new(dec, ctx.exp.clone(), u64::MAX, "gzip");
                let inner = Ctx {
                    depth: ctx.depth + 1,
                    exp: ctx.exp.clone(),
                    decompressed: true,
                };
                let mut br2 = stream::ByteReader::new(Box::new(inflated), SNIFF_BUFFER_LEN);
                let s = open_stream(name, &mut br2, &inner, None)?;
                s.finish(br2, name, &inner)
            }
            Sniffed::Tar => {
                if ctx.depth >= MAX_NESTING_DEPTH {
                    return Err(nesting_error(name, ctx));
                }
                br.set_target(64 * 1024);
                Ok(Stream::Archive(archive::Walker::Tar(tar::TarWalker::new(
                    name.to_owned(),
                    br,
                    Ctx {
                        depth: ctx.depth + 1,
                        exp: ctx.exp.clone(),
                        decompressed: ctx.decompressed,
                    },
                ))))
            }
            Sniffed::Zip(file) => {
                if ctx.depth >= MAX_NESTING_DEPTH {
                    return Err(nesting_error(name, ctx));
                }
                let handle = match file {
                    Some(f) => archive::Handle::file(f)
                        .map_err(|e| CaptureError::new(name, CaptureErrorKind::Io(e)))?,
                    None => {
                        let limit = if ctx.decompressed {
                            MAX_BUFFERED_NESTED_ARCHIVE_LEN
                        } else {
                            MAX_BUFFERED_ARCHIVE_LEN
                        };
                        let buf = br
                            .read_to_end_bounded(limit)
                            .map_err(|e| stream::io_error(name, e, 0, ctx.decompressed))?;
                        match buf {
                            Some(b) => archive::Handle::memory(b),
                            None => {
                                return Err(CaptureError::new(
                                    name,
                                    CaptureErrorKind::Limit(format!(
                                        "zip archive read from a stream{} is larger than the \
                                         {limit}-byte in-memory limit; extract it first",
                                        if ctx.decompressed { " (nested)" } else { "" }
                                    )),
                                ));
                            }
                        }
                    }
                };
                Ok(Stream::Archive(archive::Walker::Zip(
                    archive::ZipWalker::new(
                        name.to_owned(),
                        handle,
                        Ctx {
                            depth: ctx.depth + 1,
                            exp: ctx.exp.clone(),
                            decompressed: true,
                        },
                    )?,
                )))
            }
        }
    }
}

fn nesting_error(name: &str, ctx: &Ctx) -> CaptureError {
    CaptureError::new(
        name,
        CaptureErrorKind::Limit(format!(
            "compression/archive layers nested deeper than {MAX_NESTING_DEPTH}"
        )),
    )
    .compressed(ctx.decompressed)
}

/// Up to 8 leading bytes, quoted, with non-printable bytes escaped: `'Hello wo…'`.
pub(crate) fn preview(d: &[u8]) -> String {
    let mut s = String::from("'");
    for &b in d.iter().take(8) {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'\'' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if d.len() > 8 {
        s.push('…');
    }
    s.push('\'');
    s
}
