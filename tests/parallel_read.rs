//! `read -j N`: several files analysed at once give, byte for byte, the output of reading them one
//! after the other (JSON Lines, report, table, standard error and exit status), whatever N.

#[path = "../benches/common/corpus.rs"]
mod corpus;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use corpus::CorpusConfig;

/// A scratch directory of this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("kmsscope-parallel-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every capture of `captures/interop/`, in name order.
fn interop_captures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/interop");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("captures/interop")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    assert!(v.len() >= 8, "interop captures: {v:?}");
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// Generated inputs beside the interop captures: KMS-only and mixed corpora, a gzipped capture and
/// a zip holding two captures and a text file.
fn generated(s: &Scratch) -> Vec<String> {
    let (kms, _) = corpus::corpus_bytes(&CorpusConfig {
        seed: 7,
        ..CorpusConfig::kms(400)
    });
    let (mixed, _) = corpus::corpus_bytes(&CorpusConfig::mixed(3 << 20));
    let interop = interop_captures();
    let first = std::fs::read(&interop[0]).expect("read");
    let last = std::fs::read(&interop[interop.len() - 1]).expect("read");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, bytes) in [
        ("a/first.pcap", &first[..]),
        ("a/readme.txt", b"see attached"),
        ("b/last.pcap", &last[..]),
    ] {
        zip.start_file(name, opts).expect("zip");
        zip.write_all(bytes).expect("zip");
    }
    let zip = zip.finish().expect("zip").into_inner();
    vec![
        s.file("kms400.pcap", &kms),
        s.file("mixed.pcap", &mixed),
        s.file("kms400.pcap.gz", &gzip(&kms)),
        s.file("ticket.zip", &zip),
    ]
}

/// What one run produced: standard output, standard error, exit status and the output files.
#[derive(Debug, PartialEq)]
struct Run {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: Option<i32>,
    jsonl: Vec<u8>,
    report: Vec<u8>,
}

/// `kmsscope read FILES -j JOBS ARGS`, with `--jsonl`/`--report` to files of `s` when `to_files`.
fn read(s: &Scratch, files: &[String], jobs: &str, args: &[&str], to_files: bool) -> Run {
    let (jsonl, report) = (s.0.join("out.jsonl"), s.0.join("out.md"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmsscope"));
    cmd.arg("read")
        .args(files)
        .args(["-j", jobs, "--width", "160"])
        .args(args);
    if to_files {
        cmd.arg("--jsonl").arg(&jsonl).arg("--report").arg(&report);
    }
    let out = cmd.output().expect("run kmsscope");
    let take = |p: &Path| {
        let b = std::fs::read(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        b
    };
    Run {
        stdout: out.stdout,
        stderr: out.stderr,
        code: out.status.code(),
        jsonl: take(&jsonl),
        report: take(&report),
    }
}

/// The runs with 2 and 4 jobs against the one with 1, for each way of writing the output.
fn assert_same_output(s: &Scratch, files: &[String]) -> Run {
    let ways: [(&[&str], bool); 4] = [
        (&[], true),
        (&["--jsonl", "-"], false),
        (&["--report", "-"], false),
        (&[], false),
    ];
    let mut first = None;
    for (args, to_files) in ways {
        let seq = read(s, files, "1", args, to_files);
        assert!(!seq.stdout.is_empty(), "{args:?}: no output");
        for jobs in ["2", "4"] {
            let par = read(s, files, jobs, args, to_files);
            assert!(
                par == seq,
                "-j {jobs} {args:?} (files: {to_files}) differs from -j 1:\n{}",
                first_difference(&seq, &par)
            );
        }
        first.get_or_insert(seq);
    }
    first.expect("runs")
}

/// Where two runs part, for the failure message.
fn first_difference(a: &Run, b: &Run) -> String {
    let fields = [
        ("stdout", &a.stdout, &b.stdout),
        ("stderr", &a.stderr, &b.stderr),
        ("jsonl", &a.jsonl, &b.jsonl),
        ("report", &a.report, &b.report),
    ];
    for (name, x, y) in fields {
        if x != y {
            let at = x.iter().zip(y.iter()).take_while(|(p, q)| p == q).count();
            let show = |v: &[u8]| {
                String::from_utf8_lossy(&v[at.saturating_sub(80)..(at + 80).min(v.len())])
                    .into_owned()
            };
            return format!(
                "{name} differs at byte {at} (lengths {} and {}):\n{}\n----\n{}",
                x.len(),
                y.len(),
                show(x),
                show(y)
            );
        }
    }
    format!("exit status {:?} vs {:?}", a.code, b.code)
}

#[test]
fn interop_and_generated_captures_give_the_same_bytes_with_any_jobs() {
    let s = Scratch::new("same");
    let mut files = interop_captures();
    files.extend(generated(&s));
    // The same file twice, and a big one first, so that later files finish before it.
    files.insert(0, files[files.len() - 3].clone());
    files.push(files[1].clone());
    let seq = assert_same_output(&s, &files);
    assert_eq!(
        seq.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&seq.stderr)
    );
    // Zip members without a capture are noted, not errors.
    assert!(
        String::from_utf8_lossy(&seq.stderr).contains("readme.txt"),
        "{}",
        String::from_utf8_lossy(&seq.stderr)
    );
    let sources = String::from_utf8_lossy(&seq.jsonl)
        .matches("\"event\":\"summary\"")
        .count();
    assert_eq!(
        sources,
        files.len() + 1,
        "one summary per source (the zip has two)"
    );
}

#[test]
fn unreadable_files_among_others_give_the_same_errors_and_exit_status() {
    let s = Scratch::new("errors");
    let captures = interop_captures();
    let missing = s.0.join("missing.pcap").to_string_lossy().into_owned();
    let text = s.file("notes.txt", b"not a capture at all\n");
    let truncated = {
        let b = std::fs::read(&captures[2]).expect("read");
        s.file("truncated.pcap", &b[..b.len() * 2 / 3])
    };
    let empty_zip = {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .expect("zip");
        zip.write_all(b"no capture here").expect("zip");
        s.file("empty.zip", &zip.finish().expect("zip").into_inner())
    };
    let files = vec![
        captures[0].clone(),
        missing,
        captures[1].clone(),
        text,
        truncated,
        empty_zip,
        captures[3].clone(),
    ];
    let seq = assert_same_output(&s, &files);
    assert_eq!(seq.code, Some(1));
    let err = String::from_utf8_lossy(&seq.stderr);
    for what in ["missing.pcap", "notes.txt", "truncated.pcap", "empty.zip"] {
        assert!(err.contains(what), "{what} not in {err}");
    }
}

#[test]
fn standard_input_among_files_is_read_once_in_its_place() {
    let captures = interop_captures();
    let stdin = std::fs::read(&captures[4]).expect("read");
    // Once, and twice (the second `-` then finds it empty, as in sequence).
    for files in [
        vec![captures[0].clone(), "-".into(), captures[1].clone()],
        vec![
            captures[0].clone(),
            "-".into(),
            captures[1].clone(),
            "-".into(),
        ],
    ] {
        let run = |jobs: &str| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
                .arg("read")
                .args(&files)
                .args(["-j", jobs, "--jsonl", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            // Fed from another thread: the output pipe may fill up before the input is all read.
            let mut input = child.stdin.take().expect("stdin");
            let bytes = stdin.clone();
            let feeder = std::thread::spawn(move || {
                let _ = input.write_all(&bytes);
            });
            let out = child.wait_with_output().expect("wait");
            feeder.join().expect("feeder");
            out
        };
        let seq = run("1");
        assert!(!seq.stdout.is_empty());
        for jobs in ["2", "4"] {
            let par = run(jobs);
            assert_eq!(par.status.code(), seq.status.code());
            assert!(
                par.stdout == seq.stdout,
                "-j {jobs}: standard output differs"
            );
            assert_eq!(
                String::from_utf8_lossy(&par.stderr),
                String::from_utf8_lossy(&seq.stderr)
            );
        }
    }
}

#[test]
fn zero_jobs_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_kmsscope"))
        .args(["read", "-j", "0", "x.pcap"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
