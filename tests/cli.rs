//! The command line as a user meets it: exit codes, error lines naming the file and offset,
//! standard input, compressed and zipped attachments.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kmsscope"))
}

fn interop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/interop")
        .join(name)
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kmsscope-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

fn kms_count(stdout: &[u8]) -> usize {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.contains(r#""event":"kms""#))
        .count()
}

#[test]
fn usage_error_exits_2() {
    let out = bin().arg("read").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["read", "--no-such-flag", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn not_a_capture_names_the_file_and_exits_1() {
    let p = temp(
        "notes.txt",
        b"Dear helpdesk, activation fails with 0xC004F074\n",
    );
    let out = bin().arg("read").arg(&p).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*p.to_string_lossy()), "{err}");
    assert!(err.contains("not a capture file"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn truncated_capture_is_analysed_up_to_the_cut_and_exits_1() {
    let full = std::fs::read(interop("s14_ticket_combined.pcapng")).expect("read");
    let p = temp("cut.pcapng", &full[..9000]);
    let out = bin()
        .arg("read")
        .arg(&p)
        .args(["--jsonl", "-"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("offset") && err.contains("frame"),
        "error names offset and frame: {err}"
    );
    // The calls before the cut are still decoded (s14's first two calls end before byte 9000).
    assert!(
        kms_count(&out.stdout) >= 2,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""kind":"read_error""#),
        "the JSON log says why it stopped"
    );
    assert!(stdout.contains(r#""event":"summary""#));
}

#[test]
fn stdin_gzip_and_zip_inputs() {
    let pcap = std::fs::read(interop("s05_v6_office2016_multi.pcap")).expect("read");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pcap).expect("gzip");
    let gz = gz.finish().expect("gzip");

    // gzip on standard input.
    let mut child = bin()
        .args(["read", "-", "--jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&gz)
        .expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(kms_count(&out.stdout), 3);

    // A zip holding a pcapng, a gzipped pcap and a text file.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("ticket/s07.pcapng", opts).expect("zip");
    zip.write_all(&std::fs::read(interop("s07_threshold_below.pcapng")).expect("read"))
        .expect("zip");
    zip.start_file("ticket/s05.pcap.gz", opts).expect("zip");
    zip.write_all(&gz).expect("zip");
    zip.start_file("ticket/readme.txt", opts).expect("zip");
    zip.write_all(b"see attached").expect("zip");
    let zbytes = zip.finish().expect("zip").into_inner();
    let p = temp("attachment.zip", &zbytes);
    let out = bin()
        .arg("read")
        .arg(&p)
        .args(["--jsonl", "-"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(kms_count(&out.stdout), 4 + 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = p.to_string_lossy();
    assert!(
        stdout.contains(&format!(r#""source":"{name}:ticket/s07.pcapng""#)),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(r#""source":"{name}:ticket/s05.pcap.gz""#)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readme.txt"),
        "the skipped member is mentioned: {err}"
    );
}

#[test]
fn table_escapes_wire_strings_and_lists_hosts() {
    let out = bin()
        .arg("read")
        .arg(interop("s07_threshold_below.pcapng"))
        .args(["--width", "160"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("SALES-PC01.corp.example"), "{s}");
    assert!(s.contains("3/25"), "{s}");
    assert!(s.contains("COUNT LOW"), "{s}");
    assert!(s.contains("count 3 / 25 required BELOW threshold"), "{s}");
    assert!(!s.bytes().any(|b| b == 0x1b), "no raw escape bytes");
}
