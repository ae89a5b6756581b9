//! Zip attachments: every member is opened as a stream (stored, or deflate-decompressed in
//! memory, never extracted to disk) and detected by content like a top-level file. The central
//! directory is read with the `zip` crate; member data is then read through an owned handle so
//! that each member source is independent of the archive (and `Send`).

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use zip::{CompressionMethod, ZipArchive};

use super::stream::{ByteReader, Inflated};
use super::{
    CaptureError, CaptureErrorKind, Ctx, MAX_ARCHIVE_MEMBER_LEN, MAX_ARCHIVE_MEMBERS, Notice,
    Opened, SNIFF_BUFFER_LEN, Stream, open_stream,
};

/// A file shared by the readers of several members: each keeps its own position.
#[derive(Clone, Debug)]
pub(crate) struct SharedFile {
    file: Arc<Mutex<File>>,
    pos: u64,
    len: u64,
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        f.seek(SeekFrom::Start(self.pos))?;
        let n = f.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the archive",
            )),
        }
    }
}

/// Where an archive's bytes are: the file itself, or memory (archive read from a stream).
#[derive(Clone, Debug)]
pub(crate) enum Handle {
    File(SharedFile),
    Memory(Cursor<Arc<[u8]>>),
}

impl Handle {
    pub fn file(f: File) -> io::Result<Handle> {
        let len = f.metadata()?.len();
        Ok(Handle::File(SharedFile {
            file: Arc::new(Mutex::new(f)),
            pos: 0,
            len,
        }))
    }

    pub fn memory(v: Vec<u8>) -> Handle {
        Handle::Memory(Cursor::new(Arc::from(v)))
    }
}

impl Read for Handle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Handle::File(f) => f.read(buf),
            Handle::Memory(c) => c.read(buf),
        }
    }
}

impl Seek for Handle {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Handle::File(f) => f.seek(to),
            Handle::Memory(c) => c.seek(to),
        }
    }
}

/// One step of walking an archive.
pub(crate) enum Member {
    Opened(Opened),
    Nested(Walker),
    Error(CaptureError),
}

/// An archive being walked: zip (central directory, members read in place or from memory) or
/// tar (one forward stream, see [`super::tar`]).
pub(crate) enum Walker {
    Zip(ZipWalker),
    Tar(super::tar::TarWalker),
}

impl Walker {
    /// Opens the next member holding something; `None` at the end.
    pub fn next_member(&mut self) -> Option<Member> {
        match self {
            Walker::Zip(w) => w.next_member(),
            Walker::Tar(w) => w.next_member(),
        }
    }

    /// At the end: a notice when the archive held nothing to examine.
    pub fn empty_notice(&self) -> Option<Notice> {
        match self {
            Walker::Zip(w) => w.empty_notice(),
            Walker::Tar(w) => w.empty_notice(),
        }
    }
}

/// Walks the members of one zip archive, opening them one at a time.
pub(crate) struct ZipWalker {
    name: String,
    archive: ZipArchive<Handle>,
    handle: Handle,
    next: usize,
    ctx: Ctx,
    /// Members reported so far (sources, notices, errors).
    yielded: usize,
}

impl ZipWalker {
    /// Reads the central directory. `ctx` is the context of the members.
    pub fn new(name: String, handle: Handle, ctx: Ctx) -> Result<ZipWalker, CaptureError> {
        if let Handle::File(f) = &handle {
            // Members are read in place: the archive's size is the input size for the
            // expansion budget, however often overlapping members re-read the same bytes.
            ctx.exp.raw_in.fetch_max(f.len, Ordering::Relaxed);
        }
        let archive = ZipArchive::new(handle.clone()).map_err(|e| {
            CaptureError::new(
                &name,
                CaptureErrorKind::Archive(format!("corrupt or truncated zip archive: {e}")),
            )
        })?;
        Ok(ZipWalker {
            name,
            archive,
            handle,
            next: 0,
            ctx,
            yielded: 0,
        })
    }

    /// At the end: a notice when the archive held nothing but directories (or nothing at all),
    /// so that it does not vanish without a word.
    pub fn empty_notice(&self) -> Option<Notice> {
        (self.yielded == 0).then(|| Notice {
            source: self.name.clone(),
            kind: "empty_archive",
            offset: None,
            frame: None,
            detail: if self.archive.is_empty() {
                "zip archive has no entries".into()
            } else {
                "zip archive holds only directories".into()
            },
        })
    }

    fn skipped(&self, source: String, kind: &'static str, detail: String) -> Member {
        Member::Opened(Opened::Skipped(Notice {
            source,
            kind,
            offset: None,
            frame: None,
            detail,
        }))
    }

    /// Opens the next member holding something (directories are passed over); `None` at the end.
    pub fn next_member(&mut self) -> Option<Member> {
        let m = self.next_member_inner();
        if m.is_some() {
            self.yielded += 1;
        }
        m
    }

    fn next_member_inner(&mut self) -> Option<Member> {
        loop {
            let i = self.next;
            let len = self.archive.len();
            if i >= len {
                return None;
            }
            if i >= MAX_ARCHIVE_MEMBERS {
                self.next = len;
                return Some(self.skipped(
                    self.name.clone(),
                    "archive_member_limit",
                    format!(
                        "zip archive has {len} entries; only the first {MAX_ARCHIVE_MEMBERS} \
                         were examined"
                    ),
                ));
            }
            self.next += 1;
            let (mname, is_dir, encrypted, method, data_start, csize) =
                match self.archive.by_index_raw(i) {
                    Ok(f) => {
                        // Kept exact (JSON escaping is enough there); every text output
                        // escapes source names before they reach a terminal.
                        let n = match f.name() {
                            Ok(n) => n.into_owned(),
                            Err(_) => String::from_utf8_lossy(f.name_raw()).into_owned(),
                        };
                        (
                            n,
                            f.is_dir(),
                            f.encrypted(),
                            f.compression(),
                            f.data_start(),
                            f.compressed_size(),
                        )
                    }
                    Err(e) => {
                        return Some(Member::Error(CaptureError::new(
                            &self.name,
                            CaptureErrorKind::Archive(format!("zip entry {i} unreadable: {e}")),
                        )));
                    }
                };
            if is_dir {
                continue;
            }
            let full = format!("{}:{}", self.name, mname);
            if encrypted {
                return Some(self.skipped(
                    full,
                    "unsupported_member",
                    "encrypted zip member skipped".into(),
                ));
            }
            let Some(start) = data_start else {
                return Some(Member::Error(CaptureError::new(
                    &full,
                    CaptureErrorKind::Archive("zip member data offset unknown".into()),
                )));
            };
            let mut h = self.handle.clone();
            if let Err(e) = h.seek(SeekFrom::Start(start)) {
                return Some(Member::Error(CaptureError::new(
                    &full,
                    CaptureErrorKind::Io(e),
                )));
            }
            let raw = h.take(csize);
            let (reader, decompressed): (Box<dyn Read + Send>, bool) = match method {
                CompressionMethod::Stored => (Box::new(raw), false),
                CompressionMethod::Deflated => (
                    Box::new(Inflated::new(
                        flate2::read::DeflateDecoder::new(raw),
                        self.ctx.exp.clone(),
                        MAX_ARCHIVE_MEMBER_LEN,
                        "zip member (deflate)",
                    )),
                    true,
                ),
                other => {
                    return Some(self.skipped(
                        full,
                        "unsupported_member",
                        format!("zip compression method {other:?} not supported; member skipped"),
                    ));
                }
            };
            let ctx = Ctx {
                depth: self.ctx.depth,
                exp: self.ctx.exp.clone(),
                decompressed,
            };
            let mut br = ByteReader::new(reader, SNIFF_BUFFER_LEN);
            let opened =
                open_stream(&full, &mut br, &ctx, None).and_then(|s| s.finish(br, &full, &ctx));
            return Some(match opened {
                Ok(Stream::Capture(c)) => Member::Opened(Opened::Source(c)),
                Ok(Stream::Archive(w)) => Member::Nested(w),
                Err(e)
                    if matches!(
                        e.kind,
                        CaptureErrorKind::NotCapture(_) | CaptureErrorKind::Empty
                    ) =>
                {
                    self.skipped(full, "non_capture_member", format!("{}; skipped", e.kind))
                }
                Err(e) => Member::Error(e),
            });
        }
    }
}
