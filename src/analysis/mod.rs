//! Analysis: what the wire tells about hosts and clients, and the checks (docs/checks.md) that turn
//! it into findings. Knows events, nothing of output.
//!
//! * [`state`]: hosts, product groups, clients and RPC evidence rebuilt from events (bounded);
//! * [`discovery`]: the DNS / connection correlation behind each client's discovery chain;
//! * [`evidence`]: bounded evidence lists (count, first frames, who);
//! * [`checks`]: one function per check ID, and the check table;
//! * [`policy`]: the checks' inputs (allow-list, KMS zones, limits) from TOML or flags.

pub mod checks;
pub mod discovery;
pub mod evidence;
pub mod policy;
pub mod state;

pub use policy::Policy;
pub use state::State;
