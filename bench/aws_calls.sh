#!/usr/bin/env bash
# bench/aws_calls.sh: AWS API calls per refresh cycle, counted on the wire,
# and what they cost a fleet.
#
# 1. `ramsecrets init` for 1, 20, 45 and 200 secrets: the integration test
#    `calls_per_refresh_cycle_are_one_per_twenty_secrets` (tests/init_aws.rs)
#    starts a real moto server on a free 127.0.0.1 port, seeds 200 secrets,
#    puts a recording HTTP proxy in front of it (the source's `endpoint`),
#    runs `ramsecrets init` once per size and counts the requests per
#    operation (X-Amz-Target) that reached the proxy. It asserts ⌈N/20⌉
#    BatchGetSecretValue calls and nothing else, and prints the table.
# 2. `ramsecrets run`, a fleet: FLEET sidecars (default 300; FLEET=0 skips
#    this part), each a real process with SECRETS secrets (default 10) and a
#    refresh INTERVAL (default 10 s), its own 1 MiB tmpfs, all against one
#    moto server (tests/common/moto_server.py from the test bed's venv)
#    through the counting proxy bench/fleet_proxy.py. Over WINDOW seconds
#    (default 60) after every sidecar has written its files and one more
#    interval, it counts BatchGetSecretValue and GetSecretValue calls and the
#    secret ids the batch calls asked for. Ids per call = SECRETS means each
#    sidecar's cycle is one call (the goal: jittered schedules of one sidecar
#    share a round). It prints the calls per refresh cycle of the fleet and
#    the monthly cost at list price ($0.05 per 10,000 API calls) for 10,000
#    pods, at this interval and at the default 5 m, next to one call per
#    secret per cycle (the AWS Secrets Manager Agent and the CSI provider).
#
# Reference (DESIGN.md): the AWS Secrets Manager Agent and the CSI provider
# make one call per secret per refresh; the goal is ≤ ⌈N/20⌉ + changed secrets.
# Secrets with `previous: true`, a pinned `version_stage` or a `version_id`
# add one GetSecretValue each (BatchGetSecretValue cannot select a version).
#
# Needs (part 2): root (tmpfs), python3 with the test bed's venv.
# Usage: bash bench/aws_calls.sh     (installs the test bed first if needed)
#        FLEET=50 WINDOW=30 bash bench/aws_calls.sh
set -euo pipefail
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
FLEET=${FLEET:-300}
SECRETS=${SECRETS:-10}
INTERVAL=${INTERVAL:-10}
WINDOW=${WINDOW:-60}
PODS=10000
PRICE_PER_10K=0.05

die() { echo "bench/aws_calls.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
for v in SECRETS INTERVAL WINDOW; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number (got '${!v}')"
done
[[ $FLEET =~ ^[0-9]+$ ]] || die "FLEET must be a whole number (got '$FLEET')"
((SECRETS <= 20)) || die "SECRETS must be at most 20 (one batch call)"
cd "$REPO"
bash scripts/testbed >/dev/null 2>&1 || bash scripts/testbed

# --- 1. init, by size ---------------------------------------------------------
out=$(cargo test --quiet --test init_aws calls_per_refresh_cycle -- --nocapture --test-threads=1 2>&1) || {
  printf '%s\n' "$out" >&2
  exit 1
}
printf '%s\n' "$out" | sed -n '/^AWS calls per refresh cycle/,/^ *200 /p'
((FLEET > 0)) || { echo "# reproduce: FLEET=0 bash bench/aws_calls.sh"; exit 0; }

# --- 2. a fleet in run mode ---------------------------------------------------
((EUID == 0)) || die "the fleet part must run as root (it mounts tmpfs); FLEET=0 skips it"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_no_proxy
bench_scratch
bench_build
bench_start_moto
bench_seed_aws "$SECRETS" "fleet/s%d"
kill -0 "$MOTO_PID" || die "moto exited: $(cat "$WORK/moto.log")"
PPORT=$(bench_free_port)
python3 "$REPO/bench/fleet_proxy.py" --listen "$PPORT" --upstream "$MOTO_PORT" --out "$WORK/rate.csv" \
  --ops BatchGetSecretValue,GetSecretValue >"$WORK/proxy.log" 2>&1 &
bench_bg "$!"
for _ in $(seq 100); do grep -q ready "$WORK/proxy.log" && break; sleep 0.1; done
grep -q ready "$WORK/proxy.log" || die "the proxy did not start: $(cat "$WORK/proxy.log")"

echo "# starting $FLEET sidecars x $SECRETS AWS secrets, refresh ${INTERVAL}s, against moto through a counting proxy"
PIDS=()
for ((i = 0; i < FLEET; i++)); do
  d=$WORK/sc/$(printf '%04d' "$i")
  mkdir -p "$d"
  bench_tmpfs size=1m,mode=0700 "$d/out"
  {
    printf 'sources:\n  - aws_secrets_manager:\n      region: us-east-1\n      endpoint: http://127.0.0.1:%s\n' "$PPORT"
    printf 'output:\n  dir: %s\nrefresh: { interval: %ss }\nsecrets:\n' "$d/out" "$INTERVAL"
    for ((k = 0; k < SECRETS; k++)); do printf '  - name: s%d\n    secret_id: fleet/s%d\n' "$k" "$k"; done
  } >"$d/config.yaml"
  HOME=$WORK "$RS" run --config "$d/config.yaml" --log-level warn >"$d/log" 2>&1 &
  PIDS+=($!)
  bench_bg "$!"
done
for _ in $(seq 600); do
  done_n=$(find "$WORK/sc" -path '*/out/s0' | wc -l)
  ((done_n == FLEET)) && break
  sleep 0.2
done
((done_n == FLEET)) || die "only $done_n of $FLEET sidecars wrote their files"
sleep "$INTERVAL"
t0=$EPOCHREALTIME
echo "# counting for $WINDOW s"
sleep "$WINDOW"
t1=$EPOCHREALTIME
alive=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
sleep 2
python3 - "$WORK/rate.csv" "$t0" "$t1" <<PY
import csv, sys
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
# Whole seconds inside the window (seconds without a request have no row).
first, last = int(t0) + 1, int(t1)
rows = [r for r in csv.DictReader(open(sys.argv[1])) if first <= int(r["second"]) < last]
secs = last - first
batch = sum(int(r["BatchGetSecretValue"]) for r in rows)
single = sum(int(r["GetSecretValue"]) for r in rows)
ids = sum(int(r["ids"]) for r in rows)
N, M, INTERVAL, PODS, PRICE = $FLEET, $SECRETS, $INTERVAL, $PODS, $PRICE_PER_10K
per_call = ids / batch if batch else 0
# Each secret is read once a cycle, so a sidecar's cycle costs M / (ids per
# call) batch calls; the count over the window is a cross-check (its edges
# cut cycles).
per_sidecar = M / per_call + single / (N * secs / INTERVAL) if per_call else float("nan")
per_cycle = per_sidecar * N
print(f"\\nAWS calls of {N} sidecars x {M} secrets in run mode, refresh {INTERVAL} s, over {secs} s (alive: $alive/{N}):")
print(f"  BatchGetSecretValue {batch}, GetSecretValue {single}; secret ids per batch call {per_call:.2f} (of {M})")
print(f"  calls per refresh cycle of the fleet: {per_cycle:.0f} (goal {N}: one per sidecar); per sidecar {per_sidecar:.2f}")
print(f"  cross-check: {batch + single} calls in {secs / INTERVAL:.1f} intervals = {(batch + single) / (secs / INTERVAL):.0f} a cycle")
month = 30 * 86400
def cost(calls_per_pod_cycle, interval):
    return PODS * calls_per_pod_cycle * month / interval * PRICE / 10000
print(f"monthly cost at \${PRICE} per 10,000 calls for {PODS:,} pods with {M} secrets each (30 days):")
print(f"  {'refresh':>8}  {'ramsecrets (measured)':>22}  {'one call per secret':>20}")
for interval, label in ((INTERVAL, f"{INTERVAL} s"), (300, "5 m")):
    print(f"  {label:>8}  {'\$' + format(cost(per_sidecar, interval), ',.0f'):>22}  {'\$' + format(cost(M, interval), ',.0f'):>20}")
PY
echo "# reproduce: FLEET=$FLEET SECRETS=$SECRETS INTERVAL=$INTERVAL WINDOW=$WINDOW bash bench/aws_calls.sh"
