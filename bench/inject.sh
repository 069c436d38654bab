#!/usr/bin/env bash
# bench/inject.sh: admission latency, CPU and memory of `ramsecrets inject`
# side by side with HashiCorp's vault-k8s injector (v1.7.6), in one run.
#
# What it measures, for each rate in RATES (default "200 1000" reviews/s),
# REPEATS times (default 3), each injector a fresh process in turn (the order
# alternates between repeats):
#   - the time from the moment each AdmissionReview is due to the moment its
#     whole answer (a JSONPatch) has been read, open-loop for DURATION seconds
#     (default 20) after a warm-up second: p50 and p99;
#   - CPU per review: the injector's user+system time over the run (all its
#     threads, /proc/<pid>/stat), divided by the reviews sent;
#   - memory: VmRSS after the run (and the peak, VmHWM), /proc/<pid>/status.
# Then the median of the repeats for each, and ramsecrets / vault-k8s.
#
# How:
#   - ramsecrets is built with `cargo build --profile dist` (bench/lib.sh;
#     RS_BIN=path uses another build);
#   - vault-k8s v1.7.6 is built once with the host's `go` from a clone of
#     VAULT_K8S_GIT (default GitHub; a mirror will do) checked against the
#     tag's commit, its dependencies through the Go module proxy, and kept in
#     BENCH_CACHE (default .testbed/bench) with its module and build caches;
#   - both serve the same certificate on a free 127.0.0.1 port and answer the
#     same review: a pod annotated for vault-k8s (two secrets, one with a
#     template; a role; the service-account token volume the API server adds),
#     which ramsecrets takes with `inject.compat: vault-k8s`;
#   - vault-k8s insists on an in-cluster Kubernetes client (it lists and
#     watches MutatingWebhookConfigurations before it serves); it runs in a
#     private mount namespace whose /var/run/secrets holds a token and CA for
#     a stand-in API server (Python, loopback) that answers those with an empty
#     list; ramsecrets is told `inject.kubernetes_version` and calls nothing;
#   - the client, bench/inject_load.go (built with the same `go`), sends as the
#     API server does: Go's net/http over TLS, HTTP/2 when the injector offers
#     it by ALPN (both do), each review on its own stream, open-loop;
#     HTTP1=1 sends HTTP/1.1 only (an API server with HTTP/2 turned off).
# The machine is shared: the load average is printed; figures above 1-2 per
# CPU include scheduling delays.
#
#   bash bench/inject.sh        RATES=200 REPEATS=1 DURATION=10 bash bench/inject.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "bench/inject.sh: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

RATES=${RATES:-200 1000}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-20}
CACHE=${BENCH_CACHE:-$REPO/.testbed/bench}
VAULT_K8S_VERSION=v1.7.6
VAULT_K8S_COMMIT=fbc5b1f0cd4d1c7dd5a8830e32c8ed636d7318d7
# Where to clone it from (a mirror: a local git directory will do).
VAULT_K8S_GIT=${VAULT_K8S_GIT:-https://github.com/hashicorp/vault-k8s}
command -v go >/dev/null || die "go is needed to build vault-k8s and the load client"
[[ $(id -u) == 0 ]] || die "run as root: vault-k8s runs in a private mount namespace"
bench_clean_env
bench_scratch
bench_build

VK8S=$CACHE/vault-k8s-$VAULT_K8S_VERSION/vault-k8s
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/cache CGO_ENABLED=0 GOFLAGS=-buildvcs=false
if [[ ! -x $VK8S ]]; then
  # Its source from git, checked against the tag's commit (the module proxy may
  # not serve vault-k8s itself); its dependencies through the module proxy.
  echo "# building vault-k8s $VAULT_K8S_VERSION from $VAULT_K8S_GIT into $(dirname "$VK8S") (once)"
  git clone -q --depth 1 --branch "$VAULT_K8S_VERSION" "$VAULT_K8S_GIT" "$WORK/vault-k8s"
  [[ $(git -C "$WORK/vault-k8s" rev-parse HEAD) == "$VAULT_K8S_COMMIT" ]] ||
    die "$VAULT_K8S_GIT's $VAULT_K8S_VERSION is not commit $VAULT_K8S_COMMIT"
  mkdir -p "$(dirname "$VK8S")"
  (cd "$WORK/vault-k8s" && go build -trimpath -o "$VK8S.tmp" . && mv "$VK8S.tmp" "$VK8S")
fi
VK8S=$(readlink -f -- "$VK8S")
go build -o "$WORK/inject-load" "$REPO/bench/inject_load.go"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 1 -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$WORK/tls.crt" 2>/dev/null

# The review: a pod as the API server sends it to the webhooks (its
# service-account volume already added), annotated for vault-k8s.
python3 - "$WORK/review.json" <<'EOF'
import json, sys
mount = {"name": "kube-api-access-x7k2p", "readOnly": True,
         "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "bench", "namespace": "apps", "annotations": {
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "app",
        "vault.hashicorp.com/agent-inject-secret-db": "secret/data/app/db",
        "vault.hashicorp.com/agent-inject-template-db":
            '{{- with secret "secret/data/app/db" -}}\n'
            'postgres://{{ .Data.data.username }}:{{ .Data.data.password }}@db:5432/app\n'
            '{{- end }}\n',
        "vault.hashicorp.com/agent-inject-secret-api": "secret/data/app/api"}},
    "spec": {
        "serviceAccountName": "app",
        "initContainers": [{"name": "migrate", "image": "migrate:1", "volumeMounts": [mount]}],
        "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}],
                        "volumeMounts": [mount]}],
        "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]},
}
review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "0a8f3c6e-5b7d-4e21-9f3a-2c1d0e9b8a71",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "apps", "operation": "CREATE", "name": "bench",
    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
    "object": pod, "oldObject": None, "dryRun": False,
    "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}}
open(sys.argv[1], "w").write(json.dumps(review))
EOF

# ramsecrets' config.
RS_PORT=$(bench_free_port)
cat >"$WORK/inject.yaml" <<EOF
sources:
  - name: vault
    vault:
      address: https://vault.vault.svc:8200
      auth: { kubernetes: { role: default } }
inject:
  listen: 127.0.0.1:$RS_PORT
  tls: { cert_file: $WORK/tls.crt, key_file: $WORK/tls.key }
  image: ramsecrets:bench
  kubernetes_version: "1.35"
  compat: vault-k8s
EOF
"$RS" check --config "$WORK/inject.yaml" >/dev/null

# vault-k8s' stand-in API server and its in-cluster token and CA.
API_PORT=$(bench_free_port)
python3 - "$API_PORT" "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/apiserver.log" 2>&1 <<'EOF' &
import http.server, json, ssl, sys, time
port, crt, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
EMPTY = json.dumps({"kind": "MutatingWebhookConfigurationList",
    "apiVersion": "admissionregistration.k8s.io/v1",
    "metadata": {"resourceVersion": "1"}, "items": []}).encode()
class Api(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path != "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations":
            self.send_response(404); self.send_header("content-length", "0"); self.end_headers(); return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        if "watch=true" in query:  # nothing changes: hold the watch open
            self.end_headers(); self.wfile.flush(); time.sleep(600); return
        self.send_header("content-length", str(len(EMPTY))); self.end_headers(); self.wfile.write(EMPTY)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(crt, key)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Api)
server.daemon_threads = True
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
bench_bg $!
mkdir "$WORK/sa"
printf 'bench-token' >"$WORK/sa/token"
printf 'vault' >"$WORK/sa/namespace"
cp "$WORK/ca.crt" "$WORK/sa/ca.crt"
VK_PORT=$(bench_free_port)

rss() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# cpu PID: user+system clock ticks of PID, all its threads.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# start WHO: starts that injector, waits for it to answer; sets PID and PORT.
start() {
  local log=$WORK/$1.log ready exe
  case $1 in
    ramsecrets)
      PORT=$RS_PORT ready=/healthz exe=$RS
      "$RS" inject --config "$WORK/inject.yaml" --log-level warn >"$log" 2>&1 &
      ;;
    vault-k8s)
      PORT=$VK_PORT ready=/health/ready exe=$VK8S
      # /var/run is /run here: a tmpfs over it, in this process's namespace only.
      unshare --mount --propagation private -- sh -c '
        mount -t tmpfs -o size=1m tmpfs /run &&
        mkdir -p /run/secrets/kubernetes.io &&
        cp -r "$1" /run/secrets/kubernetes.io/serviceaccount &&
        shift && exec "$@"' sh "$WORK/sa" \
        env KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$API_PORT" \
        "$VK8S" agent-inject -listen "127.0.0.1:$PORT" -log-level warn \
        -tls-cert-file "$WORK/tls.crt" -tls-key-file "$WORK/tls.key" \
        -vault-address https://vault.vault.svc:8200 >"$log" 2>&1 &
      ;;
  esac
  PID=$!
  bench_bg "$PID"
  for _ in $(seq 300); do
    curl -sf -o /dev/null --cacert "$WORK/ca.crt" "https://127.0.0.1:$PORT$ready" && break
    kill -0 "$PID" 2>/dev/null || { cat "$log" >&2; die "$1 exited"; }
    sleep 0.1
  done
  curl -sf -o /dev/null --cacert "$WORK/ca.crt" "https://127.0.0.1:$PORT$ready" || { cat "$log" >&2; die "$1 did not start"; }
  [[ $(readlink -f "/proc/$PID/exe") == "$exe" ]] || die "pid $PID is not $exe"
}

echo "# ramsecrets: $RS"
echo "# vault-k8s $VAULT_K8S_VERSION: $VK8S"
echo "# rates: $RATES reviews/s, ${DURATION}s each after a 1 s warm-up, $REPEATS repeats; load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
printf '%-10s %5s %3s %8s %9s %9s %9s %12s %10s %10s %4s\n' \
  injector rate rep proto p50_ms p99_ms max_ms cpu_us/review rss_kib hwm_kib bad
: >"$WORK/results"
TICK=$(getconf CLK_TCK)
for rate in $RATES; do
  for rep in $(seq "$REPEATS"); do
    order="ramsecrets vault-k8s"
    ((rep % 2 == 0)) && order="vault-k8s ramsecrets"
    for who in $order; do
      start "$who"
      c0=$(cpu "$PID")
      out=$("$WORK/inject-load" -url "https://127.0.0.1:$PORT/mutate" -ca "$WORK/ca.crt" \
        -review "$WORK/review.json" -rate "$rate" -duration "$DURATION" ${HTTP1:+-http1})
      c1=$(cpu "$PID")
      line=$(python3 - "$who" "$rate" "$rep" "$out" "$((c1 - c0))" "$TICK" "$(rss "$PID" VmRSS)" "$(rss "$PID" VmHWM)" <<'EOF'
import json, sys
who, rate, rep, out, ticks, tick, rss, hwm = sys.argv[1:]
r = json.loads(out)
sent = r["requests"] + r["bad"] + int(float(rate))  # the warm-up second too
cpu_us = int(ticks) / int(tick) * 1e6 / sent
print(f"{who:<10} {rate:>5} {rep:>3} {r['proto'] or '-':>8} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} "
      f"{r['max_ms']:9.2f} {cpu_us:12.1f} {rss:>10} {hwm:>10} {r['bad']:>4}")
if r["bad"]:
    print(f"# {who}: first bad answer: {r['first_bad']}", file=sys.stderr)
EOF
)
      echo "$line" | tee -a "$WORK/results"
      bench_stop "$PID"
      bench_forget "$PID"
    done
  done
done

echo "# medians of the repeats, and ramsecrets / vault-k8s; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cols = {"p50_ms": 4, "p99_ms": 5, "cpu_us/review": 7, "rss_kib": 8}
print(f"{'rate':>5} {'figure':<14} {'ramsecrets':>11} {'vault-k8s':>11} {'ratio':>7}")
for rate in sorted({int(r[1]) for r in rows}):
    for name, i in cols.items():
        med = {w: statistics.median(float(r[i]) for r in rows if r[0] == w and int(r[1]) == rate)
               for w in ("ramsecrets", "vault-k8s")}
        ratio = med["ramsecrets"] / med["vault-k8s"] if med["vault-k8s"] else float("nan")
        print(f"{rate:>5} {name:<14} {med['ramsecrets']:11.2f} {med['vault-k8s']:11.2f} {ratio:6.2f}x")
bad = sum(int(r[10]) for r in rows)
if bad:
    sys.exit(f"{bad} bad answers: see above")
EOF
