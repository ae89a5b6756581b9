//! Names and meanings of the status codes a KMS dissector meets (kms-protocol.md §3 and §1.5):
//! the HRESULTs of activation (host return values and client-side errors) and the DCE/RPC fault
//! statuses (C706 Appendix E `nca_s_*`, MS-RPCE / Win32 RPC errors).

use crate::guid::InlineText;

/// One table entry: code, symbolic name, short admin-readable meaning.
type Entry = (u32, &'static str, &'static str);

/// Activation HRESULTs (§3), sorted by code.
const HRESULTS: &[Entry] = &[
    (
        0x8007000D,
        "ERROR_INVALID_DATA",
        "The KMS host could not use the request: unknown protocol version (older host), unparseable request, or an out-of-range field such as RequiredClientCount > 1000.",
    ),
    (
        0x8007007B,
        "ERROR_INVALID_NAME",
        "The KMS host name or DNS name configured on the client is syntactically invalid (check slmgr /skms and the DNS suffix).",
    ),
    (
        0x800706BA,
        "RPC_S_SERVER_UNAVAILABLE",
        "The client could not connect to the KMS host (TCP connect failed: host down, firewall, or wrong port).",
    ),
    (
        0x8007232A,
        "DNS_ERROR_RCODE_SERVER_FAILURE",
        "The DNS server failed while the client looked up the _vlmcs._tcp SRV record.",
    ),
    (
        0x8007232B,
        "DNS_ERROR_RCODE_NAME_ERROR",
        "The DNS name the client looked up does not exist (no _vlmcs._tcp SRV record or wrong domain).",
    ),
    (
        0x8007251D,
        "DNS_INFO_NO_RECORDS",
        "The DNS lookup for the _vlmcs._tcp SRV record returned no records: no KMS host is published.",
    ),
    (
        0xC004C008,
        "SL_E_CHPA_MAXIMUM_UNLOCK_EXCEEDED",
        "The activation server reported that the product key has exceeded its unlock limit (online activation of a key, typically a KMS host key).",
    ),
    (
        0xC004D104,
        "SL_REMAPPING_SP_STATUS_INVALIDARG",
        "The security processor reported invalid data; vlmcsd returns it when its client list for an application is full (671 entries).",
    ),
    (
        0xC004F035,
        "SL_E_VL_NOT_WINDOWS_SLP",
        "The computer cannot be activated with a volume license key: volume-licensed Windows needs a qualifying OEM license in the BIOS (upgrade editions).",
    ),
    (
        0xC004F038,
        "SL_E_VL_NOT_ENOUGH_COUNT",
        "The count reported by the KMS host is below the client's activation threshold; the client reports this itself after a valid response.",
    ),
    (
        0xC004F039,
        "SL_E_VL_BINDING_SERVICE_NOT_ENABLED",
        "The Key Management Service is not enabled (the host did not respond as a KMS).",
    ),
    (
        0xC004F041,
        "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED",
        "The KMS host itself is not activated; activate the host's CSVLK.",
    ),
    (
        0xC004F042,
        "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH",
        "The KMS host cannot be used for this product: its host key does not cover the requested KMS ID (or the product is retail/preview).",
    ),
    (
        0xC004F050,
        "SL_E_INVALID_PRODUCT_KEY",
        "The product key is invalid (for example a KMS host key or GVLK that does not match the edition).",
    ),
    (
        0xC004F06C,
        "SL_E_VL_INVALID_TIMESTAMP",
        "The KMS host rejected the request timestamp: client and host clocks differ by more than 4 hours.",
    ),
    (
        0xC004F074,
        "SL_E_VL_BINDING_SERVICE_UNAVAILABLE",
        "No KMS host could be contacted; the underlying cause (DNS, network, host error) is in the client's event log.",
    ),
];

/// DCE/RPC fault statuses (§1.5), sorted by code.
const RPC_STATUSES: &[Entry] = &[
    (
        0x00000005,
        "ERROR_ACCESS_DENIED",
        "The RPC server denied access to the call.",
    ),
    (
        0x00000008,
        "ERROR_NOT_ENOUGH_MEMORY",
        "The RPC server ran out of memory.",
    ),
    (
        0x000006B5,
        "RPC_S_UNKNOWN_IF",
        "The RPC server does not know the requested interface.",
    ),
    (
        0x000006BA,
        "RPC_S_SERVER_UNAVAILABLE",
        "The RPC server is unavailable.",
    ),
    (
        0x000006BB,
        "RPC_S_SERVER_TOO_BUSY",
        "The RPC server is too busy to complete the call.",
    ),
    (
        0x000006BE,
        "RPC_S_CALL_FAILED",
        "The remote procedure call failed.",
    ),
    (
        0x000006C0,
        "RPC_S_PROTOCOL_ERROR",
        "The RPC server detected a protocol error.",
    ),
    (
        0x000006C2,
        "RPC_S_UNSUPPORTED_TRANS_SYN",
        "The RPC server does not support the transfer syntax.",
    ),
    (
        0x000006D1,
        "RPC_S_PROCNUM_OUT_OF_RANGE",
        "The operation number is out of range for the interface (KMS has only opnum 0).",
    ),
    (
        0x000006F7,
        "RPC_X_BAD_STUB_DATA",
        "The RPC server could not unmarshal the stub data (nca_s_fault_ndr).",
    ),
    (
        0x1C000001,
        "nca_s_fault_int_div_by_zero",
        "The server faulted with an integer division by zero.",
    ),
    (
        0x1C000002,
        "nca_s_fault_addr_error",
        "The server faulted with an addressing error.",
    ),
    (
        0x1C000003,
        "nca_s_fault_fp_div_zero",
        "The server faulted with a floating-point division by zero.",
    ),
    (
        0x1C000004,
        "nca_s_fault_fp_underflow",
        "The server faulted with a floating-point underflow.",
    ),
    (
        0x1C000005,
        "nca_s_fault_fp_overflow",
        "The server faulted with a floating-point overflow.",
    ),
    (
        0x1C000006,
        "nca_s_fault_invalid_tag",
        "The server received an invalid union discriminant.",
    ),
    (
        0x1C000007,
        "nca_s_fault_invalid_bound",
        "The server received an invalid array bound.",
    ),
    (
        0x1C000008,
        "nca_s_rpc_version_mismatch",
        "The RPC protocol version is not supported by the server.",
    ),
    (
        0x1C000009,
        "nca_s_unspec_reject",
        "The server rejected the call for an unspecified reason.",
    ),
    (
        0x1C00000A,
        "nca_s_bad_actid",
        "The server received an invalid activity id.",
    ),
    (
        0x1C00000B,
        "nca_s_who_are_you_failed",
        "The server's callback to identify the client failed.",
    ),
    (
        0x1C00000C,
        "nca_s_manager_not_entered",
        "The server did not enter the manager routine.",
    ),
    (0x1C00000D, "nca_s_fault_cancel", "The call was cancelled."),
    (
        0x1C00000E,
        "nca_s_fault_ill_inst",
        "The server faulted with an illegal instruction.",
    ),
    (
        0x1C00000F,
        "nca_s_fault_fp_error",
        "The server faulted with a floating-point error.",
    ),
    (
        0x1C000010,
        "nca_s_fault_int_overflow",
        "The server faulted with an integer overflow.",
    ),
    (
        0x1C000012,
        "nca_s_fault_unspec",
        "The server faulted for an unspecified reason.",
    ),
    (
        0x1C000013,
        "nca_s_fault_remote_comm_failure",
        "The server failed to communicate with a remote node.",
    ),
    (
        0x1C000014,
        "nca_s_fault_pipe_empty",
        "An RPC pipe was empty.",
    ),
    (
        0x1C000015,
        "nca_s_fault_pipe_closed",
        "An RPC pipe was closed.",
    ),
    (
        0x1C000016,
        "nca_s_fault_pipe_order",
        "RPC pipe operations arrived out of order.",
    ),
    (
        0x1C000017,
        "nca_s_fault_pipe_discipline",
        "An RPC pipe discipline error occurred.",
    ),
    (
        0x1C000018,
        "nca_s_fault_pipe_comm_error",
        "An RPC pipe communication error occurred.",
    ),
    (
        0x1C000019,
        "nca_s_fault_pipe_memory",
        "An RPC pipe ran out of memory.",
    ),
    (
        0x1C00001A,
        "nca_s_fault_context_mismatch",
        "The server received an unknown context handle.",
    ),
    (
        0x1C00001B,
        "nca_s_fault_remote_no_memory",
        "The server ran out of memory.",
    ),
    (
        0x1C00001C,
        "nca_s_invalid_pres_context_id",
        "The call names a presentation context the server never accepted.",
    ),
    (
        0x1C00001D,
        "nca_s_unsupported_authn_level",
        "The server does not support the requested authentication level.",
    ),
    (
        0x1C00001F,
        "nca_s_invalid_checksum",
        "The PDU checksum was invalid.",
    ),
    (0x1C000020, "nca_s_invalid_crc", "The PDU CRC was invalid."),
    (
        0x1C000021,
        "nca_s_fault_user_defined",
        "The server raised a user-defined fault.",
    ),
    (
        0x1C000022,
        "nca_s_fault_tx_open_failed",
        "The server could not open a transaction.",
    ),
    (
        0x1C000023,
        "nca_s_fault_codeset_conv_error",
        "The server failed a character-set conversion.",
    ),
    (
        0x1C000024,
        "nca_s_fault_object_not_found",
        "The server could not find the requested object.",
    ),
    (
        0x1C000025,
        "nca_s_fault_no_client_stub",
        "No client stub is available for the callback.",
    ),
    (
        0x1C010001,
        "nca_s_comm_failure",
        "The server could not communicate with the client.",
    ),
    (
        0x1C010002,
        "nca_op_rng_error",
        "The operation number is out of range for the interface (KMS has only opnum 0).",
    ),
    (
        0x1C010003,
        "nca_unk_if",
        "The server does not know the interface or the presentation context named by the request (e.g. a context id never accepted in the bind).",
    ),
    (
        0x1C010006,
        "nca_s_wrong_boot_time",
        "The server's boot time does not match the client's view (server restarted).",
    ),
    (
        0x1C010009,
        "nca_s_you_crashed",
        "The server believes the client restarted.",
    ),
    (
        0x1C01000B,
        "nca_proto_error",
        "The server detected an RPC protocol error (e.g. a PDU whose version is not 5.0).",
    ),
    (
        0x1C010013,
        "nca_s_out_args_too_big",
        "The call's output arguments are too large.",
    ),
    (
        0x1C010014,
        "nca_s_server_too_busy",
        "The server is too busy to handle the call.",
    ),
    (
        0x1C010015,
        "nca_s_fault_string_too_long",
        "A string argument was too long.",
    ),
    (
        0x1C010017,
        "nca_s_unsupported_type",
        "The server does not support the requested object type.",
    ),
];

fn lookup(table: &'static [Entry], code: u32) -> Option<(&'static str, &'static str)> {
    table
        .binary_search_by_key(&code, |e| e.0)
        .ok()
        .and_then(|i| table.get(i))
        .map(|e| (e.1, e.2))
}

/// Describes an activation HRESULT (§3) or, failing that, an RPC fault status (§1.5):
/// `(name, meaning)`. `None` for codes not in either table.
pub fn describe(code: u32) -> Option<(&'static str, &'static str)> {
    lookup(HRESULTS, code).or_else(|| lookup(RPC_STATUSES, code))
}

/// Describes a KMS host return value (the HRESULT in a refused response, §3).
pub fn describe_hresult(code: u32) -> Option<(&'static str, &'static str)> {
    lookup(HRESULTS, code)
}

/// Describes a DCE/RPC fault status (§1.5).
pub fn describe_fault(code: u32) -> Option<(&'static str, &'static str)> {
    lookup(RPC_STATUSES, code)
}

/// Formats a code as events.md shows it: `0xC004F042` (upper-case hex, 8 digits).
pub fn format_code(code: u32) -> InlineText<10> {
    // Without `core::fmt` (one per `kms` event).
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = *b"0x00000000";
    for (i, d) in s[2..].iter_mut().enumerate() {
        *d = HEX[((code >> (28 - 4 * i)) & 15) as usize];
    }
    // Hex digits: always UTF-8.
    InlineText::from(std::str::from_utf8(&s).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for t in [HRESULTS, RPC_STATUSES] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(t.iter().all(|e| !e.1.is_empty() && e.2.ends_with('.')));
        }
    }

    #[test]
    fn every_spec_code_is_named() {
        let expected = [
            (0xC004F038, "SL_E_VL_NOT_ENOUGH_COUNT"),
            (0xC004F039, "SL_E_VL_BINDING_SERVICE_NOT_ENABLED"),
            (0xC004F041, "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED"),
            (0xC004F042, "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH"),
            (0xC004F06C, "SL_E_VL_INVALID_TIMESTAMP"),
            (0xC004F074, "SL_E_VL_BINDING_SERVICE_UNAVAILABLE"),
            (0x8007232A, "DNS_ERROR_RCODE_SERVER_FAILURE"),
            (0x8007232B, "DNS_ERROR_RCODE_NAME_ERROR"),
            (0x8007251D, "DNS_INFO_NO_RECORDS"),
            (0x800706BA, "RPC_S_SERVER_UNAVAILABLE"),
            (0x8007000D, "ERROR_INVALID_DATA"),
            (0xC004D104, "SL_REMAPPING_SP_STATUS_INVALIDARG"),
            (0xC004F035, "SL_E_VL_NOT_WINDOWS_SLP"),
            (0xC004C008, "SL_E_CHPA_MAXIMUM_UNLOCK_EXCEEDED"),
            (0xC004F050, "SL_E_INVALID_PRODUCT_KEY"),
            (0x8007007B, "ERROR_INVALID_NAME"),
            (0x1c010003, "nca_unk_if"),
            (0x1c01000b, "nca_proto_error"),
            (0x1c010002, "nca_op_rng_error"),
            (0x000006f7, "RPC_X_BAD_STUB_DATA"),
            (0x000006d1, "RPC_S_PROCNUM_OUT_OF_RANGE"),
            (0x00000005, "ERROR_ACCESS_DENIED"),
            (0x1c00001b, "nca_s_fault_remote_no_memory"),
            (0x1c000001, "nca_s_fault_int_div_by_zero"),
        ];
        for (code, name) in expected {
            assert_eq!(describe(code).map(|d| d.0), Some(name), "{code:#x}");
        }
        assert!(describe(0xC004F042).unwrap().1.contains("cannot be used"));
        assert!(describe_hresult(0x1c010003).is_none());
        assert!(describe_fault(0xC004F042).is_none());
        assert_eq!(describe(0), None);
        assert_eq!(describe(0xDEADBEEF), None);
        assert_eq!(format_code(0xc004f042), "0xC004F042");
        assert_eq!(format_code(0xd), "0x0000000D");
    }
}
