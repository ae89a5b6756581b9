#!/usr/bin/env bash
# benches/compare.sh - time kmsscope against the limit and peer tools on the same capture, in one run.
#
# For each corpus, runs (page cache warm, each command --repeat times, best time kept):
#   cat FILE                                        reading the file, nothing else
#   pcap_walk FILE                                  bare pcap-parser record walk (benches/pcap_walk.rs):
#                                                   the limit for any reader of the file
#   tcpdump -r FILE -w /dev/null 'tcp port 1688'    BPF only
#   tshark -n -r FILE -Y 'dcerpc.pkt_type == 2' -T fields -e dcerpc.cn_call_id   (when installed)
#   suricata -r FILE --runmode single -k none      (when installed; DCE/RPC only, no KMS decode)
#   kmsscope read FILE --jsonl /dev/null            full analysis (release build), stdout to /dev/null
# and prints wall and CPU (user+sys) seconds, GB/s and KMS calls/s (by CPU time: the machine may be
# shared; single-threaded tools are compared on the CPU they used), peak RSS (/usr/bin/time -v) and
# the ratios against tcpdump and the bare walk. It also checks that kmsscope reports exactly the
# corpus manifest's number of KMS calls (no call lost).
#
# Corpora come from the project's generator (benches/common/corpus.rs via `cargo bench --bench
# gen_corpus`), from --file, and with --shared also from ../shared/bench/make-corpus.sh (the
# reference corpora peers were measured with) when that script is found.
#
# Examples:
#   benches/compare.sh --mode mixed --size 1G
#   benches/compare.sh --mode kms --calls 100000 --shared
#   benches/compare.sh --file capture.pcap
#
# Needs bash, cargo, GNU time (/usr/bin/time, package "time"), awk; tcpdump, tshark and suricata
# are optional (a missing one is reported and skipped).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
mode=mixed
size=1G
calls=100000
repeat=3
file=""
shared=0
workdir=${KMSSCOPE_BENCH_DIR:-${TMPDIR:-/tmp}/kmsscope-bench}

usage() {
  cat <<EOF
usage: $0 [options]
  -m, --mode mixed|kms   corpus to generate (default mixed)
  -s, --size SIZE        mixed: file size, K/M/G suffix (default 1G)
  -n, --calls N          kms: KMS calls (default 100000)
  -f, --file FILE        measure FILE instead of generating a corpus (its FILE.manifest.json, if
                         any, gives the number of calls)
  -S, --shared           also measure the same corpus made by ../shared/bench/make-corpus.sh
  -r, --repeat N         runs per command, best kept (default 3; tshark runs once)
  -w, --workdir DIR      where corpora are written and kept (default $workdir)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    -m|--mode) mode=$2; shift 2;;
    -s|--size) size=$2; shift 2;;
    -n|--calls) calls=$2; shift 2;;
    -f|--file) file=$2; shift 2;;
    -S|--shared) shared=1; shift;;
    -r|--repeat) repeat=$2; shift 2;;
    -w|--workdir) workdir=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2;;
  esac
done
case "$mode" in mixed|kms) ;; *) echo "bad --mode $mode" >&2; exit 2;; esac
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
mkdir -p "$workdir"

cd "$root"
echo "== building (release)" >&2
cargo build --release -q --bin kmsscope
bench_exe() {
  cargo bench --no-run -q --bench "$1" --message-format=json 2>/dev/null |
    grep '"kind":\["bench"\]' | grep "\"name\":\"$1\"" |
    grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4
}
GEN=$(bench_exe gen_corpus)
WALK=$(bench_exe pcap_walk)
KMSSCOPE=$root/target/release/kmsscope
[ -x "$GEN" ] && [ -x "$WALK" ] || { echo "could not build gen_corpus / pcap_walk" >&2; exit 1; }

# ------------------------------------------------------------------------------ corpora
corpora=()
if [ -n "$file" ]; then
  corpora+=("$file")
else
  if [ "$mode" = mixed ]; then
    own="$workdir/own-mixed-$size.pcap"; args=(--mode mixed --size "$size")
  else
    own="$workdir/own-kms-$calls.pcap"; args=(--mode kms --calls "$calls")
  fi
  if [ ! -s "$own.manifest.json" ] || [ "$GEN" -nt "$own" ]; then
    echo "== generating $own" >&2
    "$GEN" "${args[@]}" -o "$own"
  fi
  corpora+=("$own")
fi
if [ "$shared" = 1 ]; then
  mc=""
  for d in "${KMSSCOPE_SHARED_DIR:-}" "$root/../shared" "$root/../../shared" /work/shared; do
    if [ -n "$d" ] && [ -x "$d/bench/make-corpus.sh" ]; then mc="$d/bench/make-corpus.sh"; break; fi
  done
  if [ -z "$mc" ]; then
    echo "== --shared: make-corpus.sh not found, skipped" >&2
  else
    if [ "$mode" = mixed ]; then
      ref="$workdir/shared-mixed-$size.pcap"; args=(--mode mixed --size "$size")
    else
      ref="$workdir/shared-kms-$calls.pcap"; args=(--mode kms --exchanges "$calls")
    fi
    if [ ! -s "$ref.manifest.json" ]; then
      echo "== generating $ref with $mc" >&2
      "$mc" "${args[@]}" -o "$ref" >&2
    fi
    corpora+=("$ref")
  fi
fi

# ------------------------------------------------------------------------------ measuring
# manifest_calls FILE: KMS calls in FILE.manifest.json (kms_calls, or make-corpus.sh's kms_exchanges).
manifest_calls() {
  local m="$1.manifest.json"
  [ -s "$m" ] || { echo 0; return; }
  local n
  n=$(grep -o '"kms_calls": *[0-9]*' "$m" | grep -o '[0-9]*$' || true)
  [ -n "$n" ] || n=$(grep -o '"kms_exchanges": *[0-9]*' "$m" | grep -o '[0-9]*$' || true)
  echo "${n:-0}"
}

tf=$(mktemp); ef=$(mktemp); bt=$(mktemp); sdir=$(mktemp -d)
trap 'rm -rf "$tf" "$ef" "$bt" "$sdir"' EXIT

# measure NAME RUNS CMD...: prints "NAME wall cpu rss_kib" (best wall, best cpu, max RSS). Times
# come from bash's `time` (millisecond resolution, user+sys of the children), the peak RSS from
# GNU time (whose own times have only centisecond resolution).
measure() {
  local name=$1 runs=$2; shift 2
  local bw="" bc="" rss=0 i w u s c r
  for ((i = 0; i < runs; i++)); do
    if ! { TIMEFORMAT='%3R %3U %3S'; time /usr/bin/time -v -o "$tf" "$@" >/dev/null 2>"$ef"; } 2>"$bt"; then
      echo "  $name failed: $(tail -2 "$ef" | tr '\n' ' ')" >&2
      return 1
    fi
    read -r w u s <"$bt"
    c=$(awk "BEGIN{print $u + $s}")
    r=$(awk -F': ' '/Maximum resident/ { print $2 }' "$tf")
    if [ -z "$bw" ] || awk "BEGIN{exit !($w < $bw)}"; then bw=$w; fi
    if [ -z "$bc" ] || awk "BEGIN{exit !($c < $bc)}"; then bc=$c; fi
    [ "${r:-0}" -gt "$rss" ] && rss=$r
  done
  echo "$name $bw $bc $rss"
}

for f in "${corpora[@]}"; do
  bytes=$(stat -c %s "$f")
  ncalls=$(manifest_calls "$f")
  echo
  echo "== $f: $bytes bytes, $ncalls KMS calls (manifest); best of $repeat runs"
  cat "$f" >/dev/null   # warm the page cache

  # No call lost: kmsscope's kms events against the manifest (not timed).
  got=$("$KMSSCOPE" read "$f" --jsonl - | grep -c '"event":"kms"' || true)
  if [ "$ncalls" -gt 0 ]; then
    if [ "$got" = "$ncalls" ]; then echo "kmsscope kms events: $got = manifest (no call lost)"
    else echo "kmsscope kms events: $got != manifest $ncalls (CALLS LOST OR EXTRA)"; fi
  else
    echo "kmsscope kms events: $got (no manifest)"
  fi

  rows=()
  rows+=("$(measure cat "$repeat" cat "$f")")
  rows+=("$(measure pcap_walk "$repeat" "$WALK" "$f")")
  if command -v tcpdump >/dev/null; then
    rows+=("$(measure tcpdump_bpf "$repeat" tcpdump -r "$f" -w /dev/null 'tcp port 1688')")
  else
    echo "  tcpdump not installed: skipped" >&2
  fi
  if command -v tshark >/dev/null; then
    rows+=("$(measure tshark 1 tshark -n -r "$f" -Y 'dcerpc.pkt_type == 2' -T fields -e dcerpc.cn_call_id)")
  else
    echo "  tshark not installed: skipped" >&2
  fi
  if command -v suricata >/dev/null; then
    rm -rf "${sdir:?}"/*
    rows+=("$(measure suricata 1 suricata -r "$f" --runmode single -k none -l "$sdir")")
  else
    echo "  suricata not installed: skipped" >&2
  fi
  rows+=("$(measure kmsscope "$repeat" "$KMSSCOPE" read "$f" --jsonl /dev/null)")

  printf '%s\n' "${rows[@]}" | awk -v bytes="$bytes" -v calls="$ncalls" '
    NF == 4 { name[NR] = $1; wall[NR] = $2; cpu[NR] = $3; rss[NR] = $4; n = NR
              if ($1 == "tcpdump_bpf") td = $3; if ($1 == "pcap_walk") pw = $3 }
    END {
      print "(rates per CPU second (user+sys) unless marked wall; x tcpdump, x walk: speed relative to that row, > 1 is faster)"
      printf "%-12s %8s %8s %9s %9s %12s %9s %9s %9s\n", "tool", "wall s", "cpu s", "GB/s wall",
             "GB/s cpu", "calls/s cpu", "RSS MiB", "x tcpdump", "x walk"
      for (i = 1; i <= n; i++) {
        c = cpu[i] > 0 ? cpu[i] : 0.001; w = wall[i] > 0 ? wall[i] : 0.001
        printf "%-12s %8.3f %8.3f %9.2f %9.2f %12.0f %9.1f %9s %9s\n", name[i], wall[i], cpu[i],
               bytes / w / 1e9, bytes / c / 1e9, calls / c, rss[i] / 1024,
               td ? sprintf("%.2f", td / c) : "-", pw ? sprintf("%.2f", pw / c) : "-"
        if (name[i] == "kmsscope") { ks = c; kr = rss[i] / 1024 }
      }
      if (ks) {
        printf "targets: kmsscope/tcpdump %.2f (mixed: >= 0.5), %.0f calls/s (KMS-only: >= 300000), peak RSS %.1f MiB (<= 64)\n",
               td ? td / ks : 0, calls / ks, kr
      }
    }'
done
