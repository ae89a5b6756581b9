//! Is this UDP/TCP payload DNS? Ports 53 and 5353 are DNS by assignment; on any other port the
//! payload has to pass a cheap structural check first, so that the full parse runs only for
//! packets that are almost certainly DNS.
//!
//! The check walks the whole message without allocating (RFC 1035 section 4.1): header sanity
//! (OPCODE QUERY/STATUS/NOTIFY/UPDATE, Z bit clear, a query's RCODE 0, one to
//! [`MAX_DETECT_QUESTIONS`] questions, counts that fit the length), question names made of
//! printable-ASCII labels of 1..=63 bytes without compression, a known QCLASS, then every record's
//! owner name (compression pointers must point backwards into the message), a known CLASS and an
//! RDLENGTH that fits; the last record must end exactly at the end of the payload. Random or bulk
//! data (NTP, QUIC, RTP, encrypted payloads) practically never passes all of these.

use super::message::{HEADER_LEN, MAX_MESSAGE_LEN, class, rtype};

/// Standard DNS port (RFC 1035 section 4.2).
pub const DNS_PORT: u16 = 53;
/// Multicast DNS port (RFC 6762). Responses there are mostly unsolicited announcements.
pub const MDNS_PORT: u16 = 5353;

/// Most questions accepted in a message on a non-standard port. Real queries carry exactly one
/// (RFC 9619 makes QDCOUNT > 1 an error for QUERY); mDNS may carry more, but mDNS has its port.
pub const MAX_DETECT_QUESTIONS: u16 = 4;

/// Longest encoded name (RFC 1035 section 3.1).
const MAX_NAME_WIRE_LEN: usize = 255;

/// True when `port` is one where every payload is parsed as DNS without a heuristic check.
pub fn is_dns_port(port: u16) -> bool {
    port == DNS_PORT || port == MDNS_PORT
}

/// Cheap structural check for a DNS message on a non-standard port (see the module docs).
/// Never panics, allocates nothing, and looks at each byte at most a few times.
pub fn looks_like_dns(payload: &[u8]) -> bool {
    check(payload).is_some()
}

/// [`looks_like_dns`] for the start of a TCP stream: a 2-byte length prefix (RFC 1035 section
/// 4.2.2) followed by a message that passes the check. `false` until the whole first message is
/// there.
pub fn looks_like_dns_tcp(stream: &[u8]) -> bool {
    match stream {
        [hi, lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            rest.get(..len).is_some_and(looks_like_dns)
        }
        _ => false,
    }
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn known_class(c: u16) -> bool {
    // Bit 15 is mDNS's unicast-response / cache-flush bit (RFC 6762).
    matches!(
        c & 0x7FFF,
        class::IN | class::CH | class::HS | class::NONE | class::ANY
    )
}

fn check(p: &[u8]) -> Option<()> {
    if p.len() < HEADER_LEN + 5 || p.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let flags = be16(p, 2)?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0x0F;
    let rcode = flags & 0x0F;
    if !matches!(opcode, 0 | 2 | 4 | 5) || flags & 0x0040 != 0 {
        return None;
    }
    if (!is_response && rcode != 0) || rcode > 10 {
        return None;
    }
    let qd = be16(p, 4)?;
    let records = usize::from(be16(p, 6)?) + usize::from(be16(p, 8)?) + usize::from(be16(p, 10)?);
    if qd == 0 || qd > MAX_DETECT_QUESTIONS {
        return None;
    }
    if usize::from(qd) * 5 + records * 11 > p.len() - HEADER_LEN {
        return None;
    }
    let mut off = HEADER_LEN;
    for _ in 0..qd {
        off = skip_question_name(p, off)?;
        let qtype = be16(p, off)?;
        let qclass = be16(p, off + 2)?;
        if qtype == 0 || !known_class(qclass) {
            return None;
        }
        off += 4;
    }
    for _ in 0..records {
        off = skip_record_name(p, off)?;
        let rt = be16(p, off)?;
        let rclass = be16(p, off + 2)?;
        let rdlength = usize::from(be16(p, off + 8)?);
        if rt == 0 || (rt != rtype::OPT && !known_class(rclass)) {
            return None;
        }
        off += 10;
        if rdlength > p.len() - off {
            return None;
        }
        off += rdlength;
    }
    (off == p.len()).then_some(())
}

/// A question name on a non-standard port: plain labels of printable ASCII, no pointers.
fn skip_question_name(p: &[u8], mut off: usize) -> Option<usize> {
    let start = off;
    loop {
        let len = usize::from(*p.get(off)?);
        if len == 0 {
            return Some(off + 1);
        }
        if len > 63 {
            return None;
        }
        let label = p.get(off + 1..off + 1 + len)?;
        if !label.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        off += 1 + len;
        if off - start > MAX_NAME_WIRE_LEN {
            return None;
        }
    }
}

/// A record owner name: labels (any bytes) optionally ending in a pointer to an earlier offset
/// inside the message body. The pointer target is not followed (the full parser does that).
fn skip_record_name(p: &[u8], mut off: usize) -> Option<usize> {
    let start = off;
    loop {
        let b = *p.get(off)?;
        match b & 0xC0 {
            0x00 if b == 0 => return Some(off + 1),
            0x00 => {
                off += 1 + usize::from(b);
                if off > p.len() || off - start > MAX_NAME_WIRE_LEN {
                    return None;
                }
            }
            0xC0 => {
                let target = usize::from(be16(p, off)? & 0x3FFF);
                return (HEADER_LEN..start).contains(&target).then_some(off + 2);
            }
            _ => return None,
        }
    }
}
