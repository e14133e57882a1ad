#!/usr/bin/env bash
# Installs the host packages the test VM needs (scripts/vm/build-image, scripts/vm/run).
# Idempotent: asks apt only for what is missing, runs `apt-get update` at most once, and
# prints nothing when everything is already installed.
set -euo pipefail

packages=(
  qemu-system-x86   # qemu-system-x86_64 (TCG; KVM is not used, see docs/testing.md §2)
  qemu-utils
  debootstrap       # root file system of the guest
  e2fsprogs         # mkfs.ext4 -d
  util-linux        # flock
  coreutils
  zstd              # Debian's initramfs may be zstd-compressed
  debian-archive-keyring
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
((EUID == 0)) || sudo=(sudo)
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the index first: a fresh machine with stale lists gets one update.
if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
