#!/usr/bin/env bash
# A complete rotation drill on this machine, with throw-away servers: PostgreSQL,
# an OpenBao dev server with a database static role, `ramsecrets run` as the
# sidecar (signalling the app on change), the example app, and
# `ramsecrets drill` under load. Extra arguments go to `ramsecrets drill`
# (try --json, or NO_RELOAD=1 to start the app without its reconnect handler).
# Needs the test bed (`bash scripts/testbed`) and a built binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${RAMSECRETS:-target/release/ramsecrets}
[ -x "$bin" ] || bin=target/debug/ramsecrets
[ -x "$bin" ] || { echo "build ramsecrets first: cargo build --release" >&2; exit 1; }
venv=$PWD/.venv

work=$(mktemp -d /tmp/drill-demo.XXXXXX)
out=$(mktemp -d /dev/shm/drill-demo.XXXXXX)
pids=()
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work" "$out"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.2; done; echo "no answer from $1" >&2; exit 1; }
pg_port=$(port) bao_port=$(port) app_port=$(port) health=$(port)

# PostgreSQL, with the role the app logs in as.
chmod 777 "$work"
echo pgroot >"$work/pw" && chmod 644 "$work/pw"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -w start >/dev/null
PGPASSWORD=pgroot psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc "CREATE ROLE app LOGIN PASSWORD 'set-by-vault-soon'"

# OpenBao: the database engine manages the role's password.
"$venv/bin/bao" server -dev -dev-root-token-id=demo-root -dev-listen-address="127.0.0.1:$bao_port" >"$work/bao.log" 2>&1 &
pids+=($!)
export BAO_ADDR="http://127.0.0.1:$bao_port" BAO_TOKEN=demo-root
wait_for "$BAO_ADDR/v1/sys/health"
"$venv/bin/bao" secrets enable database >/dev/null
"$venv/bin/bao" write database/config/pg plugin_name=postgresql-database-plugin allowed_roles=app \
  connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:$pg_port/postgres?sslmode=disable" \
  username=postgres password=pgroot >/dev/null
"$venv/bin/bao" write database/static-roles/app db_name=pg username=app rotation_period=24h >/dev/null
echo demo-root >"$work/token"

cat >"$work/ramsecrets.yaml" <<EOF
sources:
  - vault: { address: "$BAO_ADDR", auth: { token_file: $work/token } }
output: { dir: $out }
refresh: { interval: 5s }
health: { listen: "127.0.0.1:$health" }
secrets:
  - name: db
    read: database/static-creds/app
    file: db.json
    format: json
    on_change:
      - signal: { pid_file: $work/app.pid, signal: HUP }
EOF
"$bin" run --config "$work/ramsecrets.yaml" >"$work/sidecar.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$health/readyz"

app_args=()
[ -n "${NO_RELOAD:-}" ] && app_args=(--no-reload --max-conn-age 1)
"$venv/bin/python" examples/drill-app/app.py --credentials "$out/db.json" --listen "127.0.0.1:$app_port" \
  --db-port "$pg_port" --pid-file "$work/app.pid" "${app_args[@]}" >"$work/app.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$app_port/healthz"

url="http://127.0.0.1:$app_port/healthz"
status=0
"$bin" drill --config "$work/ramsecrets.yaml" --secret db --check-url "$url" --load "$url" --rps 50 "$@" || status=$?
exit "$status"
