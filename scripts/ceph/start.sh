#!/usr/bin/env bash
# scripts/ceph/start.sh — a one-node Ceph on 127.0.0.1 for tests and demos.
#
# One monitor and one memstore OSD (data in memory: nothing reaches a disk), cephx on, no mgr
# (RBD, pools, omap, watch/notify and blocklisting need none), everything under $CEPH_DIR and
# nothing in /etc/ceph. Installs Debian's packages the first time. Idempotent: a cluster that
# is already up is left as it is; a stale one (daemons gone, or a half-made directory) is stopped
# by PID and made again. The last line of stdout is the path of its ceph.conf; every Ceph tool
# takes it with -c (or CEPH_CONF=).
#
# Settings (environment): CEPH_DIR (/var/tmp/tsv-ceph), AUTH (cephx | none), MON_PORT (40330,
# msgr v2) and MON_PORT_V1 (40789), OSD_PORT_MIN/OSD_PORT_MAX (40800-40899): away from Ceph's
# own 3300/6789 so a real cluster on the host is never touched. ADDR (127.0.0.1): the address
# the monitor and the OSD bind to (the test VMs serve other VMs on 10.99.0.1). MEMSTORE_BYTES
# (2G), POOL (rbd), IMAGE (empty: none; else an image of IMAGE_SIZE, 256M, is created in POOL,
# with the features IMAGE_FEATURES, e.g. "layering", or Ceph's defaults). CLIENT (empty; e.g.
# tsv): also a client.CLIENT with the RBD profile on POOL, its keyring in
# $CEPH_DIR/ceph.client.CLIENT.keyring, and $CEPH_DIR/client.conf, a ceph.conf for other hosts
# that reads its keyring from /etc/ceph/ceph.client.CLIENT.keyring.
# The steps that need the monitor run in one Python process (bootstrap.py), not one ceph CLI
# call each. scripts/ceph/stop.sh stops it.
set -euo pipefail

dir=${CEPH_DIR:-/var/tmp/tsv-ceph}
auth=${AUTH:-cephx}
mon_port=${MON_PORT:-40330}
mon_port_v1=${MON_PORT_V1:-40789}
osd_min=${OSD_PORT_MIN:-40800}
osd_max=${OSD_PORT_MAX:-40899}
memstore_bytes=${MEMSTORE_BYTES:-2G}
pool=${POOL:-rbd}
image=${IMAGE:-}
image_size=${IMAGE_SIZE:-256M}
image_features=${IMAGE_FEATURES:-}
client=${CLIENT:-}
addr=${ADDR:-127.0.0.1}
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

log() { echo "ceph: $*" >&2; }
fail() { echo "ceph: $*" >&2; exit 1; }

case $auth in cephx | none) ;; *) fail "AUTH=$auth: use cephx or none" ;; esac

# The daemons, the tools and the Python bindings bootstrap.py uses; nothing to build (the
# daemon loads librbd.so.1 and librados.so.2, which ceph-common brings). The test VM's image
# has them all.
packages=(ceph-mon ceph-osd ceph-common python3-rados python3-rbd)
if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v rbd >/dev/null ||
  ! /usr/bin/python3 -c 'import rados, rbd' 2>/dev/null; then
  log "installing ${packages[*]} (Debian's archive)"
  [[ $(id -u) -eq 0 ]] || fail "installing packages needs root"
  # A fresh machine may have no package lists yet: update once, only when the install needs it.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >&2; then
    apt-get update -q >&2 || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >&2 ||
      fail "apt-get install ${packages[*]} failed"
  fi
fi

# Test assemblies run in parallel and each starts the cluster it needs: one start at a time, so
# that the second finds the first's cluster up instead of taking it for a stale one.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

conf=$dir/ceph.conf
export CEPH_CONF=$conf
alive() { # alive NAME: the daemon's pid file names a running process of that program
  local pidfile=$dir/run/$1.pid pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "ceph-${1%%.*}" ]]
}

image_ready() {
  [[ -z $image ]] || timeout 20 rbd -c "$conf" info "$pool/$image" >/dev/null 2>&1
}

# ready holds the settings it was made with: another AUTH, address or port means a new cluster.
settings="auth=$auth mon=$mon_port/$mon_port_v1 osd=$osd_min-$osd_max pool=$pool"
[[ $addr == 127.0.0.1 ]] || settings+=" addr=$addr"
[[ -z $client ]] || settings+=" client=$client"
if [[ -f $dir/ready && $(<"$dir/ready") == "$settings" ]] && alive mon.a && alive osd.0 && image_ready; then
  echo "$conf"
  exit 0
fi

if [[ -e $dir ]]; then
  log "stale cluster in $dir: stopping it and starting again"
  WIPE=1 CEPH_DIR=$dir "$here/stop.sh" >&2
fi

start=$SECONDS
mkdir -p "$dir"/{run,log,crash,mon.a,osd.0}
chmod 0700 "$dir"
fsid=$(cat /proc/sys/kernel/random/uuid)

cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:$addr:$mon_port,v1:$addr:$mon_port_v1]
public addr = $addr
cluster addr = $addr
ms bind port min = $osd_min
ms bind port max = $osd_max
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
keyring = $dir/\$cluster.\$name.keyring,$dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data = $dir/\$name
[osd]
osd objectstore = memstore
memstore device bytes = $memstore_bytes
memstore page set = true
memstore page size = 4096
osd data = $dir/\$name
keyring = $dir/\$name/keyring
[client]
rbd cache = false
EOF

args=("$conf" "$dir" "$fsid" "[v2:$addr:$mon_port,v1:$addr:$mon_port_v1]" "$pool" "$auth")
[[ -z $image ]] || args+=(--image "$image" --size "$(numfmt --from=iec "$image_size")")
[[ -z $image_features ]] || args+=(--features "$image_features")
[[ -z $client ]] || args+=(--client "$client")
# 9>&-: the daemons it starts must not hold the start lock for their lifetime.
/usr/bin/python3 "$here/bootstrap.py" "${args[@]}" 9>&- || fail "could not make the cluster: see above and $dir/log"

if [[ -n $client ]]; then
  cat >"$dir/client.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:$addr:$mon_port,v1:$addr:$mon_port_v1]
auth client required = $auth
keyring = /etc/ceph/\$cluster.\$name.keyring
[client]
rbd cache = false
EOF
fi

echo "$settings" >"$dir/ready"
log "up in $((SECONDS - start)) s: mon $addr:$mon_port, osd.0 (memstore $memstore_bytes), pool $pool${image:+, image $pool/$image}${client:+, client.$client}, auth $auth"
echo "$conf"
