#!/usr/bin/env bash
# bench/aws_calls.sh: AWS API calls per refresh cycle of `ramsecrets init`
# for 1, 20, 45 and 200 secrets, counted on the wire.
#
# How: the integration test `calls_per_refresh_cycle_are_one_per_twenty_secrets`
# (tests/init_aws.rs) starts a real moto server on a free 127.0.0.1 port,
# seeds 200 secrets, puts a recording HTTP proxy in front of it (the source's
# `endpoint`), runs `ramsecrets init` once per size and counts the requests
# per operation (X-Amz-Target) that reached the proxy. It asserts
# ⌈N/20⌉ BatchGetSecretValue calls and nothing else, and prints the table.
#
# Reference (DESIGN.md): the AWS Secrets Manager Agent and the CSI provider
# make one call per secret per refresh; the goal is ≤ ⌈N/20⌉ + changed secrets.
# Secrets with `previous: true`, a pinned `version_stage` or a `version_id`
# add one GetSecretValue each (BatchGetSecretValue cannot select a version).
#
# Usage: bash bench/aws_calls.sh    (installs the test bed first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed >/dev/null 2>&1 || bash scripts/testbed
out=$(cargo test --quiet --test init_aws calls_per_refresh_cycle -- --nocapture --test-threads=1 2>&1) || {
  printf '%s\n' "$out" >&2
  exit 1
}
printf '%s\n' "$out" | sed -n '/^AWS calls per refresh cycle/,/^ *200 /p'
echo "# reproduce: bash bench/aws_calls.sh"
