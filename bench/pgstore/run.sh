#!/usr/bin/env bash
# The PostgreSQL store against the embedded bbolt one (issue 16,
# Benchmarks), in one run on loopback:
#   1. warm RADIUS PAP throughput (bench/radiusload) of one gatewayd on
#      bbolt and one on PostgreSQL, the same USERS users, ROUNDS rounds,
#      the two backends taking turns (and swapping who goes first);
#   2. warm LDAP binds (bench/ldapload), the same way;
#   3. admin user creates/s (bench/scale create, CONC in flight);
#   4. replication delay: a second replica on the same database; users
#      created one at a time on replica A, B polled back to back until
#      each is visible (bench/pgstore repl).
# Then a markdown table with the command line. Everything is bounded by
# counts and per-pass time limits. A private PostgreSQL 15 comes from
# scripts/postgres.sh (fsync on, as a deployment has it).
#
# usage: bench/pgstore/run.sh
# env:
#   ROUNDS=3        rounds of each throughput phase
#   USERS=100       login users user1..USERS / Passw0rd!N (same set on both)
#   RADIUS_N=200000 RADIUS requests per pass, K=50 outstanding
#   LDAP_N=50000    LDAP binds per pass, LDAP_CONNS=4 connections
#   WRITES=2000     admin creates per pass, CONC=4 in flight
#   REPL=500        writes for the replication delay
#   PASS_LIMIT=60s  time limit of one pass
#   RETENTION=      [events] retention for every daemon (empty: the default,
#                   100000; a pass of RADIUS_N logins goes past it, so the
#                   passes include pruning, as a long-running daemon does)
#   PORT_BASE=18400 gatewayd ports PORT_BASE+1.. (bbolt), +11.. (postgres A),
#                   +21.. (postgres B); PostgreSQL on PORT_BASE+50
#   GW_BIN=PATH     a gatewayd binary instead of building this checkout's
#   KEEP=1          keep the work directory (logs, data dirs, results)
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS="${ROUNDS:-3}"
USERS="${USERS:-100}"
RADIUS_N="${RADIUS_N:-200000}"
K="${K:-50}"
LDAP_N="${LDAP_N:-50000}"
LDAP_CONNS="${LDAP_CONNS:-4}"
WRITES="${WRITES:-2000}"
CONC="${CONC:-4}"
REPL="${REPL:-500}"
PASS_LIMIT="${PASS_LIMIT:-60s}"
PORT_BASE="${PORT_BASE:-18400}"
SECRET=testing123
CMDLINE="${RETENTION:+RETENTION=$RETENTION }ROUNDS=$ROUNDS USERS=$USERS RADIUS_N=$RADIUS_N K=$K LDAP_N=$LDAP_N LDAP_CONNS=$LDAP_CONNS WRITES=$WRITES CONC=$CONC REPL=$REPL bench/pgstore/run.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgstorebench.XXXXXX")"
# The PostgreSQL server runs as its own user (scripts/postgres.sh) and
# must be able to reach its data directory inside WORK.
chmod 0711 "$WORK"
PGDIR="$WORK/pg"
declare -A PID
cleanup() {
  for b in "${!PID[@]}"; do
    kill "${PID[$b]}" 2>/dev/null || true
    wait "${PID[$b]}" 2>/dev/null || true
  done
  scripts/postgres.sh stop "$PGDIR" 2>/dev/null || true
  if [[ -n "${KEEP:-}" ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

go build -o "$WORK/radiusload" ./bench/radiusload
go build -o "$WORK/ldapload" ./bench/ldapload
go build -o "$WORK/scale" ./bench/scale
go build -o "$WORK/pgstore" ./bench/pgstore
if [[ -n "${GW_BIN:-}" ]]; then cp "$GW_BIN" "$WORK/gatewayd"; else go build -o "$WORK/gatewayd" ./cmd/gatewayd; fi

scripts/postgres.sh start "$PGDIR" $((PORT_BASE + 50)) >"$WORK/pg.dsn"
printf '%s\n' "$SECRET" >"$WORK/radius.secret"

# Port offsets per daemon: bbolt 0, postgres A 10, postgres B 20.
declare -A OFF=([bbolt]=0 [postgres]=10 [postgres-b]=20)
ldap_port() { echo $((PORT_BASE + OFF[$1] + 1)); }
radius_port() { echo $((PORT_BASE + OFF[$1] + 2)); }
admin_url() { echo "http://127.0.0.1:$((PORT_BASE + OFF[$1] + 3))"; }

# start NAME: one daemon; everything but [store] is the same for all.
start() {
  local name="$1" store
  if [[ "$name" == bbolt ]]; then
    store='backend = "bbolt"'
  else
    store="backend = \"postgres\"
dsn = \"file:$WORK/pg.dsn\"
replica = \"$name\""
  fi
  cat >"$WORK/$name.toml" <<TOML
data_dir = "$WORK/$name"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$((PORT_BASE + OFF[$name] + 3))"
[store]
$store
${RETENTION:+[events]
retention = $RETENTION}
[authn.rate_limit]
failures_per_second = 0
[ldap]
listen = "127.0.0.1:$(ldap_port "$name")"
base_dn = "dc=example,dc=test"
users_see_all = true
[radius]
listen = ["127.0.0.1:$(radius_port "$name")"]
[[radius.client]]
name = "bench"
networks = ["127.0.0.0/8"]
secret = "file:$WORK/radius.secret"
TOML
  "$WORK/gatewayd" serve -config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  "$WORK/scale" healthz -admin "$(admin_url "$name")" -timeout 60s >/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
}
token() { echo "$WORK/$1/admin.token"; }
api() {
  curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$(token "$1")")" -H 'Content-Type: application/json' \
    -X "$2" "$(admin_url "$1")$3" -d "$4"
}

# CPU time (user + system) in clock ticks: of one process, and of the
# PostgreSQL server (the postmaster, the children it has reaped, and the
# live backends), so a pass also says what it cost the database.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pgticks() {
  local pm t=0 c
  pm="$(head -1 "$PGDIR/postmaster.pid")"
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for c in $(ps -o pid= --ppid "$pm"); do t=$((t + $(cputicks "$c" 2>/dev/null || echo 0))); done
  echo "$t"
}
TCK="$(getconf CLK_TCK)"
RESULTS="$WORK/results.jsonl"
# record PHASE BACKEND ROUND C0 C1 D0 D1: reads one normalized JSON result
# on stdin and appends it with the CPU per operation.
record() {
  jq -c --arg ph "$1" --arg b "$2" --argjson r "$3" --argjson c $(($5 - $4)) --argjson d $(($7 - $6)) --argjson t "$TCK" \
    '. + {phase: $ph, backend: $b, round: $r}
     | . + {cpu_us_per_op: (if .ops > 0 then $c * 1e6 / $t / .ops else 0 end),
            db_cpu_us_per_op: (if $b == "postgres" and .ops > 0 then $d * 1e6 / $t / .ops else 0 end)}' | tee -a "$RESULTS" >&2
}

# pass PHASE BACKEND ROUND: one measured pass.
pass() {
  local ph="$1" b="$2" r="$3" c0 c1 d0 d1 out
  c0=$(cputicks "${PID[$b]}"); d0=$(pgticks)
  case $ph in
    radius)
      # A pass with losses (exit 3) is still recorded, with its errors.
      out="$("$WORK/radiusload" -json -addr "127.0.0.1:$(radius_port "$b")" -secret "$SECRET" -users "$USERS" \
        -user 'user%d' -pass 'Passw0rd!%d' -outstanding "$K" -count "$RADIUS_N" -duration "$PASS_LIMIT" -timeout 5s -retries 1 \
        -label "$b" || true)"
      out="$(jq -c '{ops: .requests, ops_per_s: .req_per_s, p50_ms, p99_ms, errors: (.rejected + .lost + .invalid + .unexpected)}' <<<"$out")" ;;
    ldap)
      out="$("$WORK/ldapload" -json -name "$b" -url "ldap://127.0.0.1:$(ldap_port "$b")" -users "$USERS" -n "$LDAP_N" \
        -conns "$LDAP_CONNS" -modes bind -duration "$PASS_LIMIT" \
        -user 'uid=user%d,ou=users,dc=example,dc=test' -pass 'Passw0rd!%d' || true)"
      out="$(jq -c '{ops, ops_per_s: .ops_per_sec, p50_ms: (.p50_us / 1000), p99_ms: (.p99_us / 1000), errors}' <<<"$out")" ;;
    writes)
      # Fresh names each pass (user1000001...), apart from the login users.
      out="$("$WORK/scale" create -admin "$(admin_url "$b")" -token-file "$(token "$b")" -users "$WRITES" \
        -first $((1000000 + (r - 1) * WRITES + 1)) -conc "$CONC" -duration "$PASS_LIMIT" 2>&1 || true)"
      echo "# $b writes round $r: $out" >&2
      out="$(sed -n 's/^created \([0-9]*\) users in \([0-9.]*\)s (\([0-9]*\)\/s), \([0-9]*\) failed.*/{"ops": \1, "ops_per_s": \3, "errors": \4}/p' <<<"$out")"
      [[ -n "$out" ]] || out='{"ops": 0, "ops_per_s": 0, "errors": 1}' ;;
  esac
  c1=$(cputicks "${PID[$b]}"); d1=$(pgticks)
  record "$ph" "$b" "$r" "$c0" "$c1" "$d0" "$d1" <<<"$out"
}

LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  load average $LOAD0  $(go version | cut -d' ' -f3)  $(git rev-parse --short HEAD)  $(/usr/lib/postgresql/15/bin/postgres --version)" >&2
for b in bbolt postgres; do
  start "$b"
  echo "# $b: creating $USERS login users (one argon2id hash each)" >&2
  for i in $(seq 1 "$USERS"); do
    api "$b" POST /v1/users "{\"username\":\"user$i\",\"email\":\"user$i@bench.test\",\"last_name\":\"User$i\"}"
    api "$b" PUT "/v1/users/user$i/password" "{\"password\":\"Passw0rd!$i\"}"
  done
  # One login per user: the argon2id verifies that fill the credential cache.
  "$WORK/radiusload" -addr "127.0.0.1:$(radius_port "$b")" -secret "$SECRET" -users "$USERS" -user 'user%d' -pass 'Passw0rd!%d' \
    -outstanding 2 -count "$USERS" -timeout 10s -label "$b warm-up" >&2
done

for r in $(seq 1 "$ROUNDS"); do
  order=(bbolt postgres)
  ((r % 2)) || order=(postgres bbolt)
  for ph in radius ldap writes; do
    for b in "${order[@]}"; do pass "$ph" "$b" "$r"; done
  done
done

# Replication: the bbolt daemon is no longer needed; a second replica on
# the same database joins (loading what A wrote), then follows A.
kill "${PID[bbolt]}"; wait "${PID[bbolt]}" 2>/dev/null || true; unset 'PID[bbolt]'
start postgres-b
"$WORK/pgstore" repl -a "$(admin_url postgres)" -a-token "$(token postgres)" -b "$(admin_url postgres-b)" \
  -b-token "$(token postgres-b)" -n "$REPL" -duration 5m | tee -a "$RESULTS" >&2

echo "# load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo
"$WORK/pgstore" table -cmd "$CMDLINE" "$RESULTS"
