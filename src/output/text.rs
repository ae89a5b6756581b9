//! Decimal numbers and IPv4 addresses as text without `core::fmt`, shared by the JSON writer, the
//! text table and the RFC 3339 formatter (each had its own digit table and IPv4 writer). Text is
//! built in fixed-size stack buffers whole words at a time and appended with fixed-size copies
//! that the compiler inlines (a copy of a variable length is a libc `memcpy` call, dearer than the
//! formatting for such short texts).

/// The two decimal digits of every value below 100.
pub const DIGITS2: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut v = 0;
    while v < 100 {
        t[v] = [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        v += 1;
    }
    t
};

/// The two digits of `v % 100`.
#[inline]
pub fn pair(v: u32) -> [u8; 2] {
    DIGITS2[(v % 100) as usize]
}

/// The four decimal digits of `v % 10_000`, zero-padded.
#[inline]
fn digits4_padded(v: u32) -> [u8; 4] {
    let v = v % 10_000;
    let [a, b] = [pair(v / 100), pair(v)];
    [a[0], a[1], b[0], b[1]]
}

/// The decimal digits of `v % 10_000` at the start of a 4-byte word (the padded digits with the
/// leading zeros shifted out), and their number (1 to 4).
#[inline]
fn digits4(v: u32) -> (u32, usize) {
    let v = v % 10_000;
    let n = 1 + usize::from(v >= 10) + usize::from(v >= 100) + usize::from(v >= 1000);
    let w = u32::from_le_bytes(digits4_padded(v));
    // `n` is 1 to 4: the shift is 0 to 24.
    (w >> (8 * (4 - n)), n)
}

/// The eight decimal digits of `v % 100_000_000`, zero-padded.
#[inline]
pub fn digits8_padded(v: u32) -> [u8; 8] {
    let [a, b, c, d] = digits4_padded(v / 10_000);
    let [e, f, g, h] = digits4_padded(v);
    [a, b, c, d, e, f, g, h]
}

/// The decimal digits of `v` (below 10^8) at the start of a word, and their number (1 to 8).
/// Small numbers (most of them: ports, counts, sizes) take four digits or fewer: one table
/// look-up per pair of digits, no division of the whole value.
#[inline]
pub fn digits8(v: u32) -> ([u8; 8], usize) {
    debug_assert!(v < 100_000_000);
    if v < 10_000 {
        let (w, n) = digits4(v);
        (u64::from(w).to_le_bytes(), n)
    } else {
        let (hi, n) = digits4(v / 10_000);
        let lo = u32::from_le_bytes(digits4_padded(v));
        // `n` is 1 to 4: the low digits follow the high ones in the word.
        let w = u64::from(hi) | (u64::from(lo) << (8 * n));
        (w.to_le_bytes(), n + 4)
    }
}

/// Appends `v` in decimal (the same text as `Display`). Inlined: about twenty numbers per event.
#[inline(always)]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        // Single digits (context ids, reasons, channels) are common.
        out.push(b'0' + v as u8);
    } else if v < 100_000_000 {
        let (d, n) = digits8(v as u32);
        let start = out.len();
        out.extend_from_slice(&d);
        out.truncate(start + n);
    } else {
        push_large(out, v);
    }
}

/// [`push_u64`] from 10^8 (out of line: keeps the common path's function small).
#[cold]
#[inline(never)]
fn push_large(out: &mut Vec<u8>, v: u64) {
    if v < 10_000_000_000_000_000 {
        // The high part's digits, then the low eight zero-padded.
        let (d, n) = digits8((v / 100_000_000) as u32);
        let start = out.len();
        out.extend_from_slice(&d);
        out.truncate(start + n);
        out.extend_from_slice(&digits8_padded((v % 100_000_000) as u32));
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// The decimal text of every byte value followed by a dot (`"7."`, `"42."`, `"255."`), padded to
/// 4 bytes, and its length: an IPv4 octet is one fixed-size copy.
const OCTETS: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        let (h, te, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            ([b'0' + h, b'0' + te, b'0' + u, b'.'], 4)
        } else if v >= 10 {
            ([b'0' + te, b'0' + u, b'.', 0], 3)
        } else {
            ([b'0' + u, b'.', 0, 0], 2)
        };
        v += 1;
    }
    t
};

/// Writes the dotted text of an IPv4 address (`Ipv4Addr`'s `Display`) at the start of `buf` and
/// returns its length (7 to 15). The buffer has room for each octet's 4-byte copy: the bytes past
/// the text are left unspecified.
#[inline]
pub fn put_ipv4(buf: &mut [u8; 16], octets: [u8; 4]) -> usize {
    let mut n = 0;
    for o in octets {
        let (text, len) = OCTETS[usize::from(o)];
        if let Some(at) = buf.get_mut(n..n + 4) {
            at.copy_from_slice(&text);
        }
        n += usize::from(len);
    }
    // Without the last octet's dot.
    n - 1
}

/// Writes `a.b.c.d:port` (`SocketAddrV4`'s `Display`, 9 to 21 bytes) at the start of `buf` and
/// returns its length; the bytes past it are unspecified.
#[inline]
pub fn put_ipv4_port(buf: &mut [u8; 32], octets: [u8; 4], port: u16) -> usize {
    let Some(ip) = buf.first_chunk_mut::<16>() else {
        return 0;
    };
    let n = put_ipv4(ip, octets);
    let (d, k) = digits8(u32::from(port));
    // `n` is at most 15: the colon and the 8-byte digit word end by byte 24.
    if let Some(at) = buf.get_mut(n..n + 9) {
        at[0] = b':';
        at[1..].copy_from_slice(&d);
    }
    n + 1 + k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_display() {
        let mut cases: Vec<u64> = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            65_535,
            99_999_999,
            100_000_000,
            490_483_355,
            4_294_967_295,
            9_999_999_999_999_999,
            10_000_000_000_000_000,
            u64::MAX,
        ];
        // Every power of ten and its neighbours.
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            cases.extend([p - 1, p, p + 1]);
            p = next;
        }
        cases.extend((0..2000).map(|i| i * 7919));
        for v in cases {
            let mut out = b"x".to_vec();
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
            if let Ok(v32) = u32::try_from(v)
                && v32 < 100_000_000
            {
                let (d, n) = digits8(v32);
                assert_eq!(&d[..n], v.to_string().as_bytes());
                assert_eq!(digits8_padded(v32), *format!("{v:08}").as_bytes());
            }
        }
    }

    #[test]
    fn addresses_as_display() {
        let mut cases = vec![[0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 99, 100]];
        cases.extend((0..=255u8).map(|v| [v, 255 - v, v / 3, v % 10]));
        for (i, o) in cases.into_iter().enumerate() {
            let a = std::net::Ipv4Addr::from(o);
            let mut buf = [0xffu8; 16];
            let n = put_ipv4(&mut buf, o);
            assert_eq!(&buf[..n], a.to_string().as_bytes());
            for port in [0, 9, 80, 1688, 65_535, (i * 257) as u16] {
                let mut buf = [0xffu8; 32];
                let n = put_ipv4_port(&mut buf, o, port);
                let want = std::net::SocketAddrV4::new(a, port).to_string();
                assert_eq!(&buf[..n], want.as_bytes());
            }
        }
    }
}
