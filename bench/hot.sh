#!/usr/bin/env bash
# bench/hot.sh: writes hot-symbols.txt, the functions a steady sidecar and
# proxy run, which the linker lays out together (build.rs passes the file to
# rust-lld as --symbol-ordering-file).
#
# Why: the kernel maps a program's code in 64 KiB chunks (fault-around), so a
# sidecar whose few hundred steady-state functions are spread over the binary
# keeps megabytes of it resident; laid out together they fit in a few chunks.
#
# How: the dist profile is built with its symbols (CARGO_PROFILE_DIST_STRIP=
# false, which changes no symbol name) into .testbed/hot; then, each under
# callgrind with its counters zeroed once it is ready, so that start-up does
# not count:
#   run    200 KV v2 secrets from an OpenBao dev server, 2 s refreshes for 7 s,
#          one secret changed after 3 s (rendered, written, logged);
#   file   the same with 200 secrets of a `file` source;
#   aws    `run` with 100 AWS secrets from moto (batched), two refreshes;
#   proxy  `proxy` with 100 AWS secrets, each asked for 3 times with curl at
#          /secretsmanager/get and at /v1/<secretId>;
# every function with a cost in any of them is listed, by its symbol (mangled:
# the name in the object files), hottest first. Symbols of another build
# (other dependency versions, another profile) are ignored by the linker, so a
# stale list costs only memory; rerun this after a dependency update.
#
# Needs: root, the test bed (bash scripts/testbed), valgrind, curl, python3.
# Usage: bash bench/hot.sh

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench/hot.sh: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
((EUID == 0)) || die "must run as root (it mounts tmpfs)"
command -v callgrind_control >/dev/null || die "valgrind is required"
[[ -x $REPO/.venv/bin/python ]] || die "no test bed venv: run bash scripts/testbed"
bench_clean_env

TARGET=$REPO/.testbed/hot
echo "# building the dist profile with symbols into $TARGET"
CARGO_TARGET_DIR=$TARGET CARGO_PROFILE_DIST_STRIP=false \
  cargo build --profile dist --locked --quiet --manifest-path "$REPO/Cargo.toml"
RS=$TARGET/dist/ramsecrets
bench_scratch
bench_bao_binary

# profile NAME -- COMMAND...: runs COMMAND under callgrind until its log says
# it is ready, zeroes the counters; the caller drives it, then calls `dumped`.
profile() {
  local name=$1 log=$WORK/$1.log
  shift 2
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/cg.$name" "$@" >"$log" 2>&1 &
  PROFILED=$!
  bench_bg "$PROFILED"
  for _ in $(seq 1 600); do
    grep -q 'ready; keeping secrets fresh' "$log" && break
    kill -0 "$PROFILED" 2>/dev/null || { cat "$log" >&2; die "$name exited"; }
    sleep 0.2
  done
  grep -q 'ready; keeping secrets fresh' "$log" || die "$name: not ready"
  callgrind_control -z "$PROFILED" >/dev/null
}
dumped() {
  callgrind_control -d "$1" "$PROFILED" >/dev/null
  sleep 1
  bench_stop "$PROFILED"
}

# run: OpenBao KV, as bench/sidecar.sh.
bench_start_bao
bench_seed 200
OUT_RS=$WORK/out OUT_BAO=$WORK/out-bao
bench_tmpfs size=16m,mode=0700 "$OUT_RS"
bench_kv_configs 200 'refresh: { interval: 2s }' ''
profile run -- "$RS" run --config "$RS_CONF"
sleep 3
# A new version: the changed secret is rendered, written and logged.
curl -fsS -o /dev/null -H "X-Vault-Token: $TOKEN" -X POST -d '{"data":{"username":"user-010","password":"new"}}' "$ADDR/v1/secret/data/bench/s010"
sleep 4
dumped run

# file: the same secrets from a file.
{
  printf 'sources:\n  - name: dev\n    file: { path: %s/dev.yaml }\n' "$WORK"
  printf 'output: { dir: %s, mode: "0400" }\nrefresh: { interval: 2s }\nsecrets:\n' "$OUT_RS"
  for ((i = 0; i < 200; i++)); do printf '  - name: f%03d\n    kv: { mount: secret, path: app/f%03d }\n    format: json\n' "$i" "$i"; done
} >"$WORK/file.yaml"
for ((i = 0; i < 200; i++)); do printf 'secret/app/f%03d: { username: u%03d, password: p%03d }\n' "$i" "$i" "$i"; done >"$WORK/dev.yaml"
profile file -- "$RS" run --config "$WORK/file.yaml"
sleep 3
sed -i 's/password: p010/password: new/' "$WORK/dev.yaml"
sleep 4
dumped file

# aws and proxy: moto.
bench_start_moto
bench_seed_aws 100 "hot/p%03d"
{
  printf 'sources:\n  - name: aws\n    aws_secrets_manager: { region: us-east-1, endpoint: "%s" }\n' "$MOTO_URL"
  printf 'output: { dir: %s, mode: "0400" }\nrefresh: { interval: 2s }\nsecrets:\n' "$OUT_RS"
  for ((k = 0; k < 100; k++)); do printf '  - name: a%03d\n    secret_id: hot/p%03d\n' "$k" "$k"; done
} >"$WORK/aws.yaml"
profile aws -- "$RS" run --config "$WORK/aws.yaml"
sleep 5
dumped aws

PORT=$(bench_free_port)
{
  printf 'sources:\n  - name: aws\n    aws_secrets_manager: { region: us-east-1, endpoint: "%s" }\n' "$MOTO_URL"
  printf 'proxy: { listen: "127.0.0.1:%s", token_file: %s/proxy-token }\nsecrets:\n' "$PORT" "$WORK"
  for ((k = 0; k < 100; k++)); do printf '  - name: a%03d\n    secret_id: hot/p%03d\n' "$k" "$k"; done
} >"$WORK/proxy.yaml"
profile proxy -- "$RS" proxy --config "$WORK/proxy.yaml"
T=$(cat "$WORK/proxy-token")
for ((k = 0; k < 300; k++)); do
  printf -v id 'hot/p%03d' $((k % 100))
  curl -fsS -o /dev/null -H "X-Aws-Parameters-Secrets-Token: $T" "http://127.0.0.1:$PORT/secretsmanager/get?secretId=$id"
  curl -fsS -o /dev/null -H "X-Aws-Parameters-Secrets-Token: $T" "http://127.0.0.1:$PORT/v1/$id"
done
dumped proxy

python3 - "$WORK" "$REPO/hot-symbols.txt" <<'PY'
import collections, glob, re, sys
work, out = sys.argv[1], sys.argv[2]
cost = collections.Counter()
# Callgrind's format: `fn=(id) name` starts a function's self costs, `cfn=`
# names a callee, and the cost line after `calls=` is the call's, not self.
for path in glob.glob(f"{work}/cg.*.*"):
    names, fn, call = {}, None, False
    for line in open(path, errors="replace"):
        if line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("fn="):
                fn = names.get(m.group(1))
        elif line.startswith("calls="):
            call = True
        elif line[:1].isdigit() or line[:1] in "+-":
            if call:
                call = False
            elif fn:
                cost[fn] += int(line.split()[1])
syms = [s for s, c in cost.most_common() if c > 0 and s.startswith(("_ZN", "_R"))]
with open(out, "w") as f:
    f.write("".join(s + "\n" for s in syms))
print(f"# {len(syms)} symbols in {out}")
PY
