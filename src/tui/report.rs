//! `w` in the UI: write the report of the events seen so far.
//!
//! Until the Markdown report (`output::report`, issue 4) lands this writes the events as JSON Lines,
//! the same lines `--jsonl` writes. The integrator switches [`write_report`] (and [`DEFAULT_PATH`])
//! to the Markdown `ReportSink`: the signature takes the events, which is all a sink needs.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::event::Event;
use crate::output::Sink;
use crate::output::jsonl::JsonlSink;

/// Where `w` writes, relative to the working directory.
pub const DEFAULT_PATH: &str = "kmsscope-report.jsonl";

/// Writes the report of `events` to `path` (replacing it).
pub fn write_report(path: &Path, events: &[Arc<Event>]) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut sink = JsonlSink::new(file, false);
    for ev in events {
        sink.event(ev)?;
    }
    sink.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_event() {
        let dir = std::env::temp_dir().join(format!("kmsscope-report-{}", std::process::id()));
        let ev = Arc::new(Event {
            ts: crate::time::Ts(0),
            event: "anomaly",
            source: Arc::from("x"),
            frame: 1,
            client: None,
            server: None,
            body: crate::event::Body::Anomaly(crate::event::Anomaly {
                layer: "tcp",
                kind: "tcp_gap",
                detail: "d".into(),
            }),
        });
        write_report(&dir, &[ev.clone(), ev]).unwrap();
        let text = std::fs::read_to_string(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert_eq!(text.lines().count(), 2);
    }
}
