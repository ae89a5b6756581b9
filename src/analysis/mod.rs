//! Analysis: what the wire tells about hosts and clients, and the checks (docs/checks.md) that turn
//! it into findings. Knows events, nothing of output.

pub mod checks;
pub mod policy;
pub mod state;

pub use policy::Policy;
pub use state::State;
