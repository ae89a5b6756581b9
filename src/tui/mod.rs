//! The terminal UI (issue 5): calls, decoded fields, hex, findings, hosts and DNS, live or replayed.
//!
//! Threads and ownership (house style "single owner of UI state"):
//!
//! ```text
//! engine thread: packets -> Engine -> TuiSink ==(bounded sync_channel of Msg batches)==> UI thread
//! UI thread:     App (all state) <- ingest(Msg) / key(KeyEvent);  draw(&View) at most ~30 fps
//! ```
//!
//! The engine side is a [`TuiSink`], an ordinary [`Sink`], so the live engine can put it beside the
//! JSON Lines sink. It batches events (at most [`BATCH_EVENTS`] per message, flushed every
//! [`BATCH_INTERVAL`]) into a channel of [`CHANNEL_BATCHES`] messages. What happens when the UI
//! falls behind is the sink's [`Backpressure`]:
//!
//! - [`Backpressure::Block`] for files: the engine waits for the UI. That is back-pressure on
//!   reading a file, not on a capture, and it guarantees the UI sees every event.
//! - [`Backpressure::Drop`] for live: the sink never blocks. It keeps up to [`MAX_HELD_EVENTS`]
//!   events while the channel is full and drops (and counts) beyond that; the count is shown in the
//!   status bar. (The capture thread is separate anyway: this only protects the analysis thread.)
//!
//! The UI thread owns [`App`]; rendering is `impl Widget for &View` and never mutates; input is
//! polled with a timeout so that event batches are coalesced into at most one frame per ~33 ms.
//! Freezing the view (space) parks new events in the app without stopping ingest. A panic hook and
//! a drop guard restore the terminal on every exit path. Only this module touches ratatui/crossterm.
//!
//! ## Live capture
//!
//! `kmsscope live -i IFACE` opens the UI when standard output is a terminal. The live command runs
//! its capture + engine on a thread of its own and the UI on the main thread:
//!
//! ```no_run
//! use kmsscope::engine::{Engine, EngineConfig};
//! use kmsscope::event::Event;
//! use kmsscope::output::Sink;
//! use kmsscope::tui::{self, Backpressure, TuiOptions};
//!
//! let (mut sink, rx) = tui::channel(Backpressure::Drop);
//! let engine_thread = std::thread::spawn(move || {
//!     let cfg = EngineConfig { keep_payloads: true, ..EngineConfig::default() }; // hex view
//!     let mut engine = Engine::new("live:eth0", cfg);
//!     let (mut packets, mut bytes) = (0u64, 0u64);
//!     loop {
//!         // pkt = capture.next()...;  on a read timeout: `sink.tick(); continue;`
//!         // engine.packet(&pkt, &mut |ev: &Event| { let _ = sink.event(ev); /* + other sinks */ });
//!         // packets += 1; bytes += u64::from(pkt.orig_len);
//!         sink.progress(packets, bytes); // cheap, never blocks; also flushes a waiting batch
//!         if sink.is_closed() {
//!             break; // the user quit the UI
//!         }
//!         # break;
//!     }
//!     engine.finish(&mut |ev: &Event| { let _ = sink.event(ev); });
//!     let _ = sink.finish(); // sends the rest and `Msg::Done`
//! });
//! let app = tui::run_tui(rx, TuiOptions { source: "live:eth0".into(), ..TuiOptions::default() })?;
//! // The terminal is restored here. `app.status.errors` holds errors the engine reported.
//! # let _ = (engine_thread, app);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod app;
mod calls;
pub mod detail;
mod dns;
pub mod filter;
mod findings;
mod hosts;
pub mod report;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{self as cevent, Event as TermEvent, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;

pub use app::App;
pub use view::View;

use crate::capture::{self, Opened, PacketSource};
use crate::engine::{Engine, EngineConfig};
use crate::event::Event;
use crate::output::Sink;
use crate::output::escape::escape;

/// Messages of the bounded channel in a batch.
pub const BATCH_EVENTS: usize = 1024;
/// A batch is sent at least this often while events arrive (and on `tick`).
pub const BATCH_INTERVAL: Duration = Duration::from_millis(30);
/// Capacity of the channel, in messages.
pub const CHANNEL_BATCHES: usize = 64;
/// `Drop` mode: events held by the sink while the channel is full, before dropping.
pub const MAX_HELD_EVENTS: usize = 100_000;
/// Minimum time between two frames (about 30 per second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// Longest time the UI spends applying batches before it draws and reads keys again.
const INGEST_BUDGET: Duration = Duration::from_millis(25);

/// One message from the engine thread to the UI thread.
#[derive(Debug)]
pub enum Msg {
    /// Events, in order.
    Events(Vec<Arc<Event>>),
    /// Packet counters so far (all sources).
    Progress { packets: u64, bytes: u64 },
    /// A source could not be read (already escaped or not: the UI escapes it).
    Error(String),
    /// No more messages will come.
    Done,
}

/// What the sink does when the UI falls behind (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for the UI (file replay: every event is shown).
    Block,
    /// Never wait: hold a bounded backlog, then drop and count (live capture).
    Drop,
}

/// The engine side of the channel: a [`Sink`].
pub struct TuiSink {
    tx: SyncSender<Msg>,
    mode: Backpressure,
    batch: Vec<Arc<Event>>,
    last_flush: Instant,
    last_progress: Instant,
    dropped: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

/// The UI side of the channel, for [`run_tui`].
pub struct UiReceiver {
    rx: Receiver<Msg>,
    dropped: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

/// A bounded channel from an engine thread to the UI.
pub fn channel(mode: Backpressure) -> (TuiSink, UiReceiver) {
    let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
    let dropped = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    (
        TuiSink {
            tx,
            mode,
            batch: Vec::with_capacity(BATCH_EVENTS),
            last_flush: Instant::now(),
            last_progress: Instant::now(),
            dropped: dropped.clone(),
            closed: closed.clone(),
        },
        UiReceiver {
            rx,
            dropped,
            closed,
        },
    )
}

impl TuiSink {
    /// True once the UI has quit: stop capturing / reading.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Events dropped so far (`Drop` mode).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Packet counters; also sends a batch that has waited [`BATCH_INTERVAL`]. Cheap: call it per
    /// packet or on every capture timeout. Never blocks (a progress update is dropped if the
    /// channel is full; the next one carries the totals).
    pub fn progress(&mut self, packets: u64, bytes: u64) {
        if self.last_progress.elapsed() >= BATCH_INTERVAL {
            self.last_progress = Instant::now();
            let _ = self.flush();
            self.try_send_small(Msg::Progress { packets, bytes });
        }
    }

    /// Sends a batch that has waited [`BATCH_INTERVAL`] (call when idle, e.g. on capture timeout).
    pub fn tick(&mut self) {
        if self.last_flush.elapsed() >= BATCH_INTERVAL {
            let _ = self.flush();
        }
    }

    /// Reports an unreadable source to the UI.
    pub fn error(&mut self, message: String) {
        let _ = self.flush();
        self.send_control(Msg::Error(message));
    }

    fn try_send_small(&mut self, msg: Msg) {
        if let Err(TrySendError::Disconnected(_)) = self.tx.try_send(msg) {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    fn send_control(&mut self, msg: Msg) {
        match self.mode {
            Backpressure::Block => {
                if self.tx.send(msg).is_err() {
                    self.closed.store(true, Ordering::Relaxed);
                }
            }
            Backpressure::Drop => self.try_send_small(msg),
        }
    }

    /// Sends the pending batch.
    pub fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        if self.is_closed() {
            self.batch.clear();
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the UI has quit"));
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_EVENTS));
        match self.mode {
            Backpressure::Block => {
                if self.tx.send(Msg::Events(batch)).is_err() {
                    self.closed.store(true, Ordering::Relaxed);
                }
            }
            Backpressure::Drop => match self.tx.try_send(Msg::Events(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(Msg::Events(mut back))) => {
                    // Hold a bounded backlog; drop the oldest beyond it.
                    if back.len() > MAX_HELD_EVENTS {
                        let excess = back.len() - MAX_HELD_EVENTS;
                        back.drain(..excess);
                        self.dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    }
                    self.batch = back;
                }
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => self.closed.store(true, Ordering::Relaxed),
            },
        }
        if self.is_closed() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the UI has quit"));
        }
        Ok(())
    }
}

impl Sink for TuiSink {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the UI has quit"));
        }
        self.batch.push(Arc::new(ev.clone()));
        if self.batch.len() >= BATCH_EVENTS || self.last_flush.elapsed() >= BATCH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is left and `Done`.
    fn finish(&mut self) -> io::Result<()> {
        if self.mode == Backpressure::Drop && !self.batch.is_empty() {
            // Last chance for the backlog: wait briefly rather than drop it at the very end.
            let deadline = Instant::now() + Duration::from_millis(500);
            while !self.batch.is_empty() && Instant::now() < deadline && !self.is_closed() {
                let _ = self.flush();
                if !self.batch.is_empty() {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            self.dropped
                .fetch_add(self.batch.len() as u64, Ordering::Relaxed);
            self.batch.clear();
        }
        let r = self.flush();
        self.send_control(Msg::Done);
        r
    }
}

// ------------------------------------------------------------------------------------------------
// File replay (the engine thread of `kmsscope read FILE --tui`)

/// Options of a file replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// `None`: as fast as possible. `Some(n)`: in packet time, `n` times faster.
    pub speed: Option<f64>,
    pub engine: EngineConfig,
}

/// Reads `files` on a new thread into `sink` (and `extra` sinks, e.g. a JSON Lines file). The engine
/// keeps payload bytes for the hex view.
pub fn spawn_replay(
    files: Vec<String>,
    opts: ReplayOptions,
    mut sink: TuiSink,
    mut extra: Vec<Box<dyn Sink + Send>>,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kmsscope-replay".into())
        .spawn(move || {
            let mut cfg = opts.engine.clone();
            cfg.keep_payloads = true;
            let mut fan = Fan {
                sink: &mut sink,
                extra: &mut extra,
                failed: false,
                packets: 0,
                bytes: 0,
            };
            'files: for file in &files {
                let sources = match capture::open_path(file) {
                    Ok(s) => s,
                    Err(e) => {
                        fan.sink.error(e.to_string());
                        continue;
                    }
                };
                for item in sources {
                    match item {
                        Ok(Opened::Source(src)) => replay_source(src, &cfg, opts.speed, &mut fan),
                        Ok(Opened::Skipped(n)) => fan.sink.error(format!("{n} (skipped)")),
                        Err(e) => fan.sink.error(e.to_string()),
                    }
                    if fan.sink.is_closed() {
                        break 'files;
                    }
                }
            }
            let (packets, bytes) = (fan.packets, fan.bytes);
            for s in &mut extra {
                let _ = s.finish();
            }
            sink.progress_now(packets, bytes);
            let _ = sink.finish();
        })
}

impl TuiSink {
    fn progress_now(&mut self, packets: u64, bytes: u64) {
        let _ = self.flush();
        self.send_control(Msg::Progress { packets, bytes });
    }
}

/// The replay thread's sinks and counters.
struct Fan<'a> {
    sink: &'a mut TuiSink,
    extra: &'a mut Vec<Box<dyn Sink + Send>>,
    /// The UI has quit.
    failed: bool,
    packets: u64,
    bytes: u64,
}

impl crate::engine::Out for Fan<'_> {
    fn event(&mut self, ev: &Event) {
        if self.sink.event(ev).is_err() {
            self.failed = true;
        }
        for s in self.extra.iter_mut() {
            let _ = s.event(ev);
        }
    }
}

/// Like `run::analyze_source`, plus pacing in packet time and progress counters.
fn replay_source(
    mut src: Box<dyn PacketSource + Send>,
    cfg: &EngineConfig,
    speed: Option<f64>,
    fan: &mut Fan<'_>,
) {
    let mut engine = Engine::new(src.name(), cfg.clone());
    let mut clock: Option<(i64, Instant)> = None;
    let mut error = None;
    loop {
        match src.next_packet() {
            Ok(Some(pkt)) => {
                if let Some(speed) = speed.filter(|s| *s > 0.0 && s.is_finite()) {
                    let (t0, w0) = *clock.get_or_insert((pkt.ts.0, Instant::now()));
                    let due_ns = (pkt.ts.0.saturating_sub(t0)).max(0) as f64 / speed;
                    let due = w0 + Duration::from_nanos(due_ns.min(1e18) as u64);
                    // Sleep in slices so that a quit is noticed and events reach the UI on time.
                    loop {
                        let now = Instant::now();
                        if now >= due || fan.sink.is_closed() {
                            break;
                        }
                        let _ = fan.sink.flush();
                        thread::sleep((due - now).min(Duration::from_millis(50)));
                    }
                }
                fan.packets += 1;
                fan.bytes += u64::from(pkt.orig_len);
                engine.packet(&pkt, fan);
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        for n in src.take_notices() {
            engine.notice(&n, fan);
        }
        fan.sink.progress(fan.packets, fan.bytes);
        if fan.failed || fan.sink.is_closed() {
            return;
        }
    }
    for n in src.take_notices() {
        engine.notice(&n, fan);
    }
    if let Some(e) = &error {
        engine.read_error(e, fan);
    }
    engine.finish(fan);
    if let Some(e) = error {
        fan.sink.error(e);
    }
}

// ------------------------------------------------------------------------------------------------
// The terminal

/// Options of [`run_tui`].
#[derive(Clone, Debug)]
pub struct TuiOptions {
    /// What the status bar names as the source until events arrive (`live:eth0`, file names).
    pub source: String,
    /// Where `w` writes the report.
    pub report_path: std::path::PathBuf,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            source: String::new(),
            report_path: report::DEFAULT_PATH.into(),
        }
    }
}

static HOOK: Once = Once::new();
/// The thread running the UI while the terminal is in raw mode / the alternate screen.
static UI_THREAD: Mutex<Option<thread::ThreadId>> = Mutex::new(None);
/// Panic messages of other threads while the UI runs, printed once the terminal is restored.
static DEFERRED_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Restores the terminal: leaves raw mode and the alternate screen, shows the cursor.
pub fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

/// Restores the terminal when dropped (every return path of [`run_tui`]).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the UI on the current thread until the user quits. The terminal is restored on return,
/// on error and on panic. The engine side may keep running; it sees `TuiSink::is_closed()`.
pub fn run_tui(rx: UiReceiver, opts: TuiOptions) -> io::Result<App> {
    if !io::stdout().is_terminal() {
        return Err(io::Error::other(
            "the terminal UI needs a terminal on standard output",
        ));
    }
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ui = UI_THREAD.lock().map(|g| *g).unwrap_or(None);
            match ui {
                // Another thread (the engine) while the UI runs: printing now would scribble over
                // the screen; keep the message for after the terminal is restored.
                Some(id) if id != thread::current().id() => {
                    if let Ok(mut v) = DEFERRED_PANICS.lock() {
                        v.push(format!("{info}"));
                    }
                }
                // The UI thread itself, or no UI running: restore first, then report.
                _ => {
                    restore_terminal();
                    previous(info);
                }
            }
        }));
    });
    if let Ok(mut g) = UI_THREAD.lock() {
        *g = Some(thread::current().id());
    }
    terminal::enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    term.clear()?;
    let app = event_loop(&mut term, &rx, &opts);
    rx.closed.store(true, Ordering::Relaxed);
    drop(term);
    drop(guard);
    if let Ok(mut g) = UI_THREAD.lock() {
        *g = None;
    }
    if let Ok(mut v) = DEFERRED_PANICS.lock() {
        for m in v.drain(..) {
            eprintln!("kmsscope: the analysis thread panicked: {}", escape(&m));
        }
    }
    app
}

fn event_loop(
    term: &mut Terminal<CrosstermBackend<io::Stdout>>,
    rx: &UiReceiver,
    opts: &TuiOptions,
) -> io::Result<App> {
    let mut app = App::new(&opts.source);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME_INTERVAL;
    let mut rate_at = (Instant::now(), 0u64);
    let (report_tx, report_rx) = mpsc::channel::<String>();
    let mut disconnected = false;
    loop {
        // 1. Apply what the engine sent, within a time budget.
        if !disconnected {
            let start = Instant::now();
            loop {
                match rx.rx.try_recv() {
                    Ok(m) => {
                        app.ingest(m);
                        dirty = true;
                        if start.elapsed() >= INGEST_BUDGET {
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        if !app.status.done {
                            app.status
                                .errors
                                .push("the analysis stopped unexpectedly".into());
                        }
                        app.status.done = true;
                        dirty = true;
                        break;
                    }
                }
            }
        }
        let dropped = rx.dropped.load(Ordering::Relaxed);
        if dropped != app.status.dropped {
            app.status.dropped = dropped;
            dirty = true;
        }
        if rate_at.0.elapsed() >= Duration::from_secs(1) {
            let secs = rate_at.0.elapsed().as_secs_f64();
            let rate = (app.status.packets.saturating_sub(rate_at.1)) as f64 / secs;
            app.status.rate = Some(rate);
            rate_at = (Instant::now(), app.status.packets);
            dirty = true;
        }
        while let Ok(msg) = report_rx.try_recv() {
            app.notice = Some(msg);
            dirty = true;
        }
        // 2. Draw, at most once per frame interval.
        if dirty && last_draw.elapsed() >= FRAME_INTERVAL {
            let size = term.size()?;
            app.resize(Rect::new(0, 0, size.width, size.height));
            term.draw(|f| f.render_widget(&View::new(&app), f.area()))?;
            last_draw = Instant::now();
            dirty = false;
        }
        // 3. Keys, waiting at most until the next frame is due.
        let wait = if dirty {
            FRAME_INTERVAL.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_millis(50)
        };
        if cevent::poll(wait)? {
            loop {
                match cevent::read()? {
                    TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                        dirty = true;
                        match app.key(k) {
                            app::Action::Quit => return Ok(app),
                            app::Action::WriteReport => {
                                // Everything received, including what waits behind a frozen view.
                                let mut events = app.events.clone();
                                events.extend(app.pending.iter().cloned());
                                let path = opts.report_path.clone();
                                let tx = report_tx.clone();
                                app.notice = Some(format!("writing {}…", path.display()));
                                thread::spawn(move || {
                                    let msg = match report::write_report(&path, &events) {
                                        Ok(()) => format!(
                                            "report written to {} ({} events)",
                                            path.display(),
                                            events.len()
                                        ),
                                        Err(e) => {
                                            format!("cannot write {}: {e}", path.display())
                                        }
                                    };
                                    let _ = tx.send(msg);
                                });
                            }
                            app::Action::None => {}
                        }
                    }
                    TermEvent::Resize(..) => dirty = true,
                    _ => {}
                }
                if !cevent::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}

/// `kmsscope read FILE… --tui`: replays the files into the UI. Returns the errors met (to print
/// after the terminal is restored).
pub fn read_files(
    files: &[String],
    speed: Option<f64>,
    engine: EngineConfig,
    extra: Vec<Box<dyn Sink + Send>>,
) -> io::Result<Vec<String>> {
    let (sink, rx) = channel(Backpressure::Block);
    let opts = ReplayOptions { speed, engine };
    let engine = spawn_replay(files.to_vec(), opts, sink, extra)?;
    let app = run_tui(
        rx,
        TuiOptions {
            source: files.join(" "),
            ..TuiOptions::default()
        },
    )?;
    // The replay thread sees the UI gone at its next event and stops (flushing `--jsonl`); give it
    // a moment, but do not hang on a source that blocks (a pipe on stdin).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !engine.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if engine.is_finished() {
        let _ = engine.join();
    }
    Ok(app.status.errors)
}
