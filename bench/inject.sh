#!/usr/bin/env bash
# bench/inject.sh: admission latency and memory of `ramsecrets inject`.
#
# What it measures: the time from the moment each AdmissionReview is due to
# the moment its whole answer (a JSONPatch) has been read, at a fixed rate of
# RATE requests/s (default 200) for DURATION seconds (default 20), over four
# keep-alive HTTPS connections; p50, p99 and max of those times; and the
# injector's resident set size (VmRSS, and the peak VmHWM, from
# /proc/<pid>/status) after start-up and after the run.
#
# How:
#   - ramsecrets is built with `cargo build --profile dist` (bench/lib.sh);
#   - a CA and a serving certificate for 127.0.0.1 are made with openssl;
#   - the injector runs with `inject.kubernetes_version: "1.35"` (no API
#     server needed), a Vault and an AWS source, and listens on a free
#     127.0.0.1 port;
#   - the client is Python's standard library (http.client over ssl, one
#     thread per connection); requests are scheduled open-loop (a late answer
#     does not delay the next request's schedule, and counts from when the
#     request was due), and every answer is checked: HTTP 200, allowed, a
#     patch. The review is a pod with three secrets (KV, a template over a
#     logical read, AWS), one app container and one init container.
#   The times include the Python client's own work (a few hundred
#   microseconds a request on these machines), so they are upper bounds.
# Goal (from the design): p99 under 5 ms at 200 requests/s, under 15 MiB RSS.
#
#   bash bench/inject.sh            RATE=400 DURATION=30 bash bench/inject.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "bench/inject.sh: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

RATE=${RATE:-200}
DURATION=${DURATION:-20}
bench_clean_env
bench_scratch
bench_build

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 1 -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$WORK/tls.crt" 2>/dev/null

PORT=$(bench_free_port)
cat >"$WORK/inject.yaml" <<EOF
sources:
  - name: vault
    vault:
      address: https://vault.vault.svc:8200
      auth: { kubernetes: { role: default } }
  - name: aws
    aws_secrets_manager: { region: eu-west-1 }
inject:
  listen: 127.0.0.1:$PORT
  tls: { cert_file: $WORK/tls.crt, key_file: $WORK/tls.key }
  image: ramsecrets:bench
  kubernetes_version: "1.35"
EOF
"$RS" check --config "$WORK/inject.yaml" >/dev/null
"$RS" inject --config "$WORK/inject.yaml" --log-level warn &
PID=$!
bench_bg "$PID"
for _ in $(seq 100); do
  curl -sf --cacert "$WORK/ca.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf --cacert "$WORK/ca.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null || die "the injector did not start"
[[ $(readlink -f /proc/$PID/exe) == "$RS" ]] || die "pid $PID is not $RS"
rss() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$PID/status; }
echo "# ramsecrets inject, pid $PID, RSS after start: $(rss VmRSS) KiB"

python3 - "$PORT" "$WORK/ca.crt" "$RATE" "$DURATION" <<'EOF'
import http.client, json, ssl, sys, threading, time

port, ca, rate, duration = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "bench", "annotations": {
        "ramsecrets.io/inject": "true",
        "ramsecrets.io/secret.db": "kv:secret/app/db", "ramsecrets.io/key.db": "password",
        "ramsecrets.io/secret.creds": "read:database/creds/app",
        "ramsecrets.io/template.creds": "postgres://{{ username }}:{{ password }}@db/app",
        "ramsecrets.io/secret.api": "aws:prod/api"}},
    "spec": {"initContainers": [{"name": "migrate", "image": "migrate:1"}],
             "containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]}]},
}
def review(i):
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": f"req-{i}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "apps",
        "operation": "CREATE", "name": "", "userInfo": {"username": "bench"}, "object": pod,
        "dryRun": False}}).encode()

CONNS = 4
ctx = ssl.create_default_context(cafile=ca)
total = int(rate * duration)
start = time.perf_counter() + 0.5
times, errors, lock = [], [], threading.Lock()

def worker(k):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    mine = []
    for i in range(k, total, CONNS):
        body = review(i)
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        done = time.perf_counter()
        answer = json.loads(data)["response"] if r.status == 200 else {}
        if r.status != 200 or not answer.get("allowed") or not answer.get("patch"):
            with lock:
                errors.append(f"{r.status} {data[:200]!r}")
        mine.append(done - due)
    with lock:
        times.extend(mine)

threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONNS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
times.sort()
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000
print(f"requests   {len(times)} at {rate:.0f}/s over {CONNS} connections, {len(errors)} bad answers")
print(f"latency    p50 {pct(0.50):.2f} ms   p99 {pct(0.99):.2f} ms   max {times[-1] * 1000:.2f} ms   (goal: p99 < 5 ms)")
if errors:
    print("first bad answer:", errors[0])
    sys.exit(1)
EOF
echo "memory     VmRSS $(rss VmRSS) KiB   VmHWM (peak) $(rss VmHWM) KiB   (goal: < 15 MiB = 15360 KiB)"
# The injector's own decision time (body read to answer), from its histogram:
# what the client's figures would be on an idle host, minus TLS and transport.
curl -sf --cacert "$WORK/ca.crt" "https://127.0.0.1:$PORT/metrics" \
  | awk '/^ramsecrets_admission_duration_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[++k] = $NF; b[k] = le }
         /^ramsecrets_admission_duration_seconds_count/ { total = $NF }
         END { printf "server     decisions"; for (i = 1; i <= k; i++) printf "  <=%s s: %.2f%%", b[i], 100 * n[i] / total; print "" }'
echo "host       load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (figures above 1-2 per CPU include scheduling delays)"
