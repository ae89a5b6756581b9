//! Test-only capture builder: classic pcap (Ethernet) with TCP connections and UDP datagrams made by
//! etherparse's `PacketBuilder`. Used to make synthetic captures for tests and benches.
#![allow(dead_code)]

use std::net::IpAddr;

use etherparse::PacketBuilder;

/// One captured packet: time in microseconds since the epoch and the Ethernet frame.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub ts_us: u64,
    pub frame: Vec<u8>,
}

/// Serialises packets as a little-endian microsecond pcap with link type Ethernet.
pub fn pcap_bytes(pkts: &[Pkt]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + pkts.iter().map(|p| p.frame.len() + 16).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for p in pkts {
        out.extend_from_slice(&((p.ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((p.ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(p.frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&p.frame);
    }
    out
}

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn builder(
    src: IpAddr,
    dst: IpAddr,
    to_server: bool,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let (sm, dm) = if to_server {
        (CLIENT_MAC, SERVER_MAC)
    } else {
        (SERVER_MAC, CLIENT_MAC)
    };
    let eth = PacketBuilder::ethernet2(sm, dm);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    }
}

/// A UDP datagram.
pub fn udp(
    ts_us: u64,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    payload: &[u8],
    to_server: bool,
) -> Pkt {
    let b = builder(src.0, dst.0, to_server).udp(src.1, dst.1);
    let mut frame = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut frame, payload).expect("write udp");
    Pkt { ts_us, frame }
}

/// A TCP connection whose sequence numbers are tracked per direction.
pub struct Conn {
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub seq: [u32; 2],
    pub ts_us: u64,
    /// Microseconds added to the clock per packet.
    pub step_us: u64,
}

impl Conn {
    pub fn new(
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        isn_c: u32,
        isn_s: u32,
        ts_us: u64,
    ) -> Conn {
        Conn {
            client,
            server,
            seq: [isn_c, isn_s],
            ts_us,
            step_us: 100,
        }
    }

    fn tick(&mut self) -> u64 {
        self.ts_us += self.step_us;
        self.ts_us
    }

    /// A segment in direction `to_server` at explicit `seq` with flags.
    #[allow(clippy::too_many_arguments)]
    pub fn segment_at(
        &mut self,
        to_server: bool,
        seq: u32,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
    ) -> Pkt {
        let (src, dst) = if to_server {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let peer_next = self.seq[usize::from(to_server)];
        let mut b = builder(src.0, dst.0, to_server).tcp(src.1, dst.1, seq, 65_535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(peer_next);
        }
        if fin {
            b = b.fin();
        }
        if rst {
            b = b.rst();
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).expect("write tcp");
        let ts_us = self.tick();
        Pkt { ts_us, frame }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Pkt> {
        let c = self.seq[0];
        let s = self.seq[1];
        let syn = self.segment_at(true, c, true, false, false, false, &[]);
        self.seq[0] = c.wrapping_add(1);
        let synack = self.segment_at(false, s, true, true, false, false, &[]);
        self.seq[1] = s.wrapping_add(1);
        let ack = self.segment_at(true, self.seq[0], false, true, false, false, &[]);
        vec![syn, synack, ack]
    }

    /// Data in one direction, cut into segments of at most `mss` bytes.
    pub fn data(&mut self, to_server: bool, bytes: &[u8], mss: usize) -> Vec<Pkt> {
        let d = if to_server { 0 } else { 1 };
        bytes
            .chunks(mss.max(1))
            .map(|chunk| {
                let seq = self.seq[d];
                let p = self.segment_at(to_server, seq, false, true, false, false, chunk);
                self.seq[d] = seq.wrapping_add(chunk.len() as u32);
                p
            })
            .collect()
    }

    /// FIN from the client, FIN-ACK from the server, final ACK.
    pub fn close(&mut self) -> Vec<Pkt> {
        let c = self.seq[0];
        let fin = self.segment_at(true, c, false, true, true, false, &[]);
        self.seq[0] = c.wrapping_add(1);
        let s = self.seq[1];
        let finack = self.segment_at(false, s, false, true, true, false, &[]);
        self.seq[1] = s.wrapping_add(1);
        let ack = self.segment_at(true, self.seq[0], false, true, false, false, &[]);
        vec![fin, finack, ack]
    }
}
