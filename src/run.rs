//! Driving the pipeline: open every source of an input (a zip may hold several), feed its packets to
//! an [`Engine`], and hand the events to the sinks. A live capture (`capture::live`, feature `live`)
//! is one more [`PacketSource`] driven by the very same [`analyze_source`] loop; it adds ticks for
//! periodic summaries and its drop counters. [`analyze_paths`] runs several inputs at once, one
//! pipeline per input, and writes their output in input order.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

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

/// Several sinks as one: each event goes to every sink in turn, up to the first that fails.
struct Fan<'a>(&'a mut [Box<dyn Sink>]);

impl Sink for Fan<'_> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.event(ev))
    }

    fn events(&mut self, evs: &[Event]) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.events(evs))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.finish())
    }
}

/// The engine's output into a sink, remembering its first failure (nothing more is sent after it).
struct ToSink<'a> {
    sink: &'a mut dyn Sink,
    failed: Option<std::io::Error>,
}

impl crate::engine::Out for ToSink<'_> {
    fn event(&mut self, ev: &Event) {
        self.events(std::slice::from_ref(ev));
    }

    fn events(&mut self, evs: &[Event]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.sink.events(evs) {
            self.failed = Some(e);
        }
    }
}

/// Analyses one input (`-` for standard input) into `sinks`.
pub fn analyze_path(path: &str, opts: &RunOptions, sinks: &mut [Box<dyn Sink>]) -> RunReport {
    analyze_path_into(path, opts, &mut Fan(sinks))
}

/// Analyses one input (`-` for standard input) into one sink (which may fan out itself).
pub fn analyze_path_into(path: &str, opts: &RunOptions, sink: &mut dyn Sink) -> RunReport {
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
                if let Err(e) = analyze_source_into(src, opts, sink) {
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
    src: Box<dyn PacketSource + Send>,
    opts: &RunOptions,
    sinks: &mut [Box<dyn Sink>],
) -> Result<(), String> {
    analyze_source_into(src, opts, &mut Fan(sinks))
}

/// [`analyze_source`] into one sink (which may fan out itself).
pub fn analyze_source_into(
    mut src: Box<dyn PacketSource + Send>,
    opts: &RunOptions,
    sinks: &mut dyn Sink,
) -> Result<(), String> {
    let mut engine = Engine::new(src.name(), opts.engine.clone());
    let mut out = ToSink {
        sink: sinks,
        failed: None,
    };
    let mut error = None;
    loop {
        // First the packets that need nothing else (most of a file), without a dynamic call and
        // a test for notices per packet; their calls are handed to the sinks in batches.
        src.fast_packets(&mut |pkt| {
            engine.packet_batched(pkt, &mut out);
            out.failed.is_none()
        });
        engine.flush(&mut out);
        if out.failed.is_some() {
            break;
        }
        let next = src.next_item();
        match next {
            Ok(Next::Packet(pkt)) => engine.packet(&pkt, &mut out),
            Ok(Next::Tick) => {
                if let Some(st) = src.capture_stats() {
                    engine.set_capture_drops(st.dropped, st.if_dropped);
                }
                engine.summary_now(&mut out);
            }
            Ok(Next::End) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        if src.has_notices() {
            for n in src.take_notices() {
                engine.notice(&n, &mut out);
            }
        }
        if out.failed.is_some() {
            break;
        }
    }
    for n in src.take_notices() {
        engine.notice(&n, &mut out);
    }
    if let Some(e) = &error {
        engine.read_error(e, &mut out);
    }
    if let Some(st) = src.capture_stats() {
        engine.set_capture_drops(st.dropped, st.if_dropped);
    }
    engine.finish(&mut out);
    let failed = out.failed;
    match (error, failed) {
        (Some(e), _) => Err(e),
        (None, Some(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Files analysed ahead of the one being written, per job: enough to keep every core busy when
/// file sizes differ, while the output held for them (and the temporary files) stays bounded.
const AHEAD_PER_JOB: usize = 2;

/// Analyses `paths` in order into `sink` with up to `jobs` pipelines at once (one thread and one
/// [`Engine`] per input; the members of one archive stay in sequence), with output exactly as if
/// they had been read one after the other: sources never share state, so each input's output can
/// be produced on its own and appended in turn.
///
/// The calling thread streams the input whose turn it is straight into `sink`; an input analysed
/// ahead of its turn (by a worker, or by the calling thread while it waits) goes into a part made
/// by `new_part`, whose output is held in [`Spool`]s. `emit` is called once per input, in input
/// order, with that part (`None` when the input was streamed) and the input's [`RunReport`]: it
/// appends the part to `sink` and reports the errors. At most `AHEAD_PER_JOB * jobs` inputs are
/// analysed ahead of the one being written.
pub fn analyze_paths<S, P>(
    paths: &[String],
    opts: &RunOptions,
    jobs: usize,
    sink: &mut S,
    new_part: impl Fn() -> P + Sync,
    mut emit: impl FnMut(&mut S, Option<P>, RunReport),
) where
    S: Sink,
    P: Sink + Send,
{
    let n = paths.len();
    let jobs = jobs.clamp(1, n.max(1));
    let ahead = AHEAD_PER_JOB * jobs;
    let queue = Queue {
        state: Mutex::new(QueueState {
            next: 0,
            head: 0,
            done: (0..n).map(|_| None).collect(),
            panicked: false,
        }),
        changed: Condvar::new(),
    };
    let run_ahead = |i: usize| {
        let mut part = new_part();
        let report = analyze_path_into(&paths[i], opts, &mut part);
        (part, report)
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs {
            scope.spawn(|| {
                // Wakes the writer if this thread dies with an input claimed.
                let _guard = PanicGuard(&queue);
                while let Some(i) = queue.claim(ahead) {
                    let done = run_ahead(i);
                    queue.finish(i, done);
                }
            });
        }
        // Stops the workers if this thread panics (the scope waits for them before unwinding).
        let _guard = PanicGuard(&queue);
        for (i, path) in paths.iter().enumerate() {
            let mut st = queue.lock();
            st.head = i;
            queue.changed.notify_all();
            loop {
                if st.next == i {
                    // Nobody took this input ahead: analyse it straight into the output.
                    st.next += 1;
                    drop(st);
                    let report = analyze_path_into(path, opts, sink);
                    emit(sink, None, report);
                    break;
                }
                if let Some((part, report)) = st.done[i].take() {
                    drop(st);
                    emit(sink, Some(part), report);
                    break;
                }
                assert!(!st.panicked, "an analysis thread panicked");
                if st.next < n && st.next < i + ahead {
                    // The input is still being analysed elsewhere: take on the next one meanwhile.
                    let k = st.next;
                    st.next += 1;
                    drop(st);
                    let done = run_ahead(k);
                    queue.finish(k, done);
                    st = queue.lock();
                } else {
                    st = queue
                        .changed
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        // Every input is claimed: idle workers see it and end.
        queue.lock().head = n;
        queue.changed.notify_all();
    });
}

/// The inputs of [`analyze_paths`]: which is next to claim, which is being written, and the output
/// of those analysed ahead.
struct Queue<P> {
    state: Mutex<QueueState<P>>,
    changed: Condvar,
}

struct QueueState<P> {
    /// The first input nobody has claimed yet.
    next: usize,
    /// The input being written.
    head: usize,
    /// Inputs analysed ahead of their turn, waiting to be written.
    done: Vec<Option<(P, RunReport)>>,
    /// A worker thread panicked (its input will never be done).
    panicked: bool,
}

impl<P> Queue<P> {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<P>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next input for a worker, waiting while it would run too far ahead; `None` at the end.
    fn claim(&self, ahead: usize) -> Option<usize> {
        let mut st = self.lock();
        loop {
            if st.next >= st.done.len() || st.panicked {
                return None;
            }
            if st.next < st.head + ahead {
                st.next += 1;
                return Some(st.next - 1);
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn finish(&self, i: usize, done: (P, RunReport)) {
        if let Some(slot) = self.lock().done.get_mut(i) {
            *slot = Some(done);
        }
        self.changed.notify_all();
    }
}

/// Marks the queue when a thread unwinds, so that the others stop waiting for it (the panic itself
/// reaches the caller when the thread scope ends).
struct PanicGuard<'a, P>(&'a Queue<P>);

impl<P> Drop for PanicGuard<'_, P> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().panicked = true;
            self.0.changed.notify_all();
        }
    }
}

/// Output of an input analysed ahead of its turn: held in memory while a budget shared by all the
/// spools lasts, then in an anonymous temporary file (removed by the system when closed), so that
/// memory stays bounded however much output waits.
pub struct Spool {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    budget: Arc<AtomicUsize>,
    /// Bytes of `budget` this spool holds (the capacity of `mem`).
    charged: usize,
}

impl Spool {
    /// A spool drawing on `budget` (bytes of memory left for all spools).
    pub fn new(budget: Arc<AtomicUsize>) -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            budget,
            charged: 0,
        }
    }

    /// Whether the output went to a temporary file.
    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Grows `mem` for `more` bytes if the budget allows.
    fn grow(&mut self, more: usize) -> bool {
        let need = self.mem.len().saturating_add(more);
        if need <= self.mem.capacity() {
            return true;
        }
        let cap = need.max(self.mem.capacity() * 2).max(1 << 16);
        let extra = cap - self.charged;
        let taken = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(extra)
            })
            .is_ok();
        if taken {
            self.charged = cap;
            self.mem.reserve_exact(cap - self.mem.len());
        }
        taken
    }

    /// Moves what is in memory to a new temporary file, and gives the memory back to the budget.
    fn spill(&mut self) -> io::Result<&mut BufWriter<File>> {
        let mut file = BufWriter::with_capacity(1 << 16, tempfile::tempfile()?);
        file.write_all(&self.mem)?;
        self.mem = Vec::new();
        self.budget
            .fetch_add(std::mem::take(&mut self.charged), Ordering::Relaxed);
        Ok(self.file.insert(file))
    }

    /// Reads back everything written.
    pub fn into_reader(mut self) -> io::Result<SpoolReader> {
        let file = match self.file.take() {
            Some(w) => {
                let mut f = w.into_inner().map_err(io::IntoInnerError::into_error)?;
                f.rewind()?;
                Some(io::BufReader::with_capacity(1 << 16, f))
            }
            None => None,
        };
        Ok(SpoolReader {
            spool: self,
            pos: 0,
            file,
        })
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.grow(buf.len()) {
            self.mem.extend_from_slice(buf);
            return Ok(buf.len());
        }
        match &mut self.file {
            Some(f) => f.write(buf),
            None => self.spill()?.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.budget.fetch_add(self.charged, Ordering::Relaxed);
    }
}

/// What a [`Spool`] holds, read from the start.
pub struct SpoolReader {
    spool: Spool,
    pos: usize,
    file: Option<io::BufReader<File>>,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.file {
            return f.read(buf);
        }
        let rest = self.spool.mem.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

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
    fn spools_keep_to_their_budget_and_give_back_every_byte() {
        let budget = Arc::new(AtomicUsize::new(100 << 10));
        let mut small = Spool::new(budget.clone());
        let mut big = Spool::new(budget.clone());
        let line: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for _ in 0..10 {
            small.write_all(&line).expect("write");
        }
        for _ in 0..500 {
            big.write_all(&line).expect("write");
        }
        assert!(!small.spilled());
        assert!(big.spilled(), "500 kB cannot stay within a 100 kB budget");
        assert!(budget.load(Ordering::Relaxed) <= 100 << 10);
        for (spool, n) in [(small, 10), (big, 500)] {
            let mut back = Vec::new();
            spool
                .into_reader()
                .expect("reader")
                .read_to_end(&mut back)
                .expect("read");
            assert_eq!(back, line.repeat(n));
        }
        assert_eq!(
            budget.load(Ordering::Relaxed),
            100 << 10,
            "budget given back"
        );
    }

    /// A sink that records the sources it saw, one line per event.
    struct Names(Vec<u8>);

    impl Sink for Names {
        fn event(&mut self, ev: &Event) -> io::Result<()> {
            writeln!(self.0, "{} {}", ev.source, ev.event)
        }
        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn inputs_analysed_ahead_are_emitted_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/interop/");
        let mut paths: Vec<String> = std::fs::read_dir(dir)
            .expect("interop")
            .filter_map(|e| e.ok())
            .map(|e| e.path().to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".pcap") || p.ends_with(".pcapng"))
            .collect();
        paths.sort();
        paths.push("/nonexistent/x.pcap".into());
        let run = |jobs| {
            let mut sink = Names(Vec::new());
            let mut order = Vec::new();
            analyze_paths(
                &paths,
                &RunOptions::default(),
                jobs,
                &mut sink,
                || Names(Vec::new()),
                |sink, part, report| {
                    if let Some(part) = part {
                        sink.0.extend_from_slice(&part.0);
                    }
                    order.push((report.sources, report.errors));
                },
            );
            (sink.0, order)
        };
        let seq = run(1);
        assert_eq!(seq.1.len(), paths.len());
        for jobs in [2, 3, 8] {
            assert!(run(jobs) == seq, "{jobs} jobs");
        }
    }

    #[test]
    fn file_summaries_have_no_drop_counters() {
        let mut engine = Engine::new("f.pcap", EngineConfig::default());
        let mut seen = Vec::new();
        engine.summary_now(&mut |e: &Event| seen.push(e.clone()));
        engine.finish(&mut |e: &Event| seen.push(e.clone()));
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
