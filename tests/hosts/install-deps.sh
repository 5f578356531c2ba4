#!/bin/sh
# Root, once, on a fresh Debian 12 host: everything the emulated test hosts (tests/hosts) need.
#  - ppc64el as a foreign architecture, so `apt-get download PKG:ppc64el` resolves (the x86_64
#    host's packages are amd64, the machine's own architecture);
#  - qemu-system-ppc (qemu-system-ppc64) and qemu-system-x86 (qemu-system-x86_64, with SeaBIOS),
#    and qemu-system-data, which ships the firmware the POWER modes load: vof.bin (nested,
#    pseries x-vof) and skiboot.lid (powernv9);
#  - cpio, only so tests/hosts/test_emulated.py can read our archives back with cpio(1);
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
# indexes we need are usable, and fail clearly when they are not.
if ! $sudo apt-get update -qq; then
  echo "install-deps: apt-get update reported errors; checking the package indexes" >&2
fi
for meta in linux-image-powerpc64le:ppc64el linux-image-amd64:amd64; do
  apt-cache show "$meta" >/dev/null 2>&1 || {
    echo "install-deps: no package index for $meta (apt-get update failed?)" >&2; exit 1; }
done
$sudo apt-get install -y -qq --no-install-recommends qemu-system-ppc qemu-system-x86 qemu-system-data cpio \
  python3 >/dev/null
# Fail here, not later in a test, when the firmware is not where QEMU looks for it.
for f in /usr/share/qemu/vof.bin /usr/share/qemu/skiboot.lid /usr/share/seabios/bios-256k.bin; do
  [ -f "$f" ] || { echo "install-deps: $f missing after install" >&2; exit 1; }
done
command -v qemu-system-ppc64 >/dev/null
command -v qemu-system-x86_64 >/dev/null
