//! Terminal safety: strings from the wire (workstation names, DNS names, ePIDs, archive member and
//! file names) may hold control characters and escape sequences. Text output shows them escaped;
//! JSON keeps them exact (JSON escaping is enough there).

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that must not reach a terminal raw: C0 controls, DEL, C1 controls, and the
/// Unicode bidirectional overrides/isolates that can reorder what a reader sees.
fn is_unsafe(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        || c == '\\'
}

/// True when `s` is printable ASCII without a backslash (`' '` to `'~'`): such text is its own
/// escape, and its length in bytes is its width in characters. Almost every wire string (host and
/// workstation names) is; one pass over the bytes with no early exit (the compiler vectorises it).
#[inline]
pub fn is_plain(s: &str) -> bool {
    s.bytes().fold(true, |ok, b| {
        ok & (b.wrapping_sub(b' ') < 0x5f) & (b != b'\\')
    })
}

/// Escapes `s` for a terminal: control bytes as `\xNN`, other unsafe code points as `\u{NNNN}`, and
/// the backslash itself as `\\` so that escaped output is unambiguous. Borrowed when nothing changes.
pub fn escape(s: &str) -> Cow<'_, str> {
    if is_plain(s) || !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            let v = c as u32;
            if v <= 0xff {
                let _ = write!(out, "\\x{v:02x}");
            } else {
                let _ = write!(out, "\\u{{{v:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{escape, is_plain, is_unsafe};

    /// The fast test agrees with the character test: every byte value, alone and inside longer
    /// text (both sides of a vectorised block), and non-ASCII characters.
    #[test]
    fn plain_means_printable_ascii_without_backslash() {
        let mut cases: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        cases.extend(['é', '\u{85}', '\u{a0}', '\u{202e}', '日', '🦀'].map(String::from));
        for c in cases.clone() {
            for at in [0, 1, 15, 16, 31, 40] {
                cases.push(format!("{}{c}{}", "w".repeat(at), "s".repeat(40 - at)));
            }
        }
        for s in &cases {
            let want = s.chars().all(|c| c.is_ascii() && !is_unsafe(c));
            assert_eq!(is_plain(s), want, "{s:?}");
            if want {
                assert_eq!(escape(s), s.as_str());
            }
        }
        assert!(is_plain(""));
        assert!(is_plain("ws-000001.corp.example ~!"));
    }

    #[test]
    fn escapes_controls_and_bidi() {
        assert_eq!(escape("PC-01.corp.example"), "PC-01.corp.example");
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("x\u{9b}y\u{7f}"), "x\\x9by\\x7f");
        assert_eq!(escape("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("tab\there\nnl"), "tab\\x09here\\x0anl");
        assert_eq!(escape("ünïcödé ok"), "ünïcödé ok");
    }
}
