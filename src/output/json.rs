//! JSON writing primitives for the hand-written event serialisers: the same bytes as `serde_json`
//! (string escapes, integer and float forms), written straight into a reused `Vec<u8>` without
//! intermediate values. Strings take a fast path: a run of bytes that needs no escape (almost every
//! wire string) is copied in one go.

use super::text;

/// `\"` `\\` and the control characters need an escape; everything else (including DEL and
/// non-ASCII UTF-8) is copied as is, as `serde_json` does.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// True when any byte of the little-endian word `w` needs an escape. Exact as a whole: each of
/// the three classic tests ("has a byte less than 0x20", "has a byte equal to `"`", "... to `\\`")
/// can misflag a byte only above a byte that really matches, which does not change the answer for
/// the word; and as `"` and `\\` are below 0x80, the three share the final mask of the bytes whose
/// high bit is clear.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    escape_mask(w) != 0
}

/// Non-zero when any byte of `w` needs an escape (see [`word_needs_escape`]); the masks of several
/// words can be OR-ed and tested once.
#[inline]
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let borrows =
        w.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES);
    borrows & !w & HIGH
}

/// Appends `s` as a JSON string (quoted and escaped).
#[inline]
pub fn str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    str_body(out, s);
    out.push(b'"');
}

/// Appends the escaped contents of `s` and the closing quote (the opening one is part of the key
/// literal before it, see [`kv_str!`]).
#[inline]
pub fn str_close(out: &mut Vec<u8>, s: &str) {
    str_body(out, s);
    out.push(b'"');
}

/// True when `s` holds no byte that needs a JSON escape.
pub fn is_plain(s: &str) -> bool {
    !s.bytes().any(needs_escape)
}

/// Appends a name the program itself supplies (a `&'static str`: catalog and table names, status
/// and outcome words) and the closing quote, copied without the escape scan: none of these needs
/// an escape (`tests` in `crate::event` walk the embedded product catalog and the name tables to
/// prove it; checked here in debug builds). Text from a capture must go through [`str_close`].
#[inline]
pub fn name_close(out: &mut Vec<u8>, s: &'static str) {
    debug_assert!(is_plain(s), "static name needs a JSON escape: {s:?}");
    copy_small(out, s.as_bytes());
    out.push(b'"');
}

/// Appends the escaped contents of `s` without quotes. Almost every string needs no escape: its
/// 8-byte words are tested (their results OR-ed, no branch per word) and, when none needs an
/// escape, the string is appended with [`copy_small`] (fixed-size copies the compiler inlines,
/// where a copy of the whole string is a libc `memcpy` call per string). Otherwise the escaper
/// [`str_body_escaping`] writes it. GUID text (36 bytes), several per event, has its own path
/// with fixed offsets and sizes.
#[inline]
pub fn str_body(out: &mut Vec<u8>, s: &str) {
    match <&[u8; 36]>::try_from(s.as_bytes()) {
        Ok(guid) => guid_body(out, guid),
        Err(_) => text_body(out, s.as_bytes()),
    }
}

/// [`str_body`] of 36 bytes: five overlapping words tested (vectorised), one fixed-size copy.
#[inline]
fn guid_body(out: &mut Vec<u8>, guid: &[u8; 36]) {
    let (a, rest) = guid.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let (b, rest) = rest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let (c, rest) = rest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let d = rest.first_chunk::<8>().unwrap_or(&[0; 8]);
    let e = guid.last_chunk::<8>().unwrap_or(&[0; 8]);
    let masks = [a, b, c, d, e].map(|w| escape_mask(u64::from_le_bytes(*w)));
    if masks.into_iter().fold(0, |acc, m| acc | m) == 0 {
        out.extend_from_slice(guid);
    } else {
        str_body_escaping(out, guid);
    }
}

/// [`str_body`] of any other length. Up to 64 bytes, the string is tested and copied with the
/// same two overlapping fixed-size pieces (its first and last 8, 16 or 32 bytes; a shorter one as
/// one word padded with spaces): no loop, no `memcpy` call.
#[inline(never)]
fn text_body(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    let start = out.len();
    if let (Some(head), Some(tail)) = (bytes.first_chunk::<32>(), bytes.last_chunk::<32>()) {
        if n <= 64 && pieces_mask(head) | pieces_mask(tail) == 0 {
            out.extend_from_slice(head);
            out.truncate(start + n - 32);
            out.extend_from_slice(tail);
            return;
        }
    } else if let (Some(head), Some(tail)) = (bytes.first_chunk::<16>(), bytes.last_chunk::<16>()) {
        if pieces_mask(head) | pieces_mask(tail) == 0 {
            out.extend_from_slice(head);
            out.truncate(start + n - 16);
            out.extend_from_slice(tail);
            return;
        }
    } else if let (Some(head), Some(tail)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        if pieces_mask(head) | pieces_mask(tail) == 0 {
            out.extend_from_slice(head);
            out.truncate(start + n - 8);
            out.extend_from_slice(tail);
            return;
        }
    } else {
        // Shorter than 8 bytes: written whole and cut back to the string's length.
        let w = short_word(bytes);
        if escape_mask(u64::from_le_bytes(w)) == 0 {
            out.extend_from_slice(&w);
            out.truncate(start + n);
            return;
        }
    }
    if needs_escape_any(bytes) {
        str_body_escaping(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
}

/// The OR of the escape masks of the 8-byte words of `b` (`N` a multiple of 8).
#[inline(always)]
fn pieces_mask<const N: usize>(b: &[u8; N]) -> u64 {
    b.as_chunks::<8>()
        .0
        .iter()
        .fold(0, |acc, w| acc | escape_mask(u64::from_le_bytes(*w)))
}

/// True when any byte of `b` needs an escape: the whole words' masks OR-ed, then the tail (for a
/// string of 8 bytes or more, its last 8 bytes, which overlap bytes already tested; a shorter one
/// is tested as one word padded with spaces).
#[inline]
fn needs_escape_any(b: &[u8]) -> bool {
    let (words, tail) = b.as_chunks::<8>();
    let mut acc = 0;
    for w in words {
        acc |= escape_mask(u64::from_le_bytes(*w));
    }
    if !tail.is_empty() {
        let last = match b.last_chunk::<8>() {
            Some(last) => *last,
            None => short_word(tail),
        };
        acc |= escape_mask(u64::from_le_bytes(last));
    }
    acc != 0
}

/// `b` (shorter than 8 bytes) at the start of a word padded with spaces (which need no escape).
/// Built from overlapping fixed-size pieces: for 4 to 7 bytes the first 4 and the last 4 are put
/// at their places (the second rewrites the overlap with the same bytes), likewise with 2.
#[inline]
fn short_word(b: &[u8]) -> [u8; 8] {
    let mut w = [b' '; 8];
    let n = b.len();
    if let (Some(head), Some(tail)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        w[..4].copy_from_slice(head);
        if let Some(at) = w.get_mut(n - 4..n) {
            at.copy_from_slice(tail);
        }
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<2>(), b.last_chunk::<2>()) {
        w[..2].copy_from_slice(head);
        if let Some(at) = w.get_mut(n - 2..n) {
            at.copy_from_slice(tail);
        }
    } else if let Some(&b) = b.first() {
        w[0] = b;
    }
    w
}

/// True when any byte of `b` (shorter than 8 bytes) needs an escape.
#[inline]
fn short_needs_escape(b: &[u8]) -> bool {
    word_needs_escape(u64::from_le_bytes(short_word(b)))
}

/// Appends `b` with fixed-size copies when it is at most 64 bytes long: a first and a last piece
/// of 32, 16, 8, 4 or 2 bytes that overlap in the middle (the second rewrites the overlap with the
/// same bytes). Longer slices take one `extend_from_slice`.
#[inline(always)]
pub fn copy_small(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    let start = out.len();
    if n > 64 {
        out.extend_from_slice(b);
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<32>(), b.last_chunk::<32>()) {
        out.extend_from_slice(head);
        out.truncate(start + n - 32);
        out.extend_from_slice(tail);
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<16>(), b.last_chunk::<16>()) {
        out.extend_from_slice(head);
        out.truncate(start + n - 16);
        out.extend_from_slice(tail);
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        out.extend_from_slice(head);
        out.truncate(start + n - 8);
        out.extend_from_slice(tail);
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        out.extend_from_slice(head);
        out.truncate(start + n - 4);
        out.extend_from_slice(tail);
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<2>(), b.last_chunk::<2>()) {
        out.extend_from_slice(head);
        out.truncate(start + n - 2);
        out.extend_from_slice(tail);
    } else if let Some(&b) = b.first() {
        out.push(b);
    }
}

/// The general escaper: clean 8-byte words are skipped whole; a word that holds a byte needing an
/// escape is looked at byte by byte.
#[cold]
#[inline(never)]
fn str_body_escaping(out: &mut Vec<u8>, bytes: &[u8]) {
    // `bytes[start..i]` is the pending run that needs no escape.
    let mut start = 0;
    let mut i = 0;
    loop {
        while let Some(w) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            if word_needs_escape(u64::from_le_bytes(*w)) {
                break;
            }
            i += 8;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        // A short tail: test it as one word padded with a byte that needs no escape.
        if rest.len() < 8 && !short_needs_escape(rest) {
            break;
        }
        for &b in rest.iter().take(8) {
            if needs_escape(b) {
                out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
                start = i + 1;
                escape(out, b);
            }
            i += 1;
        }
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// Appends the escape of one byte that [`needs_escape`], as `serde_json` writes it.
fn escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\x08' => out.extend_from_slice(b"\\b"),
        b'\x0c' => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// The unsigned integer types written by [`uint`].
pub trait Unsigned: Copy {
    fn to_u64(self) -> u64;
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Unsigned for $t {
            #[inline]
            fn to_u64(self) -> u64 {
                // Lossless: usize is at most 64 bits on every supported target.
                self as u64
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, usize);

/// Appends an unsigned integer (see [`text::push_u64`]: two digits at a time, one fixed-size copy).
#[inline]
pub fn uint<T: Unsigned>(out: &mut Vec<u8>, v: T) {
    text::push_u64(out, v.to_u64());
}

/// Appends a float as `serde_json` does (shortest round-trip form; `null` when not finite).
#[inline]
pub fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut buf = zmij::Buffer::new();
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends `true` or `false`.
#[inline]
pub fn bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends `,"key":` (or `"key":` when `first`); keys are constant ASCII names that need no
/// escape. Returns `false` so a caller can write `first = key(out, first, "name")`.
#[inline]
pub fn key(out: &mut Vec<u8>, first: bool, name: &str) -> bool {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    false
}

/// Appends `,"key":` (or `"key":` when `first`) for a key that may need escaping (map keys, which
/// serde writes as strings).
#[inline]
pub fn key_str(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    str(out, name);
    out.push(b':');
}

/// Appends `,"name":` for a constant key: one fixed-size copy of a literal (no escape needed: keys
/// are ASCII names).
macro_rules! key_lit {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// Appends `,"name":"…"`: the key and the opening quote as one literal, then the escaped string.
macro_rules! kv_str {
    ($out:expr, $name:literal, $v:expr) => {{
        $out.extend_from_slice(concat!(",\"", $name, "\":\"").as_bytes());
        $crate::output::json::str_close($out, $v);
    }};
}

/// Appends `,"name":"…"` for a name the program supplies (see [`name_close`]): no escape scan.
macro_rules! kv_name {
    ($out:expr, $name:literal, $v:expr) => {{
        $out.extend_from_slice(concat!(",\"", $name, "\":\"").as_bytes());
        $crate::output::json::name_close($out, $v);
    }};
}

/// [`kv_name!`] when the value is present (`Option<&'static str>`); nothing when absent.
macro_rules! opt_name {
    ($out:expr, $name:literal, $v:expr) => {
        if let Some(v) = $v {
            $crate::output::json::kv_name!($out, $name, v);
        }
    };
}

/// Appends `,"name":` and an unsigned integer.
macro_rules! kv_uint {
    ($out:expr, $name:literal, $v:expr) => {{
        $crate::output::json::key_lit!($out, $name);
        $crate::output::json::uint($out, $v);
    }};
}

/// [`kv_str!`] when the value is present (`Option<&str>`); nothing when absent.
macro_rules! opt_str {
    ($out:expr, $name:literal, $v:expr) => {
        if let Some(v) = $v {
            $crate::output::json::kv_str!($out, $name, v);
        }
    };
}

/// [`kv_uint!`] when the value is present; nothing when absent.
macro_rules! opt_uint {
    ($out:expr, $name:literal, $v:expr) => {
        if let Some(v) = $v {
            $crate::output::json::kv_uint!($out, $name, v);
        }
    };
}

pub(crate) use {key_lit, kv_name, kv_str, kv_uint, opt_name, opt_str, opt_uint};

/// Starts an object whose fields are all optional: its fields are written as elsewhere, each after
/// a comma, and [`close_fields`] turns the first comma into the opening brace (no "is this the
/// first field" test per field). Returns the position to give to [`close_fields`].
#[inline]
pub fn open_fields(out: &[u8]) -> usize {
    out.len()
}

/// Ends an object started with [`open_fields`]: `{}` when no field was written.
#[inline]
pub fn close_fields(out: &mut Vec<u8>, start: usize) {
    match out.get_mut(start) {
        // The first field's comma.
        Some(c) => *c = b'{',
        None => out.push(b'{'),
    }
    out.push(b'}');
}

/// Appends `{"ip":"…","port":…}` (an endpoint): for IPv4, the text is made in a stack buffer and
/// appended with one fixed-size copy (no formatting machinery, no variable-length copy). IPv6
/// takes the general path.
#[inline]
pub fn endpoint(out: &mut Vec<u8>, ip: &std::net::IpAddr, port: u16) {
    let std::net::IpAddr::V4(a) = ip else {
        out.extend_from_slice(b"{\"ip\":");
        self::ip(out, ip);
        out.extend_from_slice(b",\"port\":");
        uint(out, port);
        out.push(b'}');
        return;
    };
    // `{"ip":"255.255.255.255","port":65535}` is 38 bytes.
    let mut buf = [0u8; 48];
    buf[..7].copy_from_slice(b"{\"ip\":\"");
    let mut n = 7;
    if let Some(at) = buf.get_mut(7..).and_then(<[u8]>::first_chunk_mut::<16>) {
        n += text::put_ipv4(at, a.octets());
    }
    // `n` is at most 22: the literal, the 8-byte digit word and the brace end by byte 40.
    let (d, k) = text::digits8(u32::from(port));
    if let Some(at) = buf.get_mut(n..n + 18) {
        at[..9].copy_from_slice(b"\",\"port\":");
        at[9..17].copy_from_slice(&d);
        at[9 + k] = b'}';
    }
    let start = out.len();
    out.extend_from_slice(&buf);
    out.truncate(start + n + 10 + k);
}

/// The JSON text last written for each of `N` slots of keys: for parts of events that recur with
/// the same values from call to call (a product's ids and names, a KMS host's ePID, a bind's
/// transfer syntaxes), the text is copied instead of written again. Direct-mapped: a key goes to
/// the slot its hash picks, replacing what was there (a miss only writes the text). A key must
/// hold everything the text is made from; keys are small and fixed-size, so the texts are bounded
/// and their buffers are reused (no allocation per event once warm).
pub struct Memo<K, const N: usize> {
    slots: [Option<(K, Vec<u8>)>; N],
}

impl<K: PartialEq, const N: usize> Memo<K, N> {
    pub const fn new() -> Self {
        Memo {
            slots: [const { None }; N],
        }
    }

    /// Appends the text `write` makes for `key`: copied when the slot `hash` picks holds `key`,
    /// else written and kept there.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        hash: u64,
        key: K,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let Some(slot) = self.slots.get_mut((hash % N as u64) as usize) else {
            return write(out);
        };
        if let Some((k, text)) = slot
            && *k == key
        {
            out.extend_from_slice(text);
            return;
        }
        let start = out.len();
        write(out);
        let made = out.get(start..).unwrap_or_default();
        match slot {
            Some((k, text)) => {
                *k = key;
                text.clear();
                text.extend_from_slice(made);
            }
            None => *slot = Some((key, made.to_vec())),
        }
    }
}

impl<K: PartialEq, const N: usize> Default for Memo<K, N> {
    fn default() -> Self {
        Memo::new()
    }
}

/// A hash of a few words of a key, for [`Memo::write`] (Fibonacci hashing of their XOR).
#[inline]
pub fn memo_hash(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0, |h, w| h ^ w)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        >> 32
}

/// A JSON array of strings.
pub fn str_array<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    array(out, items, |s, out| str(out, s.as_ref()));
}

/// A JSON array whose elements `each` writes.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], each: impl Fn(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(t, out);
    }
    out.push(b']');
}

/// An address as serde writes it for a human-readable format: its `Display` text as a string
/// (which never needs an escape). IPv4, on every event, is formatted by hand into a stack buffer
/// and appended with one fixed-size copy.
#[inline]
pub fn ip(out: &mut Vec<u8>, ip: &std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(a) => {
            // `"255.255.255.255"` is 17 bytes.
            let mut buf = [0u8; 24];
            buf[0] = b'"';
            let mut n = 1;
            if let Some(at) = buf.get_mut(1..).and_then(<[u8]>::first_chunk_mut::<16>) {
                n += text::put_ipv4(at, a.octets());
            }
            if let Some(q) = buf.get_mut(n) {
                *q = b'"';
            }
            let start = out.len();
            out.extend_from_slice(&buf);
            out.truncate(start + n + 1);
        }
        std::net::IpAddr::V6(a) => {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "\"{a}\"");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_serde<T: serde::Serialize + ?Sized>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn strings_match_serde_json_for_every_byte_class() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii ws-015945.corp.example".into(),
            "quote \" backslash \\ slash / del \x7f".into(),
            "ünïcödé ✓ 🦀 \u{202e}rtl".into(),
            "\u{1b}[31mred\u{1b}[0m\r\n\t\x08\x0c\0".into(),
        ];
        cases.push((0u8..0x80).map(char::from).collect());
        // Every byte class at every offset of an 8-byte word, and runs around word boundaries.
        for c in (0u8..0x80).map(char::from).chain(['é', '✓', '🦀']) {
            for at in 0..17 {
                let mut s = "x".repeat(at);
                s.push(c);
                s.push_str(&"y".repeat(17 - at));
                cases.push(s);
            }
        }
        cases.push("\"".repeat(19));
        cases.push("ab\\cdefgh\n".repeat(5));
        for s in &cases {
            let mut out = Vec::new();
            str(&mut out, s);
            assert_eq!(out, via_serde(s.as_str()), "{s:?}");
        }
    }

    #[test]
    fn numbers_match_serde_json() {
        for v in [0u64, 1, 9, 10, 4_294_967_295, u64::MAX] {
            let mut out = Vec::new();
            uint(&mut out, v);
            assert_eq!(out, via_serde(&v));
        }
        for v in [
            0.0f64,
            -0.0,
            0.064,
            1.5,
            123_456.789,
            1e-7,
            1e21,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = Vec::new();
            float(&mut out, v);
            assert_eq!(out, via_serde(&v), "{v}");
        }
        let mut out = Vec::new();
        bool(&mut out, true);
        bool(&mut out, false);
        assert_eq!(out, b"truefalse");
    }

    #[test]
    fn addresses_match_serde_json() {
        let addrs: Vec<std::net::IpAddr> = [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "198.51.100.11",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1:2",
            "2001:db8:85a3::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for a in &addrs {
            let mut out = b"x".to_vec();
            ip(&mut out, a);
            assert_eq!(out[1..], via_serde(a), "{a}");
        }
        for v in 0..=255u8 {
            let a = std::net::IpAddr::from([v, 255 - v, v / 3, 7]);
            let mut out = Vec::new();
            ip(&mut out, &a);
            assert_eq!(out, via_serde(&a), "{a}");
        }
    }

    #[test]
    fn endpoints_match_serde() {
        // The same endpoints repeated and with neighbouring ports, and IPv6.
        let mut cases = Vec::new();
        for round in 0..3u16 {
            for (ip, port) in [
                ("198.51.100.11", 1688),
                ("198.19.110.149", 62912 + round * 4),
                ("10.0.0.1", 0),
                ("255.255.255.255", 65535),
                ("1.2.3.4", 1692),
                ("fe80::1:2", 1688),
            ] {
                cases.push((ip.parse::<std::net::IpAddr>().unwrap(), port));
            }
        }
        for (a, port) in cases {
            let mut out = b"x".to_vec();
            endpoint(&mut out, &a, port);
            let want = format!(
                "x{{\"ip\":{},\"port\":{port}}}",
                String::from_utf8(via_serde(&a)).unwrap()
            );
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn short_copies_and_strings_of_every_length() {
        // Every length up to past the 64-byte piece of `copy_small`.
        let text = "0123456789abcdefghijklmnopqrstuvwxyz\"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-ünï";
        for len in (0..=text.len()).filter(|&l| text.is_char_boundary(l)) {
            let s = &text[..len];
            let mut out = b"pre".to_vec();
            copy_small(&mut out, s.as_bytes());
            assert_eq!(out, format!("pre{s}").into_bytes());
            let mut out = b"pre".to_vec();
            str(&mut out, s);
            assert_eq!(out[3..], via_serde(s), "{s:?}");
            // The same with an escape at every position.
            for at in (0..len).filter(|&i| s.is_char_boundary(i) && s.is_char_boundary(i + 1)) {
                let mut t = s.to_string();
                t.replace_range(at..=at, "\n");
                let mut out = Vec::new();
                str(&mut out, &t);
                assert_eq!(out, via_serde(t.as_str()), "{t:?}");
            }
        }
    }

    #[test]
    fn keys_join_with_commas() {
        let mut out = b"{".to_vec();
        let first = key(&mut out, true, "a");
        uint(&mut out, 1u8);
        key(&mut out, first, "b");
        uint(&mut out, 2u8);
        out.push(b'}');
        assert_eq!(out, br#"{"a":1,"b":2}"#);
    }
}
