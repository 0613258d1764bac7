#!/usr/bin/env bash
# Delegated-login latency against a direct go-ldap bind to the same Samba AD DC (issue #6:
# login p50 at most 1 ms over the direct bind). Starts a private DC with scripts/samba-ad.sh in
# its own network namespace (prefork process model, as a real deployment would run it), runs
# bench/adbench inside that namespace against ldaps://127.0.0.1:636, and stops the DC.
# Loopback only. Root (network namespace, samba).
#
# usage: bench/adbench/run.sh
# env: N=2000 (measured rounds; one bind of each kind per round)  WARMUP=200
#      SAMBA_MODEL=prefork|single
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-2000}"; WARMUP="${WARMUP:-200}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/adbench.XXXXXX")"
DC="$WORK/dc"
cleanup() {
  scripts/samba-ad.sh stop "$DC" >/dev/null 2>&1 || true
  rm -rf "$WORK" "$DC.lock"
}
trap cleanup EXIT

go build -o "$WORK/adbench" ./bench/adbench
NETNS=1 SAMBA_MODEL="${SAMBA_MODEL:-prefork}" SAMBA_TEMPLATE="${TMPDIR:-/tmp}/gatewayd-samba-ad-template" \
  scripts/samba-ad.sh start "$DC" >"$WORK/dc.env"
# shellcheck disable=SC1091
. "$WORK/dc.env"
echo "Samba AD DC pid $SAMBA_PID (model ${SAMBA_MODEL:-prefork}); $(nproc) cores; $(go version)"
nsenter --net="$SAMBA_NETNS" "$WORK/adbench" -url ldaps://127.0.0.1:636 -ca "$SAMBA_CA" -realm "$SAMBA_REALM" \
  -user alice -password 'Alice-Passw0rd!' -n "$N" -warmup "$WARMUP"
