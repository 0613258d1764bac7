#!/usr/bin/env bash
# Starts a private FreeRADIUS 3.2 (`freeradius -f`) on loopback for the
# benchmarks, configured the way a competent admin would for PAP load:
# users user1..userN / password1.. in the files module, Message-Authenticator
# required from the client, reject_delay 0, max_requests raised so the 5 s
# cleanup_delay does not drop requests past ~3.3k/s.
#
# usage: bench/freeradius.sh start DIR PORT SECRET NUSERS | stop DIR
set -euo pipefail
cmd="$1"; DIR="$2"
PIDFILE="$DIR/freeradius.pid"

if [[ "$cmd" == stop ]]; then
  [[ -f "$PIDFILE" ]] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
  exit 0
fi
PORT="$3"; SECRET="$4"; NUSERS="$5"

command -v freeradius >/dev/null || {
  echo "bench: installing freeradius ..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq freeradius >/dev/null
}
RADDB="$DIR/raddb"
rm -rf "$DIR"; mkdir -p "$DIR/log/radacct" "$DIR/run"
cp -a /etc/freeradius/3.0 "$RADDB"

sed -i -e "s|^logdir = .*|logdir = $DIR/log|" -e "s|^raddbdir = .*|raddbdir = $RADDB|" \
  -e "s|^run_dir = .*|run_dir = $DIR/run|" -e 's|^\(\s*\)user = freerad|\1#user = freerad|' \
  -e 's|^\(\s*\)group = freerad|\1#group = freerad|' -e "s/^proxy_requests *= *yes/proxy_requests = no/" \
  -e "s/^\(\s*\)reject_delay = .*/\1reject_delay = 0/" -e "s/^max_requests = .*/max_requests = 65536/" \
  "$RADDB/radiusd.conf"

# Loopback only: the default site's auth listener on PORT, acct on PORT+1;
# the inner-tunnel site moves off its default port.
PORT="$PORT" perl -pe '
  $n++ if /^listen \{/;
  s/^(\s*ipaddr = )\*/${1}127.0.0.1/;
  s/^(\s*ipv6addr = )::(?=\s)/${1}::1/;
  if (/^\s*port = 0\b/) { my $p = ($n % 2 == 1) ? $ENV{PORT} : $ENV{PORT} + 1; s/= 0\b/= $p/ }
' "$RADDB/sites-available/default" >"$RADDB/default.tmp"
mv "$RADDB/default.tmp" "$RADDB/sites-available/default"
if grep -qE '^\s*(ipaddr = \*|ipv6addr = ::\s|port = 0\b)' "$RADDB/sites-available/default"; then
  echo "bench: refusing to start, a FreeRADIUS listener is not loopback-only" >&2; exit 1
fi
sed -i "s|port = 18120|port = $((PORT + 2))|" "$RADDB/sites-available/inner-tunnel"

# The eap module will not load without a certificate; PAP does not use it.
CERTS="$RADDB/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=bench CA" \
  -keyout "$CERTS/bench.key" -out "$CERTS/bench.pem" >/dev/null 2>&1
sed -i -e "s|/etc/ssl/private/ssl-cert-snakeoil.key|$CERTS/bench.key|" \
  -e "s|/etc/ssl/certs/ssl-cert-snakeoil.pem|$CERTS/bench.pem|" \
  -e "s|/etc/ssl/certs/ca-certificates.crt|$CERTS/bench.pem|" "$RADDB/mods-available/eap"

cat >"$RADDB/clients.conf" <<EOF
client bench {
	ipaddr = 127.0.0.0/8
	secret = $SECRET
	require_message_authenticator = yes
}
EOF
for i in $(seq 1 "$NUSERS"); do
  printf 'user%d\tCleartext-Password := "password%d"\n\n' "$i" "$i"
done >"$RADDB/mods-config/files/authorize"

freeradius -f -l stdout -d "$RADDB" >"$DIR/radiusd.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
  grep -q "Ready to process requests" "$DIR/radiusd.log" && exit 0
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
  sleep 0.1
done
echo "bench: FreeRADIUS failed to start:" >&2; tail -20 "$DIR/radiusd.log" >&2; exit 1
