//! NDR stubs of the only KMS operation, `RequestActivation` (opnum 0), in NDR32 (C706 chapter 14) and
//! NDR64 (MS-RPCE 2.2.5) (kms-protocol.md 1.6, refusals section 3).
//!
//! ```text
//! int RequestActivation([in] int requestSize, [in, size_is(requestSize)] unsigned char *request,
//!                       [out] int *responseSize, [out, size_is(, *responseSize)] unsigned char **response);
//! ```
//!
//! All size fields are cross-checked against each other and against the stub length; a mismatch is a
//! [`StubError`] whose message says which numbers disagree. KMS stubs are always little-endian.

use std::fmt;

use thiserror::Error;

use super::pdu::SyntaxId;

/// The opnum of `RequestActivation`, the only KMS operation (kms-protocol.md 1.4).
pub const KMS_OPNUM: u16 = 0;

/// Referent id Windows and vlmcsd put in front of the response array (kms-protocol.md 1.6).
pub const KMS_RESPONSE_REFERENT: u32 = 0x0002_0000;

/// The NDR flavour a presentation context negotiated (kms-protocol.md 1.3, 1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TransferSyntax {
    /// NDR 2.0, `8a885d04-1ceb-11c9-9fe8-08002b104860` v2.
    Ndr32,
    /// NDR64, `71710533-beba-4937-8319-b5dbef9ccc36` v1.
    Ndr64,
    /// Not known (bind not captured, or another syntax); stub parsers infer it from the stub shape.
    #[default]
    Unknown,
}

impl TransferSyntax {
    /// Classifies a transfer syntax identifier (UUID and major version).
    pub fn from_syntax(s: &SyntaxId) -> TransferSyntax {
        if s.uuid == SyntaxId::NDR32.uuid && s.major() == SyntaxId::NDR32.major() {
            TransferSyntax::Ndr32
        } else if s.uuid == SyntaxId::NDR64.uuid && s.major() == SyntaxId::NDR64.major() {
            TransferSyntax::Ndr64
        } else {
            TransferSyntax::Unknown
        }
    }

    /// `ndr32`, `ndr64` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferSyntax::Ndr32 => "ndr32",
            TransferSyntax::Ndr64 => "ndr64",
            TransferSyntax::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TransferSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[out]` side of `RequestActivation` (kms-protocol.md 1.6 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KmsReply<'a> {
    /// Non-NULL `*response`: the KMS response bytes and the function's return value (0 = S_OK).
    Success {
        /// KMS response message bytes (responseSize bytes).
        kms: &'a [u8],
        /// Return value after the array.
        return_code: u32,
    },
    /// NULL `*response` (referent id 0): the host refused; the return value is the HRESULT.
    Refused {
        /// The HRESULT, e.g. 0xC004F042.
        hresult: u32,
    },
}

/// Which stub a [`StubError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubKind {
    /// The `[in]` stub of a request PDU.
    Request,
    /// The `[out]` stub of a response PDU.
    Response,
}

impl fmt::Display for StubKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StubKind::Request => "request",
            StubKind::Response => "response",
        })
    }
}

/// A KMS stub whose NDR framing does not add up (kms-protocol.md 1.6). Each variant's message names
/// the numbers that disagree; the session layer's consumer turns it into a `stub_mismatch` anomaly.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StubError {
    /// Shorter than the fixed part of the layout.
    #[error("{ndr} {kind} stub of {have} bytes is shorter than the {need}-byte fixed part")]
    TooShort {
        /// Request or response.
        kind: StubKind,
        /// Layout tried.
        ndr: TransferSyntax,
        /// Minimum length.
        need: usize,
        /// Actual length.
        have: usize,
    },
    /// The size parameter and the array's conformance (max_count) differ.
    #[error("{ndr} {kind} stub: size {size} disagrees with conformance max_count {max_count}")]
    CountMismatch {
        /// Request or response.
        kind: StubKind,
        /// Layout tried.
        ndr: TransferSyntax,
        /// requestSize / responseSize.
        size: u64,
        /// max_count.
        max_count: u64,
    },
    /// The sizes imply a different stub length.
    #[error(
        "{ndr} {kind} stub: size {size} implies a {expected}-byte stub, but it has {actual} bytes"
    )]
    LengthMismatch {
        /// Request or response.
        kind: StubKind,
        /// Layout tried.
        ndr: TransferSyntax,
        /// requestSize / responseSize.
        size: u64,
        /// Length the sizes imply.
        expected: u64,
        /// Actual stub length.
        actual: usize,
    },
    /// NDR64 alignment bytes (the high half of a u64 size) are not zero.
    #[error("{ndr} {kind} stub: alignment bytes at stub offset {offset} are not zero")]
    NonZeroPad {
        /// Request or response.
        kind: StubKind,
        /// Layout tried.
        ndr: TransferSyntax,
        /// Offset of the pad.
        offset: usize,
    },
    /// NULL response pointer but a non-zero responseSize.
    #[error("{ndr} response stub: NULL response pointer but responseSize {size}")]
    NullWithSize {
        /// Layout tried.
        ndr: TransferSyntax,
        /// responseSize.
        size: u32,
    },
    /// The transfer syntax was unknown and the stub fits neither layout.
    #[error("{kind} stub of {len} bytes fits neither layout: NDR32: {ndr32}; NDR64: {ndr64}")]
    NoLayout {
        /// Request or response.
        kind: StubKind,
        /// Stub length.
        len: usize,
        /// Why NDR32 did not fit.
        ndr32: Box<StubError>,
        /// Why NDR64 did not fit.
        ndr64: Box<StubError>,
    },
}

fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn align4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

/// Reads the fixed fields, with a `TooShort` error when the stub is shorter than `need`.
fn need(stub: &[u8], kind: StubKind, ndr: TransferSyntax, need: usize) -> Result<(), StubError> {
    if stub.len() < need {
        return Err(StubError::TooShort {
            kind,
            ndr,
            need,
            have: stub.len(),
        });
    }
    Ok(())
}

fn request_ndr32(stub: &[u8]) -> Result<&[u8], StubError> {
    const K: StubKind = StubKind::Request;
    const N: TransferSyntax = TransferSyntax::Ndr32;
    need(stub, K, N, 8)?;
    let (size, max_count) = (le_u32(stub, 0), le_u32(stub, 4));
    let (Some(size), Some(max_count)) = (size, max_count) else {
        return Err(StubError::TooShort {
            kind: K,
            ndr: N,
            need: 8,
            have: stub.len(),
        });
    };
    if size != max_count {
        return Err(StubError::CountMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            max_count: max_count.into(),
        });
    }
    let expected = 8 + u64::from(size);
    if stub.len() as u64 != expected {
        return Err(StubError::LengthMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            expected,
            actual: stub.len(),
        });
    }
    Ok(&stub[8..])
}

fn request_ndr64(stub: &[u8]) -> Result<&[u8], StubError> {
    const K: StubKind = StubKind::Request;
    const N: TransferSyntax = TransferSyntax::Ndr64;
    need(stub, K, N, 16)?;
    let (Some(size), Some(pad), Some(max_count)) =
        (le_u32(stub, 0), le_u32(stub, 4), le_u64(stub, 8))
    else {
        return Err(StubError::TooShort {
            kind: K,
            ndr: N,
            need: 16,
            have: stub.len(),
        });
    };
    if pad != 0 {
        return Err(StubError::NonZeroPad {
            kind: K,
            ndr: N,
            offset: 4,
        });
    }
    if u64::from(size) != max_count {
        return Err(StubError::CountMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            max_count,
        });
    }
    let expected = 16 + u64::from(size);
    if stub.len() as u64 != expected {
        return Err(StubError::LengthMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            expected,
            actual: stub.len(),
        });
    }
    Ok(&stub[16..])
}

/// Extracts the KMS request bytes from a `RequestActivation` request stub (kms-protocol.md 1.6):
/// NDR32 `requestSize u32, max_count u32, data`; NDR64 `requestSize u32, 4 zero bytes, max_count u64,
/// data`. requestSize must equal max_count and the stub must end exactly after the data. With
/// [`TransferSyntax::Unknown`] the layout is inferred from the stub (the two layouts cannot both fit).
pub fn parse_kms_request_stub(stub: &[u8], ndr: TransferSyntax) -> Result<&[u8], StubError> {
    by_layout(stub, ndr, StubKind::Request, request_ndr32, request_ndr64)
}

/// Parses `stub` with the layout `ndr` names, or, for [`TransferSyntax::Unknown`], with whichever of
/// the two layouts fits (they cannot both fit).
fn by_layout<'a, T>(
    stub: &'a [u8],
    ndr: TransferSyntax,
    kind: StubKind,
    ndr32: fn(&'a [u8]) -> Result<T, StubError>,
    ndr64: fn(&'a [u8]) -> Result<T, StubError>,
) -> Result<T, StubError> {
    match ndr {
        TransferSyntax::Ndr32 => ndr32(stub),
        TransferSyntax::Ndr64 => ndr64(stub),
        TransferSyntax::Unknown => match (ndr32(stub), ndr64(stub)) {
            (Ok(k), _) | (_, Ok(k)) => Ok(k),
            (Err(a), Err(b)) => Err(StubError::NoLayout {
                kind,
                len: stub.len(),
                ndr32: Box::new(a),
                ndr64: Box::new(b),
            }),
        },
    }
}

/// The layout `stub` fits by the two parsers, [`TransferSyntax::Unknown`] when neither.
fn detect_layout<'a, T>(
    stub: &'a [u8],
    ndr32: fn(&'a [u8]) -> Result<T, StubError>,
    ndr64: fn(&'a [u8]) -> Result<T, StubError>,
) -> TransferSyntax {
    if ndr32(stub).is_ok() {
        TransferSyntax::Ndr32
    } else if ndr64(stub).is_ok() {
        TransferSyntax::Ndr64
    } else {
        TransferSyntax::Unknown
    }
}

/// The layout a request stub fits, [`TransferSyntax::Unknown`] when neither.
pub fn detect_request_ndr(stub: &[u8]) -> TransferSyntax {
    detect_layout(stub, request_ndr32, request_ndr64)
}

fn response_ndr32(stub: &[u8]) -> Result<KmsReply<'_>, StubError> {
    const K: StubKind = StubKind::Response;
    const N: TransferSyntax = TransferSyntax::Ndr32;
    need(stub, K, N, 12)?;
    let too_short = |need| StubError::TooShort {
        kind: K,
        ndr: N,
        need,
        have: stub.len(),
    };
    let (Some(size), Some(referent), Some(third)) =
        (le_u32(stub, 0), le_u32(stub, 4), le_u32(stub, 8))
    else {
        return Err(too_short(12));
    };
    if referent == 0 {
        if size != 0 {
            return Err(StubError::NullWithSize { ndr: N, size });
        }
        if stub.len() != 12 {
            return Err(StubError::LengthMismatch {
                kind: K,
                ndr: N,
                size: 0,
                expected: 12,
                actual: stub.len(),
            });
        }
        return Ok(KmsReply::Refused { hresult: third });
    }
    if size != third {
        return Err(StubError::CountMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            max_count: third.into(),
        });
    }
    let ret_off = align4(12 + u64::from(size));
    let expected = ret_off + 4;
    if stub.len() as u64 != expected {
        return Err(StubError::LengthMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            expected,
            actual: stub.len(),
        });
    }
    // Lengths checked above: 12 + size <= ret_off = len - 4.
    let ret_off = stub.len() - 4;
    let kms = stub.get(12..12 + size as usize).ok_or(too_short(ret_off))?;
    let return_code = le_u32(stub, ret_off).ok_or(too_short(ret_off + 4))?;
    Ok(KmsReply::Success { kms, return_code })
}

fn response_ndr64(stub: &[u8]) -> Result<KmsReply<'_>, StubError> {
    const K: StubKind = StubKind::Response;
    const N: TransferSyntax = TransferSyntax::Ndr64;
    need(stub, K, N, 20)?;
    let too_short = |need| StubError::TooShort {
        kind: K,
        ndr: N,
        need,
        have: stub.len(),
    };
    let (Some(size), Some(pad), Some(referent)) =
        (le_u32(stub, 0), le_u32(stub, 4), le_u64(stub, 8))
    else {
        return Err(too_short(20));
    };
    if pad != 0 {
        return Err(StubError::NonZeroPad {
            kind: K,
            ndr: N,
            offset: 4,
        });
    }
    if referent == 0 {
        if size != 0 {
            return Err(StubError::NullWithSize { ndr: N, size });
        }
        if stub.len() != 20 {
            return Err(StubError::LengthMismatch {
                kind: K,
                ndr: N,
                size: 0,
                expected: 20,
                actual: stub.len(),
            });
        }
        let hresult = le_u32(stub, 16).ok_or(too_short(20))?;
        return Ok(KmsReply::Refused { hresult });
    }
    need(stub, K, N, 28)?;
    let max_count = le_u64(stub, 16).ok_or(too_short(24))?;
    if u64::from(size) != max_count {
        return Err(StubError::CountMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            max_count,
        });
    }
    let expected = align4(24 + u64::from(size)) + 4;
    if stub.len() as u64 != expected {
        return Err(StubError::LengthMismatch {
            kind: K,
            ndr: N,
            size: size.into(),
            expected,
            actual: stub.len(),
        });
    }
    let ret_off = stub.len() - 4;
    let kms = stub.get(24..24 + size as usize).ok_or(too_short(ret_off))?;
    let return_code = le_u32(stub, ret_off).ok_or(too_short(ret_off + 4))?;
    Ok(KmsReply::Success { kms, return_code })
}

/// Decodes a `RequestActivation` response stub (kms-protocol.md 1.6, section 3).
///
/// NDR32 success: `responseSize u32, referent u32 (≠ 0), max_count u32, data, pad to 4, return u32`;
/// NDR64 success: `responseSize u32, 4 zero, referent u64, max_count u64, data, pad to 4, return u32`.
/// A NULL referent means the host refused: `responseSize` must be 0 and the stub is then 12 (NDR32)
/// or 20 (NDR64) bytes ending with the HRESULT. The pad bytes are not inspected. With
/// [`TransferSyntax::Unknown`] the layout is inferred (the two layouts cannot both fit).
pub fn parse_kms_response_stub(
    stub: &[u8],
    ndr: TransferSyntax,
) -> Result<KmsReply<'_>, StubError> {
    by_layout(
        stub,
        ndr,
        StubKind::Response,
        response_ndr32,
        response_ndr64,
    )
}

/// The layout a response stub fits, [`TransferSyntax::Unknown`] when neither.
pub fn detect_response_ndr(stub: &[u8]) -> TransferSyntax {
    detect_layout(stub, response_ndr32, response_ndr64)
}

/// True when `stub` is a well-formed `RequestActivation` stub (in `ndr`, or either layout when
/// unknown) whose KMS message starts with version 4.0, 5.0 or 6.0 (kms-protocol.md 2: MinorVer u16,
/// MajorVer u16). Used to recognise KMS on port 1688 when the bind was not captured.
pub fn is_plausible_kms_request(stub: &[u8], ndr: TransferSyntax) -> bool {
    match parse_kms_request_stub(stub, ndr) {
        Ok([0, 0, major, 0, ..]) => (4..=6).contains(major),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndr32_req(kms: &[u8]) -> Vec<u8> {
        let n = (kms.len() as u32).to_le_bytes();
        [&n[..], &n[..], kms].concat()
    }

    #[test]
    fn request_layouts_and_inference() {
        let kms = [0u8, 0, 6, 0, 1, 2, 3];
        let s32 = ndr32_req(&kms);
        assert_eq!(
            parse_kms_request_stub(&s32, TransferSyntax::Ndr32),
            Ok(&kms[..])
        );
        assert_eq!(
            parse_kms_request_stub(&s32, TransferSyntax::Unknown),
            Ok(&kms[..])
        );
        assert_eq!(detect_request_ndr(&s32), TransferSyntax::Ndr32);
        let mut s64 = vec![7, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
        s64.extend_from_slice(&kms);
        assert_eq!(
            parse_kms_request_stub(&s64, TransferSyntax::Ndr64),
            Ok(&kms[..])
        );
        assert_eq!(detect_request_ndr(&s64), TransferSyntax::Ndr64);
        assert!(is_plausible_kms_request(&s64, TransferSyntax::Unknown));
        assert!(parse_kms_request_stub(&s64, TransferSyntax::Ndr32).is_err());

        let mut bad = s32.clone();
        bad[4] = 8;
        let e = parse_kms_request_stub(&bad, TransferSyntax::Ndr32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ndr32 request stub: size 7 disagrees with conformance max_count 8"
        );
        let e = parse_kms_request_stub(&s32[..10], TransferSyntax::Ndr32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ndr32 request stub: size 7 implies a 15-byte stub, but it has 10 bytes"
        );
        let e = parse_kms_request_stub(&[1, 2, 3], TransferSyntax::Unknown).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("request stub of 3 bytes fits neither layout"),
            "{e}"
        );
    }

    #[test]
    fn response_layouts() {
        // NDR32 success with 5 data bytes: pad 3, return code 0.
        let mut s = vec![
            5, 0, 0, 0, 0, 0, 2, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5, 0xee, 0xee, 0xee,
        ];
        s.extend_from_slice(&[0x78, 0x56, 0x34, 0x12]);
        let want = KmsReply::Success {
            kms: &[1, 2, 3, 4, 5],
            return_code: 0x1234_5678,
        };
        assert_eq!(parse_kms_response_stub(&s, TransferSyntax::Ndr32), Ok(want));
        assert_eq!(
            parse_kms_response_stub(&s, TransferSyntax::Unknown),
            Ok(want)
        );
        // NDR64 refusal.
        let mut r = vec![0u8; 16];
        r.extend_from_slice(&0xc004_f042u32.to_le_bytes());
        assert_eq!(
            parse_kms_response_stub(&r, TransferSyntax::Ndr64),
            Ok(KmsReply::Refused {
                hresult: 0xc004_f042
            })
        );
        assert_eq!(detect_response_ndr(&r), TransferSyntax::Ndr64);
        // NULL pointer with a size.
        let bad = [4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_kms_response_stub(&bad, TransferSyntax::Ndr32),
            Err(StubError::NullWithSize {
                ndr: TransferSyntax::Ndr32,
                size: 4
            })
        );
        // Huge size never panics or allocates.
        let huge = [
            0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
        ];
        assert!(parse_kms_response_stub(&huge, TransferSyntax::Ndr32).is_err());
    }
}
