//! Bounded evidence lists: how often something was seen, the first few frames, and a short sample
//! of who was involved. The analysis keeps one of these per (check, subject) candidate, so memory
//! stays bounded however long the capture.

use smallvec::SmallVec;

use crate::time::Ts;

/// Frames remembered per evidence list (the lowest frame numbers, in order).
pub const MAX_EVIDENCE_FRAMES: usize = 8;
/// Distinct labels (clients, workstations, products) remembered per evidence list.
pub const MAX_EVIDENCE_LABELS: usize = 8;

/// How often something was seen, where first, and by whom.
///
/// `repr(C)`, in the order [`Evidence::add_labeled`] reads the fields: a busy list touches only
/// its first cache line per occurrence (its frames, once spilled, live on the heap and are not
/// read).
#[derive(Clone, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Evidence {
    /// Occurrences.
    pub count: u64,
    /// True when more distinct labels were seen than are kept.
    pub more_labels: bool,
    /// Packet time of the earliest and latest occurrence.
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    /// The last of [`Evidence::frames`] once it holds [`MAX_EVIDENCE_FRAMES`], 0 before (a list
    /// never holds frame 0): the steady state of a busy list, full and a later frame, is settled
    /// by this copy without reading the list.
    pub(super) full_last: u64,
    /// The first [`MAX_EVIDENCE_LABELS`] distinct labels, in order of first appearance (mostly
    /// one per list: the first is kept inline).
    pub labels: SmallVec<[String; 1]>,
    /// The lowest [`MAX_EVIDENCE_FRAMES`] frame numbers, ascending, without duplicates. Most
    /// lists (e.g. those of each client) hold one or two: kept inline, without an allocation.
    pub frames: SmallVec<[u64; 2]>,
}

impl Evidence {
    /// Records one occurrence at `frame`/`ts`.
    #[inline]
    pub fn add(&mut self, frame: u64, ts: Ts) {
        self.count += 1;
        self.add_frame(frame);
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
    }

    /// Records one occurrence with a label (e.g. the client's address or workstation).
    pub fn add_labeled(&mut self, frame: u64, ts: Ts, label: &str) {
        self.add(frame, ts);
        self.label(label);
    }

    /// Adds a frame to the evidence without counting an occurrence.
    #[inline]
    pub fn add_frame(&mut self, frame: u64) {
        // The steady state of a busy list: full, and a later frame (nothing to do).
        if self.full_last != 0 && frame > self.full_last {
            return;
        }
        self.add_frame_slow(frame);
        if self.frames.len() >= MAX_EVIDENCE_FRAMES {
            self.full_last = self.frames.last().copied().unwrap_or(0);
        }
    }

    fn add_frame_slow(&mut self, frame: u64) {
        if frame == 0 {
            return;
        }
        // Frames mostly arrive in ascending order: settle the common cases (a full list and a
        // later frame, or room and a later frame) without the binary search.
        match self.frames.last() {
            Some(&last) if frame > last => {
                if self.frames.len() < MAX_EVIDENCE_FRAMES {
                    self.frames.push(frame);
                }
                return;
            }
            None => {
                self.frames.push(frame);
                return;
            }
            _ => {}
        }
        if let Err(i) = self.frames.binary_search(&frame)
            && i < MAX_EVIDENCE_FRAMES
        {
            self.frames.insert(i, frame);
            self.frames.truncate(MAX_EVIDENCE_FRAMES);
        }
    }

    /// Adds a label without counting an occurrence.
    #[inline]
    pub fn label(&mut self, label: &str) {
        // A settled list can change no more: skip comparing the label with every kept one.
        if self.labels_settled() {
            return;
        }
        self.label_slow(label);
    }

    /// [`Evidence::label`] with an owned label (kept without a copy).
    pub fn label_owned(&mut self, label: String) {
        if self.labels_settled() || self.labels.contains(&label) {
            return;
        }
        if self.labels.len() < MAX_EVIDENCE_LABELS {
            self.labels.push(label);
        } else {
            self.more_labels = true;
        }
    }

    fn label_slow(&mut self, label: &str) {
        if self.labels.iter().any(|l| l == label) {
            return;
        }
        if self.labels.len() < MAX_EVIDENCE_LABELS {
            self.labels.push(label.to_string());
        } else {
            self.more_labels = true;
        }
    }

    /// True when [`Evidence::label`] can change nothing whatever the label: every slot is taken
    /// and the overflow is recorded (callers skip formatting labels then).
    #[inline]
    pub fn labels_settled(&self) -> bool {
        self.more_labels && self.labels.len() >= MAX_EVIDENCE_LABELS
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The labels as `a, b, c` (with `and more` when some were not kept).
    pub fn label_list(&self) -> String {
        join_list(&self.labels, self.more_labels)
    }

    /// Merges another evidence list into this one.
    pub fn merge(&mut self, other: &Evidence) {
        self.count += other.count;
        for f in &other.frames {
            self.add_frame(*f);
        }
        for l in &other.labels {
            self.label(l);
        }
        self.more_labels |= other.more_labels;
        if let Some(t) = other.first_ts {
            self.first_ts = Some(self.first_ts.map_or(t, |x| x.min(t)));
        }
        if let Some(t) = other.last_ts {
            self.last_ts = Some(self.last_ts.map_or(t, |x| x.max(t)));
        }
    }
}

/// `a, b, c` or `a, b, c and more`.
pub fn join_list(items: &[String], more: bool) -> String {
    let mut s = items.join(", ");
    if more {
        s.push_str(" and more");
    }
    s
}

/// Inserts `v` into a small set kept as a vector, up to `max` entries; returns false when the set
/// was full and `v` was new.
pub fn insert_bounded<T: PartialEq>(v: &mut Vec<T>, item: T, max: usize) -> bool {
    if v.contains(&item) {
        return true;
    }
    if v.len() >= max {
        return false;
    }
    v.push(item);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lowest_frames_in_order_and_counts_all() {
        let mut e = Evidence::default();
        for f in [30u64, 10, 20, 10, 50, 40, 60, 70, 80, 90, 5] {
            e.add(f, Ts(i64::try_from(f).unwrap()));
        }
        assert_eq!(e.count, 11);
        assert_eq!(e.frames[..], [5, 10, 20, 30, 40, 50, 60, 70]);
        assert_eq!(e.full_last, 70);
        // Once full, a later frame changes nothing; an earlier one still takes its place.
        e.add_frame(75);
        e.add_frame(7);
        assert_eq!(e.frames[..], [5, 7, 10, 20, 30, 40, 50, 60]);
        assert_eq!(e.full_last, 60);
        e.add_frame(65);
        assert_eq!(e.frames[..], [5, 7, 10, 20, 30, 40, 50, 60]);
        assert_eq!(e.first_ts, Some(Ts(5)));
        assert_eq!(e.last_ts, Some(Ts(90)));
    }

    #[test]
    fn labels_are_distinct_and_bounded() {
        let mut e = Evidence::default();
        for i in 0..12 {
            e.add_labeled(1, Ts(0), &format!("c{}", i % 10));
        }
        assert_eq!(e.labels.len(), MAX_EVIDENCE_LABELS);
        assert!(e.more_labels);
        assert!(e.label_list().ends_with(" and more"));
        let mut f = Evidence::default();
        f.add_labeled(3, Ts(1), "x");
        f.merge(&e);
        assert_eq!(f.count, 13);
        assert_eq!(f.frames[..], [1, 3]);
    }
}
