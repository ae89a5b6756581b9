//! A minimal pcapng writer (draft-ietf-opsawg-pcapng): one section header block, one interface
//! description block, then one enhanced packet block per packet, little-endian. Used by
//! `kmsscope live --write-pcap` so that a live session can be attached to a ticket and read back by
//! kmsscope, Wireshark or tcpdump. pcap-parser only reads, hence this.
//!
//! Timestamps are written in nanoseconds (`if_tsresol` = 9), the resolution of [`Ts`].

use std::io::{self, Write};

use super::{LinkType, RawPacket};
use crate::time::Ts;

/// Section Header Block type (§4.1).
const SHB: u32 = 0x0A0D_0D0A;
/// Interface Description Block type (§4.2).
const IDB: u32 = 1;
/// Enhanced Packet Block type (§4.3).
const EPB: u32 = 6;
/// Byte-order magic (§4.1).
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// `opt_endofopt`.
const OPT_END: u16 = 0;
/// `shb_userappl` (§4.1).
const SHB_USERAPPL: u16 = 4;
/// `if_name` (§4.2).
const IF_NAME: u16 = 2;
/// `if_tsresol` (§4.2).
const IF_TSRESOL: u16 = 9;

/// Writes a pcapng capture of packets from one interface.
pub struct PcapNgWriter<W: Write> {
    out: W,
    snaplen: u32,
    packets: u64,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Appends one option (code, length, value, padding) to `buf`.
fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&value[..usize::from(len)]);
    buf.extend(std::iter::repeat_n(0u8, pad4(usize::from(len))));
}

/// Writes a block: type, total length, body, total length again.
fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(12 + body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the section header and the interface description (link type, snap length, and
    /// `if_name` when given); packets follow with [`write_packet`](Self::write_packet).
    pub fn new(
        mut out: W,
        link: LinkType,
        snaplen: u32,
        if_name: Option<&str>,
    ) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(64);
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let app = concat!("kmsscope ", env!("CARGO_PKG_VERSION"));
        option(&mut shb, SHB_USERAPPL, app.as_bytes());
        option(&mut shb, OPT_END, &[]);
        block(&mut out, SHB, &shb)?;

        let link16 = u16::try_from(link.0).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("link type {} does not fit pcapng", link.0),
            )
        })?;
        let mut idb = Vec::with_capacity(64);
        idb.extend_from_slice(&link16.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        if let Some(name) = if_name {
            option(&mut idb, IF_NAME, name.as_bytes());
        }
        option(&mut idb, IF_TSRESOL, &[9]);
        option(&mut idb, OPT_END, &[]);
        block(&mut out, IDB, &idb)?;
        Ok(PcapNgWriter {
            out,
            snaplen,
            packets: 0,
        })
    }

    /// Appends one packet as an enhanced packet block on interface 0. Data beyond the snap length
    /// declared in the interface description is cut (the original length is kept).
    pub fn write_packet(&mut self, pkt: &RawPacket<'_>) -> io::Result<()> {
        let data = match usize::try_from(self.snaplen) {
            Ok(s) if s > 0 && pkt.data.len() > s => &pkt.data[..s],
            _ => pkt.data,
        };
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let Ts(ns) = pkt.ts;
        let units = u64::try_from(ns).unwrap_or(0);
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(&0u32.to_le_bytes());
        head[4..8].copy_from_slice(&((units >> 32) as u32).to_le_bytes());
        head[8..12].copy_from_slice(&(units as u32).to_le_bytes());
        head[12..16].copy_from_slice(&caplen.to_le_bytes());
        head[16..20].copy_from_slice(&pkt.orig_len.max(caplen).to_le_bytes());
        let pad = pad4(data.len());
        let total = u32::try_from(12 + head.len() + data.len() + pad)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
        self.out.write_all(&EPB.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{Opened, open_reader};

    fn pkt(frame: u64, ns: i64, data: &[u8], orig_len: u32) -> RawPacket<'_> {
        RawPacket {
            frame,
            ts: Ts(ns),
            link: LinkType::ETHERNET,
            data,
            orig_len,
        }
    }

    /// Reads a capture back with the crate's own reader: (frame, ts, link, data, orig_len).
    fn read_back(bytes: Vec<u8>) -> Vec<(u64, i64, LinkType, Vec<u8>, u32)> {
        let mut sources = open_reader("mem.pcapng", Box::new(std::io::Cursor::new(bytes)))
            .expect("open written capture");
        let Some(Ok(Opened::Source(mut src))) = sources.next() else {
            panic!("no source");
        };
        let mut out = Vec::new();
        while let Some(p) = src.next_packet().expect("read packet") {
            out.push((p.frame, p.ts.0, p.link, p.data.to_vec(), p.orig_len));
        }
        assert!(src.take_notices().is_empty(), "reader notices");
        out
    }

    #[test]
    fn round_trip_through_the_reader() {
        let a: Vec<u8> = (0..60u8).collect();
        let b: Vec<u8> = (0..61u8).rev().collect();
        let c: Vec<u8> = vec![0xAB; 1514];
        let mut w = PcapNgWriter::new(Vec::new(), LinkType::ETHERNET, 65535, Some("vb")).unwrap();
        w.write_packet(&pkt(1, 1_700_000_000_123_456_789, &a, 60))
            .unwrap();
        w.write_packet(&pkt(2, 1_700_000_001_000_000_001, &b, 61))
            .unwrap();
        w.write_packet(&pkt(3, 1_700_000_002_999_999_999, &c, 1514))
            .unwrap();
        assert_eq!(w.packets(), 3);
        let bytes = w.into_inner().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let got = read_back(bytes);
        assert_eq!(
            got,
            vec![
                (1, 1_700_000_000_123_456_789, LinkType::ETHERNET, a, 60),
                (2, 1_700_000_001_000_000_001, LinkType::ETHERNET, b, 61),
                (3, 1_700_000_002_999_999_999, LinkType::ETHERNET, c, 1514),
            ]
        );
    }

    #[test]
    fn snaplen_cuts_and_keeps_the_original_length() {
        let long = vec![7u8; 200];
        let mut w = PcapNgWriter::new(Vec::new(), LinkType::RAW, 128, None).unwrap();
        w.write_packet(&RawPacket {
            link: LinkType::RAW,
            ..pkt(1, 5, &long, 200)
        })
        .unwrap();
        let got = read_back(w.into_inner().unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, LinkType::RAW);
        assert_eq!(got[0].3.len(), 128);
        assert_eq!(got[0].4, 200);
    }

    #[test]
    fn empty_capture_is_valid() {
        let w = PcapNgWriter::new(Vec::new(), LinkType::LINUX_SLL2, 65535, Some("any")).unwrap();
        assert!(read_back(w.into_inner().unwrap()).is_empty());
    }

    #[test]
    fn refuses_link_types_beyond_16_bits() {
        assert!(PcapNgWriter::new(Vec::new(), LinkType(70000), 65535, None).is_err());
    }
}
