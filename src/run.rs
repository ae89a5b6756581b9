//! Driving the pipeline over files: open every source of an input (a zip may hold several), feed
//! its packets to an [`Engine`], and hand the events to the sinks.

use crate::capture::{self, Opened, PacketSource};
use crate::engine::{Engine, EngineConfig};
use crate::event::Event;
use crate::output::Sink;

/// Options for [`analyze_path`].
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub engine: EngineConfig,
}

/// What happened while reading one input.
#[derive(Debug, Default)]
pub struct RunReport {
    /// One line per unreadable input or source (file name and byte offset or frame).
    pub errors: Vec<String>,
    /// Archive members that hold no capture: reported, not an error.
    pub notes: Vec<String>,
    /// Sources analysed (a zip counts each capture inside).
    pub sources: usize,
    /// A sink failed (e.g. the reader of standard output went away): stop.
    pub output_closed: bool,
}

/// Sends one event to every sink; remembers a failed sink.
fn fan_out(sinks: &mut [Box<dyn Sink>], ev: &Event, failed: &mut Option<std::io::Error>) {
    if failed.is_some() {
        return;
    }
    for s in sinks.iter_mut() {
        if let Err(e) = s.event(ev) {
            *failed = Some(e);
            return;
        }
    }
}

/// Analyses one input (`-` for standard input) into `sinks`.
pub fn analyze_path(path: &str, opts: &RunOptions, sinks: &mut [Box<dyn Sink>]) -> RunReport {
    let mut report = RunReport::default();
    let sources = match capture::open_path(path) {
        Ok(s) => s,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    for item in sources {
        match item {
            Ok(Opened::Source(src)) => {
                report.sources += 1;
                if let Err(e) = analyze_source(src, opts, sinks) {
                    report.errors.push(e);
                }
            }
            Ok(Opened::Skipped(notice)) => report.notes.push(notice.to_string()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    if report.sources == 0 && report.errors.is_empty() {
        // An archive that holds no capture at all: nothing was analysed, which is an error for
        // the input (exit status 1), not a silent success with only notes.
        report
            .errors
            .push(format!("{path}: no capture file found in the archive"));
    }
    report
}

/// Analyses one packet source to the end. A read error ends the source (after analysing what
/// could be read) and is returned as the line to print.
pub fn analyze_source(
    mut src: Box<dyn PacketSource + Send>,
    opts: &RunOptions,
    sinks: &mut [Box<dyn Sink>],
) -> Result<(), String> {
    let mut engine = Engine::new(src.name(), opts.engine.clone());
    let mut failed: Option<std::io::Error> = None;
    let mut error = None;
    loop {
        let next = src.next_packet();
        match next {
            Ok(Some(pkt)) => {
                engine.packet(&pkt, &mut |ev| fan_out(sinks, ev, &mut failed));
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        for n in src.take_notices() {
            engine.notice(&n, &mut |ev| fan_out(sinks, ev, &mut failed));
        }
        if failed.is_some() {
            break;
        }
    }
    for n in src.take_notices() {
        engine.notice(&n, &mut |ev| fan_out(sinks, ev, &mut failed));
    }
    if let Some(e) = &error {
        engine.read_error(e, &mut |ev| fan_out(sinks, ev, &mut failed));
    }
    engine.finish(&mut |ev| fan_out(sinks, ev, &mut failed));
    match (error, failed) {
        (Some(e), _) => Err(e),
        (None, Some(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing output: {e}"))
        }
        _ => Ok(()),
    }
}
