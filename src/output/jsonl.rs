//! JSON Lines sink (docs/events.md): one event per line, serialised straight into the output
//! buffer.

use std::io::{self, Write};

use super::Sink;
use crate::event::Event;

/// Bytes gathered before they are written (the size of the `BufWriter` this buffer replaces).
const CAPACITY: usize = 1 << 16;

/// Writes events as JSON Lines. With `flush_each_line` (live mode) every line is written and
/// flushed at once so that `tail -f | jq` works.
///
/// Events are serialised directly into the output buffer (a `BufWriter` over a line buffer copied
/// every line once more); it is written out when it holds [`CAPACITY`] bytes or more, on
/// [`Sink::finish`], [`JsonlSink::into_inner`], and when the sink is dropped, as a `BufWriter` is.
pub struct JsonlSink<W: Write> {
    /// `None` only once [`JsonlSink::into_inner`] has taken it.
    out: Option<W>,
    flush_each_line: bool,
    /// Whole lines not yet written (reused: no allocation per event once grown; at most
    /// `CAPACITY` plus one line).
    buf: Vec<u8>,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(w: W, flush_each_line: bool) -> Self {
        JsonlSink {
            out: Some(w),
            flush_each_line,
            buf: Vec::with_capacity(CAPACITY + 4096),
        }
    }

    /// Writes the gathered lines out.
    fn write_buf(&mut self) -> io::Result<()> {
        let r = match &mut self.out {
            Some(out) if !self.buf.is_empty() => out.write_all(&self.buf),
            _ => Ok(()),
        };
        self.buf.clear();
        r
    }

    /// Appends whole lines another JSON Lines sink wrote (`read -j`: an input analysed on another
    /// thread), as if its events had come here.
    pub fn append(&mut self, lines: &mut impl io::Read) -> io::Result<()> {
        self.write_buf()?;
        if let Some(out) = &mut self.out {
            io::copy(lines, out)?;
            if self.flush_each_line {
                out.flush()?;
            }
        }
        Ok(())
    }

    /// Writes the lines gathered and gives back the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.write_buf()?;
        self.out
            .take()
            .ok_or_else(|| io::Error::other("JSON Lines writer already taken"))
    }
}

impl<W: Write> Drop for JsonlSink<W> {
    /// Writes what is gathered (errors ignored), as a dropped `BufWriter` does.
    fn drop(&mut self) {
        let _ = self.write_buf();
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        ev.write_json(&mut self.buf);
        self.buf.push(b'\n');
        if self.flush_each_line {
            self.write_buf()?;
            if let Some(out) = &mut self.out {
                out.flush()?;
            }
        } else if self.buf.len() >= CAPACITY {
            self.write_buf()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write_buf()?;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Anomaly, Body};
    use crate::time::Ts;

    fn event(i: u64) -> Event {
        Event {
            ts: Ts(1_700_000_000_000_000_000 + i as i64 * 1_000),
            event: "anomaly",
            source: std::sync::Arc::from("x.pcap"),
            frame: i,
            client: None,
            server: None,
            body: Body::Anomaly(Anomaly {
                layer: "tcp",
                kind: "tcp_gap",
                detail: "d".repeat(i as usize % 300),
            }),
        }
    }

    fn lines(n: u64) -> Vec<u8> {
        let mut want = Vec::new();
        for i in 0..n {
            event(i).write_json(&mut want);
            want.push(b'\n');
        }
        want
    }

    /// Many buffers' worth of lines, ended by `finish`, `into_inner` or a drop; live mode; and
    /// appended lines keep their place.
    #[test]
    fn lines_in_order_whatever_ends_the_sink() {
        let n = 2000;
        for live in [false, true] {
            let mut sink = JsonlSink::new(Vec::new(), live);
            for i in 0..n {
                sink.event(&event(i)).unwrap();
            }
            sink.finish().unwrap();
            assert_eq!(sink.into_inner().unwrap(), lines(n));
        }
        let mut out = Vec::new();
        {
            let mut sink = JsonlSink::new(&mut out, false);
            for i in 0..n {
                sink.event(&event(i)).unwrap();
            }
        }
        assert_eq!(out, lines(n));
        let mut sink = JsonlSink::new(Vec::new(), false);
        sink.event(&event(0)).unwrap();
        sink.append(&mut &b"appended\n"[..]).unwrap();
        sink.event(&event(1)).unwrap();
        let mut want = lines(1);
        want.extend_from_slice(b"appended\n");
        event(1).write_json(&mut want);
        want.push(b'\n');
        assert_eq!(sink.into_inner().unwrap(), want);
    }
}
