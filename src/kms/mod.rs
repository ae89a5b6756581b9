//! The KMS message layer (kms-protocol.md §2–§5): everything between the NDR conformant arrays
//! of a `RequestActivation` call and a decoded, validated KMS call.
//!
//! * [`crypto`]: the three fixed-key ciphers (Rijndael-160 for the v4 MAC, AES-128 for v5, AES-128
//!   with a modified key schedule for v6), CBC with the zero IV, the v6 HMAC (§2.4–§2.7);
//! * [`message`]: the version word, base request and base response layouts (§2.1–§2.3);
//! * [`validate`]: the passive decrypt-and-validate algorithm of §2.8 ([`decode_request`],
//!   [`decode_response`], [`Integrity`], [`outcome`]);
//! * [`epid`]: the host ePID (§4);
//! * [`products`]: product names and thresholds from the embedded CSV (§5);
//! * [`hresult`]: names and meanings of refusal HRESULTs and RPC fault statuses (§3, §1.5).
//!
//! The layer knows nothing of DCE/RPC, flows or output: it takes byte slices and returns plain
//! values; it never panics on wire data.

pub mod crypto;
pub mod epid;
pub mod hresult;
pub mod message;
pub mod products;
pub mod validate;

#[cfg(test)]
mod test_vectors;
#[cfg(test)]
mod tests;

pub use crypto::KmsCipher;
pub use epid::{Date, Epid, parse_epid};
pub use message::{HwId, KmsRequest, KmsResponse, KmsVersion, LicenseStatus};
pub use validate::{
    DecodeError, Integrity, Outcome, RequestDecode, ResponseDecode, Verdict, decode_call,
    decode_request, decode_request_opts, decode_response, decode_response_opts, outcome,
};
