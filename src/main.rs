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
    /// Analyse capture files (pcap, pcapng, gzip, zip, tar; `-` for stdin).
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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
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

fn cmd_read(args: ReadArgs) -> anyhow::Result<ExitCode> {
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
    let opts = RunOptions::default();
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
        if let Err(e) = s.finish() {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(e).context("writing output");
            }
        }
    }
    let _ = io::stderr().flush();
    Ok(if unreadable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
