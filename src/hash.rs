//! The hash of tables keyed by values a capture chooses (CMIDs, addresses, DNS names and
//! transaction keys, connections): foldhash with a seed chosen per table at run time. A fixed
//! hash such as Fx lets a crafted capture pick keys that all collide and make every lookup walk
//! the whole table; a per-run seed takes that choice away, at about Fx's cost on short keys.
//!
//! The price is that iteration order changes from run to run: code that iterates one of these
//! tables must not let that order reach output (sort first, or fold order-independently).

use std::collections::{HashMap, HashSet};

/// The seeded hasher builder (also the flow tables' hash, see `crate::flow`).
pub type SeededState = foldhash::fast::RandomState;

/// A hash map for keys a capture chooses, seeded per table at run time.
pub type SeededMap<K, V> = HashMap<K, V, SeededState>;

/// A hash set for keys a capture chooses, seeded per table at run time.
pub type SeededSet<T> = HashSet<T, SeededState>;
