#!/usr/bin/env bash
# LDAP binds/s and bind+search/s over 1, 4 and 16 connections: the real
# gatewayd daemon (LDAP door, authn, store, event journal) against OpenLDAP
# slapd (mdb, {SSHA} passwords, the same users), in one run, cold (each
# user's first bind: argon2id for gatewayd) and warm. Loopback only.
#
# usage: bench/ldapload/run.sh
# env:
#   GW_CPUPROFILE=FILE  write a CPU profile of gatewayd for the whole run
#   USERS=100 (user1..USERS / Passw0rd!N)  N=20000 (operations per warm cell)
#      CONNS=1,4,16  SLAPD_PORT=3899  GW_PORT=3890  GATEWAYD_BIN (a prebuilt daemon)
#   ROUNDS=1: the warm cells run ROUNDS times, gatewayd and slapd taking
#      turns; the table then gives the median of each cell and the range
#      of the per-round ratios (on a loaded machine one round says little)
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS="${USERS:-100}"; N="${N:-20000}"; CONNS="${CONNS:-1,4,16}"; ROUNDS="${ROUNDS:-1}"
SLAPD_PORT="${SLAPD_PORT:-3899}"; GW_PORT="${GW_PORT:-3890}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ldapbench.XXXXXX")"
GW_PID=""
cleanup() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  bench/slapd.sh stop "$WORK/slapd"
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/ldapload" ./bench/ldapload
if [[ -n "${GATEWAYD_BIN:-}" ]]; then
  cp "$GATEWAYD_BIN" "$WORK/gatewayd"  # another build, e.g. to compare commits on one machine
else
  go build -o "$WORK/gatewayd" ./cmd/gatewayd
fi
bench/slapd.sh start "$WORK/slapd" "$SLAPD_PORT" "$USERS"

ADMIN_PORT=$((GW_PORT + 10))
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
users_see_all = true
[radius]
listen = []
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
echo "# creating $USERS users in gatewayd" >&2
for i in $(seq 1 "$USERS"); do
  api POST /v1/users "{\"username\":\"user$i\",\"email\":\"user$i@example.test\",\"last_name\":\"User$i\"}"
  api PUT "/v1/users/user$i/password" "{\"password\":\"Passw0rd!$i\"}"
done

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $USERS users"
echo "# cold: one bind per user, first time (gatewayd: a full argon2id verify each)"
"$WORK/ldapload" -name "gatewayd cold" -url "ldap://127.0.0.1:$GW_PORT" -users "$USERS" -n "$USERS" -conns 4 -modes bind -warm=false \
  -user 'uid=user%d,ou=users,dc=example,dc=test' -pass 'Passw0rd!%d' | tee -a "$WORK/results"
"$WORK/ldapload" -name "slapd cold" -url "ldap://127.0.0.1:$SLAPD_PORT" -users "$USERS" -n "$USERS" -conns 4 -modes bind -warm=false \
  -user 'uid=user%d,ou=people,dc=example,dc=test' -pass 'Passw0rd!%d' | tail -n +2 | tee -a "$WORK/results"
echo "# warm: repeat binds (gatewayd: the verified-credential cache), $ROUNDS round(s)"
for round in $(seq 1 "$ROUNDS"); do
  "$WORK/ldapload" -name gatewayd -url "ldap://127.0.0.1:$GW_PORT" -users "$USERS" -n "$N" -conns "$CONNS" \
    -user 'uid=user%d,ou=users,dc=example,dc=test' -pass 'Passw0rd!%d' -base dc=example,dc=test | tail -n +$((round > 1 ? 2 : 1)) | tee -a "$WORK/results"
  "$WORK/ldapload" -name slapd -url "ldap://127.0.0.1:$SLAPD_PORT" -users "$USERS" -n "$N" -conns "$CONNS" \
    -user 'uid=user%d,ou=people,dc=example,dc=test' -pass 'Passw0rd!%d' -base dc=example,dc=test | tail -n +2 | tee -a "$WORK/results"
done

# The summary: gatewayd/slapd per cell.
echo
awk '
  function median(arr, cnt,   i, j, t, tmp) {
    for (i = 1; i <= cnt; i++) tmp[i] = arr[i]
    for (i = 2; i <= cnt; i++) { t = tmp[i]; for (j = i - 1; j >= 1 && tmp[j] > t; j--) tmp[j + 1] = tmp[j]; tmp[j + 1] = t }
    return cnt % 2 ? tmp[(cnt + 1) / 2] : (tmp[cnt / 2] + tmp[cnt / 2 + 1]) / 2
  }
  function us(d) {  # a Go duration (172µs, 1.289ms, 2s) in µs
    if (d ~ /µs$/) return substr(d, 1, length(d) - 3) + 0
    if (d ~ /ms$/) return substr(d, 1, length(d) - 2) * 1000
    if (d ~ /ns$/) return substr(d, 1, length(d) - 2) / 1000
    if (d ~ /s$/) return substr(d, 1, length(d) - 1) * 1000000
    return d + 0
  }
  $1 == "target" { next }
  { srv = $1; i = 2; pass = "warm"
    if ($2 == "cold") { pass = "cold"; i = 3 }
    key = pass " " $i " x" $(i + 1)
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    c = ++cnt[key, srv]
    rate[key, srv, c] = $(i + 4); p50[key, srv, c] = us($(i + 5)) }
  END {
    printf "| cell | gatewayd ops/s (p50), median | slapd ops/s (p50), median | gatewayd/slapd | per-round range |\n|---|---|---|---|---|\n"
    for (j = 0; j < n; j++) {
      k = order[j]; cg = cnt[k, "gatewayd"]; cs = cnt[k, "slapd"]
      delete g; delete s; delete gp; delete sp
      for (r = 1; r <= cg; r++) { g[r] = rate[k, "gatewayd", r]; gp[r] = p50[k, "gatewayd", r] }
      for (r = 1; r <= cs; r++) { s[r] = rate[k, "slapd", r]; sp[r] = p50[k, "slapd", r] }
      mg = median(g, cg); ms = median(s, cs)
      lo = ""; hi = ""
      for (r = 1; r <= cg && r <= cs; r++) {
        q = (s[r] > 0 ? g[r] / s[r] : 0)
        if (lo == "" || q < lo) lo = q
        if (hi == "" || q > hi) hi = q
      }
      printf "| %s | %.0f (%.0f µs) | %.0f (%.0f µs) | %.3gx | %.3g-%.3gx |\n", k, mg, median(gp, cg), ms, median(sp, cs), (ms > 0 ? mg / ms : 0), lo, hi
    }
  }' "$WORK/results"
