//! Per-TCP-connection DCE/RPC state machine (C706 chapter 12, MS-RPCE 3.3; kms-protocol.md 1, 1.6, 8).
//!
//! A [`Session`] receives the two reassembled byte streams of one TCP connection through the
//! consumed/needed contract of [`Session::on_data`]: it frames PDUs by `frag_length`, tracks the
//! presentation contexts negotiated by bind / alter_context and their acks, reassembles fragmented
//! requests and responses by call_id, pairs them into [`Call`]s and reports everything unusual as an
//! [`RpcEvent::Anomaly`]. It never reads past what it is given and never panics on wire data.
//!
//! Invariants a consumer can rely on:
//! * every request PDU chain that starts (FIRST_FRAG) appears exactly once as an [`RpcEvent::Call`]:
//!   answered ([`Reply::Response`]), faulted ([`Reply::Fault`]) or [`Reply::Missing`] with a reason;
//! * a response or fault without a request still appears as a `Call` with `request: None` (after an
//!   `orphan_response` anomaly);
//! * events come out in the same order with the same contents however the streams are segmented
//!   (only `frame`/`ts` depend on which packet delivered the completing bytes).

use super::ndr::{self, KmsReply, StubError, TransferSyntax};
use super::pdu::{
    AckResult, ContextElem, ContextList, DataRep, HEADER_LEN, PacketType, PfcFlags, RawPdu,
    SecAddr, SyntaxId, TransferSyntaxes, parse_bind, parse_bind_ack, parse_bind_into,
    parse_bind_nak, parse_fault, parse_pdu_raw, parse_request, parse_response,
};
use crate::Direction;
use crate::guid::Guid;
use crate::time::Ts;
use smallvec::SmallVec;

/// Calls (request seen, reply not complete) tracked per connection. MS-RPCE lets a client run many
/// concurrent calls on one connection; KMS clients run one. Opening one more closes the oldest as
/// [`Reply::Missing`]`(`[`CloseReason::Limit`]`)` with a `call_limit` anomaly.
pub const MAX_OPEN_CALLS: usize = 64;

/// Stub bytes kept per call half (request or reply) after fragment reassembly. KMS stubs are under
/// 400 bytes (kms-protocol.md 1.6). Further bytes are dropped, the half is marked `truncated` and a
/// `stub_limit` anomaly is emitted.
pub const MAX_STUB_BYTES: usize = 64 * 1024;

/// Fragments per call half (C706 12.6.3.4 sets no limit; KMS always sends one). Later fragments are
/// counted but their bytes dropped, the half is marked `truncated`, with a `fragment_limit` anomaly.
pub const MAX_FRAGMENTS: u16 = 256;

/// Accepted presentation contexts remembered per connection (n_context_elem is a u8, so one bind
/// can propose 255). Adding one more forgets the oldest, with a `context_limit` anomaly.
pub const MAX_CONTEXTS: usize = 64;

/// Anomalies reported per connection. After this many, one `anomaly_limit` anomaly is emitted and
/// the rest are suppressed (a hostile stream cannot flood the output).
pub const MAX_ANOMALIES: u32 = 256;

/// While the session is still [`SessionState::Probing`] after a gap (capture started mid-stream),
/// this many bytes may be skipped looking for a plausible header before the connection is declared
/// [`SessionState::NotDceRpc`].
pub const MAX_PROBE_SKIP: u64 = 64 * 1024;

/// Stable snake_case `kind`s of [`RpcEvent::Anomaly`] (events.md, `anomaly` with layer `dcerpc`).
pub mod anomaly_kind {
    /// The first bytes of the connection are not a DCE/RPC connection-oriented header.
    pub const NOT_DCERPC: &str = "not_dcerpc";
    /// A header that is not DCE/RPC 5.0 where one was expected (the session resynchronises).
    pub const BAD_HEADER: &str = "bad_header";
    /// A header with frag_length < 16 (the session resynchronises).
    pub const BAD_FRAG_LENGTH: &str = "bad_frag_length";
    /// frag_length above the max_recv_frag / max_xmit_frag negotiated in the bind_ack.
    pub const FRAG_LENGTH_EXCEEDS_NEGOTIATED: &str = "frag_length_exceeds_negotiated";
    /// Data representation other than `10 00 00 00` (kms-protocol.md 1.1: suspicious).
    pub const UNUSUAL_DREP: &str = "unusual_drep";
    /// Bytes were lost (TCP gap): partial PDU dropped, resynchronising.
    pub const GAP: &str = "gap";
    /// Found a plausible header again after skipping bytes.
    pub const RESYNC: &str = "resync";
    /// A PDU body that does not decode (message from [`crate::dcerpc::PduError`]).
    pub const MALFORMED_PDU: &str = "malformed_pdu";
    /// A PDU type in the wrong direction, connectionless-only or unknown.
    pub const UNEXPECTED_PDU: &str = "unexpected_pdu";
    /// A response or fault whose request was never seen.
    pub const ORPHAN_RESPONSE: &str = "orphan_response";
    /// A non-first fragment without its first fragment.
    pub const ORPHAN_FRAGMENT: &str = "orphan_fragment";
    /// A FIRST_FRAG while the same call was still being reassembled.
    pub const FRAGMENT_RESTART: &str = "fragment_restart";
    /// Fragments of one call disagree on p_cont_id / opnum.
    pub const FRAGMENT_MISMATCH: &str = "fragment_mismatch";
    /// A new request reused the call_id of an unanswered call.
    pub const DUPLICATE_CALL_ID: &str = "duplicate_call_id";
    /// A reply (or bind_ack) whose call_id matches nothing; paired with the only candidate.
    pub const CALL_ID_MISMATCH: &str = "call_id_mismatch";
    /// A reply arrived while its request was still incomplete.
    pub const REPLY_BEFORE_REQUEST_COMPLETE: &str = "reply_before_request_complete";
    /// A request names a presentation context that was never accepted.
    pub const UNKNOWN_CONTEXT: &str = "unknown_context";
    /// A bind_ack / alter_context_resp with no bind to match, or a different number of results.
    pub const UNMATCHED_BIND_ACK: &str = "unmatched_bind_ack";
    /// Reply fragments that never completed.
    pub const INCOMPLETE_REPLY: &str = "incomplete_reply";
    /// A PDU cut short by the end of the connection.
    pub const TRUNCATED_PDU: &str = "truncated_pdu";
    /// [`crate::dcerpc::MAX_OPEN_CALLS`] hit.
    pub const CALL_LIMIT: &str = "call_limit";
    /// [`crate::dcerpc::MAX_STUB_BYTES`] hit.
    pub const STUB_LIMIT: &str = "stub_limit";
    /// [`crate::dcerpc::MAX_FRAGMENTS`] hit.
    pub const FRAGMENT_LIMIT: &str = "fragment_limit";
    /// [`crate::dcerpc::MAX_CONTEXTS`] hit.
    pub const CONTEXT_LIMIT: &str = "context_limit";
    /// [`crate::dcerpc::MAX_ANOMALIES`] hit; later anomalies of the connection are suppressed.
    pub const ANOMALY_LIMIT: &str = "anomaly_limit";
    /// Not emitted by the session: for consumers reporting a [`crate::dcerpc::StubError`] from
    /// [`crate::dcerpc::Call::kms_request`] / [`crate::dcerpc::Call::kms_reply`].
    pub const STUB_MISMATCH: &str = "stub_mismatch";
}

use anomaly_kind as ak;

/// What the session has concluded about the connection's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// No complete header seen yet.
    Probing,
    /// A plausible DCE/RPC connection-oriented header was seen.
    DceRpc,
    /// The first bytes were not DCE/RPC; everything is consumed and ignored from now on.
    NotDceRpc,
}

/// Why a call has no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The connection ended normally (FIN).
    ConnectionClosed,
    /// The connection was reset (RST).
    Reset,
    /// The flow timed out.
    Timeout,
    /// The capture ended with the connection open.
    CaptureEnded,
    /// Bytes were lost in the server-to-client stream while the call waited (the reply may be in
    /// them). Replaces the connection-level reason for such calls.
    Gap,
    /// A per-connection limit forced the call out ([`MAX_OPEN_CALLS`]).
    Limit,
    /// A new request reused the call_id before a reply came.
    Superseded,
    /// The client sent an `orphaned` PDU for the call.
    Orphaned,
}

impl CloseReason {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ConnectionClosed => "connection_closed",
            CloseReason::Reset => "reset",
            CloseReason::Timeout => "timeout",
            CloseReason::CaptureEnded => "capture_ended",
            CloseReason::Gap => "gap",
            CloseReason::Limit => "limit",
            CloseReason::Superseded => "superseded",
            CloseReason::Orphaned => "orphaned",
        }
    }

    fn is_connection_end(self) -> bool {
        matches!(
            self,
            CloseReason::ConnectionClosed
                | CloseReason::Reset
                | CloseReason::Timeout
                | CloseReason::CaptureEnded
        )
    }
}

/// One reassembled half of a call: the stub of all its fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Half {
    /// Frame that completed the LAST_FRAG PDU (or the last fragment seen when incomplete).
    pub frame: u64,
    /// Its capture time.
    pub ts: Ts,
    /// Frame that completed the FIRST_FRAG PDU.
    pub first_frame: u64,
    /// Its capture time.
    pub first_ts: Ts,
    /// Concatenated stub data (auth trailers excluded).
    pub stub: Vec<u8>,
    /// Number of fragments seen.
    pub frags: u16,
    /// alloc_hint of the first fragment.
    pub alloc_hint: u32,
    /// True when bytes are missing: a gap, a limit, or the half never completed.
    pub truncated: bool,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A (reassembled) response.
    Response(Half),
    /// An RPC fault (kms-protocol.md 1.5).
    Fault {
        /// Frame that completed the fault PDU.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// RPC status, e.g. 0x1c010003 nca_unk_if.
        status: u32,
        /// pfc_flags of the fault (DID_NOT_EXECUTE etc.).
        flags: PfcFlags,
    },
    /// No reply, and why.
    Missing(CloseReason),
}

/// A completed (or abandoned) RPC call: request and reply halves paired by call_id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// call_id of the request (of the reply when `request` is `None`).
    pub call_id: u32,
    /// p_cont_id of the request (of the reply when `request` is `None`).
    pub ctx_id: u16,
    /// opnum; `None` when the request was not seen.
    pub opnum: Option<u16>,
    /// Object UUID of the request (PFC_OBJECT_UUID), if any.
    pub object: Option<Guid>,
    /// Abstract syntax of the context, when its bind and ack were seen.
    pub interface: Option<SyntaxId>,
    /// Transfer syntax of the context, when its bind and ack were seen.
    pub transfer_syntax: Option<SyntaxId>,
    /// NDR flavour decided by the context (`Unknown` when not negotiated in the capture).
    pub ndr: TransferSyntax,
    /// Data representation of the request (or reply) PDU.
    pub drep: DataRep,
    /// The request half; `None` when only the reply was seen (capture started mid-call).
    pub request: Option<Half>,
    /// The reply.
    pub reply: Reply,
}

impl Call {
    /// The KMS request bytes of a `RequestActivation` call (kms-protocol.md 1.6), using the
    /// context's NDR flavour or inferring it. `None` when the request was not seen.
    pub fn kms_request(&self) -> Option<Result<&[u8], StubError>> {
        let req = self.request.as_ref()?;
        Some(ndr::parse_kms_request_stub(&req.stub, self.ndr))
    }

    /// The decoded `[out]` stub of a `RequestActivation` response (kms-protocol.md 1.6, 3). `None`
    /// unless the reply is a response.
    pub fn kms_reply(&self) -> Option<Result<KmsReply<'_>, StubError>> {
        match &self.reply {
            Reply::Response(h) => Some(ndr::parse_kms_response_stub(&h.stub, self.ndr)),
            _ => None,
        }
    }

    /// Frame that completed the reply PDU, if any.
    pub fn reply_frame(&self) -> Option<u64> {
        match &self.reply {
            Reply::Response(h) => Some(h.frame),
            Reply::Fault { frame, .. } => Some(*frame),
            Reply::Missing(_) => None,
        }
    }
}

/// One result of a bind_ack / alter_context_resp, matched by position to the proposed element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedContext {
    /// p_cont_id of the matching proposed element; `None` when the bind was not seen.
    pub ctx_id: Option<u16>,
    /// Its abstract syntax (interface); `None` when the bind was not seen.
    pub abstract_syntax: Option<SyntaxId>,
    /// Its proposed transfer syntaxes (empty when the bind was not seen).
    pub proposed: TransferSyntaxes,
    /// The result as on the wire.
    pub ack: AckResult,
}

/// The results of one bind_ack, inline for the usual three contexts (see [`ContextList`]).
pub type AckedContexts = SmallVec<[AckedContext; 3]>;

/// What the session reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcEvent {
    /// A bind or alter_context (`ptype` says which), at the frame that completed it.
    Bind {
        /// Direction it travelled (normally `ToServer`).
        dir: Direction,
        /// Frame that completed the PDU.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// call_id.
        call_id: u32,
        /// [`PacketType::BIND`] or [`PacketType::ALTER_CONTEXT`].
        ptype: PacketType,
        /// max_xmit_frag.
        max_xmit_frag: u16,
        /// max_recv_frag.
        max_recv_frag: u16,
        /// assoc_group_id.
        assoc_group: u32,
        /// Proposed contexts.
        contexts: ContextList,
    },
    /// A bind_ack or alter_context_resp (`ptype` says which).
    BindAck {
        /// Frame that completed the PDU.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// call_id.
        call_id: u32,
        /// [`PacketType::BIND_ACK`] or [`PacketType::ALTER_CONTEXT_RESP`].
        ptype: PacketType,
        /// max_xmit_frag.
        max_xmit_frag: u16,
        /// max_recv_frag.
        max_recv_frag: u16,
        /// assoc_group_id.
        assoc_group: u32,
        /// sec_addr without its NUL, bytes as Latin-1 code points (exact; escape before display).
        sec_addr: SecAddr,
        /// Results matched to the proposed elements.
        results: AckedContexts,
    },
    /// A bind_nak: the association was rejected.
    BindNak {
        /// Frame that completed the PDU.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// call_id.
        call_id: u32,
        /// provider_reject_reason.
        reason: u16,
        /// Protocol versions the server supports.
        versions: Vec<(u8, u8)>,
    },
    /// auth3, shutdown, co_cancel or orphaned.
    Control {
        /// Direction it travelled.
        dir: Direction,
        /// Frame that completed the PDU.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// call_id.
        call_id: u32,
        /// PTYPE.
        ptype: PacketType,
    },
    /// A completed or abandoned call (emitted when the reply completes, or when the call is given up).
    Call(Call),
    /// Something in the stream that is not as it should be (events.md `anomaly`, layer `dcerpc`).
    Anomaly {
        /// Stream it concerns, if one.
        dir: Option<Direction>,
        /// Frame of the packet being processed when it was noticed.
        frame: u64,
        /// Its capture time.
        ts: Ts,
        /// One of [`anomaly_kind`].
        kind: &'static str,
        /// Human-readable detail with the concrete values.
        detail: String,
    },
}

/// Result of checking bytes for a plausible connection-oriented header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plausible {
    Yes,
    /// Not a header; the verdict was reached looking at bytes `..=n`.
    No(usize),
    NeedMore,
}

/// Smallest frag_length that can hold the fixed body of each PTYPE (kms-protocol.md 1.2–1.5).
fn min_frag_length(ptype: u8) -> u16 {
    match PacketType(ptype) {
        PacketType::REQUEST | PacketType::RESPONSE => 24,
        PacketType::FAULT | PacketType::BIND | PacketType::ALTER_CONTEXT => 28,
        PacketType::BIND_ACK | PacketType::ALTER_CONTEXT_RESP => 28,
        PacketType::BIND_NAK => 18,
        _ => HEADER_LEN as u16,
    }
}

/// Content detection (kms-protocol.md 1.1): `05 00`, a connection-oriented PTYPE, drep `10 00 00 00`
/// or `00 00 00 00`, frag_length large enough for the PTYPE's fixed body and for the auth trailer.
/// Judges each field as soon as its bytes are present, so the verdict never depends on how the
/// stream was segmented.
fn plausible(b: &[u8]) -> Plausible {
    use Plausible::*;
    let at = |i: usize| b.get(i).copied();
    let bad = |i: usize, ok: fn(u8) -> bool| at(i).is_some_and(|v| !ok(v));
    type Check = (usize, fn(u8) -> bool);
    let fixed: [Check; 7] = [
        (0, |v| v == 5),
        // C706 allows minor version 0 and 1 (5.1 is used by some stacks; a host may reject it
        // with a fault, which must still be seen as an RPC-level reject).
        (1, |v| v <= 1),
        (2, |v| PacketType(v).is_connection_oriented()),
        (4, |v| v == 0x10 || v == 0x00),
        (5, |v| v == 0),
        (6, |v| v == 0),
        (7, |v| v == 0),
    ];
    for (i, ok) in fixed {
        if bad(i, ok) {
            return No(i);
        }
    }
    if b.len() < 12 {
        return NeedMore;
    }
    let le = b[4] == 0x10;
    let rd = |i: usize| {
        if le {
            u16::from_le_bytes([b[i], b[i + 1]])
        } else {
            u16::from_be_bytes([b[i], b[i + 1]])
        }
    };
    let (frag, auth) = (rd(8), rd(10));
    if frag < min_frag_length(b[2]) {
        return No(9);
    }
    if auth > 0 && u32::from(auth) + 8 + u32::from(min_frag_length(b[2])) > u32::from(frag) {
        return No(11);
    }
    if b.len() < HEADER_LEN { NeedMore } else { Yes }
}

/// Finds the first offset below `max_start` with a plausible header: `(offset, true)`, or
/// `(offset, false)` where `offset` is where the caller must keep bytes from (a header prefix that
/// needs more data, or the end of what may be skipped).
fn scan(data: &[u8], max_start: usize) -> (usize, bool) {
    let end = data.len().min(max_start);
    for p in 0..end {
        if data[p] != 5 {
            continue;
        }
        match plausible(&data[p..]) {
            Plausible::No(_) => {}
            Plausible::NeedMore => return (p, false),
            Plausible::Yes => return (p, true),
        }
    }
    (end, false)
}

#[derive(Clone, Copy)]
struct Here {
    dir: Option<Direction>,
    frame: u64,
    ts: Ts,
}

#[derive(Default)]
struct DirState {
    /// A plausible first header was seen (content detection done for this stream).
    started: bool,
    /// `Some(bytes skipped so far)` while looking for a header after a gap or a bad header.
    resync: Option<u64>,
    /// Bytes the caller kept after the last `on_data` (a partial PDU).
    leftover: usize,
    /// Largest frag_length negotiated for this direction by the bind_ack.
    max_frag: Option<u16>,
    /// An unusual drep was already reported for this stream.
    drep_reported: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Context {
    abstract_syntax: SyntaxId,
    transfer_syntax: SyntaxId,
    ndr: TransferSyntax,
}

struct Partial {
    first_frame: u64,
    first_ts: Ts,
    frame: u64,
    ts: Ts,
    stub: Vec<u8>,
    frags: u16,
    alloc_hint: u32,
    truncated: bool,
    limited: bool,
    complete: bool,
}

impl Partial {
    /// A reassembly starting with the fragment at `here`; `stub` is an empty buffer to fill
    /// (a recycled one keeps its capacity, see [`Session::with_stub_pool`]).
    fn new(
        here: Here,
        alloc_hint: u32,
        single: usize,
        first_and_last: bool,
        mut stub: Vec<u8>,
    ) -> Partial {
        let cap = if first_and_last {
            single.min(MAX_STUB_BYTES)
        } else {
            (alloc_hint as usize).clamp(single, MAX_STUB_BYTES.max(single))
        };
        stub.reserve_exact(cap.min(MAX_STUB_BYTES));
        Partial {
            first_frame: here.frame,
            first_ts: here.ts,
            frame: here.frame,
            ts: here.ts,
            stub,
            frags: 0,
            alloc_hint,
            truncated: false,
            limited: false,
            complete: false,
        }
    }

    /// Appends one fragment's stub; returns the anomaly kind when a limit is hit for the first time.
    fn append(&mut self, stub: &[u8], here: Here) -> Option<&'static str> {
        self.frame = here.frame;
        self.ts = here.ts;
        self.frags = self.frags.saturating_add(1);
        let mut hit = None;
        if self.frags > MAX_FRAGMENTS {
            self.truncated = true;
            hit = Some(ak::FRAGMENT_LIMIT);
        } else {
            let room = MAX_STUB_BYTES.saturating_sub(self.stub.len());
            if stub.len() > room {
                self.stub.extend_from_slice(&stub[..room]);
                self.truncated = true;
                hit = Some(ak::STUB_LIMIT);
            } else {
                self.stub.extend_from_slice(stub);
            }
        }
        match hit {
            Some(k) if !self.limited => {
                self.limited = true;
                Some(k)
            }
            _ => None,
        }
    }

    fn into_half(self) -> Half {
        Half {
            frame: self.frame,
            ts: self.ts,
            first_frame: self.first_frame,
            first_ts: self.first_ts,
            stub: self.stub,
            frags: self.frags,
            alloc_hint: self.alloc_hint,
            truncated: self.truncated || !self.complete,
        }
    }
}

struct OpenCall {
    call_id: u32,
    /// call_id the server uses in replies when it differs (paired by [`ak::CALL_ID_MISMATCH`]).
    reply_call_id: Option<u32>,
    ctx_id: u16,
    opnum: Option<u16>,
    object: Option<Guid>,
    drep: DataRep,
    ctx: Option<Context>,
    request: Option<Partial>,
    reply: Option<Partial>,
    /// Bytes were lost server → client while this call waited for its reply.
    reply_gap: bool,
}

impl OpenCall {
    fn request_complete(&self) -> bool {
        self.request.as_ref().is_some_and(|r| r.complete)
    }
    fn awaiting_reply(&self) -> bool {
        self.request_complete() && self.reply.is_none()
    }
}

/// The DCE/RPC state of one TCP connection (see the module documentation).
pub struct Session {
    port_kms: bool,
    state: SessionState,
    kms: bool,
    bind_seen: bool,
    closed: bool,
    dirs: [DirState; 2],
    contexts: Vec<(u16, Context)>,
    /// call_id of the bind / alter_context waiting for its ack; its context list is
    /// `bind_lists[pending_list]`.
    pending_bind: Option<u32>,
    /// Context lists of binds, kept and refilled in place (inline for up to three elements): the
    /// pending bind's, and the one the next bind is parsed into (a malformed bind then leaves the
    /// pending one as it was; two slots, because swapping inline lists would copy them).
    bind_lists: [ContextList; 2],
    /// Which of `bind_lists` belongs to the pending bind (0 or 1).
    pending_list: usize,
    /// Report binds and alter_contexts as [`RpcEvent::Bind`] (see [`Session::bind_events`]).
    report_binds: bool,
    calls: Vec<OpenCall>,
    anomalies: u32,
    /// Empty stub buffers lent by the consumer for the reassemblies that start during one call
    /// (see [`Session::with_stub_pool`]); empty otherwise.
    spare_stubs: Vec<Vec<u8>>,
}

/// Empties `v`, and frees it when its capacity is above `max` (what a reused session keeps).
fn emptied<T>(v: &mut Vec<T>, max: usize) {
    if v.capacity() > max {
        *v = Vec::new();
    } else {
        v.clear();
    }
}

/// Empties a bind's context list, and frees it when it no longer fits inline (a bind proposing
/// more than three contexts; what a reused session keeps is the inline list).
fn emptied_list(l: &mut ContextList) {
    if l.spilled() {
        *l = ContextList::new();
    } else {
        l.clear();
    }
}

/// A copy of a bind's context list: its transfer-syntax lists copied as the plain values they
/// hold (`clone` goes through the generic element-by-element path twice, once per level).
fn copy_contexts(contexts: &ContextList) -> ContextList {
    contexts
        .iter()
        .map(|e| ContextElem {
            ctx_id: e.ctx_id,
            abstract_syntax: e.abstract_syntax,
            transfer_syntaxes: TransferSyntaxes::from_slice(&e.transfer_syntaxes),
        })
        .collect()
}

/// The accepted context `ctx_id` in `contexts`.
fn find_ctx(contexts: &[(u16, Context)], ctx_id: u16) -> Option<Context> {
    contexts
        .iter()
        .find(|(id, _)| *id == ctx_id)
        .map(|(_, c)| *c)
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "client-to-server",
        Direction::ToClient => "server-to-client",
    }
}

impl Session {
    /// A new session. `server_port_is_kms` is true when the server port is 1688: then a plausible
    /// KMS request marks the connection as KMS even without a captured bind.
    pub fn new(server_port_is_kms: bool) -> Session {
        Session {
            port_kms: server_port_is_kms,
            state: SessionState::Probing,
            kms: false,
            bind_seen: false,
            closed: false,
            dirs: [DirState::default(), DirState::default()],
            contexts: Vec::new(),
            pending_bind: None,
            bind_lists: [ContextList::new(), ContextList::new()],
            pending_list: 0,
            report_binds: true,
            calls: Vec::new(),
            anomalies: 0,
            spare_stubs: Vec::new(),
        }
    }

    /// Whether binds and alter_contexts are reported as [`RpcEvent::Bind`] (the default): a
    /// consumer that does not look at them turns them off, so that the bind's context list is
    /// not copied into an event per connection. The session tracks the negotiated contexts
    /// either way ([`RpcEvent::BindAck`] and [`Call`] are the same).
    pub fn bind_events(mut self, on: bool) -> Session {
        self.report_binds = on;
        self
    }

    /// Makes this session what [`Session::new`] returns, keeping the capacity of its small
    /// lists, so that a session reused for the next connection does not allocate them again.
    /// The consumer's choice of [`Session::bind_events`] is kept.
    pub fn reset(&mut self, server_port_is_kms: bool) {
        // Field by field (building a new session and moving it in was a copy of the whole
        // struct per connection); destructured so that a new field cannot be forgotten.
        let Session {
            port_kms,
            state,
            kms,
            bind_seen,
            closed,
            dirs,
            contexts,
            pending_bind,
            bind_lists,
            pending_list,
            report_binds: _,
            calls,
            anomalies,
            spare_stubs,
        } = self;
        *port_kms = server_port_is_kms;
        *state = SessionState::Probing;
        *kms = false;
        *bind_seen = false;
        *closed = false;
        *dirs = [DirState::default(), DirState::default()];
        emptied(contexts, 8);
        *pending_bind = None;
        for l in bind_lists {
            emptied_list(l);
        }
        *pending_list = 0;
        emptied(calls, 4);
        *anomalies = 0;
        // Empty outside `with_stub_pool`; a leftover list is not the session's to keep.
        *spare_stubs = Vec::new();
    }

    /// Runs `f` (e.g. a call of [`Session::on_data`]) with `pool` as the supply of stub
    /// buffers: a reassembly starting meanwhile takes an empty buffer from it instead of
    /// allocating one (the consumer refills `pool` with the stubs of the calls it is done with;
    /// buffers must be empty). What is left stays in `pool`: the session keeps none, so the
    /// memory of spare buffers is the consumer's (bounded by how many it keeps).
    pub fn with_stub_pool<R>(
        &mut self,
        pool: &mut Vec<Vec<u8>>,
        f: impl FnOnce(&mut Session) -> R,
    ) -> R {
        std::mem::swap(&mut self.spare_stubs, pool);
        let r = f(self);
        std::mem::swap(&mut self.spare_stubs, pool);
        r
    }

    /// What the session has concluded about the content.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// True when the connection carries KMS: a bind / alter_context named the KMS interface (any
    /// port), or the server port is 1688 and a request looked like a KMS `RequestActivation`.
    pub fn is_kms(&self) -> bool {
        self.kms
    }

    /// True once a bind or alter_context was seen.
    pub fn bind_seen(&self) -> bool {
        self.bind_seen
    }

    /// Calls currently open (request seen or reply being reassembled).
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// The accepted presentation context `ctx_id`: (abstract syntax, transfer syntax, NDR flavour).
    pub fn context(&self, ctx_id: u16) -> Option<(SyntaxId, SyntaxId, TransferSyntax)> {
        self.ctx(ctx_id)
            .map(|c| (c.abstract_syntax, c.transfer_syntax, c.ndr))
    }

    fn ctx(&self, ctx_id: u16) -> Option<Context> {
        find_ctx(&self.contexts, ctx_id)
    }

    fn anomaly(
        &mut self,
        here: Here,
        kind: &'static str,
        detail: impl FnOnce() -> String,
        out: &mut Vec<RpcEvent>,
    ) {
        if self.anomalies > MAX_ANOMALIES {
            return;
        }
        self.anomalies += 1;
        let (kind, detail) = if self.anomalies > MAX_ANOMALIES {
            (
                ak::ANOMALY_LIMIT,
                format!(
                    "more than {MAX_ANOMALIES} anomalies on this connection; further ones suppressed"
                ),
            )
        } else {
            (kind, detail())
        };
        out.push(RpcEvent::Anomaly {
            dir: here.dir,
            frame: here.frame,
            ts: here.ts,
            kind,
            detail,
        });
    }

    /// Feeds the contiguous, in-order, not-yet-consumed bytes of one direction. Returns how many
    /// bytes were consumed (whole PDUs, or garbage skipped while resynchronising); the caller keeps
    /// the rest and passes it again, with more bytes appended, next time. `frame`/`ts` are those of
    /// the packet that delivered the newest bytes, so a PDU completed in this call completed there.
    ///
    /// Content detection: the first bytes of each stream must be a plausible header; if the very
    /// first stream to send data fails, the session becomes [`SessionState::NotDceRpc`] (one
    /// `not_dcerpc` anomaly) and all further bytes are consumed silently. If the stream's start was
    /// lost, call [`Session::on_gap`] first: the session then searches for a header instead.
    pub fn on_data(
        &mut self,
        dir: Direction,
        data: &[u8],
        frame: u64,
        ts: Ts,
        out: &mut Vec<RpcEvent>,
    ) -> usize {
        let here = Here {
            dir: Some(dir),
            frame,
            ts,
        };
        let di = dir.index();
        if self.closed || self.state == SessionState::NotDceRpc {
            self.dirs[di].leftover = 0;
            return data.len();
        }
        let mut off = 0;
        while off < data.len() {
            if self.state == SessionState::NotDceRpc {
                off = data.len();
                break;
            }
            let rest = &data[off..];
            if let Some(skipped) = self.dirs[di].resync {
                // Before any header was seen, a header may start at most MAX_PROBE_SKIP bytes in.
                let max_start = if self.state == SessionState::Probing {
                    usize::try_from((MAX_PROBE_SKIP + 1).saturating_sub(skipped))
                        .unwrap_or(usize::MAX)
                } else {
                    usize::MAX
                };
                let (p, found) = scan(rest, max_start);
                off += p;
                let skipped = skipped.saturating_add(p as u64);
                if !found {
                    self.dirs[di].resync = Some(skipped);
                    if self.state == SessionState::Probing && skipped > MAX_PROBE_SKIP {
                        self.state = SessionState::NotDceRpc;
                        self.anomaly(
                            here,
                            ak::NOT_DCERPC,
                            || format!("no DCE/RPC header within {MAX_PROBE_SKIP} bytes after the stream's start was lost"),
                            out,
                        );
                        off = data.len();
                    }
                    break;
                }
                let d = &mut self.dirs[di];
                d.resync = None;
                d.started = true;
                if self.state == SessionState::Probing {
                    self.state = SessionState::DceRpc;
                }
                if skipped > 0 {
                    self.anomaly(
                        here,
                        ak::RESYNC,
                        || {
                            format!(
                                "resynchronised on a {} header after skipping {skipped} bytes",
                                dir_name(dir)
                            )
                        },
                        out,
                    );
                }
                continue;
            }
            if !self.dirs[di].started {
                match plausible(rest) {
                    Plausible::NeedMore => break,
                    Plausible::Yes => {
                        self.dirs[di].started = true;
                        if self.state == SessionState::Probing {
                            self.state = SessionState::DceRpc;
                        }
                    }
                    Plausible::No(k) => {
                        let head = hex_prefix(rest.get(..=k).unwrap_or(rest));
                        if self.state == SessionState::Probing {
                            self.state = SessionState::NotDceRpc;
                            self.anomaly(
                                here,
                                ak::NOT_DCERPC,
                                || {
                                    format!(
                                        "{} stream does not start with a DCE/RPC header: {head}",
                                        dir_name(dir)
                                    )
                                },
                                out,
                            );
                            off = data.len();
                            break;
                        }
                        self.anomaly(
                            here,
                            ak::BAD_HEADER,
                            || format!("{} stream does not start with a DCE/RPC header ({head}); resynchronising", dir_name(dir)),
                            out,
                        );
                        self.dirs[di].resync = Some(0);
                        continue;
                    }
                }
            }
            // Matched by reference, here and for the PDU bodies below: moving a just-parsed
            // struct out of its `Result` copied it in wide loads right after the narrow stores
            // that built it (a store-forwarding stall per PDU in the native profile).
            let parsed = parse_pdu_raw(rest);
            match &parsed {
                Ok((_, pdu)) => {
                    off += pdu.bytes.len();
                    self.on_pdu(dir, pdu, here, out);
                }
                Err(nom::Err::Incomplete(_)) => break,
                Err(_) => {
                    let head = hex_prefix(&rest[..rest.len().min(HEADER_LEN)]);
                    let (kind, what) = if rest.get(..2) == Some(&[5, 0][..]) {
                        (ak::BAD_FRAG_LENGTH, "frag_length below 16")
                    } else {
                        (ak::BAD_HEADER, "not DCE/RPC 5.0")
                    };
                    self.anomaly(
                        here,
                        kind,
                        || format!("{} header {what} ({head}); resynchronising", dir_name(dir)),
                        out,
                    );
                    off += 1;
                    self.dirs[di].resync = Some(1);
                }
            }
        }
        self.dirs[di].leftover = data.len() - off;
        off
    }

    /// Bytes were lost in `dir` (TCP gap). Any partial PDU is dropped (the caller must discard the
    /// bytes it kept for `dir`: they are not contiguous with what follows) and the stream
    /// resynchronises on the next plausible header. Reassemblies in progress in `dir` are marked
    /// truncated; calls waiting for a reply when server-to-client bytes are lost end as
    /// [`CloseReason::Gap`] if no reply comes. Called before any data, it means the stream's start
    /// was not captured.
    pub fn on_gap(
        &mut self,
        dir: Direction,
        missing: u64,
        frame: u64,
        ts: Ts,
        out: &mut Vec<RpcEvent>,
    ) {
        if self.closed || self.state == SessionState::NotDceRpc {
            return;
        }
        let here = Here {
            dir: Some(dir),
            frame,
            ts,
        };
        let d = &mut self.dirs[dir.index()];
        let dropped = std::mem::take(&mut d.leftover);
        let was_resyncing = d.resync.is_some();
        d.resync = Some(d.resync.unwrap_or(0));
        let mut touched = 0usize;
        for c in &mut self.calls {
            match dir {
                Direction::ToServer => {
                    if let Some(r) = c.request.as_mut().filter(|r| !r.complete) {
                        r.truncated = true;
                        touched += 1;
                    }
                }
                Direction::ToClient => {
                    if c.request.is_some() {
                        c.reply_gap = true;
                    }
                    if let Some(r) = c.reply.as_mut() {
                        r.truncated = true;
                    }
                    touched += 1;
                }
            }
        }
        if self.state == SessionState::DceRpc {
            self.anomaly(
                here,
                ak::GAP,
                || {
                    format!(
                        "{missing} bytes lost in the {} stream; {dropped} buffered bytes of a partial PDU dropped; \
                         {touched} open calls affected; {}",
                        dir_name(dir),
                        if was_resyncing { "still resynchronising" } else { "resynchronising" }
                    )
                },
                out,
            );
        }
    }

    /// The connection ended (FIN, RST, idle timeout, end of capture): every open call is reported
    /// as [`Reply::Missing`] with `reason` ([`CloseReason::Gap`] instead when server-to-client bytes
    /// were lost while it waited), and partial PDUs left in the caller's buffers are reported as
    /// `truncated_pdu`. Later calls to any method do nothing.
    pub fn on_close(&mut self, reason: CloseReason, frame: u64, ts: Ts, out: &mut Vec<RpcEvent>) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.state == SessionState::NotDceRpc {
            return;
        }
        for dir in [Direction::ToServer, Direction::ToClient] {
            let here = Here {
                dir: Some(dir),
                frame,
                ts,
            };
            let d = &self.dirs[dir.index()];
            let (left, resync) = (d.leftover, d.resync);
            if left > 0 {
                self.anomaly(
                    here,
                    ak::TRUNCATED_PDU,
                    || {
                        format!(
                            "{left} bytes of an incomplete {} PDU when the connection ended ({})",
                            dir_name(dir),
                            reason.as_str()
                        )
                    },
                    out,
                );
            }
            if let Some(skipped) = resync.filter(|s| *s > 0) {
                self.anomaly(
                    here,
                    ak::RESYNC,
                    || {
                        format!(
                            "{} stream ended while resynchronising, {skipped} bytes skipped",
                            dir_name(dir)
                        )
                    },
                    out,
                );
            }
        }
        let here = Here {
            dir: None,
            frame,
            ts,
        };
        while !self.calls.is_empty() {
            self.close_call(0, reason, here, out);
        }
    }

    /// Removes call `idx` and reports it as unanswered (or, for a reply-only entry, as an
    /// incomplete reply).
    fn close_call(&mut self, idx: usize, reason: CloseReason, here: Here, out: &mut Vec<RpcEvent>) {
        let Some(c) = self.calls.get(idx) else {
            return;
        };
        let (id, has_request, reply_gap) = (c.call_id, c.request.is_some(), c.reply_gap);
        if let Some(r) = &c.reply {
            let (frags, len) = (r.frags, r.stub.len());
            self.anomaly(
                here,
                ak::INCOMPLETE_REPLY,
                || format!("call {id}: reply of {frags} fragments ({len} stub bytes) never completed ({})", reason.as_str()),
                out,
            );
        }
        if !has_request {
            self.forget_call(idx);
            return;
        }
        let reason = if reply_gap && reason.is_connection_end() {
            CloseReason::Gap
        } else {
            reason
        };
        self.emit_call(idx, Reply::Missing(reason), out);
    }

    /// Reports open call `i` with `reply` and forgets it. The call is taken apart where it stands
    /// in the list (moving it out first was a copy of the whole entry per call).
    fn emit_call(&mut self, i: usize, reply: Reply, out: &mut Vec<RpcEvent>) {
        let Some(c) = self.calls.get_mut(i) else {
            return;
        };
        let ctx = c.ctx.or_else(|| find_ctx(&self.contexts, c.ctx_id));
        out.push(RpcEvent::Call(Call {
            call_id: c.call_id,
            ctx_id: c.ctx_id,
            opnum: c.opnum,
            object: c.object,
            interface: ctx.map(|x| x.abstract_syntax),
            transfer_syntax: ctx.map(|x| x.transfer_syntax),
            ndr: ctx.map_or(TransferSyntax::Unknown, |x| x.ndr),
            drep: c.drep,
            request: c.request.take().map(Partial::into_half),
            reply,
        }));
        self.forget_call(i);
    }

    /// Removes open call `i` (the last one, as nearly always, without moving anything).
    fn forget_call(&mut self, i: usize) {
        if i + 1 == self.calls.len() {
            self.calls.truncate(i);
        } else if i < self.calls.len() {
            self.calls.remove(i);
        }
    }

    /// Makes room for one more open call.
    fn reserve_call(&mut self, here: Here, out: &mut Vec<RpcEvent>) {
        if self.calls.len() >= MAX_OPEN_CALLS {
            let id = self.calls.first().map_or(0, |c| c.call_id);
            self.anomaly(
                here,
                ak::CALL_LIMIT,
                || format!("more than {MAX_OPEN_CALLS} open calls; giving up on the oldest (call_id {id})"),
                out,
            );
            self.close_call(0, CloseReason::Limit, here, out);
        }
    }

    fn on_pdu(&mut self, dir: Direction, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let h = &pdu.header;
        let di = dir.index();
        if h.drep != DataRep::LITTLE_ENDIAN && !self.dirs[di].drep_reported {
            self.dirs[di].drep_reported = true;
            self.anomaly(
                here,
                ak::UNUSUAL_DREP,
                || {
                    format!(
                        "{} PDU with data representation {:?} (KMS always uses 10000000)",
                        h.ptype, h.drep
                    )
                },
                out,
            );
        }
        if let Some(max) = self.dirs[di].max_frag.filter(|m| h.frag_length > *m) {
            self.anomaly(
                here,
                ak::FRAG_LENGTH_EXCEEDS_NEGOTIATED,
                || {
                    format!(
                        "{} PDU frag_length {} exceeds the negotiated {max}",
                        h.ptype, h.frag_length
                    )
                },
                out,
            );
        }
        match (h.ptype, dir) {
            (PacketType::BIND | PacketType::ALTER_CONTEXT, Direction::ToServer) => {
                self.on_bind(dir, pdu, here, out)
            }
            (PacketType::BIND_ACK | PacketType::ALTER_CONTEXT_RESP, Direction::ToClient) => {
                self.on_bind_ack(pdu, here, out)
            }
            (PacketType::BIND_NAK, Direction::ToClient) => self.on_bind_nak(pdu, here, out),
            (PacketType::REQUEST, Direction::ToServer) => self.on_request(pdu, here, out),
            (PacketType::RESPONSE | PacketType::FAULT, Direction::ToClient) => {
                self.on_reply(pdu, here, out)
            }
            (PacketType::SHUTDOWN, Direction::ToClient)
            | (
                PacketType::CO_CANCEL | PacketType::ORPHANED | PacketType::AUTH3,
                Direction::ToServer,
            ) => {
                if h.ptype == PacketType::ORPHANED
                    && let Some(i) = self.calls.iter().position(|c| c.call_id == h.call_id)
                {
                    self.close_call(i, CloseReason::Orphaned, here, out);
                }
                out.push(RpcEvent::Control {
                    dir,
                    frame: here.frame,
                    ts: here.ts,
                    call_id: h.call_id,
                    ptype: h.ptype,
                });
            }
            _ => {
                let what = if h.ptype.is_connection_oriented() {
                    "in the wrong direction"
                } else {
                    "not a connection-oriented PDU type"
                };
                self.anomaly(
                    here,
                    ak::UNEXPECTED_PDU,
                    || {
                        format!(
                            "{} PDU (call_id {}, {} bytes) in the {} stream: {what}; skipped",
                            h.ptype,
                            h.call_id,
                            h.frag_length,
                            dir_name(dir)
                        )
                    },
                    out,
                );
            }
        }
    }

    fn malformed(&mut self, here: Here, err: &dyn std::fmt::Display, out: &mut Vec<RpcEvent>) {
        let msg = err.to_string();
        self.anomaly(here, ak::MALFORMED_PDU, || msg, out);
    }

    fn on_bind(&mut self, dir: Direction, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let h = &pdu.header;
        // Parsed into the slot the pending bind does not use, which it becomes.
        let slot = (self.pending_list + 1) % 2;
        let list = &mut self.bind_lists[slot];
        let (max_xmit_frag, max_recv_frag, assoc_group) = match parse_bind_into(pdu, list) {
            Some(f) => f,
            // The nom parser names the field that does not fit.
            None => match parse_bind(pdu) {
                Ok(b) => {
                    *list = b.contexts;
                    (b.max_xmit_frag, b.max_recv_frag, b.assoc_group)
                }
                Err(e) => return self.malformed(here, &e, out),
            },
        };
        self.pending_list = slot;
        self.pending_bind = Some(h.call_id);
        self.bind_seen = true;
        let list = &self.bind_lists[slot];
        if list.iter().any(|c| c.abstract_syntax.is_kms()) {
            self.kms = true;
        }
        if self.report_binds {
            out.push(RpcEvent::Bind {
                dir,
                frame: here.frame,
                ts: here.ts,
                call_id: h.call_id,
                ptype: h.ptype,
                max_xmit_frag,
                max_recv_frag,
                assoc_group,
                contexts: copy_contexts(list),
            });
        }
    }

    fn add_context(&mut self, ctx_id: u16, ctx: Context, here: Here, out: &mut Vec<RpcEvent>) {
        if let Some(slot) = self.contexts.iter_mut().find(|(id, _)| *id == ctx_id) {
            slot.1 = ctx;
            return;
        }
        if self.contexts.len() >= MAX_CONTEXTS {
            let old = self.contexts.remove(0).0;
            self.anomaly(
                here,
                ak::CONTEXT_LIMIT,
                || {
                    format!(
                        "more than {MAX_CONTEXTS} presentation contexts; forgetting context {old}"
                    )
                },
                out,
            );
        }
        self.contexts.push((ctx_id, ctx));
    }

    fn on_bind_ack(&mut self, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let h = &pdu.header;
        let parsed = parse_bind_ack(pdu);
        let a = match &parsed {
            Ok(a) => a,
            Err(e) => return self.malformed(here, e, out),
        };
        let pending = self.pending_bind.take();
        let k = self.pending_list % 2;
        match pending {
            None => {
                // No proposed list to match the results to.
                self.bind_lists[k].clear();
                self.anomaly(
                    here,
                    ak::UNMATCHED_BIND_ACK,
                    || format!("{} (call_id {}) without a preceding bind/alter_context; contexts cannot be matched", h.ptype, h.call_id),
                    out,
                )
            }
            Some(pid) => {
                let (n_prop, n_res) = (self.bind_lists[k].len(), a.results.len());
                if n_prop != n_res {
                    self.anomaly(
                        here,
                        ak::UNMATCHED_BIND_ACK,
                        || {
                            format!(
                                "{} has {n_res} results for {n_prop} proposed contexts",
                                h.ptype
                            )
                        },
                        out,
                    );
                }
                if pid != h.call_id {
                    self.anomaly(
                        here,
                        ak::CALL_ID_MISMATCH,
                        || {
                            format!(
                                "{} call_id {} answers a bind with call_id {pid}",
                                h.ptype, h.call_id
                            )
                        },
                        out,
                    );
                }
            }
        }
        // The accepted contexts first (a `context_limit` anomaly comes before the event)...
        for (i, r) in a.results.iter().enumerate() {
            let Some(e) = self.bind_lists[k].get(i).filter(|_| r.accepted()) else {
                continue;
            };
            let transfer_syntax = if r.transfer_syntax.is_null() {
                e.transfer_syntaxes
                    .first()
                    .copied()
                    .unwrap_or(SyntaxId::NULL)
            } else {
                r.transfer_syntax
            };
            let (ctx_id, abstract_syntax) = (e.ctx_id, e.abstract_syntax);
            let ctx = Context {
                abstract_syntax,
                transfer_syntax,
                ndr: TransferSyntax::from_syntax(&transfer_syntax),
            };
            if abstract_syntax.is_kms() {
                self.kms = true;
            }
            self.add_context(ctx_id, ctx, here, out);
        }
        if a.max_recv_frag as usize >= HEADER_LEN {
            self.dirs[Direction::ToServer.index()].max_frag = Some(a.max_recv_frag);
        }
        if a.max_xmit_frag as usize >= HEADER_LEN {
            self.dirs[Direction::ToClient.index()].max_frag = Some(a.max_xmit_frag);
        }
        // ...then the event, whose results are filled where it stands in `out` (a list built
        // beside it was one more copy of a few hundred bytes).
        out.push(RpcEvent::BindAck {
            frame: here.frame,
            ts: here.ts,
            call_id: h.call_id,
            ptype: h.ptype,
            max_xmit_frag: a.max_xmit_frag,
            max_recv_frag: a.max_recv_frag,
            assoc_group: a.assoc_group,
            sec_addr: a.sec_addr_text(),
            results: AckedContexts::new(),
        });
        let proposed = &mut self.bind_lists[k];
        if let Some(RpcEvent::BindAck { results, .. }) = out.last_mut() {
            results.reserve_exact(a.results.len());
            for (i, r) in a.results.iter().enumerate() {
                let elem = proposed.get_mut(i);
                results.push(AckedContext {
                    ctx_id: elem.as_deref().map(|e| e.ctx_id),
                    abstract_syntax: elem.as_deref().map(|e| e.abstract_syntax),
                    // Each proposed element answers one result: its list moves, no copy.
                    proposed: elem
                        .map(|e| std::mem::take(&mut e.transfer_syntaxes))
                        .unwrap_or_default(),
                    ack: *r,
                });
            }
        }
        // The bind is answered: its list is not needed any more.
        emptied_list(proposed);
    }

    fn on_bind_nak(&mut self, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let n = match parse_bind_nak(pdu) {
            Ok(n) => n,
            Err(e) => return self.malformed(here, &e, out),
        };
        self.pending_bind = None;
        out.push(RpcEvent::BindNak {
            frame: here.frame,
            ts: here.ts,
            call_id: pdu.header.call_id,
            reason: n.reason,
            versions: n.versions,
        });
    }

    fn on_request(&mut self, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let h = &pdu.header;
        let parsed = parse_request(pdu);
        let r = match &parsed {
            Ok(r) => r,
            Err(e) => return self.malformed(here, e, out),
        };
        let id = h.call_id;
        let (first, last) = (h.flags.first_frag(), h.flags.last_frag());
        let mut idx = self.calls.iter().position(|c| c.call_id == id);
        if first {
            if let Some(i) = idx {
                let (kind, why) = match &self.calls[i].request {
                    Some(p) if !p.complete => {
                        (ak::FRAGMENT_RESTART, "restarted before its last fragment")
                    }
                    Some(_) => (
                        ak::DUPLICATE_CALL_ID,
                        "reused before the previous call was answered",
                    ),
                    None => (
                        ak::DUPLICATE_CALL_ID,
                        "reused while an orphan reply was being reassembled",
                    ),
                };
                self.anomaly(here, kind, || format!("call_id {id} {why}"), out);
                self.close_call(i, CloseReason::Superseded, here, out);
            }
            self.reserve_call(here, out);
            self.calls.push(OpenCall {
                call_id: id,
                reply_call_id: None,
                ctx_id: r.ctx_id,
                opnum: Some(r.opnum),
                object: r.object,
                drep: h.drep,
                ctx: None,
                request: Some(Partial::new(
                    here,
                    r.alloc_hint,
                    r.stub.len(),
                    last,
                    self.spare_stubs.pop().unwrap_or_default(),
                )),
                reply: None,
                reply_gap: false,
            });
            idx = Some(self.calls.len() - 1);
        } else {
            let ok =
                idx.is_some_and(|i| self.calls[i].request.as_ref().is_some_and(|p| !p.complete));
            if !ok {
                let n = r.stub.len();
                self.anomaly(
                    here,
                    ak::ORPHAN_FRAGMENT,
                    || format!("request fragment of call_id {id} ({n} stub bytes) without its first fragment; dropped"),
                    out,
                );
                return;
            }
            if let Some(c) = idx.and_then(|i| self.calls.get(i))
                && (c.ctx_id != r.ctx_id || c.opnum != Some(r.opnum))
            {
                let (c0, o0) = (c.ctx_id, c.opnum.unwrap_or(0));
                self.anomaly(
                        here,
                        ak::FRAGMENT_MISMATCH,
                        || format!("call_id {id}: fragment names context {} opnum {}, first fragment context {c0} opnum {o0}", r.ctx_id, r.opnum),
                        out,
                    );
            }
        }
        let Some(i) = idx else { return };
        let Some(call) = self.calls.get_mut(i) else {
            return;
        };
        let Some(req) = call.request.as_mut() else {
            return;
        };
        let hit = req.append(r.stub, here);
        if last {
            req.complete = true;
        }
        if let Some(kind) = hit {
            self.anomaly(
                here,
                kind,
                || format!("call_id {id}: request exceeds {MAX_FRAGMENTS} fragments or {MAX_STUB_BYTES} stub bytes; truncated"),
                out,
            );
        }
        if last {
            self.request_completed(i, here, out);
        }
    }

    /// Resolves the context of a just-completed request and applies the port-1688 KMS heuristic.
    fn request_completed(&mut self, i: usize, here: Here, out: &mut Vec<RpcEvent>) {
        let Some(c) = self.calls.get(i) else { return };
        let (ctx_id, id) = (c.ctx_id, c.call_id);
        let ctx = self.ctx(ctx_id);
        // With a bind / alter_context still unanswered (pipelined request), the context may yet be
        // accepted: it is resolved again when the call is reported.
        if ctx.is_none() && self.bind_seen && self.pending_bind.is_none() {
            self.anomaly(
                here,
                ak::UNKNOWN_CONTEXT,
                || {
                    format!(
                        "call_id {id} names presentation context {ctx_id}, which was never accepted"
                    )
                },
                out,
            );
        }
        let port_kms = self.port_kms;
        let Some(c) = self.calls.get_mut(i) else {
            return;
        };
        c.ctx = ctx;
        if !self.kms && port_kms && c.opnum == Some(ndr::KMS_OPNUM) {
            let ndr = ctx.map_or(TransferSyntax::Unknown, |x| x.ndr);
            let plausible = c
                .request
                .as_ref()
                .is_some_and(|r| !r.truncated && ndr::is_plausible_kms_request(&r.stub, ndr));
            if plausible && ctx.is_none_or(|x| x.abstract_syntax.is_kms()) {
                self.kms = true;
            }
        }
    }

    /// Finds the open call a reply belongs to: by call_id, else (Wine answers every call with
    /// call_id 1; kms-protocol.md 1.1) the single call waiting for a reply.
    fn find_reply_target(&mut self, id: u32, here: Here, out: &mut Vec<RpcEvent>) -> Option<usize> {
        if let Some(i) = self
            .calls
            .iter()
            .position(|c| c.call_id == id || c.reply_call_id == Some(id))
        {
            return Some(i);
        }
        let mut waiting = self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.awaiting_reply());
        let (i, c) = waiting.next()?;
        if waiting.next().is_some() {
            return None;
        }
        let req_id = c.call_id;
        self.anomaly(
            here,
            ak::CALL_ID_MISMATCH,
            || format!("reply call_id {id} matches no request; paired with the only unanswered call, call_id {req_id}"),
            out,
        );
        if let Some(c) = self.calls.get_mut(i) {
            c.reply_call_id = Some(id);
        }
        Some(i)
    }

    fn on_reply(&mut self, pdu: &RawPdu<'_>, here: Here, out: &mut Vec<RpcEvent>) {
        let h = &pdu.header;
        let id = h.call_id;
        let is_fault = h.ptype == PacketType::FAULT;
        let (ctx_id, alloc_hint, stub, status) = if is_fault {
            match parse_fault(pdu) {
                Ok(f) => (f.ctx_id, f.alloc_hint, &[][..], f.status),
                Err(e) => return self.malformed(here, &e, out),
            }
        } else {
            match parse_response(pdu) {
                Ok(r) => (r.ctx_id, r.alloc_hint, r.stub, 0),
                Err(e) => return self.malformed(here, &e, out),
            }
        };
        let (first, last) = (h.flags.first_frag(), h.flags.last_frag());
        let found = if first || is_fault {
            self.find_reply_target(id, here, out)
        } else {
            self.calls
                .iter()
                .position(|c| (c.call_id == id || c.reply_call_id == Some(id)) && c.reply.is_some())
        };
        let i = match found {
            Some(i) => i,
            None if !first && !is_fault => {
                let n = stub.len();
                self.anomaly(
                    here,
                    ak::ORPHAN_FRAGMENT,
                    || format!("response fragment of call_id {id} ({n} stub bytes) without its first fragment; dropped"),
                    out,
                );
                return;
            }
            None => {
                self.anomaly(
                    here,
                    ak::ORPHAN_RESPONSE,
                    || format!("{} for call_id {id} whose request was not seen (capture started mid-call or request lost)", h.ptype),
                    out,
                );
                self.reserve_call(here, out);
                self.calls.push(OpenCall {
                    call_id: id,
                    reply_call_id: None,
                    ctx_id,
                    opnum: None,
                    object: None,
                    drep: h.drep,
                    ctx: None,
                    request: None,
                    reply: None,
                    reply_gap: false,
                });
                self.calls.len() - 1
            }
        };
        // A reply ends the request: if it was still being reassembled, it is incomplete.
        if let Some(req) = self.calls.get_mut(i).and_then(|c| c.request.as_mut())
            && !req.complete
        {
            req.complete = true;
            req.truncated = true;
            self.anomaly(
                here,
                ak::REPLY_BEFORE_REQUEST_COMPLETE,
                || {
                    format!(
                        "{} for call_id {id} before the request's last fragment",
                        h.ptype
                    )
                },
                out,
            );
            self.request_completed(i, here, out);
        }
        if is_fault {
            let Some(c) = self.calls.get(i) else {
                return;
            };
            if c.reply.is_some() {
                self.anomaly(
                    here,
                    ak::INCOMPLETE_REPLY,
                    || format!("call_id {id}: fault after response fragments; fragments discarded"),
                    out,
                );
            }
            let reply = Reply::Fault {
                frame: here.frame,
                ts: here.ts,
                status,
                flags: h.flags,
            };
            return self.emit_call(i, reply, out);
        }
        let Some(c) = self.calls.get_mut(i) else {
            return;
        };
        if first {
            if c.reply.is_some() {
                self.anomaly(
                    here,
                    ak::FRAGMENT_RESTART,
                    || format!("response for call_id {id} restarted before its last fragment"),
                    out,
                );
            }
            let buf = self.spare_stubs.pop().unwrap_or_default();
            let Some(c) = self.calls.get_mut(i) else {
                return;
            };
            c.reply = Some(Partial::new(here, alloc_hint, stub.len(), last, buf));
        }
        let Some(rep) = self.calls.get_mut(i).and_then(|c| c.reply.as_mut()) else {
            return;
        };
        let hit = rep.append(stub, here);
        if let Some(kind) = hit {
            self.anomaly(
                here,
                kind,
                || format!("call_id {id}: response exceeds {MAX_FRAGMENTS} fragments or {MAX_STUB_BYTES} stub bytes; truncated"),
                out,
            );
        }
        if last {
            let Some(mut rep) = self.calls.get_mut(i).and_then(|c| c.reply.take()) else {
                return;
            };
            rep.complete = true;
            self.emit_call(i, Reply::Response(rep.into_half()), out);
        }
    }
}

/// `b` in hex, for anomaly details (callers pass at most 16 bytes: the ones that decided).
fn hex_prefix(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausibility_is_prefix_monotone() {
        let hdr = [5u8, 0, 0, 3, 0x10, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(plausible(&hdr), Plausible::Yes);
        for n in 0..16 {
            assert_eq!(plausible(&hdr[..n]), Plausible::NeedMore, "prefix {n}");
        }
        let mut bad = hdr;
        bad[2] = 5; // connectionless-only
        assert_eq!(plausible(&bad[..3]), Plausible::No(2));
        let mut bad = hdr;
        bad[8] = 23; // too short for a request
        assert_eq!(plausible(&bad), Plausible::No(9));
        assert_eq!(scan(&[0, 5, 1, 5, 0], usize::MAX), (3, false));
        assert_eq!(scan(&[0, 5, 1, 5, 0], 2), (2, false));
        let mut s = vec![9, 9];
        s.extend_from_slice(&hdr);
        assert_eq!(scan(&s, usize::MAX), (2, true));
    }

    #[test]
    fn garbage_is_not_dcerpc() {
        let mut s = Session::new(true);
        let mut out = Vec::new();
        let n = s.on_data(
            Direction::ToServer,
            b"GET / HTTP/1.1\r\n",
            1,
            Ts(0),
            &mut out,
        );
        assert_eq!(n, 16);
        assert_eq!(s.state(), SessionState::NotDceRpc);
        assert!(matches!(
            &out[..],
            [RpcEvent::Anomaly {
                kind: "not_dcerpc",
                ..
            }]
        ));
        assert_eq!(
            s.on_data(Direction::ToClient, b"HTTP/1.1 200", 2, Ts(0), &mut out),
            12
        );
        s.on_close(CloseReason::ConnectionClosed, 3, Ts(0), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn short_prefix_waits() {
        let mut s = Session::new(true);
        let mut out = Vec::new();
        assert_eq!(
            s.on_data(Direction::ToServer, &[5, 0, 11], 1, Ts(0), &mut out),
            0
        );
        assert_eq!(s.state(), SessionState::Probing);
        assert!(out.is_empty());
        s.on_close(CloseReason::Reset, 2, Ts(0), &mut out);
        assert!(matches!(
            &out[..],
            [RpcEvent::Anomaly {
                kind: "truncated_pdu",
                ..
            }]
        ));
    }
}
