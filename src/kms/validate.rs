//! Passive decrypt-and-validate of one KMS call (kms-protocol.md §2.8).
//!
//! [`decode_request`] takes the KMS request bytes Q (the NDR conformant array of the request
//! stub), [`decode_response`] the KMS response bytes A of the same call together with the request
//! result (the client salt S_c and the request IV are needed to validate a v5/v6 response).
//! Neither function panics or fails: whatever cannot be decoded is reported through a
//! [`Verdict`], a [`DecodeError`] and a list of failed checks named as in events.md
//! (see [`failure`]).

use crate::kms::crypto::{self, KmsCipher};
use crate::kms::message::{
    self, BASE_REQUEST_LEN, HwId, KmsRequest, KmsResponse, KmsVersion, arr, epid_format_ok,
};

/// Size of a v4 request: base (236) ‖ MAC (16), §2.3.
pub const V4_REQUEST_LEN: usize = 252;
/// Size of a v5/v6 request: version (4) ‖ IV (16) ‖ ciphertext (240), §2.3.
pub const V5_REQUEST_LEN: usize = 260;
/// Plaintext length of a v5/v6 request: salt (16) ‖ base (236) ‖ `04 04 04 04`.
pub const V5_REQUEST_PLAINTEXT_LEN: usize = 256;
/// RandomXoredIVs (16) ‖ Hash (32): the v5 trailer after the base response, §2.3.
pub const V5_TRAILER_LEN: usize = 48;
/// RandomXoredIVs ‖ Hash ‖ HwId (8) ‖ XoredIVs (16) ‖ HMAC (16): the v6 trailer, §2.3.
pub const V6_TRAILER_LEN: usize = 88;

/// Names of the integrity checks of §2.8 as they appear in `integrity.failures` (events.md).
pub mod failure {
    /// v4 request MAC (§2.5) does not match.
    pub const REQUEST_MAC: &str = "request_mac";
    /// v4 request shorter than base + MAC.
    pub const REQUEST_SIZE: &str = "request_size";
    /// v4 response MAC (§2.5) does not match.
    pub const RESPONSE_MAC: &str = "response_mac";
    /// PKCS#7 padding wrong (request: not `04 04 04 04`; response: not 1..16 equal bytes).
    pub const PADDING: &str = "padding";
    /// Inner/outer version or request/response version differ.
    pub const VERSION_MISMATCH: &str = "version_mismatch";
    /// Response CMID is not the request's.
    pub const CMID_ECHO: &str = "cmid_echo";
    /// Response ClientRequestTime is not the request's.
    pub const TIME_ECHO: &str = "time_echo";
    /// EpidSize odd, > 128, not NUL-terminated or with an interior NUL.
    pub const EPID_FORMAT: &str = "epid_format";
    /// SHA-256(RandomXoredIVs ⊕ S_c) ≠ Hash (v5/v6).
    pub const HASH: &str = "hash";
    /// v6 XoredIVs ≠ S_c.
    pub const XORED_IVS: &str = "xored_ivs";
    /// v6 HMAC (§2.7) does not match.
    pub const HMAC: &str = "hmac";
    /// v5 response IV differs from the request IV (the client rejects this).
    pub const IV_MISMATCH: &str = "iv_mismatch";
    /// v6 response IV equals the request IV: suspicious emulator tell (§2.6); does not by itself
    /// make the response invalid.
    pub const IV_REUSE: &str = "iv_reuse";
    /// Response length does not fit its structure: too short for EpidSize or the trailer, or
    /// trailing bytes.
    pub const RESPONSE_SIZE: &str = "response_size";
    /// The request could not be decoded, so the echo / Hash / XoredIVs checks could not run.
    pub const REQUEST_UNAVAILABLE: &str = "request_unavailable";
    /// The request names a protocol version other than 4.0, 5.0, 6.0 (hosts refuse it with
    /// 0x8007000D); it was decoded by trying the known framings.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";

    /// Checks whose failure is a warning only (listed, but the message stays `valid`).
    pub const SOFT: [&str; 1] = [IV_REUSE];
}

/// The verdict on one half of a call (events.md `integrity.request` / `integrity.response`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Decoded and every applicable check passed.
    Valid,
    /// Decoded (at least partly) but a check failed.
    Invalid,
    /// Could not be decoded at all (unknown version, too short, not block aligned).
    Undecodable,
}

impl Verdict {
    /// `valid`, `invalid` or `undecodable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Undecodable => "undecodable",
        }
    }
}

/// Why a message is [`Verdict::Undecodable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the version's fixed layout.
    #[error("KMS message too short: {have} bytes, need {need}")]
    TooShort {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Version other than 4.0, 5.0, 6.0.
    #[error("unsupported KMS protocol version {0}")]
    UnsupportedVersion(KmsVersion),
    /// v5/v6 ciphertext that is not a whole number of 16-byte blocks.
    #[error("ciphertext of {0} bytes is not a whole number of AES blocks")]
    NotBlockAligned(usize),
}

/// A MAC as sent and as recomputed (v4, §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacCheck {
    /// MAC on the wire.
    pub wire: [u8; 16],
    /// MAC recomputed over the base message.
    pub computed: [u8; 16],
}

impl MacCheck {
    /// True when they agree.
    pub fn ok(&self) -> bool {
        self.wire == self.computed
    }
}

/// Result of [`decode_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestDecode {
    /// Outer version (Q[0..4]); `None` when Q has fewer than 4 bytes.
    pub outer_version: Option<KmsVersion>,
    /// The decoded base request, when it could be parsed (even if a check failed).
    pub request: Option<KmsRequest>,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Failed checks (names from [`failure`]).
    pub failures: Vec<&'static str>,
    /// Why the request is undecodable.
    pub error: Option<DecodeError>,
    /// Bytes beyond the 252/260 of the version's layout (buggy clients such as Wine send extra
    /// bytes; vlmcsd accepts them). Decoded normally; flagged here, not as a failure.
    pub excess_bytes: usize,
    /// v4: request MAC.
    pub mac: Option<MacCheck>,
    /// v5/v6: the "IV" (Q[4..20], really ciphertext block 0, §2.6).
    pub iv: Option<[u8; 16]>,
    /// v5/v6: the client salt S_c = D_k(IV).
    pub client_salt: Option<[u8; 16]>,
    /// v5/v6: the 256 decrypted bytes (S_c ‖ base request ‖ pad), for hex views.
    pub plaintext: Option<Vec<u8>>,
}

/// The v5/v6 trailer fields after the base response (§2.3, §2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// RandomXoredIVs = R ⊕ S_c.
    pub random_xored_ivs: [u8; 16],
    /// Hash = SHA-256(R).
    pub hash: [u8; 32],
    /// R = RandomXoredIVs ⊕ S_c, when S_c is known.
    pub random: Option<[u8; 16]>,
}

/// The v6-only fields (§2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Fields {
    /// HwId of the host.
    pub hwid: HwId,
    /// XoredIVs (must equal S_c).
    pub xored_ivs: [u8; 16],
    /// HMAC field on the wire (bytes 16..32 of HMAC-SHA256).
    pub hmac: [u8; 16],
    /// HMAC key derived from the echoed ClientRequestTime.
    pub hmac_key: [u8; 16],
    /// HMAC recomputed over S_s ‖ base response ‖ … ‖ XoredIVs (second half).
    pub hmac_computed: [u8; 16],
}

/// Result of [`decode_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseDecode {
    /// Outer version (A[0..4]); `None` when A has fewer than 4 bytes.
    pub outer_version: Option<KmsVersion>,
    /// The decoded base response (with `hwid` for v6), when it could be parsed.
    pub response: Option<KmsResponse>,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Failed checks (names from [`failure`]), including soft ones such as `iv_reuse`.
    pub failures: Vec<&'static str>,
    /// Why the response is undecodable.
    pub error: Option<DecodeError>,
    /// v4: response MAC (`None` if the response was too short to hold one).
    pub mac: Option<MacCheck>,
    /// v5/v6: response IV (A[4..20]).
    pub iv: Option<[u8; 16]>,
    /// v5/v6: server salt S_s = D_k(IV) (v5: normally equal to S_c).
    pub server_salt: Option<[u8; 16]>,
    /// v5/v6: PKCS#7 pad length when the padding is well formed.
    pub pad_len: Option<u8>,
    /// v5/v6: RandomXoredIVs and Hash, when present.
    pub trailer: Option<Trailer>,
    /// v6: HwId, XoredIVs, HMAC, when present.
    pub v6: Option<V6Fields>,
    /// Bytes between the end of the expected structure and the padding (or end, for v4).
    pub trailing_bytes: usize,
    /// v5/v6: the decrypted bytes (S_s ‖ base response ‖ trailer ‖ pad), for hex views.
    pub plaintext: Option<Vec<u8>>,
}

fn push(v: &mut Vec<&'static str>, name: &'static str) {
    if !v.contains(&name) {
        v.push(name);
    }
}

fn verdict_of(failures: &[&'static str]) -> Verdict {
    if failures.iter().any(|f| !failure::SOFT.contains(f)) {
        Verdict::Invalid
    } else {
        Verdict::Valid
    }
}

fn xor16(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    core::array::from_fn(|i| a[i] ^ b[i])
}

impl RequestDecode {
    fn undecodable(outer_version: Option<KmsVersion>, error: DecodeError) -> RequestDecode {
        RequestDecode {
            outer_version,
            request: None,
            verdict: Verdict::Undecodable,
            failures: Vec::new(),
            error: Some(error),
            excess_bytes: 0,
            mac: None,
            iv: None,
            client_salt: None,
            plaintext: None,
        }
    }

    /// The protocol version to report: the outer version.
    pub fn version(&self) -> Option<KmsVersion> {
        self.outer_version
    }
}

/// Decodes and validates a KMS request (§2.8 steps 1–3). Never panics.
pub fn decode_request(q: &[u8]) -> RequestDecode {
    decode_request_opts(q, true)
}

/// [`decode_request`]; `keep_plaintext: false` leaves [`RequestDecode::plaintext`] `None`, which
/// saves its allocation (only hex views need it).
pub fn decode_request_opts(q: &[u8], keep_plaintext: bool) -> RequestDecode {
    let Some(version) = KmsVersion::from_wire(q) else {
        return RequestDecode::undecodable(
            None,
            DecodeError::TooShort {
                need: 4,
                have: q.len(),
            },
        );
    };
    if !version.is_known() {
        return decode_unknown_version(q, version, keep_plaintext);
    }
    decode_known(q, version, keep_plaintext, None)
}

/// Decodes and validates both halves of a call: [`decode_request_opts`] of `q`, then
/// [`decode_response_opts`] of the response `a`, if any. The same results, with the work of the
/// two halves done side by side: when both are v4 their MACs are checked together
/// ([`crypto::v4_mac_check_pair`]); when both are v5/v6 their blocks are decrypted together
/// ([`crypto::cbc_decrypt_zero_iv_many`]).
pub fn decode_call(
    q: &[u8],
    a: Option<&[u8]>,
    keep_plaintext: bool,
) -> (RequestDecode, Option<ResponseDecode>) {
    let Some(a) = a else {
        return (decode_request_opts(q, keep_plaintext), None);
    };
    if let Some(m) = v4_mac_inputs(q, a) {
        let (qmac, amac) = crypto::v4_mac_check_pair(m.q, &m.q_wire, m.a, &m.a_wire);
        let req = decode_known(q, KmsVersion::V4, keep_plaintext, Some(qmac));
        let resp = decode_response_v4(&req, KmsVersion::V4, a, Some(amac));
        return (req, Some(resp));
    }
    let qv = KmsVersion::from_wire(q).filter(|v| v.is_known() && v.major != 4);
    if let (Some(qv), ResponseKind::Encrypted(av, acipher, act)) = (qv, classify_response(a)) {
        let Some((qcipher, qct)) = request_ciphertext(q, qv) else {
            return decode_call_halves(q, a, keep_plaintext);
        };
        // Results built where they are returned: the two structures are ~770 bytes, and
        // rewrapping them on the way out was a copy per call.
        let decode = |apt: &mut Vec<u8>| -> (RequestDecode, Option<ResponseDecode>) {
            let mut qpt = [0u8; V5_REQUEST_PLAINTEXT_LEN];
            apt.clear();
            apt.resize(act.len(), 0);
            let mut jobs = [
                crypto::CbcJob {
                    cipher: qcipher,
                    data: qct,
                    out: &mut qpt,
                },
                crypto::CbcJob {
                    cipher: acipher,
                    data: act,
                    out: apt,
                },
            ];
            if crypto::cbc_decrypt_zero_iv_many(&mut jobs).is_err() {
                // Not reached: both are block-aligned (the request's length is fixed,
                // `classify_response` checked the response's) and their buffers fit. Should it
                // happen, each half is decoded alone and says what is wrong with it, rather than
                // both taking the blame.
                return decode_call_halves(q, a, keep_plaintext);
            }
            let req = request_from_plaintext(q, qv, &qpt, keep_plaintext);
            let resp = response_from_plaintext(&req, a, av, apt);
            (req, Some(resp))
        };
        if keep_plaintext {
            let mut apt = Vec::new();
            let mut done = decode(&mut apt);
            if let Some(r) = done.1.as_mut().filter(|r| r.server_salt.is_some()) {
                r.plaintext = Some(apt);
            }
            return done;
        }
        return with_response_scratch(decode);
    }
    decode_call_halves(q, a, keep_plaintext)
}

/// [`decode_call`] one half after the other.
fn decode_call_halves(
    q: &[u8],
    a: &[u8],
    keep_plaintext: bool,
) -> (RequestDecode, Option<ResponseDecode>) {
    let req = decode_request_opts(q, keep_plaintext);
    let resp = decode_response_opts(&req, a, keep_plaintext);
    (req, Some(resp))
}

/// What the v4 request and response MACs of a call cover, and their wire values.
struct V4MacInputs<'q, 'a> {
    q: &'q [u8],
    q_wire: [u8; 16],
    a: &'a [u8],
    a_wire: [u8; 16],
}

/// The bytes the request and response MACs cover when both messages are v4 and complete (the
/// request's base, the response's base up to its declared ePID size), as [`decode_known`] and
/// [`decode_response_v4`] would take them, with the MACs that follow them; `None` otherwise.
fn v4_mac_inputs<'q, 'a>(q: &'q [u8], a: &'a [u8]) -> Option<V4MacInputs<'q, 'a>> {
    let v4 = Some(KmsVersion::V4);
    if KmsVersion::from_wire(q) != v4 || KmsVersion::from_wire(a) != v4 {
        return None;
    }
    if q.len() < V4_REQUEST_LEN {
        return None;
    }
    let epid_size = usize::try_from(message::le32(a, 4)?).ok()?;
    let base_len = epid_size.checked_add(message::BASE_RESPONSE_FIXED_LEN)?;
    Some(V4MacInputs {
        q: q.get(..BASE_REQUEST_LEN)?,
        q_wire: arr::<16>(q, BASE_REQUEST_LEN)?,
        a: a.get(..base_len)?,
        a_wire: arr::<16>(a, base_len)?,
    })
}

/// A request with a version no host supports (e.g. `vlmcs -K 7.0`): hosts refuse it, but a client
/// may still have framed it like one of the known versions. Try v6, v5 (by padding and inner
/// version) and v4 (by MAC); when one fits, decode it and flag `unsupported_version`.
fn decode_unknown_version(q: &[u8], version: KmsVersion, keep_plaintext: bool) -> RequestDecode {
    for major in [6u16, 5, 4] {
        let mut d = decode_known(q, KmsVersion { major, minor: 0 }, keep_plaintext, None);
        let inner_ok = d.request.as_ref().is_some_and(|r| r.version == version);
        let framing_ok = match major {
            4 => d.mac.as_ref().is_some_and(MacCheck::ok),
            _ => !d.failures.contains(&failure::PADDING),
        };
        if framing_ok && inner_ok {
            d.failures.retain(|f| *f != failure::VERSION_MISMATCH);
            push(&mut d.failures, failure::UNSUPPORTED_VERSION);
            d.outer_version = Some(version);
            d.verdict = Verdict::Invalid;
            return d;
        }
    }
    RequestDecode::undecodable(Some(version), DecodeError::UnsupportedVersion(version))
}

/// [`decode_request`] for 4.0, 5.0 and 6.0; `v4_mac`: the v4 MAC of the base when already computed.
fn decode_known(
    q: &[u8],
    version: KmsVersion,
    keep_plaintext: bool,
    v4_mac: Option<[u8; 16]>,
) -> RequestDecode {
    let mut failures = Vec::new();
    if version.major == 4 {
        let Ok(request) = message::parse_request(q) else {
            return RequestDecode::undecodable(
                Some(version),
                DecodeError::TooShort {
                    need: V4_REQUEST_LEN,
                    have: q.len(),
                },
            );
        };
        let mac = match arr::<16>(q, BASE_REQUEST_LEN) {
            Some(wire) => {
                let computed = v4_mac.unwrap_or_else(|| {
                    crypto::v4_mac_check(q.get(..BASE_REQUEST_LEN).unwrap_or(&[]), &wire)
                });
                let m = MacCheck { wire, computed };
                if !m.ok() {
                    push(&mut failures, failure::REQUEST_MAC);
                }
                Some(m)
            }
            None => {
                push(&mut failures, failure::REQUEST_SIZE);
                None
            }
        };
        return RequestDecode {
            outer_version: Some(version),
            request: Some(request),
            verdict: verdict_of(&failures),
            failures,
            error: None,
            excess_bytes: q.len().saturating_sub(V4_REQUEST_LEN),
            mac,
            iv: None,
            client_salt: None,
            plaintext: None,
        };
    }

    let Some((cipher, ct)) = request_ciphertext(q, version) else {
        return RequestDecode::undecodable(
            Some(version),
            DecodeError::TooShort {
                need: V5_REQUEST_LEN,
                have: q.len(),
            },
        );
    };
    let mut pt = [0u8; V5_REQUEST_PLAINTEXT_LEN];
    if let Err(_e) = crypto::cbc_decrypt_zero_iv(cipher, ct, &mut pt) {
        // Cannot happen: 256 bytes, 16-aligned, same-size buffer.
        return RequestDecode::undecodable(Some(version), DecodeError::NotBlockAligned(ct.len()));
    }
    request_from_plaintext(q, version, &pt, keep_plaintext)
}

/// The cipher and the 256 ciphertext bytes of a v5/v6 request (`version.major` 5 or 6); `None`
/// when `q` is too short for them.
fn request_ciphertext(q: &[u8], version: KmsVersion) -> Option<(KmsCipher, &[u8])> {
    Some((
        KmsCipher::for_major(version.major)?,
        q.get(4..V5_REQUEST_LEN)?,
    ))
}

/// The v5/v6 request `q` of `version` from its decrypted bytes `pt`.
fn request_from_plaintext(
    q: &[u8],
    version: KmsVersion,
    pt: &[u8; V5_REQUEST_PLAINTEXT_LEN],
    keep_plaintext: bool,
) -> RequestDecode {
    let mut failures = Vec::new();
    let iv = arr::<16>(q, 4);
    let salt = arr::<16>(pt, 0);
    let base = pt.get(16..16 + BASE_REQUEST_LEN).unwrap_or(&[]);
    let request = message::parse_request(base).ok();
    if pt.get(16 + BASE_REQUEST_LEN..) != Some(&[4u8, 4, 4, 4][..]) {
        push(&mut failures, failure::PADDING);
    }
    if request.as_ref().map(|r| r.version) != Some(version) {
        push(&mut failures, failure::VERSION_MISMATCH);
    }
    RequestDecode {
        outer_version: Some(version),
        request,
        verdict: verdict_of(&failures),
        failures,
        error: None,
        excess_bytes: q.len().saturating_sub(V5_REQUEST_LEN),
        mac: None,
        iv,
        client_salt: salt,
        plaintext: keep_plaintext.then(|| pt.to_vec()),
    }
}

impl ResponseDecode {
    fn empty(outer_version: Option<KmsVersion>) -> ResponseDecode {
        ResponseDecode {
            outer_version,
            response: None,
            verdict: Verdict::Invalid,
            failures: Vec::new(),
            error: None,
            mac: None,
            iv: None,
            server_salt: None,
            pad_len: None,
            trailer: None,
            v6: None,
            trailing_bytes: 0,
            plaintext: None,
        }
    }

    fn undecodable(outer_version: Option<KmsVersion>, error: DecodeError) -> ResponseDecode {
        let mut r = ResponseDecode::empty(outer_version);
        r.verdict = Verdict::Undecodable;
        r.error = Some(error);
        r
    }

    fn finish(mut self) -> ResponseDecode {
        self.verdict = verdict_of(&self.failures);
        self
    }

    /// True when the response is valid and CurrentCount ≥ the request's RequiredClientCount: what
    /// the client will conclude (§2.8 step 7, §6).
    pub fn activates(&self, req: &RequestDecode) -> bool {
        outcome(req, self) == Outcome::Activated
    }
}

/// Checks that need the request: version / CMID / time echo, ePID framing.
fn common_checks(
    out: &mut Vec<&'static str>,
    req: Option<&KmsRequest>,
    req_outer: Option<KmsVersion>,
    outer: KmsVersion,
    resp: &KmsResponse,
    epid_raw: &[u8],
) {
    if resp.version != outer || req_outer.is_some_and(|v| v != outer) {
        push(out, failure::VERSION_MISMATCH);
    }
    if !epid_format_ok(resp.epid_size, epid_raw) {
        push(out, failure::EPID_FORMAT);
    }
    match req {
        Some(r) => {
            if r.version != resp.version {
                push(out, failure::VERSION_MISMATCH);
            }
            if r.cmid != resp.cmid {
                push(out, failure::CMID_ECHO);
            }
            if r.client_time != resp.client_time {
                push(out, failure::TIME_ECHO);
            }
        }
        None => push(out, failure::REQUEST_UNAVAILABLE),
    }
}

/// Decodes and validates a KMS response against its request (§2.8 steps 5–6). Never panics.
///
/// The response is decrypted with the cipher of its own outer version (a different version from
/// the request's is reported as `version_mismatch`).
pub fn decode_response(req: &RequestDecode, a: &[u8]) -> ResponseDecode {
    decode_response_opts(req, a, true)
}

thread_local! {
    /// Reused decryption buffer of [`decode_response_opts`] when the plaintext is not kept.
    static RESPONSE_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the per-thread response decryption buffer.
fn with_response_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    RESPONSE_SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut pt) => f(&mut pt),
        // Re-entered on this thread (cannot happen today): fall back to a fresh buffer.
        Err(_) => f(&mut Vec::new()),
    })
}

/// [`decode_response`]; `keep_plaintext: false` leaves [`ResponseDecode::plaintext`] `None` and
/// decrypts into a per-thread buffer reused across calls instead of a fresh allocation.
pub fn decode_response_opts(req: &RequestDecode, a: &[u8], keep_plaintext: bool) -> ResponseDecode {
    if keep_plaintext {
        let mut pt = Vec::new();
        let mut r = decode_response_into(req, a, &mut pt);
        if r.server_salt.is_some() {
            r.plaintext = Some(pt);
        }
        return r;
    }
    with_response_scratch(|pt| decode_response_into(req, a, pt))
}

/// A response by what its outer version and length allow.
enum ResponseKind<'a> {
    /// Undecodable: its outer version, if it has one, and why.
    Undecodable(Option<KmsVersion>, DecodeError),
    /// v4 (plaintext).
    V4(KmsVersion),
    /// v5/v6: version, cipher and ciphertext (at least two blocks, block aligned).
    Encrypted(KmsVersion, KmsCipher, &'a [u8]),
}

fn classify_response(a: &[u8]) -> ResponseKind<'_> {
    let Some(outer) = KmsVersion::from_wire(a) else {
        let need = DecodeError::TooShort {
            need: 4,
            have: a.len(),
        };
        return ResponseKind::Undecodable(None, need);
    };
    if !outer.is_known() {
        return ResponseKind::Undecodable(Some(outer), DecodeError::UnsupportedVersion(outer));
    }
    if outer.major == 4 {
        return ResponseKind::V4(outer);
    }
    let Some(cipher) = KmsCipher::for_major(outer.major) else {
        return ResponseKind::Undecodable(Some(outer), DecodeError::UnsupportedVersion(outer));
    };
    let ct = a.get(4..).unwrap_or(&[]);
    if ct.len() < 32 {
        let need = DecodeError::TooShort {
            need: 4 + 32,
            have: a.len(),
        };
        return ResponseKind::Undecodable(Some(outer), need);
    }
    if !ct.len().is_multiple_of(16) {
        return ResponseKind::Undecodable(Some(outer), DecodeError::NotBlockAligned(ct.len()));
    }
    ResponseKind::Encrypted(outer, cipher, ct)
}

/// [`decode_response`] with the v5/v6 plaintext decrypted into `pt` (resized to fit) rather than
/// into [`ResponseDecode::plaintext`], which stays `None`.
fn decode_response_into(req: &RequestDecode, a: &[u8], pt: &mut Vec<u8>) -> ResponseDecode {
    let (outer, cipher, ct) = match classify_response(a) {
        ResponseKind::Undecodable(v, e) => return ResponseDecode::undecodable(v, e),
        ResponseKind::V4(outer) => return decode_response_v4(req, outer, a, None),
        ResponseKind::Encrypted(outer, cipher, ct) => (outer, cipher, ct),
    };
    pt.clear();
    pt.resize(ct.len(), 0);
    if let Err(_e) = crypto::cbc_decrypt_zero_iv(cipher, ct, pt) {
        return ResponseDecode::undecodable(Some(outer), DecodeError::NotBlockAligned(ct.len()));
    }
    response_from_plaintext(req, a, outer, pt)
}

/// The v5/v6 response `a` of version `outer` from its decrypted bytes `pt` (`a.len() - 4`
/// bytes, at least 32).
fn response_from_plaintext(
    req: &RequestDecode,
    a: &[u8],
    outer: KmsVersion,
    pt: &[u8],
) -> ResponseDecode {
    let mut r = ResponseDecode::empty(Some(outer));
    r.iv = arr::<16>(a, 4);
    r.server_salt = arr::<16>(pt, 0);

    // PKCS#7, 1..=16 bytes, never eating into the salt block.
    let n = pt.len();
    let p = pt.last().copied().unwrap_or(0);
    let pad_ok = (1..=16).contains(&p)
        && usize::from(p) <= n.saturating_sub(16)
        && pt
            .get(n - usize::from(p)..)
            .is_some_and(|t| t.iter().all(|&x| x == p));
    let body_end = if pad_ok {
        r.pad_len = Some(p);
        n - usize::from(p)
    } else {
        push(&mut r.failures, failure::PADDING);
        n
    };
    let body = pt.get(16..body_end).unwrap_or(&[]);

    // Request IV relation (§2.6).
    if let (Some(qiv), Some(aiv)) = (req.iv, r.iv) {
        if outer.major == 5 && qiv != aiv {
            push(&mut r.failures, failure::IV_MISMATCH);
        }
        if outer.major == 6 && qiv == aiv {
            push(&mut r.failures, failure::IV_REUSE);
        }
    }

    let (mut resp, base_len) = match message::parse_response(body) {
        Ok(x) => x,
        Err(_) => {
            push(&mut r.failures, failure::RESPONSE_SIZE);
            return r.finish();
        }
    };
    let epid_raw = body.get(8..base_len - 36).unwrap_or(&[]);
    common_checks(
        &mut r.failures,
        req.request.as_ref(),
        req.outer_version,
        outer,
        &resp,
        epid_raw,
    );

    let trailer_len = if outer.major == 6 {
        V6_TRAILER_LEN
    } else {
        V5_TRAILER_LEN
    };
    let t = base_len;
    let s_c = req.client_salt;
    match (arr::<16>(body, t), arr::<32>(body, t + 16)) {
        (Some(random_xored_ivs), Some(hash)) => {
            let random = s_c.map(|s| xor16(&random_xored_ivs, &s));
            match random {
                Some(rnd) if crypto::sha256(&rnd) == hash => {}
                Some(_) => push(&mut r.failures, failure::HASH),
                None => push(&mut r.failures, failure::REQUEST_UNAVAILABLE),
            }
            r.trailer = Some(Trailer {
                random_xored_ivs,
                hash,
                random,
            });
        }
        _ => push(&mut r.failures, failure::RESPONSE_SIZE),
    }
    if outer.major == 6 {
        if let (Some(hwid), Some(xored_ivs), Some(hmac)) = (
            arr::<8>(body, t + 48),
            arr::<16>(body, t + 56),
            arr::<16>(body, t + 72),
        ) {
            resp.hwid = Some(HwId(hwid));
            match s_c {
                Some(s) if s == xored_ivs => {}
                Some(_) => push(&mut r.failures, failure::XORED_IVS),
                None => push(&mut r.failures, failure::REQUEST_UNAVAILABLE),
            }
            // M = S_s ‖ base response ‖ RandomXoredIVs ‖ Hash ‖ HwId ‖ XoredIVs (§2.7).
            let m = pt.get(..16 + t + 72).unwrap_or(&[]);
            let (hmac_key, hmac_computed) = crypto::v6_hmac_with_key(resp.client_time, m);
            if hmac_computed != hmac {
                push(&mut r.failures, failure::HMAC);
            }
            r.v6 = Some(V6Fields {
                hwid: HwId(hwid),
                xored_ivs,
                hmac,
                hmac_key,
                hmac_computed,
            });
        } else {
            push(&mut r.failures, failure::RESPONSE_SIZE);
        }
    }
    let expected = t + trailer_len;
    if pad_ok && body.len() > expected {
        r.trailing_bytes = body.len() - expected;
        push(&mut r.failures, failure::RESPONSE_SIZE);
    }
    r.response = Some(resp);
    r.finish()
}

/// The v4 response; `v4_mac`: the MAC of its base when already computed.
fn decode_response_v4(
    req: &RequestDecode,
    outer: KmsVersion,
    a: &[u8],
    v4_mac: Option<[u8; 16]>,
) -> ResponseDecode {
    let mut r = ResponseDecode::empty(Some(outer));
    let (resp, base_len) = match message::parse_response(a) {
        Ok(x) => x,
        Err(_) => {
            push(&mut r.failures, failure::RESPONSE_SIZE);
            return r.finish();
        }
    };
    let epid_raw = a.get(8..base_len - 36).unwrap_or(&[]);
    common_checks(
        &mut r.failures,
        req.request.as_ref(),
        req.outer_version,
        outer,
        &resp,
        epid_raw,
    );
    match arr::<16>(a, base_len) {
        Some(wire) => {
            let m = MacCheck {
                wire,
                computed: v4_mac.unwrap_or_else(|| {
                    crypto::v4_mac_check(a.get(..base_len).unwrap_or(&[]), &wire)
                }),
            };
            if !m.ok() {
                push(&mut r.failures, failure::RESPONSE_MAC);
            }
            r.mac = Some(m);
            r.trailing_bytes = a.len() - (base_len + 16);
            if r.trailing_bytes > 0 {
                push(&mut r.failures, failure::RESPONSE_SIZE);
            }
        }
        None => push(&mut r.failures, failure::RESPONSE_SIZE),
    }
    r.response = Some(resp);
    r.finish()
}

/// The `integrity` object of a `kms` event (events.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    /// Verdict on the request.
    pub request: Verdict,
    /// Verdict on the response; `None` when there was no KMS response (refusal, fault, none).
    pub response: Option<Verdict>,
    /// Failed checks: the request's, then the response's (no duplicates).
    pub failures: Vec<&'static str>,
}

impl Integrity {
    /// Combines the two halves of a call.
    pub fn new(req: &RequestDecode, resp: Option<&ResponseDecode>) -> Integrity {
        let mut failures = req.failures.clone();
        if let Some(r) = resp {
            for f in &r.failures {
                push(&mut failures, f);
            }
        }
        Integrity {
            request: req.verdict,
            response: resp.map(|r| r.verdict),
            failures,
        }
    }
}

/// What the client will conclude (events.md `outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Valid response and CurrentCount ≥ RequiredClientCount.
    Activated,
    /// Valid response but CurrentCount < RequiredClientCount: the client reports 0xC004F038.
    CountInsufficient,
    /// The host returned an HRESULT instead of a response (set by the RPC layer).
    Refused,
    /// The response failed validation (the client discards it).
    InvalidResponse,
    /// No response (set by the RPC layer).
    NoResponse,
}

impl Outcome {
    /// The events.md name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Activated => "activated",
            Outcome::CountInsufficient => "count_insufficient",
            Outcome::Refused => "refused",
            Outcome::InvalidResponse => "invalid_response",
            Outcome::NoResponse => "no_response",
        }
    }
}

/// The outcome of a call that got a KMS response (§2.8 step 7).
pub fn outcome(req: &RequestDecode, resp: &ResponseDecode) -> Outcome {
    match (&req.request, &resp.response, resp.verdict) {
        (Some(q), Some(a), Verdict::Valid) => {
            if a.current_count >= q.required_count {
                Outcome::Activated
            } else {
                Outcome::CountInsufficient
            }
        }
        _ => Outcome::InvalidResponse,
    }
}
