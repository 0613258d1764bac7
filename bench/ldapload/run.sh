#!/usr/bin/env bash
# LDAP binds/s and bind+search/s over 1, 4 and 16 connections, gatewayd's
# LDAP door against OpenLDAP slapd, in one run. Loopback only.
#
# usage: bench/ldapload/run.sh
# env:
#   USERS=100          users on both sides (user1..USERS / Passw0rd!N)
#   N=5000             operations per cell
#   CONNS=1,4,16
#   SLAPD_PORT=3899    slapd (mdb + memberof) started by the shared harness
#   HARNESS=/work/shared/harness
#   GW_HASH=default    gatewayd's argon2id parameters (default: t=1 64 MiB p=2)
#   GW_CACHE=15m       gatewayd's verified-credential cache (0: argon2id on every bind)
#
# gatewayd here is the LDAP door on the real store and authn, started by
# `ldapload -self USERS -serve` in its own process (no admin API, no sync
# engine). Both sides get one unmeasured warm-up bind per user first.
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-100}"
N="${N:-5000}"
CONNS="${CONNS:-1,4,16}"
SLAPD_PORT="${SLAPD_PORT:-3899}"
HARNESS="${HARNESS:-/work/shared/harness}"
GW_HASH="${GW_HASH:-default}"
GW_CACHE="${GW_CACHE:-15m}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ldapbench.XXXXXX")"
GW_PID=""

cleanup() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  "$HARNESS/stop-slapd.sh" "$WORK/slapd" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/ldapload" ./bench/ldapload

NUSERS="$USERS" "$HARNESS/start-slapd.sh" "$SLAPD_PORT" "$WORK/slapd" >/dev/null

"$WORK/ldapload" -self "$USERS" -self-hash "$GW_HASH" -self-cache "$GW_CACHE" -serve >"$WORK/gw.out" 2>&1 &
GW_PID=$!
for _ in $(seq 1 600); do
  grep -q '^serving ' "$WORK/gw.out" 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gw.out" >&2; exit 1; }
  sleep 0.1
done
GW_URL="$(sed -n 's/^serving \(ldap:[^ ]*\).*/\1/p' "$WORK/gw.out")"

"$WORK/ldapload" -name gatewayd -url "$GW_URL" -users "$USERS" -n "$N" -conns "$CONNS" \
  -user 'uid=user%d,ou=users,dc=example,dc=test' -pass 'Passw0rd!%d' -base dc=example,dc=test
"$WORK/ldapload" -name slapd -url "ldap://127.0.0.1:$SLAPD_PORT" -users "$USERS" -n "$N" -conns "$CONNS" \
  -user 'uid=user%d,ou=people,dc=example,dc=test' -pass 'Passw0rd!%d' -base dc=example,dc=test | tail -n +2
