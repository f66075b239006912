#!/usr/bin/env bash
# Cross-compile mesero for a Raspberry Pi without Docker and without rustup
# targets: Debian's packaged rustc (rustc-web, 1.85) + the target's Debian
# standard library + Debian's cross gcc (links, and builds the bundled
# SQLite C code). qemu-user runs the result for a smoke test.
#
#   scripts/cross-build.sh aarch64-unknown-linux-gnu       # Pi 3/4/5/Zero 2 W, 64-bit OS
#   scripts/cross-build.sh armv7-unknown-linux-gnueabihf   # 32-bit Raspberry Pi OS
#   scripts/cross-build.sh TARGET --locked                 # extra args go to cargo build
#
# Installs whatever is missing (apt-get only when the tool or library is
# absent), so it is cheap to re-run. Needs root (or sudo) only for that.
# Environment knobs:
#   RUST_DEB_VERSION  Debian version of rustc-web to install when it is missing
#                     (default: the one this script was verified with)
#   CARGO_TARGET_DIR  default target/cross (see below)
#   BIN_NAME          binary to report/smoke-test (default mesero)
#   SKIP_QEMU=1       do not install qemu-user / run the smoke test
set -euo pipefail

usage() { echo "usage: $0 aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf [cargo args...]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
TARGET=$1; shift

case "$TARGET" in
  aarch64-unknown-linux-gnu)
    DEB_ARCH=arm64; GCC=aarch64-linux-gnu-gcc; GCC_PKG=gcc-aarch64-linux-gnu
    QEMU=qemu-aarch64; QEMU_LD_PREFIX=/usr/aarch64-linux-gnu ;;   # cross sysroot
  armv7-unknown-linux-gnueabihf)
    DEB_ARCH=armhf; GCC=arm-linux-gnueabihf-gcc; GCC_PKG=gcc-arm-linux-gnueabihf
    QEMU=qemu-arm; QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf ;;
  *) usage ;;
esac

RUST_DEB_VERSION=${RUST_DEB_VERSION:-1.85.0+dfsg3-1~deb12u3}
BIN_NAME=${BIN_NAME:-mesero}
DEB_RUSTC=/usr/bin/rustc
export DEBIAN_FRONTEND=noninteractive

# Run as root directly (CI), or through sudo on a developer machine.
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install packages" >&2; exit 1; }
  SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

APT_UPDATED=0
apt_update() {
  # The foreign-architecture index can fail mid-sync on the mirror; a
  # failed update must not abort the script (the download below retries).
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root apt-get update -q || echo "warning: apt-get update reported errors; continuing" >&2
    APT_UPDATED=1
  fi
}
apt_install() { apt_update; as_root apt-get install -y -q --no-install-recommends "$@"; }

# 1. Debian's rustc (1.85). Kept apart from rustup's toolchain on PATH.
if [[ ! -x $DEB_RUSTC ]]; then
  echo "==> installing Debian rustc-web $RUST_DEB_VERSION"
  apt_install "rustc-web=$RUST_DEB_VERSION" "libstd-rust-web-dev=$RUST_DEB_VERSION"
fi
# The target std must come from exactly the same rustc build as the host
# compiler, so use the installed version (not the default pin) from here on.
RUSTC_DEB_VER=$(dpkg-query -W -f='${Version}' rustc-web)
RUST_MM=$(cut -d. -f1,2 <<<"$RUSTC_DEB_VER")   # e.g. 1.85 (part of a package name)

# 2. Cross C compiler/linker (also compiles SQLite for rusqlite "bundled")
#    and the target's C library headers. The headers are only a Recommends
#    of the compiler, so ask for them explicitly: without them gcc falls
#    back to the host's /usr/include and fails on bits/libc-header-start.h.
if ! command -v "$GCC" >/dev/null || [[ ! -f $QEMU_LD_PREFIX/include/stdio.h ]]; then
  echo "==> installing $GCC_PKG libc6-dev-$DEB_ARCH-cross"
  apt_install "$GCC_PKG" "libc6-dev-$DEB_ARCH-cross"
fi

# 3. qemu-user for the smoke test.
if [[ ${SKIP_QEMU:-0} != 1 ]] && ! command -v "$QEMU" >/dev/null; then
  echo "==> installing qemu-user"
  apt_install qemu-user
fi

# 4. The target's standard library, from Debian's foreign-arch packages.
#    A marker file records which rustc-web version it belongs to, so an
#    upgraded host rustc triggers a re-install instead of E0514 errors.
RUSTLIB=/usr/lib/rustlib/$TARGET
MARKER=$RUSTLIB/.debian-version
if [[ ! -f $MARKER || $(cat "$MARKER") != "$RUSTC_DEB_VER" ]]; then
  echo "==> installing the $TARGET standard library ($RUSTC_DEB_VER, :$DEB_ARCH)"
  if ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
    as_root dpkg --add-architecture "$DEB_ARCH"
    APT_UPDATED=0
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt's _apt user must be able to write the download directory.
  chmod 0777 "$work"
  pkgs=("libstd-rust-web-dev:$DEB_ARCH=$RUSTC_DEB_VER" "libstd-rust-web-$RUST_MM:$DEB_ARCH=$RUSTC_DEB_VER")
  ok=0
  for attempt in 1 2 3; do
    apt_update
    if (cd "$work" && apt-get download -q "${pkgs[@]}"); then ok=1; break; fi
    echo "warning: download attempt $attempt failed; refreshing the index" >&2
    APT_UPDATED=0; sleep 5
  done
  [[ $ok -eq 1 ]] || { echo "error: could not download ${pkgs[*]}" >&2; exit 1; }
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  [[ -d $work/root/usr/lib/rustlib/$TARGET/lib ]] || { echo "error: $TARGET std not found in the packages" >&2; exit 1; }
  as_root rm -rf "$RUSTLIB"
  as_root cp -a "$work/root/usr/lib/rustlib/$TARGET" /usr/lib/rustlib/
  echo "$RUSTC_DEB_VER" | as_root tee "$MARKER" >/dev/null
fi

# 5. Build. Own target dir: the host build uses rustup's rustc, and a
#    different compiler invalidates every fingerprint, so sharing target/
#    would make the two builds rebuild each other from scratch.
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cross}
TARGET_ENV=$(tr 'a-z-' 'A-Z_' <<<"$TARGET")
export RUSTC=$DEB_RUSTC
export "CC_${TARGET//-/_}=$GCC"
export "CARGO_TARGET_${TARGET_ENV}_LINKER=$GCC"
echo "==> $($RUSTC --version), linker $GCC, CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
start=$(date +%s)
# Only the shipped binary: the load tool (mesero-bench) is not for the Pi.
cargo build --release --target "$TARGET" --bin "$BIN_NAME" "$@"
end=$(date +%s)

BIN=$CARGO_TARGET_DIR/$TARGET/release/$BIN_NAME
[[ -f $BIN ]] || { echo "error: $BIN not built" >&2; exit 1; }
echo "==> built in $((end - start)) s"
echo "binary: $BIN"
echo "size:   $(stat -c %s "$BIN") bytes ($(du -h "$BIN" | cut -f1))"
file "$BIN" 2>/dev/null || true

# 6. Smoke test under qemu-user (no Pi needed).
if [[ ${SKIP_QEMU:-0} != 1 ]]; then
  echo "==> $QEMU -L $QEMU_LD_PREFIX $BIN --version"
  "$QEMU" -L "$QEMU_LD_PREFIX" "$BIN" --version
fi
