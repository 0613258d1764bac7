#!/usr/bin/env bash
# Memory and start-up at scale: the real gatewayd daemon from this checkout on
# a private data dir, USERS users created through the admin API (each with an
# email and two attributes), the event retention filled with RADIUS PAP login
# events (a few users, so every login after the first is a credential-cache
# hit), then RSS (VmRSS = RssAnon, the Go heap and stacks, + RssFile, mostly
# journal pages bbolt has mapped and read; VmHWM is the peak) after each step, a few LDAP and
# API searches, and a restart timed from exec to /healthz 200. Loopback only.
#
# usage: bench/scale/run.sh
# env:
#   USERS=100000    users to create (user1..USERS)
#   EVENTS=100000   RADIUS logins to send (the default [events] retention is 100000)
#   CONC=16         admin API requests in flight while creating
#   GW_PORT=3890    LDAP port; admin is GW_PORT+10, RADIUS GW_PORT+20
#   PROFILE_DIR=DIR keep heap profiles (gatewayd serve -memprofile, SIGUSR1) taken
#                   after each step in DIR, for `go tool pprof -sample_index=inuse_space`
#   KEEP=1          keep the work dir (data dir, logs) and print its path
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-100000}"
EVENTS="${EVENTS:-100000}"
CONC="${CONC:-16}"
GW_PORT="${GW_PORT:-3890}"
ADMIN_PORT=$((GW_PORT + 10))
RADIUS_PORT=$((GW_PORT + 20))
SECRET=testing123
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scalebench.XXXXXX")"
GW_PID=""

cleanup() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  if [[ -n "${KEEP:-}" ]]; then echo "# work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

go build -o "$WORK/scale" ./bench/scale
go build -o "$WORK/radiusload" ./bench/radiusload
go build -o "$WORK/gatewayd" ./cmd/gatewayd

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
listen = "127.0.0.1:$GW_PORT"
base_dn = "dc=example,dc=test"
[radius]
listen = ["127.0.0.1:$RADIUS_PORT"]
[[radius.client]]
name = "bench"
networks = ["127.0.0.0/8"]
secret = "file:$WORK/radius.secret"
EOF

ADMIN="http://127.0.0.1:$ADMIN_PORT"
MEMPROF="$WORK/heap.pprof"
start_daemon() {
  T0=$(date +%s%N)
  "$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" -memprofile "$MEMPROF" >>"$WORK/gatewayd.log" 2>&1 &
  GW_PID=$!
  if ! STARTUP=$("$WORK/scale" healthz -admin "$ADMIN" -since "$T0" -timeout 120s); then
    cat "$WORK/gatewayd.log" >&2
    exit 1
  fi
  # CPU seconds (user + system) the process spent until /healthz answered:
  # steadier than wall time on a shared machine.
  STARTCPU=$(awk '{ printf "%.2f", ($14 + $15) / tck }' tck="$(getconf CLK_TCK)" "/proc/$GW_PID/stat")
}
stop_daemon() {
  kill -TERM "$GW_PID"
  wait "$GW_PID" || true
  GW_PID=""
}
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$GW_PID/status"; }
ROWS=()
# row STEP: record RSS/HWM now (and a heap profile when PROFILE_DIR is set).
row() {
  local rss anon file hwm
  rss=$(( $(status_kb VmRSS) / 1024 )); hwm=$(( $(status_kb VmHWM) / 1024 ))
  anon=$(( $(status_kb RssAnon) / 1024 )); file=$(( $(status_kb RssFile) / 1024 ))
  ROWS+=("| $1 | $rss | $anon | $file | $hwm | ${2:-} |")
  if [[ -n "${PROFILE_DIR:-}" ]]; then
    mkdir -p "$PROFILE_DIR"
    rm -f "$MEMPROF"
    kill -USR1 "$GW_PID"
    for _ in $(seq 1 200); do [[ -s "$MEMPROF" ]] && break; sleep 0.05; done
    sleep 0.2 # the profile is written in one go; let it finish
    cp "$MEMPROF" "$PROFILE_DIR/$(echo "$1" | tr ' /' '__').pprof"
  fi
}
api() { curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X "$1" "$ADMIN$2" -d "$3"; }

echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  load $(cut -d' ' -f1-3 /proc/loadavg)  users=$USERS events=$EVENTS" >&2
start_daemon
row "empty, just started" "healthz in ${STARTUP}s, ${STARTCPU}s CPU"
sleep 2
row "empty, 2 s later"
TOKEN="$(cat "$WORK/gwdata/admin.token")"

# A service account for the LDAP searches, and four RADIUS users (each
# password one argon2id hash; the logins after the first are cache hits).
api POST /v1/users '{"username":"svc","email":"svc@scale.test","service_account":true}'
api PUT /v1/users/svc/password '{"password":"Svc-Passw0rd!"}'
for i in 1 2 3 4; do
  api POST /v1/users "{\"username\":\"login$i\",\"email\":\"login$i@scale.test\"}"
  api PUT "/v1/users/login$i/password" "{\"password\":\"password$i\"}"
done

T=$(date +%s%N)
"$WORK/scale" create -admin "$ADMIN" -token-file "$WORK/gwdata/admin.token" -users "$USERS" -conc "$CONC" >&2
row "after creating $USERS users" "$(( ($(date +%s%N) - T) / 1000000 )) ms"

# One login each first: the argon2id verifies, which fill the credential cache.
"$WORK/radiusload" -addr "127.0.0.1:$RADIUS_PORT" -secret "$SECRET" -users 4 -user 'login%d' -pass 'password%d' \
  -outstanding 1 -count 4 -timeout 5s -label "gatewayd PAP warm-up" >&2
T=$(date +%s%N)
"$WORK/radiusload" -addr "127.0.0.1:$RADIUS_PORT" -secret "$SECRET" -users 4 -user 'login%d' -pass 'password%d' \
  -outstanding 64 -count "$EVENTS" -duration 300s -timeout 5s -retries 1 -label "gatewayd PAP" >&2
row "after $EVENTS logins" "$(( ($(date +%s%N) - T) / 1000000 )) ms"

"$WORK/scale" search -admin "$ADMIN" -token-file "$WORK/gwdata/admin.token" -ldap "ldap://127.0.0.1:$GW_PORT" \
  -users "$USERS" >&2
row "after searches"

stop_daemon
JOURNAL_MB=$(( $(stat -c %s "$WORK/gwdata/gatewayd.db") / 1024 / 1024 ))
start_daemon
row "restarted (journal ${JOURNAL_MB} MB)" "healthz in ${STARTUP}s, ${STARTCPU}s CPU"
sleep 2 # the daemon returns start-up garbage to the OS in the background
row "restarted, 2 s later"
"$WORK/scale" search -admin "$ADMIN" -token-file "$WORK/gwdata/admin.token" -ldap "ldap://127.0.0.1:$GW_PORT" \
  -users "$USERS" -rounds 1 >/dev/null
row "restarted, after searches"

echo
echo "| step | VmRSS MB | RssAnon | RssFile (journal mmap) | VmHWM MB | time |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
