//! Which way a byte or packet travels on a connection.

/// Direction of travel relative to the connection's initiator (the client).
/// JSON output says `client` and `server`; code says `ToServer` / `ToClient`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that opened the connection (or sent the query) to the other.
    ToServer,
    /// From the server back to the client.
    ToClient,
}

impl Direction {
    /// The opposite direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }

    /// Index 0 for `ToServer`, 1 for `ToClient`, for two-element per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}
