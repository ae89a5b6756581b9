//! Tar attachments (`capture.tar`, `captures.tar.gz`): POSIX ustar and GNU tar (IEEE 1003.1-2001
//! "pax" interchange format, section "ustar Interchange Format"). The archive is read as one
//! forward stream, never extracted to disk: each regular member is handed out as a stream of
//! exactly its bytes and detected by content like a top-level file; whatever a member source did
//! not read is skipped when the next member is opened.
//!
//! Bounds: [`MAX_ARCHIVE_MEMBERS`] entries, [`MAX_LONG_NAME_LEN`] for GNU long names, header
//! checksums verified (a corrupt header ends the archive with an error naming its offset), the
//! usual nesting depth and expansion budget of the enclosing input.

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use super::stream::ByteReader;
use super::{
    CaptureError, CaptureErrorKind, Ctx, MAX_ARCHIVE_MEMBERS, Notice, Opened, SNIFF_BUFFER_LEN,
    Stream, archive::Member, open_stream,
};

/// Size of a tar header and of the blocks member data is padded to.
const BLOCK: usize = 512;

/// Longest GNU long name (`L` entry) accepted; PATH_MAX on Linux.
pub const MAX_LONG_NAME_LEN: u64 = 4096;

/// Offset of the `ustar` magic in a header.
pub(crate) const MAGIC_OFFSET: usize = 257;

/// The archive stream, shared by the walker and the reader of the current member.
struct Shared {
    br: ByteReader,
    /// Bytes of the current member not yet read.
    remaining: u64,
    /// Padding after the current member's data.
    pad: u64,
    /// Which member may read (a reader of an earlier member sees the end).
    member: u64,
}

/// Reads the bytes of one member.
struct MemberReader {
    shared: Arc<Mutex<Shared>>,
    member: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if s.member != self.member || s.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if !s.br.ensure(1)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar archive ends inside a member",
            ));
        }
        let n =
            s.br.data()
                .len()
                .min(buf.len())
                .min(usize::try_from(s.remaining).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&s.br.data()[..n]);
        s.br.consume(n);
        s.remaining -= n as u64;
        Ok(n)
    }
}

/// Walks the members of one tar archive, opening them one at a time.
pub(crate) struct TarWalker {
    name: String,
    shared: Arc<Mutex<Shared>>,
    ctx: Ctx,
    /// Entries seen (all types).
    entries: usize,
    /// Members reported so far (sources, notices, errors).
    yielded: usize,
    done: bool,
}

/// True when `d` (at least 262 bytes) starts with a ustar or GNU tar header.
pub(crate) fn is_tar(d: &[u8]) -> bool {
    d.get(MAGIC_OFFSET..MAGIC_OFFSET + 5) == Some(b"ustar")
}

/// A NUL-terminated header field as text (bytes beyond ASCII kept as Latin-1 would be lossy;
/// names are UTF-8 in practice, invalid sequences are replaced).
fn field(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A numeric header field: octal ASCII (spaces and NULs around it), or GNU base-256 when the
/// high bit of the first byte is set.
fn number(b: &[u8]) -> Option<u64> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        let mut v: u64 = u64::from(b[0] & 0x7f);
        for &c in &b[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(v);
    }
    let t: Vec<u8> = b
        .iter()
        .copied()
        .skip_while(|&c| c == b' ')
        .take_while(|&c| (b'0'..=b'7').contains(&c))
        .collect();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&t).ok()?, 8).ok()
}

/// Header checksum: the sum of all bytes with the checksum field taken as spaces.
fn checksum_ok(h: &[u8]) -> bool {
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    number(&h[148..156]) == Some(sum)
}

impl TarWalker {
    /// Starts walking the archive read by `br` (positioned at its first header).
    pub fn new(name: String, br: ByteReader, ctx: Ctx) -> TarWalker {
        TarWalker {
            name,
            shared: Arc::new(Mutex::new(Shared {
                br,
                remaining: 0,
                pad: 0,
                member: 0,
            })),
            ctx,
            entries: 0,
            yielded: 0,
            done: false,
        }
    }

    /// At the end: a notice when the archive held no file at all.
    pub fn empty_notice(&self) -> Option<Notice> {
        (self.yielded == 0).then(|| Notice {
            source: self.name.clone(),
            kind: "empty_archive",
            offset: None,
            frame: None,
            detail: "tar archive holds no files".into(),
        })
    }

    fn error(&mut self, kind: CaptureErrorKind, offset: u64) -> Option<Member> {
        self.done = true;
        Some(Member::Error(
            CaptureError::new(&self.name, kind)
                .at(offset, None)
                .compressed(self.ctx.decompressed),
        ))
    }

    /// Opens the next member holding something; `None` at the end.
    pub fn next_member(&mut self) -> Option<Member> {
        let m = self.next_member_inner();
        if m.is_some() {
            self.yielded += 1;
        }
        m
    }

    fn next_member_inner(&mut self) -> Option<Member> {
        let mut long_name: Option<String> = None;
        loop {
            if self.done {
                return None;
            }
            let shared = self.shared.clone();
            let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
            // Leave the previous member: skip what its source did not read, and its padding.
            s.member += 1;
            let skip = s.remaining + s.pad;
            s.remaining = 0;
            s.pad = 0;
            let at = s.br.offset();
            match s.br.skip(skip) {
                Ok(n) if n == skip => {}
                Ok(_) => {
                    drop(s);
                    return self.error(
                        CaptureErrorKind::Truncated("tar archive (inside a member)".into()),
                        at,
                    );
                }
                Err(e) => {
                    drop(s);
                    return self.error(CaptureErrorKind::Io(e), at);
                }
            }
            let at = s.br.offset();
            match s.br.ensure(BLOCK) {
                Ok(true) => {}
                Ok(false) if s.br.data().is_empty() => {
                    // No end-of-archive blocks: tolerated.
                    self.done = true;
                    return None;
                }
                Ok(false) => {
                    let got = s.br.data().len();
                    drop(s);
                    return self.error(
                        CaptureErrorKind::Truncated(format!("tar header ({got} of {BLOCK} bytes)")),
                        at,
                    );
                }
                Err(e) => {
                    drop(s);
                    return self.error(CaptureErrorKind::Io(e), at);
                }
            }
            let h: Vec<u8> = s.br.take_bytes(BLOCK).to_vec();
            if h.iter().all(|&b| b == 0) {
                // End-of-archive marker.
                self.done = true;
                return None;
            }
            if !checksum_ok(&h) {
                drop(s);
                return self.error(
                    CaptureErrorKind::Corrupt("tar header checksum mismatch".into()),
                    at,
                );
            }
            let Some(size) = number(&h[124..136]) else {
                drop(s);
                return self.error(
                    CaptureErrorKind::Corrupt("tar header with an unreadable size".into()),
                    at,
                );
            };
            s.remaining = size;
            s.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            let typeflag = h[156];
            self.entries += 1;
            if self.entries > MAX_ARCHIVE_MEMBERS {
                drop(s);
                self.done = true;
                return Some(Member::Opened(Opened::Skipped(Notice {
                    source: self.name.clone(),
                    kind: "archive_member_limit",
                    offset: Some(at),
                    frame: None,
                    detail: format!(
                        "tar archive has more than {MAX_ARCHIVE_MEMBERS} entries; the rest \
                         were not examined"
                    ),
                })));
            }
            if typeflag == b'L' {
                // GNU long name of the next entry.
                if size > MAX_LONG_NAME_LEN {
                    drop(s);
                    return self.error(
                        CaptureErrorKind::Limit(format!(
                            "tar long name of {size} bytes, more than {MAX_LONG_NAME_LEN}"
                        )),
                        at,
                    );
                }
                let n = size as usize;
                if !s.br.ensure(n).unwrap_or(false) {
                    drop(s);
                    return self.error(CaptureErrorKind::Truncated("tar long name".into()), at);
                }
                long_name = Some(field(s.br.take_bytes(n)));
                s.remaining = 0;
                continue;
            }
            if !matches!(typeflag, b'0' | 0 | b'7') {
                // Directories, links, devices, pax headers: nothing to analyse.
                continue;
            }
            let mut mname = long_name.take().unwrap_or_else(|| {
                let name = field(&h[0..100]);
                let prefix = if &h[257..262] == b"ustar" && h[262] == 0 {
                    field(&h[345..500])
                } else {
                    String::new()
                };
                if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                }
            });
            if mname.is_empty() {
                mname = format!("entry {}", self.entries);
            }
            let member = s.member;
            drop(s);
            let full = format!("{}:{}", self.name, mname);
            let reader = MemberReader {
                shared: self.shared.clone(),
                member,
            };
            let ctx = Ctx {
                depth: self.ctx.depth,
                exp: self.ctx.exp.clone(),
                decompressed: self.ctx.decompressed,
            };
            let mut br = ByteReader::new(Box::new(reader), SNIFF_BUFFER_LEN);
            let opened =
                open_stream(&full, &mut br, &ctx, None).and_then(|st| st.finish(br, &full, &ctx));
            return Some(match opened {
                Ok(Stream::Capture(c)) => Member::Opened(Opened::Source(c)),
                Ok(Stream::Archive(w)) => Member::Nested(w),
                Err(e)
                    if matches!(
                        e.kind,
                        CaptureErrorKind::NotCapture(_) | CaptureErrorKind::Empty
                    ) =>
                {
                    Member::Opened(Opened::Skipped(Notice {
                        source: full,
                        kind: "non_capture_member",
                        offset: None,
                        frame: None,
                        detail: format!("{}; skipped", e.kind),
                    }))
                }
                Err(e) => Member::Error(e),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{checksum_ok, number};

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"   12 \0"), Some(0o12));
        assert_eq!(number(b"\0\0\0\0"), Some(0));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(&[0xff; 12]), None);
    }

    #[test]
    fn checksum() {
        let mut h = [0u8; 512];
        h[0] = b'a';
        let sum = 97 + 8 * 32;
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert!(checksum_ok(&h));
        h[1] = 1;
        assert!(!checksum_ok(&h));
    }
}
