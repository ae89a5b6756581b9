//! Driving the pipeline: open every source of an input (a zip may hold several), feed its packets to
//! an [`Engine`], and hand the events to the sinks. A live capture (`capture::live`, feature `live`)
//! is one more [`PacketSource`] driven by the very same [`analyze_source`] loop; it adds ticks for
//! periodic summaries and its drop counters.

use crate::capture::{self, Next, Opened, PacketSource};
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
/// could be read) and is returned as the line to print. Live sources also yield ticks, each
/// written as a periodic `summary`, and their drop counters go into every summary.
pub fn analyze_source(
    mut src: Box<dyn PacketSource + Send>,
    opts: &RunOptions,
    sinks: &mut [Box<dyn Sink>],
) -> Result<(), String> {
    let mut engine = Engine::new(src.name(), opts.engine.clone());
    let mut failed: Option<std::io::Error> = None;
    let mut error = None;
    loop {
        let next = src.next_item();
        match next {
            Ok(Next::Packet(pkt)) => {
                engine.packet(&pkt, &mut |ev| fan_out(sinks, ev, &mut failed));
            }
            Ok(Next::Tick) => {
                if let Some(st) = src.capture_stats() {
                    engine.set_capture_drops(st.dropped, st.if_dropped);
                }
                engine.summary_now(&mut |ev| fan_out(sinks, ev, &mut failed));
            }
            Ok(Next::End) => break,
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
    if let Some(st) = src.capture_stats() {
        engine.set_capture_drops(st.dropped, st.if_dropped);
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::capture::{CaptureError, CaptureStats, LinkType, Notice, RawPacket};
    use crate::event::Body;
    use crate::time::Ts;

    /// A stand-in for a live source: one packet, a tick, another packet, the end.
    struct Scripted {
        step: usize,
        frame: [u8; 14],
        stats: CaptureStats,
    }

    impl PacketSource for Scripted {
        fn name(&self) -> &str {
            "live:test0"
        }
        fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
            unreachable!("drivers use next_item")
        }
        fn take_notices(&mut self) -> Vec<Notice> {
            Vec::new()
        }
        fn next_item(&mut self) -> Result<Next<'_>, CaptureError> {
            self.step += 1;
            let pkt = |frame| {
                Next::Packet(RawPacket {
                    frame,
                    ts: Ts(1_000_000_000 * frame as i64),
                    link: LinkType::ETHERNET,
                    data: &self.frame,
                    orig_len: 14,
                })
            };
            Ok(match self.step {
                1 => pkt(1),
                2 => {
                    self.stats.dropped = 2;
                    self.stats.if_dropped = 1;
                    Next::Tick
                }
                3 => pkt(2),
                _ => {
                    self.stats.dropped = 5;
                    self.stats.if_dropped = 3;
                    Next::End
                }
            })
        }
        fn capture_stats(&self) -> Option<CaptureStats> {
            Some(self.stats)
        }
    }

    struct Collect(std::rc::Rc<std::cell::RefCell<Vec<Event>>>);

    impl Sink for Collect {
        fn event(&mut self, ev: &Event) -> io::Result<()> {
            self.0.borrow_mut().push(ev.clone());
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ticks_become_periodic_summaries_with_drop_counters() {
        let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Collect(got.clone()))];
        let src = Scripted {
            step: 0,
            frame: [0; 14],
            stats: CaptureStats::default(),
        };
        analyze_source(Box::new(src), &RunOptions::default(), &mut sinks).expect("run");
        let events = got.borrow();
        let summaries: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Summary(s) => Some((e.source.to_string(), s.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(summaries.len(), 2);
        let (src0, first) = &summaries[0];
        assert_eq!(src0, "live:test0");
        assert!(!first.last);
        assert_eq!(first.packets, 1);
        assert_eq!((first.dropped, first.if_dropped), (Some(2), Some(1)));
        let (_, last) = &summaries[1];
        assert!(last.last);
        assert_eq!(last.packets, 2);
        assert_eq!((last.dropped, last.if_dropped), (Some(5), Some(3)));
    }

    #[test]
    fn file_summaries_have_no_drop_counters() {
        let mut engine = Engine::new("f.pcap", EngineConfig::default());
        let mut seen = Vec::new();
        engine.summary_now(&mut |e| seen.push(e.clone()));
        engine.finish(&mut |e| seen.push(e.clone()));
        let json: Vec<String> = seen
            .iter()
            .map(|e| serde_json::to_string(e).expect("json"))
            .collect();
        assert_eq!(json.len(), 2);
        assert!(!json[0].contains("\"last\""), "{}", json[0]);
        assert!(json[1].contains("\"last\":true"), "{}", json[1]);
        for j in &json {
            assert!(!j.contains("dropped"), "{j}");
        }
    }
}
