#!/usr/bin/env bash
# bench/all.sh: every benchmark of the benchmark page's table (docs/benchmarks.md),
# in one run, one after the other, each with its reference beside it, on one
# build of ramsecrets: what the table's figures come from.
#
# In order:
#   builds     with BUILDS=1: the README's first build (`cargo build --release
#              --locked` into an empty CARGO_TARGET_DIR, crates downloaded) and
#              the shipped one (`--profile dist`, likewise), each timed with GNU
#              time (wall and CPU), and both binaries' sizes; the dist binary is
#              then the one measured (without BUILDS, bench/lib.sh builds dist
#              as every script does, or RS_BIN names the binary);
#   init       bench/init.sh at N=20, 200 and 2,000 secrets (bao agent, curl);
#   sidecar    bench/sidecar.sh at N=20, 200 and 2,000 (bao agent);
#   proxy      bench/proxy.sh (the AWS Secrets Manager Agent, 1,000 secrets);
#   inject     bench/inject.sh at 200 and 1,000 reviews/s (vault-k8s);
#   heap       bench/heap.sh (heap kept per secret; the debug build, heaptrack).
# ONLY="init proxy" runs some of them. Before each, the load average is
# printed: a figure measured beside other work says so.
#
# Needs what each script needs (root, the test bed: bash scripts/testbed, the
# AWS agent in .testbed/tools, VAULT_K8S_GIT for inject where GitHub is not
# reachable, heaptrack for heap).
# Usage: BUILDS=1 bash bench/all.sh 2>&1 | tee bench-$(date +%F).log

set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
ONLY=${ONLY:-init sidecar proxy inject heap}
export CARGO_TERM_COLOR=never

die() { echo "bench/all.sh: error: $*" >&2; exit 1; }
((EUID == 0)) || die "must run as root (the benchmarks mount tmpfs)"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"

section() {
  echo
  echo "## $1 ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
}

# A build into an empty target dir; prints its wall time, CPU and binary size.
timed_build() {
  local profile=$1 dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/ramsecrets-build.XXXXXX")
  section "cargo build --profile $profile --locked into an empty target dir"
  CARGO_TARGET_DIR=$dir /usr/bin/time -f "wall %e s, CPU %U s user + %S s system, peak RSS %M KiB" \
    cargo build --profile "$profile" --locked --quiet --manifest-path "$REPO/Cargo.toml"
  echo "binary: $(stat -c %s "$dir/$profile/ramsecrets") bytes"
  BUILT=$dir
}

echo "# bench/all.sh at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo ' (with changes)')," \
  "$(nproc) cores, $(date -u '+%F %H:%M') UTC"
if [[ ${BUILDS:-0} == 1 ]]; then
  timed_build release
  rm -rf "$BUILT"
  timed_build dist
  mkdir -p "$REPO/target/dist"
  cp "$BUILT/dist/ramsecrets" "$REPO/target/dist/ramsecrets.bench"
  rm -rf "$BUILT"
  export RS_BIN=$REPO/target/dist/ramsecrets.bench
fi

for job in $ONLY; do
  case $job in
    init | sidecar)
      for n in 20 200 2000; do
        section "N=$n bash bench/$job.sh"
        N=$n bash "$REPO/bench/$job.sh"
      done
      ;;
    proxy)
      section "bash bench/proxy.sh"
      bash "$REPO/bench/proxy.sh"
      ;;
    inject)
      section "RATES=\"200 1000\" bash bench/inject.sh"
      RATES="200 1000" bash "$REPO/bench/inject.sh"
      ;;
    heap)
      # The debug build: heaptrack counts what is asked of the allocator.
      section "bash bench/heap.sh"
      RS_BIN= bash "$REPO/bench/heap.sh"
      ;;
    *) die "unknown benchmark '$job' in ONLY (init sidecar proxy inject heap)" ;;
  esac
done
section "done"
