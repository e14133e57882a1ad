#!/bin/bash
# make package: out/tcmu-shared-volume_<version>_amd64.deb from the prebuilt out/aot binaries.
# The debian/ directory lives in packaging/debian (the repository's layout is fixed); it is
# copied with the binaries, the systemd files and the man pages into a temporary source tree,
# built there with `dpkg-buildpackage -b -us -uc`, and checked with lintian.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/deps.sh

version=$(sed -n 's/^tcmu-shared-volume (\([^)]*\)).*/\1/p' packaging/debian/changelog | head -1)
project_version=$(sed -n 's/.*<Version>\(.*\)<\/Version>.*/\1/p' Directory.Build.props)
if [[ $version != "$project_version" ]]; then
    echo "build-deb: debian/changelog says $version, Directory.Build.props says $project_version;" \
         "add a changelog entry (dch -v $project_version)" >&2
    exit 1
fi
for f in out/aot/tcmu-shared-volume out/aot/tsvctl; do
    [[ -x $f ]] || { echo "build-deb: $f missing: run make publish-aot" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tsv-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/tcmu-shared-volume-$version
mkdir -p "$src/prebuilt" "$src/systemd" "$src/man"
cp -a packaging/debian "$src/debian"
cp -a out/aot/tcmu-shared-volume out/aot/tsvctl "$src/prebuilt/"
cp -a systemd/. "$src/systemd/"
cp -a packaging/man/*.8 "$src/man/"

# The unit must start the binary where the package puts it.
grep -qx 'ExecStart=/usr/sbin/tcmu-shared-volume' "$src/systemd/tcmu-shared-volume.service" || {
    echo "build-deb: systemd/tcmu-shared-volume.service does not run /usr/sbin/tcmu-shared-volume" >&2
    exit 1
}

(cd "$src" && dpkg-buildpackage -b -us -uc)
deb=tcmu-shared-volume_${version}_amd64.deb
mkdir -p out
mv -f "$work/$deb" out/
echo
dpkg-deb --info "out/$deb"
dpkg-deb --contents "out/$deb"
echo
echo "lintian out/$deb:"
lintian --info --display-info --pedantic --fail-on error,warning "out/$deb"
echo "lintian: clean (overrides: packaging/debian/tcmu-shared-volume.lintian-overrides)"
