//! Microsoft GUID in wire layout (kms-protocol.md "Conventions"): Data1 u32 LE, Data2 u16 LE,
//! Data3 u16 LE, Data4 8 raw bytes. Stored as the 16 wire bytes; printed in lower-case canonical form.

use std::fmt;

use arrayvec::ArrayString;

/// A GUID as it appears on the wire (16 bytes, mixed-endian Microsoft layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID.
    pub const ZERO: Guid = Guid([0; 16]);

    /// Reads a GUID from the first 16 bytes of `b`; `None` when `b` is shorter.
    pub fn from_wire(b: &[u8]) -> Option<Guid> {
        b.get(..16)?.try_into().ok().map(Guid)
    }

    /// True when every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Parses the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    pub fn parse(s: &str) -> Option<Guid> {
        let s: &[u8; 36] = s.as_bytes().try_into().ok()?;
        if s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
            return None;
        }
        // The groups (8, 4, 4, 4, 12 digits) are even: every byte is two digits at `TEXT_AT`.
        let mut hex = [0u8; 16];
        for (h, &at) in hex.iter_mut().zip(&TEXT_AT) {
            *h = hexval(s[at])? << 4 | hexval(s[at + 1])?;
        }
        // Text order is big-endian per field; the wire swaps the first three fields.
        let mut w = hex;
        w[0..4].reverse();
        w[4..6].reverse();
        w[6..8].reverse();
        Some(Guid(w))
    }
}

/// Where the two hex digits of each text-order byte stand in the canonical text.
const TEXT_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Guid {
    /// Lower-case canonical text, `55c92734-d682-4d71-983e-d6ec3f16059f`, in a stack buffer:
    /// GUIDs are formatted several times per KMS event, and sixteen `{:02x}` arguments cost about
    /// a fifth of a KMS-only run (benches/stages.rs).
    pub fn text_bytes(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // Text order of the wire bytes (Data1, Data2, Data3 are little-endian on the wire), and
        // where each byte's two digits go in the text.
        const ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut s = [b'-'; 36];
        for (&k, &at) in ORDER.iter().zip(&TEXT_AT) {
            let b = self.0[k];
            s[at] = HEX[usize::from(b >> 4)];
            s[at + 1] = HEX[usize::from(b & 15)];
        }
        s
    }

    /// The canonical text as a `String` (no `core::fmt`: `to_string` costs several times more).
    pub fn text(&self) -> String {
        // Hex digits and dashes: always UTF-8.
        std::str::from_utf8(&self.text_bytes())
            .unwrap_or_default()
            .to_owned()
    }

    /// The canonical text held inline (no heap allocation).
    pub fn inline_text(&self) -> GuidText {
        GuidText::from(*self)
    }

    /// Appends the canonical text to `out` (no `core::fmt`).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.text_bytes());
    }
}

/// A GUID's canonical text held inline (no heap): the GUID fields of `kms` events, several per
/// call, were a `String` each. See [`InlineText`].
pub type GuidText = InlineText<36>;

/// Short text held inline (no heap) up to `N` bytes, on the heap beyond: the bounded text fields
/// of `kms` events (GUIDs, dates), built per call, were a `String` each. Derefs to `str`,
/// serialises as the string, and compares, orders and hashes as the string does. `Default` is the
/// empty string, like `String`'s. Built from any text too (hand-made events in tests, hostile-text
/// checks).
#[derive(Clone, Default)]
pub struct InlineText<const N: usize>(TextRepr<N>);

#[derive(Clone)]
enum TextRepr<const N: usize> {
    Inline(ArrayString<N>),
    Heap(Box<str>),
}

impl<const N: usize> Default for TextRepr<N> {
    fn default() -> TextRepr<N> {
        TextRepr::Inline(ArrayString::new())
    }
}

impl<const N: usize> InlineText<N> {
    /// The text (no UTF-8 check here: `ArrayString` holds a validated `str`).
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TextRepr::Inline(s) => s.as_str(),
            TextRepr::Heap(s) => s,
        }
    }

    /// Replaces the text (no allocation when the new text fits inline).
    pub fn set(&mut self, s: &str) {
        if let TextRepr::Inline(a) = &mut self.0 {
            a.clear();
            if a.try_push_str(s).is_ok() {
                return;
            }
        }
        *self = InlineText::from(s);
    }

    /// Whether the text is held inline (not on the heap).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, TextRepr::Inline(_))
    }
}

// Sets and maps of these are searched with a `&str` (equality and order are the text's).
impl<const N: usize> std::borrow::Borrow<str> for InlineText<N> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<Guid> for GuidText {
    fn from(g: Guid) -> GuidText {
        // Hex digits and dashes: always UTF-8 (checked once here, not at each use).
        InlineText(TextRepr::Inline(
            ArrayString::from_byte_string(&g.text_bytes()).unwrap_or_default(),
        ))
    }
}

impl<const N: usize> InlineText<N> {
    /// The `Display` text of `v`, inline when it fits in `N` bytes (one `write_str` for the
    /// types that format themselves into a stack buffer, such as `Rfc3339`).
    pub fn display(v: &impl fmt::Display) -> InlineText<N> {
        use fmt::Write as _;
        let mut a = ArrayString::<N>::new();
        match write!(a, "{v}") {
            Ok(()) => InlineText(TextRepr::Inline(a)),
            // Longer than `N` (not expected for the bounded fields this holds): on the heap.
            Err(_) => InlineText(TextRepr::Heap(v.to_string().into())),
        }
    }
}

/// The UTF-16 text fields of KMS messages (workstation name, ePID), inline up to 64 bytes: every
/// ASCII workstation name (at most 64 units on the wire) and every well-formed ASCII ePID (at
/// most 63 units) fits; longer UTF-8 text (non-ASCII names, hostile ePID sizes) goes to the heap.
pub type WireText = InlineText<64>;

/// An RFC 3339 time to the second (`2026-11-23T15:10:00Z`, 20 bytes; 21 for the FILETIME years
/// past 9999), inline.
pub type TimeText = InlineText<24>;

impl<const N: usize> From<&str> for InlineText<N> {
    fn from(s: &str) -> InlineText<N> {
        InlineText(match ArrayString::from(s) {
            Ok(a) => TextRepr::Inline(a),
            Err(_) => TextRepr::Heap(s.into()),
        })
    }
}

impl<const N: usize> From<String> for InlineText<N> {
    fn from(s: String) -> InlineText<N> {
        InlineText::from(s.as_str())
    }
}

impl<const N: usize> std::ops::Deref for InlineText<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for InlineText<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq for InlineText<N> {
    fn eq(&self, other: &InlineText<N>) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for InlineText<N> {}

impl<const N: usize> PartialEq<str> for InlineText<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for InlineText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> PartialEq<String> for InlineText<N> {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> PartialOrd for InlineText<N> {
    fn partial_cmp(&self, other: &InlineText<N>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for InlineText<N> {
    fn cmp(&self, other: &InlineText<N>) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl<const N: usize> std::hash::Hash for InlineText<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<const N: usize> fmt::Display for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> serde::Serialize for InlineText<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.text_bytes();
        f.write_str(std::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_layout_matches_spec_example() {
        // kms-protocol.md Conventions: 55c92734-d682-4d71-983e-d6ec3f16059f
        let wire = [
            0x34, 0x27, 0xc9, 0x55, 0x82, 0xd6, 0x71, 0x4d, 0x98, 0x3e, 0xd6, 0xec, 0x3f, 0x16,
            0x05, 0x9f,
        ];
        let g = Guid::from_wire(&wire).unwrap();
        assert_eq!(g.to_string(), "55c92734-d682-4d71-983e-d6ec3f16059f");
        assert_eq!(Guid::parse("55C92734-D682-4D71-983E-D6EC3F16059F"), Some(g));
        assert_eq!(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059"), None);
        assert_eq!(Guid::parse("55c92734xd682-4d71-983e-d6ec3f16059f"), None);
        assert_eq!(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059fa"), None);
        assert_eq!(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16-59f"), None);
        assert_eq!(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059g"), None);
        assert!(Guid::ZERO.is_zero());
        assert!(Guid::from_wire(&wire[..15]).is_none());
    }

    #[test]
    fn display_matches_field_by_field_formatting() {
        for seed in [0u8, 0x0f, 0x5a, 0xf0, 0xff] {
            let b: [u8; 16] =
                std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 17));
            let expect = format!(
                "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                b[3],
                b[2],
                b[1],
                b[0],
                b[5],
                b[4],
                b[7],
                b[6],
                b[8],
                b[9],
                b[10],
                b[11],
                b[12],
                b[13],
                b[14],
                b[15]
            );
            assert_eq!(Guid(b).to_string(), expect);
            assert_eq!(Guid(b).text(), expect);
            let mut out = Vec::new();
            Guid(b).write_to(&mut out);
            assert_eq!(out, expect.as_bytes());
            assert_eq!(Guid::parse(&expect), Some(Guid(b)));
        }
    }
}
