//! Sinks: everything that turns `Event`s into output. Sinks know only events.

pub mod escape;
pub mod json;
pub mod jsonl;
pub mod report;
pub mod table;
pub mod text;
pub mod verdict;

use std::io;

use crate::event::Event;

/// Something that consumes the event stream.
pub trait Sink {
    fn event(&mut self, ev: &Event) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}
