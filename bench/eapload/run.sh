#!/usr/bin/env bash
# Full EAP-TTLS/PAP and PEAPv0/EAP-MSCHAPv2 authentications per second
# against gatewayd and FreeRADIUS 3.2 in the same run, with the same client (bench/eapload), for
# an ECDSA P-256 and an RSA-2048 server certificate. Loopback only.
#
# usage: bench/eapload/run.sh
# env:
#   USERS=50           users user1..userN / password1.. on both servers
#   COUNT=2000         authentications per pass (each a full TLS handshake, no resumption)
#   DURATION=60s       time limit per pass
#   KS="16 64"         sessions in flight (one pass per K, per certificate, per server)
#   KINDS="ecdsa rsa"  server certificates: ECDSA P-256 and RSA-2048 (each with its own CA)
#   METHODS="ttls peap" TTLS/PAP and PEAPv0/EAP-MSCHAPv2 (both servers offer TTLS first: PEAP costs a NAK on both)
#   GW_PORT=18130      gatewayd's RADIUS port (admin on GW_PORT+10)
#   FR_PORT=21822      FreeRADIUS port (also FR_PORT+1, +2)
#   SECRET=testing123
#   GW_CPUPROFILE=DIR  write gatewayd CPU profiles DIR/gatewayd-KIND.pprof
#
# gatewayd: the real daemon from this checkout, private data dir, default
# argon2id, [radius.eap] with the certificate (methods ttls then peap, TLS
# 1.2, defaults), store_nt_hash on (the users' passwords are set after it is
# on, so their NT hashes are captured for PEAP).
# Before each certificate's passes one warm-up pass (COUNT=USERS, not in the
# table) logs every user in once on each server: gatewayd's first login of
# a user is an argon2id hash, later ones hit its verified-credential cache;
# FreeRADIUS checks a Cleartext-Password from its files module and warms up
# its process. So the table compares the EAP/TLS work of both.
#
# FreeRADIUS: bench/freeradius.sh (freeradius -f, reject_delay 0,
# max_requests 65536, Message-Authenticator required), then its eap module
# pointed at the same certificate and key as gatewayd, with
# default_eap_type = ttls (the Debian default md5 would cost a NAK round
# trip) and auto_chain = no (OpenSSL would otherwise append the CA from
# ca_file to the server's flight, a fragment and a round trip more than
# gatewayd, which sends cert_file as it is: the leaf), and restarted. Its
# TLS session cache stays off (Debian's default), and the client never
# resumes anyway.
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-50}"
COUNT="${COUNT:-2000}"
DURATION="${DURATION:-60s}"
KS="${KS:-16 64}"
KINDS="${KINDS:-ecdsa rsa}"
METHODS="${METHODS:-ttls peap}"
GW_PORT="${GW_PORT:-18130}"
FR_PORT="${FR_PORT:-21822}"
SECRET="${SECRET:-testing123}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/eapbench.XXXXXX")"
GW_PID=""
FR_DIR="$WORK/freeradius"

stop_gw() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; GW_PID=""; fi
}
stop_fr() {
  if [[ -f "$FR_DIR/freeradius.pid" ]]; then
    local pid; pid="$(cat "$FR_DIR/freeradius.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$FR_DIR/freeradius.pid"
  fi
}
cleanup() {
  stop_gw
  stop_fr
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v openssl >/dev/null || { echo "bench: openssl is needed" >&2; exit 1; }
go build -o "$WORK/eapload" ./bench/eapload
go build -o "$WORK/gatewayd" ./cmd/gatewayd

# Certificates: a private CA and a server certificate (DNS SAN
# radius.example.test, serverAuth) per kind; CA and leaf of the same kind.
mkcerts() {
  local kind="$1" d="$WORK/pki/$1"
  mkdir -p "$d"
  local alg=(-newkey rsa:2048)
  [[ "$kind" == ecdsa ]] && alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  openssl req -x509 "${alg[@]}" -nodes -days 2 -subj "/CN=eapbench $kind CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1
  openssl req "${alg[@]}" -nodes -subj "/CN=radius.example.test" \
    -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:radius.example.test\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" >/dev/null 2>&1
}
for kind in $KINDS; do mkcerts "$kind"; done

# FreeRADIUS, prepared once by bench/freeradius.sh, then restarted per kind.
bench/freeradius.sh start "$FR_DIR" "$FR_PORT" "$SECRET" "$USERS"
stop_fr
RADDB="$FR_DIR/raddb"
cp "$RADDB/mods-available/eap" "$WORK/eap.orig"
start_fr() {
  local d="$WORK/pki/$1"
  perl -pe '
    s/^(\s*default_eap_type = )md5/${1}ttls/ if $. < 40;
    s|^(\s*private_key_file = ).*|${1}'"$d/server.key"'|;
    s|^(\s*certificate_file = ).*|${1}'"$d/server.pem"'|;
    s|^(\s*ca_file = ).*|${1}'"$d/ca.pem"'|;
    s|^\s*#\s*auto_chain = yes|\tauto_chain = no|;
  ' "$WORK/eap.orig" >"$RADDB/mods-available/eap"
  freeradius -f -l stdout -d "$RADDB" >"$FR_DIR/radiusd.log" 2>&1 &
  echo $! >"$FR_DIR/freeradius.pid"
  for _ in $(seq 1 100); do
    grep -q "Ready to process requests" "$FR_DIR/radiusd.log" && return 0
    kill -0 "$(cat "$FR_DIR/freeradius.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: FreeRADIUS failed to start:" >&2; tail -20 "$FR_DIR/radiusd.log" >&2; exit 1
}

# gatewayd, restarted per kind on the same data dir (users persist).
ADMIN_PORT=$((GW_PORT + 10))
printf '%s\n' "$SECRET" >"$WORK/radius.secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/nt.key"
start_gw() {
  local d="$WORK/pki/$1"
  cat >"$WORK/gatewayd.toml" <<EOF
data_dir = "$WORK/gwdata"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[authn]
store_nt_hash = true
nt_hash_key_file = "$WORK/nt.key"
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
[radius.eap]
cert_file = "$d/server.pem"
key_file = "$d/server.key"
methods = ["ttls", "peap"]
EOF
  "$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" ${GW_CPUPROFILE:+-cpuprofile "$GW_CPUPROFILE/gatewayd-$1.pprof"} >>"$WORK/gatewayd.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/gatewayd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: gatewayd did not come up" >&2; cat "$WORK/gatewayd.log" >&2; exit 1
}
create_users() {
  local token; token="$(cat "$WORK/gwdata/admin.token")"
  api() { curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -X "$1" "http://127.0.0.1:$ADMIN_PORT$2" -d "$3"; }
  echo "# creating $USERS users in gatewayd" >&2
  for i in $(seq 1 "$USERS"); do
    api POST /v1/users "{\"username\":\"user$i\",\"email\":\"user$i@bench.test\"}"
    api PUT "/v1/users/user$i/password" "{\"password\":\"password$i\"}"
  done
}

load() { "$WORK/eapload" -secret "$SECRET" -users "$USERS" -timeout 5s -retries 1 -duration "$DURATION" "$@" || true; }

# CPU ticks (user + system) a server process has used, from /proc: the
# client shares the two cores, so auth/s is compressed towards 1x; CPU per
# accepted authentication is what each server would need on its own.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"
# measured PID ARGS...: one load pass, its output line with cpu_ms_per_auth= appended.
measured() {
  local pid="$1"; shift
  local t0 t1 line acc
  t0="$(ticks "$pid")"
  line="$(load "$@")"
  t1="$(ticks "$pid")"
  acc="$(sed -n 's/.* accepted=\([0-9]*\) .*/\1/p' <<<"$line")"
  awk -v l="$line" -v d="$((t1 - t0))" -v hz="$HZ" -v a="${acc:-0}" 'BEGIN { printf "%s cpu_ms_per_auth=%.3f\n", l, (a > 0 ? d * 1000 / hz / a : 0) }'
}

echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  $(freeradius -v 2>/dev/null | head -1 | sed 's/^radiusd: //')  users=$USERS  auths/pass=$COUNT"
first=1
for kind in $KINDS; do
  CA="$WORK/pki/$kind/ca.pem"
  start_gw "$kind"
  [[ $first == 1 ]] && create_users && first=0
  start_fr "$kind"
  for m in $METHODS; do
    # Warm-up (not in the table): every user once on each server.
    load -method "$m" -addr "127.0.0.1:$GW_PORT" -ca "$CA" -count "$USERS" -concurrency 8 -label "warmup gatewayd $kind $m" >&2
    load -method "$m" -addr "127.0.0.1:$FR_PORT" -ca "$CA" -count "$USERS" -concurrency 8 -label "warmup freeradius $kind $m" >&2
    for K in $KS; do
      measured "$GW_PID" -method "$m" -addr "127.0.0.1:$GW_PORT" -ca "$CA" -count "$COUNT" -concurrency "$K" -label "gatewayd $kind $m" | tee -a "$WORK/results"
      measured "$(cat "$FR_DIR/freeradius.pid")" -method "$m" -addr "127.0.0.1:$FR_PORT" -ca "$CA" -count "$COUNT" -concurrency "$K" -label "freeradius $kind $m" | tee -a "$WORK/results"
    done
  done
  stop_gw
  stop_fr
done

# The summary: gatewayd against FreeRADIUS, per certificate and K.
echo
awk '
  { srv = $1; kind = $2; m = ($3 == "peap" ? "PEAP/MSCHAPv2" : "TTLS/PAP"); k = $4; sub("K=", "", k)
    for (i = 1; i <= NF; i++) {
      if ($i == "auth/s") rate = $(i - 1)
      if ($i ~ /^p50=/) { p50 = $i; sub("p50=", "", p50) }
      if ($i ~ /^p99=/) { p99 = $i; sub("p99=", "", p99) }
      if ($i ~ /^errors=/) { e = $i; sub("errors=", "", e) }
      if ($i ~ /^TLS/) tls = $i
      if ($i ~ /^rounds=/) { rd = $i; sub("rounds=", "", rd) }
      if ($i ~ /^cpu_ms_per_auth=/) { c = $i; sub("cpu_ms_per_auth=", "", c) }
    }
    key = m " " kind " K=" k
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    cpu[key, srv] = c; r[key, srv] = rate; l50[key, srv] = p50; l99[key, srv] = p99; er[key, srv] = e; t[key, srv] = tls; ro[key, srv] = rd }
  END {
    printf "| pass | gatewayd auth/s | p50 / p99 | errors | rounds | FreeRADIUS auth/s | p50 / p99 | errors | rounds | ratio | server CPU ms/auth gatewayd / FreeRADIUS | CPU ratio |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    for (i = 0; i < n; i++) {
      key = order[i]; g = r[key, "gatewayd"]; f = r[key, "freeradius"]
      cg = cpu[key, "gatewayd"]; cf = cpu[key, "freeradius"]
      printf "| %s | %s | %s / %s | %s | %s | %s | %s / %s | %s | %s | %.3gx | %s / %s | %.3gx |\n", key, g, l50[key, "gatewayd"], l99[key, "gatewayd"], er[key, "gatewayd"], ro[key, "gatewayd"],
        f, l50[key, "freeradius"], l99[key, "freeradius"], er[key, "freeradius"], ro[key, "freeradius"], (f > 0 ? g / f : 0), cg, cf, (cg > 0 ? cf / cg : 0)
    }
    for (i = 0; i < n; i++) { key = order[i]; printf "# %s: gatewayd %s, freeradius %s\n", key, t[key, "gatewayd"], t[key, "freeradius"] }
  }' "$WORK/results"
