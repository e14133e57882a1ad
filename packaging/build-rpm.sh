#!/bin/bash
# make rpm: out/tcmu-shared-volume-<version>-1.x86_64.rpm from the prebuilt out/aot binaries and
# packaging/rpm/tcmu-shared-volume.spec, with rpmbuild -bb in a temporary top directory.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/deps.sh rpm

spec=packaging/rpm/tcmu-shared-volume.spec
version=$(sed -n 's/^Version: *//p' "$spec")
project_version=$(sed -n 's/.*<Version>\(.*\)<\/Version>.*/\1/p' Directory.Build.props)
[[ $version == "$project_version" ]] || {
    echo "build-rpm: $spec says $version, Directory.Build.props says $project_version" >&2; exit 1; }
for f in out/aot/tcmu-shared-volume out/aot/tsvctl; do
    [[ -x $f ]] || { echo "build-rpm: $f missing: run make publish-aot" >&2; exit 1; }
done

top=$(mktemp -d /tmp/tsv-rpm.XXXXXX)
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES"
cp -a out/aot/tcmu-shared-volume out/aot/tsvctl systemd/. packaging/man/*.8 "$top/SOURCES/"

args=(--define "_topdir $top")
# Debian's rpm has no systemd macros; load stand-ins only when they are missing.
if [[ $(rpm --eval '%{?systemd_post:yes}') != yes ]]; then
    args+=(--load packaging/rpm/macros.systemd-fallback)
fi
rpmbuild -bb "${args[@]}" "$spec"
mkdir -p out
find "$top/RPMS" -name '*.rpm' -exec mv -f {} out/ \;
for r in out/tcmu-shared-volume-"$version"-*.rpm; do
    rpm -qpi "$r"; rpm -qpl "$r"; rpm -qp --requires --conflicts --recommends "$r"; rpm -qp --scripts "$r"
done
