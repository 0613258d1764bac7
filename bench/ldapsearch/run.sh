#!/usr/bin/env bash
# LDAP search latency per filter kind at 100k users: the real gatewayd
# daemon against OpenLDAP slapd 2.5 (mdb) loaded with the same users and
# groups, with equality and substring indexes on the same attributes, the
# same client (one bound connection, sequential searches), the same run.
# Prints a gatewayd/slapd table (a ratio above 1 means gatewayd is faster).
#
# usage: bench/ldapsearch/run.sh
# env: USERS=100000 NGROUPS=1000 PER=10 (members per group) N=2000 (searches per kind)
#      CLIENT=go-ldap: the timed searches' client, go-ldap or raw (a bare
#      BER client: less client time in the figures, for both servers), or
#      both (go-ldap,raw), one table each
#      ROUNDS=1: gatewayd and slapd take turns ROUNDS times; the table gives
#      the median over rounds (on a loaded machine one round says little)
#      SLAPD_PORT=3898 GW_PORT=3891 GATEWAYD_BIN (a prebuilt daemon, e.g. another commit)
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS="${USERS:-100000}"; NGROUPS="${NGROUPS:-1000}"; PER="${PER:-10}"; N="${N:-2000}"; ROUNDS="${ROUNDS:-1}"; CLIENT="${CLIENT:-go-ldap}"
SLAPD_PORT="${SLAPD_PORT:-3898}"; GW_PORT="${GW_PORT:-3891}"
BASE="dc=example,dc=test"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ldapsearchbench.XXXXXX")"
GW_PID=""; SLAPD_PID=""
cleanup() {
  for p in "$GW_PID" "$SLAPD_PID"; do
    if [[ -n "$p" ]]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
export PATH="$PATH:/usr/sbin"
command -v slapd >/dev/null || { echo "bench: needs slapd (apt-get install slapd ldap-utils)" >&2; exit 1; }

go build -o "$WORK/bench" ./bench/ldapsearch
if [[ -n "${GATEWAYD_BIN:-}" ]]; then
  cp "$GATEWAYD_BIN" "$WORK/gatewayd"  # another build, e.g. to compare commits on one machine
else
  go build -o "$WORK/gatewayd" ./cmd/gatewayd
fi

# slapd: the same corpus, indexes on every attribute the filters use.
mkdir -p "$WORK/slapd/db"
cat >"$WORK/slapd/slapd.conf" <<CONF
include   /etc/ldap/schema/core.schema
include   /etc/ldap/schema/cosine.schema
include   /etc/ldap/schema/nis.schema
include   /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile   $WORK/slapd/slapd.pid
argsfile  $WORK/slapd/slapd.args
loglevel  0
sizelimit unlimited
database  mdb
maxsize   2147483648
suffix    "$BASE"
rootdn    "cn=admin,$BASE"
rootpw    bench-admin-pass
directory $WORK/slapd/db
index objectClass eq
index uid,mail,cn eq,sub
index uidNumber,gidNumber,memberUid,member,entryUUID eq
CONF
"$WORK/bench" -ldif "$WORK/slapd/seed.ldif" -users "$USERS" -groups "$NGROUPS" -per "$PER"
echo "# slapadd $USERS users" >&2
slapadd -q -f "$WORK/slapd/slapd.conf" -l "$WORK/slapd/seed.ldif"
slapd -f "$WORK/slapd/slapd.conf" -h "ldap://127.0.0.1:$SLAPD_PORT/" -d 0 >"$WORK/slapd/slapd.log" 2>&1 &
SLAPD_PID=$!

ADMIN_PORT=$((GW_PORT + 10))
cat >"$WORK/gatewayd.toml" <<CONF
data_dir = "$WORK/gwdata"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[ldap]
listen = "127.0.0.1:$GW_PORT"
base_dn = "$BASE"
[radius]
listen = []
CONF
"$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" >"$WORK/gatewayd.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gatewayd.log" >&2; exit 1; }
  sleep 0.1
done
TOKEN="$WORK/gwdata/admin.token"
api() { curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$TOKEN")" -H 'Content-Type: application/json' -X "$1" "http://127.0.0.1:$ADMIN_PORT$2" -d "$3"; }
api POST /v1/users '{"username":"svc","email":"svc@example.test","service_account":true}'
api PUT /v1/users/svc/password '{"password":"bench-svc-pass-1"}'
echo "# loading $USERS users into gatewayd through the admin API" >&2
"$WORK/bench" -load "http://127.0.0.1:$ADMIN_PORT" -token "$TOKEN" -users "$USERS" -groups "$NGROUPS" -per "$PER"

table() {
  awk -F'\t' '
  function median(arr, cnt,   i, j, t, tmp) {
    for (i = 1; i <= cnt; i++) tmp[i] = arr[i]
    for (i = 2; i <= cnt; i++) { t = tmp[i]; for (j = i - 1; j >= 1 && tmp[j] > t; j--) tmp[j + 1] = tmp[j]; tmp[j + 1] = t }
    return cnt % 2 ? tmp[(cnt + 1) / 2] : (tmp[cnt / 2] + tmp[cnt / 2 + 1]) / 2
  }
  function med(key, srv, col,   r, a) {
    for (r = 1; r <= cnt[key, srv]; r++) a[r] = v[key, srv, col, r]
    return median(a, cnt[key, srv])
  }
  $1 == "server" { next }
  { if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 }
    c = ++cnt[$2, $1]
    v[$2, $1, "p50", c] = $4; v[$2, $1, "p99", c] = $5; v[$2, $1, "mean", c] = $6 }
  END {
    for (j = 0; j < n; j++) {
      k = order[j]
      for (x = 0; x < 2; x++) {
        srv = x ? "slapd" : "gatewayd"
        p50[k, srv] = med(k, srv, "p50"); p99[k, srv] = med(k, srv, "p99"); mean[k, srv] = med(k, srv, "mean")
      }
    }
    printf "| filter | gatewayd p50 / p99 (µs) | slapd p50 / p99 (µs) | slapd/gatewayd (mean) |\n|---|---|---|---|\n"
    for (j = 0; j < n; j++) {
      k = order[j]
      printf "| `%s` | %s / %s | %s / %s | %.2fx |\n", k, p50[k, "gatewayd"], p99[k, "gatewayd"], p50[k, "slapd"], p99[k, "slapd"],
        (mean[k, "gatewayd"] > 0 ? mean[k, "slapd"] / mean[k, "gatewayd"] : 0)
    }
  }' "$1"
}

# One table per client (CLIENT=go-ldap,raw measures both on the same servers).
for client in ${CLIENT//,/ }; do
  echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $USERS users, $NGROUPS groups of $PER; $N searches per kind, one connection, $client client, $ROUNDS round(s)"
  : >"$WORK/results"
  for round in $(seq 1 "$ROUNDS"); do
    "$WORK/bench" -name gatewayd -url "ldap://127.0.0.1:$GW_PORT" -D "uid=svc,ou=users,$BASE" -w bench-svc-pass-1 \
      -users "$USERS" -groups "$NGROUPS" -per "$PER" -n "$N" -client "$client" | tail -n +$((round > 1 ? 2 : 1)) | tee -a "$WORK/results"
    "$WORK/bench" -name slapd -url "ldap://127.0.0.1:$SLAPD_PORT" -D "cn=admin,$BASE" -w bench-admin-pass \
      -users "$USERS" -groups "$NGROUPS" -per "$PER" -n "$N" -client "$client" | tail -n +2 | tee -a "$WORK/results"
  done
  echo
  echo "client: $client"
  table "$WORK/results"
  echo
done
