#!/usr/bin/env bash
# Installs the real protocol clients the test suite drives (Debian 12):
# ldap-utils (ldapsearch, ldappasswd, ldapwhoami), freeradius-utils
# (radclient, radtest), eapoltest, hostapd and wpasupplicant (a real 802.1X
# authenticator and supplicant, run in private network namespaces), a Samba
# AD DC, and the Linux LDAP consumers (SSSD 2.8, nslcd 0.9, their NSS and
# PAM modules, pamtester) that cmd/gatewayd/linux_clients_test.go runs
# inside private mount namespaces.
# Idempotent; does nothing when they are present.
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
[ ${#need[@]} -eq 0 ] && [ ${#linux[@]} -eq 0 ] && exit 0

all=("${need[@]}" "${linux[@]}")
echo "test-deps: installing ${all[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root (or sudo) to apt-get install ${all[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# What to put back on exit, whatever happens to the install.
restore=()
nss_backup=""
cleanup() {
  for r in "${restore[@]}"; do
    case $r in
      nsswitch) $sudo cp -p "$nss_backup" /etc/nsswitch.conf && $sudo rm -f "$nss_backup" ;;
      policy) $sudo rm -f /usr/sbin/policy-rc.d ;;
    esac
  done
  restore=()
}
trap cleanup EXIT

if [ ${#linux[@]} -gt 0 ] || [ ${#svcs[@]} -gt 0 ]; then
  # Keep the postinsts (invoke-rc.d, deb-systemd-invoke) from starting
  # sssd, nslcd, hostapd or wpa_supplicant. An existing policy-rc.d is the
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
cleanup

for b in ldapsearch ldappasswd radclient radtest eapol_test hostapd hostapd_cli wpa_supplicant wpa_cli samba samba-tool sssd sssctl nslcd pamtester unshare nsenter; do
  command -v "$b" >/dev/null 2>&1 || { echo "test-deps: $b still missing after install" >&2; exit 1; }
done
