#!/usr/bin/env bash
# Runs every fuzz target (`cargo fuzz list`) for SECONDS each (default 30),
# starting from the seeds in fuzz/corpus/<target>/. Stable toolchain: no
# sanitizer (`-s none`), debug assertions on. Exits non-zero on the first
# crash, failed assertion, timeout or out-of-memory; the input is then in
# fuzz/artifacts/<target>/ (make it a regression test in the server crate).
#
#   fuzz/run.sh [SECONDS]        e.g. fuzz/run.sh 300 for a longer session
#
# New corpus entries go to a scratch directory, never into the repository.
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# Kept outside the clone so CI reuses the instrumented build across runs.
target_dir="${MISSIVE_FUZZ_TARGET_DIR:-/var/tmp/missive-fuzz-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo fuzz build -s none --target-dir "$target_dir"

summary=()
passed=0
for target in $(cargo fuzz list); do
  echo "== fuzz $target (${seconds} s)"
  mkdir -p "$work/corpus/$target"
  log="$work/$target.log"
  # The first corpus directory receives new entries; the seeds are only read.
  if ! cargo fuzz run -s none --target-dir "$target_dir" "$target" \
      "$work/corpus/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    # The panic message and libFuzzer's verdict (the backtrace is in between).
    grep -A3 -m1 'panicked at' "$log" || true
    grep -E '^(SUMMARY|MS:|Base64:)|Test unit written|ERROR: libFuzzer' "$log" || tail -n 40 "$log"
    echo "fuzz: target $target FAILED; the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  summary+=("$(printf '  %-16s %10s runs  %8s exec/s  %s' "$target" "$runs" "$rate" "$cov")")
  passed=$((passed + 1))
done

echo "== fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, 0 failed"
