//! Connection-oriented DCE/RPC PDUs (C706 chapter 12, MS-RPCE 2.2.2 / 2.2.4; kms-protocol.md 1.1–1.5).
//!
//! Envelope first, body second: [`parse_pdu_raw`] is a **streaming** nom parser that frames one PDU by
//! its 16-byte common header and `frag_length` and hands back a borrowed [`RawPdu`]; the complete-mode
//! body parsers ([`parse_bind`], [`parse_bind_ack`], [`parse_bind_nak`], [`parse_request`],
//! [`parse_response`], [`parse_fault`]) see only that PDU's body and never the next PDU. Every integer
//! is read in the byte order given by the integer-order nibble of the PDU's data representation.

use std::fmt;

use nom::bytes::complete::take;
use nom::error::{ContextError, ErrorKind, ParseError, context};
use nom::number::Endianness;
use nom::number::complete::{u8 as nu8, u16 as nu16, u32 as nu32};
use nom::{Err, IResult, Needed, Parser};
use smallvec::SmallVec;
use thiserror::Error;

use crate::guid::{Guid, GuidText};

/// Length of the common header of every connection-oriented PDU (C706 12.6.3.1; kms-protocol.md 1.1).
pub const HEADER_LEN: usize = 16;

/// Largest possible PDU: `frag_length` is a u16 (C706 12.6.3.1), so one PDU never exceeds 65535 bytes
/// and a caller never needs to buffer more than this (plus its newest segment) per direction.
pub const MAX_FRAG_LENGTH: usize = 65535;

/// Length of the sec_trailer that precedes an auth verifier (MS-RPCE 2.2.2.11). An `auth_length > 0`
/// PDU ends with `8 + auth_length` bytes that are not stub data.
pub const SEC_TRAILER_LEN: usize = 8;

// ------------------------------------------------------------------------------------------------
// Open wire enums
// ------------------------------------------------------------------------------------------------

/// PTYPE, byte 2 of the common header (C706 12.6.4; kms-protocol.md 1.1). Open: an unknown value still
/// parses and prints as `unknown_<n>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PacketType(pub u8);

impl PacketType {
    /// request (0): client → server call.
    pub const REQUEST: PacketType = PacketType(0);
    /// ping (1): connectionless only.
    pub const PING: PacketType = PacketType(1);
    /// response (2): server → client result.
    pub const RESPONSE: PacketType = PacketType(2);
    /// fault (3): server → client RPC-level failure.
    pub const FAULT: PacketType = PacketType(3);
    /// bind (11): client proposes presentation contexts.
    pub const BIND: PacketType = PacketType(11);
    /// bind_ack (12): server accepts/rejects each context.
    pub const BIND_ACK: PacketType = PacketType(12);
    /// bind_nak (13): server rejects the whole association.
    pub const BIND_NAK: PacketType = PacketType(13);
    /// alter_context (14): client proposes more contexts on an existing association.
    pub const ALTER_CONTEXT: PacketType = PacketType(14);
    /// alter_context_resp (15): answer to alter_context.
    pub const ALTER_CONTEXT_RESP: PacketType = PacketType(15);
    /// auth3 (16): third leg of a three-way authentication.
    pub const AUTH3: PacketType = PacketType(16);
    /// shutdown (17): server asks the client to close the connection.
    pub const SHUTDOWN: PacketType = PacketType(17);
    /// co_cancel (18): client cancels an outstanding call.
    pub const CO_CANCEL: PacketType = PacketType(18);
    /// orphaned (19): client abandons an outstanding call.
    pub const ORPHANED: PacketType = PacketType(19);
    /// Highest PTYPE defined by C706 / MS-RPCE.
    pub const MAX_DEFINED: u8 = 19;

    /// The snake_case name of a PTYPE defined for connection-oriented RPC, `None` otherwise.
    pub fn known_name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "request",
            2 => "response",
            3 => "fault",
            11 => "bind",
            12 => "bind_ack",
            13 => "bind_nak",
            14 => "alter_context",
            15 => "alter_context_resp",
            16 => "auth3",
            17 => "shutdown",
            18 => "co_cancel",
            19 => "orphaned",
            _ => return None,
        })
    }

    /// True for the PTYPEs that may appear on a connection-oriented transport (0, 2, 3, 11–19);
    /// 1 and 4–10 are connectionless-only (C706 12.6.4).
    pub fn is_connection_oriented(self) -> bool {
        self.known_name().is_some()
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.known_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown_{}", self.0),
        }
    }
}

impl fmt::Debug for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketType({self})")
    }
}

/// pfc_flags, byte 3 of the common header (C706 12.6.3.1, MS-RPCE 2.2.2.3; kms-protocol.md 1.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PfcFlags(pub u8);

impl PfcFlags {
    /// First fragment of a call.
    pub const FIRST_FRAG: PfcFlags = PfcFlags(0x01);
    /// Last fragment of a call.
    pub const LAST_FRAG: PfcFlags = PfcFlags(0x02);
    /// Cancel pending (request/response).
    pub const PENDING_CANCEL: PfcFlags = PfcFlags(0x04);
    /// MS-RPCE reuses bit 0x04 on bind/bind_ack/alter_context as "supports header signing".
    pub const SUPPORT_HEADER_SIGN: PfcFlags = PfcFlags(0x04);
    /// Reserved (0x08).
    pub const RESERVED_1: PfcFlags = PfcFlags(0x08);
    /// Concurrent multiplexing supported (bind).
    pub const CONC_MPX: PfcFlags = PfcFlags(0x10);
    /// On a fault: the call did not execute.
    pub const DID_NOT_EXECUTE: PfcFlags = PfcFlags(0x20);
    /// "maybe" call semantics.
    pub const MAYBE: PfcFlags = PfcFlags(0x40);
    /// A request carries an object UUID after its fixed header.
    pub const OBJECT_UUID: PfcFlags = PfcFlags(0x80);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: PfcFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// FIRST_FRAG set.
    pub fn first_frag(self) -> bool {
        self.contains(Self::FIRST_FRAG)
    }
    /// LAST_FRAG set.
    pub fn last_frag(self) -> bool {
        self.contains(Self::LAST_FRAG)
    }
    /// OBJECT_UUID set.
    pub fn object_uuid(self) -> bool {
        self.contains(Self::OBJECT_UUID)
    }
}

impl std::ops::BitOr for PfcFlags {
    type Output = PfcFlags;
    fn bitor(self, rhs: PfcFlags) -> PfcFlags {
        PfcFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for PfcFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = [
            "FIRST_FRAG",
            "LAST_FRAG",
            "PENDING_CANCEL",
            "RESERVED_1",
            "CONC_MPX",
            "DID_NOT_EXECUTE",
            "MAYBE",
            "OBJECT_UUID",
        ];
        write!(f, "PfcFlags(0x{:02x}", self.0)?;
        let mut sep = " ";
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        f.write_str(")")
    }
}

/// packed_drep, bytes 4–7 of the common header (C706 14.1, 12.6.3.1; kms-protocol.md 1.1).
/// Byte 0: high nibble integer order (1 = little-endian, 0 = big-endian), low nibble character set;
/// byte 1: floating-point format; bytes 2–3 reserved. KMS always sends `10 00 00 00`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataRep(pub [u8; 4]);

impl DataRep {
    /// Little-endian, ASCII, IEEE: what every KMS implementation sends.
    pub const LITTLE_ENDIAN: DataRep = DataRep([0x10, 0, 0, 0]);
    /// Big-endian, ASCII, IEEE.
    pub const BIG_ENDIAN: DataRep = DataRep([0x00, 0, 0, 0]);

    /// True when the integer-order nibble says little-endian. Any non-zero nibble is taken as
    /// little-endian, as Wireshark does; only 0 means big-endian.
    pub fn is_little_endian(self) -> bool {
        self.0[0] >> 4 != 0
    }

    /// The byte order of every integer in the PDU.
    pub fn endianness(self) -> Endianness {
        if self.is_little_endian() {
            Endianness::Little
        } else {
            Endianness::Big
        }
    }

    /// True for the two conventional values, `10 00 00 00` and `00 00 00 00` (ASCII, IEEE, reserved 0).
    pub fn is_conventional(self) -> bool {
        self == Self::LITTLE_ENDIAN || self == Self::BIG_ENDIAN
    }
}

impl Default for DataRep {
    fn default() -> Self {
        Self::LITTLE_ENDIAN
    }
}

impl fmt::Debug for DataRep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "DataRep({:02x}{:02x}{:02x}{:02x})",
            d[0], d[1], d[2], d[3]
        )
    }
}

// ------------------------------------------------------------------------------------------------
// Common header and framing
// ------------------------------------------------------------------------------------------------

/// The 16-byte common header (C706 12.6.3.1; kms-protocol.md 1.1), integers already in host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// rpc_vers (5).
    pub version: u8,
    /// rpc_vers_minor (0).
    pub version_minor: u8,
    /// PTYPE.
    pub ptype: PacketType,
    /// pfc_flags.
    pub flags: PfcFlags,
    /// packed_drep.
    pub drep: DataRep,
    /// Total PDU length including this header.
    pub frag_length: u16,
    /// Length of the auth verifier (0 for KMS).
    pub auth_length: u16,
    /// Call identifier.
    pub call_id: u32,
}

/// One framed PDU: the header and the `frag_length - 16` body bytes, borrowed from the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPdu<'a> {
    /// The decoded common header.
    pub header: Header,
    /// Bytes 16..frag_length.
    pub body: &'a [u8],
    /// The whole PDU (header and body), `frag_length` bytes.
    pub bytes: &'a [u8],
}

/// Streaming parser for the 16-byte common header: `Incomplete` with the missing count when fewer
/// than 16 bytes are available. Does not validate any field.
pub fn parse_header(input: &[u8]) -> IResult<&[u8], Header> {
    // Read directly rather than through nom combinators: every PDU of every connection is
    // framed here.
    let Some((h, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
        return Err(Err::Incomplete(Needed::new(HEADER_LEN - input.len())));
    };
    let drep = DataRep([h[4], h[5], h[6], h[7]]);
    let le = drep.is_little_endian();
    let u16_at = |i: usize| {
        let b = [h[i], h[i + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let b = [h[12], h[13], h[14], h[15]];
    let call_id = if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    };
    Ok((
        rest,
        Header {
            version: h[0],
            version_minor: h[1],
            ptype: PacketType(h[2]),
            flags: PfcFlags(h[3]),
            drep,
            frag_length: u16_at(8),
            auth_length: u16_at(10),
            call_id,
        },
    ))
}

/// Streaming framing of one connection-oriented PDU by `frag_length` (kms-protocol.md 1.1, 1.6).
///
/// * fewer than 16 bytes, or fewer than `frag_length`: `Err::Incomplete(Needed::new(missing))`;
/// * `rpc_vers.rpc_vers_minor` other than 5.0 or 5.1 (C706 12.6.3.1): `Err::Error` with
///   [`ErrorKind::Verify`];
/// * `frag_length < 16`: `Err::Error` with [`ErrorKind::LengthValue`].
///
/// Unknown PTYPEs, flags and data representations are not errors. On success the remainder starts
/// at the next PDU.
pub fn parse_pdu_raw(input: &[u8]) -> IResult<&[u8], RawPdu<'_>> {
    let (_, header) = parse_header(input)?;
    if header.version != 5 || header.version_minor > 1 {
        return Err(Err::Error(nom::error::Error::new(input, ErrorKind::Verify)));
    }
    let len = usize::from(header.frag_length);
    if len < HEADER_LEN {
        return Err(Err::Error(nom::error::Error::new(
            input,
            ErrorKind::LengthValue,
        )));
    }
    if input.len() < len {
        return Err(Err::Incomplete(Needed::new(len - input.len())));
    }
    let (bytes, rest) = input.split_at(len);
    Ok((
        rest,
        RawPdu {
            header,
            body: &bytes[HEADER_LEN..],
            bytes,
        },
    ))
}

// ------------------------------------------------------------------------------------------------
// Syntax identifiers
// ------------------------------------------------------------------------------------------------

/// First 8 wire bytes of every bind-time feature negotiation pseudo transfer syntax
/// `6cb71c2c-9812-4540-XXXX-000000000000` (MS-RPCE 3.3.1.5.3; kms-protocol.md 1.2).
pub const BTFN_PREFIX: [u8; 8] = [0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45];
/// BTFN feature bit: security context multiplexing supported.
pub const BTFN_SECURITY_CONTEXT_MULTIPLEXING: u16 = 0x0001;
/// BTFN feature bit: keep connection on orphan supported.
pub const BTFN_KEEP_CONNECTION_ON_ORPHAN: u16 = 0x0002;

/// p_syntax_id_t (C706 12.6.3.1): an interface or transfer-syntax UUID and its version, a u32 whose
/// low 16 bits are the major version and high 16 bits the minor version (kms-protocol.md 1.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SyntaxId {
    /// Interface / transfer syntax UUID (stored in Microsoft wire layout).
    pub uuid: Guid,
    /// `major | minor << 16`.
    pub version: u32,
}

impl SyntaxId {
    /// The KMS interface `51c82175-844e-4750-b0d8-ec255555bc06` v1.0 (kms-protocol.md 1.2).
    pub const KMS: SyntaxId = SyntaxId {
        uuid: Guid([
            0x75, 0x21, 0xc8, 0x51, 0x4e, 0x84, 0x50, 0x47, 0xb0, 0xd8, 0xec, 0x25, 0x55, 0x55,
            0xbc, 0x06,
        ]),
        version: 1,
    };
    /// NDR 2.0 (NDR32) `8a885d04-1ceb-11c9-9fe8-08002b104860` v2 (C706 14; kms-protocol.md 1.2).
    pub const NDR32: SyntaxId = SyntaxId {
        uuid: Guid([
            0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10,
            0x48, 0x60,
        ]),
        version: 2,
    };
    /// NDR64 `71710533-beba-4937-8319-b5dbef9ccc36` v1 (MS-RPCE 2.2.5; kms-protocol.md 1.2).
    pub const NDR64: SyntaxId = SyntaxId {
        uuid: Guid([
            0x33, 0x05, 0x71, 0x71, 0xba, 0xbe, 0x37, 0x49, 0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c,
            0xcc, 0x36,
        ]),
        version: 1,
    };
    /// The BTFN pseudo syntax as vlmcs and Windows send it (both feature bits, `...-0300-...`), v1.
    pub const BTFN_BOTH: SyntaxId = SyntaxId {
        uuid: Guid([
            0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45, 0x03, 0x00, 0, 0, 0, 0, 0, 0,
        ]),
        version: 1,
    };
    /// All-zero syntax, version 0: what rejected and negotiate_ack results carry.
    pub const NULL: SyntaxId = SyntaxId {
        uuid: Guid::ZERO,
        version: 0,
    };

    /// Major version (low 16 bits).
    pub fn major(&self) -> u16 {
        (self.version & 0xffff) as u16
    }
    /// Minor version (high 16 bits).
    pub fn minor(&self) -> u16 {
        (self.version >> 16) as u16
    }
    /// True when the UUID is the KMS interface (any version).
    pub fn is_kms(&self) -> bool {
        self.uuid == Self::KMS.uuid
    }
    /// True when the UUID is a bind-time feature negotiation pseudo syntax (first 8 bytes).
    pub fn is_btfn(&self) -> bool {
        self.uuid.0[..8] == BTFN_PREFIX
    }
    /// The BTFN feature bitmask (Data4[0..2] as a little-endian u16) when this is a BTFN syntax.
    pub fn btfn_features(&self) -> Option<u16> {
        self.is_btfn()
            .then(|| u16::from_le_bytes([self.uuid.0[8], self.uuid.0[9]]))
    }
    /// True for the all-zero syntax.
    pub fn is_null(&self) -> bool {
        self.uuid.is_zero() && self.version == 0
    }
}

impl fmt::Display for SyntaxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}.{}", self.uuid, self.major(), self.minor())
    }
}

impl fmt::Debug for SyntaxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyntaxId({self})")
    }
}

// ------------------------------------------------------------------------------------------------
// Bodies
// ------------------------------------------------------------------------------------------------

/// The transfer syntaxes proposed for one presentation context; one fits without a heap allocation.
pub type TransferSyntaxes = SmallVec<[SyntaxId; 1]>;

/// The context list of a bind / alter_context. Windows KMS clients propose three elements (NDR32,
/// NDR64 and bind-time feature negotiation): they fit inline, with no heap list per bind.
pub type ContextList = SmallVec<[ContextElem; 3]>;

/// The result list of a bind_ack / alter_context_resp (one per proposed element, so inline for the
/// usual three, like [`ContextList`]).
pub type AckResults = SmallVec<[AckResult; 3]>;

/// sec_addr as text: a port number or a short pipe name, held inline (longer ones on the heap).
pub type SecAddr = GuidText;

/// One presentation context element of a bind / alter_context (p_cont_elem_t, C706 12.6.3.1;
/// kms-protocol.md 1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextElem {
    /// p_cont_id.
    pub ctx_id: u16,
    /// The interface (abstract syntax).
    pub abstract_syntax: SyntaxId,
    /// Proposed transfer syntaxes (usually exactly one, kept inline: every KMS connection binds, and
    /// a heap list per context element was a measurable share of the per-connection allocations).
    pub transfer_syntaxes: TransferSyntaxes,
}

/// bind (11) and alter_context (14) body (C706 12.6.4.3 / 12.6.4.1; kms-protocol.md 1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// max_xmit_frag.
    pub max_xmit_frag: u16,
    /// max_recv_frag.
    pub max_recv_frag: u16,
    /// assoc_group_id (0 = new association).
    pub assoc_group: u32,
    /// The context list, in wire order.
    pub contexts: ContextList,
}

/// p_result_t of a bind_ack / alter_context_resp (C706 12.6.3.1, MS-RPCE 2.2.2.4; kms-protocol.md 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckResult {
    /// 0 acceptance, 1 user_rejection, 2 provider_rejection, 3 negotiate_ack.
    pub result: u16,
    /// Rejection reason, or the accepted BTFN feature bitmask for negotiate_ack.
    pub reason: u16,
    /// The accepted transfer syntax (all-zero, version 0 when rejected).
    pub transfer_syntax: SyntaxId,
}

impl AckResult {
    /// result: acceptance.
    pub const ACCEPTANCE: u16 = 0;
    /// result: user_rejection.
    pub const USER_REJECTION: u16 = 1;
    /// result: provider_rejection.
    pub const PROVIDER_REJECTION: u16 = 2;
    /// result: negotiate_ack (answer to a BTFN element, MS-RPCE).
    pub const NEGOTIATE_ACK: u16 = 3;

    /// True when the context was accepted.
    pub fn accepted(&self) -> bool {
        self.result == Self::ACCEPTANCE
    }

    /// snake_case name of `result`, or `unknown_<n>`.
    pub fn result_name(&self) -> String {
        match self.result {
            0 => "acceptance".into(),
            1 => "user_rejection".into(),
            2 => "provider_rejection".into(),
            3 => "negotiate_ack".into(),
            n => format!("unknown_{n}"),
        }
    }

    /// snake_case name of `reason` for rejections (C706 provider_reason_t), `None` for other results.
    pub fn reason_name(&self) -> Option<&'static str> {
        if self.result != Self::USER_REJECTION && self.result != Self::PROVIDER_REJECTION {
            return None;
        }
        Some(match self.reason {
            0 => "reason_not_specified",
            1 => "abstract_syntax_not_supported",
            2 => "proposed_transfer_syntaxes_not_supported",
            3 => "local_limit_exceeded",
            _ => "unknown",
        })
    }
}

/// bind_ack (12) and alter_context_resp (15) body (C706 12.6.4.4 / 12.6.4.2; kms-protocol.md 1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindAck<'a> {
    /// max_xmit_frag.
    pub max_xmit_frag: u16,
    /// max_recv_frag.
    pub max_recv_frag: u16,
    /// assoc_group_id chosen by the server.
    pub assoc_group: u32,
    /// sec_addr as on the wire: L bytes including the terminating NUL (empty when L = 0).
    pub sec_addr: &'a [u8],
    /// Results, one per context element of the bind / alter_context, in the same order.
    pub results: AckResults,
}

impl BindAck<'_> {
    /// sec_addr as text without its terminating NUL, each byte mapped to the code point of the same
    /// value (Latin-1), so nothing is lost; escape it before printing to a terminal. Held inline
    /// when short (a port number, as always in practice): no heap allocation per bind_ack.
    pub fn sec_addr_text(&self) -> SecAddr {
        let s = self.sec_addr.strip_suffix(&[0]).unwrap_or(self.sec_addr);
        // ASCII is the same text in UTF-8: one copy.
        if s.is_ascii()
            && let Ok(t) = std::str::from_utf8(s)
        {
            return SecAddr::from(t);
        }
        SecAddr::from(s.iter().map(|&b| char::from(b)).collect::<String>())
    }
}

/// bind_nak (13) body (C706 12.6.4.5, MS-RPCE 2.2.2.9; kms-protocol.md 1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindNak {
    /// provider_reject_reason.
    pub reason: u16,
    /// Supported protocol versions (major, minor); empty when the PDU stops after the reason.
    pub versions: Vec<(u8, u8)>,
}

impl BindNak {
    /// snake_case name of the reject reason (C706 p_reject_reason_t), `None` when unknown.
    pub fn reason_name(&self) -> Option<&'static str> {
        Some(match self.reason {
            0 => "reason_not_specified",
            1 => "temporary_congestion",
            2 => "local_limit_exceeded",
            3 => "called_paddr_unknown",
            4 => "protocol_version_not_supported",
            5 => "default_context_not_supported",
            6 => "user_data_not_readable",
            7 => "no_psap_available",
            8 => "authentication_type_not_recognized",
            9 => "invalid_checksum",
            _ => return None,
        })
    }
}

/// request (0) body (C706 12.6.4.9; kms-protocol.md 1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// alloc_hint (stub length of the whole call, or remaining; may be 0).
    pub alloc_hint: u32,
    /// p_cont_id.
    pub ctx_id: u16,
    /// opnum (always 0 for KMS).
    pub opnum: u16,
    /// Object UUID, present only with PFC_OBJECT_UUID.
    pub object: Option<Guid>,
    /// Stub data (auth trailer and its padding excluded).
    pub stub: &'a [u8],
    /// sec_trailer and auth verifier (`8 + auth_length` bytes), empty when `auth_length == 0`.
    pub auth: &'a [u8],
}

/// response (2) body (C706 12.6.4.10; kms-protocol.md 1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// alloc_hint.
    pub alloc_hint: u32,
    /// p_cont_id (echo of the request's).
    pub ctx_id: u16,
    /// cancel_count.
    pub cancel_count: u8,
    /// Stub data (auth trailer and its padding excluded).
    pub stub: &'a [u8],
    /// sec_trailer and auth verifier, empty when `auth_length == 0`.
    pub auth: &'a [u8],
}

/// fault (3) body (C706 12.6.4.7; kms-protocol.md 1.5). cancel_count and the reserved bytes may
/// hold garbage (vlmcsd leaves them uninitialised) and are not interpreted beyond being reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// alloc_hint.
    pub alloc_hint: u32,
    /// p_cont_id.
    pub ctx_id: u16,
    /// cancel_count (possibly garbage).
    pub cancel_count: u8,
    /// RPC status code.
    pub status: u32,
}

/// Name of a DCE/MS-RPCE fault status (C706 appendix E, MS-RPCE 2.2.2.10; kms-protocol.md 1.5),
/// `None` when not known.
pub fn fault_status_name(status: u32) -> Option<&'static str> {
    Some(match status {
        0x0000_0005 => "access_denied",
        0x0000_06d1 => "rpc_s_procnum_out_of_range",
        0x0000_06f7 => "nca_s_fault_ndr",
        0x1c00_0001 => "nca_s_fault_int_div_by_zero",
        0x1c00_0002 => "nca_s_fault_addr_error",
        0x1c00_0003 => "nca_s_fault_fp_div_zero",
        0x1c00_0004 => "nca_s_fault_fp_underflow",
        0x1c00_0005 => "nca_s_fault_fp_overflow",
        0x1c00_0006 => "nca_s_fault_invalid_tag",
        0x1c00_0007 => "nca_s_fault_invalid_bound",
        0x1c00_000d => "nca_s_fault_cancel",
        0x1c00_000e => "nca_s_fault_ill_inst",
        0x1c00_0012 => "nca_s_fault_remote_no_memory",
        0x1c00_0017 => "nca_s_fault_context_mismatch",
        0x1c01_0002 => "nca_op_rng_error",
        0x1c01_0003 => "nca_unk_if",
        0x1c01_0006 => "nca_wrong_boot_time",
        0x1c01_0009 => "nca_s_you_crashed",
        0x1c01_000b => "nca_proto_error",
        0x1c01_0013 => "nca_out_args_too_big",
        0x1c01_0014 => "nca_server_too_busy",
        0x1c01_0017 => "nca_unsupported_type",
        _ => return None,
    })
}

/// A body that could not be decoded (kms-protocol.md 1.2–1.5). The message names the PDU, the field
/// and its offset in the PDU, so it can become an `anomaly` event as is.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PduError {
    /// The body ended before (or did not fit) the named field.
    #[error(
        "{ptype} PDU malformed: field `{field}` at PDU offset {offset} does not fit in frag_length {frag_length}"
    )]
    Malformed {
        /// PDU type.
        ptype: PacketType,
        /// The field that did not fit.
        field: &'static str,
        /// Its offset from the start of the PDU.
        offset: usize,
        /// The PDU's frag_length.
        frag_length: u16,
    },
    /// `auth_length + 8` does not fit in the body after the fixed fields.
    #[error(
        "{ptype} PDU: auth_length {auth_length} (+8-byte sec_trailer) exceeds the {available} bytes after the fixed fields"
    )]
    AuthTrailer {
        /// PDU type.
        ptype: PacketType,
        /// auth_length from the header.
        auth_length: u16,
        /// Bytes available for stub + trailer.
        available: usize,
    },
}

/// nom error that remembers the innermost `context` label and where that field starts.
#[derive(Debug)]
struct FieldError {
    field: Option<&'static str>,
    remaining: usize,
}

impl ParseError<&[u8]> for FieldError {
    fn from_error_kind(input: &[u8], _kind: ErrorKind) -> Self {
        FieldError {
            field: None,
            remaining: input.len(),
        }
    }
    fn append(_input: &[u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

impl ContextError<&[u8]> for FieldError {
    fn add_context(input: &[u8], ctx: &'static str, mut other: Self) -> Self {
        if other.field.is_none() {
            other.field = Some(ctx);
            other.remaining = input.len();
        }
        other
    }
}

type BResult<'a, T> = IResult<&'a [u8], T, FieldError>;

/// Runs a complete-mode body parser over `pdu.body` and turns a nom failure into a [`PduError`].
fn run_body<'a, T>(
    pdu: &RawPdu<'a>,
    mut parser: impl Parser<&'a [u8], Output = T, Error = FieldError>,
) -> Result<T, PduError> {
    match parser.parse(pdu.body) {
        Ok((_, v)) => Ok(v),
        Err(Err::Error(e) | Err::Failure(e)) => Err(PduError::Malformed {
            ptype: pdu.header.ptype,
            field: e.field.unwrap_or("body"),
            offset: HEADER_LEN + pdu.body.len().saturating_sub(e.remaining),
            frag_length: pdu.header.frag_length,
        }),
        // Complete-mode parsers never return Incomplete; map it like a truncation anyway.
        Err(Err::Incomplete(_)) => Err(PduError::Malformed {
            ptype: pdu.header.ptype,
            field: "body",
            offset: HEADER_LEN + pdu.body.len(),
            frag_length: pdu.header.frag_length,
        }),
    }
}

/// A UUID in the PDU's byte order, returned in Microsoft wire layout (the first three fields are
/// integers and are swapped for big-endian PDUs; C706 appendix A).
fn guid(e: Endianness) -> impl Fn(&[u8]) -> BResult<'_, Guid> {
    move |i| {
        let (i, (d1, d2, d3, d4)) = (nu32(e), nu16(e), nu16(e), take(8usize)).parse(i)?;
        let mut g = [0u8; 16];
        g[0..4].copy_from_slice(&d1.to_le_bytes());
        g[4..6].copy_from_slice(&d2.to_le_bytes());
        g[6..8].copy_from_slice(&d3.to_le_bytes());
        g[8..16].copy_from_slice(d4);
        Ok((i, Guid(g)))
    }
}

fn syntax_id(e: Endianness) -> impl Fn(&[u8]) -> BResult<'_, SyntaxId> {
    move |i| {
        let (i, (uuid, version)) = (guid(e), nu32(e)).parse(i)?;
        Ok((i, SyntaxId { uuid, version }))
    }
}

fn context_elem(e: Endianness) -> impl Fn(&[u8]) -> BResult<'_, ContextElem> {
    move |i| {
        let (i, (ctx_id, n_transfer, _reserved)) =
            context("p_cont_elem", (nu16(e), nu8::<_, FieldError>, nu8)).parse(i)?;
        let (mut i, abstract_syntax) = context("abstract_syntax", syntax_id(e)).parse(i)?;
        let mut transfer_syntaxes =
            TransferSyntaxes::with_capacity(usize::from(n_transfer).min(i.len() / 20));
        for _ in 0..n_transfer {
            let (rest, ts) = context("transfer_syntaxes", syntax_id(e)).parse(i)?;
            transfer_syntaxes.push(ts);
            i = rest;
        }
        Ok((
            i,
            ContextElem {
                ctx_id,
                abstract_syntax,
                transfer_syntaxes,
            },
        ))
    }
}

/// A cursor over a PDU body for the fast paths of [`parse_bind`] and [`parse_bind_ack`]: fixed-size
/// fields in the PDU's byte order, `None` as soon as a field does not fit. The nom parsers give the
/// same values and are run instead whenever this fails, to name the field that did not fit.
struct Fields<'a> {
    b: &'a [u8],
    le: bool,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.b.split_at_checked(n)?;
        self.b = tail;
        Some(head)
    }

    /// The next `N` bytes as an array (fixed-size fields are read from it without further
    /// length checks).
    fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (head, tail) = self.b.split_first_chunk::<N>()?;
        self.b = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let a = *self.array::<2>()?;
        Some(if self.le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }

    fn u32(&mut self) -> Option<u32> {
        let a = *self.array::<4>()?;
        Some(if self.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }

    /// As [`syntax_id`]: the UUID's integer fields in PDU order, stored in Microsoft wire layout
    /// (the wire bytes as they are for a little-endian PDU; Data1..Data3 swapped otherwise).
    fn syntax_id(&mut self) -> Option<SyntaxId> {
        let a = self.array::<20>()?;
        let (uuid, version) = a.split_at(16);
        let mut g: [u8; 16] = uuid.try_into().ok()?;
        let version: [u8; 4] = version.try_into().ok()?;
        let version = if self.le {
            u32::from_le_bytes(version)
        } else {
            g[0..4].reverse();
            g[4..6].reverse();
            g[6..8].reverse();
            u32::from_be_bytes(version)
        };
        Some(SyntaxId {
            uuid: Guid(g),
            version,
        })
    }
}

/// [`parse_bind`] without the nom combinators (binds come with every KMS connection).
fn parse_bind_fast(pdu: &RawPdu<'_>) -> Option<Bind> {
    let mut contexts = ContextList::new();
    let (max_xmit_frag, max_recv_frag, assoc_group) = parse_bind_into(pdu, &mut contexts)?;
    Some(Bind {
        max_xmit_frag,
        max_recv_frag,
        assoc_group,
        contexts,
    })
}

/// The fast path of [`parse_bind`], filling `contexts` (emptied first) where it stands instead of
/// returning a new list: `(max_xmit_frag, max_recv_frag, assoc_group)`, or `None` when a field
/// does not fit (`contexts` then holds part of the list; [`parse_bind`] names the field). The
/// session parses every bind into a list it keeps, so the list is not built and moved around.
pub(crate) fn parse_bind_into(
    pdu: &RawPdu<'_>,
    contexts: &mut ContextList,
) -> Option<(u16, u16, u32)> {
    contexts.clear();
    let mut f = Fields {
        b: pdu.body,
        le: pdu.header.drep.is_little_endian(),
    };
    let (max_xmit_frag, max_recv_frag, assoc_group) = (f.u16()?, f.u16()?, f.u32()?);
    let n = f.u8()?;
    f.take(3)?;
    contexts.reserve_exact(usize::from(n).min(f.b.len() / 24));
    for _ in 0..n {
        let ctx_id = f.u16()?;
        let n_transfer = f.u8()?;
        f.u8()?;
        let abstract_syntax = f.syntax_id()?;
        // The element goes in first and its transfer syntaxes are appended where it stands.
        contexts.push(ContextElem {
            ctx_id,
            abstract_syntax,
            transfer_syntaxes: TransferSyntaxes::new(),
        });
        let list = &mut contexts.last_mut()?.transfer_syntaxes;
        list.reserve_exact(usize::from(n_transfer).min(f.b.len() / 20));
        for _ in 0..n_transfer {
            list.push(f.syntax_id()?);
        }
    }
    Some((max_xmit_frag, max_recv_frag, assoc_group))
}

/// [`parse_bind_ack`] without the nom combinators.
fn parse_bind_ack_fast<'a>(pdu: &RawPdu<'a>) -> Option<BindAck<'a>> {
    let mut f = Fields {
        b: pdu.body,
        le: pdu.header.drep.is_little_endian(),
    };
    let (max_xmit_frag, max_recv_frag, assoc_group) = (f.u16()?, f.u16()?, f.u32()?);
    let sec_len = f.u16()?;
    let sec_addr = f.take(usize::from(sec_len))?;
    let end = HEADER_LEN + 10 + usize::from(sec_len);
    f.take((4 - end % 4) % 4)?;
    let n = f.u8()?;
    f.take(3)?;
    let mut results = AckResults::with_capacity(usize::from(n).min(f.b.len() / 24));
    for _ in 0..n {
        let (result, reason) = (f.u16()?, f.u16()?);
        let transfer_syntax = f.syntax_id()?;
        results.push(AckResult {
            result,
            reason,
            transfer_syntax,
        });
    }
    Some(BindAck {
        max_xmit_frag,
        max_recv_frag,
        assoc_group,
        sec_addr,
        results,
    })
}

/// Body of a bind (11) or alter_context (14) (C706 12.6.4.3; kms-protocol.md 1.2). Bytes after the
/// last context element (an auth trailer, if any) are ignored.
pub fn parse_bind(pdu: &RawPdu<'_>) -> Result<Bind, PduError> {
    parse_bind_fast(pdu).map_or_else(|| parse_bind_nom(pdu), Ok)
}

/// [`parse_bind`] by nom combinators, which name the field that does not fit.
fn parse_bind_nom(pdu: &RawPdu<'_>) -> Result<Bind, PduError> {
    let e = pdu.header.drep.endianness();
    run_body(pdu, |i| {
        let (i, (max_xmit_frag, max_recv_frag, assoc_group)) =
            context("max_xmit_frag", (nu16(e), nu16(e), nu32(e))).parse(i)?;
        let (mut i, (n, _, _, _)) =
            context("n_context_elem", (nu8, nu8, nu8, nu8::<_, FieldError>)).parse(i)?;
        let mut contexts = ContextList::with_capacity(usize::from(n).min(i.len() / 24));
        for _ in 0..n {
            let (rest, c) = context_elem(e)(i)?;
            contexts.push(c);
            i = rest;
        }
        Ok((
            i,
            Bind {
                max_xmit_frag,
                max_recv_frag,
                assoc_group,
                contexts,
            },
        ))
    })
}

/// Body of a bind_ack (12) or alter_context_resp (15) (C706 12.6.4.4; kms-protocol.md 1.3). The
/// 0–3 pad bytes after sec_addr (which align the result list to 4 from the PDU start) are skipped
/// without looking at them: their contents are undefined.
pub fn parse_bind_ack<'a>(pdu: &RawPdu<'a>) -> Result<BindAck<'a>, PduError> {
    parse_bind_ack_fast(pdu).map_or_else(|| parse_bind_ack_nom(pdu), Ok)
}

/// [`parse_bind_ack`] by nom combinators, which name the field that does not fit.
fn parse_bind_ack_nom<'a>(pdu: &RawPdu<'a>) -> Result<BindAck<'a>, PduError> {
    let e = pdu.header.drep.endianness();
    run_body(pdu, |i| {
        let (i, (max_xmit_frag, max_recv_frag, assoc_group)) =
            context("max_xmit_frag", (nu16(e), nu16(e), nu32(e))).parse(i)?;
        let (i, sec_len) = context("sec_addr.length", nu16(e)).parse(i)?;
        let (i, sec_addr) = context("sec_addr", take(sec_len)).parse(i)?;
        // The result list starts at align4(26 + L) from the PDU start.
        let end = HEADER_LEN + 10 + usize::from(sec_len);
        let pad = (4 - end % 4) % 4;
        let (i, _) = context("pad", take(pad)).parse(i)?;
        let (mut i, (n, _, _, _)) =
            context("n_results", (nu8, nu8, nu8, nu8::<_, FieldError>)).parse(i)?;
        let mut results = AckResults::with_capacity(usize::from(n).min(i.len() / 24));
        for _ in 0..n {
            let (rest, (result, reason, transfer_syntax)) =
                context("p_result", (nu16(e), nu16(e), syntax_id(e))).parse(i)?;
            results.push(AckResult {
                result,
                reason,
                transfer_syntax,
            });
            i = rest;
        }
        Ok((
            i,
            BindAck {
                max_xmit_frag,
                max_recv_frag,
                assoc_group,
                sec_addr,
                results,
            },
        ))
    })
}

/// Body of a bind_nak (13) (C706 12.6.4.5; kms-protocol.md 1.3): the reason, then the version list
/// when the PDU is long enough for it (a truncated list is tolerated; the signature and extended
/// error information MS-RPCE may append are ignored).
pub fn parse_bind_nak(pdu: &RawPdu<'_>) -> Result<BindNak, PduError> {
    fn body(i: &[u8], e: Endianness) -> BResult<'_, BindNak> {
        let (i, reason) = context("provider_reject_reason", nu16(e)).parse(i)?;
        let mut versions = Vec::new();
        if let Some((&n, mut rest)) = i.split_first() {
            for _ in 0..n {
                match rest {
                    [major, minor, tail @ ..] => {
                        versions.push((*major, *minor));
                        rest = tail;
                    }
                    _ => break,
                }
            }
        }
        Ok((&i[i.len()..], BindNak { reason, versions }))
    }
    let e = pdu.header.drep.endianness();
    run_body(pdu, |i| body(i, e))
}

/// Splits `data` (everything after the fixed fields) into stub and auth trailer (MS-RPCE 2.2.2.11:
/// stub, auth_pad_length pad bytes, 8-byte sec_trailer, auth_length bytes of verifier).
fn split_auth<'a>(pdu: &RawPdu<'a>, data: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), PduError> {
    let auth_length = pdu.header.auth_length;
    if auth_length == 0 {
        return Ok((data, &data[data.len()..]));
    }
    let trailer = usize::from(auth_length) + SEC_TRAILER_LEN;
    let Some(stub_end) = data.len().checked_sub(trailer) else {
        return Err(PduError::AuthTrailer {
            ptype: pdu.header.ptype,
            auth_length,
            available: data.len(),
        });
    };
    let (stub, auth) = data.split_at(stub_end);
    // sec_trailer: auth_type u8, auth_level u8, auth_pad_length u8, reserved u8, context_id u32.
    let pad = usize::from(auth.get(2).copied().unwrap_or(0));
    let stub = stub.get(..stub.len().saturating_sub(pad)).unwrap_or(stub);
    Ok((stub, auth))
}

/// Body of a request (0) (C706 12.6.4.9; kms-protocol.md 1.4). With PFC_OBJECT_UUID the 16-byte
/// object UUID follows the opnum. With `auth_length > 0` the sec_trailer, verifier and auth padding
/// are excluded from the stub (KMS never uses them).
pub fn parse_request<'a>(pdu: &RawPdu<'a>) -> Result<Request<'a>, PduError> {
    let e = pdu.header.drep.endianness();
    let has_object = pdu.header.flags.object_uuid();
    let (rest, alloc_hint, ctx_id, opnum, object) = run_body(pdu, |i| {
        let (i, (alloc_hint, ctx_id, opnum)) =
            context("alloc_hint", (nu32(e), nu16(e), nu16(e))).parse(i)?;
        let (i, object) = if has_object {
            let (i, g) = context("object", guid(e)).parse(i)?;
            (i, Some(g))
        } else {
            (i, None)
        };
        Ok((&i[i.len()..], (i, alloc_hint, ctx_id, opnum, object)))
    })?;
    let (stub, auth) = split_auth(pdu, rest)?;
    Ok(Request {
        alloc_hint,
        ctx_id,
        opnum,
        object,
        stub,
        auth,
    })
}

/// Body of a response (2) (C706 12.6.4.10; kms-protocol.md 1.5).
pub fn parse_response<'a>(pdu: &RawPdu<'a>) -> Result<Response<'a>, PduError> {
    let e = pdu.header.drep.endianness();
    let (rest, alloc_hint, ctx_id, cancel_count) = run_body(pdu, |i| {
        let (i, (alloc_hint, ctx_id, cancel_count, _reserved)) =
            context("alloc_hint", (nu32(e), nu16(e), nu8, nu8::<_, FieldError>)).parse(i)?;
        Ok((&i[i.len()..], (i, alloc_hint, ctx_id, cancel_count)))
    })?;
    let (stub, auth) = split_auth(pdu, rest)?;
    Ok(Response {
        alloc_hint,
        ctx_id,
        cancel_count,
        stub,
        auth,
    })
}

/// Body of a fault (3) (C706 12.6.4.7; kms-protocol.md 1.5). Needs the status (PDU offset 24..28);
/// the trailing reserved u32, any extended error data and the garbage cancel_count are ignored.
pub fn parse_fault(pdu: &RawPdu<'_>) -> Result<Fault, PduError> {
    let e = pdu.header.drep.endianness();
    run_body(pdu, |i| {
        let (i, (alloc_hint, ctx_id, cancel_count, _reserved)) =
            context("alloc_hint", (nu32(e), nu16(e), nu8, nu8::<_, FieldError>)).parse(i)?;
        let (i, status) = context("status", nu32(e)).parse(i)?;
        Ok((
            i,
            Fault {
                alloc_hint,
                ctx_id,
                cancel_count,
                status,
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAULT: [u8; 32] = [
        0x05, 0x00, 0x03, 0x23, 0x10, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2d, 0xbb, 0x03, 0x00, 0x01, 0x1c, 0x00, 0x00,
        0x00, 0x00,
    ];

    #[test]
    fn framing_needs_and_errors() {
        assert_eq!(
            parse_pdu_raw(&FAULT[..3]),
            Err(Err::Incomplete(Needed::new(13)))
        );
        assert_eq!(
            parse_pdu_raw(&FAULT[..20]),
            Err(Err::Incomplete(Needed::new(12)))
        );
        let mut two = FAULT.to_vec();
        two.extend_from_slice(&FAULT[..5]);
        let (rest, pdu) = parse_pdu_raw(&two).unwrap();
        assert_eq!(rest, &FAULT[..5]);
        assert_eq!(pdu.header.ptype, PacketType::FAULT);
        assert_eq!(pdu.header.flags, PfcFlags(0x23));
        assert_eq!(pdu.header.frag_length, 32);
        assert_eq!(pdu.header.call_id, 2);
        assert_eq!(pdu.body.len(), 16);
        let f = parse_fault(&pdu).unwrap();
        assert_eq!(f.status, 0x1c01_0003);
        assert_eq!(fault_status_name(f.status), Some("nca_unk_if"));

        let mut minor1 = FAULT;
        minor1[1] = 1;
        assert!(
            parse_pdu_raw(&minor1).is_ok(),
            "5.1 is a valid version (C706)"
        );
        let mut bad = FAULT;
        bad[1] = 2;
        assert!(matches!(parse_pdu_raw(&bad), Err(Err::Error(_))));
        let mut bad = FAULT;
        bad[0] = 4;
        assert!(matches!(parse_pdu_raw(&bad), Err(Err::Error(_))));
        let mut bad = FAULT;
        bad[8] = 15;
        assert!(
            matches!(parse_pdu_raw(&bad), Err(Err::Error(e)) if e.code == ErrorKind::LengthValue)
        );
    }

    #[test]
    fn big_endian_header_and_body() {
        // A fault with drep 00 00 00 00: every integer big-endian.
        let mut pdu = vec![5, 0, 3, 0x23, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 7];
        pdu.extend_from_slice(&[0, 0, 0, 32, 0, 1, 0, 0, 0x1c, 0x01, 0x00, 0x03, 0, 0, 0, 0]);
        let (_, raw) = parse_pdu_raw(&pdu).unwrap();
        assert!(!raw.header.drep.is_little_endian());
        assert_eq!(raw.header.call_id, 7);
        let f = parse_fault(&raw).unwrap();
        assert_eq!((f.ctx_id, f.status), (1, 0x1c01_0003));
    }

    #[test]
    fn bind_fast_paths_agree_with_nom() {
        // Bodies built from small field values (so counts and lengths stay plausible), cut at
        // every length: the fast path must give what nom gives, and fail exactly where nom fails.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..400 {
            let mut body: Vec<u8> = (0..200)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        (r >> 8) as u8
                    } else {
                        (r >> 8) as u8 % 4
                    }
                })
                .collect();
            body[8] = (round % 5) as u8; // n_context_elem / sec_addr length low byte
            for drep in [0x10u8, 0x00] {
                for cut in 0..=body.len() {
                    let frag = (HEADER_LEN + cut) as u16;
                    let mut pdu = vec![5, 0, 11, 3, drep, 0, 0, 0];
                    if drep == 0x10 {
                        pdu.extend_from_slice(&frag.to_le_bytes());
                        pdu.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
                    } else {
                        pdu.extend_from_slice(&frag.to_be_bytes());
                        pdu.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
                    }
                    pdu.extend_from_slice(&body[..cut]);
                    let (_, raw) = parse_pdu_raw(&pdu).unwrap();
                    assert_eq!(
                        parse_bind_fast(&raw).ok_or(()),
                        parse_bind_nom(&raw).map_err(|_| ())
                    );
                    assert_eq!(
                        parse_bind_ack_fast(&raw).ok_or(()),
                        parse_bind_ack_nom(&raw).map_err(|_| ())
                    );
                }
            }
        }
    }

    #[test]
    fn big_endian_bind_guids() {
        // kms-protocol.md 7.1 (e) re-encoded with drep 00 00 00 00: integers and the first three
        // GUID fields big-endian. The parsed GUIDs must equal the little-endian constants.
        fn be_syntax(v: &mut Vec<u8>, s: &SyntaxId) {
            let g = s.uuid.0;
            v.extend_from_slice(&[g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]]);
            v.extend_from_slice(&g[8..]);
            v.extend_from_slice(&s.version.to_be_bytes());
        }
        let mut b = vec![5, 0, 11, 3, 0, 0, 0, 0, 0, 72, 0, 0, 0, 0, 0, 2];
        b.extend_from_slice(&[0x16, 0xd0, 0x16, 0xd0, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 1, 0]);
        be_syntax(&mut b, &SyntaxId::KMS);
        be_syntax(&mut b, &SyntaxId::NDR32);
        let (_, raw) = parse_pdu_raw(&b).unwrap();
        let bind = parse_bind(&raw).unwrap();
        assert_eq!((bind.max_xmit_frag, bind.assoc_group), (5840, 9));
        assert_eq!(bind.contexts.len(), 1);
        assert_eq!(bind.contexts[0].abstract_syntax, SyntaxId::KMS);
        assert_eq!(bind.contexts[0].transfer_syntaxes[..], [SyntaxId::NDR32]);
    }

    #[test]
    fn names() {
        assert_eq!(
            PacketType::ALTER_CONTEXT_RESP.to_string(),
            "alter_context_resp"
        );
        assert_eq!(PacketType(7).to_string(), "unknown_7");
        assert!(!PacketType::PING.is_connection_oriented());
        assert_eq!(
            format!("{:?}", PfcFlags(0x13)),
            "PfcFlags(0x13 FIRST_FRAG|LAST_FRAG|CONC_MPX)"
        );
        assert_eq!(
            SyntaxId::KMS.to_string(),
            "51c82175-844e-4750-b0d8-ec255555bc06 v1.0"
        );
        assert_eq!(
            SyntaxId::NDR32.uuid.to_string(),
            "8a885d04-1ceb-11c9-9fe8-08002b104860"
        );
        assert_eq!(
            SyntaxId::NDR64.uuid.to_string(),
            "71710533-beba-4937-8319-b5dbef9ccc36"
        );
        assert_eq!(SyntaxId::BTFN_BOTH.btfn_features(), Some(3));
        assert_eq!(
            SyntaxId::BTFN_BOTH.uuid.to_string(),
            "6cb71c2c-9812-4540-0300-000000000000"
        );
        assert_eq!(SyntaxId::NDR32.btfn_features(), None);
    }

    #[test]
    fn auth_trailer_excluded() {
        // request, auth_length 4: stub 8 bytes incl. 2 pad, trailer 8 + verifier 4.
        let mut pdu = vec![5, 0, 0, 3, 0x10, 0, 0, 0, 0, 0, 4, 0, 9, 0, 0, 0];
        pdu.extend_from_slice(&[6, 0, 0, 0, 1, 0, 0, 0]); // alloc_hint, ctx 1, opnum 0
        pdu.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]); // stub + 2 auth pad bytes
        pdu.extend_from_slice(&[10, 2, 2, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
        let len = pdu.len() as u16;
        pdu[8..10].copy_from_slice(&len.to_le_bytes());
        let (_, raw) = parse_pdu_raw(&pdu).unwrap();
        let r = parse_request(&raw).unwrap();
        assert_eq!(r.stub, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(r.auth.len(), 12);
        // auth_length larger than the body: an error, not a panic.
        pdu[10] = 200;
        let (_, raw) = parse_pdu_raw(&pdu).unwrap();
        let err = parse_request(&raw).unwrap_err();
        assert!(matches!(err, PduError::AuthTrailer { .. }), "{err}");
    }
}
