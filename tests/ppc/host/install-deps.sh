#!/bin/sh
# Root, once, on a fresh Debian 12 host: everything tests/ppc/host/power.py needs.
#  - ppc64el as a foreign architecture, so `apt-get download PKG:ppc64el` resolves;
#  - qemu-system-ppc (qemu-system-ppc64) and qemu-system-data, which ships the
#    firmware the modes load: vof.bin (nested, pseries x-vof) and skiboot.lid (powernv9);
#  - cpio, only so tests/ppc/test_power_host.py can read our archives back with cpio(1);
#  - dpkg-deb comes with dpkg; python3.11 is Debian 12's python3 (host byte-compiles).
# Idempotent; prints nothing on success except apt's own summary lines.
set -eu
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
case " $(dpkg --print-foreign-architectures | tr '\n' ' ') " in
  *" ppc64el "*) ;;
  *) $sudo dpkg --add-architecture ppc64el ;;
esac
# A mirror mid-sync can fail one index (seen: bookworm-security ppc64el); go on when the
# ppc64el index we need is usable, and fail clearly when it is not.
if ! $sudo apt-get update -qq; then
  echo "install-deps: apt-get update reported errors; checking the ppc64el index" >&2
fi
apt-cache show linux-image-powerpc64le:ppc64el >/dev/null 2>&1 || {
  echo "install-deps: no ppc64el package index (apt-get update failed?)" >&2; exit 1; }
$sudo apt-get install -y -qq --no-install-recommends qemu-system-ppc qemu-system-data cpio python3 >/dev/null
# Fail here, not later in a test, when the firmware is not where QEMU looks for it.
for f in /usr/share/qemu/vof.bin /usr/share/qemu/skiboot.lid; do
  [ -f "$f" ] || { echo "install-deps: $f missing after install" >&2; exit 1; }
done
command -v qemu-system-ppc64 >/dev/null
