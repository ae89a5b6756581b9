//! Shapes of the generated capture fixtures (`capture_data.rs`).

/// One DNS packet of a shared capture.
pub struct CapPacket {
    pub frame: u64,
    pub ts_ns: i64,
    pub src: &'static str,
    pub dst: &'static str,
    pub payload: &'static [u8],
}

/// A record as `.expect.json` lists it.
pub enum ExpRec {
    /// name, ttl, priority, weight, port, target
    Srv(&'static str, u32, u16, u16, u16, &'static str),
    /// name, type, ttl, address
    Addr(&'static str, &'static str, u32, &'static str),
}

/// One entry of `.expect.json` `dns_exchanges`.
pub struct ExpExchange {
    pub query_frame: u64,
    pub response_frame: u64,
    pub client: &'static str,
    pub server: &'static str,
    pub id: u16,
    pub qname: &'static str,
    pub qtype: &'static str,
    pub rcode: &'static str,
    pub recursion_desired: bool,
    pub authoritative: bool,
    pub answers: &'static [ExpRec],
    pub additional: &'static [ExpRec],
}
