//! kmsscope: module map (filled in as the pipeline is assembled).
#![forbid(unsafe_code)]
pub mod direction;
pub mod guid;
pub mod time;

pub use direction::Direction;
