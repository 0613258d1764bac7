#!/usr/bin/env bash
# Starts a private OpenLDAP slapd (mdb) on loopback for the benchmarks, with
# dc=example,dc=test and user1..userN / Passw0rd!N stored as {SSHA}, the way
# an admin would run it.
#
# usage: bench/slapd.sh start DIR PORT NUSERS | stop DIR
set -euo pipefail
cmd="$1"; DIR="$2"
PIDFILE="$DIR/slapd.pid"
if [[ "$cmd" == stop ]]; then
  [[ -f "$PIDFILE" ]] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
  exit 0
fi
PORT="$3"; NUSERS="$4"
BASE="dc=example,dc=test"
export PATH="$PATH:/usr/sbin"
command -v slapd >/dev/null || {
  echo "bench: installing slapd ..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
}
rm -rf "$DIR"; mkdir -p "$DIR/db"
cat >"$DIR/slapd.conf" <<EOF
include   /etc/ldap/schema/core.schema
include   /etc/ldap/schema/cosine.schema
include   /etc/ldap/schema/nis.schema
include   /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile   $DIR/slapd.daemon.pid
argsfile  $DIR/slapd.args
loglevel  0
database  mdb
maxsize   268435456
suffix    "$BASE"
rootdn    "cn=admin,$BASE"
directory $DIR/db
index objectClass,uid eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by self read
  by users read
  by anonymous auth
EOF
{
  printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Bench\ndc: example\n\n' "$BASE"
  printf 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n' "$BASE"
  NUSERS="$NUSERS" BASE="$BASE" perl -MDigest::SHA=sha1 -MMIME::Base64 -e '
    for my $i (1 .. $ENV{NUSERS}) {
      my $salt = join "", map { chr int rand 256 } 1 .. 8;
      my $h = encode_base64(sha1("Passw0rd!$i" . $salt) . $salt, "");
      print "dn: uid=user$i,ou=people,$ENV{BASE}\nobjectClass: inetOrgPerson\nuid: user$i\n",
            "cn: User $i\nsn: User$i\nmail: user$i\@example.test\nuserPassword: {SSHA}$h\n\n";
    }'
} >"$DIR/seed.ldif"
slapadd -q -f "$DIR/slapd.conf" -l "$DIR/seed.ldif"
slapd -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$PORT/" -d 0 >"$DIR/slapd.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
  ldapsearch -x -H "ldap://127.0.0.1:$PORT" -s base -b "" namingContexts >/dev/null 2>&1 && exit 0
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
  sleep 0.1
done
echo "bench: slapd failed to start:" >&2; tail -20 "$DIR/slapd.log" >&2; exit 1
