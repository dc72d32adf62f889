#!/bin/sh
# Extracts what the stand-in guest image (test/guest/standin-image.ts) needs: Debian bookworm's
# i386 kernel (686, non-PAE) and busybox-static, under ${NICVISOR_GUEST_ROOT:-/tmp/h3b/root}.
# Also installs SeaBIOS (the engine's BIOS). Needs root and apt. Used until the image builder lands.
set -eu
ROOT="${NICVISOR_GUEST_ROOT:-/tmp/h3b/root}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
dpkg --add-architecture i386
apt-get update -qq || true   # bookworm-security i386 sometimes fails mid-sync; main is enough
apt-get install -y -qq seabios
KPKG="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686$' | awk '{print $1}' | sort -V | tail -1)"
cd "$WORK"
apt-get download "$KPKG:i386" busybox-static:i386
mkdir -p "$ROOT"
for f in ./*.deb; do dpkg -x "$f" "$ROOT"; done
echo "extracted $KPKG and busybox-static into $ROOT"
