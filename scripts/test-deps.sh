#!/usr/bin/env bash
# Installs the real protocol clients the test suite drives (Debian 12):
# ldap-utils (ldapsearch, ldappasswd, ldapwhoami), freeradius-utils
# (radclient, radtest), eapoltest, hostapd and wpasupplicant (a real 802.1X
# authenticator and supplicant, run in private network namespaces), a Samba
# AD DC, and the Linux LDAP consumers (SSSD 2.8, nslcd 0.9, their NSS and
# PAM modules, pamtester) that cmd/gatewayd/linux_clients_test.go runs
# inside private mount namespaces, and PostgreSQL 15 for the postgres store
# backend (internal/testutil/postgres.go, scripts/postgres.sh).
# Idempotent; does nothing when they are present.
#
# PostgreSQL comes without a cluster: Debian's postgresql-15 postinst would
# create and start a "main" cluster on port 5432. A createcluster.d drop-in
# (create_main_cluster = false, read by that postinst through the include_dir
# at the end of createcluster.conf) is in place for the install only, and a
# main cluster this run made anyway is dropped. The tests run their own
# servers with initdb, as the unprivileged system user gatewayd-pgtest.
#
# Installing the Linux consumers leaves the host as it was: they come
# without recommends (no nscd), no service is started (policy-rc.d) or
# enabled at boot, /etc/nsswitch.conf is put back byte for byte
# (libnss-sss's postinst appends sss to it), and the pam_sss, pam_ldap and
# pam_pwquality profiles that pam-auth-update enables in /etc/pam.d/common-*
# are disabled again. The tests bring their own nsswitch.conf, PAM service,
# sssd.conf and nslcd.conf and bind-mount them where only they see them.
set -euo pipefail

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need=()
command -v ldapsearch >/dev/null 2>&1 && command -v ldappasswd >/dev/null 2>&1 || need+=(ldap-utils)
command -v radclient >/dev/null 2>&1 && command -v radtest >/dev/null 2>&1 || need+=(freeradius-utils)
command -v eapol_test >/dev/null 2>&1 || need+=(eapoltest)
# A real 802.1X authenticator and supplicant (cmd/gatewayd/hostapd_test.go,
# across a veth pair in private network namespaces). Their services are
# neither started (policy-rc.d) nor enabled at boot: the test runs its own.
svcs=()
command -v hostapd >/dev/null 2>&1 && command -v hostapd_cli >/dev/null 2>&1 || { need+=(hostapd); svcs+=(hostapd); }
command -v wpa_supplicant >/dev/null 2>&1 && command -v wpa_cli >/dev/null 2>&1 || { need+=(wpasupplicant); svcs+=(wpa_supplicant); }
# A Samba AD DC for the delegated-authentication tests (scripts/samba-ad.sh), and what that script uses.
command -v samba >/dev/null 2>&1 && command -v samba-tool >/dev/null 2>&1 || need+=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind ldb-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
# Headless Chromium for the self-service page's browser test (cmd/gatewayd/portal_test.go), with a font to render text.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
have_pkg fonts-dejavu-core || need+=(fonts-dejavu-core)
# The Linux LDAP consumers (see above).
linux=()
command -v sssd >/dev/null 2>&1 && have_pkg sssd-ldap || linux+=(sssd-ldap)
have_pkg libnss-sss || linux+=(libnss-sss)
have_pkg libpam-sss || linux+=(libpam-sss)
command -v sssctl >/dev/null 2>&1 || linux+=(sssd-tools)
command -v nslcd >/dev/null 2>&1 || linux+=(nslcd)
have_pkg libnss-ldapd || linux+=(libnss-ldapd)
have_pkg libpam-ldapd || linux+=(libpam-ldapd)
command -v pamtester >/dev/null 2>&1 || linux+=(pamtester)
# PostgreSQL 15 server binaries (initdb, postgres, pg_ctl), run from their
# version directory, never as a packaged service. Without recommends: sysstat
# is a host-wide collector the tests do not need.
PGBIN=/usr/lib/postgresql/15/bin
pg=()
[ -x $PGBIN/initdb ] && [ -x $PGBIN/postgres ] && [ -x $PGBIN/pg_ctl ] || pg+=(postgresql-15)
# initdb and postgres refuse to run as root, and the tests run as root: the
# servers run as this system user. A dedicated user rather than nobody
# (nobody must own no files, and anything else running as nobody could read
# or kill the test servers) or postgres (its files and processes would mix
# with the host's own clusters). No home, no login shell: the Go tests start
# their servers as it with setuid, scripts/postgres.sh with setpriv.
PGUSER_TEST=gatewayd-pgtest
pguser=0
getent passwd $PGUSER_TEST >/dev/null 2>&1 || pguser=1
[ ${#need[@]} -eq 0 ] && [ ${#linux[@]} -eq 0 ] && [ ${#pg[@]} -eq 0 ] && [ $pguser -eq 0 ] && exit 0

all=("${need[@]}" "${linux[@]}" "${pg[@]}")
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root (or sudo) to apt-get install ${all[*]} and create user $PGUSER_TEST" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

if [ $pguser -eq 1 ]; then
  echo "test-deps: creating system user $PGUSER_TEST" >&2
  $sudo useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "gatewayd test PostgreSQL servers" $PGUSER_TEST
fi
[ ${#all[@]} -eq 0 ] && exit 0
echo "test-deps: installing ${all[*]}" >&2

# What to put back on exit, whatever happens to the install.
restore=()
nss_backup=""
cleanup() {
  for r in "${restore[@]}"; do
    case $r in
      nsswitch) $sudo cp -p "$nss_backup" /etc/nsswitch.conf && $sudo rm -f "$nss_backup" ;;
      policy) $sudo rm -f /usr/sbin/policy-rc.d ;;
      pgcreate) $sudo rm -f "$pg_dropin"; [ $pg_dropin_dir -eq 0 ] || $sudo rmdir --ignore-fail-on-non-empty "${pg_dropin%/*}" ;;
    esac
  done
  restore=()
}
trap cleanup EXIT

if [ ${#linux[@]} -gt 0 ] || [ ${#svcs[@]} -gt 0 ] || [ ${#pg[@]} -gt 0 ]; then
  # Keep the postinsts (invoke-rc.d, deb-systemd-invoke) from starting
  # sssd, nslcd, hostapd, wpa_supplicant or postgresql. An existing policy-rc.d is the
  # host's: leave it be.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# scripts/test-deps.sh: no service starts during this install\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 0755 /usr/sbin/policy-rc.d
    restore+=(policy)
  fi
fi

if [ ${#linux[@]} -gt 0 ]; then
  # nslcd and libnss-ldapd ask debconf questions: answer them so nothing
  # waits for a terminal, and so libnss-ldapd enables ldap for no database.
  $sudo debconf-set-selections <<'SEL'
nslcd nslcd/ldap-uris string ldap://127.0.0.1/
nslcd nslcd/ldap-base string dc=example,dc=invalid
nslcd nslcd/ldap-auth-type select none
nslcd nslcd/ldap-starttls boolean false
libnss-ldapd libnss-ldapd/nsswitch multiselect
libnss-ldapd libnss-ldapd/clean_nsswitch boolean false
SEL
  # libnss-sss's postinst appends sss to passwd, group, shadow, netgroup,
  # services and automount: keep a copy to put back.
  nss_backup=$(mktemp)
  $sudo cp -p /etc/nsswitch.conf "$nss_backup"
  restore+=(nsswitch)
fi

pg_dropin=/etc/postgresql-common/createcluster.d/zz-gatewayd-test-deps.conf
pg_common_before=0
pg_main_before=0
pg_dropin_dir=0
if [ ${#pg[@]} -gt 0 ]; then
  have_pkg postgresql-common && pg_common_before=1
  [ -e /etc/postgresql/15/main ] && pg_main_before=1
  # The directory may predate postgresql-common: dpkg keeps an existing
  # directory, and read_conf_file in PgCommon.pm reads it once the package's
  # createcluster.conf (which ends with include_dir on it) is configured,
  # before postgresql-15's postinst asks for create_main_cluster (checked:
  # `pg_conftool createcluster.conf show -bs create_main_cluster`, the
  # postinst's own query, answers off with the drop-in and nothing without).
  [ -d "${pg_dropin%/*}" ] || pg_dropin_dir=1
  $sudo mkdir -p "${pg_dropin%/*}"
  printf '# scripts/test-deps.sh, during its install only: no main cluster\ncreate_main_cluster = false\n' | $sudo tee "$pg_dropin" >/dev/null
  restore+=(pgcreate)
fi

$sudo apt-get update -qq >/dev/null
if [ ${#need[@]} -gt 0 ]; then
  # With recommends, as in the Samba recipe seen working on a fresh Debian 12.
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  # hostapd and wpa_supplicant installed by this run: not running, not at boot.
  for svc in "${svcs[@]}"; do
    if [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    else
      $sudo invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
      $sudo update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
fi

if [ ${#linux[@]} -gt 0 ]; then
  # Without recommends: nslcd recommends nscd, a host-wide NSS cache, and
  # libpam-sss the sssd metapackage with every backend. libpam-sss depends
  # on libpam-pwquality, whose profile would tighten the host's passwd.
  pwq_before=0
  have_pkg libpam-pwquality && pwq_before=1
  $sudo apt-get install -y -qq --no-install-recommends "${linux[@]}" >/dev/null
  # pam-auth-update --package (in libpam-sss's, libpam-ldapd's and
  # libpam-pwquality's postinst) enabled their profiles in
  # /etc/pam.d/common-*: disable the ones this run installed, so host
  # logins and password changes do not go through them.
  profiles=()
  for p in "${linux[@]}"; do
    case $p in
      libpam-sss) profiles+=(sss) ;;
      libpam-ldapd) profiles+=(ldap) ;;
    esac
  done
  [ $pwq_before -eq 0 ] && have_pkg libpam-pwquality && profiles+=(pwquality)
  if [ ${#profiles[@]} -gt 0 ]; then
    $sudo pam-auth-update --disable "${profiles[@]}"
  fi
  # Nor do the daemons run, now or at boot (policy-rc.d may have let them
  # start if the host's own allows it): the tests run their own.
  for p in "${linux[@]}"; do
    case $p in
      nslcd) svc=nslcd ;;
      sssd-ldap) svc=sssd ;;
      *) continue ;;
    esac
    if [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    else
      $sudo invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
      $sudo update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
fi
if [ ${#pg[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --no-install-recommends "${pg[@]}" >/dev/null
  # Should the drop-in not have been honoured, drop the cluster this run made.
  if [ $pg_main_before -eq 0 ] && [ -e /etc/postgresql/15/main ]; then
    echo "test-deps: dropping the main cluster the postgresql-15 install created" >&2
    $sudo pg_dropcluster --stop 15 main
  fi
  # postgresql.service (from postgresql-common) starts every cluster at boot;
  # there is none, and a postgresql-common this run installed stays off.
  if [ $pg_common_before -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now postgresql.service >/dev/null 2>&1 || true
    else
      $sudo invoke-rc.d postgresql stop >/dev/null 2>&1 || true
      $sudo update-rc.d postgresql disable >/dev/null 2>&1 || true
    fi
  fi
fi
cleanup

for b in $PGBIN/initdb $PGBIN/postgres $PGBIN/pg_ctl; do
  [ -x "$b" ] || { echo "test-deps: $b still missing after install" >&2; exit 1; }
done
getent passwd $PGUSER_TEST >/dev/null 2>&1 || { echo "test-deps: user $PGUSER_TEST still missing" >&2; exit 1; }
for b in ldapsearch ldappasswd radclient radtest eapol_test hostapd hostapd_cli wpa_supplicant wpa_cli samba samba-tool sssd sssctl nslcd pamtester unshare nsenter; do
  command -v "$b" >/dev/null 2>&1 || { echo "test-deps: $b still missing after install" >&2; exit 1; }
done
