//! TCP reassembly for one direction of a connection (RFC 9293 sequence space).
//!
//! A [`Stream`] turns the TCP segments of one direction into the contiguous byte stream the
//! DCE/RPC session parses. It tracks sequence numbers (with wrap-around), buffers out-of-order
//! data until the hole in front of it fills, drops retransmissions, applies a documented overlap
//! policy, records the end of the stream (FIN or RST) and keeps its memory under named limits.
//!
//! # Data model
//!
//! Bytes are addressed by a 64-bit *stream offset* (0 = first data byte, i.e. ISN + 1, or the
//! first data byte seen when the capture starts mid-connection), so ordering never depends on
//! 32-bit wrap-around; sequence numbers are converted with wrapping arithmetic at the edge.
//!
//! One buffer holds everything from the first unconsumed byte up to the highest buffered byte:
//! first the *ready* bytes (contiguous, offered to the consumer by [`Stream::ready`]), then holes
//! and out-of-order ranges. A small ordered map (allocated only while out-of-order data exists)
//! records which ranges beyond the ready bytes have been received. Filling a hole is a copy into
//! the buffer plus O(log r) map work (r = number of disjoint out-of-order ranges); adjacent ranges
//! are merged, so 1-byte segments in any order cost O(log r) each and never more than one byte of
//! payload memory per byte.
//!
//! # Overlap and retransmission policy: first-seen bytes win
//!
//! Like the "first" policy of most IDSs, a byte that has been received once is never replaced:
//! retransmissions and overlapping segments only contribute the bytes that fill holes. Where a
//! later segment carries *different* bytes for a position still held in memory (ready or
//! out-of-order), the outcome says `conflicting: true` so the caller can emit an `anomaly`; bytes
//! already consumed are no longer held and cannot be compared. The end of the stream follows the
//! same rule: the first FIN (or an RST) fixes it; data beyond it or a FIN elsewhere is
//! [`SegmentOutcome::EndConflict`].
//!
//! # Memory
//!
//! [`Stream::new`] allocates nothing and `size_of::<Stream>()` is 64 bytes on 64-bit targets.
//! The buffer is allocated when bytes must be held and released as soon as the stream drains
//! (nothing ready, nothing out of order), so idle connections cost only the struct. With
//! [`Stream::on_segment_with`] the consumer parses in-order payload straight from the packet and
//! only the unconsumed tail is copied: a consumer that eats whole segments never allocates.
//! The limits [`MAX_BUFFERED_PER_DIRECTION`], [`MAX_OOO_RANGES`], [`MAX_SEQ_AHEAD`] and
//! [`MAX_SEQ_BEHIND`] bound the work and memory of one direction; hitting one returns an outcome
//! the caller turns into an `anomaly` event.
//!
//! # Typical caller (the flow table)
//!
//! ```
//! use kmsscope::flow::stream::{SegmentOutcome, Stream};
//!
//! let mut s = Stream::new();
//! s.on_syn(1000);
//! let mut parsed = Vec::new();
//! // The consumer parses as many whole PDUs as it can and returns how many bytes it used.
//! let out = s.on_segment_with(1001, b"abcdef", false, |data| {
//!     parsed.extend_from_slice(&data[..4]);
//!     4
//! });
//! assert_eq!(out, SegmentOutcome::InOrder);
//! assert_eq!(parsed, b"abcd");
//! assert_eq!(s.ready(), b"ef"); // only the tail was copied
//! ```
//!
//! On [`SegmentOutcome::LimitReached`], at RST ([`Stream::on_rst`]), at idle timeout or at end of
//! capture the caller forces progress with [`Stream::skip_gap`] (reporting `tcp_gap` and telling
//! the parser to resynchronise) until [`Stream::has_pending_gap`] is false.

use std::collections::BTreeMap;

/// Most bytes one direction may hold: from the first unconsumed byte to the highest buffered
/// byte, holes included. A DCE/RPC PDU is at most 65,535 bytes (`frag_length` is a u16, C706
/// section 12.6.3) and KMS PDUs are under 1 KiB, so this is four maximal PDUs of slack.
pub const MAX_BUFFERED_PER_DIRECTION: usize = 256 * 1024;

/// Most disjoint out-of-order ranges buffered behind holes (adjacent segments merge into one
/// range). Any stream of up to 8 KiB fits whatever the segmentation and order, since at most
/// every other byte can start a range.
pub const MAX_OOO_RANGES: usize = 4096;

/// Segments starting more than this many bytes beyond the next expected byte are not from this
/// stream's plausible window (RFC 9293 section 3.4 acceptability test, with a window far above
/// what KMS uses) and are rejected with [`SegmentOutcome::BeyondWindow`].
pub const MAX_SEQ_AHEAD: u32 = 1 << 20;

/// Segments starting more than this many bytes before the next expected byte are rejected with
/// [`SegmentOutcome::BeyondWindow`] rather than treated as retransmissions.
pub const MAX_SEQ_BEHIND: u32 = 1 << 20;

/// The buffer never grows past this capacity; compaction makes room instead.
const MAX_CAPACITY: usize = 2 * MAX_BUFFERED_PER_DIRECTION;

/// Rough heap cost of one out-of-order range in the ordered map (16 bytes of key and value plus
/// B-tree node overhead), used by [`Stream::heap_bytes`].
const RANGE_COST: usize = 32;

const STARTED: u8 = 1;
const SYN_SEEN: u8 = 2;
const END_KNOWN: u8 = 4;
const RESET: u8 = 8;

/// What a segment did to the stream. Every variant other than `Empty`, `InOrder` and
/// `OutOfOrder` is worth an `anomaly` (or a counter) in the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentOutcome {
    /// No payload (a pure ACK, or a FIN-only segment that was consistent).
    Empty,
    /// New bytes extended the ready data (possibly also filling a hole).
    InOrder,
    /// New bytes were buffered behind a hole.
    OutOfOrder,
    /// Every byte had been received before (a retransmission). `conflicting`: some byte still
    /// held differs from the one first received (which was kept).
    Duplicate { conflicting: bool },
    /// Some bytes were new, some had been received before. `conflicting` as for `Duplicate`.
    Overlap { conflicting: bool },
    /// The segment starts more than [`MAX_SEQ_AHEAD`] beyond, or [`MAX_SEQ_BEHIND`] before, the
    /// next expected byte. Nothing was stored.
    BeyondWindow,
    /// Storing the segment would break a limit. Nothing from it was stored (not even its FIN).
    /// The caller reports an anomaly and may make room (`skip_gap`, or `consume` of bytes the
    /// parser cannot use) and feed the segment again.
    LimitReached { limit: Limit },
    /// The segment contradicts the recorded end of the stream: bytes beyond an earlier FIN or
    /// RST (dropped), or a FIN at a different position (ignored). Bytes before the end were
    /// processed as usual.
    EndConflict,
}

/// Which limit a [`SegmentOutcome::LimitReached`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`MAX_BUFFERED_PER_DIRECTION`].
    BufferedBytes,
    /// [`MAX_OOO_RANGES`].
    OooRanges,
}

/// What a SYN did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynOutcome {
    /// The SYN set the initial sequence number (or confirmed where data already started).
    Accepted,
    /// Same ISN as before: a SYN retransmission.
    Retransmission,
    /// A different ISN from the one in use: ignored here; the caller may treat it as a new
    /// connection reusing the 4-tuple.
    Conflict,
}

/// One direction of a TCP connection: sequence tracking, out-of-order buffer, contiguous
/// unconsumed bytes. See the module documentation for the policy and limits.
///
/// Invariants: `buf[head..head + ready_len]` are the ready bytes at offsets
/// `consumed_off..next_off`; every out-of-order range `[s, e)` in `ooo` satisfies
/// `next_off < s`, ranges are disjoint and non-adjacent, and `buf` covers them; when nothing is
/// ready and nothing is out of order, `buf` is released and `head` is 0; the span held is at most
/// [`MAX_BUFFERED_PER_DIRECTION`] bytes.
#[derive(Debug, Default)]
pub struct Stream {
    /// Bytes from `consumed_off - head` on (the first `head` bytes are already consumed).
    buf: Vec<u8>,
    /// Out-of-order ranges, start offset -> end offset (exclusive). `None` when there are none.
    #[expect(
        clippy::box_collection,
        reason = "boxed so that a Stream without out-of-order data stays 64 bytes (8 instead of 24)"
    )]
    ooo: Option<Box<BTreeMap<u64, u64>>>,
    /// Stream offset of the first unconsumed byte.
    consumed_off: u64,
    /// Index in `buf` of the first unconsumed byte.
    head: u32,
    /// Number of ready bytes.
    ready_len: u32,
    /// Sequence number of stream offset 0.
    base_seq: u32,
    /// Sequence number just past the last byte (FIN position), valid with `END_KNOWN`.
    end_seq: u32,
    flags: u8,
}

impl Stream {
    /// A stream that has seen nothing. Allocates nothing.
    pub const fn new() -> Stream {
        Stream {
            buf: Vec::new(),
            ooo: None,
            consumed_off: 0,
            head: 0,
            ready_len: 0,
            base_seq: 0,
            end_seq: 0,
            flags: 0,
        }
    }

    /// A SYN with sequence number `seq` (the ISN): data starts at `seq + 1`. Data carried by the
    /// SYN is then fed with `on_segment(seq.wrapping_add(1), payload, fin)`.
    ///
    /// A SYN arriving after data (mid-connection start) is accepted only if it matches the
    /// first data byte seen; otherwise it is a conflict and the stream is unchanged.
    pub fn on_syn(&mut self, seq: u32) -> SynOutcome {
        let data_start = seq.wrapping_add(1);
        if self.flags & STARTED == 0 {
            self.base_seq = data_start;
            self.consumed_off = 0;
            self.flags |= STARTED | SYN_SEEN;
            return SynOutcome::Accepted;
        }
        if data_start != self.base_seq {
            SynOutcome::Conflict
        } else if self.flags & SYN_SEEN != 0 {
            SynOutcome::Retransmission
        } else {
            self.flags |= SYN_SEEN;
            SynOutcome::Accepted
        }
    }

    /// An RST in this direction: the stream ends after the highest byte received so far. Bytes
    /// still missing before that point can be skipped with [`Stream::skip_gap`]; later data is
    /// [`SegmentOutcome::EndConflict`]. An earlier FIN keeps its position.
    pub fn on_rst(&mut self) {
        if self.flags & (STARTED | END_KNOWN) == STARTED {
            self.set_end(self.highest_off());
        }
        self.flags |= RESET;
    }

    /// A segment's payload (may be empty) at sequence `seq`; `fin` marks the end of the stream at
    /// `seq + payload.len()`. Everything is buffered; the caller then parses [`Stream::ready`]
    /// and calls [`Stream::consume`]. Prefer [`Stream::on_segment_with`] on the hot path.
    ///
    /// Mid-connection start (no SYN seen): the first segment with data or FIN defines offset 0;
    /// bytes before it are treated as old.
    pub fn on_segment(&mut self, seq: u32, payload: &[u8], fin: bool) -> SegmentOutcome {
        self.on_segment_with(seq, payload, fin, |_| 0)
    }

    /// Like [`Stream::on_segment`], but when the segment makes new bytes ready, `consumer` is
    /// called once with all the ready bytes and returns how many it consumed (values above the
    /// length are clamped). When nothing was buffered before and the segment is in order, the
    /// consumer sees the payload itself and only the unconsumed tail is copied. `consumer` is not
    /// called when no new bytes became ready.
    pub fn on_segment_with<F>(
        &mut self,
        seq: u32,
        payload: &[u8],
        fin: bool,
        consumer: F,
    ) -> SegmentOutcome
    where
        F: FnOnce(&[u8]) -> usize,
    {
        if payload.is_empty() && !fin {
            return SegmentOutcome::Empty;
        }
        // The common segment: the next bytes of a started stream that holds nothing (no ready
        // bytes, no out-of-order data, no known end), without FIN. The general path below
        // does exactly this for it, with every check.
        if !fin
            && self.flags & (STARTED | END_KNOWN) == STARTED
            && self.ready_len == 0
            && self.ooo.is_none()
            && seq == self.seq_at(self.consumed_off)
            && payload.len() <= MAX_BUFFERED_PER_DIRECTION
        {
            let n = consumer(payload).min(payload.len());
            self.consumed_off += n as u64;
            let tail = payload.get(n..).unwrap_or(&[]);
            if !tail.is_empty() {
                self.ensure_len(self.consumed_off + tail.len() as u64);
                self.write(self.consumed_off, tail);
                self.ready_len = tail.len() as u32;
            }
            return SegmentOutcome::InOrder;
        }
        if self.flags & STARTED == 0 {
            if self.flags & RESET != 0 {
                return SegmentOutcome::EndConflict;
            }
            self.base_seq = seq;
            self.consumed_off = 0;
            self.flags |= STARTED;
        }
        let next_off = self.next_off();
        let rel = i64::from(seq.wrapping_sub(self.seq_at(next_off)) as i32);
        if rel > i64::from(MAX_SEQ_AHEAD) || rel < -i64::from(MAX_SEQ_BEHIND) {
            return SegmentOutcome::BeyondWindow;
        }
        // Offsets stay far below 2^63 (they grow by at most the bytes seen), so i64 is exact.
        let next = next_off as i64;
        let seg_start = next + rel;
        let seg_end = seg_start.saturating_add(payload.len() as i64);

        // End of stream: the first FIN wins.
        let end = self.end_off();
        let mut end_conflict = false;
        let mut new_end = None;
        if fin {
            match end {
                Some(e) => end_conflict |= seg_end != e as i64,
                None if seg_end < self.highest_off() as i64 => end_conflict = true,
                None => new_end = Some(seg_end as u64),
            }
        }
        let data_end = match end.or(new_end) {
            Some(e) if seg_end > e as i64 => {
                end_conflict = true;
                e as i64
            }
            _ => seg_end,
        };
        let new_start = seg_start.max(next);
        let has_new = data_end > new_start;

        // Limits, before anything changes.
        if has_new {
            let (a, b) = (new_start as u64, data_end as u64);
            if b > self.highest_off() && b - self.consumed_off > MAX_BUFFERED_PER_DIRECTION as u64 {
                return SegmentOutcome::LimitReached {
                    limit: Limit::BufferedBytes,
                };
            }
            if a > next_off && self.ooo_len() >= MAX_OOO_RANGES && !self.touches(a, b) {
                return SegmentOutcome::LimitReached {
                    limit: Limit::OooRanges,
                };
            }
        }
        if let Some(e) = new_end {
            self.set_end(e);
        }

        // Bytes before the next expected one: a retransmission; compare what is still held.
        let old_len = (seg_end.min(next) - seg_start).max(0);
        let mut conflicting = self.differs(seg_start, seg_end.min(next), payload);

        let outcome = if !has_new {
            if old_len > 0 {
                SegmentOutcome::Duplicate { conflicting }
            } else {
                SegmentOutcome::Empty
            }
        } else {
            let (a, b) = (new_start as u64, data_end as u64);
            let first_ooo = self.ooo.as_ref().and_then(|m| m.keys().next().copied());
            if self.ready_len == 0 && a == next_off && first_ooo.is_none_or(|s| s > b) {
                // Fast path: the consumer parses the payload in place; only the tail is copied.
                let skip = (new_start - seg_start) as usize;
                let fresh = payload.get(skip..skip + (b - a) as usize).unwrap_or(&[]);
                let n = consumer(fresh).min(fresh.len());
                self.consumed_off += n as u64;
                if self.ooo.is_some() {
                    self.head += n as u32;
                }
                let tail = fresh.get(n..).unwrap_or(&[]);
                if !tail.is_empty() {
                    self.ensure_len(b);
                    self.write(self.consumed_off, tail);
                    self.ready_len = tail.len() as u32;
                }
                if old_len > 0 {
                    SegmentOutcome::Overlap { conflicting }
                } else {
                    SegmentOutcome::InOrder
                }
            } else {
                let (filled, covered, grew) =
                    self.insert(a, b, seg_start, payload, &mut conflicting);
                if grew {
                    let n = consumer(self.ready());
                    self.consume(n);
                }
                if filled == 0 {
                    SegmentOutcome::Duplicate { conflicting }
                } else if old_len > 0 || covered > 0 {
                    SegmentOutcome::Overlap { conflicting }
                } else if grew {
                    SegmentOutcome::InOrder
                } else {
                    SegmentOutcome::OutOfOrder
                }
            }
        };
        self.release_if_drained();
        if end_conflict {
            SegmentOutcome::EndConflict
        } else {
            outcome
        }
    }

    /// The contiguous bytes ready for the consumer, starting at the first unconsumed byte.
    #[inline]
    pub fn ready(&self) -> &[u8] {
        let start = self.head as usize;
        self.buf
            .get(start..start + self.ready_len as usize)
            .unwrap_or(&[])
    }

    /// The consumer parsed and no longer needs the first `n` ready bytes (clamped to the ready
    /// length). O(1); the buffer is compacted lazily and released when the stream drains.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ready_len as usize);
        self.head += n as u32;
        self.ready_len -= n as u32;
        self.consumed_off += n as u64;
        self.release_if_drained();
    }

    /// Give up on the hole in front of the lowest buffered out-of-order range (or, with none, in
    /// front of a known end of stream): skip to it and return how many bytes were lost. Ready
    /// bytes not yet consumed are discarded too (they precede the hole and cannot be completed;
    /// read them first to report a truncated PDU). The caller reports a `tcp_gap` anomaly and
    /// tells the parser to resynchronise. `None` when nothing waits behind a hole.
    pub fn skip_gap(&mut self) -> Option<u64> {
        let next_off = self.next_off();
        if let Some(map) = self.ooo.as_mut() {
            let (s, e) = map.pop_first()?;
            if map.is_empty() {
                self.ooo = None;
            }
            self.head += (s - self.consumed_off) as u32;
            self.consumed_off = s;
            self.ready_len = (e - s) as u32;
            return Some(s - next_off);
        }
        let end = self.end_off().filter(|&e| e > next_off)?;
        self.consumed_off = end;
        self.ready_len = 0;
        self.release_if_drained();
        Some(end - next_off)
    }

    /// Out-of-order data, or a known end of stream, waits behind a hole.
    #[inline]
    pub fn has_pending_gap(&self) -> bool {
        self.ooo.is_some() || self.end_off().is_some_and(|e| e > self.next_off())
    }

    /// Bytes held for this direction: from the first unconsumed byte to the highest buffered
    /// byte, holes included (they occupy buffer space). This is what
    /// [`MAX_BUFFERED_PER_DIRECTION`] limits; 0 once the stream drains.
    #[inline]
    pub fn buffered_bytes(&self) -> usize {
        (self.highest_off() - self.consumed_off) as usize
    }

    /// Estimate of the heap memory this stream owns (buffer capacity plus out-of-order map);
    /// 0 for a new or drained stream.
    #[inline]
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
            + self.ooo.as_ref().map_or(0, |m| {
                std::mem::size_of::<BTreeMap<u64, u64>>() + m.len() * RANGE_COST
            })
    }

    /// Release unused buffer capacity now (e.g. when a flow goes idle with bytes still held).
    pub fn shrink(&mut self) {
        if self.head > 0 {
            let head = self.head as usize;
            self.buf.drain(..head.min(self.buf.len()));
            self.head = 0;
        }
        self.buf.shrink_to_fit();
        self.release_if_drained();
    }

    /// The end of the stream (FIN or RST) is known and every byte before it is ready or
    /// consumed: no more bytes can arrive. [`Stream::ready`] may still hold bytes the consumer
    /// did not take (e.g. a truncated PDU). Also true for a direction reset before any data.
    pub fn finished(&self) -> bool {
        if self.flags & STARTED == 0 {
            return self.flags & RESET != 0;
        }
        self.end_off().is_some_and(|e| self.next_off() >= e)
    }

    /// Sequence number of the next expected byte, once the stream has started.
    #[inline]
    pub fn next_seq(&self) -> Option<u32> {
        (self.flags & STARTED != 0).then(|| self.seq_at(self.next_off()))
    }

    /// Stream offset of the first unconsumed byte (bytes consumed plus bytes skipped).
    pub fn consumed_offset(&self) -> u64 {
        self.consumed_off
    }

    // ----- internals -----

    #[inline]
    fn next_off(&self) -> u64 {
        self.consumed_off + u64::from(self.ready_len)
    }

    #[inline]
    fn seq_at(&self, off: u64) -> u32 {
        self.base_seq.wrapping_add(off as u32)
    }

    /// Offset of the end of stream. The end is never before the first unconsumed byte and never
    /// more than the buffer limit plus window ahead of it, so the wrapping difference is exact.
    #[inline]
    fn end_off(&self) -> Option<u64> {
        (self.flags & END_KNOWN != 0).then(|| {
            let here = self.seq_at(self.consumed_off);
            self.consumed_off + u64::from(self.end_seq.wrapping_sub(here))
        })
    }

    fn set_end(&mut self, off: u64) {
        self.end_seq = self.seq_at(off);
        self.flags |= END_KNOWN;
    }

    /// Offset just past the highest byte received (ready or out of order).
    #[inline]
    fn highest_off(&self) -> u64 {
        let last = self
            .ooo
            .as_ref()
            .and_then(|m| m.values().next_back().copied());
        last.unwrap_or(0).max(self.next_off())
    }

    fn ooo_len(&self) -> usize {
        self.ooo.as_ref().map_or(0, |m| m.len())
    }

    /// Whether `[a, b]` overlaps or touches an out-of-order range (so inserting it adds none).
    fn touches(&self, a: u64, b: u64) -> bool {
        self.ooo.as_ref().is_some_and(|m| {
            m.range(..a).next_back().is_some_and(|(_, &e)| e >= a)
                || m.range(a..=b).next().is_some()
        })
    }

    fn idx(&self, off: u64) -> usize {
        self.head as usize + (off - self.consumed_off) as usize
    }

    /// Whether the payload bytes for offsets `[lo, hi)` (payload starting at `seg_start`)
    /// differ from those still held; only offsets at or after `consumed_off` are compared.
    fn differs(&self, seg_start: i64, hi: i64, payload: &[u8]) -> bool {
        let lo = seg_start.max(self.consumed_off as i64);
        if lo >= hi {
            return false;
        }
        let p = (lo - seg_start) as usize..(hi - seg_start) as usize;
        let i = self.idx(lo as u64);
        match (payload.get(p), self.buf.get(i..i + (hi - lo) as usize)) {
            (Some(new), Some(held)) => new != held,
            _ => false,
        }
    }

    fn write(&mut self, off: u64, bytes: &[u8]) {
        let i = self.idx(off);
        if let Some(dst) = self.buf.get_mut(i..i + bytes.len()) {
            dst.copy_from_slice(bytes);
        } else {
            debug_assert!(false, "write outside the buffer");
        }
    }

    /// Make `buf` cover offsets up to `end_off`, compacting (amortised: only when the consumed
    /// prefix is at least as long as the live bytes, or to stay under [`MAX_CAPACITY`]) before
    /// growing. New bytes are zero (holes).
    fn ensure_len(&mut self, end_off: u64) {
        let span = (end_off - self.consumed_off) as usize;
        let mut head = self.head as usize;
        if head + span <= self.buf.len() {
            return;
        }
        if head + span > self.buf.capacity() {
            let live = self.buf.len().saturating_sub(head);
            if head > 0 && (head >= live || head + span > MAX_CAPACITY) {
                self.buf.copy_within(head.., 0);
                self.buf.truncate(live);
                head = 0;
                self.head = 0;
            }
            let needed = head + span;
            if needed > self.buf.capacity() {
                let target = needed.max((self.buf.capacity() * 2).min(MAX_CAPACITY));
                self.buf.reserve_exact(target - self.buf.len());
            }
        }
        self.buf.resize(head + span, 0);
    }

    /// Insert the new bytes `[a, b)` of a segment starting at `seg_start`: fill holes, compare
    /// bytes already held (first-seen wins), merge ranges, extend the ready bytes when the
    /// merged range starts at the next expected byte. Returns (bytes filled, bytes compared,
    /// ready grew). O(log r) per range touched; each range is removed at most once.
    fn insert(
        &mut self,
        a: u64,
        b: u64,
        seg_start: i64,
        payload: &[u8],
        conflicting: &mut bool,
    ) -> (u64, u64, bool) {
        let next_off = self.next_off();
        self.ensure_len(b);
        let pay = |off: u64, end: u64| {
            let s = (off as i64 - seg_start) as usize;
            payload.get(s..s + (end - off) as usize).unwrap_or(&[])
        };
        let Some(mut map) = self.ooo.take() else {
            // Nothing out of order: the bytes extend the ready data or open the first range.
            self.write(a, pay(a, b));
            let grew = a == next_off;
            if grew {
                self.ready_len = (b - self.consumed_off) as u32;
            } else {
                self.ooo = Some(Box::new(BTreeMap::from([(a, b)])));
            }
            return (b - a, 0, grew);
        };
        let (mut lo, mut hi, mut pos) = (a, b, a);
        let (mut filled, mut covered) = (0, 0);
        if let Some((&ps, &pe)) = map.range(..a).next_back()
            && pe >= a
        {
            let ce = pe.min(b);
            *conflicting |= self.differs(a as i64, ce as i64, pay(a, ce));
            covered += ce - a;
            pos = ce;
            lo = ps;
            hi = hi.max(pe);
            map.remove(&ps);
        }
        while let Some((&rs, &re)) = map.range(pos..).next() {
            if rs > b {
                break;
            }
            if rs > pos {
                self.write(pos, pay(pos, rs));
                filled += rs - pos;
            }
            let ce = re.min(b);
            if ce > rs {
                *conflicting |= self.differs(rs as i64, ce as i64, pay(rs, ce));
                covered += ce - rs;
            }
            pos = ce.max(rs);
            hi = hi.max(re);
            map.remove(&rs);
        }
        if pos < b {
            self.write(pos, pay(pos, b));
            filled += b - pos;
        }
        let grew = lo == next_off;
        if grew {
            self.ready_len = (hi - self.consumed_off) as u32;
        } else {
            map.insert(lo, hi);
        }
        if !map.is_empty() {
            self.ooo = Some(map);
        }
        (filled, covered, grew)
    }

    #[inline]
    fn release_if_drained(&mut self) {
        if self.ready_len == 0 && self.ooo.is_none() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISN: u32 = 1000;

    /// Sequence number of stream offset `off` after a SYN with `ISN`.
    fn sq(off: u32) -> u32 {
        ISN.wrapping_add(1).wrapping_add(off)
    }

    fn syn_stream() -> Stream {
        let mut s = Stream::new();
        assert_eq!(s.on_syn(ISN), SynOutcome::Accepted);
        s
    }

    fn drain(s: &mut Stream) -> Vec<u8> {
        let v = s.ready().to_vec();
        s.consume(v.len());
        v
    }

    #[test]
    fn new_stream_is_tiny_and_empty() {
        let s = Stream::new();
        assert!(
            std::mem::size_of::<Stream>() <= 64,
            "{}",
            std::mem::size_of::<Stream>()
        );
        assert_eq!(s.heap_bytes(), 0);
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(s.ready(), b"");
        assert!(!s.finished());
        assert!(!s.has_pending_gap());
        assert_eq!(s.next_seq(), None);
    }

    #[test]
    fn in_order_segments_parsed_in_place_keep_only_the_tail() {
        let mut s = syn_stream();
        let mut seen = Vec::new();
        let out = s.on_segment_with(sq(0), b"abcde", false, |d| {
            seen.extend_from_slice(d);
            3
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!(seen, b"abcde");
        assert_eq!(s.ready(), b"de", "the unconsumed tail is held");
        // Bytes held: the consumer sees them with the new segment.
        let out = s.on_segment_with(sq(5), b"fgh", false, |d| {
            assert_eq!(d, b"defgh");
            5
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!((s.ready(), s.heap_bytes()), (&b""[..], 0), "drained");
        let out = s.on_segment_with(sq(8), b"ij", false, |d| {
            assert_eq!(d, b"ij");
            2
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!(s.heap_bytes(), 0, "consumed in place: nothing allocated");
        assert_eq!(s.next_seq(), Some(sq(10)));
        // A retransmission is not the next bytes: the general path says so.
        let out = s.on_segment_with(sq(8), b"ij", false, |_| panic!("nothing new"));
        assert_eq!(out, SegmentOutcome::Duplicate { conflicting: false });
        // A consumer claiming more than it was given is clamped.
        assert_eq!(
            s.on_segment_with(sq(10), b"k", false, |_| 99),
            SegmentOutcome::InOrder
        );
        assert_eq!(s.consumed_offset(), 11);
        // With FIN, or with the end known, the general path handles the end.
        assert_eq!(
            s.on_segment_with(sq(11), b"l", true, |d| d.len()),
            SegmentOutcome::InOrder
        );
        assert!(s.finished());
        assert_eq!(
            s.on_segment_with(sq(12), b"m", false, |_| panic!("beyond the end")),
            SegmentOutcome::EndConflict
        );
    }

    #[test]
    fn in_order_segments_concatenate_and_consume_releases_memory() {
        let mut s = syn_stream();
        assert_eq!(
            s.on_segment(sq(0), b"hello", false),
            SegmentOutcome::InOrder
        );
        assert_eq!(
            s.on_segment(sq(5), b" world", false),
            SegmentOutcome::InOrder
        );
        assert_eq!(s.ready(), b"hello world");
        assert_eq!(s.buffered_bytes(), 11);
        s.consume(6);
        assert_eq!(s.ready(), b"world");
        assert_eq!(s.consumed_offset(), 6);
        s.consume(100); // clamped
        assert_eq!(s.ready(), b"");
        assert_eq!(s.heap_bytes(), 0);
        assert_eq!(s.next_seq(), Some(sq(11)));
    }

    #[test]
    fn pure_ack_is_empty() {
        let mut s = syn_stream();
        assert_eq!(s.on_segment(sq(12345), b"", false), SegmentOutcome::Empty);
        assert_eq!(s.next_seq(), Some(sq(0)));
        let mut fresh = Stream::new();
        assert_eq!(fresh.on_segment(77, b"", false), SegmentOutcome::Empty);
        assert_eq!(fresh.next_seq(), None);
    }

    #[test]
    fn out_of_order_waits_for_the_hole() {
        let mut s = syn_stream();
        assert_eq!(
            s.on_segment(sq(5), b"world", false),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(s.ready(), b"");
        assert!(s.has_pending_gap());
        assert_eq!(s.buffered_bytes(), 10); // the 5-byte hole is held too
        assert_eq!(
            s.on_segment(sq(0), b"hello", false),
            SegmentOutcome::InOrder
        );
        assert_eq!(s.ready(), b"helloworld");
        assert!(!s.has_pending_gap());
    }

    #[test]
    fn several_ranges_merge_when_holes_fill() {
        let mut s = syn_stream();
        assert_eq!(
            s.on_segment(sq(8), b"89", false),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(
            s.on_segment(sq(2), b"23", false),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(s.on_segment(sq(5), b"5", false), SegmentOutcome::OutOfOrder);
        assert_eq!(s.on_segment(sq(4), b"4", false), SegmentOutcome::OutOfOrder); // joins 2..6
        assert_eq!(
            s.on_segment(sq(6), b"67", false),
            SegmentOutcome::OutOfOrder
        ); // joins 2..10
        assert_eq!(s.ready(), b"");
        assert_eq!(s.on_segment(sq(0), b"01", false), SegmentOutcome::InOrder);
        assert_eq!(s.ready(), b"0123456789");
        assert!(!s.has_pending_gap());
    }

    #[test]
    fn segment_spanning_ranges_and_holes_fills_only_holes() {
        let mut s = syn_stream();
        s.on_segment(sq(2), b"cd", false);
        s.on_segment(sq(6), b"gh", false);
        // Covers both ranges; identical bytes there.
        assert_eq!(
            s.on_segment(sq(0), b"abcdefghij", false),
            SegmentOutcome::Overlap { conflicting: false }
        );
        assert_eq!(s.ready(), b"abcdefghij");
    }

    #[test]
    fn retransmissions_are_duplicates_and_first_bytes_win() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"abc", false);
        assert_eq!(
            s.on_segment(sq(0), b"abc", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(
            s.on_segment(sq(0), b"abX", false),
            SegmentOutcome::Duplicate { conflicting: true }
        );
        assert_eq!(s.ready(), b"abc");
        s.consume(3);
        // Consumed bytes are no longer held: cannot be compared.
        assert_eq!(
            s.on_segment(sq(0), b"XYZ", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn overlap_with_ready_bytes_identical_and_conflicting() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"abcd", false);
        assert_eq!(
            s.on_segment(sq(2), b"cdef", false),
            SegmentOutcome::Overlap { conflicting: false }
        );
        assert_eq!(s.ready(), b"abcdef");
        assert_eq!(
            s.on_segment(sq(4), b"XXgh", false),
            SegmentOutcome::Overlap { conflicting: true }
        );
        assert_eq!(s.ready(), b"abcdefgh");
    }

    #[test]
    fn overlap_with_out_of_order_bytes_first_seen_wins() {
        let mut s = syn_stream();
        s.on_segment(sq(10), b"KLMNO", false);
        assert_eq!(
            s.on_segment(sq(8), b"ijXX", false),
            SegmentOutcome::Overlap { conflicting: true }
        );
        assert_eq!(
            s.on_segment(sq(12), b"MNO", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(
            s.on_segment(sq(14), b"Zpq", false),
            SegmentOutcome::Overlap { conflicting: true }
        );
        s.on_segment(sq(0), b"abcdefgh", false);
        assert_eq!(s.ready(), b"abcdefghijKLMNOpq");
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let isn = u32::MAX - 3; // data starts at MAX-2, wraps after 3 bytes
        let mut s = Stream::new();
        s.on_syn(isn);
        let at = |off: u32| isn.wrapping_add(1).wrapping_add(off);
        assert_eq!(
            s.on_segment(at(6), b"ghi", false),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(s.on_segment(at(0), b"abcd", false), SegmentOutcome::InOrder);
        assert_eq!(s.on_segment(at(4), b"ef", false), SegmentOutcome::InOrder);
        assert_eq!(s.ready(), b"abcdefghi");
        assert_eq!(s.next_seq(), Some(6)); // (MAX - 2) + 9 wraps to 6
        assert_eq!(
            s.on_segment(at(2), b"cd", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(s.on_segment(at(9), b"j", true), SegmentOutcome::InOrder);
        assert!(s.finished());
    }

    #[test]
    fn mid_connection_start_uses_first_data_segment() {
        let mut s = Stream::new();
        assert_eq!(s.on_segment(5000, b"abc", false), SegmentOutcome::InOrder);
        assert_eq!(s.next_seq(), Some(5003));
        assert_eq!(
            s.on_segment(4990, b"0123456789", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(
            s.on_segment(4998, b"xxabcd", false),
            SegmentOutcome::Overlap { conflicting: false }
        );
        assert_eq!(s.ready(), b"abcd");
        // A SYN consistent with the start is accepted, another one is a conflict.
        assert_eq!(s.on_syn(4999), SynOutcome::Accepted);
        assert_eq!(s.on_syn(4999), SynOutcome::Retransmission);
        assert_eq!(s.on_syn(1), SynOutcome::Conflict);
        assert_eq!(s.ready(), b"abcd");
    }

    #[test]
    fn syn_with_data_and_syn_retransmissions() {
        let mut s = Stream::new();
        assert_eq!(s.on_syn(ISN), SynOutcome::Accepted);
        assert_eq!(
            s.on_segment(ISN.wrapping_add(1), b"syn-data", false),
            SegmentOutcome::InOrder
        );
        assert_eq!(s.on_syn(ISN), SynOutcome::Retransmission);
        assert_eq!(s.on_syn(ISN + 7), SynOutcome::Conflict);
        assert_eq!(s.ready(), b"syn-data");
    }

    #[test]
    fn fin_marks_the_end() {
        let mut s = syn_stream();
        assert_eq!(s.on_segment(sq(0), b"abc", true), SegmentOutcome::InOrder);
        assert!(s.finished());
        assert_eq!(s.ready(), b"abc"); // finished, bytes still readable
        assert_eq!(
            s.on_segment(sq(0), b"abc", true),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(s.on_segment(sq(3), b"", true), SegmentOutcome::Empty);
        assert_eq!(
            s.on_segment(sq(3), b"zz", false),
            SegmentOutcome::EndConflict
        );
        assert_eq!(
            s.on_segment(sq(1), b"bcde", false),
            SegmentOutcome::EndConflict
        );
        assert_eq!(s.on_segment(sq(2), b"", true), SegmentOutcome::EndConflict);
        assert_eq!(drain(&mut s), b"abc");
        assert!(s.finished());
    }

    #[test]
    fn fin_before_missing_data_waits_then_finishes() {
        let mut s = syn_stream();
        assert_eq!(s.on_segment(sq(4), b"", true), SegmentOutcome::Empty);
        assert!(!s.finished());
        assert!(s.has_pending_gap());
        assert_eq!(s.on_segment(sq(0), b"ab", false), SegmentOutcome::InOrder);
        assert!(!s.finished());
        assert_eq!(
            s.on_segment(sq(2), b"cdEF", false),
            SegmentOutcome::EndConflict
        );
        assert_eq!(s.ready(), b"abcd");
        assert!(s.finished());
        // A FIN before bytes already received is ignored.
        let mut t = syn_stream();
        t.on_segment(sq(0), b"abcdef", false);
        assert_eq!(
            t.on_segment(sq(0), b"ab", true),
            SegmentOutcome::EndConflict
        );
        assert!(!t.finished());
    }

    #[test]
    fn rst_ends_the_stream_at_the_highest_byte() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"ab", false);
        s.on_segment(sq(5), b"fg", false);
        s.on_rst();
        assert!(s.has_pending_gap());
        assert!(!s.finished());
        // A late byte inside the hole is still accepted.
        assert_eq!(s.on_segment(sq(2), b"c", false), SegmentOutcome::InOrder);
        assert_eq!(drain(&mut s), b"abc");
        assert_eq!(s.skip_gap(), Some(2));
        assert_eq!(drain(&mut s), b"fg");
        assert!(s.finished());
        assert_eq!(
            s.on_segment(sq(7), b"h", false),
            SegmentOutcome::EndConflict
        );
        let mut t = Stream::new();
        t.on_rst();
        assert!(t.finished());
        assert_eq!(t.on_segment(1, b"x", false), SegmentOutcome::EndConflict);
    }

    #[test]
    fn skip_gap_reports_exact_loss_and_delivery_continues() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"01234", false);
        s.on_segment(sq(12), b"CDEFGHIJ", false);
        assert_eq!(drain(&mut s), b"01234");
        assert!(s.has_pending_gap());
        assert_eq!(s.skip_gap(), Some(7));
        assert_eq!(s.consumed_offset(), 12);
        assert_eq!(s.on_segment(sq(20), b"KL", false), SegmentOutcome::InOrder);
        assert_eq!(drain(&mut s), b"CDEFGHIJKL");
        assert_eq!(s.skip_gap(), None);
        // The skipped bytes arriving late are old.
        assert_eq!(
            s.on_segment(sq(5), b"56789AB", false),
            SegmentOutcome::Duplicate { conflicting: false }
        );
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn skip_gap_discards_ready_bytes_before_the_hole() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"partial", false);
        s.on_segment(sq(10), b"next", false);
        assert_eq!(s.skip_gap(), Some(3));
        assert_eq!(s.ready(), b"next");
    }

    #[test]
    fn skip_gap_up_to_a_known_fin() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"abcde", false);
        s.on_segment(sq(10), b"", true);
        assert_eq!(drain(&mut s), b"abcde");
        assert_eq!(s.skip_gap(), Some(5));
        assert!(s.finished());
        assert!(!s.has_pending_gap());
        assert_eq!(s.skip_gap(), None);
    }

    #[test]
    fn beyond_window_both_directions() {
        let mut s = syn_stream();
        s.on_segment(sq(0), b"abc", false);
        assert_eq!(
            s.on_segment(sq(3 + MAX_SEQ_AHEAD + 1), b"x", false),
            SegmentOutcome::BeyondWindow
        );
        assert_eq!(
            s.on_segment(sq(3).wrapping_sub(MAX_SEQ_BEHIND + 1), b"x", false),
            SegmentOutcome::BeyondWindow
        );
        assert_eq!(
            s.on_segment(sq(3 + MAX_SEQ_AHEAD + 1), b"", true),
            SegmentOutcome::BeyondWindow
        );
        assert!(!s.has_pending_gap());
        assert_eq!(s.ready(), b"abc");
    }

    #[test]
    fn buffered_bytes_limit() {
        let max = MAX_BUFFERED_PER_DIRECTION as u32;
        let mut s = syn_stream();
        assert_eq!(
            s.on_segment(sq(max - 10), &[7; 20], false),
            SegmentOutcome::LimitReached {
                limit: Limit::BufferedBytes
            }
        );
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(
            s.on_segment(sq(max - 20), &[7; 20], true),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(s.buffered_bytes(), MAX_BUFFERED_PER_DIRECTION);
        // Filling holes inside the span is always possible.
        assert_eq!(
            s.on_segment(sq(0), &[1; 100], false),
            SegmentOutcome::InOrder
        );
        assert!(s.heap_bytes() <= MAX_CAPACITY);
        assert_eq!(s.skip_gap(), Some(u64::from(max) - 120));
        assert_eq!(s.ready(), &[7; 20][..]);
        assert!(s.finished());

        // Ready bytes the consumer never takes hit the same limit.
        let mut t = syn_stream();
        let big = vec![1u8; MAX_BUFFERED_PER_DIRECTION];
        assert_eq!(t.on_segment(sq(0), &big, false), SegmentOutcome::InOrder);
        assert_eq!(
            t.on_segment(sq(max), b"x", false),
            SegmentOutcome::LimitReached {
                limit: Limit::BufferedBytes
            }
        );
        t.consume(1);
        assert_eq!(t.on_segment(sq(max), b"x", false), SegmentOutcome::InOrder);
        assert_eq!(t.ready().len(), MAX_BUFFERED_PER_DIRECTION);
        assert_eq!(t.ready().last(), Some(&b'x'));
    }

    #[test]
    fn out_of_order_range_limit() {
        let mut s = syn_stream();
        for i in 0..MAX_OOO_RANGES as u32 {
            assert_eq!(
                s.on_segment(sq(2 + 2 * i), &[i as u8], false),
                SegmentOutcome::OutOfOrder
            );
        }
        let past = 2 + 2 * MAX_OOO_RANGES as u32;
        assert_eq!(
            s.on_segment(sq(past + 1), b"z", false),
            SegmentOutcome::LimitReached {
                limit: Limit::OooRanges
            }
        );
        // Touching an existing range adds none: still accepted.
        assert_eq!(
            s.on_segment(sq(past - 1), b"y", false),
            SegmentOutcome::OutOfOrder
        );
        assert_eq!(s.on_segment(sq(3), b"h", false), SegmentOutcome::OutOfOrder);
        assert_eq!(s.skip_gap(), Some(2));
        assert_eq!(s.ready(), &[0, b'h', 1]);
    }

    #[test]
    fn consumer_parses_payload_in_place_and_only_the_tail_is_kept() {
        let mut s = syn_stream();
        let mut seen = Vec::new();
        let out = s.on_segment_with(sq(0), b"PDU1PDU2", false, |d| {
            seen.push(d.to_vec());
            d.len()
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!(s.heap_bytes(), 0); // nothing was buffered
        let out = s.on_segment_with(sq(8), b"PDU3PD", false, |d| {
            seen.push(d.to_vec());
            4
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!(s.ready(), b"PD");
        // Next segment: the consumer sees tail + new bytes together.
        let out = s.on_segment_with(sq(14), b"U4", false, |d| {
            seen.push(d.to_vec());
            usize::MAX // clamped
        });
        assert_eq!(out, SegmentOutcome::InOrder);
        assert_eq!(
            seen,
            [b"PDU1PDU2".to_vec(), b"PDU3PD".to_vec(), b"PDU4".to_vec()]
        );
        assert_eq!(s.ready(), b"");
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn consumer_is_called_only_when_bytes_become_ready() {
        let mut s = syn_stream();
        let mut calls = Vec::new();
        s.on_segment_with(sq(4), b"efgh", false, |d| {
            calls.push(d.to_vec());
            0
        });
        s.on_segment_with(sq(4), b"efgh", false, |d| {
            calls.push(d.to_vec());
            0
        });
        assert!(calls.is_empty());
        s.on_segment_with(sq(0), b"abcd", false, |d| {
            calls.push(d.to_vec());
            2
        });
        assert_eq!(calls, [b"abcdefgh".to_vec()]);
        assert_eq!(s.ready(), b"cdefgh");
    }

    #[test]
    fn long_stream_with_partial_consumption_stays_bounded() {
        let mut s = syn_stream();
        let seg: Vec<u8> = (0..1460u32).map(|i| (i % 251) as u8).collect();
        let mut off = 0u32;
        let mut total = 0usize;
        for _ in 0..4000 {
            // Consumer takes whole 1000-byte "PDUs" only.
            s.on_segment_with(sq(off), &seg, false, |d| {
                let n = d.len() / 1000 * 1000;
                total += n;
                n
            });
            off += seg.len() as u32;
            assert!(s.ready().len() < 1000);
            assert!(s.heap_bytes() <= 4 * 1460, "{}", s.heap_bytes());
        }
        assert_eq!(total + s.ready().len(), 4000 * 1460);
    }

    #[test]
    fn many_drained_streams_cost_only_their_struct() {
        // 200,000 streams x 64 bytes = 12.8 MB of structs, no heap once drained.
        assert!(std::mem::size_of::<Stream>() <= 64);
        let mut streams: Vec<Stream> = (0..200_000).map(|_| Stream::new()).collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.on_syn(i as u32);
            let seq = (i as u32).wrapping_add(1);
            if i % 2 == 0 {
                s.on_segment_with(seq, b"\x05\x00\x0b\x03", false, |d| d.len());
            } else {
                s.on_segment(seq, b"\x05\x00\x0b\x03", false);
                assert_eq!(drain(s), b"\x05\x00\x0b\x03");
            }
        }
        assert!(
            streams
                .iter()
                .all(|s| s.buffered_bytes() == 0 && s.heap_bytes() == 0)
        );
    }

    #[test]
    fn shrink_releases_excess_capacity() {
        let mut s = syn_stream();
        s.on_segment(sq(0), &[1; 10_000], false);
        s.consume(9_990);
        s.shrink();
        assert_eq!(s.ready(), &[1; 10][..]);
        assert!(s.heap_bytes() < 100);
        s.consume(10);
        s.shrink();
        assert_eq!(s.heap_bytes(), 0);
    }

    /// Deterministic shuffle (splitmix64), shared with the property tests.
    pub(super) fn shuffle<T>(v: &mut [T], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            v.swap(i, (z % (i as u64 + 1)) as usize);
        }
    }

    #[test]
    fn one_byte_segments_shuffled_8k() {
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut order: Vec<u32> = (0..8192).collect();
        shuffle(&mut order, 42);
        let mut s = syn_stream();
        for &o in &order {
            let out = s.on_segment(sq(o), &data[o as usize..o as usize + 1], o == 8191);
            assert!(
                matches!(out, SegmentOutcome::InOrder | SegmentOutcome::OutOfOrder),
                "{out:?}"
            );
            assert!(s.heap_bytes() <= 2 * 8192 + MAX_OOO_RANGES * RANGE_COST + 64);
        }
        assert_eq!(drain(&mut s), data);
        assert!(s.finished());
        assert_eq!(s.heap_bytes(), 0);
    }

    #[test]
    fn one_byte_segments_shuffled_64k_with_limit_policy() {
        // Too fragmented for MAX_OOO_RANGES: the caller skips gaps on LimitReached and feeds the
        // segment again. Every offset is then either delivered (with the right byte) or lost.
        let n = 65536u32;
        let data: Vec<u8> = (0..n).map(|i| (i * 13 % 256) as u8).collect();
        let mut order: Vec<u32> = (0..n).collect();
        shuffle(&mut order, 7);
        let mut s = syn_stream();
        let (mut pos, mut lost, mut limits) = (0usize, 0u64, 0);
        let check = |s: &mut Stream, pos: &mut usize| {
            let r = s.ready();
            assert_eq!(r, &data[*pos..*pos + r.len()]);
            *pos += r.len();
            s.consume(r.len());
        };
        for &o in &order {
            let seg = [data[o as usize]];
            let mut out = s.on_segment(sq(o), &seg, o == n - 1);
            if let SegmentOutcome::LimitReached { .. } = out {
                limits += 1;
                check(&mut s, &mut pos);
                let l = s.skip_gap().expect("a gap to skip");
                pos += l as usize;
                lost += l;
                out = s.on_segment(sq(o), &seg, o == n - 1);
            }
            assert!(!matches!(out, SegmentOutcome::LimitReached { .. }));
            check(&mut s, &mut pos);
        }
        while let Some(l) = s.skip_gap() {
            pos += l as usize;
            lost += l;
            check(&mut s, &mut pos);
        }
        assert!(limits > 0);
        assert_eq!(pos, n as usize);
        assert!(lost > 0 && lost < u64::from(n));
        assert!(s.finished());
    }
}

#[cfg(test)]
mod props {
    //! Reassembly yields the same bytes however the stream is cut, reordered or duplicated.
    use super::tests::shuffle;
    use super::*;
    use proptest::prelude::*;

    /// splitmix64, driven by a proptest-chosen seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A segment to send: offset, length, FIN.
    #[derive(Clone, Copy, Debug)]
    struct Seg(usize, usize, bool);

    /// Checks delivered bytes against the original as they come out.
    struct Sink<'a> {
        data: &'a [u8],
        pos: usize,
        lost: u64,
        gaps: u32,
    }
    impl Sink<'_> {
        fn deliver(&mut self, bytes: &[u8]) {
            assert_eq!(
                bytes,
                &self.data[self.pos..self.pos + bytes.len()],
                "at {}",
                self.pos
            );
            self.pos += bytes.len();
        }
    }

    /// Cut `data` into pieces of 1..=max_seg bytes; the last carries FIN.
    fn cut(len: usize, max_seg: usize, rng: &mut Rng) -> Vec<Seg> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < len {
            let n = (1 + rng.below(max_seg)).min(len - off);
            v.push(Seg(off, n, off + n == len));
            off += n;
        }
        v
    }

    /// Feed every segment (random API, random partial drains), then drain, skipping gaps.
    fn run<'a>(data: &'a [u8], isn: u32, segs: &[Seg], syn: bool, rng: &mut Rng) -> Sink<'a> {
        let mut s = Stream::new();
        let mut sink = Sink {
            data,
            pos: 0,
            lost: 0,
            gaps: 0,
        };
        if syn {
            assert_eq!(s.on_syn(isn), SynOutcome::Accepted);
        }
        for &Seg(off, len, fin) in segs {
            if syn && rng.below(20) == 0 {
                assert_eq!(s.on_syn(isn), SynOutcome::Retransmission);
            }
            let seq = isn.wrapping_add(1).wrapping_add(off as u32);
            let payload = &data[off..off + len];
            let out = if rng.below(2) == 0 {
                s.on_segment(seq, payload, fin)
            } else {
                let r = rng.next();
                s.on_segment_with(seq, payload, fin, |d| {
                    let n = (r % (d.len() as u64 + 1)) as usize;
                    sink.deliver(&d[..n]);
                    n
                })
            };
            assert!(
                matches!(
                    out,
                    SegmentOutcome::Empty
                        | SegmentOutcome::InOrder
                        | SegmentOutcome::OutOfOrder
                        | SegmentOutcome::Duplicate { conflicting: false }
                        | SegmentOutcome::Overlap { conflicting: false }
                ),
                "{out:?}"
            );
            if rng.below(2) == 0 {
                let r = s.ready();
                let n = rng.below(r.len() + 1);
                sink.deliver(&r[..n]);
                s.consume(n);
            }
            assert!(s.buffered_bytes() <= data.len());
        }
        loop {
            while !s.ready().is_empty() {
                let n = 1 + rng.below(s.ready().len());
                sink.deliver(&s.ready()[..n]);
                s.consume(n);
            }
            match s.skip_gap() {
                Some(l) => {
                    sink.pos += l as usize;
                    sink.lost += l;
                    sink.gaps += 1;
                }
                None => break,
            }
        }
        assert!(s.finished());
        assert!(!s.has_pending_gap());
        assert_eq!(s.buffered_bytes(), 0);
        assert_eq!(s.heap_bytes(), 0);
        sink
    }

    fn isn() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (u32::MAX - 8192)..=u32::MAX]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Cut, duplicated, overlapping re-sends, shuffled: exactly the original bytes.
        #[test]
        fn any_cut_order_and_duplication_yields_the_original(
            data in proptest::collection::vec(any::<u8>(), 0..6000),
            isn in isn(),
            max_seg in 1usize..300,
            seed in any::<u64>(),
            syn in any::<bool>(),
        ) {
            let mut rng = Rng(seed);
            let pieces = cut(data.len(), max_seg, &mut rng);
            let mut segs = pieces.clone();
            segs.push(Seg(data.len(), 0, true)); // a FIN-only segment too
            for _ in 0..rng.below(pieces.len() + 1) {
                segs.push(pieces[rng.below(pieces.len())]); // exact duplicates
            }
            if !data.is_empty() {
                for _ in 0..rng.below(pieces.len() / 2 + 1) {
                    // overlapping re-sends with consistent content
                    let x = rng.below(data.len());
                    let y = (x + 1 + rng.below(2 * max_seg)).min(data.len());
                    segs.push(Seg(x, y - x, y == data.len()));
                }
            }
            shuffle(&mut segs, rng.next());
            if !syn {
                // Mid-connection start: the first segment seen defines offset 0.
                let first = segs.iter().position(|s| s.0 == 0 && (s.1 > 0 || data.is_empty()));
                if let Some(i) = first {
                    segs.swap(0, i);
                }
            }
            let sink = run(&data, isn, &segs, syn, &mut rng);
            prop_assert_eq!(sink.pos, data.len());
            prop_assert_eq!(sink.lost, 0);
            prop_assert_eq!(sink.gaps, 0);
        }

        /// One segment never arrives: the original minus exactly that range, one gap of its length.
        #[test]
        fn one_missing_segment_is_one_exact_gap(
            data in proptest::collection::vec(any::<u8>(), 2..6000),
            isn in isn(),
            max_seg in 1usize..300,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng(seed);
            let pieces = cut(data.len(), max_seg, &mut rng);
            prop_assume!(pieces.len() >= 2);
            let gone = rng.below(pieces.len());
            let Seg(rx, rlen, _) = pieces[gone];
            let ry = rx + rlen;
            let outside = |s: &Seg| s.0 + s.1 <= rx || s.0 >= ry;
            let mut segs: Vec<Seg> = pieces.iter().copied().filter(|s| s.0 != rx).collect();
            segs.push(Seg(data.len(), 0, true));
            for _ in 0..rng.below(pieces.len() + 1) {
                let s = pieces[rng.below(pieces.len())];
                if outside(&s) {
                    segs.push(s);
                }
            }
            for _ in 0..rng.below(pieces.len() / 2 + 1) {
                let x = rng.below(data.len());
                let y = (x + 1 + rng.below(2 * max_seg)).min(data.len());
                let s = Seg(x, y - x, y == data.len());
                if outside(&s) {
                    segs.push(s);
                }
            }
            shuffle(&mut segs, rng.next());
            let sink = run(&data, isn, &segs, true, &mut rng);
            prop_assert_eq!(sink.pos, data.len());
            prop_assert_eq!(sink.gaps, 1);
            prop_assert_eq!(sink.lost, rlen as u64);
        }

        /// Arbitrary operations never panic and never break the limits.
        #[test]
        fn arbitrary_operations_stay_within_limits(
            ops in proptest::collection::vec((0u8..8, any::<u32>(), any::<u16>(), any::<bool>()), 1..200),
        ) {
            let mut s = Stream::new();
            let big = vec![0xA5u8; 70_000];
            for (op, x, n, fin) in ops {
                let near = s.next_seq().unwrap_or(x).wrapping_add(x % 4096).wrapping_sub(1024);
                let len = usize::from(n) % 3000;
                match op {
                    0 => { s.on_syn(x); }
                    1 => { s.on_segment(x, &big[..len], fin); }
                    2 | 3 => { s.on_segment(near, &big[..len], fin); }
                    4 => { s.on_segment_with(near, &big[..usize::from(n).min(big.len())], fin, |d| d.len() / 2); }
                    5 => s.consume(usize::from(n)),
                    6 => { s.skip_gap(); }
                    _ => if fin { s.on_rst() } else { s.shrink() },
                }
                prop_assert!(s.buffered_bytes() <= MAX_BUFFERED_PER_DIRECTION);
                prop_assert!(s.ready().len() <= s.buffered_bytes());
                prop_assert!(s.heap_bytes() <= MAX_CAPACITY + MAX_OOO_RANGES * RANGE_COST + 64);
            }
        }

        /// 1-byte segments in random order, some sent twice.
        #[test]
        fn one_byte_segments_shuffled(
            data in proptest::collection::vec(any::<u8>(), 1..4096),
            isn in isn(),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng(seed);
            let mut segs: Vec<Seg> = (0..data.len()).map(|o| Seg(o, 1, o + 1 == data.len())).collect();
            for _ in 0..rng.below(64) {
                let o = rng.below(data.len());
                segs.push(Seg(o, 1, o + 1 == data.len()));
            }
            shuffle(&mut segs, rng.next());
            let sink = run(&data, isn, &segs, true, &mut rng);
            prop_assert_eq!(sink.pos, data.len());
            prop_assert_eq!(sink.gaps, 0);
        }
    }
}
