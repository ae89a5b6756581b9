//! JSON Lines sink (docs/events.md): one event per line, serialised straight into a buffered writer.

use std::io::{self, Write};

use super::Sink;
use crate::event::Event;

/// Writes events as JSON Lines. With `flush_each_line` (live mode) every line is flushed so that
/// `tail -f | jq` works.
pub struct JsonlSink<W: Write> {
    out: io::BufWriter<W>,
    flush_each_line: bool,
    /// The line being built (reused: no allocation per event).
    line: Vec<u8>,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(w: W, flush_each_line: bool) -> Self {
        JsonlSink {
            out: io::BufWriter::with_capacity(1 << 16, w),
            flush_each_line,
            line: Vec::with_capacity(4096),
        }
    }

    /// Appends whole lines another JSON Lines sink wrote (`read -j`: an input analysed on another
    /// thread), as if its events had come here.
    pub fn append(&mut self, lines: &mut impl io::Read) -> io::Result<()> {
        io::copy(lines, &mut self.out)?;
        if self.flush_each_line {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Flushes the lines written and gives back the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.line.clear();
        ev.write_json(&mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        if self.flush_each_line {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
