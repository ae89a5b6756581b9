//! KMS message layouts (kms-protocol.md §2.1–§2.3): the version word, the 236-byte base request
//! and the variable-length base response. Complete-mode, byte-wise parsers that never panic.

use std::borrow::Cow;
use std::fmt;

use crate::guid::{Guid, WireText};

/// Size of the base request (§2.1).
pub const BASE_REQUEST_LEN: usize = 236;
/// Size of the fixed part of the base response (§2.2): 44 bytes plus the ePID.
pub const BASE_RESPONSE_FIXED_LEN: usize = 44;
/// Offset of the ePID in the base response (§2.2).
pub const EPID_OFFSET: usize = 8;
/// Largest EpidSize a client accepts (§2.2: 64 UTF-16 units including the NUL).
pub const MAX_EPID_SIZE: u32 = 128;
/// Size of the WorkstationName field (§2.1: 64 UTF-16 units).
pub const WORKSTATION_LEN: usize = 128;

/// Parse failures of the base structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the structure needs.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// The KMS protocol version word (§2): MinorVer u16 @0, MajorVer u16 @2. Open: any value parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KmsVersion {
    /// MajorVer (4, 5 or 6 in practice).
    pub major: u16,
    /// MinorVer (always 0 in practice).
    pub minor: u16,
}

impl KmsVersion {
    /// 4.0: plaintext + Rijndael-160 CBC-MAC.
    pub const V4: KmsVersion = KmsVersion { major: 4, minor: 0 };
    /// 5.0: AES-128 CBC.
    pub const V5: KmsVersion = KmsVersion { major: 5, minor: 0 };
    /// 6.0: modified AES-128 CBC + HMAC.
    pub const V6: KmsVersion = KmsVersion { major: 6, minor: 0 };

    /// Reads the version from the first 4 bytes; `None` when shorter.
    pub fn from_wire(b: &[u8]) -> Option<KmsVersion> {
        Some(KmsVersion {
            minor: le16(b, 0)?,
            major: le16(b, 2)?,
        })
    }

    /// The 4 wire bytes.
    pub fn to_wire(self) -> [u8; 4] {
        let mut o = [0u8; 4];
        o[..2].copy_from_slice(&self.minor.to_le_bytes());
        o[2..].copy_from_slice(&self.major.to_le_bytes());
        o
    }

    /// True for 4.0, 5.0 and 6.0, the only versions a host accepts (§2).
    pub fn is_known(self) -> bool {
        self.minor == 0 && (4..=6).contains(&self.major)
    }
}

impl fmt::Display for KmsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The client's LicenseStatus (§2.1 offset 8). Open: unknown values keep their number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LicenseStatus(pub u32);

impl LicenseStatus {
    /// 0
    pub const UNLICENSED: LicenseStatus = LicenseStatus(0);
    /// 1
    pub const LICENSED: LicenseStatus = LicenseStatus(1);
    /// 2: initial (out-of-box) grace.
    pub const OOB_GRACE: LicenseStatus = LicenseStatus(2);
    /// 3: out-of-tolerance grace.
    pub const OOT_GRACE: LicenseStatus = LicenseStatus(3);
    /// 4
    pub const NON_GENUINE_GRACE: LicenseStatus = LicenseStatus(4);
    /// 5
    pub const NOTIFICATION: LicenseStatus = LicenseStatus(5);
    /// 6
    pub const EXTENDED_GRACE: LicenseStatus = LicenseStatus(6);

    const NAMES: [(&'static str, &'static str); 7] = [
        ("unlicensed", "Unlicensed"),
        ("licensed", "Licensed"),
        ("oob_grace", "OOB grace"),
        ("oot_grace", "OOT grace"),
        ("non_genuine_grace", "Non-genuine grace"),
        ("notification", "Notification"),
        ("extended_grace", "Extended grace"),
    ];

    /// True for the seven defined values 0..=6.
    pub fn is_known(self) -> bool {
        self.0 <= 6
    }

    /// The events.md name: `unlicensed`, `licensed`, `oob_grace`, `oot_grace`,
    /// `non_genuine_grace`, `notification`, `extended_grace`, else `unknown_<n>`.
    pub fn name(self) -> Cow<'static, str> {
        match Self::NAMES.get(self.0 as usize) {
            Some((n, _)) => Cow::Borrowed(n),
            None => Cow::Owned(format!("unknown_{}", self.0)),
        }
    }

    /// A human label, e.g. `OOB grace` (as vlmcsd prints it), else `Unknown (<n>)`.
    pub fn label(self) -> Cow<'static, str> {
        match Self::NAMES.get(self.0 as usize) {
            Some((_, l)) => Cow::Borrowed(l),
            None => Cow::Owned(format!("Unknown ({})", self.0)),
        }
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The v6 host hardware id (§2.7), 8 raw bytes. Displays as vlmcs prints it: the bytes read as a
/// big-endian number, 16 upper-case hex digits (wire `3a 1c 04 96 00 b6 00 76` →
/// `3A1C049600B60076`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct HwId(pub [u8; 8]);

impl HwId {
    /// The id as a big-endian number.
    pub fn as_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

impl fmt::Display for HwId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.as_u64())
    }
}

/// The decoded base request (§2.1), identical in v4/v5/v6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsRequest {
    /// Inner MinorVer/MajorVer (offset 0).
    pub version: KmsVersion,
    /// VMInfo / IsClientVM (offset 4): 0 physical, 1 virtual machine.
    pub vm_info: u32,
    /// LicenseStatus (offset 8).
    pub license_status: LicenseStatus,
    /// BindingExpiration / GraceTime in minutes (offset 12).
    pub binding_expiration: u32,
    /// ApplicationId (offset 16).
    pub app_id: Guid,
    /// SkuId / ActivationId (offset 32).
    pub sku_id: Guid,
    /// KmsCountedId (offset 48).
    pub kms_id: Guid,
    /// ClientMachineId (offset 64).
    pub cmid: Guid,
    /// RequiredClientCount / N policy (offset 80).
    pub required_count: u32,
    /// ClientRequestTime, FILETIME (offset 84).
    pub client_time: u64,
    /// PreviousClientMachineId (offset 92), zero if never changed.
    pub previous_cmid: Guid,
    /// WorkstationName (offset 108): UTF-16LE up to the first NUL, decoded lossily.
    pub workstation: WireText,
}

impl KmsRequest {
    /// True when VMInfo says virtual machine.
    pub fn is_vm(&self) -> bool {
        self.vm_info != 0
    }

    /// Plausibility issues of §2.8 step 3 (not integrity failures): `vm_info_range` (VMInfo > 1),
    /// `license_status_range` (> 6), `required_count_range` (> 1000, which vlmcsd refuses).
    pub fn sanity_issues(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.vm_info > 1 {
            v.push("vm_info_range");
        }
        if !self.license_status.is_known() {
            v.push("license_status_range");
        }
        if self.required_count > 1000 {
            v.push("required_count_range");
        }
        v
    }
}

/// The decoded base response (§2.2) plus, for v6, the HwId (§2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsResponse {
    /// Inner MinorVer/MajorVer (offset 0).
    pub version: KmsVersion,
    /// EpidSize in bytes including the terminating NUL (offset 4).
    pub epid_size: u32,
    /// KmsEpid (offset 8): UTF-16LE up to the first NUL, decoded lossily.
    pub epid: WireText,
    /// ClientMachineId echo (offset 8+E).
    pub cmid: Guid,
    /// ClientRequestTime echo (offset 24+E).
    pub client_time: u64,
    /// CurrentCount (offset 32+E).
    pub current_count: u32,
    /// VLActivationInterval in minutes (offset 36+E).
    pub activation_interval: u32,
    /// VLRenewalInterval in minutes (offset 40+E).
    pub renewal_interval: u32,
    /// v6 only: the host HwId (after Hash in the encrypted response).
    pub hwid: Option<HwId>,
}

pub(crate) fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

pub(crate) fn le64(b: &[u8], off: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

pub(crate) fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn guid_at(b: &[u8], off: usize) -> Option<Guid> {
    Guid::from_wire(b.get(off..)?)
}

/// Decodes UTF-16LE code units up to the first NUL (or the end), lossily.
pub fn utf16le_until_nul(b: &[u8]) -> WireText {
    // Fast path: workstation names and ePIDs are nearly always ASCII, which is a byte copy into
    // the inline text (no heap).
    let mut text = [0u8; 64];
    match ascii_until_nul(b, &mut text) {
        // ASCII: always UTF-8.
        Some(n) => WireText::from(
            std::str::from_utf8(text.get(..n).unwrap_or_default()).unwrap_or_default(),
        ),
        None => utf16le_until_nul_general(b),
    }
}

/// The low bytes of the units of `b` before the first NUL unit (or the end) into `out`, and
/// their count, when all of them are ASCII (below 0x80) and they fit; `None` otherwise.
fn ascii_until_nul(b: &[u8], out: &mut [u8; 64]) -> Option<usize> {
    // Four units at a time: a u64 of four ASCII units other than NUL has every high byte zero,
    // every low byte below 0x80, and every 16-bit lane non-zero (adding 0x7FFF to a lane below
    // 0x80 sets its top bit exactly when the lane is not zero, and never carries out of it).
    const HIGH: u64 = 0xFF80_FF80_FF80_FF80;
    const TOP: u64 = 0x8000_8000_8000_8000;
    let mut n = 0;
    let mut quads = b.chunks_exact(8);
    for (q, to) in (&mut quads).zip(out.chunks_exact_mut(4)) {
        let x = u64::from_le_bytes(q.try_into().ok()?);
        if x & HIGH != 0 || x.wrapping_add(0x7FFF_7FFF_7FFF_7FFF) & TOP != TOP {
            break;
        }
        to.copy_from_slice(&[x as u8, (x >> 16) as u8, (x >> 32) as u8, (x >> 48) as u8]);
        n += 4;
    }
    // The rest one unit at a time, from the first unit not copied above.
    for u in b.get(2 * n..)?.chunks_exact(2) {
        match *u {
            [0, 0] => return Some(n),
            [lo, 0] if lo < 0x80 => {
                *out.get_mut(n)? = lo;
                n += 1;
            }
            _ => return None,
        }
    }
    Some(n)
}

/// [`utf16le_until_nul`] for any text. An ASCII unit is a whole scalar value, so decoding can
/// resume after the ASCII prefix with a fresh UTF-16 decoder and give the same string as decoding
/// everything at once.
fn utf16le_until_nul_general(b: &[u8]) -> WireText {
    let units = b.chunks_exact(2);
    let ascii = units
        .clone()
        .position(|c| c[1] != 0 || c[0] == 0 || c[0] >= 0x80)
        .unwrap_or(b.len() / 2);
    let rest = b.get(2 * ascii..).unwrap_or(&[]);
    let done = rest.len() < 2 || rest.get(..2) == Some(&[0, 0][..]);
    let mut prefix = Vec::with_capacity(if done { ascii } else { ascii + rest.len() });
    prefix.extend(units.take(ascii).map(|c| c[0]));
    // ASCII: always UTF-8.
    let mut s = String::from_utf8(prefix).unwrap_or_default();
    if !done {
        let units = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0);
        s.extend(char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)));
    }
    WireText::from(s)
}

/// Parses the 236-byte base request (§2.1) from the start of `b`; extra bytes are ignored.
pub fn parse_request(b: &[u8]) -> Result<KmsRequest, ParseError> {
    let trunc = ParseError::Truncated {
        need: BASE_REQUEST_LEN,
        have: b.len(),
    };
    let b = b.get(..BASE_REQUEST_LEN).ok_or(trunc)?;
    let inner = || -> Option<KmsRequest> {
        Some(KmsRequest {
            version: KmsVersion::from_wire(b)?,
            vm_info: le32(b, 4)?,
            license_status: LicenseStatus(le32(b, 8)?),
            binding_expiration: le32(b, 12)?,
            app_id: guid_at(b, 16)?,
            sku_id: guid_at(b, 32)?,
            kms_id: guid_at(b, 48)?,
            cmid: guid_at(b, 64)?,
            required_count: le32(b, 80)?,
            client_time: le64(b, 84)?,
            previous_cmid: guid_at(b, 92)?,
            workstation: utf16le_until_nul(b.get(108..108 + WORKSTATION_LEN)?),
        })
    };
    inner().ok_or(trunc)
}

/// Checks the ePID framing rules of §2.2 / §2.8 step 6 on the raw ePID bytes (length = EpidSize):
/// EpidSize even, ≤ 128, the last UTF-16 unit NUL and no earlier unit NUL.
pub fn epid_format_ok(epid_size: u32, raw: &[u8]) -> bool {
    if !epid_size.is_multiple_of(2) || !(2..=MAX_EPID_SIZE).contains(&epid_size) {
        return false;
    }
    if raw.len() != epid_size as usize {
        return false;
    }
    let mut units = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let Some(last) = units.next_back() else {
        return false;
    };
    last == 0 && units.all(|u| u != 0)
}

/// Parses the base response (§2.2) from the start of `b`. Returns the response (with `hwid: None`)
/// and its length `44 + EpidSize`. Fails only when `b` is too short for the declared EpidSize.
pub fn parse_response(b: &[u8]) -> Result<(KmsResponse, usize), ParseError> {
    let trunc = |need: usize| ParseError::Truncated {
        need,
        have: b.len(),
    };
    let epid_size = le32(b, 4).ok_or(trunc(BASE_RESPONSE_FIXED_LEN))?;
    let e = usize::try_from(epid_size).unwrap_or(usize::MAX);
    let total = e
        .checked_add(BASE_RESPONSE_FIXED_LEN)
        .ok_or(trunc(usize::MAX))?;
    if b.len() < total {
        return Err(trunc(total));
    }
    let inner = || -> Option<KmsResponse> {
        let epid_raw = b.get(EPID_OFFSET..EPID_OFFSET + e)?;
        let p = EPID_OFFSET + e;
        Some(KmsResponse {
            version: KmsVersion::from_wire(b)?,
            epid_size,
            epid: utf16le_until_nul(epid_raw),
            cmid: guid_at(b, p)?,
            client_time: le64(b, p + 16)?,
            current_count: le32(b, p + 24)?,
            activation_interval: le32(b, p + 28)?,
            renewal_interval: le32(b, p + 32)?,
            hwid: None,
        })
    };
    Ok((inner().ok_or(trunc(total))?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_status_names() {
        assert_eq!(KmsVersion::V6.to_string(), "6.0");
        assert_eq!(KmsVersion::from_wire(&[0, 0, 5, 0]), Some(KmsVersion::V5));
        assert_eq!(KmsVersion::from_wire(&[1, 0, 5]), None);
        assert_eq!(KmsVersion::V4.to_wire(), [0, 0, 4, 0]);
        assert!(!KmsVersion { major: 7, minor: 0 }.is_known());
        assert!(!KmsVersion { major: 6, minor: 1 }.is_known());
        let names: Vec<String> = (0..8)
            .map(|n| LicenseStatus(n).name().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "unlicensed",
                "licensed",
                "oob_grace",
                "oot_grace",
                "non_genuine_grace",
                "notification",
                "extended_grace",
                "unknown_7"
            ]
        );
        assert_eq!(LicenseStatus::OOB_GRACE.label(), "OOB grace");
        assert_eq!(LicenseStatus(99).label(), "Unknown (99)");
        assert_eq!(
            HwId([0x3a, 0x1c, 0x04, 0x96, 0x00, 0xb6, 0x00, 0x76]).to_string(),
            "3A1C049600B60076"
        );
    }

    #[test]
    fn epid_format_rules() {
        let mk = |s: &str| -> Vec<u8> {
            s.encode_utf16()
                .chain([0])
                .flat_map(|u| u.to_le_bytes())
                .collect()
        };
        let ok = mk("03612-00206-556-123727-03-1033-17763.0000-2972018");
        assert_eq!(ok.len(), 100);
        assert!(epid_format_ok(100, &ok));
        assert!(!epid_format_ok(99, &ok[..99]));
        let mut interior = ok.clone();
        interior[10] = 0;
        interior[11] = 0;
        assert!(!epid_format_ok(100, &interior));
        let mut unterminated = ok.clone();
        unterminated[98] = b'x';
        assert!(!epid_format_ok(100, &unterminated));
        let long = mk(&"1".repeat(64));
        assert!(!epid_format_ok(130, &long));
        assert!(!epid_format_ok(0, &[]));
    }

    #[test]
    fn utf16_fast_path_matches_lossy_decoding() {
        let reference = |b: &[u8]| -> String {
            let units = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0);
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        };
        let enc =
            |units: &[u16]| -> Vec<u8> { units.iter().flat_map(|u| u.to_le_bytes()).collect() };
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x41],
            enc(&[0x41, 0x42, 0]),
            enc(&[0x41, 0x42, 0, 0x43]),
            enc(&[0x41, 0xE9, 0x42]),
            enc(&[0x7F, 0x80, 0x7FF, 0x800, 0xFFFF]),
            enc(&[0x41, 0xD83D, 0xDE00, 0x42]),
            enc(&[0x41, 0xD83D, 0x42]),
            enc(&[0xDE00, 0x41]),
            enc(&[0x41, 0xD83D]),
            enc(&[0xD83D, 0]),
            {
                let mut v = enc(&[0x41, 0x42]);
                v.push(0x43);
                v
            },
            "DESKTOP-ÄÖÜ-测试"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect(),
        ];
        for c in &cases {
            assert_eq!(utf16le_until_nul(c), reference(c), "{c:02x?}");
        }
        for seed in 0u32..2000 {
            let b: Vec<u8> = (0..(seed % 23) as usize)
                .map(|i| {
                    let x = seed.wrapping_mul(2_654_435_761).rotate_left(i as u32 * 5) as u8;
                    if i % 2 == 1 && x & 3 != 0 {
                        0
                    } else {
                        x & if seed % 3 == 0 { 0x7F } else { 0xFF }
                    }
                })
                .collect();
            assert_eq!(utf16le_until_nul(&b), reference(&b), "{b:02x?}");
        }
        // Longer texts, through the four-units-at-a-time path and past the 64 inline bytes: ASCII
        // of every length up to 70 units, then with a NUL, a non-ASCII unit, a unit with a high
        // byte, or a byte 0x80 at every position, and with an odd trailing byte.
        for len in 0..=70usize {
            let ascii: Vec<u16> = (0..len).map(|i| 0x21 + (i as u16 * 7) % 94).collect();
            let b = enc(&ascii);
            assert_eq!(utf16le_until_nul(&b), reference(&b), "{b:02x?}");
            assert!(len > 64 || utf16le_until_nul(&b).is_inline());
            let mut odd = b.clone();
            odd.push(0x41);
            assert_eq!(utf16le_until_nul(&odd), reference(&odd), "{odd:02x?}");
            for at in 0..len {
                for unit in [0u16, 0x7F, 0x80, 0xE9, 0x141, 0x4100, 0xD83D] {
                    let mut u = ascii.clone();
                    u[at] = unit;
                    let b = enc(&u);
                    assert_eq!(utf16le_until_nul(&b), reference(&b), "{b:02x?}");
                }
            }
        }
    }

    #[test]
    fn short_inputs_do_not_panic() {
        for n in 0..300 {
            let b = vec![0x41u8; n];
            let r = parse_request(&b);
            assert_eq!(r.is_ok(), n >= BASE_REQUEST_LEN);
            let _ = parse_response(&b);
        }
        let mut huge = vec![0u8; 50];
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_response(&huge).is_err());
    }
}
