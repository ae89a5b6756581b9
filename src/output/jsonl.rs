//! JSON Lines sink (docs/events.md): one event per line, serialised straight into a buffered writer.

use std::io::{self, Write};

use super::Sink;
use crate::event::Event;

/// Writes events as JSON Lines. With `flush_each_line` (live mode) every line is flushed so that
/// `tail -f | jq` works.
pub struct JsonlSink<W: Write> {
    out: io::BufWriter<W>,
    flush_each_line: bool,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(w: W, flush_each_line: bool) -> Self {
        JsonlSink {
            out: io::BufWriter::with_capacity(1 << 16, w),
            flush_each_line,
        }
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, ev).map_err(io::Error::other)?;
        self.out.write_all(b"\n")?;
        if self.flush_each_line {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
