#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS] [TARGET...]: runs each fuzz target of fuzz/ (all
# when none is named) for SECONDS (default 600) and prints a table: target,
# executions, coverage (libFuzzer's edges `cov` and features `ft`), corpus
# size, crashes. CI runs it for a few seconds per target (.ci/run), so every
# target keeps building and running.
#
# The targets are built once with cargo-fuzz (installed into .testbed/tools by
# `scripts/testbed --fuzz`), without a sanitizer (the crate forbids unsafe code
# but in one audited module; debug assertions and overflow checks stay on).
# Each target starts from its committed seeds (fuzz/seeds/TARGET, from the
# tests and examples) and the corpus earlier runs grew (fuzz/corpus/TARGET,
# not committed). A crash stops its target: the input is kept in
# fuzz/artifacts/TARGET/, `cargo fuzz fmt TARGET FILE` prints it, and the
# script exits 1 after the table. A slow input (over 10 s) counts as a crash.
# Two cores shared with others: targets run one after the other, niced.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-600}"
shift || true
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*) echo "usage: bench/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 64 ;;
esac

FUZZ="$REPO/.testbed/tools/bin/cargo-fuzz"
[ -x "$FUZZ" ] || bash "$REPO/scripts/testbed" --fuzz
cd "$REPO/fuzz"
FLAGS=(--sanitizer none --debug-assertions)
nice "$FUZZ" build "${FLAGS[@]}" >&2
BIN="$REPO/fuzz/target/x86_64-unknown-linux-gnu/release"

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <("$FUZZ" list)

failed=0
rows=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  log="$(mktemp)"
  before="$(find "artifacts/$t" -type f | wc -l)"
  # -rss_limit_mb: a sidecar has 64 MiB; what one input makes is far below this.
  nice "$BIN/$t" "corpus/$t" "seeds/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" 2>"$log" || true
  after="$(find "artifacts/$t" -type f | wc -l)"
  crashes=$((after - before))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
  corpus="$(find "corpus/$t" -type f | wc -l)"
  if [ "$crashes" -gt 0 ] || [ -z "$execs" ]; then
    failed=1
    echo "--- $t:" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|thread' "$log" | head -n 20 >&2 || tail -n 20 "$log" >&2
  fi
  rows+=("$(printf '%-11s %12s %18s %7s %8s' "$t" "${execs:-?}" "${cov:-?}" "$corpus" "$crashes")")
  rm -f "$log"
done

printf '%-11s %12s %18s %7s %8s\n' target executions coverage corpus crashes
printf '%s\n' "${rows[@]}"
echo "($SECONDS_PER_TARGET s per target)"
exit "$failed"
