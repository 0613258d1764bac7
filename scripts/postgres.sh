#!/usr/bin/env bash
# A private PostgreSQL 15 server on loopback for humans and bench scripts
# (Debian 12's postgresql-15, installed by scripts/test-deps.sh). The Go
# tests start their own through internal/testutil.StartPostgres instead.
#
# usage: scripts/postgres.sh start DIR PORT | stop DIR | restart DIR | status DIR
#   DIR   the data directory; start runs initdb when it is missing or empty
#   PORT  TCP port on 127.0.0.1 (start remembers it in DIR/gatewayd.conf,
#         so restart and a later start without PORT reuse it)
# env:
#   PGBIN  server binaries (default /usr/lib/postgresql/15/bin)
#
# start prints the DSN on stdout, e.g.
#   postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
# progress goes to stderr; the server log is DIR/postgres.log. start is
# idempotent: a server already running on DIR is reported again.
#
# What it sets up, and why:
#   - superuser postgres, trust authentication from loopback and the unix
#     socket only (pg_hba.conf has no other line), listen_addresses =
#     127.0.0.1: a throwaway server that nothing beyond this host can reach;
#   - the unix socket in DIR, not /var/run/postgresql (which belongs to the
#     host's packaged clusters and to the postgres user);
#   - fsync on (durability is what the store tests check), shared_buffers
#     16MB and max_connections 100, so several servers fit on a small host;
#   - run as root, the server runs as the system user gatewayd-pgtest
#     (scripts/test-deps.sh creates it): initdb and postgres refuse root.
set -euo pipefail

CMD="${1:-}"
DIR="${2:-}"
PORT="${3:-}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
RUNAS=gatewayd-pgtest
say() { echo "postgres: $*" >&2; }
die() { say "$*"; exit 1; }
usage() { die "usage: $0 start DIR PORT | stop DIR | restart DIR | status DIR"; }

[ -n "$CMD" ] && [ -n "$DIR" ] || usage
DIR="$(realpath -m -- "$DIR")"
for b in initdb pg_ctl postgres; do
  [ -x "$PGBIN/$b" ] || die "$PGBIN/$b not found: run scripts/test-deps.sh (installs postgresql-15)"
done

# The PG* variables of the caller's shell (PGDATA, PGPORT, PGHOST...) must
# not redirect the server or pg_ctl.
for v in $(compgen -e | grep '^PG' || true); do
  [ "$v" = PGBIN ] || unset "$v"
done

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    getent passwd "$RUNAS" >/dev/null || die "user $RUNAS missing: run scripts/test-deps.sh"
    setpriv --reuid="$RUNAS" --regid="$RUNAS" --clear-groups -- "$@"
  else
    "$@"
  fi
}

dsn() {
  local port
  port=$(sed -n "s/^port = \([0-9]*\)$/\1/p" "$DIR/gatewayd.conf")
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

running() { [ -f "$DIR/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" status -D "$DIR" >/dev/null 2>&1; }

init() {
  mkdir -p -- "$DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$RUNAS:$RUNAS" -- "$DIR"
  fi
  chmod 0700 -- "$DIR"
  as_pg test -w "$DIR" -a -x "$DIR" ||
    die "$RUNAS cannot reach $DIR: every parent directory needs o+x (or pick a DIR under /tmp)"
  say "initdb $DIR"
  as_pg "$PGBIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 --locale=C --no-instructions >/dev/null
  as_pg tee "$DIR/pg_hba.conf" >/dev/null <<'HBA'
# scripts/postgres.sh: a throwaway test server, trusted from this host only
local all all              trust
host  all all 127.0.0.1/32 trust
HBA
  as_pg tee -a "$DIR/postgresql.conf" >/dev/null <<'CONF'

# scripts/postgres.sh (port and socket directory are in gatewayd.conf)
listen_addresses = '127.0.0.1'
fsync = on
shared_buffers = 16MB
max_connections = 100
include = 'gatewayd.conf'
CONF
}

start() {
  if running; then
    say "already running on $DIR"
    dsn
    return
  fi
  if [ ! -f "$DIR/PG_VERSION" ]; then
    [ -z "$(ls -A -- "$DIR" 2>/dev/null)" ] || die "$DIR is neither empty nor a PostgreSQL data directory"
    [ -n "$PORT" ] || usage
    init
  fi
  if [ -z "$PORT" ]; then
    [ -f "$DIR/gatewayd.conf" ] || die "no PORT given and none recorded in $DIR/gatewayd.conf"
  else
    case $PORT in *[!0-9]*) die "PORT must be a number, not $PORT" ;; esac
    # A unix socket path is at most 107 bytes.
    [ ${#DIR} -le 90 ] || die "DIR is too long for a unix socket path ($DIR)"
    printf "port = %s\nunix_socket_directories = '%s'\n" "$PORT" "$DIR" | as_pg tee "$DIR/gatewayd.conf" >/dev/null
  fi
  say "starting on $DIR"
  # -w: pg_ctl waits until the server accepts connections (up to -t s).
  as_pg "$PGBIN/pg_ctl" start -D "$DIR" -l "$DIR/postgres.log" -w -t 120 -s ||
    { tail -n 20 "$DIR/postgres.log" >&2 || true; die "start failed (log: $DIR/postgres.log)"; }
  dsn
}

stop() {
  if ! running; then
    say "not running on $DIR"
    return
  fi
  say "stopping $DIR"
  # fast: ends open sessions (which is what a restart during a test wants)
  # and checkpoints; smart would wait for every client to leave.
  as_pg "$PGBIN/pg_ctl" stop -D "$DIR" -m fast -w -t 120 -s
}

case $CMD in
  start) start ;;
  stop) stop ;;
  restart) PORT=""; stop; start ;;
  status) if running; then say "running on $DIR"; dsn; else say "not running on $DIR"; exit 3; fi ;;
  *) usage ;;
esac
