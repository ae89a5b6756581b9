//! Policy inputs of the checks (allowed KMS hosts, skew limits, the domains clients should query),
//! from command-line options or a small TOML file, with documented defaults.

/// Policy for the checks.
#[derive(Clone, Debug, Default)]
pub struct Policy {}
