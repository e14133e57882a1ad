#!/usr/bin/env bash
# scripts/bench/build-tcmu-file-handler.sh [OUTDIR]
#
# Builds tcmu-runner's `user:file` handler (handler_file.so) from Debian's own source package
# of tcmu-runner, unmodified, as the baseline for tests/e2e/bench.sh. Debian's binary package
# ships no file handler (only rbd/glfs/qcow-less ones), so without this there is nothing to
# compare against. The .so is a run-time artefact in OUTDIR (default out/bench/), never
# committed.
#
# The source comes from the archive the host's /etc/apt/sources.list.d/debian.sources names
# (its first URI for the suite of the installed/candidate tcmu-runner), through a private apt
# configuration, so the host's own apt state is not changed beyond the build dependencies.
# The version built is the one `apt-cache policy tcmu-runner` names as candidate: the same one
# the VM image installs from the same archive.
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/out/bench}
mkdir -p "$out"
out=$(readlink -f "$out")

if [[ -s $out/handler_file.so && -s $out/handler_file.version ]]; then
  echo "build-tcmu-file-handler: $out/handler_file.so exists ($(cat "$out/handler_file.version"))"
  exit 0
fi

sources=/etc/apt/sources.list.d/debian.sources
[[ -r $sources ]] || { echo "build-tcmu-file-handler: no $sources" >&2; exit 2; }
# First stanza of the deb822 file: its URIs, Suites, Components, Signed-By.
field() { awk -v f="$1" 'BEGIN{IGNORECASE=1} /^[[:space:]]*$/{if(seen)exit} $1==f":"{seen=1; $1=""; sub(/^ /,""); print; exit}' "$sources"; }
uri=$(field URIs | awk '{print $1}')
suite=$(field Suites | awk '{print $1}')
components=$(field Components)
signed=$(field Signed-By)
[[ -n $uri && -n $suite ]] || { echo "build-tcmu-file-handler: cannot read URIs/Suites from $sources" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tcmu-src.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"  # apt downloads as _apt
mkdir -p "$work/etc" "$work/lists/partial" "$work/cache/archives/partial"
{
  echo "Types: deb-src"
  echo "URIs: $uri"
  echo "Suites: $suite"
  echo "Components: ${components:-main}"
  [[ -n $signed ]] && echo "Signed-By: $signed"
} >"$work/etc/src.sources"
# The binary indexes too, from the same file, so that build-dep can resolve the dependencies.
cp "$sources" "$work/etc/debian.sources"
apt_private=(-o "APT::Sandbox::User=root" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/etc"
             -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")

echo "build-tcmu-file-handler: deb-src $uri $suite ${components:-main}"
apt-get "${apt_private[@]}" -qq update
version=$(apt-cache policy tcmu-runner | awk '/Candidate:/{print $2}')
[[ -n $version && $version != "(none)" ]] || { echo "build-tcmu-file-handler: no tcmu-runner candidate" >&2; exit 2; }
(cd "$work" && apt-get "${apt_private[@]}" -qq source "tcmu=$version" >/dev/null)
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'tcmu-*' | head -n1)
[[ -d $srcdir ]] || { echo "build-tcmu-file-handler: apt-get source produced no tree" >&2; exit 2; }
[[ -f $srcdir/file_example.c ]] || { echo "build-tcmu-file-handler: no file_example.c in $srcdir" >&2; exit 2; }

# Build dependencies (the package's own list, from the private source index).
if ! apt-get "${apt_private[@]}" -s build-dep "tcmu=$version" 2>/dev/null | grep -q '^0 upgraded, 0 newly installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_private[@]}" -y -qq --no-install-recommends build-dep "tcmu=$version" >/dev/null
fi

# Configure with the project's own CMakeLists and build only the file handler target; the
# optional handlers that need Ceph/Gluster/tcmalloc are off, as they do not matter here.
mkdir -p "$srcdir/build"
(cd "$srcdir/build" && cmake .. -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSUPPORT_SYSTEMD=ON \
    -Dwith-rbd=false -Dwith-glfs=false -Dwith-qcow=false -Dwith-zbc=false -Dwith-fbo=false \
    -Dwith-tcmalloc=false >"$work/cmake.log" 2>&1) || { cat "$work/cmake.log" >&2; exit 1; }
make -C "$srcdir/build" handler_file >"$work/make.log" 2>&1 || { cat "$work/make.log" >&2; exit 1; }
so=$(find "$srcdir/build" -name handler_file.so | head -n1)
[[ -f $so ]] || { echo "build-tcmu-file-handler: handler_file.so not built" >&2; exit 1; }
install -m 0644 "$so" "$out/handler_file.so"
echo "tcmu $version ($(gcc -dumpfullversion) $(cmake --version | head -n1))" >"$out/handler_file.version"
echo "build-tcmu-file-handler: $out/handler_file.so from tcmu $version"
