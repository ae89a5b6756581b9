//! `w` in the UI: write the Markdown report (the same as `--report`) of the events seen so far.
//! A source still being read (live, or a file mid-replay) gets its section from what was seen.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::event::Event;
use crate::output::Sink;
use crate::output::report::ReportSink;

/// Where `w` writes, relative to the working directory.
pub const DEFAULT_PATH: &str = "kmsscope-report.md";

/// Writes the report of `events` to `path` (replacing it).
pub fn write_report(path: &Path, events: &[Arc<Event>]) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut sink = ReportSink::new(io::BufWriter::new(file));
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
    fn writes_a_markdown_report() {
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
        assert!(text.starts_with("# KMS activation report: x"), "{text}");
        assert!(text.contains("## Verdict"), "{text}");
    }
}
