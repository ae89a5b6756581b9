//! TEST-ONLY: the DCE/RPC PDUs of kms-protocol.md section 7 (7.1 plumbing, 7.2-7.5 KMS calls),
//! copied byte for byte from the hex dumps (captured vlmcs <-> vlmcsd traffic). Hex text, decoded by [`hex`].

#![allow(dead_code)]

/// Decodes hex text, ignoring whitespace. Panics on malformed input (constants below only).
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex length");
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).expect("ascii");
            u8::from_str_radix(s, 16).expect("hex digit")
        })
        .collect()
}

/// §7.1 (a) bind, 3 context elements (NDR32 id 0, NDR64 id 1, BTFN id 2 bitmask 0x0003).
pub const BIND_3CTX: &str = "\
    05 00 0b 13 10 00 00 00 a0 00 00 00 02 00 00 00 \
    d0 16 d0 16 00 00 00 00 03 00 00 00 00 00 01 00 \
    75 21 c8 51 4e 84 50 47 b0 d8 ec 25 55 55 bc 06 \
    01 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 \
    2b 10 48 60 02 00 00 00 01 00 01 00 75 21 c8 51 \
    4e 84 50 47 b0 d8 ec 25 55 55 bc 06 01 00 00 00 \
    33 05 71 71 ba be 37 49 83 19 b5 db ef 9c cc 36 \
    01 00 00 00 02 00 01 00 75 21 c8 51 4e 84 50 47 \
    b0 d8 ec 25 55 55 bc 06 01 00 00 00 2c 1c b7 6c \
    12 98 40 45 03 00 00 00 00 00 00 00 01 00 00 00";

/// §7.1 (b) bind_ack, NDR64 enabled: 2/2 NDR32 rejected, 0/0 NDR64, 3/3 BTFN; sec_addr "1699".
pub const BIND_ACK_NDR64: &str = "\
    05 00 0c 13 10 00 00 00 6c 00 00 00 02 00 00 00 \
    d0 16 d0 16 d7 17 a8 f5 05 00 31 36 39 39 00 00 \
    03 00 00 00 02 00 02 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    33 05 71 71 ba be 37 49 83 19 b5 db ef 9c cc 36 \
    01 00 00 00 03 00 03 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00";

/// §7.1 (c) alter_context adding NDR32 on context 0.
pub const ALTER_CONTEXT_NDR32: &str = "\
    05 00 0e 13 10 00 00 00 48 00 00 00 02 00 00 00 \
    d0 16 d0 16 00 00 00 00 01 00 00 00 00 00 01 00 \
    75 21 c8 51 4e 84 50 47 b0 d8 ec 25 55 55 bc 06 \
    01 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 \
    2b 10 48 60 02 00 00 00";

/// §7.1 (d) alter_context_resp, L=0, garbage pad `31 36`, 1 result 0/0 NDR32.
pub const ALTER_CONTEXT_RESP: &str = "\
    05 00 0f 03 10 00 00 00 38 00 00 00 02 00 00 00 \
    d0 16 d0 16 d7 17 a8 f5 00 00 31 36 01 00 00 00 \
    00 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 \
    2b 10 48 60 02 00 00 00";

/// §7.1 (e) single-element bind (vlmcs -N0 -B0).
pub const BIND_1CTX: &str = "\
    05 00 0b 13 10 00 00 00 48 00 00 00 02 00 00 00 \
    d0 16 d0 16 00 00 00 00 01 00 00 00 00 00 01 00 \
    75 21 c8 51 4e 84 50 47 b0 d8 ec 25 55 55 bc 06 \
    01 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 \
    2b 10 48 60 02 00 00 00";

/// §7.1 (f) bind_ack accepting NDR32 (NDR64 disabled host).
pub const BIND_ACK_NDR32: &str = "\
    05 00 0c 13 10 00 00 00 3c 00 00 00 02 00 00 00 \
    d0 16 d0 16 dc 9b 2d bb 05 00 31 36 39 39 00 00 \
    01 00 00 00 00 00 00 00 04 5d 88 8a eb 1c c9 11 \
    9f e8 08 00 2b 10 48 60 02 00 00 00";

/// §7.1 (g) host refusal, HRESULT 0x8007000D (response PDU, NDR32 NULL referent).
pub const REFUSAL_8007000D: &str = "\
    05 00 02 03 10 00 00 00 24 00 00 00 02 00 00 00 \
    0c 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    0d 00 07 80";

/// §7.1 (h) host refusal, HRESULT 0xC004F042.
pub const REFUSAL_C004F042: &str = "\
    05 00 02 03 10 00 00 00 24 00 00 00 02 00 00 00 \
    0c 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    42 f0 04 c0";

/// §7.1 (i) fault 0x1c010003 nca_unk_if, garbage cancel_count/reserved `2d bb`.
pub const FAULT_UNK_IF: &str = "\
    05 00 03 23 10 00 00 00 20 00 00 00 02 00 00 00 \
    20 00 00 00 00 00 2d bb 03 00 01 1c 00 00 00 00";

/// §7.2 TV-4 request PDU (v4, NDR32, call 2, ctx 0), KMS bytes at 32..284.
pub const TV4_REQUEST: &str = "\
    05 00 00 03 10 00 00 00 1c 01 00 00 02 00 00 00 \
    04 01 00 00 00 00 00 00 fc 00 00 00 fc 00 00 00 \
    00 00 04 00 00 00 00 00 02 00 00 00 c0 a8 00 00 \
    34 27 c9 55 82 d6 71 4d 98 3e d6 ec 3f 16 05 9f \
    80 99 2e b9 d5 b9 21 48 9c 94 14 0f 63 2f 63 12 \
    19 52 de 7f fa fb 4a 48 82 c9 34 d1 ad 53 e8 56 \
    1e 6b 9a 3c 47 5d 2a 4f 9b 0e 7a 1c 2d 3e 4f 50 \
    19 00 00 00 00 54 4e b5 5c 7b dd 01 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 6b 00 6d 00 \
    73 00 2d 00 76 00 34 00 2d 00 63 00 6c 00 69 00 \
    65 00 6e 00 74 00 2e 00 65 00 78 00 61 00 6d 00 \
    70 00 6c 00 65 00 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 00 00 00 00 c5 f9 5b ea \
    26 65 e6 81 9e 96 f8 34 fe cf 8b 0f";

/// §7.2 TV-4 response PDU, KMS bytes at 36..196, return code 0.
pub const TV4_RESPONSE: &str = "\
    05 00 02 03 10 00 00 00 c8 00 00 00 02 00 00 00 \
    b0 00 00 00 00 00 00 00 a0 00 00 00 00 00 02 00 \
    a0 00 00 00 00 00 04 00 64 00 00 00 30 00 33 00 \
    36 00 31 00 32 00 2d 00 30 00 30 00 32 00 30 00 \
    36 00 2d 00 35 00 35 00 36 00 2d 00 31 00 32 00 \
    33 00 37 00 32 00 37 00 2d 00 30 00 33 00 2d 00 \
    31 00 30 00 33 00 33 00 2d 00 31 00 37 00 37 00 \
    36 00 33 00 2e 00 30 00 30 00 30 00 30 00 2d 00 \
    32 00 39 00 37 00 32 00 30 00 31 00 38 00 00 00 \
    1e 6b 9a 3c 47 5d 2a 4f 9b 0e 7a 1c 2d 3e 4f 50 \
    00 54 4e b5 5c 7b dd 01 32 00 00 00 78 00 00 00 \
    60 27 00 00 8a bd 70 7e 88 95 2e 22 81 ad 0b d3 \
    71 50 09 8e 00 00 00 00";

/// §7.3 TV-5 request PDU (v5, NDR32, call 2, ctx 0), KMS bytes at 32..292.
pub const TV5_REQUEST: &str = "\
    05 00 00 03 10 00 00 00 24 01 00 00 02 00 00 00 \
    0c 01 00 00 00 00 00 00 04 01 00 00 04 01 00 00 \
    00 00 05 00 88 40 91 01 37 30 ba b4 ae 7a 30 cd \
    aa 13 b7 0d 2e e4 56 71 9c e9 d4 80 2c 09 5c ac \
    c5 3c 94 95 1e eb e9 6f 03 ac d0 42 01 ca 37 66 \
    ef 88 08 5c 8c 33 80 86 1b 88 4c 1d 1f 09 3a 5c \
    f9 a9 1e 19 fd ae 42 c0 9d 7c c4 84 a1 a3 45 2f \
    69 c9 14 40 50 6a 85 25 ca 70 64 fb 65 31 c2 a1 \
    91 48 cf 1b 23 a5 97 c0 cc 7a 79 76 26 8e 99 0d \
    1b b3 14 f5 1e a5 ca 36 83 fe 6a 3c d6 13 d0 ec \
    a7 a0 79 e6 c9 67 3b 32 0f 3e 0a be a8 1b a4 d8 \
    e6 99 20 dc 47 83 22 5d a3 23 69 f7 1d 84 19 3a \
    a4 b7 1a ae 31 ce 92 37 27 9f 99 39 54 97 39 bb \
    88 c0 3e 89 db 47 e1 3f f1 f1 d7 4c 8b c2 5f 6f \
    af 53 0a 80 1c f8 e2 fd 38 18 38 06 a7 30 eb 8f \
    c2 1a c0 3f ae 31 c7 03 c5 8f 05 c2 63 d0 34 ad \
    9d 06 f1 08 ed 4d 85 b2 f7 77 9c dd 2d 6f fc d2 \
    6f 62 d4 2c b4 ea 74 94 8a ed 51 be af 5b 46 8a \
    8f a1 a8 ef";

/// §7.3 TV-5 response PDU, KMS bytes at 36..264, return code 0.
pub const TV5_RESPONSE: &str = "\
    05 00 02 03 10 00 00 00 0c 01 00 00 02 00 00 00 \
    f4 00 00 00 00 00 00 00 e4 00 00 00 00 00 02 00 \
    e4 00 00 00 00 00 05 00 88 40 91 01 37 30 ba b4 \
    ae 7a 30 cd aa 13 b7 0d e1 18 0c ee 21 8e fa b2 \
    77 48 08 5b 6f 5b 93 6b 96 05 5d 15 e0 e0 ee 8c \
    2a f9 52 31 fa cf 26 b6 bf a6 a7 fb a3 f5 49 94 \
    81 87 8d f6 ef ab 3e 19 57 22 54 5a a6 2a 1a e4 \
    72 67 3a 97 38 a3 ca a1 11 2b 3b 60 0d 65 d5 da \
    f2 85 40 4e d9 72 04 ea e4 4a c3 f4 fe d3 4a 55 \
    cf 10 ab d5 cb ec 91 84 91 fa bb f1 f5 c3 7b 67 \
    2e a3 c6 ba 9d 94 b5 68 bb 37 7f a4 29 28 db 6e \
    4a 18 02 24 a7 09 2f 34 ea 2d 95 de 0d 8e 22 8f \
    8c 32 18 0d fc 8e b3 f0 60 0d ca c0 ba 9b 36 0d \
    d6 d5 58 9b 28 86 49 82 24 23 d7 9a 6d 55 58 6e \
    72 d7 6f ac 20 a6 6e 2a aa ef 90 ee ef 28 d4 bb \
    ce bb 8f e5 bf 0f f8 5e 4f 7f fd 18 19 0f b0 9e \
    7b 05 40 db d9 56 e8 8c 00 00 00 00";

/// §7.4 TV-6a request PDU (v6, NDR32, call 2, ctx 0), KMS bytes at 32..292.
pub const TV6A_REQUEST: &str = "\
    05 00 00 03 10 00 00 00 24 01 00 00 02 00 00 00 \
    0c 01 00 00 00 00 00 00 04 01 00 00 04 01 00 00 \
    00 00 06 00 a2 25 b2 27 23 e6 34 1a 94 1c 2e f4 \
    3b d4 df 63 eb 92 b6 aa 88 3c b4 25 e1 83 70 74 \
    94 63 fa 4c 05 44 b0 03 27 b1 a2 05 f4 68 0c 43 \
    a1 e7 46 64 3d e0 b7 be 1e 3a 60 91 31 20 82 88 \
    9b ab 91 43 9e b0 a4 8a b1 5f 70 d8 96 8f bc d5 \
    95 d6 c8 8a 6e af 8e 60 53 b7 99 59 f6 f5 e6 eb \
    d2 59 70 7f cf a0 35 39 c3 18 c5 6b 23 96 5a 28 \
    00 3a c8 a3 2d 39 c9 94 9a c7 61 3e 47 83 28 f7 \
    3b e6 c9 ec 9e 5f a2 c7 e4 89 ef af 44 a6 49 e0 \
    c0 56 00 f8 ea 1c 11 5b 91 58 ec 5b ad 08 26 b5 \
    69 84 16 a7 3c b7 6f b3 16 2a f8 bf c3 a7 df f1 \
    37 89 60 16 4d ce 13 ee d7 16 ae 7b a8 dc db 83 \
    2f 2c 03 09 47 3f fd d6 3d bb cf b6 bd 7f 0e b3 \
    e5 7b 6c ad 4e c8 ef 6a 61 02 5d 0f 75 d0 43 61 \
    9c f5 25 c7 ab 16 3e c3 64 e0 06 95 85 72 29 87 \
    bb 5c 78 a9 d3 6f 00 e3 23 81 85 a8 d5 54 45 3e \
    1b f9 1c d1";

/// §7.4 TV-6a response PDU, KMS bytes at 36..296, return code 0.
pub const TV6A_RESPONSE: &str = "\
    05 00 02 03 10 00 00 00 2c 01 00 00 02 00 00 00 \
    14 01 00 00 00 00 00 00 04 01 00 00 00 00 02 00 \
    04 01 00 00 00 00 06 00 6c 67 d9 a7 7c f3 9a a2 \
    2b 64 e2 66 19 5e d2 74 ac f6 2c 4a 74 90 5e 4e \
    2b 7f f6 dc c8 70 be c7 09 0e f8 3a 08 be 3f 51 \
    dd 78 c4 78 9c b3 ba 67 05 68 20 a9 e9 7e 68 ab \
    78 31 41 34 be f7 6b 71 3f d7 66 d9 cc 63 4a 3f \
    1b 66 3c 12 ec 5f 22 68 12 d1 a5 3f b6 f9 96 aa \
    89 be 58 57 ae d3 90 e6 ed b1 21 86 b2 d9 0b 9c \
    19 41 a5 b9 65 46 56 3b 99 74 2c 9a a9 51 55 7c \
    fb bf a9 96 a4 45 8e 61 3c bf 3a b5 f8 8a 05 e4 \
    d9 b7 b3 ca 1e 88 a9 ea 8f 5a a5 0e b2 79 11 23 \
    ce 0e 27 79 f8 ed a4 cd 80 c8 2c 0b 49 a3 4e 36 \
    11 15 47 5d 0d 83 30 fb 85 b7 49 3b 86 e4 d1 06 \
    79 ca 0d 9b 8a ba 27 0e 77 25 c3 44 db b5 1e f0 \
    4e db 95 04 d3 a9 05 43 c6 e5 99 59 9e 83 f3 a9 \
    fc 0f 72 06 3d 32 87 3e b7 73 14 ff d3 6c 45 b7 \
    be 30 13 3f f9 c4 c3 55 cf 43 c4 96 39 5c d2 05 \
    bc 49 3f 02 fb 95 c9 4a 00 00 00 00";

/// §7.5 TV-6b request PDU (v6, NDR64, call 3, ctx 1), KMS bytes at 40..300.
pub const TV6B_REQUEST: &str = "\
    05 00 00 03 10 00 00 00 2c 01 00 00 03 00 00 00 \
    14 01 00 00 01 00 00 00 04 01 00 00 00 00 00 00 \
    04 01 00 00 00 00 00 00 00 00 06 00 fd 8e 2a bc \
    6a c7 25 6d c6 1c cd 48 f1 61 65 90 33 6e 0e f3 \
    cf 79 6a 2e 08 7b f9 92 33 59 24 80 00 1b b8 ab \
    27 71 14 af 30 0f 99 d1 e1 32 e3 6b 1d cb 7b 38 \
    bb 6e f6 c3 0e 13 0a ff c5 47 d0 89 8d 9a f0 bb \
    60 d5 08 e1 68 d9 7a 94 5d d8 77 3f 48 60 1d 45 \
    ae 50 ed 59 b1 e9 2c 1a 1c 14 90 de 5e 7b ae 43 \
    91 a3 f8 7c 4c a0 ef 87 ef a4 4b 91 a3 95 d7 ad \
    22 a7 10 e0 12 91 3f c2 8b 8a 13 72 2b 3e 7c 0f \
    86 9a ff 89 33 db 8b 7d 6f f0 cb 0d 95 12 34 1c \
    a7 66 17 59 3d 0e 5e 86 c5 7f 7c 27 b6 ee ef 0f \
    56 6f 30 44 3a 9c c3 40 ed 89 89 cb 63 44 65 06 \
    a1 0f a9 9a 2c 89 1c 55 e0 26 c2 00 a3 56 5b 78 \
    d0 3f df 39 9f c8 17 cf b7 b1 fa ae bf b7 7f 23 \
    ef 23 ea 8e 6b f0 3b db a0 ba 8e 24 ef 60 0a 95 \
    fd f2 68 61 05 bf d8 06 7b 6d 1b 9e 5b dd 9a 9d \
    40 ad 04 8f 83 a7 fa 1a 56 44 79 30";

/// §7.5 TV-6b response PDU (NDR64), KMS bytes at 48..308, return code 0.
pub const TV6B_RESPONSE: &str = "\
    05 00 02 03 10 00 00 00 38 01 00 00 03 00 00 00 \
    20 01 00 00 01 00 00 00 04 01 00 00 00 00 00 00 \
    00 00 02 00 00 00 00 00 04 01 00 00 00 00 00 00 \
    00 00 06 00 f0 48 95 3f a1 44 59 95 3c c2 71 7a \
    55 d7 df eb 38 45 57 78 e1 55 63 e1 6a b1 a0 d5 \
    ca 34 d7 aa e4 df 68 2d d8 8f dc 2d 4c d6 08 00 \
    48 07 04 dd 50 da 29 90 96 40 88 af 73 de c7 ea \
    75 df 22 3f 4b 9a 4c 0b b1 14 7f 86 8c 27 49 fe \
    d6 b7 8a a6 43 66 51 97 13 6e f0 4b 3e ed cf b4 \
    38 6b cd e6 5b b4 c0 af 3d 38 17 0b 53 78 89 7b \
    32 18 fa db 6b 78 0a 4d fe ed ab 4e 18 f7 89 9c \
    9f 6b a5 9c 24 32 11 fa c4 eb 81 29 c7 39 cb 88 \
    c7 9c 22 d0 41 ba 75 cf 49 a2 57 ce b9 ad 04 68 \
    cb c4 e1 06 ec a8 a8 9b 4a 80 1a 57 3f 5c eb 4a \
    d5 bc 15 87 d0 5e fb b0 01 c1 29 c2 31 9b 92 88 \
    b6 5b 06 7f 03 49 d2 da c7 bd ca 2f 7a f7 9e c2 \
    4d b4 e5 dd 97 f7 eb 4d 2b cb 81 53 fd af 26 bb \
    94 61 b9 61 a4 d5 2e a8 15 46 61 a6 a5 46 9f 70 \
    cd 2a a0 c3 51 a3 94 a8 ce e5 95 3d 57 7d e5 c8 \
    d1 af a0 19 00 00 00 00";
