#!/usr/bin/env bash
# The AD import (issue #13) at size: the first full import of USERS users in GROUPS groups (nested
# in one integration group), an incremental cycle with CHANGES changed accounts, and gatewayd's
# RSS after each. The real daemon against a private Samba AD DC (scripts/samba-ad.sh, its own
# network namespace; gatewayd runs in that namespace too, so everything stays on its loopback),
# seeded by scripts/samba-ad-seed.sh. Root (network namespace, samba).
#
# usage: bench/adbench/import.sh
# env: USERS=10000 NGROUPS=200 CHANGES=10 SAMBA_MODEL=prefork|single  KEEP=1 (keep the work dir)
#      DC_DIR=DIR  keep the DC (and its seed) in DIR across runs: a later run with the same USERS and
#                  NGROUPS reuses the seeded DC (seeding 10,000 users takes minutes), and the DC is
#                  left running (stop it with scripts/samba-ad.sh stop DIR)
#
# The changes are new first names (givenName), mapped by default.
# Rounds, each with a fresh gatewayd process on the same data directory:
#   1. start: the interval loop's first cycle (a second after the start) is the full import;
#   2. CHANGES accounts get a new first name in AD; start again: that first cycle is incremental
#      (same DC, high-water mark kept), reading only the changed accounts.
# Cycle times are the daemon's own (the run's started/finished, read_ms = reading AD, apply_ms =
# writing users and groups, in `gatewayd ad status`; the rest is planning); RSS is
# VmRSS and VmHWM of the gatewayd process right after the cycle.
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS="${USERS:-10000}"; NGROUPS="${NGROUPS:-200}"; CHANGES="${CHANGES:-10}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/adimportbench.XXXXXX")"
DC="${DC_DIR:-$WORK/dc}"
GW_PID=""
cleanup() {
  if [[ -n "$GW_PID" ]]; then kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
  [[ -n "${DC_DIR:-}" ]] || scripts/samba-ad.sh stop "$DC" >/dev/null 2>&1 || true
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK" "$DC.lock"; else echo "# kept $WORK" >&2; fi
}
trap cleanup EXIT

go build -o "$WORK/gatewayd" ./cmd/gatewayd
NETNS=1 SAMBA_MODEL="${SAMBA_MODEL:-prefork}" SAMBA_TEMPLATE="${TMPDIR:-/tmp}/gatewayd-samba-ad-template" \
  scripts/samba-ad.sh start "$DC" >"$WORK/dc.env"
# shellcheck disable=SC1091
. "$WORK/dc.env"
if [[ -n "${DC_DIR:-}" && -f "$DC/bench-seed-$USERS-$NGROUPS.env" ]]; then
  cp "$DC/bench-seed-$USERS-$NGROUPS.env" "$WORK/seed.env"
  echo "# reusing the DC seeded earlier in $DC" >&2
else
  scripts/samba-ad-seed.sh "$DC" "$USERS" "$NGROUPS" bench >"$WORK/seed.env"
  [[ -z "${DC_DIR:-}" ]] || cp "$WORK/seed.env" "$DC/bench-seed-$USERS-$NGROUPS.env"
fi
# shellcheck disable=SC1091
. "$WORK/seed.env"
IN=(nsenter --net="$SAMBA_NETNS")

ADMIN_PORT=8470
cat >"$WORK/gatewayd.toml" <<EOF
data_dir = "$WORK/gwdata"
[log]
level = "warn"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[ldap]
listen = ""
[radius]
listen = []
[[ad]]
name = "corp"
domain = "$SAMBA_REALM"
urls = ["ldaps://127.0.0.1:636"]
ca_file = "$SAMBA_CA"
bind_dn = "CN=Administrator,CN=Users,$SAMBA_BASE_DN"
bind_password = "env:GW_BENCH_AD_PASSWORD"
[ad.import]
enabled = true
group = "$SEED_GROUP"
root = "$SEED_OU"
interval = "1h"
max_deletions = 1000000
EOF
export GW_BENCH_AD_PASSWORD='Admin-Passw0rd!'

status() { "${IN[@]}" curl -fsS -H "Authorization: Bearer $(cat "$WORK/gwdata/admin.token")" "http://127.0.0.1:$ADMIN_PORT/v1/ad/corp/status"; }
rss() { awk '/^VmRSS|^VmHWM/ {m[$1] = int($2 / 1024)} END {printf "RSS %d MB (peak %d MB)", m["VmRSS:"], m["VmHWM:"]}' "/proc/$GW_PID/status"; }

# cycle SINCE: reads a status on stdin; exit 0 when its last run started after SINCE (epoch
# seconds) and is over, printing its table row (NAME and MEM from the environment).
cycle() {
  python3 -c '
import json, os, sys
from datetime import datetime
st = json.load(sys.stdin)
r = st.get("last_run")
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")[:26] + "+00:00" if "." in s else s.replace("Z", "+00:00")).timestamp()
if not r or st.get("running") or t(r["started"]) <= float(sys.argv[1]):
    sys.exit(1)
if r["outcome"] != "success":
    sys.exit("cycle failed: " + json.dumps(r))
c = r["counts"]
print("\t".join(str(x) for x in [os.environ["NAME"], r["mode"], round((t(r["finished"]) - t(r["started"])) * 1000), r.get("read_ms"), r.get("apply_ms"),
      c["in_scope"], c["created"], c["updated"], c["groups"], c["failed"], os.environ["MEM"]]))
' "$1"
}

# round NAME: start gatewayd, wait for its first cycle, print one table row, stop it.
round() {
  local since; since="$(date +%s.%N)"
  "${IN[@]}" "$WORK/gatewayd" serve -config "$WORK/gatewayd.toml" >>"$WORK/gatewayd.log" 2>&1 &
  GW_PID=$!
  local st="" ok=0
  for _ in $(seq 1 3000); do
    kill -0 "$GW_PID" 2>/dev/null || { tail -20 "$WORK/gatewayd.log" >&2; exit 1; }
    if [[ -f "$WORK/gwdata/admin.token" ]] && st="$(status 2>/dev/null)" && NAME=x MEM=x cycle "$since" <<<"$st" >/dev/null 2>&1; then
      ok=1; break
    fi
    sleep 0.2
  done
  [[ $ok == 1 ]] || { echo "no finished cycle: $st" >&2; exit 1; }
  NAME="$1" MEM="$(rss)" cycle "$since" <<<"$st"
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=""
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3), Samba $(samba -V | cut -d' ' -f2) (${SAMBA_MODEL:-prefork})"
echo "# seeded $SEED_USERS users and $SEED_GROUPS groups (nested in $SEED_GROUP) in $SEED_SECONDS s"
printf 'round\tmode\tcycle_ms\tread_ms\tapply_ms\tin_scope\tcreated\tupdated\tgroups_changed\tfailed\tgatewayd memory after the cycle\n'
round "first full import"

LDIF="$WORK/changes.ldif"
: >"$LDIF"
for i in $(seq 1 "$CHANGES"); do
  n=$(( (i * 7919) % USERS + 1 ))
  printf 'dn: CN=bench%05d,%s\nchangetype: modify\nreplace: givenName\ngivenName: Changed%d-%s\n-\n\n' "$n" "$SEED_OU" "$i" "$(date +%s)" >>"$LDIF"
done
LDAPTLS_CACERT="$SAMBA_CA" "${IN[@]}" ldapmodify -x -H ldaps://127.0.0.1 -D "Administrator@$SAMBA_REALM" -w "$GW_BENCH_AD_PASSWORD" -f "$LDIF" >/dev/null
round "incremental, $CHANGES changed"
