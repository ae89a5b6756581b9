//! Product catalog (kms-protocol.md §5): ApplicationId, KmsCountedId and SkuId names and
//! activation thresholds, from the checked-in `kms-products.csv` (columns
//! `kind,guid,name,app,threshold`), parsed once on first use.

use std::sync::OnceLock;

use crate::guid::{Guid, GuidText};

/// The embedded catalog (299 rows: 3 app, 34 kms, 262 sku).
pub const PRODUCTS_CSV: &str = include_str!("kms-products.csv");

/// An application (ApplicationId, request offset 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// Display name, e.g. `Windows`.
    pub name: &'static str,
}

/// A KMS counted product group (KmsCountedId, request offset 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KmsInfo {
    /// Display name, e.g. `Windows 10/11 2015 volume`.
    pub name: &'static str,
    /// ApplicationId of the group.
    pub app: Guid,
    /// Activation threshold (N policy) of the group.
    pub threshold: u32,
}

/// An edition (SkuId, request offset 32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkuInfo {
    /// Display name, e.g. `Windows 10 Professional`.
    pub name: &'static str,
    /// ApplicationId of the edition.
    pub app: Guid,
    /// Activation threshold inherited from its KMS ID.
    pub threshold: u32,
}

/// One catalog row: its data and the canonical text of its GUID, built once here so that a `kms`
/// event copies it instead of formatting the GUID again (nearly every request names catalog ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    /// The row's data.
    pub info: T,
    /// `Guid::inline_text` of the row's GUID.
    pub text: GuidText,
}

/// The parsed catalog: three tables sorted by GUID.
#[derive(Debug, Default)]
pub struct Catalog {
    apps: Table<AppInfo>,
    kms: Table<KmsInfo>,
    skus: Table<SkuInfo>,
    /// Rows skipped because they did not parse (0 for the shipped file).
    pub skipped_rows: usize,
}

/// Rows sorted by GUID. The search key is the GUID's 16 bytes as one big-endian `u128` (the same
/// order as the bytes'): a lookup is a few integer compares instead of `memcmp` calls.
#[derive(Debug)]
struct Table<T> {
    keys: Vec<u128>,
    entries: Vec<Entry<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            keys: Vec::new(),
            entries: Vec::new(),
        }
    }
}

fn key(g: &Guid) -> u128 {
    u128::from_be_bytes(g.0)
}

impl<T> Table<T> {
    fn from_rows(mut rows: Vec<(Guid, T)>) -> Table<T> {
        rows.sort_by_key(|e| e.0);
        let keys = rows.iter().map(|(g, _)| key(g)).collect();
        let entries = rows
            .into_iter()
            .map(|(g, info)| Entry {
                info,
                text: g.inline_text(),
            })
            .collect();
        Table { keys, entries }
    }

    fn find(&self, g: &Guid) -> Option<&Entry<T>> {
        let i = self.keys.binary_search(&key(g)).ok()?;
        self.entries.get(i)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Rows as parsed, before sorting.
#[derive(Default)]
struct Rows {
    apps: Vec<(Guid, AppInfo)>,
    kms: Vec<(Guid, KmsInfo)>,
    skus: Vec<(Guid, SkuInfo)>,
}

impl Catalog {
    /// Parses CSV text in the `kind,guid,name,app,threshold` format. The header line and rows
    /// that do not parse are skipped (counted in `skipped_rows`); names may contain commas.
    pub fn parse(csv: &'static str) -> Catalog {
        let mut rows = Rows::default();
        let mut skipped_rows = 0;
        for (i, line) in csv.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || (i == 0 && line.starts_with("kind,")) {
                continue;
            }
            if !rows.add(line) {
                skipped_rows += 1;
            }
        }
        Catalog {
            apps: Table::from_rows(rows.apps),
            kms: Table::from_rows(rows.kms),
            skus: Table::from_rows(rows.skus),
            skipped_rows,
        }
    }

    /// Looks up an ApplicationId.
    pub fn app(&self, g: &Guid) -> Option<&AppInfo> {
        self.app_entry(g).map(|e| &e.info)
    }

    /// Looks up a KmsCountedId.
    pub fn kms(&self, g: &Guid) -> Option<&KmsInfo> {
        self.kms_entry(g).map(|e| &e.info)
    }

    /// Looks up a SkuId.
    pub fn sku(&self, g: &Guid) -> Option<&SkuInfo> {
        self.sku_entry(g).map(|e| &e.info)
    }

    /// Looks up an ApplicationId, with its text.
    pub fn app_entry(&self, g: &Guid) -> Option<&Entry<AppInfo>> {
        self.apps.find(g)
    }

    /// Looks up a KmsCountedId, with its text.
    pub fn kms_entry(&self, g: &Guid) -> Option<&Entry<KmsInfo>> {
        self.kms.find(g)
    }

    /// Looks up a SkuId, with its text.
    pub fn sku_entry(&self, g: &Guid) -> Option<&Entry<SkuInfo>> {
        self.skus.find(g)
    }

    /// Number of (app, kms, sku) rows loaded.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.apps.len(), self.kms.len(), self.skus.len())
    }
}

impl Rows {
    fn add(&mut self, line: &'static str) -> bool {
        // kind,guid,<name may contain commas>,app,threshold
        let Some((kind, rest)) = line.split_once(',') else {
            return false;
        };
        let Some((guid, rest)) = rest.split_once(',') else {
            return false;
        };
        let Some((rest, threshold)) = rest.rsplit_once(',') else {
            return false;
        };
        let Some((name, app)) = rest.rsplit_once(',') else {
            return false;
        };
        let (Some(guid), Some(app)) = (Guid::parse(guid.trim()), Guid::parse(app.trim())) else {
            return false;
        };
        let name = name.trim();
        if name.is_empty() {
            return false;
        }
        let threshold = threshold.trim();
        match kind.trim() {
            "app" => self.apps.push((guid, AppInfo { name })),
            "kms" => {
                let Ok(threshold) = threshold.parse() else {
                    return false;
                };
                self.kms.push((
                    guid,
                    KmsInfo {
                        name,
                        app,
                        threshold,
                    },
                ));
            }
            "sku" => {
                let Ok(threshold) = threshold.parse() else {
                    return false;
                };
                self.skus.push((
                    guid,
                    SkuInfo {
                        name,
                        app,
                        threshold,
                    },
                ));
            }
            _ => return false,
        }
        true
    }
}

/// The embedded catalog, parsed on first use.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::parse(PRODUCTS_CSV))
}

/// Name of an ApplicationId from the embedded catalog.
pub fn app(g: &Guid) -> Option<&'static AppInfo> {
    catalog().app(g)
}

/// KMS product group of a KmsCountedId from the embedded catalog.
pub fn kms(g: &Guid) -> Option<&'static KmsInfo> {
    catalog().kms(g)
}

/// Edition of a SkuId from the embedded catalog.
pub fn sku(g: &Guid) -> Option<&'static SkuInfo> {
    catalog().sku(g)
}

/// [`app`] with the GUID's prebuilt text.
pub fn app_entry(g: &Guid) -> Option<&'static Entry<AppInfo>> {
    catalog().app_entry(g)
}

/// [`kms`] with the GUID's prebuilt text.
pub fn kms_entry(g: &Guid) -> Option<&'static Entry<KmsInfo>> {
    catalog().kms_entry(g)
}

/// [`sku`] with the GUID's prebuilt text.
pub fn sku_entry(g: &Guid) -> Option<&'static Entry<SkuInfo>> {
    catalog().sku_entry(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Guid {
        Guid::parse(s).unwrap()
    }

    #[test]
    fn all_rows_parse() {
        let c = catalog();
        assert_eq!(c.skipped_rows, 0);
        assert_eq!(c.counts(), (3, 34, 262));
        let data_rows = PRODUCTS_CSV
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(data_rows, 299);
    }

    #[test]
    fn lookups() {
        let win = g("55c92734-d682-4d71-983e-d6ec3f16059f");
        assert_eq!(app(&win).map(|a| a.name), Some("Windows"));
        let k = kms(&g("58e2134f-8e11-4d17-9cb2-91069c151148")).unwrap();
        assert_eq!(k.app, win);
        assert_eq!(k.threshold, 25);
        let s = sku(&g("2de67392-b7a7-462a-b1ca-108dd189f588")).unwrap();
        assert!(s.name.contains("Pro"), "{}", s.name);
        assert_eq!(s.app, win);
        assert_eq!(s.threshold, 25);
        // The documented disagreement keeps py-kms's threshold 5.
        assert_eq!(
            sku(&g("ec868e65-fadf-4759-b23e-93fe37f2cc29")).map(|s| s.threshold),
            Some(5)
        );
        let office = sku(&g("d450596f-894d-49e0-966a-fd39ed4c4c64")).unwrap();
        assert_eq!(office.threshold, 5);
        assert_eq!(office.app, g("0ff1ce15-a989-479d-af46-f275c6370663"));
        assert!(sku(&Guid::ZERO).is_none());
        assert!(kms(&win).is_none());
    }

    #[test]
    fn bad_rows_are_skipped_not_fatal() {
        let csv: &'static str = "kind,guid,name,app,threshold\n\
            sku,not-a-guid,X,55c92734-d682-4d71-983e-d6ec3f16059f,25\n\
            kms,58e2134f-8e11-4d17-9cb2-91069c151148,Name, with comma,55c92734-d682-4d71-983e-d6ec3f16059f,25\n\
            kms,58e2134f-8e11-4d17-9cb2-91069c151149,N,55c92734-d682-4d71-983e-d6ec3f16059f,\n\
            what,58e2134f-8e11-4d17-9cb2-91069c151148,N,55c92734-d682-4d71-983e-d6ec3f16059f,1\n\
            garbage\n";
        let c = Catalog::parse(csv);
        assert_eq!(c.skipped_rows, 4);
        assert_eq!(
            c.kms(&g("58e2134f-8e11-4d17-9cb2-91069c151148"))
                .map(|k| k.name),
            Some("Name, with comma")
        );
    }
}
