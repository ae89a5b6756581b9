//! BENCH-ONLY: the bare pcap-parser record walk, the upper bound any analyzer reading the same file
//! can reach: every record header parsed, one byte of every packet touched, nothing decoded.
#![allow(dead_code)]

use std::io::Read;

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};

/// What a walk saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub packets: u64,
    /// Sum of the captured lengths.
    pub bytes: u64,
    /// XOR of the first byte of every packet (keeps the data reads from being optimised away).
    pub xor: u8,
}

/// Walks a classic pcap held in memory with pcap-parser's frame parsers.
pub fn walk_slice(data: &[u8]) -> Walk {
    let mut w = Walk::default();
    let Ok((mut rest, hdr)) = pcap_parser::parse_pcap_header(data) else {
        return w;
    };
    let parse = if hdr.is_bigendian() {
        pcap_parser::parse_pcap_frame_be
    } else {
        pcap_parser::parse_pcap_frame
    };
    while let Ok((r, b)) = parse(rest) {
        w.packets += 1;
        w.bytes += u64::from(b.caplen);
        w.xor ^= b.data.first().copied().unwrap_or(0);
        rest = r;
    }
    w
}

/// Walks a classic pcap from a reader with pcap-parser's streaming `LegacyPcapReader` (1 MiB
/// circular buffer), as a file-reading tool would.
pub fn walk_reader<R: Read>(r: R) -> Result<Walk, String> {
    let mut w = Walk::default();
    let mut rd = LegacyPcapReader::new(1 << 20, r).map_err(|e| format!("{e:?}"))?;
    loop {
        match rd.next() {
            Ok((off, block)) => {
                if let PcapBlockOwned::Legacy(b) = block {
                    w.packets += 1;
                    w.bytes += u64::from(b.caplen);
                    w.xor ^= b.data.first().copied().unwrap_or(0);
                }
                rd.consume(off);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => rd.refill().map_err(|e| format!("{e:?}"))?,
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    Ok(w)
}
