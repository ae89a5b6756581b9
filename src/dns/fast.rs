//! Hand-written parser for the common case of a DNS message: ASCII names, and RDATA of the types
//! the `dns` event shows field by field (A, AAAA, CNAME, PTR, NS, MX, SRV) when it is exactly
//! framed by its RDLENGTH.
//!
//! It exists because hickory-proto's `Name::read` builds a `Name` (two vectors) per name and the
//! rendering then walks it character by character: on a busy resolver's traffic that was most of
//! the DNS cost. The result must be identical to [`super::message::parse_message_hickory`], which
//! stays the reference: this parser gives up (`None`) on anything it does not model exactly
//! (non-ASCII label bytes, names near the 255-byte limit, any error, undecodable RDATA), and the
//! caller then runs the reference parser, which produces the same message or the exact error text.
//! RDATA of other types (SOA, TXT, …) goes to the reference decoder record by record.
//!
//! Name rules replicate hickory's `Name::read` (RFC 1035 section 4.1.4): labels of at most 63
//! bytes, compression pointers only to offsets before the start of the name (or of the label run
//! being read), never reading at or beyond the start of the previous run after a jump (so
//! overlapping and looping pointers fail), at most 255 bytes encoded.

use super::message::{
    DnsMessage, Edns, HEADER_LEN, MAX_MESSAGE_LEN, Question, Record, RecordData, Section,
    decode_rdata, parse_header, rtype,
};

/// Smallest encoding of a question and of a record (as in the reference parser).
const MIN_QUESTION_LEN: usize = 5;
const MIN_RECORD_LEN: usize = 11;
/// hickory's bound on a name's encoded length (`Name::MAX_LENGTH`).
const MAX_NAME_LEN: usize = 255;

/// Parses `payload` when it is a well-formed message of the common shape; `None` otherwise (the
/// caller falls back to the reference parser).
pub(crate) fn parse(payload: &[u8]) -> Option<DnsMessage> {
    let len = payload.len();
    let header = parse_header(payload)?;
    if len > MAX_MESSAGE_LEN {
        return None;
    }
    let records =
        usize::from(header.ancount) + usize::from(header.nscount) + usize::from(header.arcount);
    if usize::from(header.qdcount) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN > len - HEADER_LEN
    {
        return None;
    }
    let mut msg = DnsMessage::from_header(&header, len);
    let mut pos = HEADER_LEN;
    for _ in 0..header.qdcount {
        let (name, next) = read_name(payload, pos)?;
        pos = next;
        let qtype = be16(payload, pos)?;
        let qclass = be16(payload, pos + 2)?;
        pos += 4;
        msg.questions.push(Question {
            name,
            qtype,
            qclass,
        });
    }
    for (section, count) in [
        (Section::Answer, header.ancount),
        (Section::Authority, header.nscount),
        (Section::Additional, header.arcount),
    ] {
        for _ in 0..count {
            let (rec, next) = read_record(payload, pos)?;
            pos = next;
            if let RecordData::Opt(edns) = rec.data {
                // A misplaced or second OPT record is noted as an issue by the reference parser.
                if section != Section::Additional || msg.edns.is_some() {
                    return None;
                }
                msg.edns = Some(edns);
                continue;
            }
            msg.push_record(section, rec);
        }
    }
    msg.apply_extended_rcode();
    if pos != len {
        // Trailing bytes: an issue with the reference parser's wording.
        return None;
    }
    Some(msg)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads one record at `pos`; returns it and the offset after it.
fn read_record(payload: &[u8], pos: usize) -> Option<(Record, usize)> {
    let (name, pos) = read_name(payload, pos)?;
    let rtype = be16(payload, pos)?;
    let class = be16(payload, pos + 2)?;
    let ttl = be32(payload, pos + 4)?;
    let rdlength = usize::from(be16(payload, pos + 8)?);
    let start = pos + 10;
    let end = start + rdlength;
    let rdata = payload.get(start..end)?;
    let data = if rtype == rtype::OPT {
        RecordData::Opt(Edns::from_class_ttl(class, ttl))
    } else if rdata.is_empty() {
        RecordData::Empty
    } else {
        match read_rdata(payload, start, end, rtype) {
            Some(data) => data,
            // Other types, or anything unusual: the reference decoder, whose result is kept
            // (its errors become issues with the reference wording, so give up then).
            None => decode_rdata(payload, start, rdlength, rtype).ok()?,
        }
    };
    Some((
        Record {
            name,
            rtype,
            class,
            ttl,
            data,
        },
        end,
    ))
}

/// RDATA of the common types when it exactly fills `start..end`; `None` for anything else.
fn read_rdata(payload: &[u8], start: usize, end: usize, rtype: u16) -> Option<RecordData> {
    let rdata = payload.get(start..end)?;
    // A name in RDATA must end exactly where the RDATA does.
    let name_at = |at: usize| -> Option<String> {
        let (s, after) = read_name(payload, at)?;
        (after == end).then_some(s)
    };
    Some(match rtype {
        rtype::A => RecordData::A(<[u8; 4]>::try_from(rdata).ok()?.into()),
        rtype::AAAA => RecordData::Aaaa(<[u8; 16]>::try_from(rdata).ok()?.into()),
        rtype::CNAME => RecordData::Cname(name_at(start)?),
        rtype::PTR => RecordData::Ptr(name_at(start)?),
        rtype::NS => RecordData::Ns(name_at(start)?),
        rtype::MX => RecordData::Mx {
            preference: be16(payload, start)?,
            exchange: name_at(start + 2)?,
        },
        rtype::SRV => RecordData::Srv {
            priority: be16(payload, start)?,
            weight: be16(payload, start + 2)?,
            port: be16(payload, start + 4)?,
            target: name_at(start + 6)?,
        },
        _ => return None,
    })
}

/// A rendered name on the stack: at most 255 wire bytes, each rendered as at most two characters
/// (`\.`, `\\`), so one allocation of the exact size makes the `String`.
struct NameBuf {
    buf: [u8; 2 * MAX_NAME_LEN],
    len: usize,
}

impl NameBuf {
    fn new() -> Self {
        NameBuf {
            buf: [0; 2 * MAX_NAME_LEN],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        // In bounds: see the type docs (the caller stops at MAX_NAME_LEN wire bytes).
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Appends bytes that need no escape.
    fn extend(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }

    fn finish(&self) -> Option<String> {
        let bytes = self.buf.get(..self.len)?;
        // Only ASCII was pushed.
        std::str::from_utf8(bytes).ok().map(String::from)
    }
}

/// Reads the name at `pos` and renders it (as in the module docs of [`super::message`]); returns
/// it and the offset after the name as it appears at `pos` (after its first pointer, or its root
/// label). `None` when the name is malformed or not plain ASCII.
fn read_name(msg: &[u8], pos: usize) -> Option<(String, usize)> {
    let mut out = NameBuf::new();
    let mut i = pos;
    // Start of the run of labels being read: pointers must go before it.
    let mut run_start = pos;
    // After a jump, reading must stay before the start of the run that jumped.
    let mut limit = usize::MAX;
    let mut end = None;
    // Encoded length so far: the root byte plus each label with its length byte.
    let mut encoded = 1;
    loop {
        if i >= limit {
            return None;
        }
        let b = *msg.get(i)?;
        match b >> 6 {
            0 if b == 0 => {
                if out.len == 0 {
                    out.push(b'.');
                }
                return Some((out.finish()?, end.unwrap_or(i + 1)));
            }
            0 => {
                let len = usize::from(b);
                let label = msg.get(i + 1..i + 1 + len)?;
                encoded += len + 1;
                if encoded > MAX_NAME_LEN {
                    return None;
                }
                if out.len != 0 {
                    out.push(b'.');
                }
                if label.iter().all(|&c| c < 0x80 && c != b'.' && c != b'\\') {
                    // The common case: nothing to escape, copy the label whole.
                    out.extend(label);
                    i += 1 + len;
                    continue;
                }
                for &c in label {
                    match c {
                        // Non-ASCII: the reference rendering handles UTF-8 and `\DDD`.
                        0x80.. => return None,
                        b'.' | b'\\' => {
                            out.push(b'\\');
                            out.push(c);
                        }
                        c => out.push(c),
                    }
                }
                i += 1 + len;
            }
            3 => {
                let lo = *msg.get(i + 1)?;
                let ptr = usize::from(b & 0x3F) << 8 | usize::from(lo);
                if ptr >= run_start {
                    return None;
                }
                end.get_or_insert(i + 2);
                limit = run_start;
                run_start = ptr;
                i = ptr;
            }
            _ => return None,
        }
    }
}
