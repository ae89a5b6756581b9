//! Policy inputs of the checks (allowed KMS hosts, skew limits, the domains clients should query),
//! from command-line options or a small TOML file, with documented defaults.
//!
//! ```toml
//! # kmsscope.toml: every key is optional; the values shown are the defaults.
//! allowed_hosts = []          # KMS hosts clients may use: IPs, CIDR prefixes or DNS names
//!                             # (DNS-10, KMS-12 allow-list part; off while empty)
//! kms_domains = []            # zones clients should query _vlmcs._tcp in (DNS-11; off while empty)
//! skew_warn_min = 60          # KMS-06 warning above this clock difference (minutes)
//! skew_error_min = 240        # KMS-06 error above this (the host's 4 h limit)
//! slow_rpc_ms = 2000          # RPC-06 request-to-response time limit
//! thin_margin = 5             # KMS-02: counts below N policy + this margin are thin
//! emulator_critical = false   # KMS-11 severity: critical instead of warning
//! renewal_slack_days = 1      # KMS-19: slack after the renewal interval
//! population_min_span_days = 7 # KMS-20 runs only on captures spanning at least this long
//! connect_wait_s = 3          # RPC-02: a lone unanswered SYN counts only if the capture
//!                             # went on this long after it
//! dns_wait_s = 2              # DNS-04: likewise for a lone unanswered SRV query
//! ```
//!
//! Command-line flags of `kmsscope read` ([`PolicyArgs`]) override the file.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Default KMS-06 warning threshold: one hour of clock difference.
pub const DEFAULT_SKEW_WARN_MIN: u64 = 60;
/// Default KMS-06 error threshold: four hours, the limit hosts enforce with 0xC004F06C.
pub const DEFAULT_SKEW_ERROR_MIN: u64 = 240;
/// Default RPC-06 limit: 2 s from request to response.
pub const DEFAULT_SLOW_RPC_MS: u64 = 2000;
/// Default KMS-02 margin above N policy (e.g. counts 25..29 for N = 25 are thin).
pub const DEFAULT_THIN_MARGIN: u32 = 5;
/// Default KMS-19 slack added to the renewal interval.
pub const DEFAULT_RENEWAL_SLACK_DAYS: u64 = 1;
/// Default shortest capture span for KMS-20: the 7-day renewal interval, within which every
/// activated client renews at least once.
pub const DEFAULT_POPULATION_MIN_SPAN_DAYS: u64 = 7;
/// Default RPC-02 wait: a single SYN without answer counts as filtered only when the capture went
/// on at least this long after it (Windows retries a SYN after about 1 s and 2 s more).
pub const DEFAULT_CONNECT_WAIT_S: u64 = 3;
/// Default DNS-04 wait for a single unanswered SRV query (Windows' first retry is after 1 s).
pub const DEFAULT_DNS_WAIT_S: u64 = 2;

/// Policy for the checks.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// KMS hosts clients may use: IP addresses, CIDR prefixes (`10.0.0.0/8`) or DNS names
    /// (case-insensitive, `*.corp.example` matches any name under `corp.example`). DNS-10 and the
    /// allow-list part of KMS-12 run only when this is not empty.
    pub allowed_hosts: Vec<String>,
    /// DNS zones that publish the KMS SRV records clients should find (`corp.example`). DNS-11 runs
    /// only when this is not empty.
    pub kms_domains: Vec<String>,
    /// KMS-06: clock differences above this many minutes are a warning.
    pub skew_warn_min: u64,
    /// KMS-06: clock differences above this many minutes are an error (hosts refuse above 4 h).
    pub skew_error_min: u64,
    /// RPC-06: request-to-response times above this many milliseconds are slow.
    pub slow_rpc_ms: u64,
    /// KMS-02: a count in `[N, N + thin_margin)` is a thin margin.
    pub thin_margin: u32,
    /// KMS-11: report emulator fingerprints as `critical` instead of `warning`.
    pub emulator_critical: bool,
    /// KMS-19: days of slack after a client's renewal interval before its renewal is overdue.
    pub renewal_slack_days: u64,
    /// KMS-20: shortest capture span, in days, over which the observed population is meaningful.
    pub population_min_span_days: u64,
    /// RPC-02: seconds the capture must go on after a single unanswered SYN.
    pub connect_wait_s: u64,
    /// DNS-04: seconds the capture must go on after a single unanswered SRV query.
    pub dns_wait_s: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_hosts: Vec::new(),
            kms_domains: Vec::new(),
            skew_warn_min: DEFAULT_SKEW_WARN_MIN,
            skew_error_min: DEFAULT_SKEW_ERROR_MIN,
            slow_rpc_ms: DEFAULT_SLOW_RPC_MS,
            thin_margin: DEFAULT_THIN_MARGIN,
            emulator_critical: false,
            renewal_slack_days: DEFAULT_RENEWAL_SLACK_DAYS,
            population_min_span_days: DEFAULT_POPULATION_MIN_SPAN_DAYS,
            connect_wait_s: DEFAULT_CONNECT_WAIT_S,
            dns_wait_s: DEFAULT_DNS_WAIT_S,
        }
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid allowed host {0:?}: expected an IP address, a CIDR prefix or a DNS name")]
    BadHost(String),
    #[error("skew_warn_min ({warn}) must not exceed skew_error_min ({error})")]
    SkewOrder { warn: u64, error: u64 },
}

/// One entry of the allow-list, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedHost {
    /// An address, or a prefix of `len` bits.
    Net { addr: IpAddr, len: u8 },
    /// A DNS name, lower-case without the trailing dot; `wildcard` for `*.name`.
    Name { name: String, wildcard: bool },
}

impl AllowedHost {
    /// Parses `10.1.2.3`, `10.1.0.0/16`, `fd00::/8`, `kms1.corp.example`, `*.corp.example`.
    pub fn parse(s: &str) -> Option<AllowedHost> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some((a, l)) = s.split_once('/') {
            let addr: IpAddr = a.parse().ok()?;
            let len: u8 = l.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return (len <= max).then_some(AllowedHost::Net { addr, len });
        }
        if let Ok(addr) = s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            return Some(AllowedHost::Net { addr, len });
        }
        let (wildcard, rest) = match s.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let name = normalize_name(rest);
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        valid.then_some(AllowedHost::Name { name, wildcard })
    }

    /// True when `ip` is this address or inside this prefix.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let AllowedHost::Net { addr, len } = self else {
            return false;
        };
        match (addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(*a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                u128::from(*a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// True when the DNS name `name` (any case, trailing dot or not) is this name or, for a
    /// wildcard, below it.
    pub fn matches_name(&self, name: &str) -> bool {
        let AllowedHost::Name {
            name: allowed,
            wildcard,
        } = self
        else {
            return false;
        };
        let n = normalize_name(name);
        if *wildcard {
            n.len() > allowed.len()
                && n.ends_with(allowed.as_str())
                && n.as_bytes()[n.len() - allowed.len() - 1] == b'.'
        } else {
            n == *allowed
        }
    }
}

/// A DNS name lower-cased without its trailing dot (names are compared this way everywhere).
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Policy {
    /// Loads a TOML policy file (every key optional, unknown keys refused).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let p = Policy::from_toml_str(&text).map_err(|message| PolicyError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(p)
    }

    /// Parses policy TOML text; the error is the parser's message.
    pub fn from_toml_str(text: &str) -> Result<Policy, String> {
        toml::from_str::<Policy>(text).map_err(|e| e.to_string().trim().to_string())
    }

    /// Checks the values: host entries parse, thresholds are ordered.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for h in &self.allowed_hosts {
            if AllowedHost::parse(h).is_none() {
                return Err(PolicyError::BadHost(h.clone()));
            }
        }
        if self.skew_warn_min > self.skew_error_min {
            return Err(PolicyError::SkewOrder {
                warn: self.skew_warn_min,
                error: self.skew_error_min,
            });
        }
        Ok(())
    }

    /// The parsed allow-list (entries that do not parse are skipped; [`Policy::validate`] reports
    /// them).
    pub fn allow_list(&self) -> Vec<AllowedHost> {
        self.allowed_hosts
            .iter()
            .filter_map(|h| AllowedHost::parse(h))
            .collect()
    }

    /// The configured KMS domains, normalised.
    pub fn domains(&self) -> Vec<String> {
        self.kms_domains
            .iter()
            .map(|d| normalize_name(d.trim().trim_start_matches("_vlmcs._tcp.")))
            .filter(|d| !d.is_empty())
            .collect()
    }
}

/// Policy options of `kmsscope read` (flattened into its arguments). Flags override `--config`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// Policy file (TOML) for the checks; see the README's "Checks" section for the keys.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A KMS host clients may use (IP, CIDR prefix or DNS name; repeatable). Enables DNS-10 and the
    /// allow-list part of KMS-12.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// A DNS zone clients should query `_vlmcs._tcp` in (repeatable). Enables DNS-11.
    #[arg(long = "kms-domain", value_name = "DOMAIN")]
    pub kms_domain: Vec<String>,
    /// KMS-06: client clock difference, in minutes, above which a warning is raised [default: 60].
    #[arg(long, value_name = "MIN")]
    pub skew_warn_min: Option<u64>,
    /// KMS-06: client clock difference, in minutes, above which an error is raised [default: 240].
    #[arg(long, value_name = "MIN")]
    pub skew_error_min: Option<u64>,
    /// RPC-06: request-to-response time, in milliseconds, above which a call is slow [default: 2000].
    #[arg(long, value_name = "MS")]
    pub slow_rpc_ms: Option<u64>,
    /// KMS-02: margin above N policy below which a count is thin [default: 5].
    #[arg(long, value_name = "N")]
    pub thin_margin: Option<u32>,
    /// KMS-11: report emulator fingerprints as critical instead of warning.
    #[arg(long)]
    pub emulator_critical: bool,
}

impl PolicyArgs {
    /// The policy: defaults, then the `--config` file, then the flags.
    pub fn resolve(&self) -> Result<Policy, PolicyError> {
        let mut p = match &self.config {
            Some(path) => Policy::from_toml_file(path)?,
            None => Policy::default(),
        };
        p.allowed_hosts.extend(self.allow_host.iter().cloned());
        p.kms_domains.extend(self.kms_domain.iter().cloned());
        if let Some(v) = self.skew_warn_min {
            p.skew_warn_min = v;
        }
        if let Some(v) = self.skew_error_min {
            p.skew_error_min = v;
        }
        if let Some(v) = self.slow_rpc_ms {
            p.slow_rpc_ms = v;
        }
        if let Some(v) = self.thin_margin {
            p.thin_margin = v;
        }
        if self.emulator_critical {
            p.emulator_critical = true;
        }
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let p = Policy::default();
        assert_eq!(p.skew_warn_min, 60);
        assert_eq!(p.skew_error_min, 240);
        assert_eq!(p.slow_rpc_ms, 2000);
        assert_eq!(p.thin_margin, 5);
        assert!(p.allowed_hosts.is_empty() && p.kms_domains.is_empty());
        assert_eq!(Policy::from_toml_str("").unwrap(), p);
    }

    #[test]
    fn toml_file_keys_and_unknown_keys() {
        let p = Policy::from_toml_str(
            "allowed_hosts = [\"10.77.0.10\", \"kms1.corp.example\"]\nkms_domains = [\"corp.example.\"]\nskew_warn_min = 30\n",
        )
        .unwrap();
        assert_eq!(p.allowed_hosts.len(), 2);
        assert_eq!(p.domains(), vec!["corp.example".to_string()]);
        assert_eq!(p.skew_warn_min, 30);
        assert_eq!(p.skew_error_min, 240);
        let e = Policy::from_toml_str("skew_warn = 3\n").unwrap_err();
        assert!(e.contains("skew_warn"), "{e}");
    }

    #[test]
    fn flags_override_file_values() {
        let dir = std::env::temp_dir().join(format!("kmsscope-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        std::fs::write(&path, "slow_rpc_ms = 500\nthin_margin = 2\n").unwrap();
        let args = PolicyArgs {
            config: Some(path.clone()),
            allow_host: vec!["10.0.0.0/8".into()],
            thin_margin: Some(7),
            ..PolicyArgs::default()
        };
        let p = args.resolve().unwrap();
        assert_eq!(p.slow_rpc_ms, 500);
        assert_eq!(p.thin_margin, 7);
        assert_eq!(p.allowed_hosts, vec!["10.0.0.0/8".to_string()]);
        let bad = PolicyArgs {
            allow_host: vec!["not a host!".into()],
            ..PolicyArgs::default()
        };
        assert!(matches!(bad.resolve(), Err(PolicyError::BadHost(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn allow_list_matching() {
        let net = AllowedHost::parse("10.77.0.0/24").unwrap();
        assert!(net.matches_ip("10.77.0.10".parse().unwrap()));
        assert!(!net.matches_ip("10.77.1.10".parse().unwrap()));
        assert!(!net.matches_ip("fd77::10".parse().unwrap()));
        let all = AllowedHost::parse("0.0.0.0/0").unwrap();
        assert!(all.matches_ip("8.8.8.8".parse().unwrap()));
        let v6 = AllowedHost::parse("fd77::/16").unwrap();
        assert!(v6.matches_ip("fd77::10".parse().unwrap()));
        let one = AllowedHost::parse("[fd77::10]").unwrap();
        assert!(one.matches_ip("fd77::10".parse().unwrap()));
        let name = AllowedHost::parse("KMS1.corp.example.").unwrap();
        assert!(name.matches_name("kms1.CORP.example"));
        assert!(!name.matches_name("kms2.corp.example"));
        let wild = AllowedHost::parse("*.corp.example").unwrap();
        assert!(wild.matches_name("kms9.corp.example."));
        assert!(!wild.matches_name("corp.example"));
        assert!(!wild.matches_name("evilcorp.example"));
        assert!(AllowedHost::parse("10.0.0.0/33").is_none());
        assert!(AllowedHost::parse("bad host").is_none());
    }
}
