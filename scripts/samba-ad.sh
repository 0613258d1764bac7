#!/usr/bin/env bash
# A private Samba AD domain controller for gatewayd's AD tests and benchmarks (Debian 12, root).
#
# usage: scripts/samba-ad.sh start|stop|status|provision [DIR] [REALM]
#   DIR    default ${TMPDIR:-/tmp}/gatewayd-samba-ad   everything lives here: smb.conf, sam.ldb, TLS, logs, pid
#   REALM  default EXAMPLE.TEST (NetBIOS domain = first label, base DN = DC=example,DC=test)
# env:
#   NETNS=1        run the DC in a private network namespace that has only its own loopback, so
#                  several DCs (one per test binary) never fight over the fixed AD ports. Clients
#                  reach it with  nsenter --net=/proc/$SAMBA_PID/ns/net  (or setns(2) from Go).
#                  NETNS=0 (default) listens on the host's 127.0.0.1 and ::1, ports 389/636.
#   ADMIN_PASS     Administrator password (default Admin-Passw0rd!)
#   RESET=1        wipe DIR and provision again
#   SAMBA_MODEL    prefork (default) | single | standard
#   SAMBA_MAX_RUNTIME  seconds after which samba exits by itself (default 7200), so a test run that
#                  dies without calling stop cannot leave a DC behind for long
#   SAMBA_TEMPLATE=T   when DIR has no domain yet, provision T once (locked: concurrent callers wait)
#                  and copy it into DIR instead of provisioning DIR: each test run gets its own DC
#                  in its own DIR in about 2 s, and only the first run on a machine pays the ~8 s
#
# start provisions once (about 8 s; later starts reuse DIR and take 2-3 s), is idempotent (a DC that
# is already running for DIR is reported again) and prints KEY=VALUE lines on stdout for programs
# (SAMBA_PID, SAMBA_NETNS, SAMBA_CA, SAMBA_REALM, SAMBA_BASE_DN, SAMBA_ADMIN); progress goes to
# stderr. stop sends TERM to the recorded samba master PID and waits for the workers it had forked,
# found by PID; nothing is ever matched by name.
#
# What it sets up, and why (each item was a problem once):
#   - provision with -s EMPTY.conf, so Debian's /etc/samba/smb.conf does not leak in;
#   - interfaces = lo, bind interfaces only: the DC never listens beyond loopback; DNS, DNS update
#     and NetBIOS are off, and samba runs in a private mount namespace whose /etc/resolv.conf and
#     /etc/hosts point at loopback, so it never sends anything off the host;
#   - every runtime path (pid, ncalrpc, winbindd, ntp_signd) under DIR;
#   - "ldap server require strong auth = no": simple binds over plain ldap:// (allow_insecure tests);
#   - its own CA and a DC certificate with SANs (dc1.<realm>, localhost, 127.0.0.1, ::1): Samba's
#     self-made certificate has none, so no client could verify it;
#   - minPwdAge 0 and pwdHistoryLength 0, so tests may change a password more than once;
#   - users are created over LDAP with CN = sAMAccountName (samba-tool would set CN to the full name).
# Seeded users: alice, bob, carol (password <Name>-Passw0rd!, e.g. Alice-Passw0rd!), UPN and mail
# <name>@<realm, lower case>; groups staff {alice, bob} and vpn-users {staff, carol}.
set -euo pipefail

CMD="${1:-start}"
DIR="${2:-${TMPDIR:-/tmp}/gatewayd-samba-ad}"
REALM="${3:-EXAMPLE.TEST}"
REALM="${REALM^^}"
DOMAIN="${REALM%%.*}"
DNSDOMAIN="${REALM,,}"
BASE="DC=${DNSDOMAIN//./,DC=}"
ADMIN_PASS="${ADMIN_PASS:-Admin-Passw0rd!}"
MODEL="${SAMBA_MODEL:-prefork}"
MAXRT="${SAMBA_MAX_RUNTIME:-7200}"
NETNS="${NETNS:-0}"
CONF="$DIR/dc/etc/smb.conf"
PIDFILE="$DIR/samba.pid"
LOG="$DIR/samba.log"
HERE="$(cd "$(dirname "$0")" && pwd)"
SELF="$HERE/$(basename "$0")"
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
say() { echo "samba-ad: $*" >&2; }

# is_ours PID: the PID is alive and is a samba process (not a recycled PID).
# (samba rewrites its command line, so the check is its name plus the pid file it writes under DIR.)
is_ours() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == samba ]] &&
    [[ "$(cat "$DIR/dc/run/samba.pid" 2>/dev/null)" == "$1" ]]
}

details() {
  local pid; pid="$(cat "$PIDFILE")"
  local ns="" ; [[ -f "$DIR/netns" ]] && ns="/proc/$pid/ns/net"
  cat <<OUT
SAMBA_PID=$pid
SAMBA_NETNS=$ns
SAMBA_DIR=$DIR
SAMBA_CA=$DIR/tls/ca.pem
SAMBA_REALM=$REALM
SAMBA_BASE_DN=$BASE
SAMBA_ADMIN=Administrator@$REALM
SAMBA_LDAP=ldap://127.0.0.1:389
SAMBA_LDAPS=ldaps://127.0.0.1:636
OUT
}

install_packages() {
  if command -v samba >/dev/null && command -v samba-tool >/dev/null && command -v ldapmodify >/dev/null; then
    return
  fi
  say "installing the Samba AD DC packages (about a minute) ..."
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq samba samba-ad-dc samba-ad-provision samba-dsdb-modules \
    samba-vfs-modules winbind ldb-tools ldap-utils >/dev/null
}

stop_dc() {
  if [[ ! -f "$PIDFILE" ]]; then say "not running (no $PIDFILE)"; return 0; fi
  local master; master="$(cat "$PIDFILE")"
  if ! is_ours "$master"; then say "pid $master is not running"; rm -f "$PIDFILE" "$DIR/netns"; return 0; fi
  descendants() {
    local p
    for p in $(ps -e -o pid=,ppid= | awk -v t="$1" '$2==t {print $1}'); do echo "$p"; descendants "$p"; done
  }
  local kids; kids="$(descendants "$master" | tr '\n' ' ')"
  kill -TERM "$master"
  alive() { local n=0 p; for p in "$master" $kids; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }
  for _ in $(seq 1 80); do [[ $(alive) == 0 ]] && break; sleep 0.25; done
  if [[ $(alive) != 0 ]]; then
    for p in "$master" $kids; do kill -TERM "$p" 2>/dev/null || true; done; sleep 1
    for p in "$master" $kids; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -f "$PIDFILE" "$DIR/netns"
  say "stopped master pid $master and its $(echo $kids | wc -w) workers"
}

# nsfiles D: loopback-only name resolution for samba in a private mount namespace.
nsfiles() {
  local d="$1"
  mkdir -p "$d/nsetc"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$d/nsetc/resolv.conf"
  printf '127.0.0.1 localhost\n127.0.0.1 dc1.%s dc1\n::1 localhost ip6-localhost\n' "$DNSDOMAIN" >"$d/nsetc/hosts"
  cat >"$d/ns-exec.sh" <<NSX
#!/bin/bash
# Loopback-only name resolution for samba (private mount namespace; nothing on disk changes).
mount --bind "$d/nsetc/resolv.conf" /etc/resolv.conf
mount --bind "$d/nsetc/hosts" /etc/hosts
exec "\$@"
NSX
  chmod +x "$d/ns-exec.sh"
}

provisioned() { [[ -f "$1/dc/private/sam.ldb" && -f "$1/tls/cert.pem" && -f "$1/provisioned" ]]; }

# provision_into D: a new domain, its TLS material and the smb.conf changes, all under D.
provision_into() {
  local d="$1" conf="$1/dc/etc/smb.conf"
  rm -rf "$d/dc" "$d/tls" "$d/provisioned" "$d/seeded"; mkdir -p "$d/tls" "$d/log"
  nsfiles "$d"
  : >"$d/empty.conf"   # keep /etc/samba/smb.conf out of the new config
  say "provisioning $REALM into $d/dc ..."
  unshare --mount --propagation private "$d/ns-exec.sh" samba-tool domain provision -s "$d/empty.conf" --targetdir="$d/dc" \
    --realm="$REALM" --domain="$DOMAIN" --server-role=dc --dns-backend=NONE \
    --adminpass="$ADMIN_PASS" --host-name=dc1 --host-ip=127.0.0.1 --use-rfc2307 \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="server services=-dns -dnsupdate -nbt" --option="disable netbios=yes" \
    --option="log file=$d/log/log.%m" --option="logging=file" \
    >"$d/provision.log" 2>&1 || { tail -20 "$d/provision.log" >&2; exit 1; }
  say "provisioned in $(elapsed) s"

  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gatewayd test AD CA" \
    -keyout "$d/tls/ca.key" -out "$d/tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.$DNSDOMAIN" \
    -keyout "$d/tls/key.pem" -out "$d/tls/srv.csr" >/dev/null 2>&1
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:dc1.%s,DNS:localhost,IP:127.0.0.1,IP:::1\n' \
    "$DNSDOMAIN" >"$d/tls/ext.cnf"
  openssl x509 -req -in "$d/tls/srv.csr" -CA "$d/tls/ca.pem" -CAkey "$d/tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$d/tls/ext.cnf" -out "$d/tls/cert.pem" >/dev/null 2>&1
  chmod 600 "$d/tls/key.pem" "$d/tls/ca.key"

  mkdir -p "$d/dc/run" "$d/dc/cache"
  local extra="\tpid directory = $d/dc/run\n\tncalrpc dir = $d/dc/run/ncalrpc\n"
  extra+="\twinbindd socket directory = $d/dc/run/winbindd\n\tntp signd socket directory = $d/dc/run/ntp_signd\n"
  extra+="\tload printers = no\n\tprinting = bsd\n\tprintcap name = /dev/null\n\tdisable spoolss = yes\n"
  extra+="\tldap server require strong auth = no\n"
  extra+="\ttls enabled = yes\n\ttls keyfile = $d/tls/key.pem\n\ttls certfile = $d/tls/cert.pem\n\ttls cafile = $d/tls/ca.pem\n"
  extra+="\tldb:nosync = true\n"
  sed -i "s|^\[global\]$|[global]\n$extra|" "$conf"
  : >"$d/provisioned"
}

# clone_from T: copy the provisioned domain in T (SAMBA_TEMPLATE) to DIR. Only smb.conf names
# absolute paths, so a copy with its paths rewritten is the same domain, ready in well under a
# second instead of a new provisioning. Each copy is a separate DC; they share the domain SID,
# the Administrator password and the test CA, which is what tests want.
clone_from() {
  local t="$1"
  grep -qi "^\s*realm = $REALM\$" "$t/dc/etc/smb.conf" || { say "template $t is not realm $REALM"; exit 1; }
  rm -rf "$DIR/dc" "$DIR/tls" "$DIR/provisioned" "$DIR/seeded"
  cp -a "$t/dc" "$t/tls" "$DIR/"
  rm -f "$DIR"/dc/run/*.pid
  sed -i "s|$t/|$DIR/|g" "$CONF"
  : >"$DIR/provisioned"
  say "cloned the provisioned domain from $t"
}

# start_inner runs in the namespace the DC will live in (the host's, or a fresh one with NETNS=1).
start_inner() {
  if [[ -f "$PIDFILE" ]] && is_ours "$(cat "$PIDFILE")"; then say "already running"; details; return 0; fi
  if [[ "$NETNS" != 1 ]]; then
    for port in 389 636 88 445; do
      if ss -Hltn "sport = :$port" | grep -q .; then
        say "port $port is already in use on this host; stop that server, or run with NETNS=1"; exit 1
      fi
    done
  fi
  [[ "${RESET:-0}" == 1 ]] && rm -rf "$DIR/dc" "$DIR/tls" "$DIR/provisioned" "$DIR/seeded"
  mkdir -p "$DIR/log"
  nsfiles "$DIR"

  if ! provisioned "$DIR"; then
    if [[ -n "${SAMBA_TEMPLATE:-}" ]]; then
      SAMBA_TEMPLATE= NETNS=0 "$SELF" provision "$SAMBA_TEMPLATE" "$REALM" 9>&-
      clone_from "$SAMBA_TEMPLATE"
    else
      provision_into "$DIR"
    fi
  fi

  grep -qE '^\s*interfaces = lo$' "$CONF" && grep -qE '^\s*bind interfaces only = Yes' "$CONF" || {
    say "refusing to start: $CONF is not restricted to loopback"; exit 1; }

  # Not through a shell function: a backgrounded function is a subshell, and $! would be its PID.
  unshare --mount --propagation private "$DIR/ns-exec.sh" samba -s "$CONF" -F --debug-stdout -M "$MODEL" \
    --maximum-runtime="$MAXRT" </dev/null >"$LOG" 2>&1 9>&- &
  echo $! >"$PIDFILE"   # unshare execs ns-exec.sh, which execs samba: this is samba's master PID
  if [[ "$NETNS" == 1 ]]; then : >"$DIR/netns"; else rm -f "$DIR/netns"; fi

  local up=0
  for _ in $(seq 1 240); do
    if ldapsearch -x -H ldap://127.0.0.1 -s base -b "" dnsHostName >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.25
  done
  if [[ $up != 1 ]]; then say "samba failed to start; last log lines:"; tail -30 "$LOG" >&2; exit 1; fi
  say "LDAP up after $(elapsed) s"

  if [[ ! -f "$DIR/seeded" ]]; then
    u16() { printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0; }
    {
      printf 'dn: %s\nchangetype: modify\nreplace: minPwdAge\nminPwdAge: 0\n-\nreplace: pwdHistoryLength\npwdHistoryLength: 0\n-\n\n' "$BASE"
      for u in alice bob carol; do
        printf 'dn: CN=%s,CN=Users,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s@%s\ngivenName: %s\nsn: Example\nmail: %s@%s\nunicodePwd:: %s\nuserAccountControl: 512\n\n' \
          "$u" "$BASE" "$u" "$u" "$DNSDOMAIN" "${u^}" "$u" "$DNSDOMAIN" "$(u16 "${u^}-Passw0rd!")"
      done
      for g in staff vpn-users; do
        printf 'dn: CN=%s,CN=Users,%s\nchangetype: add\nobjectClass: group\nsAMAccountName: %s\ngroupType: -2147483646\n\n' "$g" "$BASE" "$g"
      done
      printf 'dn: CN=staff,CN=Users,%s\nchangetype: modify\nadd: member\nmember: CN=alice,CN=Users,%s\nmember: CN=bob,CN=Users,%s\n-\n\n' "$BASE" "$BASE" "$BASE"
      printf 'dn: CN=vpn-users,CN=Users,%s\nchangetype: modify\nadd: member\nmember: CN=staff,CN=Users,%s\nmember: CN=carol,CN=Users,%s\n-\n\n' "$BASE" "$BASE" "$BASE"
    } >"$DIR/seed.ldif"
    LDAPTLS_CACERT="$DIR/tls/ca.pem" ldapmodify -c -x -H ldaps://127.0.0.1 -D "Administrator@$REALM" -w "$ADMIN_PASS" \
      -f "$DIR/seed.ldif" >"$DIR/seed.log" 2>&1 || { cat "$DIR/seed.log" >&2; exit 1; }
    : >"$DIR/seeded"
    say "seeded users and groups; ready after $(elapsed) s"
  fi
  details
}

case "$CMD" in
  start)
    install_packages
    mkdir -p "$DIR"
    exec 9>"$DIR.lock"; flock 9   # one start/stop at a time for DIR
    if [[ "$NETNS" == 1 && "${SAMBA_AD_IN_NETNS:-0}" != 1 ]]; then
      if [[ -f "$PIDFILE" ]] && is_ours "$(cat "$PIDFILE")"; then say "already running"; details; exit 0; fi
      # A fresh network namespace with only its loopback; it lives as long as samba does.
      SAMBA_AD_IN_NETNS=1 exec unshare --net bash -c 'ip link set lo up && exec "$0" start "$1" "$2"' "$SELF" "$DIR" "$REALM" 9>&-
    fi
    start_inner
    ;;
  provision)
    # Provision DIR once (no DC is started): the template that start clones with SAMBA_TEMPLATE.
    install_packages
    mkdir -p "$DIR"
    exec 9>"$DIR.lock"; flock 9
    if provisioned "$DIR"; then say "already provisioned: $DIR"; else provision_into "$DIR"; fi
    ;;
  stop)
    [[ -d "$DIR" ]] || { say "not running (no $DIR)"; exit 0; }
    exec 9>"$DIR.lock"; flock 9
    stop_dc
    ;;
  status)
    if [[ -f "$PIDFILE" ]] && is_ours "$(cat "$PIDFILE")"; then details; else say "not running"; exit 3; fi
    ;;
  *)
    echo "usage: $0 start|stop|status|provision [DIR] [REALM]" >&2; exit 2
    ;;
esac
