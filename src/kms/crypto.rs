//! KMS block ciphers and MACs (kms-protocol.md §2.4–§2.7).
//!
//! Three fixed, public keys:
//!
//! * v4: Rijndael with a 128-bit block and a **160-bit key** (Nk = 5, Nr = 11), used only for the
//!   CBC-MAC of §2.5 (encryption direction only);
//! * v5: stock AES-128 (§2.4);
//! * v6: AES-128 whose expanded key has three bytes flipped (`RK4[0] ^= 0x73`, `RK6[0] ^= 0x09`,
//!   `RK8[0] ^= 0xE4`, §2.4).
//!
//! All key schedules are computed at compile time (`const fn`), including the
//! InvMixColumns-transformed decryption schedules of the FIPS-197 "equivalent inverse cipher"
//! (§5.3.5). The rounds themselves run on the `aes::hazmat` round functions, which use AES-NI /
//! ARMv8 instructions when the CPU has them and a constant-time software fallback otherwise.
//! Nothing here allocates; nothing expands a key at run time.

use std::sync::LazyLock;

use aes::cipher::array::Array;
use aes::cipher::{BlockCipherDecrypt, KeyInit};
use aes::hazmat::{
    Block, Block8, cipher_round, equiv_inv_cipher_round, equiv_inv_cipher_round_par,
    inv_mix_columns, mix_columns,
};
use sha2::block_api::compress256;

/// Cipher block size in bytes.
pub const BLOCK: usize = 16;

/// v4 MAC key (20 bytes, Rijndael-160), §2.4.
pub const V4_KEY: [u8; 20] = [
    0x05, 0x3D, 0x83, 0x07, 0xF9, 0xE5, 0xF0, 0x88, 0xEB, 0x5E, 0xA6, 0x68, 0x6C, 0xF0, 0x37, 0xC7,
    0xE4, 0xEF, 0xD2, 0xD6,
];
/// v5 encryption key (standard AES-128), §2.4.
pub const V5_KEY: [u8; 16] = [
    0xCD, 0x7E, 0x79, 0x6F, 0x2A, 0xB2, 0x5D, 0xCB, 0x55, 0xFF, 0xC8, 0xEF, 0x83, 0x64, 0xC4, 0x70,
];
/// v6 encryption key (AES-128 with the modified key schedule), §2.4.
pub const V6_KEY: [u8; 16] = [
    0xA9, 0x4A, 0x41, 0x95, 0xE2, 0x01, 0x43, 0x2D, 0x9B, 0xCB, 0x46, 0x04, 0x05, 0xD8, 0x4A, 0x21,
];

/// The three v6 key-schedule modifications of §2.4: (round key index, XOR into its byte 0).
pub const V6_SCHEDULE_XORS: [(usize, u8); 3] = [(4, 0x73), (6, 0x09), (8, 0xE4)];

/// HMAC time-slot constants of §2.7: T = ((time / C1) · C2 + C3) mod 2^64.
pub const V6_HMAC_C1: u64 = 0x0000_0022_8168_89BD;
/// See [`V6_HMAC_C1`].
pub const V6_HMAC_C2: u64 = 0x0000_0020_8CBA_B5ED;
/// See [`V6_HMAC_C1`].
pub const V6_HMAC_C3: u64 = 0x3156_CD5A_C628_477A;

// ------------------------------------------------------------------------------------------------
// Compile-time tables and key schedules
// ------------------------------------------------------------------------------------------------

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

/// The AES S-box, derived (multiplicative inverse + affine map, FIPS-197 §5.1.1).
const SBOX: [u8; 256] = {
    let mut s = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // inverse = x^254
        let b = x as u8;
        let mut inv = 1u8;
        let mut i = 0;
        while i < 254 {
            inv = gmul(inv, b);
            i += 1;
        }
        if b == 0 {
            inv = 0;
        }
        s[x] = inv
            ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63;
        x += 1;
    }
    s
};

/// Rijndael key expansion for `nk` 32-bit key words into `R` round keys (R = Nr + 1).
/// Valid for Nk ≤ 6 (no extra SubWord step), which covers Nk = 4 (AES-128) and Nk = 5 (v4).
const fn expand_key<const R: usize>(key: &[u8], nk: usize) -> [[u8; 16]; R] {
    let total = 4 * R;
    let mut w = [[0u8; 4]; 64];
    let mut i = 0;
    while i < nk {
        w[i] = [key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]];
        i += 1;
    }
    let mut rcon = 1u8;
    while i < total {
        let mut t = w[i - 1];
        if i % nk == 0 {
            t = [
                SBOX[t[1] as usize] ^ rcon,
                SBOX[t[2] as usize],
                SBOX[t[3] as usize],
                SBOX[t[0] as usize],
            ];
            rcon = gmul(rcon, 2);
        }
        let p = w[i - nk];
        w[i] = [p[0] ^ t[0], p[1] ^ t[1], p[2] ^ t[2], p[3] ^ t[3]];
        i += 1;
    }
    let mut out = [[0u8; 16]; R];
    let mut r = 0;
    while r < R {
        let mut j = 0;
        while j < 16 {
            out[r][j] = w[4 * r + j / 4][j % 4];
            j += 1;
        }
        r += 1;
    }
    out
}

/// Standard AES-128 key expansion (FIPS-197 §5.2): 11 round keys of 16 bytes.
pub const fn aes128_expand_key(key: &[u8; 16]) -> [[u8; 16]; 11] {
    expand_key::<11>(key, 4)
}

/// InvMixColumns of one 16-byte state (column-major, as on the wire).
const fn inv_mix_columns_const(s: [u8; 16]) -> [u8; 16] {
    let mut o = [0u8; 16];
    let mut c = 0;
    while c < 4 {
        let a = [s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]];
        let mut r = 0;
        while r < 4 {
            o[4 * c + r] = gmul(a[r], 0x0e)
                ^ gmul(a[(r + 1) % 4], 0x0b)
                ^ gmul(a[(r + 2) % 4], 0x0d)
                ^ gmul(a[(r + 3) % 4], 0x09);
            r += 1;
        }
        c += 1;
    }
    o
}

/// Round keys for the equivalent inverse cipher: middle keys through InvMixColumns.
const fn decryption_schedule<const R: usize>(enc: &[[u8; 16]; R]) -> [[u8; 16]; R] {
    let mut d = *enc;
    let mut r = 1;
    while r + 1 < R {
        d[r] = inv_mix_columns_const(enc[r]);
        r += 1;
    }
    d
}

const fn to_blocks<const R: usize>(k: &[[u8; 16]; R]) -> [Block; R] {
    let mut out = [Array([0u8; 16]); R];
    let mut r = 0;
    while r < R {
        out[r] = Array(k[r]);
        r += 1;
    }
    out
}

const fn to_blocks8<const R: usize>(k: &[[u8; 16]; R]) -> [Block8; R] {
    let mut out = [Array([Array([0u8; 16]); 8]); R];
    let mut r = 0;
    while r < R {
        out[r] = Array([Array(k[r]); 8]);
        r += 1;
    }
    out
}

const V4_RK: [[u8; 16]; 12] = expand_key::<12>(&V4_KEY, 5);
const V5_RK: [[u8; 16]; 11] = aes128_expand_key(&V5_KEY);
const V6_RK: [[u8; 16]; 11] = {
    let mut k = aes128_expand_key(&V6_KEY);
    let mut i = 0;
    while i < V6_SCHEDULE_XORS.len() {
        let (r, x) = V6_SCHEDULE_XORS[i];
        k[r][0] ^= x;
        i += 1;
    }
    k
};
// The v6 XORs are applied before the InvMixColumns transformation (§2.4).
const V5_DRK: [[u8; 16]; 11] = decryption_schedule(&V5_RK);
const V6_DRK: [[u8; 16]; 11] = decryption_schedule(&V6_RK);

static V4_ENC: [Block; 12] = to_blocks(&V4_RK);
static V4_DEC: [Block; 12] = to_blocks(&decryption_schedule(&V4_RK));
static V5_ENC: [Block; 11] = to_blocks(&V5_RK);
static V6_ENC: [Block; 11] = to_blocks(&V6_RK);
static V5_DEC: [Block; 11] = to_blocks(&V5_DRK);
static V6_DEC: [Block; 11] = to_blocks(&V6_DRK);
static V5_DEC8: [Block8; 11] = to_blocks8(&V5_DRK);
static V6_DEC8: [Block8; 11] = to_blocks8(&V6_DRK);

/// The v5 cipher as the aes crate's AES-128, whose own AES-NI code keeps the state and round keys
/// in registers through all rounds and ends on AESDECLAST: half the time of the hazmat rounds
/// (which load and store the state at every round, and emulate the last round with three
/// InvMixColumns). v6's modified schedule has no such stock cipher.
static V5_AES: LazyLock<aes::Aes128> = LazyLock::new(|| aes::Aes128::new(&V5_KEY.into()));

static ZERO_BLOCK: Block = Array([0u8; 16]);
static ZERO_BLOCK8: Block8 = Array([Array([0u8; 16]); 8]);

// ------------------------------------------------------------------------------------------------
// Generic Rijndael-128-block rounds on the hazmat primitives
// ------------------------------------------------------------------------------------------------

/// `a ^= b`, as one 128-bit operation (a byte loop here was several percent of a run).
#[inline(always)]
fn xor_block(a: &mut Block, b: &Block) {
    a.0 = (u128::from_ne_bytes(a.0) ^ u128::from_ne_bytes(b.0)).to_ne_bytes();
}

/// Encrypts one block with the given round keys (R = Nr + 1).
#[inline]
fn encrypt_with(rk: &[Block], block: &mut Block) {
    let Some((first, rest)) = rk.split_first() else {
        return;
    };
    let Some((last, middle)) = rest.split_last() else {
        return;
    };
    xor_block(block, first);
    for k in middle {
        cipher_round(block, k);
    }
    // Final round has no MixColumns: AESENC with a zero key, undo MixColumns, add the key.
    cipher_round(block, &ZERO_BLOCK);
    inv_mix_columns(block);
    xor_block(block, last);
}

/// Decrypts one block with an equivalent-inverse-cipher schedule (R = Nr + 1).
#[inline]
fn decrypt_with(drk: &[Block], block: &mut Block) {
    let Some((first, rest)) = drk.split_first() else {
        return;
    };
    let Some((last, middle)) = rest.split_last() else {
        return;
    };
    xor_block(block, last);
    for k in middle.iter().rev() {
        equiv_inv_cipher_round(block, k);
    }
    // Final round has no InvMixColumns: AESDEC with a zero key, redo MixColumns, add the key.
    equiv_inv_cipher_round(block, &ZERO_BLOCK);
    mix_columns(block);
    xor_block(block, first);
}

/// Decrypts `N` batches of 8 blocks with equivalent-inverse-cipher schedules (`drk8[i]` for batch
/// `i`), round by round across the batches.
///
/// Every round function call stores its lanes and the next one loads them back, so one batch is a
/// chain of dependent calls whose latency, not the AES units, sets the pace. The batches are
/// independent chains: issued side by side, they overlap in the out-of-order core, and two to four
/// batches cost little more than one. (Inlined, with the lanes indexed by constants: how the
/// compiler split the crate otherwise decided whether these loops were unrolled.)
#[inline(always)]
fn decrypt_batches<const N: usize>(drk8: [&[Block8; 11]; N], batches: &mut [Block8; N]) {
    for (b, k) in batches.iter_mut().zip(drk8) {
        for i in 0..8 {
            xor_block(&mut b[i], &k[10][i]);
        }
    }
    for r in (1..10).rev() {
        for (b, k) in batches.iter_mut().zip(drk8) {
            equiv_inv_cipher_round_par(b, &k[r]);
        }
    }
    for b in batches.iter_mut() {
        equiv_inv_cipher_round_par(b, &ZERO_BLOCK8);
    }
    // Final round has no InvMixColumns: AESDEC with a zero key, redo MixColumns, add the key.
    for (b, k) in batches.iter_mut().zip(drk8) {
        for i in 0..8 {
            mix_columns(&mut b[i]);
            xor_block(&mut b[i], &k[0][i]);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------------

/// The two KMS encryption ciphers (§2.4): v5 = AES-128, v6 = AES-128 with a modified schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KmsCipher {
    /// Protocol 5.0: standard AES-128 under [`V5_KEY`].
    V5,
    /// Protocol 6.0: AES-128 under [`V6_KEY`] with the three round-key bytes flipped.
    V6,
}

impl KmsCipher {
    /// The cipher for a KMS major version (5 or 6); `None` for v4 (MAC only) and unknown majors.
    pub fn for_major(major: u16) -> Option<KmsCipher> {
        match major {
            5 => Some(KmsCipher::V5),
            6 => Some(KmsCipher::V6),
            _ => None,
        }
    }

    /// The (possibly modified) encryption round keys RK0..RK10.
    pub fn round_keys(self) -> &'static [[u8; 16]; 11] {
        match self {
            KmsCipher::V5 => &V5_RK,
            KmsCipher::V6 => &V6_RK,
        }
    }

    fn enc(self) -> &'static [Block; 11] {
        match self {
            KmsCipher::V5 => &V5_ENC,
            KmsCipher::V6 => &V6_ENC,
        }
    }

    fn dec(self) -> &'static [Block; 11] {
        match self {
            KmsCipher::V5 => &V5_DEC,
            KmsCipher::V6 => &V6_DEC,
        }
    }

    fn dec8(self) -> &'static [Block8; 11] {
        match self {
            KmsCipher::V5 => &V5_DEC8,
            KmsCipher::V6 => &V6_DEC8,
        }
    }

    /// Encrypts one 16-byte block in place (ECB).
    pub fn encrypt_block(self, block: &mut [u8; 16]) {
        encrypt_with(self.enc(), block.into());
    }

    /// Decrypts one 16-byte block in place (ECB).
    pub fn decrypt_block(self, block: &mut [u8; 16]) {
        decrypt_with(self.dec(), block.into());
    }
}

/// Errors of the CBC helpers (lengths only; the data itself can never make them fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext is not a whole number of 16-byte blocks.
    #[error("ciphertext length {0} is not a multiple of 16")]
    NotBlockAligned(usize),
    /// The output buffer is shorter than the input.
    #[error("output buffer of {out} bytes is shorter than the {input}-byte input")]
    OutputTooShort {
        /// Input length.
        input: usize,
        /// Output length.
        out: usize,
    },
}

/// CBC decryption with an all-zero IV (§2.6): `out[..data.len()]` receives the plaintext, whose
/// first block is the sender's salt `D_k(C0)`.
///
/// Blocks are decrypted eight at a time (CBC decryption is parallel), without allocation.
pub fn cbc_decrypt_zero_iv(
    cipher: KmsCipher,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    cbc_decrypt_zero_iv_many(&mut [CbcJob { cipher, data, out }])
}

/// One message for [`cbc_decrypt_zero_iv_many`].
#[derive(Debug)]
pub struct CbcJob<'a> {
    /// The message's cipher.
    pub cipher: KmsCipher,
    /// Its ciphertext (a whole number of blocks).
    pub data: &'a [u8],
    /// Receives the plaintext in `out[..data.len()]`.
    pub out: &'a mut [u8],
}

/// Batches of 8 blocks decrypted side by side (see [`decrypt_batches`]): a v5/v6 request and its
/// response are two batches each.
const BATCHES: usize = 4;

/// [`cbc_decrypt_zero_iv`] of several messages at once, each with its own zero IV and cipher: the
/// v6 blocks of all of them go through the rounds together, up to [`BATCHES`] batches of 8 blocks
/// at a time (a batch holds blocks of one message only); v5 messages are decrypted by the stock
/// AES-128 ([`V5_AES`]). The same plaintexts as one message after the other; nothing is written
/// unless every job is well formed.
pub fn cbc_decrypt_zero_iv_many(jobs: &mut [CbcJob<'_>]) -> Result<(), CryptoError> {
    for j in jobs.iter() {
        if !j.data.len().is_multiple_of(BLOCK) {
            return Err(CryptoError::NotBlockAligned(j.data.len()));
        }
        if j.out.len() < j.data.len() {
            return Err(CryptoError::OutputTooShort {
                input: j.data.len(),
                out: j.out.len(),
            });
        }
    }
    let mut group = BatchGroup {
        batches: [ZERO_BLOCK8; BATCHES],
        keys: [&V5_DEC8; BATCHES],
        slots: [(0, 0); BATCHES],
        len: 0,
    };
    for job in 0..jobs.len() {
        let Some(data) = jobs.get(job).map(|j| j.data) else {
            break;
        };
        let cipher = jobs.get(job).map_or(KmsCipher::V5, |j| j.cipher);
        if cipher == KmsCipher::V5 {
            if let Some(j) = jobs.get_mut(job) {
                cbc_decrypt_v5(j.data, j.out);
            }
            continue;
        }
        for (first, chunk) in data.chunks(8 * BLOCK).enumerate() {
            group.add(cipher, job, 8 * first, chunk);
            if group.len == BATCHES {
                group.run(jobs);
            }
        }
    }
    group.run(jobs);
    Ok(())
}

/// v5 CBC decryption (zero IV) of `data` into `out[..data.len()]` (checked by the caller: `data`
/// block aligned, `out` long enough) with [`V5_AES`].
fn cbc_decrypt_v5(data: &[u8], out: &mut [u8]) {
    let Some(out) = out.get_mut(..data.len()) else {
        return;
    };
    let (ct, _) = Array::slice_as_chunks(data);
    let (pt, _) = Array::slice_as_chunks_mut(out);
    // Same number of blocks: cannot fail.
    if V5_AES.decrypt_blocks_b2b(ct, pt).is_err() {
        return;
    }
    let mut prev = 0u128;
    for (p, c) in pt.iter_mut().zip(ct) {
        p.0 = (u128::from_ne_bytes(p.0) ^ prev).to_ne_bytes();
        prev = u128::from_ne_bytes(c.0);
    }
}

/// The batches of [`cbc_decrypt_zero_iv_many`] waiting for their rounds.
struct BatchGroup {
    batches: [Block8; BATCHES],
    keys: [&'static [Block8; 11]; BATCHES],
    /// Per batch: the job and the index of its first block in the job's data.
    slots: [(usize, usize); BATCHES],
    len: usize,
}

impl BatchGroup {
    /// Queues up to 8 ciphertext blocks of `job` starting at its block `first`.
    fn add(&mut self, cipher: KmsCipher, job: usize, first: usize, chunk: &[u8]) {
        let (Some(batch), Some(key), Some(slot)) = (
            self.batches.get_mut(self.len),
            self.keys.get_mut(self.len),
            self.slots.get_mut(self.len),
        ) else {
            return;
        };
        for (lane, c) in batch.iter_mut().zip(chunk.chunks_exact(BLOCK)) {
            lane.copy_from_slice(c);
        }
        *key = cipher.dec8();
        *slot = (job, first);
        self.len += 1;
    }

    /// Decrypts the queued batches and writes their plaintexts (decrypted block ⊕ previous
    /// ciphertext block, or the zero IV) into the jobs' outputs; empties the group.
    fn run(&mut self, jobs: &mut [CbcJob<'_>]) {
        let n = std::mem::take(&mut self.len);
        match n {
            1 => run_n::<1>(&self.keys, &mut self.batches),
            2 => run_n::<2>(&self.keys, &mut self.batches),
            3 => run_n::<3>(&self.keys, &mut self.batches),
            4 => run_n::<4>(&self.keys, &mut self.batches),
            _ => return,
        }
        for (batch, &(job, first)) in self.batches.iter().zip(&self.slots).take(n) {
            let Some(CbcJob { data, out, .. }) = jobs.get_mut(job) else {
                continue;
            };
            let start = first * BLOCK;
            // The ciphertext block before each block of the batch (the zero IV before block 0).
            let mut prev = match first.checked_sub(1) {
                Some(p) => arr16(data, p * BLOCK),
                None => 0,
            };
            let ct = data.get(start..).unwrap_or(&[]);
            let pt = out.get_mut(start..).unwrap_or(&mut []);
            for ((lane, c), p) in batch
                .iter()
                .zip(ct.chunks_exact(BLOCK))
                .zip(pt.chunks_exact_mut(BLOCK))
            {
                p.copy_from_slice(&(u128::from_ne_bytes(lane.0) ^ prev).to_ne_bytes());
                prev = arr16(c, 0);
            }
        }
    }
}

/// [`decrypt_batches`] of the first `N` batches.
#[inline(always)]
fn run_n<const N: usize>(keys: &[&'static [Block8; 11]; BATCHES], batches: &mut [Block8; BATCHES]) {
    if let (Some(k), Some(b)) = (keys.first_chunk::<N>(), batches.first_chunk_mut::<N>()) {
        decrypt_batches(*k, b);
    }
}

/// The 16 bytes at `off` as one integer (zero when out of range), for the chaining XOR: one
/// operation per block rather than sixteen byte operations.
#[inline(always)]
fn arr16(b: &[u8], off: usize) -> u128 {
    b.get(off..off.wrapping_add(BLOCK))
        .and_then(|s| <[u8; BLOCK]>::try_from(s).ok())
        .map_or(0, u128::from_ne_bytes)
}

/// Encrypts one block in place with Rijndael-160 under [`V4_KEY`] (§2.4, 11 rounds).
pub fn v4_encrypt_block(block: &mut [u8; 16]) {
    encrypt_with(&V4_ENC, block.into());
}

/// The v4 round keys RK0..RK11 (Rijndael, Nk = 5, Nr = 11).
pub fn v4_round_keys() -> &'static [[u8; 16]; 12] {
    &V4_RK
}

/// Block `i` of the v4 MAC input of `msg` (§2.5): its whole blocks, then the rest of it with
/// `0x80` and zeros (a whole block of padding when `msg` is block aligned); `msg.len() / 16 + 1`
/// blocks in all.
fn v4_mac_block(msg: &[u8], i: usize) -> Block {
    let start = i.saturating_mul(BLOCK);
    let mut b = [0u8; BLOCK];
    match msg.get(start..start.saturating_add(BLOCK)) {
        Some(whole) => b.copy_from_slice(whole),
        None => {
            let rem = msg.get(start..).unwrap_or(&[]);
            if let Some(head) = b.get_mut(..rem.len()) {
                head.copy_from_slice(rem);
            }
            if let Some(pad) = b.get_mut(rem.len()) {
                *pad = 0x80;
            }
        }
    }
    Array(b)
}

/// What is XORed into the v4 MAC chain after the rounds of block `j - 1` of `n`: the last round
/// key, then (unless `j == n`, the end) message block `j` and the first round key.
///
/// The chain is one sequence of dependent rounds, each a call that stores the state and the next
/// loads it back, so its length is the cost: these three XORs are folded into one, computed off
/// the chain.
fn v4_mac_fold(msg: &[u8], j: usize, n: usize) -> Block {
    let mut x = V4_ENC[11];
    if j < n {
        xor_block(&mut x, &v4_mac_block(msg, j));
        xor_block(&mut x, &V4_ENC[0]);
    }
    x
}

/// The v4 MAC chain of `msg` from `state` = chain value ⊕ block `i` ⊕ first round key.
fn v4_mac_from(mut state: Block, msg: &[u8], i: usize) -> Block {
    let n = msg.len() / BLOCK + 1;
    for j in i + 1..=n {
        for k in &V4_ENC[1..11] {
            cipher_round(&mut state, k);
        }
        // Final round has no MixColumns: AESENC with a zero key, undo MixColumns.
        cipher_round(&mut state, &ZERO_BLOCK);
        inv_mix_columns(&mut state);
        xor_block(&mut state, &v4_mac_fold(msg, j, n));
    }
    state
}

/// v4 MAC (§2.5): CBC-MAC under Rijndael-160 with a zero IV over `msg ‖ 0x80 ‖ 0x00…` padded to a
/// multiple of 16. The 0x80 byte is always appended. Returns the final block.
pub fn v4_mac(msg: &[u8]) -> [u8; 16] {
    let mut state = v4_mac_block(msg, 0);
    xor_block(&mut state, &V4_ENC[0]);
    v4_mac_from(state, msg, 0).0
}

/// One v4 MAC being checked by [`v4_mac_check_pair`]: a forward chain over the first blocks and
/// a backward one from the wire value over the others.
struct MacMeet<'m> {
    msg: &'m [u8],
    /// Blocks of the MAC input (`msg.len() / 16 + 1`).
    n: usize,
    /// Blocks taken by the forward chain (the first `k`); the backward chain takes the rest.
    k: usize,
    /// Forward chain: chain value ⊕ next block ⊕ first round key (then, after `k` blocks, the
    /// chain value itself).
    fwd: Block,
    /// Backward chain: chain value ⊕ last round key (then, after `n - k` blocks, the chain value
    /// itself).
    bwd: Block,
}

impl<'m> MacMeet<'m> {
    fn new(msg: &'m [u8], wire: &[u8; 16]) -> MacMeet<'m> {
        let n = msg.len() / BLOCK + 1;
        // The backward block costs two more InvMixColumns than the forward one: the forward chain
        // takes the odd block.
        let k = n.div_ceil(2);
        let mut fwd = v4_mac_block(msg, 0);
        xor_block(&mut fwd, &V4_ENC[0]);
        let mut bwd = Array(*wire);
        if k < n {
            xor_block(&mut bwd, &V4_DEC[11]);
        }
        MacMeet {
            msg,
            n,
            k,
            fwd,
            bwd,
        }
    }

    /// What is XORed into the backward chain after decrypting into block `i`: the first round
    /// key, message block `i`, and (unless `i == k`, the end) the last round key.
    fn bwd_fold(&self, i: usize) -> Block {
        let mut x = V4_DEC[0];
        xor_block(&mut x, &v4_mac_block(self.msg, i));
        if i > self.k {
            xor_block(&mut x, &V4_DEC[11]);
        }
        x
    }
}

/// Checks the v4 MACs (§2.5) of two messages against their wire values and returns the MACs of
/// the messages: `(v4_mac(a), v4_mac(b))`.
///
/// A CBC-MAC is a chain of dependent block encryptions, whose latency is the cost. The cipher is
/// a permutation, so the chain from the zero IV reaches the wire value exactly when it meets, at
/// a middle block, the chain decrypted back from the wire value (`c[i-1] = D(c[i]) ⊕ m[i]`): both
/// halves run side by side, four independent chains for the two messages, every block processed
/// once. When they meet, the MAC is the wire value; when they do not (a tampered message, rare),
/// the MAC is computed in full, forward.
pub fn v4_mac_check_pair(
    a: &[u8],
    wire_a: &[u8; 16],
    b: &[u8],
    wire_b: &[u8; 16],
) -> ([u8; 16], [u8; 16]) {
    let mut m = [MacMeet::new(a, wire_a), MacMeet::new(b, wire_b)];
    let steps = m.iter().map(|c| c.k.max(c.n - c.k)).max().unwrap_or(0);
    for s in 0..steps {
        // Which chains still have a block (branches that stay put for whole steps).
        let f = m.each_ref().map(|c| s < c.k);
        let g = m.each_ref().map(|c| s < c.n - c.k);
        for r in 1..11 {
            for (c, _) in m.iter_mut().zip(f).filter(|x| x.1) {
                cipher_round(&mut c.fwd, &V4_ENC[r]);
            }
            for (c, _) in m.iter_mut().zip(g).filter(|x| x.1) {
                equiv_inv_cipher_round(&mut c.bwd, &V4_DEC[11 - r]);
            }
        }
        // Final rounds have no (Inv)MixColumns: AESENC / AESDEC with a zero key, then undo it.
        for (c, _) in m.iter_mut().zip(f).filter(|x| x.1) {
            cipher_round(&mut c.fwd, &ZERO_BLOCK);
            inv_mix_columns(&mut c.fwd);
            let x = v4_mac_fold(c.msg, s + 1, c.k);
            xor_block(&mut c.fwd, &x);
        }
        for (c, _) in m.iter_mut().zip(g).filter(|x| x.1) {
            equiv_inv_cipher_round(&mut c.bwd, &ZERO_BLOCK);
            mix_columns(&mut c.bwd);
            let x = c.bwd_fold(c.n - 1 - s);
            xor_block(&mut c.bwd, &x);
        }
    }
    let [ra, rb] = m.map(|c| if c.fwd == c.bwd { None } else { Some(c.msg) });
    (ra.map_or(*wire_a, v4_mac), rb.map_or(*wire_b, v4_mac))
}

/// [`v4_mac_check_pair`] of one message: `v4_mac(msg)`, found by checking it against `wire`.
pub fn v4_mac_check(msg: &[u8], wire: &[u8; 16]) -> [u8; 16] {
    // The second chain (one block) runs beside the first for free.
    v4_mac_check_pair(msg, wire, &[], &[0; 16]).0
}

/// The SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 block size in bytes.
const SHA256_BLOCK: usize = 64;

/// Finishes a SHA-256 whose `state` has absorbed `done` whole blocks with the bytes of `msg`:
/// its whole blocks straight from the slice, then the rest with the padding of FIPS 180-4 §5.1.1
/// (`0x80`, zeros, the bit length big-endian) in one or two blocks on the stack.
///
/// The messages hashed here are short (a 16-byte R, a 232-byte HMAC input): on the raw
/// compression function, a hash costs its compressions and little else, where the buffered
/// `Digest` and `Hmac` types copied every byte through their block buffer, cloned the keyed HMAC
/// state per message and re-encoded it between the inner and outer hash.
fn sha256_finish(mut state: [u32; 8], done: u64, msg: &[u8]) -> [u8; 32] {
    let (blocks, rest) = msg.as_chunks::<SHA256_BLOCK>();
    compress256(&mut state, blocks);
    let bits = done
        .wrapping_mul(SHA256_BLOCK as u64)
        .wrapping_add(msg.len() as u64)
        .wrapping_mul(8);
    let mut tail = [[0u8; SHA256_BLOCK]; 2];
    // The 0x80 byte and the 8-byte length after the rest: one block if they fit, else two.
    let n = if rest.len() < SHA256_BLOCK - 8 { 1 } else { 2 };
    let flat = tail.as_flattened_mut();
    if let Some(head) = flat.get_mut(..rest.len()) {
        head.copy_from_slice(rest);
    }
    if let Some(b) = flat.get_mut(rest.len()) {
        *b = 0x80;
    }
    if let Some(len) = flat.get_mut(n * SHA256_BLOCK - 8..n * SHA256_BLOCK) {
        len.copy_from_slice(&bits.to_be_bytes());
    }
    compress256(&mut state, tail.get(..n).unwrap_or(&[]));
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// SHA-256 (used for the v5/v6 `Hash` field and the v6 HMAC key).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha256_finish(SHA256_IV, 0, data)
}

/// The v6 HMAC time slot T of §2.7 for a ClientRequestTime FILETIME.
pub fn v6_time_slot(client_time: u64) -> u64 {
    (client_time / V6_HMAC_C1)
        .wrapping_mul(V6_HMAC_C2)
        .wrapping_add(V6_HMAC_C3)
}

/// The v6 HMAC key of §2.7: bytes 16..32 of SHA-256(T as 8 little-endian bytes).
pub fn v6_hmac_key(client_time: u64) -> [u8; 16] {
    slot_key(v6_time_slot(client_time))
}

fn slot_key(slot: u64) -> [u8; 16] {
    let h = sha256(&slot.to_le_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[16..32]);
    k
}

/// The HMAC key of one time slot with the SHA-256 states after its inner and outer pad blocks
/// (RFC 2104), so that a message costs only its own blocks and one outer block.
#[derive(Clone, Copy)]
struct V6HmacSlot {
    slot: u64,
    key: [u8; 16],
    inner: [u32; 8],
    outer: [u32; 8],
}

impl V6HmacSlot {
    fn new(slot: u64) -> V6HmacSlot {
        let key = slot_key(slot);
        let pad = |x: u8| {
            let mut b = [x; SHA256_BLOCK];
            for (b, k) in b.iter_mut().zip(key) {
                *b ^= k;
            }
            let mut state = SHA256_IV;
            compress256(&mut state, &[b]);
            state
        };
        V6HmacSlot {
            slot,
            key,
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-SHA256 of `msg` under this slot's key.
    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        sha256_finish(self.outer, 1, &sha256_finish(self.inner, 1, msg))
    }
}

thread_local! {
    /// The keyed HMAC of the last time slot seen on this thread. A slot spans about 4.1 hours
    /// (`V6_HMAC_C1` × 100 ns), so consecutive responses nearly always share it; re-deriving the
    /// key and the pad states per message cost three of the eight SHA-256 blocks of a response
    /// check.
    static V6_HMAC_CACHE: std::cell::Cell<Option<V6HmacSlot>> =
        const { std::cell::Cell::new(None) };
}

/// The keyed HMAC state of `client_time`'s slot (cached per thread).
fn v6_slot(client_time: u64) -> V6HmacSlot {
    let slot = v6_time_slot(client_time);
    V6_HMAC_CACHE.with(|c| match c.get() {
        Some(s) if s.slot == slot => s,
        _ => {
            let s = V6HmacSlot::new(slot);
            c.set(Some(s));
            s
        }
    })
}

/// Full HMAC-SHA256 of `msg` under the v6 key for `client_time`. The wire carries bytes 16..32.
pub fn v6_hmac_full(client_time: u64, msg: &[u8]) -> [u8; 32] {
    v6_slot(client_time).mac(msg)
}

/// The 16-byte v6 HMAC field value (second half of HMAC-SHA256), §2.7.
pub fn v6_hmac(client_time: u64, msg: &[u8]) -> [u8; 16] {
    v6_hmac_with_key(client_time, msg).1
}

/// [`v6_hmac_key`] and [`v6_hmac`] in one call, from one cached slot.
pub fn v6_hmac_with_key(client_time: u64, msg: &[u8]) -> ([u8; 16], [u8; 16]) {
    let s = v6_slot(client_time);
    let full = s.mac(msg);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[16..32]);
    (s.key, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h16(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    #[test]
    fn sbox_spot_values() {
        assert_eq!(SBOX[0x00], 0x63);
        assert_eq!(SBOX[0x01], 0x7c);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(SBOX[0xff], 0x16);
    }

    #[test]
    fn fips197_aes128_vector() {
        let key: [u8; 16] = h16("000102030405060708090a0b0c0d0e0f");
        let rk = aes128_expand_key(&key);
        // FIPS-197 A.1 last round key for 2b7e1516... is a different key; check C.1 result instead.
        let enc = to_blocks(&rk);
        let dec = to_blocks(&decryption_schedule(&rk));
        let mut b = Array(h16("00112233445566778899aabbccddeeff"));
        encrypt_with(&enc, &mut b);
        assert_eq!(b.0, h16("69c4e0d86a7b0430d8cdb78070b4c55a"));
        decrypt_with(&dec, &mut b);
        assert_eq!(b.0, h16("00112233445566778899aabbccddeeff"));
    }

    #[test]
    fn fips197_key_expansion_appendix_a1() {
        let rk = aes128_expand_key(&h16("2b7e151628aed2a6abf7158809cf4f3c"));
        assert_eq!(rk[1], h16("a0fafe1788542cb123a339392a6c7605"));
        assert_eq!(rk[10], h16("d014f9a8c9ee2589e13f0cc8b6630ca6"));
    }

    #[test]
    fn kat_7_6_block_ciphers() {
        let mut b = [0u8; 16];
        v4_encrypt_block(&mut b);
        assert_eq!(b, h16("933030f10e2e7782b80915d5778a4957"));

        let mut b = [0u8; 16];
        KmsCipher::V5.encrypt_block(&mut b);
        assert_eq!(b, h16("ec7c7e75b1923978eac4b2d2260235d5"));
        KmsCipher::V5.decrypt_block(&mut b);
        assert_eq!(b, [0u8; 16]);

        let mut b = [0u8; 16];
        KmsCipher::V6.encrypt_block(&mut b);
        assert_eq!(b, h16("8ca59de0c483c04aa7026a22d6dd208e"));
        KmsCipher::V6.decrypt_block(&mut b);
        assert_eq!(b, [0u8; 16]);

        let mut b = [0u8; 16];
        KmsCipher::V6.decrypt_block(&mut b);
        assert_eq!(b, h16("8a1a5b385caaff8dd0ce3913d2cbc26f"));
    }

    #[test]
    fn kat_7_6_v6_round_key_4() {
        assert_eq!(
            aes128_expand_key(&V6_KEY)[4],
            h16("7630e12e111e2b4d3f6a5901edca6094")
        );
        assert_eq!(
            KmsCipher::V6.round_keys()[4],
            h16("0530e12e111e2b4d3f6a5901edca6094")
        );
        // Only the three documented bytes differ from the standard schedule.
        let std = aes128_expand_key(&V6_KEY);
        let diffs: Vec<(usize, usize, u8)> = (0..11)
            .flat_map(|r| (0..16).map(move |j| (r, j)))
            .filter(|&(r, j)| std[r][j] != KmsCipher::V6.round_keys()[r][j])
            .map(|(r, j)| (r, j, std[r][j] ^ KmsCipher::V6.round_keys()[r][j]))
            .collect();
        assert_eq!(diffs, vec![(4, 0, 0x73), (6, 0, 0x09), (8, 0, 0xE4)]);
    }

    /// `n` deterministic test bytes (xorshift64), the state carried on in `x`.
    fn xorshift_bytes(x: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x as u8
            })
            .collect()
    }

    #[test]
    fn kat_7_6_v4_mac() {
        assert_eq!(v4_mac(&[]), h16("d144963029e2bd12f9970c9f52b27f09"));
        let m: Vec<u8> = (0u8..32).collect();
        assert_eq!(v4_mac(&m), h16("63a8205f72a50cd39be8c47bf15b1d07"));
    }

    #[test]
    fn v4_mac_check_finds_the_mac_whether_or_not_the_wire_matches() {
        let m: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for la in [
            0usize, 1, 15, 16, 17, 31, 32, 33, 47, 48, 142, 144, 236, 300,
        ] {
            for lb in [0usize, 12, 16, 31, 32, 144, 236] {
                let (a, b) = (&m[..la], &m[m.len() - lb..]);
                let (ma, mb) = (v4_mac(a), v4_mac(b));
                let mut bad_a = ma;
                bad_a[la % 16] ^= 1 << (la % 8);
                let mut bad_b = mb;
                bad_b[15 - lb % 16] ^= 0x80;
                for (wa, wb) in [
                    (ma, mb),
                    (bad_a, mb),
                    (ma, bad_b),
                    (bad_a, bad_b),
                    ([0; 16], [0; 16]),
                ] {
                    assert_eq!(v4_mac_check_pair(a, &wa, b, &wb), (ma, mb), "{la} {lb}");
                }
                assert_eq!(v4_mac_check(a, &ma), ma);
                assert_eq!(v4_mac_check(a, &bad_a), ma);
            }
        }
        // Random messages of every length up to 20 blocks, right and wrong wire values.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..=320usize {
            let msg = xorshift_bytes(&mut x, len);
            let mac = v4_mac(&msg);
            assert_eq!(v4_mac_check(&msg, &mac), mac, "{len}");
            let mut wrong = mac;
            wrong[(x % 16) as usize] ^= 1 << (x % 7);
            assert_eq!(v4_mac_check(&msg, &wrong), mac, "{len}");
        }
    }

    #[test]
    fn cbc_many_matches_one_message_at_a_time() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut bytes = |n: usize| xorshift_bytes(&mut x, n);
        for (la, lb, lc) in [
            (0, 0, 0),
            (16, 0, 16),
            (256, 256, 0),
            (256, 224, 48),
            (128, 144, 16),
            (16, 512, 80),
            (736, 16, 272),
        ] {
            let ins = [bytes(la), bytes(lb), bytes(lc)];
            let ciphers = [KmsCipher::V6, KmsCipher::V5, KmsCipher::V6];
            let want: Vec<Vec<u8>> = ins
                .iter()
                .zip(ciphers)
                .map(|(d, c)| {
                    let mut o = vec![0u8; d.len()];
                    let mut prev = [0u8; 16];
                    for (cb, ob) in d.chunks_exact(16).zip(o.chunks_exact_mut(16)) {
                        let mut blk: [u8; 16] = cb.try_into().unwrap();
                        c.decrypt_block(&mut blk);
                        for i in 0..16 {
                            ob[i] = blk[i] ^ prev[i];
                        }
                        prev = cb.try_into().unwrap();
                    }
                    o
                })
                .collect();
            let mut outs = [vec![0u8; la], vec![0u8; lb + 5], vec![0u8; lc]];
            let [o0, o1, o2] = &mut outs;
            let mut jobs = [
                CbcJob {
                    cipher: ciphers[0],
                    data: &ins[0],
                    out: o0,
                },
                CbcJob {
                    cipher: ciphers[1],
                    data: &ins[1],
                    out: o1,
                },
                CbcJob {
                    cipher: ciphers[2],
                    data: &ins[2],
                    out: o2,
                },
            ];
            cbc_decrypt_zero_iv_many(&mut jobs).unwrap();
            assert_eq!(outs[0], want[0], "{la}");
            assert_eq!(outs[1][..lb], want[1][..], "{lb}");
            assert_eq!(outs[2], want[2], "{lc}");
        }
        let (mut o1, mut o2) = ([0u8; 32], [0u8; 16]);
        let mut jobs = [
            CbcJob {
                cipher: KmsCipher::V5,
                data: &[0u8; 32],
                out: &mut o1,
            },
            CbcJob {
                cipher: KmsCipher::V5,
                data: &[0u8; 32],
                out: &mut o2,
            },
        ];
        assert!(cbc_decrypt_zero_iv_many(&mut jobs).is_err());
        assert_eq!(o1, [0u8; 32], "nothing written when a job is malformed");
    }

    #[test]
    fn v5_matches_aes_crate() {
        use aes::cipher::BlockCipherEncrypt;
        let reference = aes::Aes128::new(&V5_KEY.into());
        for seed in 0u8..40 {
            let block: [u8; 16] =
                core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
            let mut ours = block;
            KmsCipher::V5.encrypt_block(&mut ours);
            let mut theirs: Block = block.into();
            reference.encrypt_block(&mut theirs);
            assert_eq!(ours, theirs.0);
            KmsCipher::V5.decrypt_block(&mut ours);
            reference.decrypt_block(&mut theirs);
            assert_eq!(ours, block);
            assert_eq!(theirs.0, block);
        }
    }

    #[test]
    fn cbc_decrypt_matches_block_by_block() {
        for cipher in [KmsCipher::V5, KmsCipher::V6] {
            for nblocks in [1usize, 2, 7, 8, 9, 14, 16, 17] {
                let pt: Vec<u8> = (0..nblocks * 16).map(|i| (i * 13 + 5) as u8).collect();
                // CBC encrypt with zero IV.
                let mut ct = pt.clone();
                let mut prev = [0u8; 16];
                for c in ct.chunks_exact_mut(16) {
                    let mut b: [u8; 16] = c.try_into().unwrap();
                    for i in 0..16 {
                        b[i] ^= prev[i];
                    }
                    cipher.encrypt_block(&mut b);
                    c.copy_from_slice(&b);
                    prev = b;
                }
                let mut out = vec![0u8; ct.len()];
                cbc_decrypt_zero_iv(cipher, &ct, &mut out).unwrap();
                assert_eq!(out, pt, "{cipher:?} {nblocks}");
            }
        }
        let mut out = [0u8; 16];
        assert_eq!(
            cbc_decrypt_zero_iv(KmsCipher::V5, &[0u8; 15], &mut out),
            Err(CryptoError::NotBlockAligned(15))
        );
        assert!(cbc_decrypt_zero_iv(KmsCipher::V5, &[0u8; 32], &mut out).is_err());
    }

    #[test]
    fn sha256_and_hmac_match_the_sha2_and_hmac_crates() {
        use hmac::{Hmac, KeyInit, Mac};
        use sha2::Digest;
        let mut x = 0x6A09_E667_F3BC_C908u64;
        let data = xorshift_bytes(&mut x, 600);
        // Every length across the one/two padding block boundary (55, 56, 63, 64) and several
        // whole blocks.
        for len in 0..=600 {
            let m = &data[..len];
            let want: [u8; 32] = sha2::Sha256::digest(m).into();
            assert_eq!(sha256(m), want, "{len}");
        }
        for t in [0u64, 134_399_202_010_000_000, u64::MAX] {
            for len in (0..=300).chain([600]) {
                let m = &data[600 - len..];
                let mut mac =
                    <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&v6_hmac_key(t)).unwrap();
                mac.update(m);
                let want: [u8; 32] = mac.finalize().into_bytes().into();
                assert_eq!(v6_hmac_full(t, m), want, "{t} {len}");
            }
        }
    }

    #[test]
    fn v6_hmac_key_from_tv6() {
        let t = 134_399_202_010_000_000u64;
        assert_eq!(v6_time_slot(t), 0x3319_385e_ce70_3a33);
        assert_eq!(v6_hmac_key(t), h16("dc9918a80b95fae567570b3a2e112254"));
    }

    #[test]
    fn cached_hmac_matches_fresh_hmac_across_slots() {
        let msg: Vec<u8> = (0u8..232).collect();
        for t in [
            134_399_202_010_000_000u64,
            134_399_202_010_000_001,
            134_399_202_010_000_000 + V6_HMAC_C1,
            0,
            u64::MAX,
            134_399_202_010_000_000,
        ] {
            use hmac::{Hmac, KeyInit, Mac};
            let key = v6_hmac_key(t);
            let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            mac.update(&msg);
            let full: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(v6_hmac_full(t, &msg), full);
            assert_eq!(
                v6_hmac_with_key(t, &msg),
                (key, full[16..32].try_into().unwrap())
            );
            assert_eq!(v6_hmac(t, &msg), full[16..32]);
        }
    }

    #[test]
    fn v4_schedule_first_and_last_words() {
        // First round key = first 16 key bytes; RK3 starts with word w[12].
        assert_eq!(v4_round_keys()[0], V4_KEY[..16]);
        assert_eq!(v4_round_keys()[1][..4], V4_KEY[16..20]);
    }
}
