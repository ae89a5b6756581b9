//! TEST-ONLY encoder for connection-oriented DCE/RPC PDUs as KMS uses them (kms-protocol.md 1.1–1.6,
//! C706 chapter 12). Builds bind / alter_context, bind_ack / alter_context_resp, bind_nak, request and
//! response (with the KMS NDR32/NDR64 stubs, optionally fragmented), fault and control PDUs, always
//! little-endian (`10 00 00 00`). Reproduces the PDUs of kms-protocol.md 7.1–7.5 byte for byte.
//!
//! Uses only std and kmsscope's public API; include it with
//! `#[path = "common/dcerpc_encoder.rs"] mod dcerpc_encoder;`.

#![allow(dead_code)]

use kmsscope::dcerpc::{AckResult, ContextElem, PacketType, PfcFlags, SyntaxId, TransferSyntax};

/// max_xmit_frag / max_recv_frag vlmcs and vlmcsd use (kms-protocol.md 1.2).
pub const VLMCS_MAX_FRAG: u16 = 5840;
/// FIRST_FRAG | LAST_FRAG | CONC_MPX: flags of vlmcs binds and vlmcsd bind_acks.
pub const FLAGS_BIND: PfcFlags = PfcFlags(0x13);
/// FIRST_FRAG | LAST_FRAG.
pub const FLAGS_SINGLE: PfcFlags = PfcFlags(0x03);
/// FIRST_FRAG | LAST_FRAG | DID_NOT_EXECUTE: flags of vlmcsd faults.
pub const FLAGS_FAULT: PfcFlags = PfcFlags(0x23);

fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_syntax(v: &mut Vec<u8>, s: &SyntaxId) {
    v.extend_from_slice(&s.uuid.0);
    put_u32(v, s.version);
}

/// A whole PDU: 16-byte common header (version 5.0, drep `10 00 00 00`, auth_length 0,
/// frag_length = 16 + body) followed by `body`. Panics if the PDU would exceed 65535 bytes.
pub fn pdu(ptype: PacketType, flags: PfcFlags, call_id: u32, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(16 + body.len()).expect("PDU longer than 65535 bytes");
    let mut v = Vec::with_capacity(usize::from(len));
    v.extend_from_slice(&[5, 0, ptype.0, flags.0, 0x10, 0, 0, 0]);
    put_u16(&mut v, len);
    put_u16(&mut v, 0);
    put_u32(&mut v, call_id);
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------------------------
// bind / alter_context
// ---------------------------------------------------------------------------------------------

/// One context element with a single transfer syntax.
pub fn context(ctx_id: u16, abstract_syntax: SyntaxId, transfer: SyntaxId) -> ContextElem {
    ContextElem {
        ctx_id,
        abstract_syntax,
        transfer_syntaxes: [transfer].into(),
    }
}

/// The modern client's three KMS elements: id 0 NDR32, id 1 NDR64, id 2 BTFN 0x0003 (kms-protocol.md 1.2).
pub fn kms_contexts_3() -> Vec<ContextElem> {
    vec![
        context(0, SyntaxId::KMS, SyntaxId::NDR32),
        context(1, SyntaxId::KMS, SyntaxId::NDR64),
        context(2, SyntaxId::KMS, SyntaxId::BTFN_BOTH),
    ]
}

/// bind (11) or alter_context (14) with every field given.
pub fn bind_with(
    ptype: PacketType,
    flags: PfcFlags,
    call_id: u32,
    max_xmit_frag: u16,
    max_recv_frag: u16,
    assoc_group: u32,
    contexts: &[ContextElem],
) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, max_xmit_frag);
    put_u16(&mut b, max_recv_frag);
    put_u32(&mut b, assoc_group);
    let n = u8::try_from(contexts.len()).expect("at most 255 context elements");
    b.extend_from_slice(&[n, 0, 0, 0]);
    for c in contexts {
        put_u16(&mut b, c.ctx_id);
        let nt = u8::try_from(c.transfer_syntaxes.len()).expect("at most 255 transfer syntaxes");
        b.extend_from_slice(&[nt, 0]);
        put_syntax(&mut b, &c.abstract_syntax);
        for t in &c.transfer_syntaxes {
            put_syntax(&mut b, t);
        }
    }
    pdu(ptype, flags, call_id, &b)
}

/// vlmcs-style bind: flags 0x13, max frags 5840/5840, assoc group 0.
pub fn bind(call_id: u32, contexts: &[ContextElem]) -> Vec<u8> {
    bind_with(
        PacketType::BIND,
        FLAGS_BIND,
        call_id,
        VLMCS_MAX_FRAG,
        VLMCS_MAX_FRAG,
        0,
        contexts,
    )
}

/// vlmcs-style alter_context: flags 0x13, max frags 5840/5840, assoc group 0.
pub fn alter_context(call_id: u32, contexts: &[ContextElem]) -> Vec<u8> {
    bind_with(
        PacketType::ALTER_CONTEXT,
        FLAGS_BIND,
        call_id,
        VLMCS_MAX_FRAG,
        VLMCS_MAX_FRAG,
        0,
        contexts,
    )
}

// ---------------------------------------------------------------------------------------------
// bind_ack / alter_context_resp / bind_nak
// ---------------------------------------------------------------------------------------------

/// Acceptance of `transfer` (result 0, reason 0).
pub fn accept(transfer: SyntaxId) -> AckResult {
    AckResult {
        result: AckResult::ACCEPTANCE,
        reason: 0,
        transfer_syntax: transfer,
    }
}

/// Provider rejection with `reason` (e.g. 2 = proposed transfer syntaxes not supported), null syntax.
pub fn reject(reason: u16) -> AckResult {
    AckResult {
        result: AckResult::PROVIDER_REJECTION,
        reason,
        transfer_syntax: SyntaxId::NULL,
    }
}

/// negotiate_ack for a BTFN element with the accepted feature bitmask, null syntax.
pub fn negotiate_ack(features: u16) -> AckResult {
    AckResult {
        result: AckResult::NEGOTIATE_ACK,
        reason: features,
        transfer_syntax: SyntaxId::NULL,
    }
}

/// bind_ack (12) or alter_context_resp (15) with every field given. `sec_addr` is written with its
/// terminating NUL (L = len + 1), `None` writes L = 0. The 0–3 alignment pad bytes are taken from
/// `pad` (zero where `pad` is shorter), so undefined pad contents can be reproduced.
#[allow(clippy::too_many_arguments)]
pub fn bind_ack_with(
    ptype: PacketType,
    flags: PfcFlags,
    call_id: u32,
    max_xmit_frag: u16,
    max_recv_frag: u16,
    assoc_group: u32,
    sec_addr: Option<&[u8]>,
    pad: &[u8],
    results: &[AckResult],
) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, max_xmit_frag);
    put_u16(&mut b, max_recv_frag);
    put_u32(&mut b, assoc_group);
    match sec_addr {
        Some(s) => {
            put_u16(
                &mut b,
                u16::try_from(s.len() + 1).expect("sec_addr too long"),
            );
            b.extend_from_slice(s);
            b.push(0);
        }
        None => put_u16(&mut b, 0),
    }
    let mut i = 0;
    while (16 + b.len()) % 4 != 0 {
        b.push(pad.get(i).copied().unwrap_or(0));
        i += 1;
    }
    let n = u8::try_from(results.len()).expect("at most 255 results");
    b.extend_from_slice(&[n, 0, 0, 0]);
    for r in results {
        put_u16(&mut b, r.result);
        put_u16(&mut b, r.reason);
        put_syntax(&mut b, &r.transfer_syntax);
    }
    pdu(ptype, flags, call_id, &b)
}

/// vlmcsd-style bind_ack: flags 0x13, max frags 5840/5840, zero pad.
pub fn bind_ack(
    call_id: u32,
    assoc_group: u32,
    sec_addr: Option<&str>,
    results: &[AckResult],
) -> Vec<u8> {
    bind_ack_with(
        PacketType::BIND_ACK,
        FLAGS_BIND,
        call_id,
        VLMCS_MAX_FRAG,
        VLMCS_MAX_FRAG,
        assoc_group,
        sec_addr.map(str::as_bytes),
        &[],
        results,
    )
}

/// vlmcsd-style alter_context_resp: flags 0x03, max frags 5840/5840, pad bytes from `pad`.
pub fn alter_context_resp(
    call_id: u32,
    assoc_group: u32,
    sec_addr: Option<&str>,
    pad: &[u8],
    results: &[AckResult],
) -> Vec<u8> {
    bind_ack_with(
        PacketType::ALTER_CONTEXT_RESP,
        FLAGS_SINGLE,
        call_id,
        VLMCS_MAX_FRAG,
        VLMCS_MAX_FRAG,
        assoc_group,
        sec_addr.map(str::as_bytes),
        pad,
        results,
    )
}

/// bind_nak (13): reason, then the supported protocol versions.
pub fn bind_nak(call_id: u32, reason: u16, versions: &[(u8, u8)]) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, reason);
    b.push(u8::try_from(versions.len()).expect("at most 255 versions"));
    for (major, minor) in versions {
        b.extend_from_slice(&[*major, *minor]);
    }
    pdu(PacketType::BIND_NAK, FLAGS_SINGLE, call_id, &b)
}

// ---------------------------------------------------------------------------------------------
// KMS stubs (kms-protocol.md 1.6)
// ---------------------------------------------------------------------------------------------

/// `RequestActivation` [in] stub around `kms`: NDR32 `size, max_count, data`; NDR64
/// `size u32, 4 zero, max_count u64, data`. `Unknown` is encoded as NDR32.
pub fn kms_request_stub(kms: &[u8], ndr: TransferSyntax) -> Vec<u8> {
    let n = u32::try_from(kms.len()).expect("KMS message too long");
    let mut s = Vec::with_capacity(kms.len() + 16);
    put_u32(&mut s, n);
    match ndr {
        TransferSyntax::Ndr64 => {
            put_u32(&mut s, 0);
            put_u64(&mut s, u64::from(n));
        }
        TransferSyntax::Ndr32 | TransferSyntax::Unknown => put_u32(&mut s, n),
    }
    s.extend_from_slice(kms);
    s
}

fn pad4(s: &mut Vec<u8>) {
    while !s.len().is_multiple_of(4) {
        s.push(0);
    }
}

/// `RequestActivation` [out] stub, success: size, referent 0x20000, max_count, data, zero pad to 4,
/// return code (NDR64: 8-byte referent and max_count, 4 zero bytes after the size).
pub fn kms_response_stub(kms: &[u8], return_code: u32, ndr: TransferSyntax) -> Vec<u8> {
    let n = u32::try_from(kms.len()).expect("KMS message too long");
    let mut s = Vec::with_capacity(kms.len() + 32);
    put_u32(&mut s, n);
    match ndr {
        TransferSyntax::Ndr64 => {
            put_u32(&mut s, 0);
            put_u64(&mut s, 0x0002_0000);
            put_u64(&mut s, u64::from(n));
        }
        TransferSyntax::Ndr32 | TransferSyntax::Unknown => {
            put_u32(&mut s, 0x0002_0000);
            put_u32(&mut s, n);
        }
    }
    s.extend_from_slice(kms);
    pad4(&mut s);
    put_u32(&mut s, return_code);
    s
}

/// `RequestActivation` [out] stub, refusal: size 0, NULL referent, HRESULT (12 bytes NDR32,
/// 20 bytes NDR64; kms-protocol.md 1.6 and 3).
pub fn kms_refusal_stub(hresult: u32, ndr: TransferSyntax) -> Vec<u8> {
    let mut s = Vec::with_capacity(20);
    match ndr {
        TransferSyntax::Ndr64 => {
            put_u64(&mut s, 0);
            put_u64(&mut s, 0);
        }
        TransferSyntax::Ndr32 | TransferSyntax::Unknown => {
            put_u32(&mut s, 0);
            put_u32(&mut s, 0);
        }
    }
    put_u32(&mut s, hresult);
    s
}

// ---------------------------------------------------------------------------------------------
// request / response / fault / control
// ---------------------------------------------------------------------------------------------

/// Splits `stub` into fragments of at most `max_stub` bytes (one fragment when `None`, or when the
/// stub is empty) and returns `(flags, alloc_hint, chunk)` per fragment; alloc_hint is the number of
/// stub bytes from this fragment to the end (the whole stub in the first one).
fn fragments(stub: &[u8], max_stub: Option<usize>) -> Vec<(PfcFlags, u32, &[u8])> {
    let size = max_stub.unwrap_or(usize::MAX).max(1);
    let chunks: Vec<&[u8]> = if stub.is_empty() {
        vec![stub]
    } else {
        stub.chunks(size).collect()
    };
    let n = chunks.len();
    let mut remaining = stub.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut f = 0u8;
            if i == 0 {
                f |= 0x01;
            }
            if i + 1 == n {
                f |= 0x02;
            }
            let hint = u32::try_from(remaining).expect("stub too long");
            remaining -= c.len();
            (PfcFlags(f), hint, c)
        })
        .collect()
}

/// request (0) PDUs carrying `stub`, fragmented into chunks of at most `max_stub` bytes.
pub fn request(
    call_id: u32,
    ctx_id: u16,
    opnum: u16,
    stub: &[u8],
    max_stub: Option<usize>,
) -> Vec<Vec<u8>> {
    fragments(stub, max_stub)
        .into_iter()
        .map(|(flags, hint, chunk)| {
            let mut b = Vec::with_capacity(8 + chunk.len());
            put_u32(&mut b, hint);
            put_u16(&mut b, ctx_id);
            put_u16(&mut b, opnum);
            b.extend_from_slice(chunk);
            pdu(PacketType::REQUEST, flags, call_id, &b)
        })
        .collect()
}

/// A single-fragment KMS request PDU (opnum 0) around the KMS message `kms`.
pub fn kms_request(call_id: u32, ctx_id: u16, kms: &[u8], ndr: TransferSyntax) -> Vec<u8> {
    request(call_id, ctx_id, 0, &kms_request_stub(kms, ndr), None).concat()
}

/// response (2) PDUs carrying `stub` (cancel_count 0), fragmented like [`request`].
pub fn response(call_id: u32, ctx_id: u16, stub: &[u8], max_stub: Option<usize>) -> Vec<Vec<u8>> {
    fragments(stub, max_stub)
        .into_iter()
        .map(|(flags, hint, chunk)| {
            let mut b = Vec::with_capacity(8 + chunk.len());
            put_u32(&mut b, hint);
            put_u16(&mut b, ctx_id);
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(chunk);
            pdu(PacketType::RESPONSE, flags, call_id, &b)
        })
        .collect()
}

/// A single-fragment successful KMS response PDU.
pub fn kms_response(
    call_id: u32,
    ctx_id: u16,
    kms: &[u8],
    return_code: u32,
    ndr: TransferSyntax,
) -> Vec<u8> {
    response(
        call_id,
        ctx_id,
        &kms_response_stub(kms, return_code, ndr),
        None,
    )
    .concat()
}

/// A single-fragment KMS refusal response PDU.
pub fn kms_refusal(call_id: u32, ctx_id: u16, hresult: u32, ndr: TransferSyntax) -> Vec<u8> {
    response(call_id, ctx_id, &kms_refusal_stub(hresult, ndr), None).concat()
}

/// fault (3) with every field given (cancel_count and the reserved byte can hold vlmcsd's garbage);
/// 32 bytes: fixed fields, status, reserved u32 0.
pub fn fault_with(
    flags: PfcFlags,
    call_id: u32,
    alloc_hint: u32,
    ctx_id: u16,
    cancel_count: u8,
    reserved: u8,
    status: u32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    put_u32(&mut b, alloc_hint);
    put_u16(&mut b, ctx_id);
    b.extend_from_slice(&[cancel_count, reserved]);
    put_u32(&mut b, status);
    put_u32(&mut b, 0);
    pdu(PacketType::FAULT, flags, call_id, &b)
}

/// vlmcsd-style fault: flags 0x23, alloc_hint 32, cancel_count/reserved 0.
pub fn fault(call_id: u32, ctx_id: u16, status: u32) -> Vec<u8> {
    fault_with(FLAGS_FAULT, call_id, 32, ctx_id, 0, 0, status)
}

/// A header-only PDU (shutdown, co_cancel, orphaned) or auth3 with 4 pad bytes.
pub fn control(ptype: PacketType, call_id: u32) -> Vec<u8> {
    let body: &[u8] = if ptype == PacketType::AUTH3 {
        &[0; 4]
    } else {
        &[]
    };
    pdu(ptype, FLAGS_SINGLE, call_id, body)
}
