//! TEST-ONLY KMS encoder (kms-protocol.md §2.1–§2.7): builds wire request and response bytes for
//! protocol versions 4, 5 and 6 from the library's decoded types, so tests and benches can make
//! arbitrary valid (or deliberately broken) traffic and round-trip it through
//! `kms::decode_request` / `kms::decode_response`.
//!
//! Uses only the library's public API (block encryption, v4 MAC, SHA-256, v6 HMAC); the CBC
//! encryption, the PKCS#7 padding and the layouts are implemented here, independently of the
//! parsers. Include it with `#[path = "…/kms_encoder.rs"] mod kms_encoder;`.
#![allow(dead_code)]

use kmsscope::guid::Guid;
use kmsscope::kms::crypto::{self, KmsCipher};
use kmsscope::kms::{KmsRequest, KmsResponse, KmsVersion};

/// Serialises the 236-byte base request (§2.1). The workstation name is written as UTF-16LE,
/// truncated to 63 code units, NUL-terminated and zero-filled.
pub fn encode_base_request(r: &KmsRequest) -> [u8; 236] {
    let mut b = [0u8; 236];
    b[0..4].copy_from_slice(&r.version.to_wire());
    b[4..8].copy_from_slice(&r.vm_info.to_le_bytes());
    b[8..12].copy_from_slice(&r.license_status.0.to_le_bytes());
    b[12..16].copy_from_slice(&r.binding_expiration.to_le_bytes());
    b[16..32].copy_from_slice(&r.app_id.0);
    b[32..48].copy_from_slice(&r.sku_id.0);
    b[48..64].copy_from_slice(&r.kms_id.0);
    b[64..80].copy_from_slice(&r.cmid.0);
    b[80..84].copy_from_slice(&r.required_count.to_le_bytes());
    b[84..92].copy_from_slice(&r.client_time.to_le_bytes());
    b[92..108].copy_from_slice(&r.previous_cmid.0);
    for (i, u) in r.workstation.encode_utf16().take(63).enumerate() {
        b[108 + 2 * i..110 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    b
}

/// Serialises the base response (§2.2). EpidSize is computed from `r.epid` as 2·(units + 1)
/// (the string may contain NULs on purpose); `r.epid_size` is ignored.
pub fn encode_base_response(r: &KmsResponse) -> Vec<u8> {
    let units: Vec<u16> = r.epid.encode_utf16().chain([0]).collect();
    let mut b = Vec::with_capacity(44 + 2 * units.len());
    b.extend_from_slice(&r.version.to_wire());
    b.extend_from_slice(&((2 * units.len()) as u32).to_le_bytes());
    for u in &units {
        b.extend_from_slice(&u.to_le_bytes());
    }
    b.extend_from_slice(&r.cmid.0);
    b.extend_from_slice(&r.client_time.to_le_bytes());
    b.extend_from_slice(&r.current_count.to_le_bytes());
    b.extend_from_slice(&r.activation_interval.to_le_bytes());
    b.extend_from_slice(&r.renewal_interval.to_le_bytes());
    b
}

/// Appends PKCS#7 padding: always 1..=16 bytes (a full block when already aligned, §2.3).
pub fn pkcs7_pad(v: &mut Vec<u8>) {
    let p = 16 - v.len() % 16;
    v.extend(std::iter::repeat_n(p as u8, p));
}

/// CBC encryption with an all-zero IV (§2.6). `pt.len()` must be a multiple of 16.
pub fn cbc_encrypt_zero_iv(cipher: KmsCipher, pt: &[u8]) -> Vec<u8> {
    assert!(pt.len().is_multiple_of(16), "plaintext not block aligned");
    let mut out = Vec::with_capacity(pt.len());
    let mut prev = [0u8; 16];
    for c in pt.chunks_exact(16) {
        let mut b: [u8; 16] = std::array::from_fn(|i| c[i] ^ prev[i]);
        cipher.encrypt_block(&mut b);
        out.extend_from_slice(&b);
        prev = b;
    }
    out
}

fn cipher_for(v: KmsVersion) -> KmsCipher {
    KmsCipher::for_major(v.major).expect("encoder: v5/v6 only here")
}

/// Builds the wire request (§2.3) for `r.version` (4, 5 or 6). v4: base ‖ MAC (`client_salt` is
/// unused). v5/v6: version ‖ CBC_k(S_c ‖ base ‖ 04 04 04 04) with a zero IV.
pub fn encode_request(r: &KmsRequest, client_salt: [u8; 16]) -> Vec<u8> {
    let base = encode_base_request(r);
    if r.version.major == 4 {
        let mut q = base.to_vec();
        q.extend_from_slice(&crypto::v4_mac(&base));
        return q;
    }
    let mut pt = client_salt.to_vec();
    pt.extend_from_slice(&base);
    pkcs7_pad(&mut pt);
    assert_eq!(pt.len(), 256);
    let mut q = r.version.to_wire().to_vec();
    q.extend(cbc_encrypt_zero_iv(cipher_for(r.version), &pt));
    q
}

/// The host-side secrets and deliberate faults of one response.
#[derive(Clone, Debug, Default)]
pub struct ResponseSecrets {
    /// The host's random value R (v5/v6): RandomXoredIVs = R ⊕ S_c, Hash = SHA-256(R).
    pub random: [u8; 16],
    /// Server salt S_s, the first plaintext block (v5 hosts reuse S_c: pass the client salt).
    pub server_salt: [u8; 16],
    /// v6 HwId (wire order).
    pub hwid: [u8; 8],
    /// Fault: compute the v6 HMAC key from this time instead of the echoed ClientRequestTime.
    pub hmac_time: Option<u64>,
    /// Fault: send this XoredIVs instead of S_c (v6).
    pub xored_ivs: Option<[u8; 16]>,
    /// Fault: send this Hash instead of SHA-256(R).
    pub hash: Option<[u8; 32]>,
    /// Fault: send this inner version instead of `resp.version` (outer stays `resp.version`).
    pub inner_version: Option<KmsVersion>,
    /// Fault: extra plaintext bytes after the trailer (v5/v6) or after the MAC (v4).
    pub extra: Vec<u8>,
}

/// Builds the wire response (§2.3) for `resp.version`, answering a request whose client salt was
/// `client_salt` (v5/v6). v4: base ‖ MAC. v5: version ‖ CBC(S_s ‖ base ‖ RandomXoredIVs ‖ Hash ‖
/// pad). v6: version ‖ CBC(S_s ‖ base ‖ RandomXoredIVs ‖ Hash ‖ HwId ‖ XoredIVs ‖ HMAC ‖ pad).
pub fn encode_response(resp: &KmsResponse, client_salt: [u8; 16], s: &ResponseSecrets) -> Vec<u8> {
    let mut base = encode_base_response(resp);
    if let Some(v) = s.inner_version {
        base[0..4].copy_from_slice(&v.to_wire());
    }
    if resp.version.major == 4 {
        let mac = crypto::v4_mac(&base);
        base.extend_from_slice(&mac);
        base.extend_from_slice(&s.extra);
        return base;
    }
    let mut pt = s.server_salt.to_vec();
    pt.extend_from_slice(&base);
    let rxi: [u8; 16] = std::array::from_fn(|i| s.random[i] ^ client_salt[i]);
    pt.extend_from_slice(&rxi);
    pt.extend_from_slice(&s.hash.unwrap_or_else(|| crypto::sha256(&s.random)));
    if resp.version.major == 6 {
        pt.extend_from_slice(&s.hwid);
        pt.extend_from_slice(&s.xored_ivs.unwrap_or(client_salt));
        let t = s.hmac_time.unwrap_or(resp.client_time);
        let mac = crypto::v6_hmac(t, &pt);
        pt.extend_from_slice(&mac);
    }
    pt.extend_from_slice(&s.extra);
    pkcs7_pad(&mut pt);
    let mut a = resp.version.to_wire().to_vec();
    a.extend(cbc_encrypt_zero_iv(cipher_for(resp.version), &pt));
    a
}

/// A response that echoes `req` (version, CMID, time) with the given host fields.
pub fn echo_response(
    req: &KmsRequest,
    epid: &str,
    current_count: u32,
    activation_interval: u32,
    renewal_interval: u32,
    hwid: Option<[u8; 8]>,
) -> KmsResponse {
    KmsResponse {
        version: req.version,
        epid_size: 2 * (epid.encode_utf16().count() as u32 + 1),
        epid: epid.into(),
        cmid: req.cmid,
        client_time: req.client_time,
        current_count,
        activation_interval,
        renewal_interval,
        hwid: if req.version.major == 6 {
            hwid.map(kmsscope::kms::HwId)
        } else {
            None
        },
    }
}

/// A GUID from its canonical text (panics on bad text: test data only).
pub fn guid(s: &str) -> Guid {
    Guid::parse(s).expect("bad GUID literal")
}
