#!/usr/bin/env bash
# PAP Access-Requests/s, p50 and p99 at 50 and 200 outstanding, cold and
# warm, against gatewayd and FreeRADIUS in the same run. Loopback only.
#
# usage: bench/radiusload/run.sh
# env:
#   GW_CPUPROFILE=FILE  write a CPU profile of gatewayd for the whole run
#   USERS=200          users per cold pass (each logs in once: every verify is an argon2id hash)
#   N=100000           requests per warm pass (users repeat: gatewayd's verified-credential cache)
#   GW_PORT=18120      gatewayd's RADIUS port (the bench starts the real daemon from this
#                      checkout with a private data dir, users user1..user(2*USERS) /
#                      password1.., default argon2id t=1 64 MiB p=2, credential cache 15m)
#   FR_PORT=21812      FreeRADIUS port (also uses FR_PORT+1, +2)
#   SECRET=testing123
#
# FreeRADIUS runs with `-f`, reject_delay 0, max_requests 65536, and checks a
# Cleartext-Password from its users file (the same userN/passwordN): it has no hash to
# compute, so "cold" and "warm" differ only by process warm-up there.
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-200}"
N="${N:-100000}"
GW_PORT="${GW_PORT:-18120}"
FR_PORT="${FR_PORT:-21812}"
SECRET="${SECRET:-testing123}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/radiusbench.XXXXXX")"
GW_PID=""

cleanup() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  bench/freeradius.sh stop "$WORK/freeradius"
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/radiusload" ./bench/radiusload
go build -o "$WORK/gatewayd" ./cmd/gatewayd

bench/freeradius.sh start "$WORK/freeradius" "$FR_PORT" "$SECRET" $((2 * USERS))
FR_ADDR="127.0.0.1:$FR_PORT"

# The real daemon: its RADIUS door, authn, store and event journal.
ADMIN_PORT=$((GW_PORT + 10))
printf '%s\n' "$SECRET" >"$WORK/radius.secret"
cat >"$WORK/gatewayd.toml" <<EOF
data_dir = "$WORK/gwdata"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[authn.rate_limit]
failures_per_second = 0
[ldap]
listen = ""
[radius]
listen = ["127.0.0.1:$GW_PORT"]
[[radius.client]]
name = "bench"
networks = ["127.0.0.0/8"]
secret = "file:$WORK/radius.secret"
EOF
"$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" ${GW_CPUPROFILE:+-cpuprofile "$GW_CPUPROFILE"} >"$WORK/gatewayd.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gatewayd.log" >&2; exit 1; }
  sleep 0.1
done
TOKEN="$(cat "$WORK/gwdata/admin.token")"
api() { curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X "$1" "http://127.0.0.1:$ADMIN_PORT$2" -d "$3"; }
echo "# creating $((2 * USERS)) users in gatewayd (each password is one argon2id hash)" >&2
for i in $(seq 1 $((2 * USERS))); do
  api POST /v1/users "{\"username\":\"user$i\",\"email\":\"user$i@bench.test\"}"
  api PUT "/v1/users/user$i/password" "{\"password\":\"password$i\"}"
done
GATEWAYD_ADDR="127.0.0.1:$GW_PORT"
GW_NAME="gatewayd"

load() { "$WORK/radiusload" -secret "$SECRET" -timeout 5s -retries 1 "$@" | tee -a "$WORK/results" || true; }

echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  users/cold pass=$USERS  requests/warm pass=$N"
for K in 50 200; do
  FIRST=1; [[ "$K" == 200 ]] && FIRST=$((USERS + 1))   # a fresh user range: the cold pass is really cold
  load -addr "$GATEWAYD_ADDR" -users "$USERS" -first "$FIRST" -count "$USERS" -outstanding "$K" -label "$GW_NAME cold"
  load -addr "$GATEWAYD_ADDR" -users "$USERS" -first "$FIRST" -count "$N" -outstanding "$K" -label "$GW_NAME warm"
  load -addr "$FR_ADDR" -users "$USERS" -first "$FIRST" -count "$USERS" -outstanding "$K" -label "freeradius cold"
  load -addr "$FR_ADDR" -users "$USERS" -first "$FIRST" -count "$N" -outstanding "$K" -label "freeradius warm"
done

# The summary: gatewayd against FreeRADIUS, per pass.
echo
awk '
  { k = $3; sub("K=", "", k); mode = $2; srv = $1
    for (i = 1; i <= NF; i++) {
      if ($i == "req/s") rate = $(i - 1)
      if ($i ~ /^p50=/) { p50 = $i; sub("p50=", "", p50) }
      if ($i ~ /^p99=/) { p99 = $i; sub("p99=", "", p99) }
      if ($i ~ /^lost=/) { lost = $i; sub("lost=", "", lost) }
    }
    key = mode " K=" k
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    r[key, srv] = rate; l50[key, srv] = p50; l99[key, srv] = p99; lo[key, srv] = lost }
  END {
    printf "| pass | gatewayd req/s | p50 / p99 | lost | FreeRADIUS req/s | p50 / p99 | lost | ratio |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    for (i = 0; i < n; i++) {
      key = order[i]; g = r[key, "gatewayd"]; f = r[key, "freeradius"]
      printf "| %s | %s | %s / %s | %s | %s | %s / %s | %s | %.3gx |\n", key, g, l50[key, "gatewayd"], l99[key, "gatewayd"], lo[key, "gatewayd"],
        f, l50[key, "freeradius"], l99[key, "freeradius"], lo[key, "freeradius"], (f > 0 ? g / f : 0)
    }
  }' "$WORK/results"
