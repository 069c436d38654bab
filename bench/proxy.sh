#!/usr/bin/env bash
# bench/proxy.sh: benchmark the local credential proxy of `ramsecrets proxy`
# (AWS Secrets Manager Agent API shape) against the AWS Secrets Manager Agent's
# reference figures, measured on these machines with the same wrk commands.
#
# What it measures: HTTP throughput (requests/s) and latency percentiles (p50,
# p99) of `GET /secretsmanager/get?secretId=prod/api` with the
# X-Aws-Parameters-Secrets-Token header, answered from the proxy's cache, with
# one connection (`wrk -t1 -c1 -d10s --latency`) and with 64 connections
# (`wrk -t1 -c64 -d10s --latency`); and the proxy's resident set size (VmRSS,
# and the peak VmHWM, from /proc/<pid>/status) after start-up and after each
# run.
#
# How:
#   - wrk comes from Debian (`apt-get install -y wrk` when missing);
#   - ramsecrets is built with `cargo build --profile dist` (bench/lib.sh);
#   - the config is examples/dev.yaml (its `file` source, so no server is
#     needed; the source path made absolute) with three changes: its own fresh
#     16 MiB tmpfs as output dir, proxy.listen on a free 127.0.0.1 port and
#     proxy.token_file in the scratch dir (a random token, mode 0600); it is
#     validated with `ramsecrets check` first;
#   - `target/dist/ramsecrets proxy --config F --log-level warn` runs in the
#     background; the sampled PID is checked to be that binary;
#   - once /ping answers, one authenticated GET must return 200 with a
#     SecretString (this also fills the proxy's body cache), and one GET
#     without the token must be refused;
#   - the two wrk runs follow, c=1 first; requests/s, p50 and p99 are parsed
#     from wrk's output, and any "Non-2xx or 3xx responses" or socket errors
#     are reported (and make the script exit 1 after the report).
#   Nothing leaves loopback. wrk and the proxy share the host's CPUs, so the
#   host should be otherwise idle: its CPU use is sampled (/proc/stat, 2 s)
#   before the runs, with a warning above 10%; during each run the host's
#   CPU time (/proc/stat) is split into proxy (/proc/<pid>/stat), wrk
#   (/usr/bin/time) and other processes, with a warning when the others used
#   over 10% of a CPU.
#
# Reference: AWS Secrets Manager Agent, same commands on these machines:
#   c=1  ~ 10k req/s, p50 96 us;  c=64 ~ 108k req/s, p99 1.8 ms;  13 MiB RSS.
# Goals (from the design): throughput ramsecrets/agent >= 1.2x (each run);
# p99 ramsecrets/agent at c=64 <= 0.8x; RSS ramsecrets/agent < 1 (taken from
# the proxy's peak, VmHWM, after both runs).
#
# The build, scratch space, tmpfs and cleanup pieces are shared with
# bench/init.sh and bench/sidecar.sh in bench/lib.sh.
#
# Needs: root (to mount tmpfs and install wrk), python3, curl, cargo, GNU
# /usr/bin/time.
# Usage: bash bench/proxy.sh         (DURATION=30 bash bench/proxy.sh for
#                                     longer runs, in seconds, minimum 5)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
SECRET_ID=prod/api

# AWS Secrets Manager Agent reference figures (see above).
AGENT_RPS_C1=10000
AGENT_P50_C1_US=96
AGENT_RPS_C64=108000
AGENT_P99_C64_US=1800
AGENT_RSS_MIB=13

die() { echo "bench/proxy.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 5)); then
  die "DURATION must be an integer >= 5 (got '$DURATION')"
fi
((EUID == 0)) || die "must run as root (it mounts tmpfs and may install wrk)"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"
command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"

# No HTTP proxy for loopback traffic, from the caller's environment or else.
bench_no_proxy

echo "# reproduce: cd $REPO && $([[ $DURATION != 10 ]] && echo "DURATION=$DURATION ")bash bench/proxy.sh"

# --- wrk from Debian --------------------------------------------------------
if ! command -v wrk >/dev/null; then
  echo "# installing wrk (apt-get install -y wrk)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; } ||
    die "cannot install wrk with apt-get"
fi
WRK=$(command -v wrk)

# --- build ramsecrets -------------------------------------------------------
cd "$REPO"
bench_build

# --- scratch space and cleanup ----------------------------------------------
# On exit (also on failure or Ctrl-C) the proxy is stopped, the tmpfs
# unmounted and $WORK removed (bench_cleanup in bench/lib.sh).
bench_scratch
OUT=$WORK/out
CONF=$WORK/proxy.yaml
TOKEN_FILE=$WORK/proxy-token
PROXY_PID=

bench_tmpfs size=16m,mode=0700 "$OUT"

# --- config: examples/dev.yaml, own output dir, port and token --------------
PORT=$(bench_free_port)
BASE=http://127.0.0.1:$PORT
TOKEN=$(python3 -c 'import secrets;print(secrets.token_hex(32))')
bench_secret_file "$TOKEN_FILE" "$TOKEN"

sed -e "s|^\(    file: { path: \)dev-secrets.yaml }|\1$REPO/examples/dev-secrets.yaml }|" \
  -e "s|^  dir: .*|  dir: $OUT|" \
  -e "s|^  listen: .*|  listen: \"127.0.0.1:$PORT\"|" \
  -e "s|^  token_file: .*|  token_file: $TOKEN_FILE|" \
  "$REPO/examples/dev.yaml" >"$CONF"
# Each substitution must have hit exactly once, and the benchmarked secret
# must be configured.
for want in "path: $REPO/examples/dev-secrets.yaml }" "  dir: $OUT" \
  "  listen: \"127.0.0.1:$PORT\"" "  token_file: $TOKEN_FILE" "secret_id: $SECRET_ID"; do
  n=$(grep -cF -- "$want" "$CONF" || true)
  ((n == 1)) || die "examples/dev.yaml changed shape: '$want' appears $n times in the derived config"
done
"$RS" check --config "$CONF" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; die "ramsecrets check refused $CONF"; }

# --- start the proxy --------------------------------------------------------
"$RS" proxy --config "$CONF" --log-level warn >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
bench_bg "$PROXY_PID"
bench_wait_http "ramsecrets proxy" "$PROXY_PID" "$WORK/proxy.log" "$BASE/ping" 10
[[ $(readlink -f "/proc/$PROXY_PID/exe") == "$RS" ]] || die "PID $PROXY_PID is not $RS"

# rss PID: prints "VmRSS VmHWM" in KiB.
rss() { awk '$1 == "VmRSS:" { r = $2 } $1 == "VmHWM:" { h = $2 } END { print r, h }' "/proc/$1/status"; }

echo "# ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $($WRK -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(nproc) CPUs"
# wrk and the proxy share this host's CPUs: anything else running skews the
# figures. The load average lags (it still counts the build above), so the
# host's CPU use is sampled from /proc/stat over 2 s before the runs instead.
TCK=$(getconf CLK_TCK)
[[ $TCK =~ ^[0-9]+$ ]] && ((TCK > 0)) || die "getconf CLK_TCK gave '$TCK'"
# proc_ticks PID: utime + stime of PID (all its threads), in clock ticks.
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
cpu_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; } # busy, idle+iowait
read -r busy0 idle0 < <(cpu_ticks)
sleep 2
read -r busy1 idle1 < <(cpu_ticks)
BUSY=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }')
echo "# host CPU use before the runs (proxy idle): $BUSY% of $(nproc) CPUs over 2 s"
((BUSY <= 10)) || echo "# WARNING: the host is busy ($BUSY% CPU); expect lower, noisier figures"
read -r START_RSS START_HWM < <(rss "$PROXY_PID")
echo "# proxy PID $PROXY_PID on 127.0.0.1:$PORT; after start-up VmRSS $START_RSS KiB, VmHWM $START_HWM KiB"

# --- verify: one authenticated GET ------------------------------------------
URL="$BASE/secretsmanager/get?secretId=$SECRET_ID"
HDR="X-Aws-Parameters-Secrets-Token: $TOKEN"
code=$(curl -sS -o "$WORK/get.json" -w '%{http_code}' -H "$HDR" "$URL")
[[ $code == 200 ]] || { cat "$WORK/get.json" >&2; die "authenticated GET $URL returned $code"; }
python3 - "$WORK/get.json" "$SECRET_ID" <<'PY' || die "the answer is not a GetSecretValue body with a SecretString"
import json, sys
body = json.load(open(sys.argv[1]))
assert isinstance(body.get("SecretString"), str) and body["SecretString"], "no SecretString"
print(f"# check: GET secretId={sys.argv[2]} -> 200, {len(open(sys.argv[1], 'rb').read())} bytes, "
      f"fields {', '.join(sorted(body))}")
PY
code=$(curl -sS -o /dev/null -w '%{http_code}' "$URL")
[[ $code == 401 || $code == 403 ]] || die "GET without the token returned $code, expected 401/403"
echo "# check: GET without the token -> $code"

# --- wrk runs ---------------------------------------------------------------
# to_us VALUE: wrk's time (e.g. 96.00us, 1.80ms, 1.02s, 1.50m) in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (match(v, /us$/)) m = 1; else if (match(v, /ms$/)) m = 1e3;
    else if (match(v, /m$/)) m = 6e7; else if (match(v, /s$/)) m = 1e6;
    else { print "nan"; exit }
    printf "%.1f", (v + 0) * m
  }'
}

FAULTS=0
declare -A RPS P50 P99 RSS HWM NREQ BAD
for c in 1 64; do
  read -r busy0 idle0 < <(cpu_ticks)
  ptick0=$(proc_ticks "$PROXY_PID")
  /usr/bin/time -f '%U %S' -o "$WORK/wrk-time.txt" \
    "$WRK" -t1 -c"$c" -d"${DURATION}s" --latency -H "$HDR" "$URL" >"$WORK/wrk-c$c.txt" 2>&1 ||
    { cat "$WORK/wrk-c$c.txt" >&2; die "wrk -c$c failed"; }
  read -r busy1 idle1 < <(cpu_ticks)
  kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/proxy.log" >&2; die "ramsecrets proxy died during wrk -c$c"; }
  ptick1=$(proc_ticks "$PROXY_PID")
  read -r RSS[$c] HWM[$c] < <(rss "$PROXY_PID")
  # CPU seconds during the run: the whole host, the proxy, wrk, and the rest
  # (other processes on the host; should be ~0). The host figure is sampled
  # at clock ticks while the per-process ones are exact, so with many short
  # sleeps (c=1) the host figure comes out low and "other" is a lower bound,
  # clamped at 0; it still shows a competing build or test run.
  read -r CPU_HOST CPU_PROXY CPU_WRK CPU_OTHER < <(awk -v tck="$TCK" -v h=$((busy1 - busy0)) \
    -v p=$((ptick1 - ptick0)) 'NR == 1 { w = $1 + $2 } END {
      o = h / tck - p / tck - w; printf "%.2f %.2f %.2f %.2f\n", h / tck, p / tck, w, (o > 0 ? o : 0) }' "$WORK/wrk-time.txt")
  f=$WORK/wrk-c$c.txt
  RPS[$c]=$(awk '$1 == "Requests/sec:" { print $2 }' "$f")
  P50[$c]=$(to_us "$(awk '/Latency Distribution/ { d = 1 } d && $1 == "50%" { print $2; exit }' "$f")")
  P99[$c]=$(to_us "$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$f")")
  NREQ[$c]=$(awk '/ requests in / { print $1; exit }' "$f")
  [[ -n ${RPS[$c]} && ${P50[$c]} != nan && ${P99[$c]} != nan && -n ${NREQ[$c]} ]] ||
    { cat "$f" >&2; die "cannot parse wrk's output for c=$c"; }
  BAD[$c]=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$f")
  BAD[$c]=${BAD[$c]:-0}
  sock=$(grep -F 'Socket errors' "$f" | sed 's/^ *//' || true)
  echo "# wrk -t1 -c$c -d${DURATION}s: ${NREQ[$c]} requests, non-2xx/3xx ${BAD[$c]}${sock:+, $sock}; then VmRSS ${RSS[$c]} KiB, VmHWM ${HWM[$c]} KiB"
  echo "#   CPU s over the run: proxy $CPU_PROXY, wrk $CPU_WRK, other processes >= $CPU_OTHER (host, tick-sampled: $CPU_HOST)"
  if awk -v o="$CPU_OTHER" -v d="$DURATION" 'BEGIN { exit !(o > 0.1 * d) }'; then
    echo "# WARNING: other processes used $CPU_OTHER CPU s during this run (> 10% of a CPU); its figures are skewed"
  fi
  if ((BAD[$c] > 0)) || [[ -n $sock ]]; then
    FAULTS=1
    echo "# WARNING: wrk -c$c saw failed requests; its output:"
    sed 's/^/#   /' "$f"
  fi
done

# --- stop the proxy; anything it logged at warn or above is shown ----------
kill "$PROXY_PID"
set +e
wait "$PROXY_PID"
stop_rc=$?
set -e
bench_forget "$PROXY_PID"
PROXY_PID=
echo "# proxy stopped on SIGTERM with status $stop_rc"
((stop_rc == 0)) || FAULTS=1
if [[ -s $WORK/proxy.log ]]; then
  echo "# proxy log (--log-level warn):"
  sed 's/^/#   /' "$WORK/proxy.log"
fi

# --- report -----------------------------------------------------------------
hwm=${HWM[64]}
((HWM[1] > hwm)) && hwm=${HWM[1]}
awk -v d="$DURATION" \
  -v r1="${RPS[1]}" -v a1="${P50[1]}" -v b1="${P99[1]}" -v m1="${RSS[1]}" -v h1="${HWM[1]}" \
  -v r64="${RPS[64]}" -v a64="${P50[64]}" -v b64="${P99[64]}" -v m64="${RSS[64]}" -v h64="${HWM[64]}" \
  -v hwm="$hwm" -v ar1="$AGENT_RPS_C1" -v ap1="$AGENT_P50_C1_US" -v ar64="$AGENT_RPS_C64" \
  -v aq64="$AGENT_P99_C64_US" -v arss="$AGENT_RSS_MIB" 'BEGIN {
  printf "\nGET /secretsmanager/get?secretId=prod/api (cached), wrk -t1 -d%ds --latency\n\n", d
  f = "%-22s %4s %12s %10s %10s %11s %11s\n"
  printf f, "tool", "c", "req/s", "p50 (us)", "p99 (us)", "RSS (MiB)", "HWM (MiB)"
  printf "%-22s %4d %12.0f %10.1f %10.1f %11.1f %11.1f\n", "ramsecrets proxy", 1, r1, a1, b1, m1 / 1024, h1 / 1024
  printf "%-22s %4d %12.0f %10.1f %10.1f %11.1f %11.1f\n", "ramsecrets proxy", 64, r64, a64, b64, m64 / 1024, h64 / 1024
  printf "%-22s %4d %12s %10.1f %10s %11.1f %11s\n", "AWS agent (reference)", 1, "~" ar1, ap1, "-", arss, "-"
  printf "%-22s %4d %12s %10s %10.1f %11.1f %11s\n", "AWS agent (reference)", 64, "~" ar64, "-", aq64, arss, "-"
  t1 = r1 / ar1; t64 = r64 / ar64; q = b64 / aq64; m = (hwm / 1024) / arss
  g = "%-36s %9.2fx %10s %s\n"
  printf "\n%-36s %10s %10s %s\n", "ratio ramsecrets/agent", "value", "goal", "met"
  printf g, "throughput, c=1", t1, ">= 1.2x", (t1 >= 1.2 ? "yes" : "NO")
  printf g, "throughput, c=64", t64, ">= 1.2x", (t64 >= 1.2 ? "yes" : "NO")
  printf g, "p99 latency, c=64", q, "<= 0.8x", (q <= 0.8 ? "yes" : "NO")
  printf g, "RSS (peak VmHWM vs 13 MiB)", m, "< 1x", (m < 1 ? "yes" : "NO")
}'

((FAULTS == 0)) || die "failed requests or an unclean proxy exit (see above)"
