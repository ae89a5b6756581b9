//! kmsscope command line: parse arguments, build the pipeline, choose the sinks.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use anyhow::Context;
use clap::{Parser, Subcommand};

use kmsscope::output::Sink;
use kmsscope::output::escape::escape;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::output::report::ReportSink;
use kmsscope::output::table::TableSink;
use kmsscope::run::{self, RunOptions, Spool};

/// Decode Microsoft KMS volume-activation traffic and explain why activation fails.
#[derive(Parser, Debug)]
#[command(name = "kmsscope", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Analyse capture files (pcap, pcapng, gzip, zip, tar; `-` for stdin).
    Read(ReadArgs),
    /// Capture and analyse live traffic on an interface until Ctrl-C (build with `--features live`).
    Live(LiveArgs),
    /// List the interfaces live capture can use (build with `--features live`).
    Interfaces,
}

#[derive(clap::Args, Debug)]
struct ReadArgs {
    /// Capture files; the format is detected from the content. `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Write JSON Lines events to PATH (`-` for standard output, replacing the table).
    #[arg(long, value_name = "PATH")]
    jsonl: Option<PathBuf>,
    /// Write a Markdown report (verdict, findings, hosts, clients, DNS) to PATH, for a ticket
    /// (`-` for standard output, replacing the table).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Do not print the table and summary on standard output.
    #[arg(short, long)]
    quiet: bool,
    /// Table width in columns (default: the terminal's width, or 160 when not a terminal).
    #[arg(long, value_name = "COLS")]
    width: Option<usize>,
    /// Analyse up to N files at once, one per thread (default: the number of cores). The output
    /// is the same whatever N: each file's in turn, in the order given.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Open the terminal UI (calls, decoded fields, findings, hosts, DNS) instead of the table.
    #[arg(long)]
    tui: bool,
    /// With --tui: replay in packet time, N times faster (default: as fast as possible).
    #[arg(long, value_name = "N", requires = "tui")]
    speed: Option<f64>,
    /// Policy inputs of the checks (--config, --allow-host, --kms-domain, limits).
    #[command(flatten)]
    policy: kmsscope::analysis::policy::PolicyArgs,
}

#[derive(clap::Args, Debug)]
struct LiveArgs {
    /// Interface to capture on (`kmsscope interfaces` lists them).
    #[arg(short, long, value_name = "IFACE")]
    interface: String,
    /// Capture filter (BPF, tcpdump syntax). KMS is still recognised by content on any port the
    /// filter lets through, so widening it is safe.
    #[arg(short, long, value_name = "BPF", default_value = kmsscope::capture::DEFAULT_LIVE_FILTER)]
    filter: String,
    /// Write JSON Lines events to PATH, flushed per line (`-` for standard output, replacing the
    /// table).
    #[arg(long, value_name = "PATH")]
    jsonl: Option<PathBuf>,
    /// Write a Markdown report (verdict, findings, hosts, clients, DNS) to PATH when the capture
    /// stops (`-` for standard output).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Print the readable table line by line instead of opening the terminal UI (the UI opens by
    /// default when standard output is a terminal).
    #[arg(long)]
    no_tui: bool,
    /// Do not print the table and summary on standard output.
    #[arg(short, long)]
    quiet: bool,
    /// Write a `summary` event (with the drop counters) every SECS seconds.
    #[arg(long, value_name = "SECS")]
    summary_every: Option<u64>,
    /// Save every captured packet to PATH as pcapng (to attach to a ticket).
    #[arg(long, value_name = "PATH")]
    write_pcap: Option<PathBuf>,
    /// After opening the interface, drop root privileges and run as this user (like tcpdump -Z);
    /// output files are created as that user.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Kernel capture buffer in MiB.
    #[arg(short = 'B', long, value_name = "MIB", default_value_t = kmsscope::capture::DEFAULT_LIVE_BUFFER_MIB)]
    buffer_size: u32,
    /// libpcap immediate mode: hand over every packet at once instead of within 10 ms. On Linux the
    /// buffer then holds far fewer packets (one 64 KiB frame each on most interfaces): raise -B or
    /// expect kernel drops at high packet rates.
    #[arg(long)]
    immediate: bool,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// Table width in columns (default: the terminal's width, or 160 when not a terminal).
    #[arg(long, value_name = "COLS")]
    width: Option<usize>,
    /// Policy inputs of the checks (--config, --allow-host, --kms-domain, limits).
    #[command(flatten)]
    policy: kmsscope::analysis::policy::PolicyArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.cmd {
        Cmd::Read(args) => cmd_read(args),
        Cmd::Live(args) => live::cmd_live(args),
        Cmd::Interfaces => live::cmd_interfaces(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmsscope: {}", escape(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// Prints a command-line error. clap quotes the offending argument as given, and on a terminal
/// would print it raw: a file named `--\x1b]0;…\x07.pcap` (attachment names come from anyone)
/// must not drive the terminal, so the message is printed as plain text, escaped line by line.
/// Help and version output (no user input in it) keep clap's own rendering.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut err = io::stderr().lock();
    for line in text.lines() {
        let _ = writeln!(err, "{}", escape(line));
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

fn terminal_width() -> usize {
    if io::stdout().is_terminal() {
        if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
            return w;
        }
        return 120;
    }
    160
}

/// Where the sinks write.
struct Outputs<'a> {
    jsonl: Option<&'a std::path::Path>,
    report: Option<&'a std::path::Path>,
    quiet: bool,
    width: Option<usize>,
    /// Live capture: JSON Lines are flushed per line.
    live: bool,
}

/// The outputs of `read` and `live`, each optional; every event goes to them in this order, up to
/// the first that fails.
struct Sinks<J: Write, R: Write, T: Write> {
    jsonl: Option<JsonlSink<J>>,
    report: Option<ReportSink<R>>,
    table: Option<TableSink<T>>,
}

/// The sinks writing to standard output and files.
type OutputSinks = Sinks<Box<dyn Write>, io::BufWriter<Box<dyn Write>>, TableOut>;

/// Where the table goes: standard output, which Rust line-buffers. That is right for a terminal and
/// for a live capture (a row per call as it completes, also through `| grep`), but reading a file
/// into a pipe or file would pay one `write` per row (100k calls, 100k system calls), so there the
/// rows are block-buffered like any filter's output, and flushed at the end.
enum TableOut {
    Line(io::StdoutLock<'static>),
    Block(io::BufWriter<io::StdoutLock<'static>>),
}

impl TableOut {
    fn stdout(live: bool) -> Self {
        let out = io::stdout().lock();
        if live || out.is_terminal() {
            TableOut::Line(out)
        } else {
            TableOut::Block(io::BufWriter::with_capacity(64 * 1024, out))
        }
    }
}

impl Write for TableOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TableOut::Line(w) => w.write(buf),
            TableOut::Block(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            TableOut::Line(w) => w.write_all(buf),
            TableOut::Block(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TableOut::Line(w) => w.flush(),
            TableOut::Block(w) => w.flush(),
        }
    }
}

/// The sinks of a file analysed ahead of its turn (`read -j`), appended to the real ones later.
type PartSinks = Sinks<Spool, Spool, Spool>;

/// Memory for the output of files analysed ahead of their turn, all together; beyond it their
/// output goes to temporary files.
const SPOOL_BUDGET: usize = 8 << 20;

impl<J: Write, R: Write, T: Write> Sink for Sinks<J, R, T> {
    fn event(&mut self, ev: &kmsscope::event::Event) -> io::Result<()> {
        self.events(std::slice::from_ref(ev))
    }

    /// Each sink takes the whole batch in turn (its code stays in the instruction cache).
    fn events(&mut self, evs: &[kmsscope::event::Event]) -> io::Result<()> {
        if let Some(s) = &mut self.jsonl {
            s.events(evs)?;
        }
        if let Some(s) = &mut self.report {
            s.events(evs)?;
        }
        if let Some(s) = &mut self.table {
            s.events(evs)?;
        }
        Ok(())
    }

    /// Flushes every sink; a reader that went away (broken pipe) is not an error.
    fn finish(&mut self) -> io::Result<()> {
        let not_closed = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        };
        if let Some(s) = &mut self.jsonl {
            not_closed(s.finish())?;
        }
        if let Some(s) = &mut self.report {
            not_closed(s.finish())?;
        }
        if let Some(s) = &mut self.table {
            not_closed(s.finish())?;
        }
        Ok(())
    }
}

impl<J: Write, R: Write, T: Write> Sinks<J, R, T> {
    /// Appends the output of a file analysed ahead of its turn.
    fn append(&mut self, part: PartSinks) -> io::Result<()> {
        if let (Some(to), Some(from)) = (&mut self.jsonl, part.jsonl) {
            to.append(&mut from.into_inner()?.into_reader()?)?;
        }
        if let (Some(to), Some(from)) = (&mut self.report, part.report) {
            let (spool, sections) = from.into_sections();
            to.append(&mut spool.into_reader()?, sections)?;
        }
        if let (Some(to), Some(from)) = (&mut self.table, part.table) {
            to.append(&mut from.into_inner().into_reader()?)?;
        }
        Ok(())
    }
}

/// The JSON Lines, Markdown report and table sinks. The table goes to standard output (see
/// [`TableOut`] for its buffering).
fn make_sinks(o: &Outputs<'_>) -> anyhow::Result<OutputSinks> {
    let is_stdout = |p: Option<&std::path::Path>| p.is_some_and(|p| p.as_os_str() == "-");
    let (jsonl_stdout, report_stdout) = (is_stdout(o.jsonl), is_stdout(o.report));
    if jsonl_stdout && report_stdout {
        anyhow::bail!("--jsonl - and --report - cannot both write to standard output");
    }
    let open = |path: &std::path::Path| -> anyhow::Result<Box<dyn Write>> {
        if path.as_os_str() == "-" {
            return Ok(Box::new(io::stdout().lock()));
        }
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Box::new(f))
    };
    let jsonl = match o.jsonl {
        Some(path) => Some(JsonlSink::new(open(path)?, o.live)),
        None => None,
    };
    let report = match o.report {
        Some(path) => Some(ReportSink::new(io::BufWriter::new(open(path)?))),
        None => None,
    };
    let table = (!o.quiet && !jsonl_stdout && !report_stdout).then(|| {
        let width = o.width.unwrap_or_else(terminal_width);
        TableSink::new(TableOut::stdout(o.live), width)
    });
    Ok(Sinks {
        jsonl,
        report,
        table,
    })
}

/// The sinks that go beside the terminal UI: only files (the UI owns standard output).
fn file_sinks(
    jsonl: Option<&std::path::Path>,
    report: Option<&std::path::Path>,
    live: bool,
) -> anyhow::Result<Vec<Box<dyn Sink + Send>>> {
    let mut extra: Vec<Box<dyn Sink + Send>> = Vec::new();
    for p in [jsonl, report].into_iter().flatten() {
        if p.as_os_str() == "-" {
            anyhow::bail!(
                "with the terminal UI, --jsonl and --report need a file (the UI uses standard output)"
            );
        }
    }
    if let Some(path) = jsonl {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        extra.push(Box::new(JsonlSink::new(f, live)));
    }
    if let Some(path) = report {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        extra.push(Box::new(ReportSink::new(io::BufWriter::new(f))));
    }
    Ok(extra)
}

fn cmd_read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let mut opts = RunOptions::default();
    // A bad policy file or flag is a usage error (exit 2), reported before any input is read.
    opts.engine.policy = match args.policy.resolve() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kmsscope: {}", escape(&e.to_string()));
            return Ok(ExitCode::from(2));
        }
    };
    if args.tui {
        return cmd_read_tui(args, opts);
    }
    let width = args.width.unwrap_or_else(terminal_width);
    let mut sinks = make_sinks(&Outputs {
        jsonl: args.jsonl.as_deref(),
        report: args.report.as_deref(),
        quiet: args.quiet,
        width: Some(width),
        live: false,
    })?;
    let mut jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    if args.files.iter().filter(|f| *f == "-").count() > 1 {
        // Standard input can be read only once: the first `-` gets it all, as in sequence.
        jobs = 1;
    }
    // A file analysed ahead of its turn gets sinks of the same kinds, writing to spools.
    let budget = Arc::new(AtomicUsize::new(SPOOL_BUDGET));
    let (jsonl, report, table) = (
        sinks.jsonl.is_some(),
        sinks.report.is_some(),
        sinks.table.is_some(),
    );
    let new_part = || PartSinks {
        jsonl: jsonl.then(|| JsonlSink::new(Spool::new(budget.clone()), false)),
        report: report.then(|| ReportSink::new(Spool::new(budget.clone()))),
        table: table.then(|| TableSink::new(Spool::new(budget.clone()), width)),
    };
    let mut unreadable = false;
    run::analyze_paths(
        &args.files,
        &opts,
        jobs,
        &mut sinks,
        new_part,
        |sinks, part, mut report| {
            if let Some(part) = part
                && let Err(e) = sinks.append(part)
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                report.errors.push(format!("writing output: {e}"));
            }
            for note in &report.notes {
                eprintln!("kmsscope: note: {}", escape(note));
            }
            for err in &report.errors {
                eprintln!("kmsscope: {}", escape(err));
                unreadable = true;
            }
        },
    );
    sinks.finish().context("writing output")?;
    let _ = io::stderr().flush();
    Ok(if unreadable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `read --tui`: the files replayed into the terminal UI (`--jsonl`/`--report PATH` still write).
fn cmd_read_tui(args: ReadArgs, opts: RunOptions) -> anyhow::Result<ExitCode> {
    // Keys are read from the terminal (crossterm opens /dev/tty when standard input is a capture).
    if !io::stdout().is_terminal() {
        eprintln!(
            "kmsscope: --tui needs a terminal on standard output; use the table or --jsonl instead"
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(s) = args.speed
        && !(s > 0.0 && s.is_finite())
    {
        eprintln!("kmsscope: --speed takes a positive number");
        return Ok(ExitCode::from(2));
    }
    let extra = match file_sinks(args.jsonl.as_deref(), args.report.as_deref(), false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kmsscope: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let errors = kmsscope::tui::read_files(&args.files, args.speed, opts.engine, extra)
        .context("terminal UI")?;
    for err in &errors {
        eprintln!("kmsscope: {}", escape(err));
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `kmsscope live` and `kmsscope interfaces` with libpcap.
#[cfg(feature = "live")]
mod live {
    use std::io::{self, IsTerminal, Write};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use anyhow::Context;

    use kmsscope::capture::PacketSource;
    use kmsscope::capture::live::{self, LiveCapture, LiveOptions};
    use kmsscope::capture::privileges;
    use kmsscope::output::Sink;
    use kmsscope::output::escape::escape;
    use kmsscope::run::{self, RunOptions};

    use super::{LiveArgs, Outputs, file_sinks, make_sinks};

    /// Flushes every sink; a reader that went away (broken pipe) is not an error.
    fn finish_sinks(sinks: &mut [Box<dyn Sink>]) -> anyhow::Result<()> {
        for s in sinks {
            if let Err(e) = s.finish()
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(e).context("writing output");
            }
        }
        Ok(())
    }

    pub fn cmd_interfaces() -> anyhow::Result<ExitCode> {
        let list = live::interfaces()?;
        let mut out = io::stdout().lock();
        if list.is_empty() {
            writeln!(
                out,
                "no capture interfaces found (not root? see `kmsscope live --help`)"
            )?;
        }
        for i in list {
            let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
            writeln!(
                out,
                "{:<16} {:<24} {}{}",
                escape(&i.name),
                i.flags.join(","),
                if addrs.is_empty() {
                    "-".to_string()
                } else {
                    addrs.join(" ")
                },
                i.description
                    .as_deref()
                    .map(|d| format!("  ({})", escape(d)))
                    .unwrap_or_default()
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn cmd_live(args: LiveArgs) -> anyhow::Result<ExitCode> {
        let opts = LiveOptions {
            interface: args.interface.clone(),
            filter: args.filter.clone(),
            buffer_bytes: args.buffer_size.saturating_mul(1 << 20),
            promiscuous: !args.no_promisc,
            immediate: args.immediate,
        };
        let cap = LiveCapture::open(&opts)?;
        if let Some(user) = &args.user {
            let d = privileges::drop_to_user(user)?;
            eprintln!(
                "kmsscope: running as {} (uid {}, gid {})",
                escape(user),
                d.uid,
                d.gid
            );
        }
        let mut run_opts = RunOptions::default();
        run_opts.engine.policy = match args.policy.resolve() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("kmsscope: {}", escape(&e.to_string()));
                return Ok(ExitCode::from(2));
            }
        };
        // The UI opens by default when standard output is a terminal.
        let tui = !args.no_tui && !args.quiet && io::stdout().is_terminal();
        let pcap_out: Option<Box<dyn Write + Send>> = match &args.write_pcap {
            Some(p) => Some(Box::new(io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ))),
            None => None,
        };
        // First Ctrl-C / SIGTERM: stop, drain, report and exit 0. A second one: exit at once (130).
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
                .context("installing the signal handler")?;
            signal_hook::flag::register(sig, stop.clone())
                .context("installing the signal handler")?;
        }
        // The UI's status bar is fed by periodic summaries: one a second unless asked otherwise.
        let every = args
            .summary_every
            .or(if tui { Some(1) } else { None })
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let link = cap.link_type();
        let stop_ui = stop.clone();
        let src = cap.start(stop, every, pcap_out)?;
        eprintln!(
            "kmsscope: capturing on {} (link type {link}, filter \"{}\"); Ctrl-C to stop",
            escape(&args.interface),
            escape(&args.filter)
        );
        let name = src.name().to_owned();
        if tui {
            return live_tui(src, run_opts, &args, stop_ui);
        }
        let mut sinks = make_sinks(&Outputs {
            jsonl: args.jsonl.as_deref(),
            report: args.report.as_deref(),
            quiet: args.quiet,
            width: args.width,
            live: true,
        })?;
        let result = run::analyze_source_into(Box::new(src), &run_opts, &mut sinks);
        sinks.finish().context("writing output")?;
        if let Err(e) = result {
            eprintln!("kmsscope: {}", escape(&e));
            return Ok(ExitCode::from(1));
        }
        eprintln!("kmsscope: {} stopped", escape(&name));
        Ok(ExitCode::SUCCESS)
    }

    /// Live capture into the terminal UI: the analysis runs on its own thread (sinks: the UI and any
    /// files), the UI on this one. Quitting the UI stops the capture.
    fn live_tui(
        src: impl PacketSource + Send + 'static,
        mut run_opts: RunOptions,
        args: &LiveArgs,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<ExitCode> {
        use kmsscope::tui::{self, Backpressure, TuiOptions};
        let extra = match file_sinks(args.jsonl.as_deref(), args.report.as_deref(), true) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("kmsscope: {e:#}");
                return Ok(ExitCode::from(2));
            }
        };
        run_opts.engine.keep_payloads = true;
        let name = src.name().to_owned();
        let (sink, rx) = tui::channel(Backpressure::Drop);
        let analysis = std::thread::Builder::new()
            .name("kmsscope-analysis".into())
            .spawn(move || {
                let mut sinks: Vec<Box<dyn kmsscope::output::Sink>> = vec![Box::new(sink)];
                for s in extra {
                    sinks.push(s);
                }
                let r = run::analyze_source(Box::new(src), &run_opts, &mut sinks);
                let _ = finish_sinks(&mut sinks);
                r
            })
            .context("starting the analysis thread")?;
        let ui = tui::run_tui(
            rx,
            TuiOptions {
                source: name.clone(),
                ..TuiOptions::default()
            },
        );
        // The user quit (or the UI failed): stop the capture and let the analysis finish.
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let result = analysis
            .join()
            .map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
        ui.context("terminal UI")?;
        if let Err(e) = result {
            eprintln!("kmsscope: {}", escape(&e));
            return Ok(ExitCode::from(1));
        }
        eprintln!("kmsscope: {} stopped", escape(&name));
        Ok(ExitCode::SUCCESS)
    }
}

/// Without the `live` feature the subcommands exist but say how to get them.
#[cfg(not(feature = "live"))]
mod live {
    use std::process::ExitCode;

    use super::LiveArgs;

    const NO_LIVE: &str = "kmsscope: this build has no live capture; rebuild with \
        `cargo build --release --features live` (needs libpcap: `apt-get install libpcap-dev`)";

    pub fn cmd_live(_args: LiveArgs) -> anyhow::Result<ExitCode> {
        eprintln!("{NO_LIVE}");
        Ok(ExitCode::from(2))
    }

    pub fn cmd_interfaces() -> anyhow::Result<ExitCode> {
        eprintln!("{NO_LIVE}");
        Ok(ExitCode::from(2))
    }
}
