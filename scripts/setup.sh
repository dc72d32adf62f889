#!/usr/bin/env bash
# Installs everything nicvisor needs on a fresh Debian 12 machine: the Debian packages its tests
# use (Debian's lspci, SeaBIOS for the v86 guest, iasl to check our ACPI tables, ...) and the npm
# dependencies (npm ci also builds dist/ through the package's `prepare` script).
# The guest image (Debian's i386 kernel, busybox, ...) is built on first use by
# `nicvisor guest-image`, which adds the i386 architecture and downloads its own packages.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  pciutils        # the real lspci decodes our config-space dumps (test/lspci.test.ts)
  seabios         # BIOS for the v86 guest
  tshark          # reads our pcap captures in the tests
  iproute2        # network namespaces for the TAP tests
  iputils-ping    # pings through TAP from a namespace
  iperf3          # the iperf3 server in a network namespace for the real-guest TAP test
  qemu-system-x86 # QEMU 7.2: the interop peer on -netdev stream/dgram, and the boot benchmark's baseline
  acpica-tools    # iasl disassembles nicvisor's ACPI tables in the tests
  xz-utils        # decompresses the guest kernel once on the host (direct boot skips the guest's decompressor)
  cpio            # GNU cpio cross-checks the guest image's newc writer (test/guest-image.test.ts)
  chromium        # the browser test of nicvisor web's page (test/web-page.test.ts), driven by playwright-core
)

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "setup: not root and no sudo: install these Debian packages yourself: ${packages[*]}" >&2
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq || echo "setup: apt-get update reported an error; trying the install anyway" >&2
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages already installed"
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund
