//! kmsscope command line: parse arguments, build the pipeline, choose the sinks.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use kmsscope::output::Sink;
use kmsscope::output::escape::escape;
use kmsscope::output::jsonl::JsonlSink;
use kmsscope::output::report::ReportSink;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Read(args) => cmd_read(args),
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
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let jsonl_stdout = args.jsonl.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = &args.jsonl {
        if jsonl_stdout {
            sinks.push(Box::new(JsonlSink::new(io::stdout().lock(), false)));
        } else {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            sinks.push(Box::new(JsonlSink::new(f, false)));
        }
    }
    let report_stdout = args.report.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if jsonl_stdout && report_stdout {
        anyhow::bail!("--jsonl - and --report - cannot both write to standard output");
    }
    if let Some(path) = &args.report {
        if report_stdout {
            sinks.push(Box::new(ReportSink::new(io::BufWriter::new(
                io::stdout().lock(),
            ))));
        } else {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            sinks.push(Box::new(ReportSink::new(io::BufWriter::new(f))));
        }
    }
    if !args.quiet && !jsonl_stdout && !report_stdout {
        let width = args.width.unwrap_or_else(terminal_width);
        sinks.push(Box::new(TableSink::new(io::stdout().lock(), width)));
    }
    let mut unreadable = false;
    for file in &args.files {
        let report = run::analyze_path(file, &opts, &mut sinks);
        for note in &report.notes {
            eprintln!("kmsscope: note: {}", escape(note));
        }
        for err in &report.errors {
            eprintln!("kmsscope: {}", escape(err));
            unreadable = true;
        }
    }
    for s in &mut sinks {
        if let Err(e) = s.finish()
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(e).context("writing output");
        }
    }
    let _ = io::stderr().flush();
    Ok(if unreadable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `read --tui`: the files replayed into the terminal UI (`--jsonl PATH` still writes the events).
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
    let mut extra: Vec<Box<dyn Sink + Send>> = Vec::new();
    if let Some(path) = &args.jsonl {
        if path.as_os_str() == "-" {
            eprintln!(
                "kmsscope: --jsonl - writes to standard output, which the UI uses; give a file"
            );
            return Ok(ExitCode::from(2));
        }
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        extra.push(Box::new(JsonlSink::new(f, false)));
    }
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
