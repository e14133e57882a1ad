#!/bin/bash
# Native AOT needs a C toolchain to link the compiled objects: clang (the ILCompiler's default
# linker driver) and zlib1g-dev (System.IO.Compression's native part links -lz).
# rsync copies the sources for the fallback build (scripts/publish-aot.sh).
# Idempotent: installs only what is missing, and touches apt only when something is.
set -euo pipefail
need=()
for p in clang zlib1g-dev rsync; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
