//! A tiny DNS message writer for tests (RFC 1035 section 4.1 layout, no compression unless a
//! pointer is written by hand with [`Msg::ptr`]).

/// Encodes a dotted name as uncompressed labels; `""` and `"."` are the root. No escapes: tests
/// that need odd bytes in labels use [`Msg::label`].
pub fn enc_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// SRV RDATA (RFC 2782).
pub fn srv_rdata(priority: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&priority.to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&enc_name(target));
    v
}

/// SOA RDATA (RFC 1035 section 3.3.13).
pub fn soa_rdata(mname: &str, rname: &str, nums: [u32; 5]) -> Vec<u8> {
    let mut v = enc_name(mname);
    v.extend_from_slice(&enc_name(rname));
    for n in nums {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

/// Flags word helpers.
pub const QR: u16 = 0x8000;
pub const AA: u16 = 0x0400;
pub const TC: u16 = 0x0200;
pub const RD: u16 = 0x0100;
pub const RA: u16 = 0x0080;
pub const OP_UPDATE: u16 = 5 << 11;

/// Message under construction.
pub struct Msg(pub Vec<u8>);

impl Msg {
    pub fn new(id: u16, flags: u16, counts: [u16; 4]) -> Msg {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        Msg(v)
    }

    pub fn raw(mut self, b: &[u8]) -> Msg {
        self.0.extend_from_slice(b);
        self
    }

    pub fn u16(self, v: u16) -> Msg {
        self.raw(&v.to_be_bytes())
    }

    pub fn u32(self, v: u32) -> Msg {
        self.raw(&v.to_be_bytes())
    }

    pub fn name(self, n: &str) -> Msg {
        self.raw(&enc_name(n))
    }

    /// One label with arbitrary bytes (no terminating root).
    pub fn label(self, bytes: &[u8]) -> Msg {
        self.raw(&[bytes.len() as u8]).raw(bytes)
    }

    /// A compression pointer to `offset`.
    pub fn ptr(self, offset: u16) -> Msg {
        self.u16(0xC000 | offset)
    }

    pub fn question(self, name: &str, qtype: u16, qclass: u16) -> Msg {
        self.name(name).u16(qtype).u16(qclass)
    }

    /// A record whose owner name bytes were already written.
    pub fn rr_tail(self, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Msg {
        self.u16(rtype)
            .u16(class)
            .u32(ttl)
            .u16(rdata.len() as u16)
            .raw(rdata)
    }

    pub fn rr(self, name: &str, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) -> Msg {
        self.name(name).rr_tail(rtype, class, ttl, rdata)
    }

    /// EDNS OPT record (RFC 6891): root owner, class = UDP size, TTL = ext-rcode/version/flags.
    pub fn opt(self, udp: u16, ext_rcode: u8, do_bit: bool) -> Msg {
        let ttl = (u32::from(ext_rcode) << 24) | if do_bit { 0x8000 } else { 0 };
        self.raw(&[0]).rr_tail(41, udp, ttl, &[])
    }

    pub fn build(self) -> Vec<u8> {
        self.0
    }
}
