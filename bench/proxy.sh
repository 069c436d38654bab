#!/usr/bin/env bash
# bench/proxy.sh: benchmark the local credential proxy of `ramsecrets proxy`
# against the AWS Secrets Manager Agent, both measured in the same run on the
# same machine with the same wrk commands.
#
# What it measures, per tool: HTTP throughput (requests/s), latency
# percentiles (p50, p99), the server's CPU time per request and its memory
# (VmRSS, and the peak VmHWM, from /proc/<pid>/status), for
#   one   `GET /secretsmanager/get?secretId=bench/p0000` with the
#         X-Aws-Parameters-Secrets-Token header, answered from the cache, with
#         one connection (`wrk -t1 -c1 -d10s --latency`) and 64 (`-c64`);
#   rr    SECRETS (default 1000, the agent's cache size limit) secrets
#         configured and cached, asked for round-robin by a wrk Lua script
#         (`-c64`): what a busy node asks of a proxy holding many secrets.
#
# How:
#   - wrk comes from Debian (`apt-get install -y wrk` when missing); the agent
#     is the crates.io release (`cargo install --locked aws_secretsmanager_agent
#     --version 2.1.0 --root .testbed/tools` when missing; AGENT_BIN=path to use
#     another build); ramsecrets is built with `cargo build --profile dist`
#     (bench/lib.sh; RS_BIN=path to use another build);
#   - both read the same SECRETS secrets (bench/p0000.., JSON) from one moto
#     server on loopback (bench_start_moto, test credentials): ramsecrets with
#     an `aws_secrets_manager` source pointed at it (no output dir: memory
#     only), the agent through AWS_ENDPOINT_URL, its SSRF token in AWS_TOKEN,
#     ttl 300 s, cache_size SECRETS;
#   - each tool's PID is checked to be its binary; once both answer, every
#     secret is asked of both once (fills the agent's cache), and the two must
#     return the same SecretString for each; a GET without the token must be
#     refused by both;
#   - then the wrk runs, one tool at a time, alternating (ramsecrets first)
#     for each of the three runs, the whole set REPEATS times (default 3); the
#     report gives the median of each figure; CPU time of the tool (/proc/<pid>/stat),
#     of wrk (/usr/bin/time) and of the whole host (/proc/stat) is taken
#     around each run, with a warning when other processes used over 10% of
#     a CPU (the figures are then skewed: say the load with them).
#
# Goals (issue 27): ramsecrets/agent CPU per request <= 0.7x, throughput
# >= 1.2x at c=64 (one and rr), p99 <= 0.8x at c=64, memory with SECRETS
# cached <= 0.5x (VmHWM after all runs).
#
# Needs: root (to install wrk), python3 with the test bed's venv (moto), curl,
# cargo, GNU /usr/bin/time.
# Usage: bash bench/proxy.sh         (DURATION=30 for longer runs, in seconds,
#                                     minimum 5; REPEATS=5 for more repeats;
#                                     SECRETS=200 for fewer secrets)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
SECRETS=${SECRETS:-1000}
AGENT_VERSION=2.1.0
AGENT=${AGENT_BIN:-$REPO/.testbed/tools/bin/aws_secretsmanager_agent}

die() { echo "bench/proxy.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 5)); then
  die "DURATION must be an integer >= 5 (got '$DURATION')"
fi
if ! [[ $REPEATS =~ ^[0-9]+$ ]] || ((REPEATS < 1)); then
  die "REPEATS must be an integer >= 1 (got '$REPEATS')"
fi
if ! [[ $SECRETS =~ ^[0-9]+$ ]] || ((SECRETS < 1 || SECRETS > 1000)); then
  die "SECRETS must be an integer from 1 to 1000, the agent's cache size limit (got '$SECRETS')"
fi
((EUID == 0)) || die "must run as root (it may install wrk)"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"
command -v python3 >/dev/null || die "python3 is required"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"
[[ -x $REPO/.venv/bin/python ]] || die "no test bed venv (moto): run bash scripts/testbed"

# No HTTP proxy for loopback traffic, from the caller's environment or else.
bench_no_proxy

echo "# reproduce: cd $REPO && $([[ $DURATION != 10 ]] && echo "DURATION=$DURATION ")$([[ $REPEATS != 3 ]] && echo "REPEATS=$REPEATS ")$([[ $SECRETS != 1000 ]] && echo "SECRETS=$SECRETS ")bash bench/proxy.sh"

# --- wrk from Debian, the agent from crates.io ------------------------------
if ! command -v wrk >/dev/null; then
  echo "# installing wrk (apt-get install -y wrk)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; } ||
    die "cannot install wrk with apt-get"
fi
WRK=$(command -v wrk)
if [[ ! -x $AGENT ]]; then
  [[ -z ${AGENT_BIN:-} ]] || die "AGENT_BIN=$AGENT_BIN is not an executable"
  echo "# installing the AWS Secrets Manager Agent $AGENT_VERSION into .testbed/tools (cargo install)"
  cargo install --quiet --locked --root "$REPO/.testbed/tools" aws_secretsmanager_agent --version "$AGENT_VERSION"
fi
AGENT=$(readlink -f -- "$AGENT")

# --- build ramsecrets -------------------------------------------------------
cd "$REPO"
bench_build

# --- scratch space, moto and its secrets ------------------------------------
# On exit (also on failure or Ctrl-C) both tools and moto are stopped and
# $WORK removed (bench_cleanup in bench/lib.sh).
bench_scratch
bench_start_moto
echo "# seeding $SECRETS secrets bench/p0000.. into moto"
bench_seed_aws "$SECRETS" "bench/p%04d"

TOKEN=$(python3 -c 'import secrets;print(secrets.token_hex(32))')
TOKEN_FILE=$WORK/proxy-token
bench_secret_file "$TOKEN_FILE" "$TOKEN"
RS_PORT=$(bench_free_port)
AGENT_PORT=$(bench_free_port)
((RS_PORT != AGENT_PORT)) || AGENT_PORT=$(bench_free_port)

# --- ramsecrets: the same secrets from moto, memory only --------------------
CONF=$WORK/proxy.yaml
{
  printf 'sources:\n  - name: aws\n    aws_secrets_manager:\n      region: us-east-1\n      endpoint: %s\n' "$MOTO_URL"
  printf 'proxy:\n  listen: "127.0.0.1:%s"\n  token_file: %s\nsecrets:\n' "$RS_PORT" "$TOKEN_FILE"
  for ((k = 0; k < SECRETS; k++)); do printf '  - name: p%04d\n    secret_id: bench/p%04d\n' "$k" "$k"; done
} >"$CONF"
"$RS" check --config "$CONF" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; die "ramsecrets check refused $CONF"; }
HOME=$WORK "$RS" proxy --config "$CONF" --log-level warn >"$WORK/ramsecrets.log" 2>&1 &
RS_PID=$!
bench_bg "$RS_PID"

# --- the agent: the same secrets from moto ----------------------------------
cat >"$WORK/agent.toml" <<EOF
log_level = "error"
log_to_file = false
http_port = "$AGENT_PORT"
region = "us-east-1"
ttl_seconds = "300"
cache_size = "$SECRETS"
EOF
(cd "$WORK" && HOME=$WORK AWS_TOKEN=$TOKEN AWS_ENDPOINT_URL=$MOTO_URL \
  exec "$AGENT" --config "$WORK/agent.toml" >"$WORK/agent.log" 2>&1) &
AGENT_PID=$!
bench_bg "$AGENT_PID"

bench_wait_http "ramsecrets proxy" "$RS_PID" "$WORK/ramsecrets.log" "http://127.0.0.1:$RS_PORT/ping" 60
bench_wait_http "AWS agent" "$AGENT_PID" "$WORK/agent.log" "http://127.0.0.1:$AGENT_PORT/ping" 60
[[ $(readlink -f "/proc/$RS_PID/exe") == "$RS" ]] || die "PID $RS_PID is not $RS"
[[ $(readlink -f "/proc/$AGENT_PID/exe") == "$AGENT" ]] || die "PID $AGENT_PID is not $AGENT"

echo "# ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), AWS agent $AGENT_VERSION, $($WRK -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- verify: every secret from both, the same; no token, no answer ----------
HDR="X-Aws-Parameters-Secrets-Token: $TOKEN"
BENCH_TOKEN=$TOKEN python3 - "$SECRETS" "$RS_PORT" "$AGENT_PORT" <<'PY' || die "the two tools do not serve the same secrets"
import os, sys, requests
n, ports = int(sys.argv[1]), sys.argv[2:]
s = requests.Session(); s.trust_env = False
h = {"X-Aws-Parameters-Secrets-Token": os.environ["BENCH_TOKEN"]}
for k in range(n):
    got = []
    for p in ports:
        r = s.get(f"http://127.0.0.1:{p}/secretsmanager/get", params={"secretId": f"bench/p{k:04d}"}, headers=h, timeout=30)
        assert r.status_code == 200, f"port {p}, bench/p{k:04d}: {r.status_code}"
        got.append(r.json()["SecretString"])
    assert got[0] == got[1], f"bench/p{k:04d} differs"
for p in ports:
    r = s.get(f"http://127.0.0.1:{p}/secretsmanager/get", params={"secretId": "bench/p0000"}, timeout=30)
    assert r.status_code in (400, 401, 403), f"port {p} answered {r.status_code} without the token"
print(f"# check: {n} secrets, the same SecretString from both; a GET without the token is refused")
PY

# --- wrk runs ---------------------------------------------------------------
# rss PID: prints "VmRSS VmHWM" in KiB.
rss() { awk '$1 == "VmRSS:" { r = $2 } $1 == "VmHWM:" { h = $2 } END { print r, h }' "/proc/$1/status"; }
TCK=$(getconf CLK_TCK)
[[ $TCK =~ ^[0-9]+$ ]] && ((TCK > 0)) || die "getconf CLK_TCK gave '$TCK'"
# proc_ticks PID: utime + stime of PID (all its threads), in clock ticks.
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
cpu_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# to_us VALUE: wrk's time (e.g. 96.00us, 1.80ms, 1.02s) in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (match(v, /us$/)) m = 1; else if (match(v, /ms$/)) m = 1e3;
    else if (match(v, /m$/)) m = 6e7; else if (match(v, /s$/)) m = 1e6;
    else { print "nan"; exit }
    printf "%.1f", (v + 0) * m
  }'
}
cat >"$WORK/rr.lua" <<EOF
-- round-robin over bench/p0000 .. bench/p$(printf '%04d' $((SECRETS - 1))), from a different start per connection
local n, i = $SECRETS, 0
init = function(args) i = math.random(0, n - 1) end
request = function()
  i = (i + 1) % n
  return wrk.format(nil, string.format("/secretsmanager/get?secretId=bench/p%04d", i))
end
EOF

FAULTS=0
declare -A RPS P50 P99 CPU_US
# bench RUN TOOL PORT PID C [wrk args...]
bench() {
  local run=$1 tool=$2 port=$3 pid=$4 c=$5 h0 h1 p0 p1 f
  shift 5
  f=$WORK/wrk-$run-$tool.txt
  h0=$(cpu_ticks) p0=$(proc_ticks "$pid")
  /usr/bin/time -f '%U %S' -o "$WORK/wrk-time.txt" \
    "$WRK" -t1 -c"$c" -d"${DURATION}s" --latency -H "$HDR" "$@" "http://127.0.0.1:$port/secretsmanager/get?secretId=bench/p0000" >"$f" 2>&1 ||
    { cat "$f" >&2; die "wrk $run $tool failed"; }
  h1=$(cpu_ticks) p1=$(proc_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || die "$tool died during wrk $run"
  local k=$run/$tool bad sock other rps p50 p99 nreq cpu
  rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$f")
  p50=$(to_us "$(awk '/Latency Distribution/ { d = 1 } d && $1 == "50%" { print $2; exit }' "$f")")
  p99=$(to_us "$(awk '/Latency Distribution/ { d = 1 } d && $1 == "99%" { print $2; exit }' "$f")")
  nreq=$(awk '/ requests in / { print $1; exit }' "$f")
  [[ -n $rps && $p50 != nan && $p99 != nan && ${nreq:-0} -gt 0 ]] ||
    { cat "$f" >&2; die "cannot parse wrk's output for $k"; }
  cpu=$(awk -v t=$((p1 - p0)) -v tck="$TCK" -v n="$nreq" 'BEGIN { printf "%.2f", 1e6 * t / tck / n }')
  # One value per repeat; the report takes the medians.
  RPS[$k]+=" $rps" P50[$k]+=" $p50" P99[$k]+=" $p99" CPU_US[$k]+=" $cpu"
  other=$(awk -v h=$((h1 - h0)) -v p=$((p1 - p0)) -v tck="$TCK" 'NR == 1 { w = $1 + $2 } END {
    o = h / tck - p / tck - w; printf "%.2f", (o > 0 ? o : 0) }' "$WORK/wrk-time.txt")
  bad=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$f")
  sock=$(grep -F 'Socket errors' "$f" | sed 's/^ *//' || true)
  printf '# %-2s %-5s %-10s c=%-3s %8s req/s, %s requests, %s us CPU/request; other processes >= %s CPU s%s\n' \
    "$rep" "$run" "$tool" "$c" "$rps" "$nreq" "$cpu" "$other" "${bad:+, NON-2xx $bad}${sock:+, $sock}"
  if awk -v o="$other" -v d="$DURATION" 'BEGIN { exit !(o > 0.1 * d) }'; then
    echo "# WARNING: other processes used $other CPU s during this run (> 10% of a CPU); its figures are skewed"
  fi
  if [[ -n $bad || -n $sock ]]; then FAULTS=1; sed 's/^/#   /' "$f"; fi
}
for ((rep = 1; rep <= REPEATS; rep++)); do
  for run in one1 one64 rr64; do
    c=64 script=()
    [[ $run == one1 ]] && c=1
    [[ $run == rr64 ]] && script=(-s "$WORK/rr.lua")
    bench "$run" ramsecrets "$RS_PORT" "$RS_PID" "$c" "${script[@]}"
    bench "$run" agent "$AGENT_PORT" "$AGENT_PID" "$c" "${script[@]}"
  done
done
read -r RS_RSS RS_HWM < <(rss "$RS_PID")
read -r AG_RSS AG_HWM < <(rss "$AGENT_PID")

# --- stop both; anything ramsecrets logged at warn or above is shown --------
for pid in "$RS_PID" "$AGENT_PID"; do bench_stop "$pid"; bench_forget "$pid"; done
if [[ -s $WORK/ramsecrets.log ]]; then
  echo "# ramsecrets log (--log-level warn):"
  sed 's/^/#   /' "$WORK/ramsecrets.log"
fi

# --- report -----------------------------------------------------------------
{
  for k in one1 one64 rr64; do
    for t in ramsecrets agent; do
      # shellcheck disable=SC2086 # one value per repeat
      echo "$k $t $(bench_median ${RPS[$k/$t]}) $(bench_median ${P50[$k/$t]}) $(bench_median ${P99[$k/$t]}) $(bench_median ${CPU_US[$k/$t]})"
    done
  done
} | awk -v d="$DURATION" -v reps="$REPEATS" -v n="$SECRETS" -v rr="$RS_RSS" -v rh="$RS_HWM" -v ar="$AG_RSS" -v ah="$AG_HWM" '
  { rps[$1, $2] = $3; p50[$1, $2] = $4; p99[$1, $2] = $5; cpu[$1, $2] = $6; runs[++m] = $1 SUBSEP $2 }
  END {
    printf "\nGET /secretsmanager/get (cached), wrk -t1 -d%ds --latency; one = bench/p0000, rr = %d secrets round-robin; medians of %d repeats\n\n", d, n, reps
    f = "%-6s %-12s %4s %10s %10s %10s %14s\n"
    printf f, "run", "tool", "c", "req/s", "p50 (us)", "p99 (us)", "CPU/req (us)"
    for (i = 1; i <= m; i++) {
      split(runs[i], a, SUBSEP)
      printf "%-6s %-12s %4d %10.0f %10.1f %10.1f %14.2f\n", a[1], a[2], (a[1] == "one1" ? 1 : 64), rps[a[1], a[2]], p50[a[1], a[2]], p99[a[1], a[2]], cpu[a[1], a[2]]
    }
    printf "\nmemory after all runs, %d secrets cached: ramsecrets VmRSS %.1f MiB (peak %.1f), agent VmRSS %.1f MiB (peak %.1f)\n", n, rr / 1024, rh / 1024, ar / 1024, ah / 1024
    g = "%-34s %9.2fx %10s %s\n"
    printf "\n%-34s %10s %10s %s\n", "ratio ramsecrets/agent", "value", "goal", "met"
    split("one1 one64 rr64", ks, " ")
    for (i = 1; i <= 3; i++) {
      k = ks[i]; c = (k == "one1") ? "c=1" : "c=64"; w = (k == "rr64") ? "rr" : "one"
      t = rps[k, "ramsecrets"] / rps[k, "agent"]; q = p99[k, "ramsecrets"] / p99[k, "agent"]; u = cpu[k, "ramsecrets"] / cpu[k, "agent"]
      printf g, "CPU per request, " w " " c, u, "<= 0.7x", (u <= 0.7 ? "yes" : "NO")
      printf g, "throughput, " w " " c, t, (c == "c=64" ? ">= 1.2x" : ""), (c == "c=64" ? (t >= 1.2 ? "yes" : "NO") : "")
      printf g, "p99 latency, " w " " c, q, (c == "c=64" ? "<= 0.8x" : ""), (c == "c=64" ? (q <= 0.8 ? "yes" : "NO") : "")
    }
    printf g, "memory (peak VmHWM)", rh / ah, "<= 0.5x", (rh / ah <= 0.5 ? "yes" : "NO")
  }'

((FAULTS == 0)) || die "failed requests (see above)"
