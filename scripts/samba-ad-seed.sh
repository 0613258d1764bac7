#!/usr/bin/env bash
# Seed a Samba AD DC started by scripts/samba-ad.sh with many users and groups, fast: one LDIF,
# one ldapadd connection (over LDAPS, inside the DC's network namespace when it has one).
#
# usage: scripts/samba-ad-seed.sh DIR USERS GROUPS [PREFIX]
#   DIR     the DC's directory (as given to samba-ad.sh start); the DC must be running
#   USERS   number of users: PREFIX00001 ... (givenName, sn, mail and UPN set; enabled, no password)
#   GROUPS  number of groups PREFIX-g000 ...: user i is a direct member of group (i-1) % GROUPS
#   PREFIX  default "seed"
# Everything goes into a new OU=PREFIX under the base DN: the users, the groups, and the
# integration group PREFIX-all whose members are the GROUPS groups (so every user is a nested
# member of it). With GROUPS=1, PREFIX-g000 holds every user directly (a large group).
# env: PASSWORDS=K  give the first K users the password "Seed-Pw-<i>!" (each costs Samba ~20 ms
#                   of key derivation; without a password the account is 544: enabled, password
#                   not required, and a bind with it fails)
# Prints KEY=VALUE lines on stdout: SEED_OU, SEED_GROUP (the integration group's DN), SEED_USERS,
# SEED_GROUPS, SEED_SECONDS.
#
# Measured here (Samba 4.17, single process model, shared 2-core machine): ldapadd adds about 300-400
# users a second without passwords; ldbadd on a stopped DC's sam.ldb was slower (1,000 users 6.1 s
# against 3.8 s over LDAP), so this goes over LDAP.
set -euo pipefail
DIR="${1:?usage: samba-ad-seed.sh DIR USERS GROUPS [PREFIX]}"
USERS="${2:?users}"
NGROUPS="${3:?groups}"
PREFIX="${4:-seed}"
PASSWORDS="${PASSWORDS:-0}"
HERE="$(cd "$(dirname "$0")" && pwd)"
[[ "$USERS" =~ ^[0-9]+$ && "$NGROUPS" =~ ^[0-9]+$ && "$NGROUPS" -ge 1 && "$USERS" -le 99999 ]] ||
  { echo "samba-ad-seed: USERS must be 0-99999 and GROUPS at least 1" >&2; exit 2; }
[[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,11}$ ]] || { echo "samba-ad-seed: PREFIX must be 1-12 lower-case letters or digits" >&2; exit 2; }

ENV="$("$HERE/samba-ad.sh" status "$DIR")" || { echo "samba-ad-seed: no DC running for $DIR" >&2; exit 1; }
eval "$(grep -E '^SAMBA_(NETNS|BASE_DN|REALM|CA)=' <<<"$ENV")"
ADMIN_PASS="${ADMIN_PASS:-Admin-Passw0rd!}"
DNSDOMAIN="${SAMBA_REALM,,}"
OU="OU=$PREFIX,$SAMBA_BASE_DN"
T0=$(date +%s.%N)

LDIF="$DIR/seed-$PREFIX.ldif"
awk -v ou="$OU" -v p="$PREFIX" -v n="$USERS" -v g="$NGROUPS" -v dom="$DNSDOMAIN" -v pw="$PASSWORDS" '
function u16b64(s,   cmd, out) {  # the quoted password, UTF-16LE, base64
  cmd = "printf %s \"\\\"" s "\\\"\" | iconv -f UTF-8 -t UTF-16LE | base64 -w0"
  cmd | getline out; close(cmd); return out
}
BEGIN {
  printf "dn: %s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, p
  for (i = 1; i <= n; i++) {
    u = sprintf("%s%05d", p, i)
    printf "dn: CN=%s,%s\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s@%s\n", u, ou, u, u, dom
    printf "givenName: Given%d\nsn: Sur%d\ndisplayName: Given%d Sur%d\nmail: %s@%s\n", i, i, i, i, u, dom
    if (i <= pw) printf "unicodePwd:: %s\nuserAccountControl: 512\n\n", u16b64("Seed-Pw-" i "!")
    else printf "userAccountControl: 544\n\n"
  }
  for (j = 0; j < g; j++) {
    printf "dn: CN=%s-g%03d,%s\nobjectClass: group\nsAMAccountName: %s-g%03d\n", p, j, ou, p, j
    for (i = j + 1; i <= n; i += g) printf "member: CN=%s%05d,%s\n", p, i, ou
    printf "\n"
  }
  printf "dn: CN=%s-all,%s\nobjectClass: group\nsAMAccountName: %s-all\n", p, ou, p
  for (j = 0; j < g; j++) printf "member: CN=%s-g%03d,%s\n", p, j, ou
  printf "\n"
}' >"$LDIF"

run=()
[[ -n "${SAMBA_NETNS:-}" ]] && run=(nsenter --net="$SAMBA_NETNS")
LDAPTLS_CACERT="$SAMBA_CA" "${run[@]}" ldapadd -x -H ldaps://127.0.0.1 -D "Administrator@$SAMBA_REALM" -w "$ADMIN_PASS" \
  -f "$LDIF" >"$DIR/seed-$PREFIX.log" 2>&1 || { tail -5 "$DIR/seed-$PREFIX.log" >&2; exit 1; }
secs=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
echo "samba-ad-seed: $USERS users and $NGROUPS groups under $OU in $secs s" >&2
cat <<OUT
SEED_OU=$OU
SEED_GROUP=CN=$PREFIX-all,$OU
SEED_USERS=$USERS
SEED_GROUPS=$NGROUPS
SEED_SECONDS=$secs
OUT
