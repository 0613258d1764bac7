#!/usr/bin/env bash
# Installs the real protocol clients the test suite drives (Debian 12):
# ldap-utils (ldapsearch, ldappasswd, ldapwhoami) and freeradius-utils
# (radclient, radtest). Idempotent; does nothing when they are present.
set -euo pipefail

need=()
command -v ldapsearch >/dev/null 2>&1 && command -v ldappasswd >/dev/null 2>&1 || need+=(ldap-utils)
command -v radclient >/dev/null 2>&1 && command -v radtest >/dev/null 2>&1 || need+=(freeradius-utils)
# A Samba AD DC for the delegated-authentication tests (scripts/samba-ad.sh), and what that script uses.
command -v samba >/dev/null 2>&1 && command -v samba-tool >/dev/null 2>&1 || need+=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0

echo "test-deps: installing ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# With recommends, as in the Samba recipe seen working on a fresh Debian 12.
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
for b in ldapsearch ldappasswd radclient radtest samba samba-tool; do
  command -v "$b" >/dev/null 2>&1 || { echo "test-deps: $b still missing after install" >&2; exit 1; }
done
