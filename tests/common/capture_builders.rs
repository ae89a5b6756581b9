//! Builders for test captures and frames, and a reader that collects everything a source yields.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use kmsscope::capture::{CaptureError, Notice, Opened, PacketSource, Sources, open_reader};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique path under the temp dir.
pub fn tmp_path(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "kmsscope-capture-test-{}-{n}-{name}",
        std::process::id()
    ))
}

/// A temp file that is removed when dropped; derefs to its path.
pub struct TmpFile(String);

impl std::ops::Deref for TmpFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TmpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to a unique temp file, removed when the returned guard drops.
pub fn write_tmp(name: &str, bytes: &[u8]) -> TmpFile {
    let p = tmp_path(name);
    std::fs::write(&p, bytes).expect("write temp file");
    TmpFile(p.to_string_lossy().into_owned())
}

/// One record: (ts_sec, ts_frac, data, orig_len).
pub type Rec<'a> = (u32, u32, &'a [u8], u32);

fn put32(v: &mut Vec<u8>, x: u32, big: bool) {
    v.extend_from_slice(&if big {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    });
}
fn put16(v: &mut Vec<u8>, x: u16, big: bool) {
    v.extend_from_slice(&if big {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    });
}

/// A classic pcap file.
pub fn pcap(big: bool, nanos: bool, link: u32, snaplen: u32, recs: &[Rec]) -> Vec<u8> {
    let mut v = Vec::new();
    put32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, big);
    put16(&mut v, 2, big);
    put16(&mut v, 4, big);
    put32(&mut v, 0, big);
    put32(&mut v, 0, big);
    put32(&mut v, snaplen, big);
    put32(&mut v, link, big);
    for &(s, f, d, o) in recs {
        put32(&mut v, s, big);
        put32(&mut v, f, big);
        put32(&mut v, d.len() as u32, big);
        put32(&mut v, o, big);
        v.extend_from_slice(d);
    }
    v
}

/// pcapng writer.
pub struct Ng {
    pub big: bool,
    pub buf: Vec<u8>,
    /// Offsets at which blocks start.
    pub blocks: Vec<usize>,
}

impl Default for Ng {
    fn default() -> Self {
        Self::new()
    }
}

impl Ng {
    pub fn new() -> Ng {
        Ng {
            big: false,
            buf: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// A generic block with the given body (padded to 4 bytes).
    pub fn block(&mut self, btype: u32, body: &[u8]) -> &mut Self {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        self.blocks.push(self.buf.len());
        let big = self.big;
        put32(&mut self.buf, btype, big);
        put32(&mut self.buf, len, big);
        self.buf.extend_from_slice(body);
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        put32(&mut self.buf, len, big);
        self
    }

    /// Section header; switches the byte order for what follows.
    pub fn shb(&mut self, big: bool) -> &mut Self {
        self.big = big;
        let mut body = Vec::new();
        put32(&mut body, 0x1a2b_3c4d, big);
        put16(&mut body, 1, big);
        put16(&mut body, 0, big);
        body.extend_from_slice(&(-1i64).to_le_bytes());
        self.block(0x0a0d_0d0a, &body)
    }

    pub fn idb(
        &mut self,
        link: u16,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> &mut Self {
        let big = self.big;
        let mut body = Vec::new();
        put16(&mut body, link, big);
        put16(&mut body, 0, big);
        put32(&mut body, snaplen, big);
        if let Some(r) = tsresol {
            put16(&mut body, 9, big);
            put16(&mut body, 1, big);
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            put16(&mut body, 14, big);
            put16(&mut body, 8, big);
            body.extend_from_slice(&if big {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        if tsresol.is_some() || tsoffset.is_some() {
            put16(&mut body, 0, big);
            put16(&mut body, 0, big);
        }
        self.block(1, &body)
    }

    pub fn epb(&mut self, if_id: u32, ts: u64, data: &[u8], orig_len: u32) -> &mut Self {
        let big = self.big;
        let mut body = Vec::new();
        put32(&mut body, if_id, big);
        put32(&mut body, (ts >> 32) as u32, big);
        put32(&mut body, ts as u32, big);
        put32(&mut body, data.len() as u32, big);
        put32(&mut body, orig_len, big);
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    pub fn spb(&mut self, data: &[u8], orig_len: u32) -> &mut Self {
        let big = self.big;
        let mut body = Vec::new();
        put32(&mut body, orig_len, big);
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}

/// A packet as collected (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub frame: u64,
    pub ts: i64,
    pub link: u32,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

/// Everything one source yielded.
#[derive(Debug, Default)]
pub struct Read {
    pub name: String,
    pub packets: Vec<Pkt>,
    pub notices: Vec<Notice>,
    pub error: Option<CaptureError>,
}

/// Reads one source to the end (bounded number of calls).
pub fn drain(src: &mut dyn PacketSource) -> Read {
    let mut r = Read {
        name: src.name().to_owned(),
        ..Read::default()
    };
    for _ in 0..10_000_000u64 {
        match src.next_packet() {
            Ok(Some(p)) => r.packets.push(Pkt {
                frame: p.frame,
                ts: p.ts.0,
                link: p.link.0,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            }),
            Ok(None) => {
                r.notices.extend(src.take_notices());
                // The end is sticky.
                assert!(matches!(src.next_packet(), Ok(None)));
                return r;
            }
            Err(e) => {
                r.notices.extend(src.take_notices());
                r.error = Some(e);
                assert!(matches!(src.next_packet(), Ok(None)));
                return r;
            }
        }
        r.notices.extend(src.take_notices());
    }
    panic!("source did not end");
}

/// What an input yields: per item, a read source, a skip notice or a member error.
#[derive(Debug)]
pub enum Item {
    Source(Read),
    Skipped(Notice),
    Error(CaptureError),
}

pub fn read_sources(s: Sources) -> Vec<Item> {
    s.map(|i| match i {
        Ok(Opened::Source(mut src)) => Item::Source(drain(src.as_mut())),
        Ok(Opened::Skipped(n)) => Item::Skipped(n),
        Err(e) => Item::Error(e),
    })
    .collect()
}

/// Opens bytes as a non-seekable stream and expects exactly one source.
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<Read, CaptureError> {
    let s = open_reader(name, Box::new(std::io::Cursor::new(bytes.to_vec())))?;
    let mut items = read_sources(s);
    assert_eq!(items.len(), 1, "{items:?}");
    match items.pop() {
        Some(Item::Source(r)) => Ok(r),
        other => panic!("expected one source, got {other:?}"),
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

// ---- frames ----

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Ethernet with VLAN tags (tpid, vid) in order, then `ethertype`.
pub fn eth_vlan(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for &(tpid, vid) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&vid.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// IPv4 header + payload. `frag`: (more fragments, offset in bytes).
pub fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    frag: (bool, u16),
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let ff = (u16::from(frag.0) << 13) | (frag.1 / 8);
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&ff.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

/// TCP header (20 bytes, no options) + payload. flags: FIN 1, SYN 2, RST 4, PSH 8, ACK 16.
pub fn tcp(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.extend_from_slice(&[0x50, flags]);
    v.extend_from_slice(&window.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

pub const A4: [u8; 4] = [10, 77, 0, 20];
pub const B4: [u8; 4] = [10, 77, 0, 10];
pub const A6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20];
pub const B6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
