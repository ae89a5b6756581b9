//! DCE/RPC connection-oriented layer of kmsscope: PDU parsers, the NDR stubs of the KMS operation, and
//! the per-connection session state machine.
//!
//! Specifications: The Open Group C706 "DCE 1.1: Remote Procedure Call" chapter 12 (connection-oriented
//! protocol, PDU layouts) and chapter 14 (NDR); Microsoft MS-RPCE 2.2.2 (PDU extensions: bind-time
//! feature negotiation, header signing), 2.2.5 (NDR64); kms-protocol.md section 1 (what KMS actually
//! sends: 1.1 header, 1.2 bind/alter_context, 1.3 bind_ack/alter_context_resp/bind_nak, 1.4 request,
//! 1.5 response/fault, 1.6 stubs and fragments), section 3 (refusals) and section 8 (pitfalls).
//!
//! Layers, data flowing one way:
//!
//! * [`pdu`]: [`parse_pdu_raw`] frames one PDU out of a byte stream (streaming nom parser, `Incomplete`
//!   with the missing count); the `parse_*` body parsers decode one framed PDU (complete mode).
//! * [`ndr`]: [`parse_kms_request_stub`] / [`parse_kms_response_stub`] unwrap the KMS message from the
//!   NDR32 or NDR64 stub of `RequestActivation` (opnum 0), cross-checking every size field.
//! * [`session`]: [`Session`] turns the two reassembled TCP byte streams of one connection into
//!   [`RpcEvent`]s: binds and their acks, completed [`Call`]s (request paired with response, fault, or
//!   a reason why there was none) and anomalies. It depends only on the two parser modules.

pub mod ndr;
pub mod pdu;
pub mod session;

pub use ndr::{
    KMS_OPNUM, KMS_RESPONSE_REFERENT, KmsReply, StubError, StubKind, TransferSyntax,
    detect_request_ndr, detect_response_ndr, is_plausible_kms_request, parse_kms_request_stub,
    parse_kms_response_stub,
};
pub use pdu::{
    AckResult, AckResults, BTFN_KEEP_CONNECTION_ON_ORPHAN, BTFN_PREFIX,
    BTFN_SECURITY_CONTEXT_MULTIPLEXING, Bind, BindAck, BindNak, ContextElem, ContextList, DataRep,
    Fault, HEADER_LEN, Header, MAX_FRAG_LENGTH, PacketType, PduError, PfcFlags, RawPdu, Request,
    Response, SEC_TRAILER_LEN, SecAddr, SyntaxId, fault_status_name, parse_bind, parse_bind_ack,
    parse_bind_nak, parse_fault, parse_header, parse_pdu_raw, parse_request, parse_response,
};
pub use session::{
    AckedContext, AckedContexts, Call, CloseReason, Half, MAX_ANOMALIES, MAX_CONTEXTS,
    MAX_FRAGMENTS, MAX_OPEN_CALLS, MAX_PROBE_SKIP, MAX_STUB_BYTES, Reply, RpcEvent, Session,
    SessionState, anomaly_kind,
};
