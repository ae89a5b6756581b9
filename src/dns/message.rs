//! DNS message parsing (RFC 1035 section 4) into small owned structs.
//!
//! The header is read directly (12 fixed bytes, RFC 1035 section 4.1.1); owner names and RDATA are
//! decoded with hickory-proto's wire primitives (`Name::read`, `RData::read`), which follow
//! compression pointers (RFC 1035 section 4.1.4) only backwards, so a pointer loop is an error and
//! never a hang. Each record is framed by its own RDLENGTH, so a record whose RDATA hickory rejects
//! is kept as [`RecordData::Malformed`] with a note in [`DnsMessage::issues`] and the rest of the
//! message still parses; only a broken structure (header counts, names, record framing) fails the
//! whole message with a [`DnsError`].
//!
//! That hickory-based parser ([`parse_message_hickory`]) is the reference; [`parse_message`] first
//! tries a hand-written parser for the common case (`fast.rs`: plain ASCII names and the usual
//! record types), which yields the same result and gives way to the reference on anything else.
//!
//! # Names as on the wire
//!
//! Names are rendered from the raw label bytes, never through hickory's `Display`/`to_utf8`
//! (which may add a trailing dot or apply IDNA): case is kept exactly (`_VLMCS._TCP.Corp.Example`
//! stays so), labels are joined with `.`, there is no trailing dot, and the root name is `.`.
//! Label bytes that are valid UTF-8 are kept as they are, control characters included (escaping
//! for terminals happens at output; JSON escaping keeps them exact). So that the text maps back to
//! the wire labels without ambiguity, as in RFC 1035 section 5.1 master files:
//! a `.` inside a label is written `\.`, a backslash `\\`, and each byte that is not part of valid
//! UTF-8 `\DDD` (three decimal digits).
//!
//! # UPDATE (RFC 2136)
//!
//! An UPDATE message reuses the four sections: zone (question), prerequisite (answer), update
//! (authority) and additional. They are kept in the same fields; [`DnsMessage::zone`],
//! [`DnsMessage::prerequisites`] and [`DnsMessage::updates`] name them. Update records with
//! RDLENGTH 0 (delete an RRset, "RRset exists" prerequisites) decode as [`RecordData::Empty`]; the
//! class (`NONE` = delete this RR, `ANY` = delete the RRset) is kept in [`Record::class`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError, Restrict};

/// Length of the fixed DNS header (RFC 1035 section 4.1.1).
pub const HEADER_LEN: usize = 12;

/// The largest DNS message: the 16-bit length prefix of DNS over TCP (RFC 1035 section 4.2.2)
/// bounds every message, and a UDP payload cannot exceed it either.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// Smallest encoding of a question: root name (1 byte), QTYPE and QCLASS (RFC 1035 section 4.1.2).
const MIN_QUESTION_LEN: usize = 5;
/// Smallest encoding of a resource record: root name, TYPE, CLASS, TTL, RDLENGTH (section 4.1.3).
const MIN_RECORD_LEN: usize = 11;

/// Record type numbers used in this module (IANA "Resource Record (RR) TYPEs").
pub mod rtype {
    /// RFC 1035: IPv4 address.
    pub const A: u16 = 1;
    /// RFC 1035: authoritative name server.
    pub const NS: u16 = 2;
    /// RFC 1035: canonical name (alias).
    pub const CNAME: u16 = 5;
    /// RFC 1035: start of a zone of authority.
    pub const SOA: u16 = 6;
    /// RFC 1035: domain name pointer.
    pub const PTR: u16 = 12;
    /// RFC 1035: mail exchange.
    pub const MX: u16 = 15;
    /// RFC 1035: text strings.
    pub const TXT: u16 = 16;
    /// RFC 3596: IPv6 address.
    pub const AAAA: u16 = 28;
    /// RFC 2782: service location; KMS hosts publish `_VLMCS._TCP.<domain>`.
    pub const SRV: u16 = 33;
    /// RFC 6891: EDNS(0) OPT pseudo-record.
    pub const OPT: u16 = 41;
    /// RFC 8945: transaction signature.
    pub const TSIG: u16 = 250;
    /// RFC 1035 QTYPE `*`: any type.
    pub const ANY: u16 = 255;
}

/// Class numbers (RFC 1035 section 3.2.4, RFC 2136 section 2.4).
pub mod class {
    /// The Internet.
    pub const IN: u16 = 1;
    /// Chaos.
    pub const CH: u16 = 3;
    /// Hesiod.
    pub const HS: u16 = 4;
    /// RFC 2136: in an UPDATE, "delete this RR" / "RRset does not exist".
    pub const NONE: u16 = 254;
    /// QCLASS `*`; in an UPDATE, "delete the RRset" / "RRset exists".
    pub const ANY: u16 = 255;
}

/// Header OPCODE (RFC 1035 section 4.1.1; RFC 1996 NOTIFY; RFC 2136 UPDATE; RFC 8490 DSO).
/// An open wire enum: any 4-bit value parses and prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Standard query.
    pub const QUERY: Opcode = Opcode(0);
    /// Inverse query (obsolete, RFC 3425).
    pub const IQUERY: Opcode = Opcode(1);
    /// Server status request.
    pub const STATUS: Opcode = Opcode(2);
    /// Zone change notification (RFC 1996).
    pub const NOTIFY: Opcode = Opcode(4);
    /// Dynamic update (RFC 2136): how KMS hosts publish their SRV record.
    pub const UPDATE: Opcode = Opcode(5);
    /// DNS stateful operations (RFC 8490).
    pub const DSO: Opcode = Opcode(6);

    /// Upper-case name as in events.md: `QUERY`, `UPDATE`, …, or `unknown_<n>`.
    pub fn name(self) -> Cow<'static, str> {
        match self.0 {
            0 => "QUERY".into(),
            1 => "IQUERY".into(),
            2 => "STATUS".into(),
            4 => "NOTIFY".into(),
            5 => "UPDATE".into(),
            6 => "DSO".into(),
            n => format!("unknown_{n}").into(),
        }
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One entry of the question section (RFC 1035 section 4.1.2); in an UPDATE, the zone section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name exactly as on the wire (see the module docs for the rendering).
    pub name: String,
    /// QTYPE, see [`qtype_name`].
    pub qtype: u16,
    /// QCLASS as on the wire (for mDNS, bit 15 is the unicast-response bit, RFC 6762 section 5.4).
    pub qclass: u16,
}

/// A resource record (RFC 1035 section 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name exactly as on the wire.
    pub name: String,
    /// TYPE, see [`qtype_name`].
    pub rtype: u16,
    /// CLASS as on the wire (mDNS sets bit 15 as cache-flush, RFC 6762 section 10.2).
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// Decoded RDATA.
    pub data: RecordData,
}

/// Decoded RDATA. Names inside are rendered like owner names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// SRV (RFC 2782): the KMS host list.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Relative weight among equal priorities.
        weight: u16,
        /// TCP port (1688 for KMS by default).
        port: u16,
        /// Host name of the target; `.` means "service not available here".
        target: String,
    },
    /// A (RFC 1035 section 3.4.1).
    A(Ipv4Addr),
    /// AAAA (RFC 3596).
    Aaaa(Ipv6Addr),
    /// CNAME (RFC 1035 section 3.3.1).
    Cname(String),
    /// PTR (RFC 1035 section 3.3.12).
    Ptr(String),
    /// NS (RFC 1035 section 3.3.11).
    Ns(String),
    /// MX (RFC 1035 section 3.3.9).
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Mail exchange host.
        exchange: String,
    },
    /// SOA (RFC 1035 section 3.3.13); in the authority section of NXDOMAIN/NODATA answers.
    Soa {
        /// Primary name server.
        mname: String,
        /// Responsible mailbox, as a name.
        rname: String,
        /// Zone serial.
        serial: u32,
        /// Refresh interval, seconds.
        refresh: u32,
        /// Retry interval, seconds.
        retry: u32,
        /// Expire limit, seconds.
        expire: u32,
        /// Negative-caching TTL (RFC 2308).
        minimum: u32,
    },
    /// TXT (RFC 1035 section 3.3.14): the character-strings, bytes exact.
    Txt(Vec<Vec<u8>>),
    /// An OPT pseudo-record that is not the message's EDNS record (outside the additional section,
    /// or a second one, both noted in [`DnsMessage::issues`]).
    Opt(Edns),
    /// Any other type (kept in [`Record::rtype`]): raw RDATA bytes.
    Other(Vec<u8>),
    /// RDLENGTH 0: UPDATE deletions and prerequisites (RFC 2136 sections 2.4, 2.5).
    Empty,
    /// RDATA that hickory-proto could not decode for this type: raw bytes; the reason is in
    /// [`DnsMessage::issues`].
    Malformed(Vec<u8>),
}

/// EDNS(0) information from the OPT pseudo-record (RFC 6891 section 6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (the OPT record's CLASS field).
    pub udp_payload_size: u16,
    /// Upper 8 bits of the 12-bit extended RCODE.
    pub extended_rcode: u8,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit (RFC 3225).
    pub dnssec_ok: bool,
}

impl Edns {
    pub(crate) fn from_class_ttl(class: u16, ttl: u32) -> Edns {
        let [ext, version, flags, _] = ttl.to_be_bytes();
        Edns {
            udp_payload_size: class,
            extended_rcode: ext,
            version,
            dnssec_ok: flags & 0x80 != 0,
        }
    }
}

/// A parsed DNS message (RFC 1035 section 4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction ID.
    pub id: u16,
    /// QR bit: `true` for a response.
    pub is_response: bool,
    /// OPCODE.
    pub opcode: Opcode,
    /// RCODE including the EDNS extended bits when an OPT record is present (RFC 6891 section
    /// 6.1.3), see [`rcode_name`].
    pub rcode: u16,
    /// AA bit.
    pub authoritative: bool,
    /// TC bit: the answer did not fit (the client should retry over TCP).
    pub truncated: bool,
    /// RD bit.
    pub recursion_desired: bool,
    /// RA bit.
    pub recursion_available: bool,
    /// Question section (UPDATE: zone section).
    pub questions: Vec<Question>,
    /// Answer section (UPDATE: prerequisite section).
    pub answers: Vec<Record>,
    /// Authority section (UPDATE: update section).
    pub authority: Vec<Record>,
    /// Additional section, without the message's EDNS OPT record (that is in [`DnsMessage::edns`]).
    pub additional: Vec<Record>,
    /// The EDNS OPT record of the additional section, if any.
    pub edns: Option<Edns>,
    /// Size of the message on the wire, in bytes.
    pub wire_len: usize,
    /// Problems that did not stop the parse (undecodable RDATA, duplicate OPT, trailing bytes);
    /// each should become an `anomaly`.
    pub issues: Vec<String>,
}

impl DnsMessage {
    /// A message with the header's fields and room for its sections, before any section is read
    /// (both parsers start from it). `len` is the message's length on the wire.
    pub(crate) fn from_header(header: &Header, len: usize) -> Self {
        DnsMessage {
            id: header.id,
            is_response: header.is_response(),
            opcode: header.opcode(),
            rcode: header.rcode_low(),
            authoritative: header.flags & 0x0400 != 0,
            truncated: header.flags & 0x0200 != 0,
            recursion_desired: header.flags & 0x0100 != 0,
            recursion_available: header.flags & 0x0080 != 0,
            questions: Vec::with_capacity(usize::from(header.qdcount)),
            answers: Vec::with_capacity(usize::from(header.ancount)),
            authority: Vec::with_capacity(usize::from(header.nscount)),
            additional: Vec::with_capacity(usize::from(header.arcount)),
            edns: None,
            wire_len: len,
            issues: Vec::new(),
        }
    }

    /// Appends a resource record to the section it was read from (answer, authority, additional).
    pub(crate) fn push_record(&mut self, section: Section, rec: Record) {
        match section {
            Section::Answer => self.answers.push(rec),
            Section::Authority => self.authority.push(rec),
            _ => self.additional.push(rec),
        }
    }

    /// Widens the header's 4-bit RCODE with the OPT record's upper bits (RFC 6891), once every
    /// record is read.
    pub(crate) fn apply_extended_rcode(&mut self) {
        if let Some(edns) = self.edns {
            self.rcode |= u16::from(edns.extended_rcode) << 4;
        }
    }

    /// The first question, the one a `dns` event reports.
    pub fn question(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// UPDATE zone (RFC 2136 section 2.3): the single zone-section entry.
    pub fn zone(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// UPDATE prerequisites (RFC 2136 section 2.4): the answer section.
    pub fn prerequisites(&self) -> &[Record] {
        &self.answers
    }

    /// UPDATE records (RFC 2136 section 2.5): the authority section.
    pub fn updates(&self) -> &[Record] {
        &self.authority
    }

    /// The RCODE's name, see [`rcode_name`].
    pub fn rcode_name(&self) -> Cow<'static, str> {
        rcode_name(self.rcode)
    }
}

/// Which section a parse error occurred in (for UPDATE: zone, prerequisite, update, additional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Question (zone) section.
    Question,
    /// Answer (prerequisite) section.
    Answer,
    /// Authority (update) section.
    Authority,
    /// Additional section.
    Additional,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Question => "question",
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        })
    }
}

/// Why a payload is not a decodable DNS message. Each becomes an `anomaly` (layer `dns`,
/// kind [`DnsError::kind`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Shorter than the 12-byte header.
    #[error("{len} bytes is shorter than the 12-byte DNS header")]
    TooShort {
        /// Payload length.
        len: usize,
    },
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("{len} bytes is longer than the largest DNS message ({MAX_MESSAGE_LEN} bytes)")]
    TooLong {
        /// Payload length.
        len: usize,
    },
    /// The header counts cannot fit in the payload (checked before any decoding).
    #[error(
        "DNS id {id}: header announces {questions} questions and {records} records, \
         more than {len} bytes can hold"
    )]
    CountsExceedLength {
        /// Transaction ID from the header.
        id: u16,
        /// QDCOUNT.
        questions: u16,
        /// ANCOUNT + NSCOUNT + ARCOUNT.
        records: u32,
        /// Payload length.
        len: usize,
    },
    /// A name, a record's framing or the end of the data is wrong.
    #[error("DNS id {id}: malformed {section} entry {index} at offset {offset}: {reason}")]
    Malformed {
        /// Transaction ID from the header.
        id: u16,
        /// Section of the entry that failed.
        section: Section,
        /// 0-based index of the entry in its section.
        index: usize,
        /// Byte offset where the entry starts.
        offset: usize,
        /// What is wrong (hickory-proto's message or ours).
        reason: String,
    },
}

impl DnsError {
    /// Stable snake_case kind for the anomaly event.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsError::TooShort { .. } => "dns_too_short",
            DnsError::TooLong { .. } => "dns_too_long",
            DnsError::CountsExceedLength { .. } => "dns_counts_exceed_length",
            DnsError::Malformed { .. } => "dns_malformed",
        }
    }
}

/// The fixed header fields (RFC 1035 section 4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction ID.
    pub id: u16,
    /// Flags word (QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE).
    pub flags: u16,
    /// QDCOUNT (UPDATE: ZOCOUNT).
    pub qdcount: u16,
    /// ANCOUNT (UPDATE: PRCOUNT).
    pub ancount: u16,
    /// NSCOUNT (UPDATE: UPCOUNT).
    pub nscount: u16,
    /// ARCOUNT.
    pub arcount: u16,
}

impl Header {
    /// QR bit.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// OPCODE.
    pub fn opcode(&self) -> Opcode {
        Opcode(((self.flags >> 11) & 0x0F) as u8)
    }

    /// The 4-bit header RCODE (without EDNS extension).
    pub fn rcode_low(&self) -> u16 {
        self.flags & 0x000F
    }
}

/// Reads the 12-byte header; `None` when the payload is shorter. Useful to name the transaction
/// in an anomaly when [`parse_message`] fails.
pub fn parse_header(payload: &[u8]) -> Option<Header> {
    let h = payload.get(..HEADER_LEN)?;
    let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    Some(Header {
        id: w(0),
        flags: w(2),
        qdcount: w(4),
        ancount: w(6),
        nscount: w(8),
        arcount: w(10),
    })
}

/// Parses one DNS message (a UDP payload, or one message of a DNS-over-TCP stream without its
/// length prefix). Never panics; see the module docs for what is tolerated.
///
/// The common case (ASCII names, well-framed records) goes through a hand-written parser
/// ([`super::fast`]); anything else, and every error, through [`parse_message_hickory`]. Both give
/// the same result (the tests compare them).
pub fn parse_message(payload: &[u8]) -> Result<DnsMessage, DnsError> {
    match super::fast::parse(payload) {
        Some(msg) => Ok(msg),
        None => parse_message_hickory(payload),
    }
}

/// The reference parser: names and RDATA through hickory-proto's wire primitives. Same contract
/// as [`parse_message`], slower (it builds a hickory `Name` per name).
pub fn parse_message_hickory(payload: &[u8]) -> Result<DnsMessage, DnsError> {
    let len = payload.len();
    let header = parse_header(payload).ok_or(DnsError::TooShort { len })?;
    if len > MAX_MESSAGE_LEN {
        return Err(DnsError::TooLong { len });
    }
    let id = header.id;
    let records = u32::from(header.ancount) + u32::from(header.nscount) + u32::from(header.arcount);
    let min_len =
        usize::from(header.qdcount) * MIN_QUESTION_LEN + records as usize * MIN_RECORD_LEN;
    if min_len > len - HEADER_LEN {
        return Err(DnsError::CountsExceedLength {
            id,
            questions: header.qdcount,
            records,
            len,
        });
    }

    let mut msg = DnsMessage::from_header(&header, len);

    let mut dec = BinDecoder::new(payload);
    let mut cx = Ctx {
        payload,
        id,
        section: Section::Question,
        index: 0,
        offset: HEADER_LEN,
    };
    dec.read_slice(HEADER_LEN).map_err(|e| cx.err(e))?;

    for index in 0..usize::from(header.qdcount) {
        cx.at(Section::Question, index, dec.index());
        let name = Name::read(&mut dec).map_err(|e| cx.err(e))?;
        let qtype = read_u16(&mut dec).map_err(|e| cx.err(e))?;
        let qclass = read_u16(&mut dec).map_err(|e| cx.err(e))?;
        msg.questions.push(Question {
            name: name_to_string(&name),
            qtype,
            qclass,
        });
    }

    for (section, count) in [
        (Section::Answer, header.ancount),
        (Section::Authority, header.nscount),
        (Section::Additional, header.arcount),
    ] {
        for index in 0..usize::from(count) {
            cx.at(section, index, dec.index());
            let rec = read_record(&mut dec, &cx, &mut msg.issues)?;
            if rec.rtype == rtype::OPT
                && let RecordData::Opt(edns) = rec.data
            {
                if section == Section::Additional && msg.edns.is_none() {
                    msg.edns = Some(edns);
                    continue;
                }
                msg.issues.push(format!(
                    "unexpected OPT record in the {section} section (entry {index}); \
                         RFC 6891 allows one, in the additional section"
                ));
            }
            msg.push_record(section, rec);
        }
    }

    msg.apply_extended_rcode();
    if !dec.is_empty() {
        msg.issues.push(format!(
            "{} trailing bytes after the last record",
            dec.len()
        ));
    }
    Ok(msg)
}

/// Where the parser is, for error messages.
struct Ctx<'a> {
    payload: &'a [u8],
    id: u16,
    section: Section,
    index: usize,
    offset: usize,
}

impl Ctx<'_> {
    fn at(&mut self, section: Section, index: usize, offset: usize) {
        self.section = section;
        self.index = index;
        self.offset = offset;
    }

    fn err(&self, e: impl fmt::Display) -> DnsError {
        self.malformed(e.to_string())
    }

    fn malformed(&self, reason: String) -> DnsError {
        DnsError::Malformed {
            id: self.id,
            section: self.section,
            index: self.index,
            offset: self.offset,
            reason,
        }
    }
}

fn read_u16(dec: &mut BinDecoder<'_>) -> Result<u16, DecodeError> {
    Ok(dec.read_u16()?.unverified(/* any value is kept as is */))
}

/// Reads one resource record: owner name and fixed fields with hickory's decoder, RDATA framed by
/// RDLENGTH and decoded by type.
fn read_record(
    dec: &mut BinDecoder<'_>,
    cx: &Ctx<'_>,
    issues: &mut Vec<String>,
) -> Result<Record, DnsError> {
    let name = Name::read(dec).map_err(|e| cx.err(e))?;
    let rtype = read_u16(dec).map_err(|e| cx.err(e))?;
    let class = read_u16(dec).map_err(|e| cx.err(e))?;
    let ttl = dec.read_u32().map_err(|e| cx.err(e))?.unverified();
    let rdlength = usize::from(read_u16(dec).map_err(|e| cx.err(e))?);
    let start = dec.index();
    let rdata = dec
        .read_slice(rdlength)
        .map_err(|_| {
            cx.malformed(format!(
                "RDLENGTH {rdlength} runs past the end of the message ({} bytes left)",
                cx.payload.len() - start
            ))
        })?
        .unverified();
    let data = if rtype == rtype::OPT {
        RecordData::Opt(Edns::from_class_ttl(class, ttl))
    } else if rdata.is_empty() {
        RecordData::Empty
    } else {
        match decode_rdata(cx.payload, start, rdlength, rtype) {
            Ok(data) => data,
            Err(reason) => {
                issues.push(format!(
                    "{} entry {} ({} {}): undecodable RDATA: {reason}",
                    cx.section,
                    cx.index,
                    qtype_name(rtype),
                    name_to_string(&name)
                ));
                RecordData::Malformed(rdata.to_vec())
            }
        }
    };
    Ok(Record {
        name: name_to_string(&name),
        rtype,
        class,
        ttl,
        data,
    })
}

/// Decodes the RDATA of the types this crate models with hickory-proto. Compressed names inside
/// RDATA may point anywhere earlier in the message, so the decoder spans the whole payload.
pub(crate) fn decode_rdata(
    payload: &[u8],
    start: usize,
    rdlength: usize,
    rtype: u16,
) -> Result<RecordData, String> {
    if !matches!(
        rtype,
        rtype::A
            | rtype::NS
            | rtype::CNAME
            | rtype::SOA
            | rtype::PTR
            | rtype::MX
            | rtype::TXT
            | rtype::AAAA
            | rtype::SRV
    ) {
        let raw = payload.get(start..start + rdlength).unwrap_or_default();
        return Ok(RecordData::Other(raw.to_vec()));
    }
    let len = u16::try_from(rdlength).map_err(|e| e.to_string())?;
    let mut dec = BinDecoder::new(payload);
    dec.read_slice(start).map_err(|e| e.to_string())?;
    let rdata = RData::read(&mut dec, RecordType::from(rtype), Restrict::new(len))
        .map_err(|e| e.to_string())?;
    Ok(match rdata {
        RData::A(a) => RecordData::A(a.0),
        RData::AAAA(a) => RecordData::Aaaa(a.0),
        RData::NS(n) => RecordData::Ns(name_to_string(&n.0)),
        RData::CNAME(n) => RecordData::Cname(name_to_string(&n.0)),
        RData::PTR(n) => RecordData::Ptr(name_to_string(&n.0)),
        RData::MX(mx) => RecordData::Mx {
            preference: mx.preference,
            exchange: name_to_string(&mx.exchange),
        },
        RData::SRV(srv) => RecordData::Srv {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            target: name_to_string(&srv.target),
        },
        RData::SOA(soa) => RecordData::Soa {
            mname: name_to_string(&soa.mname),
            rname: name_to_string(&soa.rname),
            serial: soa.serial,
            // RFC 1035 defines these as unsigned 32-bit intervals; hickory stores the same bits
            // as i32.
            refresh: u32::from_be_bytes(soa.refresh.to_be_bytes()),
            retry: u32::from_be_bytes(soa.retry.to_be_bytes()),
            expire: u32::from_be_bytes(soa.expire.to_be_bytes()),
            minimum: soa.minimum,
        },
        RData::TXT(txt) => RecordData::Txt(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
        _ => {
            let raw = payload.get(start..start + rdlength).unwrap_or_default();
            RecordData::Other(raw.to_vec())
        }
    })
}

/// Renders a wire name exactly (see the module docs): labels joined with `.`, case kept, no
/// trailing dot, root as `.`, `.` and `\` inside labels escaped, non-UTF-8 bytes as `\DDD`.
pub(crate) fn name_to_string(name: &Name) -> String {
    let mut out = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_label(&mut out, label);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Appends one label's bytes, escaped as described in the module docs.
pub fn push_label(out: &mut String, label: &[u8]) {
    for chunk in label.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '.' => out.push_str("\\."),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\{b:03}");
        }
    }
}

/// RCODE name (RFC 1035 section 4.1.1, RFC 2136 section 2.2, RFC 6891, RFC 8945, RFC 7873),
/// or `RCODE<n>`. 16 is `BADVERS` (in a TSIG record it would mean BADSIG).
pub fn rcode_name(rcode: u16) -> Cow<'static, str> {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        n => return format!("RCODE{n}").into(),
    };
    name.into()
}

/// TYPE / QTYPE mnemonic (IANA registry), or `TYPE<n>` as in RFC 3597 section 5.
pub fn qtype_name(qtype: u16) -> Cow<'static, str> {
    let name = match qtype {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        n => return format!("TYPE{n}").into(),
    };
    name.into()
}

/// CLASS mnemonic, or `CLASS<n>` (RFC 3597 section 5). For mDNS, mask bit 15 first.
pub fn class_name(class: u16) -> Cow<'static, str> {
    match class {
        class::IN => "IN".into(),
        class::CH => "CH".into(),
        class::HS => "HS".into(),
        class::NONE => "NONE".into(),
        class::ANY => "ANY".into(),
        n => format!("CLASS{n}").into(),
    }
}
