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

    /// Several events in order, up to the first that fails. A sink made of several (the log, the
    /// report and the table) hands the whole batch to each in turn.
    fn events(&mut self, evs: &[Event]) -> io::Result<()> {
        evs.iter().try_for_each(|ev| self.event(ev))
    }
    fn finish(&mut self) -> io::Result<()>;
}
