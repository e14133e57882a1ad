#!/bin/bash
# Debian tools that `make package` needs: dpkg-buildpackage (dpkg-dev), debhelper (dh, with
# dh_installsystemd), fakeroot (root-less binary package assembly), lintian (the check),
# devscripts (debchange/dch for bumping debian/changelog). rpm is for `make rpm`.
# Idempotent: installs only what is missing, and touches apt only when something is.
set -euo pipefail
want=(dpkg-dev debhelper fakeroot lintian devscripts "$@")
need=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
