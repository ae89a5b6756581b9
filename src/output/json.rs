//! JSON writing primitives for the hand-written event serialisers: the same bytes as `serde_json`
//! (string escapes, integer and float forms), written straight into a reused `Vec<u8>` without
//! intermediate values. Strings take a fast path: a run of bytes that needs no escape (almost every
//! wire string) is copied in one go.

/// `\"` `\\` and the control characters need an escape; everything else (including DEL and
/// non-ASCII UTF-8) is copied as is, as `serde_json` does.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// True when any byte of the little-endian word `w` needs an escape. Exact as a whole (the
/// classic "has a byte less than n" / "has a zero byte" tricks can misflag a byte only above a
/// byte that really matches, which does not change the answer for the word).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

/// Appends `s` as a JSON string (quoted and escaped).
#[inline]
pub fn str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    str_body(out, s);
    out.push(b'"');
}

/// Appends the escaped contents of `s` without quotes. Clean 8-byte words are skipped whole; a
/// word that holds a byte needing an escape is looked at byte by byte.
pub fn str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
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
        if rest.len() < 8 {
            let mut w = [b' '; 8];
            w[..rest.len()].copy_from_slice(rest);
            if !word_needs_escape(u64::from_le_bytes(w)) {
                break;
            }
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

/// Appends an unsigned integer.
#[inline]
pub fn uint(out: &mut Vec<u8>, v: impl itoa::Integer) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(v).as_bytes());
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
/// (which never needs an escape).
pub fn ip(out: &mut Vec<u8>, ip: &std::net::IpAddr) {
    out.push(b'"');
    match ip {
        std::net::IpAddr::V4(a) => {
            for (i, o) in a.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, *o);
            }
        }
        std::net::IpAddr::V6(a) => {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{a}");
        }
    }
    out.push(b'"');
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
