#!/usr/bin/env bash
# Runs the .deb's maintainer scripts (debian/ plus cargo-deb's systemd
# snippets) for real, with dpkg, in a scratch root, and checks what they
# leave:
#   1. dpkg -i on a system without the mesero user or the gpio/i2c groups
#      (postinst configure, first install);
#   2. postinst configure again, as dpkg-reconfigure and upgrades run it,
#      after an admin removed the user from i2c and loosened the config;
#   3. the same with a dpkg-statoverride on the config (left alone);
#   4. dpkg -i again (a reinstall: prerm/postrm upgrade, postinst
#      configure with the old version);
#   5. dpkg --remove, then dpkg --purge with a database in /var/lib/mesero.
# After each configure: one system user mesero (primary group mesero, in
# gpio and i2c, home /var/lib/mesero, no login shell), system groups,
# /etc/mesero/mesero.toml root:mesero 0640, /var/lib/mesero mesero:mesero
# 0750, the same uid every time. Purge keeps /var/lib/mesero and its
# database, and the user; it removes /etc/mesero.
#
# The scratch root is this machine's / under an overlay whose upper layer
# is a tmpfs, in a private mount namespace (unshare), entered with chroot:
# dpkg, useradd and the scripts see the real Debian system, and every write
# lands in the tmpfs, which is gone when the namespace ends. The host's
# users, groups and dpkg database are checked to be unchanged afterwards.
# /run in the scratch root is empty, so the systemd snippets skip
# systemctl and never reach the host's systemd.
#
# Needs root, unshare (util-linux) and an overlayfs-capable kernel; no
# network. The package may be of any architecture (CI's is arm64): the
# binary is never run, only the scripts (dpkg is told to overlook the
# architecture and the dependencies).
#
# Usage: scripts/deb-maintainer-scripts.sh PACKAGE.deb
set -euo pipefail

fail() {
  echo "error: $*" >&2
  exit 1
}

# --- 3. Inside the scratch root (chroot): the checks. ---------------------
if [[ ${1:-} == --chrooted ]]; then
  deb=$2
  CONF=/etc/mesero/mesero.toml
  STATE=/var/lib/mesero

  # mode PATH: "owner:group octal-mode"
  mode() { stat -c '%U:%G %a' "$1"; }

  # Everything a configure must leave; prints the user's uid.
  check_configured() {
    local when=$1 entry name uid gid home shell group gids
    entry=$(getent passwd mesero) || fail "$when: no mesero user"
    IFS=: read -r name _ uid gid _ home shell <<<"$entry"
    ((uid > 0 && uid < 1000)) || fail "$when: mesero has uid $uid, not a system uid"
    [[ $home == "$STATE" ]] || fail "$when: mesero's home is $home"
    [[ $shell == /usr/sbin/nologin ]] || fail "$when: mesero's shell is $shell"
    [[ $(getent group mesero | cut -d: -f3) == "$gid" ]] ||
      fail "$when: mesero's primary group is not mesero"
    for group in mesero gpio i2c; do
      gids=$(getent group "$group" | cut -d: -f3) || fail "$when: no group $group"
      ((gids < 1000)) || fail "$when: group $group has gid $gids, not a system gid"
      [[ $(grep -c "^$group:" /etc/group) == 1 ]] || fail "$when: $group is in /etc/group more than once"
    done
    [[ $(grep -c '^mesero:' /etc/passwd) == 1 ]] || fail "$when: mesero is in /etc/passwd more than once"
    [[ " $(id -nG mesero) " == *" gpio "* && " $(id -nG mesero) " == *" i2c "* ]] ||
      fail "$when: mesero is in $(id -nG mesero), not gpio and i2c"
    [[ $(mode "$STATE") == "mesero:mesero 750" ]] || fail "$when: $STATE is $(mode "$STATE")"
    echo "$uid"
  }

  config_is() {
    [[ $(mode "$CONF") == "$2" ]] || fail "$1: $CONF is $(mode "$CONF"), not $2"
  }

  # A system as on first install: no mesero, no device groups. Only the
  # scratch root changes.
  if dpkg -s mesero >/dev/null 2>&1; then dpkg --purge mesero; fi
  if getent passwd mesero >/dev/null; then userdel mesero; fi
  for group in mesero gpio i2c; do
    if getent group "$group" >/dev/null; then groupdel "$group"; fi
  done
  rm -rf "$STATE" /etc/mesero
  dpkg-statoverride --remove "$CONF" >/dev/null 2>&1 || true

  install_deb() { dpkg --force-architecture --force-depends -i "$deb"; }

  echo "--- 1. dpkg -i (first install)"
  install_deb || fail "first install failed"
  uid=$(check_configured "first install")
  config_is "first install" "root:mesero 640"
  if command -v deb-systemd-helper >/dev/null; then
    [[ -L /etc/systemd/system/multi-user.target.wants/mesero.service ]] ||
      fail "first install: mesero.service is not enabled"
  fi

  echo "--- 2. postinst configure again, after an admin's changes"
  gpasswd --delete mesero i2c >/dev/null
  chmod 0644 "$CONF"
  version=$(dpkg-query -W -f '${Version}' mesero)
  # The environment dpkg gives a maintainer script (deb-systemd-helper
  # refuses to run without it).
  postinst() {
    DPKG_MAINTSCRIPT_PACKAGE=mesero DPKG_MAINTSCRIPT_NAME=postinst \
      /var/lib/dpkg/info/mesero.postinst "$@"
  }
  postinst configure "$version" || fail "second configure: postinst failed"
  again=$(check_configured "second configure")
  [[ $again == "$uid" ]] || fail "second configure: the uid changed from $uid to $again"
  config_is "second configure" "root:mesero 640"

  echo "--- 3. postinst configure with a dpkg-statoverride on the config"
  dpkg-statoverride --update --add root root 0600 "$CONF"
  postinst configure "$version" || fail "statoverride: postinst failed"
  config_is "statoverride" "root:root 600"
  dpkg-statoverride --remove "$CONF"
  chown root:mesero "$CONF"
  chmod 0640 "$CONF"

  echo "--- 4. dpkg -i again (reinstall)"
  install_deb || fail "reinstall failed"
  again=$(check_configured "reinstall")
  [[ $again == "$uid" ]] || fail "reinstall: the uid changed from $uid to $again"
  config_is "reinstall" "root:mesero 640"

  echo "--- 5. dpkg --remove, then --purge"
  echo "the restaurant's events" >"$STATE/mesero.db"
  chown mesero:mesero "$STATE/mesero.db"
  dpkg --remove mesero || fail "remove failed"
  [[ -f $CONF ]] || fail "remove: the config (a conffile) is gone"
  out=$(dpkg --purge mesero 2>&1) || fail "purge failed: $out"
  echo "$out"
  [[ $(cat "$STATE/mesero.db" 2>/dev/null) == "the restaurant's events" ]] ||
    fail "purge: $STATE/mesero.db is gone or changed"
  [[ -d $STATE ]] || fail "purge: $STATE is gone"
  [[ $out == *"kept $STATE (database)"* ]] || fail "purge: no note that $STATE was kept"
  [[ ! -e /etc/mesero ]] || fail "purge: /etc/mesero is still there"
  [[ ! -e /etc/systemd/system/multi-user.target.wants/mesero.service ]] ||
    fail "purge: mesero.service is still enabled"
  getent passwd mesero >/dev/null || fail "purge: the mesero user is gone"
  if dpkg -s mesero >/dev/null 2>&1; then fail "purge: dpkg still lists mesero"; fi
  echo "ok: postinst configure x3 (install, again, statoverride), reinstall, remove, purge"
  exit 0
fi

# --- 2. In a private mount namespace: build the scratch root. -------------
if [[ ${1:-} == --namespace ]]; then
  deb=$2 scratch=$3
  mount -t tmpfs -o mode=0755 mesero-scratch "$scratch"
  mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
  mount -t overlay mesero-root \
    -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
  root=$scratch/root
  # The scripts write to /dev/null; /run and /tmp start empty.
  mount --rbind /dev "$root/dev"
  mount --rbind /proc "$root/proc"
  mount -t tmpfs tmpfs "$root/run"
  mount -t tmpfs tmpfs "$root/tmp"
  cp "$deb" "$root/tmp/mesero.deb"
  cp "$0" "$root/tmp/deb-maintainer-scripts.sh"
  exec chroot "$root" /bin/bash /tmp/deb-maintainer-scripts.sh --chrooted /tmp/mesero.deb
fi

# --- 1. On the host. ---------------------------------------------------------
[[ $# -eq 1 && -f $1 ]] || fail "usage: $0 PACKAGE.deb"
[[ $(id -u) -eq 0 ]] || fail "needs root (useradd, dpkg, mount)"
deb=$(realpath "$1")

# What must be the same afterwards.
host_state() {
  sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/dpkg/status
  ls -ld /var/lib/mesero /etc/mesero 2>&1 || true
}
before=$(host_state)
scratch=$(mktemp -d)
trap 'rmdir "$scratch"' EXIT
unshare --mount --propagation private -- "$(realpath "$0")" --namespace "$deb" "$scratch"
[[ $(host_state) == "$before" ]] || fail "the host's users, groups or packages changed"
echo "ok: the host is unchanged"
