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

/// Escapes `s` for a terminal: control bytes as `\xNN`, other unsafe code points as `\u{NNNN}`, and
/// the backslash itself as `\\` so that escaped output is unambiguous. Borrowed when nothing changes.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
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
    use super::escape;

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
