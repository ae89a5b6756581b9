//! Packet time and wire timestamps: capture timestamps as nanoseconds since the Unix epoch,
//! Windows FILETIME (100 ns since 1601-01-01, kms-protocol.md "Conventions"), RFC 3339 text.

use std::cell::Cell;
use std::fmt;

use crate::output::text::pair;

/// Capture time: nanoseconds since 1970-01-01T00:00:00Z (may be negative for bogus captures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

/// FILETIME ticks between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

impl Ts {
    /// From seconds and a fraction expressed in nanoseconds (saturating).
    pub fn from_parts(secs: i64, nanos: i64) -> Ts {
        Ts(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// A Windows FILETIME as a `Ts` (saturating for values beyond the i64 range).
    pub fn from_filetime(ft: u64) -> Ts {
        let ticks = i64::try_from(ft).unwrap_or(i64::MAX);
        Ts(ticks
            .saturating_sub(FILETIME_UNIX_EPOCH)
            .saturating_mul(100))
    }

    /// Whole seconds since the Unix epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Milliseconds from `earlier` to `self`, as a float.
    pub fn millis_since(self, earlier: Ts) -> f64 {
        (self.0.saturating_sub(earlier.0)) as f64 / 1e6
    }

    /// Formats as RFC 3339 UTC with microseconds: `2026-11-23T15:10:04.123456Z`.
    pub fn rfc3339_micros(self) -> Rfc3339 {
        Rfc3339 {
            secs: self.secs(),
            sub_ns: self.0.rem_euclid(1_000_000_000),
            micros: true,
        }
    }

    /// Formats as RFC 3339 UTC to the second: `2026-11-23T15:10:04Z`.
    pub fn rfc3339_secs(self) -> Rfc3339 {
        Rfc3339 {
            secs: self.secs(),
            sub_ns: 0,
            micros: false,
        }
    }

    /// The calendar date `YYYY-MM-DD`.
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days(self.secs().div_euclid(86_400))
    }
}

/// Display adaptor returned by [`Ts::rfc3339_micros`] and [`Ts::rfc3339_secs`].
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    secs: i64,
    sub_ns: i64,
    micros: bool,
}

/// A FILETIME (100 ns ticks since 1601) as seconds since the Unix epoch; exact over the whole u64 range.
pub fn filetime_unix_secs(ft: u64) -> i64 {
    (ft / 10_000_000) as i64 - FILETIME_UNIX_EPOCH / 10_000_000
}

/// Formats a FILETIME as RFC 3339 UTC to the second, over its whole range (1601 to year 60056).
pub fn filetime_rfc3339(ft: u64) -> Rfc3339 {
    Rfc3339 {
        secs: filetime_unix_secs(ft),
        sub_ns: 0,
        micros: false,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch, when the year is in 0000..=9999.
fn date_time(secs: i64) -> Option<[u8; 19]> {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
    let [y1, y2, mm, dd, hh, mi, ss] =
        [y / 100, y, m, d, sod / 3600, sod / 60 % 60, sod % 60].map(pair);
    Some([
        y1[0], y1[1], y2[0], y2[1], b'-', mm[0], mm[1], b'-', dd[0], dd[1], b'T', hh[0], hh[1],
        b':', mi[0], mi[1], b':', ss[0], ss[1],
    ])
}

/// The text of a whole second in the buffer the fast path formats into: `YYYY-MM-DDTHH:MM:SS`,
/// and after it the tail of one form (`.000000Z` or `Z`).
type SecondText = [u8; 32];

/// No second: `Ts::secs` of an `i64` of nanoseconds is never this.
const NO_SECOND: i64 = i64::MIN;

impl Rfc3339 {
    /// The common case (years 0000..=9999) written into `b`; returns the length (27 with micros,
    /// 20 without). Every event carries at least one timestamp, so this avoids `core::fmt`
    /// (several times dearer). Consecutive events mostly fall in the same second: the text of the
    /// last second formatted is kept (per thread, one for each form, so that the event times and
    /// the KMS client times of the same calls do not evict each other) and only the fraction is
    /// formatted then.
    #[inline]
    fn fill(&self, b: &mut SecondText) -> Option<usize> {
        thread_local! {
            static LAST: [Cell<(i64, SecondText)>; 2] =
                const { [Cell::new((NO_SECOND, [0; 32])), Cell::new((NO_SECOND, [0; 32]))] };
        }
        LAST.with(|last| {
            let slot = &last[usize::from(self.micros)];
            let (secs, text) = slot.get();
            if secs == self.secs && secs != NO_SECOND {
                *b = text;
                return Some(());
            }
            let dt = date_time(self.secs)?;
            *b = [0; 32];
            b[..19].copy_from_slice(&dt);
            if self.micros {
                b[19..27].copy_from_slice(b".000000Z");
            } else {
                b[19] = b'Z';
            }
            slot.set((self.secs, *b));
            Some(())
        })?;
        if !self.micros {
            return Some(20);
        }
        // Two digits at a time (this runs for every event).
        let micros = (self.sub_ns / 1000) as u32;
        let [x, y, z] = [micros / 10_000, micros / 100, micros].map(pair);
        b[20..26].copy_from_slice(&[x[0], x[1], y[0], y[1], z[0], z[1]]);
        Some(27)
    }

    /// The text as a `String` (the same as `to_string`, without `core::fmt` in the common case).
    pub fn text(&self) -> String {
        let mut b = [0; 32];
        match self.fill(&mut b) {
            // Digits and separators: always UTF-8.
            Some(n) => std::str::from_utf8(b.get(..n).unwrap_or_default())
                .unwrap_or_default()
                .to_owned(),
            None => self.to_string(),
        }
    }

    /// Appends the text to `out` (the same bytes as `Display`, without `core::fmt` in the common
    /// case).
    #[inline]
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut b = [0; 32];
        match self.fill(&mut b) {
            // Fixed-size copies the compiler inlines.
            Some(27) => out.extend_from_slice(&b[..27]),
            Some(n) => out.extend_from_slice(b.get(..n).unwrap_or_default()),
            None => {
                use std::io::Write as _;
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    }
}

impl Ts {
    /// `HH:MM:SS` (UTC) of the time: bytes 11 to 19 of its RFC 3339 text, from the same
    /// per-second cache. (The years of `i64` nanoseconds, 1677 to 2262, are all in the fast path.)
    pub fn hms(self) -> [u8; 8] {
        let mut b = [0; 32];
        let mut t = [b'?'; 8];
        if self.rfc3339_secs().fill(&mut b).is_some() {
            t.copy_from_slice(&b[11..19]);
        }
        t
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = [0; 32];
        if let Some(n) = self.fill(&mut b) {
            let text = b.get(..n).ok_or(fmt::Error)?;
            return f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?);
        }
        let (secs, sub_ns) = (self.secs, self.sub_ns);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )?;
        if self.micros {
            write!(f, ".{:06}", sub_ns / 1000)?;
        }
        f.write_str("Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01 (inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_from_spec_vector() {
        // kms-protocol.md TV-4: 134399202000000000 = 2026-11-23T15:10:00Z
        let t = Ts::from_filetime(134_399_202_000_000_000);
        assert_eq!(t.rfc3339_secs().to_string(), "2026-11-23T15:10:00Z");
        assert_eq!(
            t.rfc3339_micros().to_string(),
            "2026-11-23T15:10:00.000000Z"
        );
        let t = Ts::from_filetime(134_399_202_010_000_000);
        assert_eq!(t.rfc3339_secs().to_string(), "2026-11-23T15:10:01Z");
    }

    #[test]
    fn calendar_round_trip() {
        for days in [
            -800_000i64,
            -1,
            0,
            1,
            59,
            60,
            365,
            10_957,
            20_780,
            2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            Ts(-1).rfc3339_micros().to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(filetime_rfc3339(0).to_string(), "1601-01-01T00:00:00Z");
        assert_eq!(
            filetime_rfc3339(134_399_202_010_000_000).to_string(),
            "2026-11-23T15:10:01Z"
        );
        assert_eq!(Ts::from_filetime(u64::MAX).secs(), i64::MAX / 1_000_000_000);
    }

    /// The reference text, built with `core::fmt` only.
    fn slow_text(secs: i64, sub_ns: i64, micros: bool) -> String {
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let mut s = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        if micros {
            s.push_str(&format!(".{:06}", sub_ns / 1000));
        }
        s.push('Z');
        s
    }

    #[test]
    fn second_cache_crosses_seconds_days_and_forms() {
        // Steps that stay in the second, cross a second, a day, a month and a year end, go back in
        // time, and interleave the two forms (event times and client times).
        let base = 1_703_980_799i64; // 2023-12-30T23:59:59Z
        let mut times = Vec::new();
        for secs in [base, base + 1, base + 86_400, base + 86_401, 0, -1, base] {
            for sub in [0, 999, 1_000, 123_456_789, 999_999_999] {
                times.push(Ts(secs * 1_000_000_000 + sub));
            }
        }
        for t in times {
            let (secs, sub) = (t.secs(), t.0.rem_euclid(1_000_000_000));
            let micros = slow_text(secs, sub, true);
            let whole = slow_text(secs, 0, false);
            for _ in 0..2 {
                assert_eq!(t.rfc3339_micros().text(), micros);
                assert_eq!(t.rfc3339_secs().text(), whole);
                let mut out = Vec::new();
                t.rfc3339_micros().write_to(&mut out);
                assert_eq!(out, micros.as_bytes());
                assert_eq!(t.hms(), micros.as_bytes()[11..19]);
            }
        }
        // Out of range (the general path) and back.
        assert_eq!(
            filetime_rfc3339(u64::MAX).text(),
            filetime_rfc3339(u64::MAX).to_string()
        );
        assert_eq!(Ts(0).rfc3339_secs().text(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn fast_path_matches_write_for_every_field_width() {
        for (t, micros) in [
            (Ts(0), "1970-01-01T00:00:00.000000Z"),
            (Ts(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456Z"),
            (Ts(-1_000), "1969-12-31T23:59:59.999999Z"),
        ] {
            assert_eq!(t.rfc3339_micros().to_string(), micros);
            assert_eq!(t.rfc3339_secs().to_string(), format!("{}Z", &micros[..19]));
        }
        assert_eq!(
            filetime_rfc3339(2_650_467_743_990_000_000).to_string(),
            "9999-12-31T23:59:59Z"
        );
        // Outside 0000..=9999 the general path is taken.
        assert_eq!(
            filetime_rfc3339(2_650_467_744_000_000_000).to_string(),
            "10000-01-01T00:00:00Z"
        );
        assert_eq!(filetime_rfc3339(u64::MAX).to_string().len(), 21);
        for r in [
            Ts(0).rfc3339_micros(),
            Ts(-1_000).rfc3339_secs(),
            filetime_rfc3339(2_650_467_743_990_000_000),
            filetime_rfc3339(2_650_467_744_000_000_000),
            filetime_rfc3339(u64::MAX),
            Ts(i64::MIN).rfc3339_micros(),
        ] {
            let mut out = b"x".to_vec();
            r.write_to(&mut out);
            assert_eq!(out, format!("x{r}").into_bytes());
            assert_eq!(r.text(), r.to_string());
        }
    }
}
