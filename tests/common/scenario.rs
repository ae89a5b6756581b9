//! TEST-ONLY scenario builder: whole synthetic captures of KMS discovery and activation, made from
//! the other test encoders (pcap.rs for Ethernet/IP/TCP/UDP, dcerpc_encoder.rs for the PDUs,
//! kms_encoder.rs for valid v4/v5/v6 requests and responses) plus hand-built DNS messages. Each
//! method appends the packets of one step (a DNS exchange, a refused or unanswered connection, a
//! KMS call on its own connection) at the scenario's clock, which then advances.
//!
//! Include after its dependencies:
//! `#[path = "common/pcap.rs"] mod pcap;` `#[path = "common/kms_encoder.rs"] mod kms_encoder;`
//! `#[path = "common/dcerpc_encoder.rs"] mod dcerpc_encoder;` `#[path = "common/scenario.rs"] mod scenario;`
#![allow(dead_code)]

use std::net::IpAddr;

use kmsscope::dcerpc::{SyntaxId, TransferSyntax};
use kmsscope::guid::Guid;
use kmsscope::kms::{KmsRequest, KmsVersion, LicenseStatus};

use crate::dcerpc_encoder as rpc;
use crate::kms_encoder::{ResponseSecrets, echo_response, encode_request, encode_response, guid};
use crate::pcap::{Conn, Pkt, pcap_bytes, udp};

/// 2026-11-23T15:00:00Z in microseconds since the epoch (the interop captures' day).
pub const START_US: u64 = 1_795_446_000_000_000;
/// FILETIME ticks between 1601 and 1970.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;
pub const MINUTE_US: u64 = 60_000_000;
pub const HOUR_US: u64 = 60 * MINUTE_US;
pub const DAY_US: u64 = 24 * HOUR_US;

/// An address from text (test data only).
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("bad address literal")
}

/// A product as a client requests it: (ApplicationId, SkuId, KmsCountedId, N policy).
#[derive(Clone, Copy, Debug)]
pub struct Product {
    pub app: &'static str,
    pub sku: &'static str,
    pub kms: &'static str,
    pub n: u32,
}

/// Windows 10/11 Enterprise (threshold 25).
pub const WIN10: Product = Product {
    app: "55c92734-d682-4d71-983e-d6ec3f16059f",
    sku: "73111121-5638-40f6-bc11-f1d7b0d64300",
    kms: "58e2134f-8e11-4d17-9cb2-91069c151148",
    n: 25,
};
/// Windows Server 2019 Standard (threshold 5).
pub const SERVER2019: Product = Product {
    app: "55c92734-d682-4d71-983e-d6ec3f16059f",
    sku: "de32eafd-aaee-4662-9444-c1befb41bde2",
    kms: "8449b1fb-f0ea-497a-99ab-66ca96e9a0f5",
    n: 5,
};
/// Office Professional Plus 2016 (threshold 5).
pub const OFFICE2016: Product = Product {
    app: "0ff1ce15-a989-479d-af46-f275c6370663",
    sku: "d450596f-894d-49e0-966a-fd39ed4c4c64",
    kms: "85b5f61b-320b-4be3-814a-b76b2bfafc82",
    n: 5,
};

/// A genuine-looking Windows Server 2019 host ePID (consistent fields).
pub const EPID: &str = "03612-00206-565-940149-03-1033-17763.0000-2552023";
/// A non-default HwId.
pub const HWID: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];

/// How the host answers the call.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A KMS response with these host fields.
    Answer {
        count: u32,
        epid: String,
        hwid: Option<[u8; 8]>,
        activation: u32,
        renewal: u32,
        /// Flip a byte of the encrypted response (integrity failure).
        corrupt: bool,
    },
    /// A refusal: the HRESULT instead of a response.
    Refuse(u32),
    /// An RPC fault with this status.
    Fault(u32),
    /// No reply at all.
    Nothing,
}

impl Reply {
    /// A valid answer with `count`, the default ePID, HwId and intervals.
    pub fn count(count: u32) -> Reply {
        Reply::Answer {
            count,
            epid: EPID.to_string(),
            hwid: Some(HWID),
            activation: 120,
            renewal: 10080,
            corrupt: false,
        }
    }
}

/// The bind outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// NDR32 accepted, NDR64 rejected, BTFN acknowledged (vlmcsd / Windows 7 style).
    Accept,
    /// Every context rejected (abstract syntax not supported).
    RejectAll,
    /// bind_nak (reason 4, protocol version not supported).
    Nak,
}

/// How the connection ends after the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// FIN both ways.
    Fin,
    /// The server resets the connection (after the request, before any reply).
    ServerReset,
    /// Nothing: the capture ends with the connection open.
    Open,
}

/// One KMS call on its own TCP connection.
#[derive(Clone, Debug)]
pub struct Call {
    pub req: KmsRequest,
    pub reply: Reply,
    pub bind: Bind,
    /// Time from request to reply, in microseconds.
    pub rtt_us: u64,
    pub assoc_group: u32,
    pub close: Close,
}

impl Call {
    /// A call of `req` answered `reply` after 1 ms, bind accepted, FIN close.
    pub fn new(req: KmsRequest, reply: Reply) -> Call {
        Call {
            req,
            reply,
            bind: Bind::Accept,
            rtt_us: 1000,
            assoc_group: 0x0001_0203,
            close: Close::Fin,
        }
    }
}

/// One DNS resource record.
#[derive(Clone, Debug)]
pub enum Rr {
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    A {
        name: String,
        addr: IpAddr,
    },
    Cname {
        name: String,
        target: String,
    },
}

/// An SRV record for `_vlmcs._tcp.<domain>`.
pub fn srv(domain: &str, priority: u16, port: u16, target: &str) -> Rr {
    Rr::Srv {
        name: format!("_vlmcs._tcp.{domain}"),
        priority,
        weight: 100,
        port,
        target: target.to_string(),
    }
}

/// An A or AAAA record.
pub fn addr(name: &str, a: &str) -> Rr {
    Rr::A {
        name: name.to_string(),
        addr: ip(a),
    }
}

/// DNS RCODEs.
pub const NOERROR: u8 = 0;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const REFUSED: u8 = 5;
/// DNS types.
pub const T_A: u16 = 1;
pub const T_AAAA: u16 = 28;
pub const T_SRV: u16 = 33;

fn put_name(b: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        b.push(u8::try_from(label.len()).expect("label too long"));
        b.extend_from_slice(label.as_bytes());
    }
    b.push(0);
}

fn put_rr(b: &mut Vec<u8>, rr: &Rr) {
    let (name, rtype, rdata) = match rr {
        Rr::Srv {
            name,
            priority,
            weight,
            port,
            target,
        } => {
            let mut d = Vec::new();
            d.extend_from_slice(&priority.to_be_bytes());
            d.extend_from_slice(&weight.to_be_bytes());
            d.extend_from_slice(&port.to_be_bytes());
            put_name(&mut d, target);
            (name, T_SRV, d)
        }
        Rr::A { name, addr } => match addr {
            IpAddr::V4(a) => (name, T_A, a.octets().to_vec()),
            IpAddr::V6(a) => (name, T_AAAA, a.octets().to_vec()),
        },
        Rr::Cname { name, target } => {
            let mut d = Vec::new();
            put_name(&mut d, target);
            (name, 5, d)
        }
    };
    put_name(b, name);
    b.extend_from_slice(&rtype.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&600u32.to_be_bytes());
    b.extend_from_slice(&u16::try_from(rdata.len()).expect("rdata").to_be_bytes());
    b.extend_from_slice(&rdata);
}

/// A DNS query (RD set) or, with `reply`, its response (QR, AA, RA, the RCODE and records).
pub fn dns_message(id: u16, qname: &str, qtype: u16, reply: Option<(u8, &[Rr], &[Rr])>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    let (flags, an, ar): (u16, &[Rr], &[Rr]) = match reply {
        None => (0x0100, &[], &[]),
        Some((rcode, an, ar)) => (0x8580 | u16::from(rcode), an, ar),
    };
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&u16::try_from(an.len()).expect("an").to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&u16::try_from(ar.len()).expect("ar").to_be_bytes());
    put_name(&mut b, qname);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    for rr in an.iter().chain(ar) {
        put_rr(&mut b, rr);
    }
    b
}

/// A synthetic capture being built.
pub struct Scenario {
    pub pkts: Vec<Pkt>,
    /// The clock, microseconds since the epoch.
    pub now_us: u64,
    next_port: u16,
    next_id: u16,
    next_salt: u8,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::new()
    }
}

impl Scenario {
    /// An empty capture starting at [`START_US`].
    pub fn new() -> Scenario {
        Scenario {
            pkts: Vec::new(),
            now_us: START_US,
            next_port: 49_152,
            next_id: 0x1000,
            next_salt: 1,
        }
    }

    /// Advances the clock.
    pub fn wait_us(&mut self, us: u64) -> &mut Self {
        self.now_us += us;
        self
    }

    /// The clock as a FILETIME (for ClientRequestTime), shifted by `skew_us` (may be negative).
    pub fn filetime(&self, skew_us: i64) -> u64 {
        let us = i64::try_from(self.now_us).expect("clock") + skew_us;
        u64::try_from(us).expect("clock") * 10 + FILETIME_UNIX_EPOCH
    }

    /// A request of `product` from `workstation` with `cmid` (version 6, OOB grace, 30 days left,
    /// the scenario's clock).
    pub fn request(&self, product: Product, cmid: &str, workstation: &str) -> KmsRequest {
        KmsRequest {
            version: KmsVersion::V6,
            vm_info: 0,
            license_status: LicenseStatus(2),
            binding_expiration: 43_200,
            app_id: guid(product.app),
            sku_id: guid(product.sku),
            kms_id: guid(product.kms),
            cmid: guid(cmid),
            required_count: product.n,
            client_time: self.filetime(0),
            previous_cmid: Guid::ZERO,
            workstation: workstation.into(),
        }
    }

    fn port(&mut self) -> u16 {
        self.next_port = self.next_port.wrapping_add(1).max(49_152);
        self.next_port
    }

    fn conn(&mut self, client: IpAddr, server: (IpAddr, u16)) -> Conn {
        let port = self.port();
        let mut c = Conn::new(
            (client, port),
            server,
            0x1000_0000 + u32::from(port),
            0x2000_0000 + u32::from(port),
            self.now_us,
        );
        c.step_us = 100;
        c
    }

    fn push(&mut self, pkts: Vec<Pkt>, c: &Conn) {
        self.pkts.extend(pkts);
        self.now_us = self.now_us.max(c.ts_us) + 1000;
    }

    /// A DNS exchange over UDP: the query, then (unless `reply` is `None`) the response 0.2 ms later.
    pub fn dns(
        &mut self,
        client: IpAddr,
        resolver: IpAddr,
        qname: &str,
        qtype: u16,
        reply: Option<(u8, &[Rr], &[Rr])>,
    ) -> &mut Self {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(7);
        let port = self.port();
        let q = dns_message(id, qname, qtype, None);
        self.pkts
            .push(udp(self.now_us, (client, port), (resolver, 53), &q, true));
        if let Some(r) = reply {
            let a = dns_message(id, qname, qtype, Some(r));
            self.pkts.push(udp(
                self.now_us + 200,
                (resolver, 53),
                (client, port),
                &a,
                false,
            ));
        }
        self.now_us += 1000;
        self
    }

    /// A SYN answered by RST.
    pub fn refused(&mut self, client: IpAddr, server: (IpAddr, u16)) -> &mut Self {
        let mut c = self.conn(client, server);
        let syn = c.segment_at(true, c.seq[0], true, false, false, false, &[]);
        c.seq[0] = c.seq[0].wrapping_add(1);
        let rst = c.segment_at(false, 0, false, true, false, true, &[]);
        self.push(vec![syn, rst], &c);
        self
    }

    /// `syns` SYNs one second apart, never answered.
    pub fn no_answer(&mut self, client: IpAddr, server: (IpAddr, u16), syns: u32) -> &mut Self {
        let mut c = self.conn(client, server);
        let isn = c.seq[0];
        let mut v = Vec::new();
        for _ in 0..syns {
            v.push(c.segment_at(true, isn, true, false, false, false, &[]));
            c.ts_us += 1_000_000;
        }
        self.push(v, &c);
        self
    }

    /// A TCP connection carrying arbitrary bytes each way (e.g. HTTP on the KMS port).
    pub fn raw_tcp(
        &mut self,
        client: IpAddr,
        server: (IpAddr, u16),
        c2s: &[u8],
        s2c: &[u8],
    ) -> &mut Self {
        let mut c = self.conn(client, server);
        let mut v = c.handshake();
        v.extend(c.data(true, c2s, 1400));
        v.extend(c.data(false, s2c, 1400));
        v.extend(c.close());
        self.push(v, &c);
        self
    }

    /// One KMS call on a new connection: handshake, bind / bind_ack (or bind_nak), request, reply,
    /// close.
    pub fn kms(&mut self, client: IpAddr, server: (IpAddr, u16), call: &Call) -> &mut Self {
        let mut c = self.conn(client, server);
        let mut v = c.handshake();
        let call_id = 2;
        v.extend(c.data(true, &rpc::bind(call_id, &rpc::kms_contexts_3()), 1400));
        match call.bind {
            Bind::Accept => {
                let ack = rpc::bind_ack(
                    call_id,
                    call.assoc_group,
                    Some(&server.1.to_string()),
                    &[
                        rpc::accept(SyntaxId::NDR32),
                        rpc::reject(2),
                        rpc::negotiate_ack(3),
                    ],
                );
                v.extend(c.data(false, &ack, 1400));
            }
            Bind::RejectAll => {
                let ack = rpc::bind_ack(
                    call_id,
                    call.assoc_group,
                    Some(&server.1.to_string()),
                    &[rpc::reject(1), rpc::reject(1), rpc::reject(1)],
                );
                v.extend(c.data(false, &ack, 1400));
                v.extend(c.close());
                self.push(v, &c);
                return self;
            }
            Bind::Nak => {
                v.extend(c.data(false, &rpc::bind_nak(call_id, 4, &[(5, 0)]), 1400));
                v.extend(c.close());
                self.push(v, &c);
                return self;
            }
        }
        let salt = [self.next_salt; 16];
        self.next_salt = self.next_salt.wrapping_add(1);
        let q = encode_request(&call.req, salt);
        v.extend(c.data(
            true,
            &rpc::kms_request(call_id, 0, &q, TransferSyntax::Ndr32),
            1400,
        ));
        c.ts_us += call.rtt_us;
        match &call.reply {
            Reply::Answer {
                count,
                epid,
                hwid,
                activation,
                renewal,
                corrupt,
            } => {
                let resp = echo_response(&call.req, epid, *count, *activation, *renewal, *hwid);
                let secrets = ResponseSecrets {
                    random: [0x5a; 16],
                    // v5 hosts reuse the client's salt; v6 hosts pick their own.
                    server_salt: if call.req.version.major == 6 {
                        [0xa5; 16]
                    } else {
                        salt
                    },
                    hwid: hwid.unwrap_or([0; 8]),
                    ..ResponseSecrets::default()
                };
                let mut a = encode_response(&resp, salt, &secrets);
                if *corrupt {
                    let i = a.len() / 2;
                    a[i] ^= 0xff;
                }
                v.extend(c.data(
                    false,
                    &rpc::kms_response(call_id, 0, &a, 0, TransferSyntax::Ndr32),
                    1400,
                ));
            }
            Reply::Refuse(hr) => v.extend(c.data(
                false,
                &rpc::kms_refusal(call_id, 0, *hr, TransferSyntax::Ndr32),
                1400,
            )),
            Reply::Fault(status) => v.extend(c.data(false, &rpc::fault(call_id, 0, *status), 1400)),
            Reply::Nothing => {}
        }
        match call.close {
            Close::Fin => v.extend(c.close()),
            Close::ServerReset => {
                let s = c.seq[1];
                v.push(c.segment_at(false, s, false, true, false, true, &[]));
            }
            Close::Open => {}
        }
        self.push(v, &c);
        self
    }

    /// The capture as pcap bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut pkts = self.pkts.clone();
        pkts.sort_by_key(|p| p.ts_us);
        pcap_bytes(&pkts)
    }
}
