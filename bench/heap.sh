#!/usr/bin/env bash
# bench/heap.sh: the heap `ramsecrets run` holds for N secrets, and what it
# costs per additional secret (issue 27: at most 2 KiB).
#
# What it measures: for each N of NS (default "200 2000"), the sidecar job of
# bench/sidecar.sh (N KV v2 secrets from a throw-away OpenBao dev server,
# written as JSON files to tmpfs, refresh every 10 s) is started alone under
# heaptrack, left to run two refresh rounds past the first write (SETTLE,
# default 25 s), and killed (SIGKILL: nothing is freed on the way out). The
# heap in use is the least of heaptrack's samples over the last WINDOW
# seconds (default 10): with thousands of secrets a round is under way most
# of the time, and the least is the heap kept between rounds, without the
# fetches of one in flight. Then the KiB per additional secret between each N
# and the next. The bytes are those the program asked for (heaptrack's count,
# without the allocator's own few bytes a block). The heap, not the RSS: it
# moves little from run to run, where RSS moves with the pages the allocator
# keeps and the load of the machine. (glibc's malloc_stats() through gdb
# counts the allocator's bytes too, but stopping a sidecar that allocates all
# the time inside malloc and calling malloc_stats there deadlocks it.)
#
# The allocation sites: `heaptrack_print --print-leaks FILE` on the files kept
# in HEAPTRACK=DIR (heaptrack.JOB.N.zst); what is "leaked" there is what was in
# use at the kill.
#
# JOB=proxy measures `ramsecrets proxy` holding N AWS secrets from moto
# (bench/proxy.sh's job, NS default "1000") the same way.
#
# The binary is the debug build (`cargo build`; RS_BIN=path for another):
# allocation sizes are those of a debug build, a little larger than an
# optimised one's futures; say so with the figures.
#
# Needs: root (tmpfs), heaptrack, python3, curl, cargo, the test bed's venv
# (OpenBao, moto).
# Usage: bash bench/heap.sh        (NS="20 200 2000"; SETTLE=40; WINDOW=5;
#                                   HEAPTRACK=/tmp/ht to keep the files;
#                                   JOB=proxy)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
JOB=${JOB:-sidecar}
case $JOB in
  sidecar) NS=${NS:-200 2000} ;;
  proxy) NS=${NS:-1000} ;;
  *) echo "bench/heap.sh: error: JOB must be sidecar or proxy (got '$JOB')" >&2; exit 1 ;;
esac
SETTLE=${SETTLE:-25}
WINDOW=${WINDOW:-10}
HEAPTRACK=${HEAPTRACK:-}

die() { echo "bench/heap.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

for n in $NS; do
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 2 && n <= 10000)) || die "each of NS must be an integer from 2 to 10000 (got '$n')"
done
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE must be a whole number of seconds (got '$SETTLE')"
[[ $WINDOW =~ ^[0-9]+$ ]] && ((WINDOW >= 1 && WINDOW <= SETTLE)) || die "WINDOW must be a whole number from 1 to SETTLE (got '$WINDOW')"
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
command -v heaptrack >/dev/null || die "heaptrack is required"
bench_clean_env

echo "# reproduce: cd $REPO && $([[ $JOB != sidecar ]] && echo "JOB=$JOB ")NS=\"$NS\" $([[ $SETTLE != 25 ]] && echo "SETTLE=$SETTLE ")$([[ $WINDOW != 10 ]] && echo "WINDOW=$WINDOW ")$([[ -n $HEAPTRACK ]] && echo "HEAPTRACK=$HEAPTRACK ")bash bench/heap.sh"

cd "$REPO"
if [[ -n ${RS_BIN:-} ]]; then
  RS=$(readlink -f -- "$RS_BIN")
else
  echo "# building ramsecrets (cargo build)"
  cargo build --quiet --bin ramsecrets
  RS=$(readlink -f -- "${CARGO_TARGET_DIR:-$REPO/target}/debug/ramsecrets")
fi
[[ -x $RS ]] || die "no binary at $RS"

bench_scratch
KEEP=${HEAPTRACK:-$WORK}
mkdir -p "$KEEP"
KEEP=$(readlink -f -- "$KEEP")
MAX=$(printf '%s\n' $NS | sort -n | tail -1)
if [[ $JOB == sidecar ]]; then
  bench_bao_binary
  bench_start_bao
  bench_seed "$MAX"
else
  bench_start_moto
  echo "# seeding $MAX secrets bench/p0000.. into moto"
  bench_seed_aws "$MAX" "bench/p%04d"
fi

# least_heap FILE: the least heap in use (bytes) over the last WINDOW seconds
# of the heaptrack FILE, from its massif-format time series.
least_heap() {
  heaptrack_print -f "$1" --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --massif-detailed-freq 0 -M "$WORK/massif" >/dev/null 2>&1 || die "heaptrack_print cannot read $1"
  awk -F= -v w="$WINDOW" '$1 == "time" { t = $2 } $1 == "mem_heap_B" { n++; T[n] = t; B[n] = $2 }
    END { if (n == 0) exit 1; for (k = n; k > 0 && T[k] >= T[n] - w; k--) if (m == "" || B[k] < m) m = B[k]; print m }' \
    "$WORK/massif" || die "no samples in $1"
}

# ready N DIR PORT: whether the job of N secrets is up (N files in DIR; the
# proxy answering on PORT).
ready() {
  if [[ $JOB == sidecar ]]; then
    (($(bench_count_json "$2") == $1))
  else
    curl -fsS -o /dev/null "http://127.0.0.1:$3/ping" 2>/dev/null
  fi
}

declare -A HEAP
for n in $NS; do
  OUT_RS=$WORK/out-$n
  port=
  if [[ $JOB == sidecar ]]; then
    bench_tmpfs size=64m "$OUT_RS"
    # (bench_kv_configs writes a bao agent config too, which is not used.)
    OUT_BAO=$WORK/unused
    bench_kv_configs "$n" "refresh: { interval: 10s }" ""
  else
    port=$(bench_free_port)
    bench_secret_file "$WORK/proxy-token" "heap-bench-token"
    RS_CONF=$WORK/proxy.yaml
    {
      printf 'sources:\n  - name: aws\n    aws_secrets_manager:\n      region: us-east-1\n      endpoint: %s\n' "$MOTO_URL"
      printf 'proxy:\n  listen: "127.0.0.1:%s"\n  token_file: %s\nsecrets:\n' "$port" "$WORK/proxy-token"
      for ((k = 0; k < n; k++)); do printf '  - name: p%04d\n    secret_id: bench/p%04d\n' "$k" "$k"; done
    } >"$RS_CONF"
  fi
  log=$WORK/ramsecrets-$n.log
  cmd=("$RS" run --config "$RS_CONF" --log-level warn)
  [[ $JOB == sidecar ]] || cmd[1]=proxy
  rm -f "$KEEP/heaptrack.$JOB.$n".*zst
  HOME=$WORK heaptrack -o "$KEEP/heaptrack.$JOB.$n" "${cmd[@]}" >"$log" 2>&1 &
  pid=$!
  bench_bg "$pid"
  for ((t = 0; t < 1200; t++)); do
    ready "$n" "$OUT_RS" "$port" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "ramsecrets exited"; }
    sleep 0.1
  done
  ready "$n" "$OUT_RS" "$port" || { cat "$log" >&2; die "not ready after 120 s with $n secrets"; }
  echo "# $n secrets: ready; settling $SETTLE s"
  sleep "$SETTLE"
  # The traced process is heaptrack's child: kill it, not the wrapper.
  child=
  for c in $(pgrep -P "$pid"); do
    [[ $(readlink -f "/proc/$c/exe" 2>/dev/null) == "$RS" ]] && child=$c
  done
  [[ -n $child ]] || die "no ramsecrets process under heaptrack (pid $pid)"
  kill -9 "$child"
  wait "$pid" 2>/dev/null || true
  bench_forget "$pid"
  f=$(ls "$KEEP/heaptrack.$JOB.$n".*zst 2>/dev/null | head -1)
  [[ -n $f ]] || die "no heaptrack file for $n secrets in $KEEP"
  HEAP[$n]=$(least_heap "$f")
  echo "# $n secrets: heap in use ${HEAP[$n]} bytes (least over the last $WINDOW s; $f)"
  if [[ $JOB == sidecar ]]; then umount "$OUT_RS"; fi
done

echo
printf '%-10s %14s %16s\n' "secrets" "heap in use" "per additional"
prev=
for n in $(printf '%s\n' $NS | sort -n); do
  if [[ -n $prev ]]; then
    per=$(awk -v a="${HEAP[$prev]}" -v b="${HEAP[$n]}" -v m="$prev" -v k="$n" 'BEGIN { printf "%.2f KiB", (b - a) / (k - m) / 1024 }')
  else
    per=
  fi
  printf '%-10s %11.3f MB %16s\n' "$n" "$(awk -v b="${HEAP[$n]}" 'BEGIN { print b / 1e6 }')" "$per"
  prev=$n
done
