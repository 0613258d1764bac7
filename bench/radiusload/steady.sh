#!/usr/bin/env bash
# The RADIUS hot path after a start and in steady state (issue 14):
#   1. the first FIRST=100000 PAP logins after start, one user, cached
#      credentials from the first verify on: p99 per SLICE requests and RSS,
#      against the steady-state p99;
#   2. steady state: PASSES passes of N requests against gatewayd, each
#      followed by the same pass against the minimal responder (radiusload
#      -serve: Message-Authenticator in and out, Response Authenticator, no
#      login), same driver, same run, alternating so machine noise hits both.
# Loopback only. Prints the table at the end.
#
# usage: bench/radiusload/steady.sh
# env:
#   FIRST=100000 SLICE=10000 N=100000 PASSES=5 K=50 (requests outstanding;
#   five passes: a pass swings by ±15 % on a shared machine, so the median
#   of three moved the ratio across the goal from one run to the next)
#   GW_PORT=18130  FLOOR_PORT=18131  SECRET=testing123
#   GW_CPUPROFILE=FILE  GW_MEMPROFILE=FILE  profiles of gatewayd for the whole run
#   RETENTION=      [events] retention for gatewayd (empty: the default)
#   PRIME=0         the first pass starts cold: its first K requests arrive together
#                   before the user's first verify has filled the credential cache (a
#                   re-authentication storm after a restart); PRIME=1 sends one login
#                   first, so the first pass is all cache hits
#   KEEP=1          keep the work directory (logs, the gatewayd data dir)
#   GW_BIN=PATH     a gatewayd binary to run instead of building this checkout's
#                   (to compare two builds on the same machine)
set -euo pipefail
cd "$(dirname "$0")/../.."

FIRST="${FIRST:-100000}"
SLICE="${SLICE:-10000}"
N="${N:-100000}"
PASSES="${PASSES:-5}"
K="${K:-50}"
GW_PORT="${GW_PORT:-18130}"
FLOOR_PORT="${FLOOR_PORT:-18131}"
SECRET="${SECRET:-testing123}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/radiussteady.XXXXXX")"
GW_PID="" FLOOR_PID="" RSS_PID=""

cleanup() {
  for p in "$RSS_PID" "$FLOOR_PID" "$GW_PID"; do
    if [[ -n "$p" ]]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  if [[ -n "${KEEP:-}" ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

go build -o "$WORK/radiusload" ./bench/radiusload
if [[ -n "${GW_BIN:-}" ]]; then cp "$GW_BIN" "$WORK/gatewayd"; else go build -o "$WORK/gatewayd" ./cmd/gatewayd; fi

ADMIN_PORT=$((GW_PORT + 10))
printf '%s\n' "$SECRET" >"$WORK/radius.secret"
# Everything else is the shipped default: the credential cache, lockout,
# the failure budget (successes spend none of it), event retention.
cat >"$WORK/gatewayd.toml" <<TOML
data_dir = "$WORK/gwdata"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
${RETENTION:+[events]
retention = $RETENTION}
[ldap]
listen = ""
[radius]
listen = ["127.0.0.1:$GW_PORT"]
[[radius.client]]
name = "bench"
networks = ["127.0.0.0/8"]
secret = "file:$WORK/radius.secret"
TOML
"$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" ${GW_CPUPROFILE:+-cpuprofile "$GW_CPUPROFILE"} \
  ${GW_MEMPROFILE:+-memprofile "$GW_MEMPROFILE"} >"$WORK/gatewayd.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gatewayd.log" >&2; exit 1; }
  sleep 0.1
done
TOKEN="$(cat "$WORK/gwdata/admin.token")"
api() { curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X "$1" "http://127.0.0.1:$ADMIN_PORT$2" -d "$3"; }
api POST /v1/users '{"username":"user1","email":"user1@bench.test"}'
api PUT /v1/users/user1/password '{"password":"password1"}'

"$WORK/radiusload" -serve "127.0.0.1:$FLOOR_PORT" -secret "$SECRET" 2>"$WORK/floor.log" &
FLOOR_PID=$!

rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$GW_PID/status"; }
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$GW_PID/status"; }
# CPU time a process used (user + system), in ms: on a shared machine the
# CPU a pass costs the server is steadier than its rate.
TCK="$(getconf CLK_TCK)"
cpums() { awk -v t="$TCK" '{print int(($14 + $15) * 1000 / t)}' "/proc/$1/stat"; }
# load PID ARGS...: one pass; appends "cpu_us_per_req=X" (CPU of PID per answer).
load() {
  local pid="$1" c0 c1 line n; shift
  c0="$(cpums "$pid")"
  # A pass with losses or unexpected answers (exit 3) is still reported.
  line="$("$WORK/radiusload" -secret "$SECRET" -users 1 -timeout 5s -retries 1 -outstanding "$K" "$@" || true)"
  c1="$(cpums "$pid")"
  n="$(sed -n 's/.* n=\([0-9]*\) .*/\1/p' <<<"${line%%$'\n'*}")"
  line="$(awk -v d=$((c1 - c0)) -v n="$n" 'NR == 1 { printf "%s  cpu_us_per_req=%.1f\n", $0, (n > 0 ? d * 1000 / n : 0); next } { print }' <<<"$line")"
  echo "$line" | tee -a "$WORK/results"
}

echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  load average $(cut -d' ' -f1-3 /proc/loadavg)  $(go version | cut -d' ' -f3)"
echo "# gatewayd RSS before any login: $(rss) MB"
if [[ "${PRIME:-0}" != 0 ]]; then
  load "$GW_PID" -addr "127.0.0.1:$GW_PORT" -count 1 -label "gatewayd prime" >/dev/null   # the one argon2 verify
fi
# RSS sampled every 100 ms during the first pass.
( peak=0; while kill -0 "$GW_PID" 2>/dev/null; do r=$(rss); ((r > peak)) && peak=$r && echo "$peak" >"$WORK/rss.peak"; sleep 0.1; done ) &
RSS_PID=$!
load "$GW_PID" -addr "127.0.0.1:$GW_PORT" -count "$FIRST" -slice "$SLICE" -label "gatewayd first"
kill "$RSS_PID" 2>/dev/null || true; wait "$RSS_PID" 2>/dev/null || true; RSS_PID=""
FIRST_RSS_PEAK="$(cat "$WORK/rss.peak" 2>/dev/null || echo 0)"
AFTER_FIRST_RSS="$(rss)"
for i in $(seq 1 "$PASSES"); do
  load "$GW_PID" -addr "127.0.0.1:$GW_PORT" -count "$N" -label "gatewayd steady"
  load "$FLOOR_PID" -addr "127.0.0.1:$FLOOR_PORT" -count "$N" -label "floor steady"
done
echo "# gatewayd RSS: before logins see above; peak during the first $FIRST ${FIRST_RSS_PEAK} MB; after them ${AFTER_FIRST_RSS} MB; now $(rss) MB; high-water $(hwm) MB"

echo
awk -v first="$FIRST" '
  function field(name,   i, v) { for (i = 1; i <= NF; i++) if ($i ~ "^" name "=") { v = $i; sub(name "=", "", v); sub("ms", "", v); return v } }
  function rate(   i) { for (i = 1; i <= NF; i++) if ($i == "req/s") return $(i - 1) }
  $2 == "first" && $3 ~ /^K=/ { fr = rate(); f99 = field("p99"); f50 = field("p50"); fcpu = field("cpu_us_per_req") }
  $2 == "first" && $3 == "p99" { slices = $0; sub(/.*\(ms\): /, "", slices) }
  $2 == "steady" && $3 ~ /^K=/ {
    srv = $1; i = ++n[srv]; r[srv, i] = rate(); p99[srv, i] = field("p99"); p50[srv, i] = field("p50"); cpu[srv, i] = field("cpu_us_per_req") }
  function median(srv, what,   a, i, j, t, m) {
    m = n[srv]; for (i = 1; i <= m; i++) a[i] = (what == "r" ? r[srv, i] : what == "cpu" ? cpu[srv, i] : p99[srv, i]) + 0
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2) }
  END {
    printf "| pass | gatewayd req/s | p50 / p99 ms | CPU us/req | floor req/s | p50 / p99 ms | CPU us/req | req/s ratio | CPU ratio (floor/gatewayd) |\n|---|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n["gatewayd"]; i++)
      printf "| steady %d | %s | %s / %s | %s | %s | %s / %s | %s | %.2fx | %.2fx |\n", i, r["gatewayd", i], p50["gatewayd", i], p99["gatewayd", i], cpu["gatewayd", i],
        r["floor", i], p50["floor", i], p99["floor", i], cpu["floor", i], r["gatewayd", i] / r["floor", i], cpu["floor", i] / cpu["gatewayd", i]
    gs = median("gatewayd", "r"); fs = median("floor", "r"); g99 = median("gatewayd", "p99"); gc = median("gatewayd", "cpu"); fc = median("floor", "cpu")
    printf "| median | %s | p99 %s | %s | %s | | %s | **%.2fx** (goal >= 0.8x) | %.2fx |\n\n", gs, g99, gc, fs, fc, gs / fs, fc / gc
    printf "| first %d logins after start | req/s | p50 / p99 ms | CPU us/req | p99 / steady median p99 |\n|---|---|---|---|---|\n", first
    printf "| whole pass | %s | %s / %s | %s | **%.2fx** (goal <= 2x) |\n", fr, f50, f99, fcpu, f99 / g99
    printf "| p99 per slice (ms) | %s | | | |\n", slices
  }' "$WORK/results"
