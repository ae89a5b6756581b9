//! kmsscope command line: parse arguments, build the pipeline, choose the sinks.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use kmsscope::output::Sink;
use kmsscope::output::escape::escape;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::output::table::TableSink;
use kmsscope::run::{self, RunOptions};

/// Decode Microsoft KMS volume-activation traffic and explain why activation fails.
#[derive(Parser, Debug)]
#[command(name = "kmsscope", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Analyse capture files (pcap, pcapng, gzip, zip; `-` for stdin).
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
    /// Do not print the table and summary on standard output.
    #[arg(short, long)]
    quiet: bool,
    /// Table width in columns (default: the terminal's width, or 160 when not a terminal).
    #[arg(long, value_name = "COLS")]
    width: Option<usize>,
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
    /// Print the readable table line by line instead of the terminal UI (the default until the UI
    /// exists).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn terminal_width() -> usize {
    if io::stdout().is_terminal() {
        if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
            return w;
        }
        return 120;
    }
    160
}

/// The JSON Lines and table sinks. `live` flushes JSON Lines per line; the table goes to standard
/// output, which Rust line-buffers, so each row is written out as the call completes.
fn make_sinks(
    jsonl: Option<&std::path::Path>,
    quiet: bool,
    width: Option<usize>,
    live: bool,
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let jsonl_stdout = jsonl.is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = jsonl {
        if jsonl_stdout {
            sinks.push(Box::new(JsonlSink::new(io::stdout().lock(), live)));
        } else {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            sinks.push(Box::new(JsonlSink::new(f, live)));
        }
    }
    if !quiet && !jsonl_stdout {
        let width = width.unwrap_or_else(terminal_width);
        sinks.push(Box::new(TableSink::new(io::stdout().lock(), width)));
    }
    Ok(sinks)
}

/// Flushes every sink; a reader that went away (broken pipe) is not an error.
fn finish_sinks(sinks: &mut [Box<dyn Sink>]) -> anyhow::Result<()> {
    for s in sinks {
        if let Err(e) = s.finish() {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e).context("writing output");
            }
        }
    }
    Ok(())
}

fn cmd_read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let mut sinks = make_sinks(args.jsonl.as_deref(), args.quiet, args.width, false)?;
    let opts = RunOptions::default();
    let mut unreadable = false;
    for file in &args.files {
        let report = run::analyze_path(file, &opts, &mut sinks);
        for err in &report.errors {
            eprintln!("kmsscope: {}", escape(err));
            unreadable = true;
        }
    }
    finish_sinks(&mut sinks)?;
    let _ = io::stderr().flush();
    Ok(if unreadable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `kmsscope live` and `kmsscope interfaces` with libpcap.
#[cfg(feature = "live")]
mod live {
    use std::io::{self, Write};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use anyhow::Context;

    use kmsscope::capture::PacketSource;
    use kmsscope::capture::live::{self, LiveCapture, LiveOptions};
    use kmsscope::capture::privileges;
    use kmsscope::output::escape::escape;
    use kmsscope::run::{self, RunOptions};

    use super::{LiveArgs, finish_sinks, make_sinks};

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
        let mut sinks = make_sinks(args.jsonl.as_deref(), args.quiet, args.width, true)?;
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
        let every = args
            .summary_every
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let link = cap.link_type();
        let src = cap.start(stop, every, pcap_out)?;
        eprintln!(
            "kmsscope: capturing on {} (link type {link}, filter \"{}\"); Ctrl-C to stop",
            escape(&args.interface),
            escape(&args.filter)
        );
        let name = src.name().to_owned();
        let result = run::analyze_source(Box::new(src), &RunOptions::default(), &mut sinks);
        finish_sinks(&mut sinks)?;
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
