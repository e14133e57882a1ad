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
# own 3300/6789 so a real cluster on the host is never touched. MEMSTORE_BYTES (2G), POOL (rbd),
# IMAGE (empty: none; else an image of IMAGE_SIZE, 256M, is created in POOL).
# scripts/ceph/stop.sh stops it.
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
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

log() { echo "ceph: $*" >&2; }
fail() { echo "ceph: $*" >&2; exit 1; }

case $auth in cephx | none) ;; *) fail "AUTH=$auth: use cephx or none" ;; esac

packages=(ceph-mon ceph-osd ceph-common librbd-dev librados-dev)
if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v rbd >/dev/null ||
  [[ ! -e /usr/include/rbd/librbd.h ]]; then
  log "installing ${packages[*]} (Debian's archive)"
  [[ $(id -u) -eq 0 ]] || fail "installing packages needs root"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >&2 ||
    fail "apt-get install ${packages[*]} failed"
fi

# Test assemblies run in parallel and each starts the cluster it needs: one start at a time, so
# that the second finds the first's cluster up instead of taking it for a stale one.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

conf=$dir/ceph.conf
export CEPH_CONF=$conf
ceph_() { timeout 20 ceph -c "$conf" "$@"; }

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

# ready holds the settings it was made with: another AUTH or port means a new cluster.
settings="auth=$auth mon=$mon_port/$mon_port_v1 osd=$osd_min-$osd_max pool=$pool"
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
mon host = [v2:127.0.0.1:$mon_port,v1:127.0.0.1:$mon_port_v1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind port min = $osd_min
ms bind port max = $osd_max
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
keyring = $dir/keyring
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

if [[ $auth == cephx ]]; then
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" >/dev/null
  chmod 0600 "$dir/keyring" "$dir/mon.keyring"
else
  : >"$dir/mon.keyring"
  : >"$dir/keyring"
fi

monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$mon_port_v1]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" 2>>"$dir/log/mkfs.log" ||
  fail "ceph-mon --mkfs failed: $(tail -3 "$dir/log/mkfs.log")"
ceph-mon -c "$conf" -i a 2>>"$dir/log/mon.a.stderr" 9>&- || fail "ceph-mon did not start: see $dir/log/mon.a.log"
for _ in $(seq 100); do ceph_ mon stat >/dev/null 2>&1 && break; sleep 0.2; done
ceph_ mon stat >/dev/null 2>&1 || fail "the monitor does not answer on 127.0.0.1:$mon_port: see $dir/log/mon.a.log"

osd_uuid=$(cat /proc/sys/kernel/random/uuid)
if [[ $auth == cephx ]]; then
  osd_key=$(ceph-authtool --gen-print-key)
  printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$dir/osd-new.json"
  ceph_ osd new "$osd_uuid" -i "$dir/osd-new.json" >/dev/null
  rm -f "$dir/osd-new.json"
  ceph-osd -c "$conf" -i 0 --mkfs --key "$osd_key" --osd-uuid "$osd_uuid" 2>>"$dir/log/mkfs.log" ||
    fail "ceph-osd --mkfs failed: $(tail -3 "$dir/log/mkfs.log")"
  # --mkfs --key keeps the key inside the store but writes no keyring, and the OSD needs one to
  # fetch its configuration from the monitor.
  printf '[osd.0]\n\tkey = %s\n' "$osd_key" >"$dir/osd.0/keyring"
  chmod 0600 "$dir/osd.0/keyring"
else
  ceph_ osd new "$osd_uuid" >/dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/mkfs.log" ||
    fail "ceph-osd --mkfs failed: $(tail -3 "$dir/log/mkfs.log")"
fi
ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd.0.stderr" 9>&- || fail "ceph-osd did not start: see $dir/log/osd.0.log"
for _ in $(seq 150); do
  [[ $(ceph_ osd dump 2>/dev/null) == *"osd.0 up"* ]] && break
  sleep 0.2
done
[[ $(ceph_ osd dump 2>/dev/null) == *"osd.0 up"* ]] || fail "osd.0 is not up after 30 s: see $dir/log/osd.0.log"

ceph_ osd pool create "$pool" 8 8 replicated >/dev/null 2>&1
ceph_ osd pool application enable "$pool" rbd >/dev/null 2>&1
# The pool's placement groups are active once an object lookup answers 'No such file'.
active=0
for _ in $(seq 150); do
  out=$(timeout 5 rados -c "$conf" -p "$pool" stat __probe__ 2>&1 || true)
  if [[ $out == *"No such file"* ]]; then active=1; break; fi
  sleep 0.2
done
((active)) || fail "pool $pool did not become active in 30 s: $out"

if [[ -n $image ]]; then
  timeout 30 rbd -c "$conf" create --size "$image_size" "$pool/$image" || fail "rbd create $pool/$image failed"
fi

echo "$settings" >"$dir/ready"
log "up in $((SECONDS - start)) s: mon 127.0.0.1:$mon_port, osd.0 (memstore $memstore_bytes), pool $pool${image:+, image $pool/$image}, auth $auth"
echo "$conf"
