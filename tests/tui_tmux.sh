#!/usr/bin/env bash
# End-to-end test of the terminal UI, as a user would drive it: the real binary in a detached tmux
# session of fixed size, keys sent with `send-keys`, the screen read with `capture-pane`.
# Open a capture, move, open a call, switch pane, filter, quit; then the shell must be usable
# (canonical mode and echo back on, alternate screen left).
#
# Usage: tests/tui_tmux.sh [path/to/kmsscope]   (default: target/release/kmsscope, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tmux >/dev/null 2>&1; then
  echo "tui_tmux: tmux not installed: skipped"
  exit 0
fi
BIN=${1:-target/release/kmsscope}
if [ ! -x "$BIN" ]; then
  cargo build --release --quiet
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
export TERM=${TERM:-xterm-256color}
[ "$TERM" = dumb ] && export TERM=xterm-256color

S="kmsscope-tui-$$"
SOCK="kmsscope-tui-$$"
T() { tmux -L "$SOCK" -f /dev/null "$@"; }
passed=0
cap() { T capture-pane -p -t "$S"; }
fail() {
  echo "tui_tmux: FAIL: $*"
  echo "----- pane -----"
  cap || true
  echo "----------------"
  echo "tui_tmux: $passed passed, 1 failed"
  exit 1
}
cleanup() { T kill-server >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Waits up to 5 s for every fixed string given to be on the screen.
expect() {
  local step=$1
  shift
  for _ in $(seq 1 50); do
    local screen ok=1
    screen=$(cap)
    for want in "$@"; do
      grep -qF -- "$want" <<<"$screen" || ok=0
    done
    if [ $ok = 1 ]; then
      passed=$((passed + 1))
      echo "tui_tmux: ok: $step"
      return 0
    fi
    sleep 0.1
  done
  local missing=()
  for want in "$@"; do grep -qF -- "$want" <<<"$(cap)" || missing+=("$want"); done
  fail "$step: not on screen: ${missing[*]}"
}
absent() {
  local step=$1 what=$2
  if cap | grep -qF -- "$what"; then fail "$step: still on screen: $what"; fi
  passed=$((passed + 1))
  echo "tui_tmux: ok: $step"
}
keys() { T send-keys -t "$S" "$@"; sleep 0.3; }

T new-session -d -s "$S" -x 160 -y 48 "env PS1='tmux-test\$ ' bash --norc --noprofile"
sleep 0.3
keys "$BIN read captures/interop/s14_ticket_combined.pcapng --tui; echo EXIT=\$?" Enter

expect "open: calls, hosts, DNS, status" \
  "FIN-PC-231" "Calls 3" "KMS hosts" "10.77.0.10:1688" "count 1/25" "_vlmcs._tcp.corp.example" "done"
keys j j
expect "move: third call selected" "Detail: frame 74"
keys Enter
expect "open the call: decoded fields" "workstation" "FIN-PC-118.corp.example" "Windows 7" "Hex: request"
keys Tab
expect "Tab: findings pane focused" "Findings"
keys /
keys -l "outcome=bogus"
expect "filter invalid while typing" "outcome is one of"
keys C-u
keys -l "ws~FIN-PC-1"
expect "filter valid while typing" "Calls 1 of 3" "Enter keeps"
keys Enter
expect "filter applied" "filter" "ws~FIN-PC-1" "(1 of 3 calls)"
keys Escape Enter
expect "open the filtered call" "FIN-PC-118.corp.example" "Detail: frame 74"
keys ?
expect "help" "Help (any key closes)"
keys Escape
keys q
expect "q quits with status 0" "EXIT=0"
absent "alternate screen left" "1:Calls"
keys "stty -a | grep -Eq '(^|[ ;])icanon([ ;]|\$)' && stty -a | grep -Eq '(^|[ ;])echo([ ;]|\$)' && echo TERMINAL-SANE" Enter
expect "terminal sane after quit" "TERMINAL-SANE"
keys "echo SHELL-''OK" Enter
expect "shell echoes" "SHELL-OK"

# --tui refuses to run without a terminal.
set +e
"$BIN" read captures/interop/s14_ticket_combined.pcapng --tui </dev/null >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || fail "--tui without a terminal exits 2 (got $rc)"
passed=$((passed + 1))
echo "tui_tmux: $passed passed, 0 failed"
