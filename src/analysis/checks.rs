//! The checks of docs/checks.md: each a small function with its stable ID and snake_case name that
//! looks at the [`State`] rebuilt from the wire and returns findings.

use super::State;
use super::policy::Policy;
use crate::event::Finding;

/// Runs every check that passive evidence supports and returns the findings, de-duplicated per check
/// and subject, ordered by severity (most severe first), then by first evidence frame.
pub fn run(state: &State, policy: &Policy) -> Vec<Finding> {
    let _ = (state, policy);
    Vec::new()
}
