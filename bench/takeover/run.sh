#!/usr/bin/env bash
# Login latency while password takeover runs (issue 4, SPEC 3.5): RADIUS PAP
# logins against the real daemon whose users are bound to an Entra directory
# served by the fake Graph, once with no delay and once with 2 s added to
# every Graph call. Every user logs in once before being bound (so argon2
# is out of the picture: later logins hit the credential cache), then the
# group is bound and provisioned, and the measured round is each user's
# first login after binding: every one of them triggers a password push.
# The two runs must match within noise if the login never waits for sync.
#
# usage: bench/takeover/run.sh      env: USERS=200 K=50 DELAY=2s
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS="${USERS:-200}"; K="${K:-50}"; DELAY="${DELAY:-2s}"; SECRET=bench-secret
WORK="$(mktemp -d "${TMPDIR:-/tmp}/takeoverbench.XXXXXX")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

go build -o "$WORK/gatewayd" ./cmd/gatewayd
go build -o "$WORK/fakegraphd" ./bench/fakegraphd
go build -o "$WORK/radiusload" ./bench/radiusload
printf '%s\n' "$SECRET" >"$WORK/radius.secret"
printf '%s\n' "fake-client-secret" >"$WORK/graph.secret"

run_pass() {
  local label="$1" latency="$2" port="$3" d="$WORK/$1"
  mkdir -p "$d"
  "$WORK/fakegraphd" -latency "$latency" >"$d/fg.out" 2>"$d/fg.err" &
  PIDS+=($!); local fgpid=$!
  for _ in $(seq 1 50); do grep -q '^url ' "$d/fg.out" && break; sleep 0.1; done
  local url; url="$(awk '/^url /{print $2}' "$d/fg.out")"
  local tenant client
  tenant="$(go run ./bench/takeover/ids.go tenant)"; client="$(go run ./bench/takeover/ids.go client)"
  go run ./bench/takeover/ids.go secret >"$WORK/graph.secret"
  cat >"$d/gatewayd.toml" <<EOF
data_dir = "$d/data"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$((port + 10))"
[authn.rate_limit]
failures_per_second = 0
[ldap]
listen = ""
[radius]
listen = ["127.0.0.1:$port"]
[[radius.client]]
name = "bench"
networks = ["127.0.0.0/8"]
secret = "file:$WORK/radius.secret"
[sync]
workers = 32
remote_check_interval = "1h"
[[directory]]
type = "entra"
name = "m365"
tenant_id = "$tenant"
client_id = "$client"
client_secret = "file:$WORK/graph.secret"
authority_url = "$url"
graph_url = "$url"
EOF
  "$WORK/gatewayd" serve -config "$d/gatewayd.toml" >"$d/gatewayd.log" 2>&1 &
  PIDS+=($!); local gwpid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$((port + 10))/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  local token; token="$(cat "$d/data/admin.token")"
  api() { curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -X "$1" "http://127.0.0.1:$((port + 10))$2" -d "${3:-}"; }
  api POST /v1/groups '{"name":"staff"}'
  for i in $(seq 1 "$USERS"); do
    api POST /v1/users "{\"username\":\"user$i\",\"email\":\"user$i@bench.test\"}"
    api PUT "/v1/users/user$i/password" "{\"password\":\"Password-$i\"}"
    api PUT "/v1/groups/staff/members/user$i"
  done
  # Warm-up, not measured: fills the credential cache; no directory yet.
  "$WORK/radiusload" -addr "127.0.0.1:$port" -secret "$SECRET" -users "$USERS" -count "$USERS" -outstanding "$K" \
    -pass 'Password-%d' -timeout 5s -retries 1 -label warm-up >/dev/null
  api PUT /v1/directories/m365/groups/staff
  # Let provisioning finish (with DELAY it takes a few rounds of 2 s calls).
  for _ in $(seq 1 600); do
    n="$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$((port + 10))/v1/events?type=user_create_provision&limit=1000" | grep -c '"type": "user_create_provision"' || true)"
    [[ "$n" -ge "$USERS" ]] && break; sleep 0.5
  done
  "$WORK/radiusload" -addr "127.0.0.1:$port" -secret "$SECRET" -users "$USERS" -count "$USERS" -outstanding "$K" \
    -pass 'Password-%d' -timeout 5s -retries 1 -label "$label first logins after binding (each pushes)"
  "$WORK/radiusload" -addr "127.0.0.1:$port" -secret "$SECRET" -users "$USERS" -count $((USERS * 10)) -outstanding "$K" \
    -pass 'Password-%d' -timeout 5s -retries 1 -label "$label repeat logins (no push)"
  # The pushes finish in the background; report how long that took.
  local t0=$SECONDS pushed=0
  for _ in $(seq 1 240); do
    pushed="$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$((port + 10))/v1/events?type=user_password_update_provision&limit=1000" | grep -c '"type": "user_password_update_provision"' || true)"
    [[ "$pushed" -ge "$USERS" ]] && break; sleep 0.5
  done
  echo "$label: $pushed of $USERS password pushes done $((SECONDS - t0)) s after the logins"
  kill "$gwpid"; wait "$gwpid" 2>/dev/null || true
  kill "$fgpid"; wait "$fgpid" 2>/dev/null || true
  cat "$d/fg.err"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $USERS users, $K outstanding"
run_pass graph-no-delay 0s 18200
run_pass graph-"$DELAY"-delay "$DELAY" 18300
