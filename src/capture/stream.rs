//! Byte-stream plumbing: one reused read buffer per source, input counting, and bounded
//! decompression (the expansion budget that stops compression bombs).

use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CaptureError, CaptureErrorKind, EXPANSION_FLOOR, MAX_EXPANSION_RATIO};

/// Bytes read from the original input and bytes produced by all decompression layers of it.
#[derive(Debug, Default)]
pub(crate) struct Expansion {
    pub raw_in: AtomicU64,
    pub out: AtomicU64,
}

impl Expansion {
    /// Output allowed so far for this input.
    fn allowed(&self, ratio: u64, floor: u64) -> u64 {
        self.raw_in
            .load(Ordering::Relaxed)
            .max(floor)
            .saturating_mul(ratio)
    }
}

/// Counts the bytes read from the original input.
pub(crate) struct Counted<R> {
    inner: R,
    exp: Arc<Expansion>,
}

impl<R> Counted<R> {
    pub fn new(inner: R, exp: Arc<Expansion>) -> Self {
        Counted { inner, exp }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.exp.raw_in.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decompression limit was hit (carried inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitExceeded(pub String);

/// Decompression failed (carried inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{format} data is corrupt or truncated ({source})")]
pub(crate) struct DecompressFailed {
    pub format: &'static str,
    pub source: io::Error,
}

/// Output side of a decompressor: enforces a per-stream size cap and the shared expansion budget,
/// and labels decompression errors.
pub(crate) struct Inflated<R> {
    inner: R,
    exp: Arc<Expansion>,
    produced: u64,
    max: u64,
    format: &'static str,
    ratio: u64,
    floor: u64,
}

impl<R> Inflated<R> {
    pub fn new(inner: R, exp: Arc<Expansion>, max: u64, format: &'static str) -> Self {
        Self::with_limits(
            inner,
            exp,
            max,
            format,
            MAX_EXPANSION_RATIO,
            EXPANSION_FLOOR,
        )
    }

    pub fn with_limits(
        inner: R,
        exp: Arc<Expansion>,
        max: u64,
        format: &'static str,
        ratio: u64,
        floor: u64,
    ) -> Self {
        Inflated {
            inner,
            exp,
            produced: 0,
            max,
            format,
            ratio,
            floor,
        }
    }
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                // Limits of an inner layer pass through unchanged.
                if e.get_ref().is_some_and(|r| {
                    r.is::<LimitExceeded>() || r.is::<DecompressFailed>() || r.is::<TrailingData>()
                }) {
                    return Err(e);
                }
                return Err(io::Error::new(
                    e.kind(),
                    DecompressFailed {
                        format: self.format,
                        source: e,
                    },
                ));
            }
        };
        self.produced = self.produced.saturating_add(n as u64);
        if self.produced > self.max {
            return Err(io::Error::other(LimitExceeded(format!(
                "{} data decompresses to more than {} bytes (limit)",
                self.format, self.max
            ))));
        }
        let out = self
            .exp
            .out
            .fetch_add(n as u64, Ordering::Relaxed)
            .saturating_add(n as u64);
        if out > self.exp.allowed(self.ratio, self.floor) {
            return Err(io::Error::other(LimitExceeded(format!(
                "decompressed data exceeds {}× the size of the input (possible compression bomb)",
                self.ratio
            ))));
        }
        Ok(n)
    }
}

/// Data after the end of a gzip stream that is neither another member nor zero padding.
#[derive(Debug, thiserror::Error)]
#[error("unexpected data after the end of the gzip stream")]
pub(crate) struct TrailingData;

/// Concatenated gzip members (RFC 1952 §2.2), read one after the other; zero padding after the
/// last member is ignored, as gzip(1) does.
pub(crate) struct GzMembers<R: BufRead> {
    dec: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    pub fn new(r: R) -> Self {
        GzMembers {
            dec: Some(flate2::bufread::GzDecoder::new(r)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            // This member is complete: another one, padding, or the end.
            let Some(mut r) = self.dec.take().map(|d| d.into_inner()) else {
                return Ok(0);
            };
            let next = r.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next.first() == Some(&0x1f) && next.get(1).is_none_or(|&b| b == 0x8b) {
                self.dec = Some(flate2::bufread::GzDecoder::new(r));
                continue;
            }
            loop {
                let buf = r.fill_buf()?;
                if buf.is_empty() {
                    return Ok(0);
                }
                if buf.iter().any(|&b| b != 0) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, TrailingData));
                }
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

/// Maps an I/O error of a source to a `CaptureError`, keeping limit and decompression errors
/// recognisable.
pub(crate) fn io_error(name: &str, e: io::Error, offset: u64, decompressed: bool) -> CaptureError {
    let kind = match e.get_ref() {
        Some(r) if r.is::<LimitExceeded>() => CaptureErrorKind::Limit(r.to_string()),
        Some(r) if r.is::<DecompressFailed>() || r.is::<TrailingData>() => {
            CaptureErrorKind::Decompress(r.to_string())
        }
        _ => CaptureErrorKind::Io(e),
    };
    CaptureError::new(name, kind)
        .at(offset, None)
        .compressed(decompressed)
}

/// A read buffer over a byte stream: `ensure(n)` makes `n` bytes available contiguously, `take(n)`
/// hands them out (valid until the next `ensure`). One allocation, reused; it grows only up to the
/// target size or to the largest `n` asked for (callers bound `n`).
pub(crate) struct ByteReader {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    target: usize,
}

impl ByteReader {
    pub fn new(inner: Box<dyn Read + Send>, target: usize) -> Self {
        ByteReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            target,
        }
    }

    /// Sets the buffer size used from the next refill on.
    pub fn set_target(&mut self, target: usize) {
        self.target = target;
    }

    /// Stream offset of the first available byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The bytes available without reading.
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    /// Makes at least `n` bytes available; `Ok(false)` when the stream ends first.
    #[inline]
    pub fn ensure(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.fill(n)
    }

    #[cold]
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        loop {
            if self.end - self.pos >= n {
                return Ok(true);
            }
            if self.eof {
                return Ok(false);
            }
            let want = n.max(self.target);
            if self.buf.len() < want {
                self.compact();
                self.buf.resize(want, 0);
            } else if self.buf.len() - self.pos < n || self.end == self.buf.len() {
                self.compact();
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = (self.end + k).min(self.buf.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
    }

    /// Hands out the next `n` available bytes (fewer if fewer are available) and moves past them.
    #[inline]
    pub fn take_bytes(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        let stop = (start + n).min(self.end);
        self.pos = stop;
        &self.buf[start..stop]
    }

    /// Moves past `n` available bytes.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// Discards `n` bytes, reading through the stream without holding them; returns how many
    /// were skipped (fewer at the end of the stream).
    pub fn skip(&mut self, n: u64) -> io::Result<u64> {
        let mut left = n;
        loop {
            let avail = (self.end - self.pos) as u64;
            let step = avail.min(left);
            self.pos += step as usize;
            left -= step;
            if left == 0 {
                return Ok(n);
            }
            // The buffer is drained: refill (one read of up to a buffer's worth).
            if !self.ensure(1)? {
                return Ok(n - left);
            }
        }
    }

    /// Reads the rest of the stream into memory, up to `limit` bytes; `None` when longer.
    pub fn read_to_end_bounded(&mut self, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        out.extend_from_slice(self.data());
        self.pos = self.end;
        if out.len() as u64 > limit {
            return Ok(None);
        }
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(Some(out));
                }
                Ok(k) => {
                    if (out.len() + k) as u64 > limit {
                        return Ok(None);
                    }
                    out.extend_from_slice(chunk.get(..k).unwrap_or(&[]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl BufRead for ByteReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.ensure(1)?;
        Ok(self.data())
    }

    fn consume(&mut self, n: usize) {
        ByteReader::consume(self, n);
    }
}

impl Read for ByteReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.end > self.pos {
            let n = (self.end - self.pos).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        if self.eof {
            return Ok(0);
        }
        let n = self.inner.read(out)?;
        self.base += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 3 bytes per read, to exercise refills.
    struct Dribble(Vec<u8>, usize);
    impl Read for Dribble {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(3).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn ensure_take_skip_across_refills() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut r = ByteReader::new(Box::new(Dribble(data.clone(), 0)), 16);
        assert!(r.ensure(10).unwrap());
        assert_eq!(r.take_bytes(10), &data[..10]);
        assert_eq!(r.offset(), 10);
        assert!(r.ensure(100).unwrap());
        assert_eq!(r.take_bytes(100), &data[10..110]);
        assert_eq!(r.skip(5000).unwrap(), 5000);
        assert_eq!(r.offset(), 5110);
        assert!(r.ensure(7).unwrap());
        assert_eq!(&r.data()[..7], &data[5110..5117]);
        assert_eq!(r.skip(10_000).unwrap(), 10_000 - 5110);
        assert!(!r.ensure(1).unwrap());
        assert_eq!(r.offset(), 10_000);
    }

    #[test]
    fn bounded_read_to_end() {
        let mut r = ByteReader::new(Box::new(Dribble(vec![7; 1000], 0)), 16);
        assert!(r.ensure(4).unwrap());
        assert_eq!(r.read_to_end_bounded(1000).unwrap().unwrap().len(), 1000);
        let mut r = ByteReader::new(Box::new(Dribble(vec![7; 1000], 0)), 16);
        assert!(r.read_to_end_bounded(999).unwrap().is_none());
    }

    #[test]
    fn expansion_budget_stops_bombs() {
        let exp = Arc::new(Expansion::default());
        exp.raw_in.store(10, Ordering::Relaxed);
        // ratio 4, floor 100: 400 bytes allowed.
        let mut r = Inflated::with_limits(io::repeat(0), exp.clone(), u64::MAX, "gzip", 4, 100);
        let mut buf = [0u8; 150];
        assert!(r.read(&mut buf).is_ok());
        assert!(r.read(&mut buf).is_ok());
        let e = r.read(&mut buf).unwrap_err();
        let ce = io_error("x.gz", e, 300, true);
        assert_eq!(
            ce.to_string(),
            "x.gz: decompressed data exceeds 4× the size of the input (possible compression \
             bomb) at offset 300 of the decompressed data"
        );
        // Per-stream cap.
        let exp = Arc::new(Expansion::default());
        let mut r = Inflated::with_limits(io::repeat(0), exp, 200, "zip member", 4, 1000);
        assert!(r.read(&mut buf).is_ok());
        let e = r.read(&mut buf).unwrap_err();
        assert!(
            io_error("a.zip:b", e, 0, true)
                .to_string()
                .contains("zip member data decompresses to more than 200 bytes")
        );
    }
}
