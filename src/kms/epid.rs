//! Host ePID ("extended PID") decoding (kms-protocol.md §4).
//!
//! Format `PPPPP-GGGGG-KKK-KKKKKK-CC-LLLL-BBBBB.0000-DDDYYYY`, e.g.
//! `03612-00206-556-123727-03-1033-17763.0000-2972018`. Every field is decoded independently and
//! left `None` when it does not parse; [`Epid::issues`] lists consistency problems that expose
//! emulators with random ePIDs (hints, not proof).

use std::fmt;

use crate::time::{civil_from_days, days_from_civil};

/// Platform id of Windows Vista / 7 / Server 2008 / 2008 R2 hosts (§4).
pub const PLATFORM_VISTA_7: u32 = 55041;
/// Platform id of Windows 8 / Server 2012 hosts.
pub const PLATFORM_8: u32 = 5426;
/// Platform id of Windows 8.1 / Server 2012 R2 hosts.
pub const PLATFORM_8_1: u32 = 6401;
/// Platform id of Windows 10 / 11 / Server 2016 and later hosts.
pub const PLATFORM_10: u32 = 3612;

/// A calendar date (the CSVLK installation day); displays as `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Days in `year` (proleptic Gregorian).
fn year_len(year: u16) -> u16 {
    let y = year;
    if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) {
        366
    } else {
        365
    }
}

/// Day-of-year (1-based) and year to a date; `None` when the day is 0 or past the year's end.
pub fn date_from_day_of_year(day: u16, year: u16) -> Option<Date> {
    if day == 0 || day > year_len(year) {
        return None;
    }
    let days = days_from_civil(i64::from(year), 1, 1) + i64::from(day) - 1;
    let (y, m, d) = civil_from_days(days);
    Some(Date {
        year: u16::try_from(y).ok()?,
        month: u8::try_from(m).ok()?,
        day: u8::try_from(d).ok()?,
    })
}

/// The decoded ePID (events.md `response.host`). Absent fields did not parse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Epid {
    /// PPPPP: host OS family (5 digits on the wire, e.g. `03612` → 3612).
    pub platform_id: Option<u32>,
    /// GGGGG: CSVLK group id.
    pub group_id: Option<u32>,
    /// KKK-KKKKKK as one number: KKK·10^6 + KKKKKK.
    pub key_id: Option<u64>,
    /// CC: license channel (3 = volume).
    pub channel: Option<u32>,
    /// LLLL: LCID of the host OS language (decimal; vlmcsd may use 5 digits).
    pub lcid: Option<u32>,
    /// BBBBB of `BBBBB.0000`: host OS build.
    pub os_build: Option<u32>,
    /// DDD of DDDYYYY: day of year the CSVLK was installed.
    pub install_day: Option<u16>,
    /// YYYY of DDDYYYY.
    pub install_year: Option<u16>,
    /// DDDYYYY as a date, when the day is valid for the year.
    pub key_installed: Option<Date>,
    /// True when the text had the expected 8 dash-separated parts of digits.
    pub well_formed: bool,
}

fn digits(s: &str, min: usize, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // At most a few ASCII digits (callers pass max ≤ 6): accumulate directly rather than going
    // through `str::parse`.
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn digits32(s: &str, min: usize, max: usize) -> Option<u32> {
    digits(s, min, max).and_then(|v| u32::try_from(v).ok())
}

/// Parses an ePID string (§4). Never fails: fields that do not parse are `None`.
pub fn parse_epid(s: &str) -> Epid {
    let mut e = Epid::default();
    // Exactly 8 dash-separated parts, split on the bytes without collecting into a Vec (a '-'
    // byte is always a char boundary in UTF-8).
    let mut parts = [""; 8];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'-' {
            let Some(slot) = parts.get_mut(n) else {
                return e;
            };
            *slot = s.get(start..i).unwrap_or("");
            n += 1;
            start = i + 1;
        }
    }
    match parts.get_mut(n) {
        Some(slot) if n == 7 => *slot = s.get(start..).unwrap_or(""),
        _ => return e,
    }
    let [p, g, k1, k2, cc, lcid, build, date] = parts;
    e.platform_id = digits32(p, 1, 5);
    e.group_id = digits32(g, 1, 5);
    if let (Some(hi), Some(lo)) = (digits(k1, 1, 3), digits(k2, 1, 6)) {
        e.key_id = Some(hi * 1_000_000 + lo);
    }
    e.channel = digits32(cc, 1, 2);
    e.lcid = digits32(lcid, 1, 5);
    let (b, suffix) = build.split_once('.').unwrap_or((build, ""));
    e.os_build = digits32(b, 1, 5);
    let suffix_ok = suffix == "0000";
    if date.len() >= 5 && date.is_ascii() {
        let (d, y) = date.split_at(date.len() - 4);
        e.install_day = digits(d, 1, 3).and_then(|v| u16::try_from(v).ok());
        e.install_year = digits(y, 4, 4).and_then(|v| u16::try_from(v).ok());
    }
    if let (Some(d), Some(y)) = (e.install_day, e.install_year) {
        e.key_installed = date_from_day_of_year(d, y);
    }
    e.well_formed = suffix_ok
        && e.platform_id.is_some()
        && e.group_id.is_some()
        && e.key_id.is_some()
        && e.channel.is_some()
        && e.lcid.is_some()
        && e.os_build.is_some()
        && e.install_day.is_some()
        && e.install_year.is_some();
    e
}

/// Release year of the first build of each Windows generation (lenient hint table).
const BUILD_RELEASE_YEAR: [(u32, u16); 11] = [
    (6000, 2006),
    (7600, 2009),
    (9200, 2012),
    (9600, 2013),
    (10240, 2015),
    (14393, 2016),
    (17763, 2018),
    (19041, 2019),
    (20348, 2021),
    (22621, 2022),
    (26100, 2024),
];

/// Known CSVLK key-id ranges (§4, py-kms `CsvlkItem` Min/MaxKeyId): (min, max, name, release year).
pub const CSVLK_KEY_RANGES: [(u64, u64, &str, u16); 4] = [
    (437_000_000, 458_999_999, "Office 2016", 2015),
    (491_000_000, 530_999_999, "Windows Server 2016", 2016),
    (551_000_000, 570_999_999, "Windows Server 2019", 2018),
    (666_000_000, 685_999_999, "Office 2019 / LTSC 2024", 2018),
];

/// Hosts below this build (Vista / Server 2008, builds 6000–6002) cannot hold any CSVLK of
/// [`CSVLK_KEY_RANGES`] (all need Windows 7 / Server 2008 R2 or later).
const MIN_BUILD_FOR_KNOWN_CSVLKS: u32 = 7600;

impl Epid {
    /// The CSVLK the key id belongs to, when it falls in a known range: (name, release year).
    pub fn csvlk(&self) -> Option<(&'static str, u16)> {
        let k = self.key_id?;
        CSVLK_KEY_RANGES
            .iter()
            .find(|(lo, hi, _, _)| (*lo..=*hi).contains(&k))
            .map(|(_, _, n, y)| (*n, *y))
    }

    /// Consistency issues (hints for a "malformed / emulator ePID" finding), as snake_case names:
    ///
    /// * `malformed`: not 8 dash-separated numeric parts or no `.0000` build suffix;
    /// * `unknown_platform_id`: platform id not one of 55041, 05426, 06401, 03612;
    /// * `platform_build_mismatch`: 55041 with build > 7601, 05426 with build ≠ 9200, 06401 with
    ///   build ≠ 9600, 03612 with build < 10240;
    /// * `channel_not_volume`: channel ≠ 03;
    /// * `invalid_install_day`: day 0 or past the end of the year;
    /// * `install_year_too_early`: year before 2006 (KMS did not exist);
    /// * `install_before_release`: installed in a year before the host build was released;
    /// * `implausible_lcid`: LCID 0, > 0xFFFF, or with a zero primary or sub-language;
    /// * `csvlk_host_mismatch`: the key id is a known CSVLK (Office 2016 or later, Server 2016 or
    ///   later) but the host build is Vista / Server 2008, which cannot hold it;
    /// * `install_before_csvlk_release`: installed before that CSVLK existed.
    pub fn issues(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.well_formed {
            v.push("malformed");
        }
        if let Some(p) = self.platform_id {
            let known = [PLATFORM_VISTA_7, PLATFORM_8, PLATFORM_8_1, PLATFORM_10].contains(&p);
            if !known {
                v.push("unknown_platform_id");
            } else if let Some(b) = self.os_build {
                let consistent = match p {
                    PLATFORM_VISTA_7 => b <= 7601,
                    PLATFORM_8 => b == 9200,
                    PLATFORM_8_1 => b == 9600,
                    _ => b >= 10240,
                };
                if !consistent {
                    v.push("platform_build_mismatch");
                }
            }
        }
        if self.channel.is_some_and(|c| c != 3) {
            v.push("channel_not_volume");
        }
        if self.install_day.is_some() && self.install_year.is_some() && self.key_installed.is_none()
        {
            v.push("invalid_install_day");
        }
        if let Some(y) = self.install_year {
            if y < 2006 {
                v.push("install_year_too_early");
            } else if let Some(b) = self.os_build {
                let release = BUILD_RELEASE_YEAR
                    .iter()
                    .rev()
                    .find(|(first, _)| b >= *first)
                    .map(|(_, yr)| *yr);
                if release.is_some_and(|r| y < r) {
                    v.push("install_before_release");
                }
            }
        }
        if let Some(l) = self.lcid
            && (l == 0 || l > 0xFFFF || l & 0x3FF == 0 || l >> 10 == 0)
        {
            v.push("implausible_lcid");
        }
        if let Some((_, released)) = self.csvlk() {
            if self
                .os_build
                .is_some_and(|b| b < MIN_BUILD_FOR_KNOWN_CSVLKS)
            {
                v.push("csvlk_host_mismatch");
            }
            if self.install_year.is_some_and(|y| y >= 2006 && y < released) {
                v.push("install_before_csvlk_release");
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_splitter_matches_str_split() {
        // The old way: str::split + collect, str::parse.
        let reference = |s: &str| -> Option<(Option<u32>, Option<u32>, Option<u32>)> {
            let parts: Vec<&str> = s.split('-').collect();
            let num = |p: &str, max: usize| -> Option<u32> {
                (!p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            };
            (parts.len() == 8).then(|| (num(parts[0], 5), num(parts[4], 2), num(parts[5], 5)))
        };
        for s in [
            "03612-00206-556-123727-03-1033-17763.0000-2972018",
            "03612-00206-556-123727-03-1033-17763.0000-2972018-",
            "-03612-00206-556-123727-03-1033-17763.0000",
            "1-2-3-4-5-6-7-8",
            "1-2-3-4-5-6-7",
            "1-2-3-4-5-6-7-8-9",
            "-------",
            "--------",
            "ä-ö-ü-1-2-3-4.0000-12020",
            "",
            "999999-0-0-0-123-0-0-0",
        ] {
            let e = parse_epid(s);
            match reference(s) {
                None => assert_eq!(e, Epid::default(), "{s}"),
                Some((p, c, l)) => assert_eq!((e.platform_id, e.channel, e.lcid), (p, c, l), "{s}"),
            }
        }
        assert_eq!(digits("000123", 1, 6), Some(123));
        assert_eq!(digits("99999999999999999999999", 1, 30), None);
        assert_eq!(digits("18446744073709551615", 1, 30), Some(u64::MAX));
        assert_eq!(digits("", 0, 3), None);
        assert_eq!(digits("1a", 1, 3), None);
    }

    #[test]
    fn spec_example() {
        let e = parse_epid("03612-00206-556-123727-03-1033-17763.0000-2972018");
        assert_eq!(e.platform_id, Some(3612));
        assert_eq!(e.group_id, Some(206));
        assert_eq!(e.key_id, Some(556_123_727));
        assert_eq!(e.channel, Some(3));
        assert_eq!(e.lcid, Some(1033));
        assert_eq!(e.os_build, Some(17763));
        assert_eq!(e.install_day, Some(297));
        assert_eq!(e.install_year, Some(2018));
        // Day 297 of 2018: Jan..Sep = 273 days, 297 - 273 = 24 October.
        assert_eq!(
            e.key_installed.map(|d| d.to_string()).as_deref(),
            Some("2018-10-24")
        );
        assert!(e.well_formed);
        assert_eq!(e.issues(), Vec::<&str>::new());
    }

    #[test]
    fn vlmcsd_random_epids() {
        let e = parse_epid("55041-00206-450-076659-03-19466-6002.0000-0022016");
        assert_eq!(e.platform_id, Some(55041));
        assert_eq!(e.lcid, Some(19466)); // 0x4C0A es-NI: odd but a real LCID
        assert_eq!(e.os_build, Some(6002));
        assert_eq!(e.key_id, Some(450_076_659));
        assert_eq!(
            e.key_installed.map(|d| d.to_string()).as_deref(),
            Some("2016-01-02")
        );
        // An Office 2016 CSVLK on a Server 2008 host: the vlmcsd randomiser's tell.
        assert_eq!(e.csvlk(), Some(("Office 2016", 2015)));
        assert_eq!(e.issues(), vec!["csvlk_host_mismatch"]);
        let e = parse_epid("55041-00096-201-736208-03-6170-6002.0000-2372015");
        assert_eq!(e.csvlk(), None);
        assert!(e.issues().is_empty());
        let e = parse_epid("03612-00206-569-767549-03-1033-14393.0000-0012017");
        assert_eq!(e.issues(), vec!["install_before_csvlk_release"]);

        let e = parse_epid("05426-00206-450-057747-03-16385-9200.0000-1842026");
        assert_eq!(e.lcid, Some(16385));
        assert_eq!(
            e.key_installed.map(|d| d.to_string()).as_deref(),
            Some("2026-07-03")
        );
        assert!(e.issues().is_empty());
    }

    #[test]
    fn leap_years_and_bad_days() {
        assert_eq!(
            date_from_day_of_year(366, 2020)
                .map(|d| d.to_string())
                .as_deref(),
            Some("2020-12-31")
        );
        assert_eq!(
            date_from_day_of_year(60, 2020)
                .map(|d| d.to_string())
                .as_deref(),
            Some("2020-02-29")
        );
        assert_eq!(
            date_from_day_of_year(60, 2019)
                .map(|d| d.to_string())
                .as_deref(),
            Some("2019-03-01")
        );
        assert_eq!(date_from_day_of_year(366, 2019), None);
        assert_eq!(date_from_day_of_year(0, 2019), None);
        assert_eq!(date_from_day_of_year(366, 2000).map(|d| d.year), Some(2000));
        assert_eq!(date_from_day_of_year(366, 1900), None);
        let e = parse_epid("03612-00206-556-123727-03-1033-17763.0000-3672019");
        assert_eq!(e.install_day, Some(367));
        assert_eq!(e.key_installed, None);
        assert!(e.issues().contains(&"invalid_install_day"));
    }

    #[test]
    fn inconsistent_epids_are_flagged() {
        let e = parse_epid("03612-00206-556-123727-02-0-7601.0000-0012001");
        let i = e.issues();
        assert!(i.contains(&"platform_build_mismatch"), "{i:?}");
        assert!(i.contains(&"channel_not_volume"));
        assert!(i.contains(&"install_year_too_early"));
        assert!(i.contains(&"implausible_lcid"));
        assert!(!i.contains(&"malformed"));

        let e = parse_epid("12345-00206-556-123727-03-1033-17763.0000-0012015");
        assert_eq!(
            e.issues(),
            vec![
                "unknown_platform_id",
                "install_before_release",
                "install_before_csvlk_release"
            ]
        );

        let e = parse_epid("06401-00206-201-123727-03-1033-9600.1234-0012015");
        assert_eq!(e.os_build, Some(9600));
        assert_eq!(e.issues(), vec!["malformed"]);
    }

    #[test]
    fn garbage_never_panics_and_yields_nothing() {
        for s in [
            "",
            "-",
            "--------",
            "a-b-c-d-e-f-g-h",
            "ü-ü-ü-ü-ü-ü-ü.ü-üüüüüü",
            "1-2-3-4-5-6-7.0000-12",
        ] {
            let e = parse_epid(s);
            assert!(!e.well_formed, "{s}");
            assert!(e.issues().contains(&"malformed"));
        }
        let e = parse_epid("1-2-3-4-5-6-7.0000-12");
        assert_eq!(e.key_id, Some(3_000_004));
        assert_eq!(e.install_day, None);
    }
}
