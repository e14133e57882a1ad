# Two target hosts serving one RBD volume, for guest tests on a VM pair (sourced after lib.sh,
# lib-iscsi.sh, lib-service.sh and lib-pair.sh; docs/testing.md §6):
#
#   VM a (10.99.0.1): Ceph (one monitor, one memstore OSD, cephx, scripts/ceph/start.sh),
#                     target host 1 (the daemon as its systemd service, host_id 1), node1
#   VM b (10.99.0.2): target host 2 (host_id 2), node2
#
# Each host exports the image with `tsvctl export iscsi` and mutual CHAP to both nodes, on its own
# target IQN and portal (iSCSI names a SCSI target port by IQN and TPG, and tsvctl uses TPG 1,
# so one IQN on both hosts would give two ports one name). Each node logs in to both hosts, and
# dm-multipath (tests/e2e/multipath.conf) makes one device of its two paths.
#
# A test sources this file alone (it brings the others) and calls two_hosts_story: VM a then
# tells the scenario with lib-story.sh's steps, running node2's and host 2's with node2 'CMD'
# on VM b, and ends with two_hosts_end. Functions that VM b runs must be defined before
# two_hosts_story. IMAGE_SIZE (256M) may be set before sourcing.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
ISCSI_CHAP=mutual
. "$here/lib-iscsi.sh"
. "$here/lib-service.sh"
. "$here/lib-pair.sh"
. "$here/lib-story.sh"
trap two_hosts_cleanup EXIT

HOST=$([ "$ROLE" = a ] && echo 1 || echo 2)
POOL=rbd IMAGE=shared-db
VOLUME="rbd:$POOL/$IMAGE"
NODE1=iqn.2026-12.org.example:node1 NODE2=iqn.2026-12.org.example:node2
NODE=node$HOST
NODE_IQN=$([ "$HOST" = 1 ] && echo "$NODE1" || echo "$NODE2")
IMAGE_SIZE=${IMAGE_SIZE:-256M}
# Set by two_hosts_up: this node's multipath device (and its dm-N node, which /proc/diskstats
# names) and its path through each host.
DM= DM_DEV= P1= P2=

host_target() { echo "iqn.2026-12.org.example:shared-db.h$1"; } # host_target N
host_addr() { echo "10.99.0.$1"; }

# ms_since T0: milliseconds since T0 (date +%s%N).
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ceph_up (VM a): the cluster on 10.99.0.1 with the image (layering only: no exclusive lock to
# move between hosts) and client.tsv (the RBD profile, which may blocklist); its client
# configuration for both hosts goes to /pair/ceph.
ceph_up() {
    local t0; t0=$(date +%s%N)
    ADDR=$ADDR IMAGE=$IMAGE IMAGE_SIZE=$IMAGE_SIZE IMAGE_FEATURES=layering CLIENT=tsv \
        "$REPO/scripts/ceph/start.sh" >/tmp/ceph.out || { cat /tmp/ceph.out; fail "Ceph did not start"; }
    echo "Ceph up in $(ms_since "$t0") ms (mon, memstore OSD, pool $POOL, image $IMAGE of $IMAGE_SIZE)"
    mkdir -p "$PAIR/ceph"
    cp /var/tmp/tsv-ceph/client.conf /var/tmp/tsv-ceph/ceph.client.tsv.keyring "$PAIR/ceph/"
    pair_signal ceph-up
}

# ceph_client: /etc/ceph as every host has it: the monitors' address and client.tsv's key.
ceph_client() {
    [ "$ROLE" = a ] || pair_wait ceph-up 900 >/dev/null
    mkdir -p /etc/ceph
    install -m 0644 "$PAIR/ceph/client.conf" /etc/ceph/ceph.conf
    install -m 0600 "$PAIR/ceph/ceph.client.tsv.keyring" /etc/ceph/ceph.client.tsv.keyring
}

# The initiators both hosts admit (EXPORT_INITIATORS, set before sourcing this file to change it)
# and each one's --chap-secrets line, INITIATOR USER SECRET MUTUAL_USER MUTUAL_SECRET (a test
# may redefine chap_line after sourcing): the nodes, with the secrets iscsi_login answers with.
EXPORT_INITIATORS=${EXPORT_INITIATORS:-"$NODE1 $NODE2"}
# More options of `tsvctl export iscsi` on both hosts (e.g. --optimized-host 1), and the
# multipath.conf the nodes install: set before sourcing to change them.
EXPORT_OPTIONS=${EXPORT_OPTIONS:-}
MULTIPATH_CONF=${MULTIPATH_CONF:-$REPO/tests/e2e/multipath.conf}
chap_line() { echo "$1 ${1##*:} $(chap_secret initiator "$1") tsv-target $(chap_secret target "$1")"; }

# target_host_up: the daemon as the service with this host's host_id, and the export.
target_host_up() {
    install_service
    mkdir -p /etc/tcmu-shared-volume
    printf 'host_id = %d\n' "$HOST" >/etc/tcmu-shared-volume/tcmu-shared-volume.conf
    service_start start
    local n args=()
    (umask 077
     for n in $EXPORT_INITIATORS; do chap_line "$n"; done >/etc/tsv-chap.secrets)
    for n in $EXPORT_INITIATORS; do args+=(--initiator "$n"); done
    local t0; t0=$(date +%s%N)
    tsv export iscsi --volume "$VOLUME" --conf /etc/ceph/ceph.conf --id tsv --target "$(host_target "$HOST")" "${args[@]}" \
        --portal "$ADDR:3260" --chap-secrets /etc/tsv-chap.secrets $EXPORT_OPTIONS >/dev/null
    echo "host $HOST: exported $VOLUME on $(host_target "$HOST") at $ADDR:3260 in $(ms_since "$t0") ms"
    pair_signal "exported.h$HOST"
}

# node_up: this VM's node logs in to both hosts with mutual CHAP; one multipath device of both.
node_up() {
    pair_wait "exported.h$([ "$HOST" = 1 ] && echo 2 || echo 1)" 900 >/dev/null
    P1=$(PORTAL_IP=$(host_addr 1) iscsi_login "$(host_target 1)" "tsv-$NODE" "$NODE_IQN")
    P2=$(PORTAL_IP=$(host_addr 2) iscsi_login "$(host_target 2)" "tsv-$NODE" "$NODE_IQN")
    [ "$(vpd80 "$P1")" = "$(vpd80 "$P2")" ] || fail "the hosts report different serials: $(vpd80 "$P1") / $(vpd80 "$P2")"
    install -m 0644 "$MULTIPATH_CONF" /etc/multipath.conf
    systemctl start multipathd.service || fail "multipathd did not start"
    local holder1 holder2
    for _ in $(seq 150); do
        holder1=$(ls "/sys/block/${P1#/dev/}/holders" 2>/dev/null | head -n1)
        holder2=$(ls "/sys/block/${P2#/dev/}/holders" 2>/dev/null | head -n1)
        [ -n "$holder1" ] && [ "$holder1" = "$holder2" ] && break
        multipath >/dev/null 2>&1 || true
        sleep 0.2
    done
    [ -n "$holder1" ] && [ "$holder1" = "$holder2" ] || { multipath -ll; fail "no multipath map of $P1 and $P2"; }
    DM=/dev/mapper/$(cat "/sys/block/$holder1/dm/name")
    DM_DEV=/dev/$holder1
    # udev makes /dev/mapper/NAME a moment after the map exists; mpathpersist opens it read-write.
    for _ in $(seq 150); do
        udevadm settle 2>/dev/null || true
        dd if="$DM" of=/dev/null bs=512 count=1 iflag=direct status=none 2>/dev/null &&
            { exec 9<>"$DM"; } 2>/dev/null && { exec 9>&-; break; }
        sleep 0.2
    done
    dd if="$DM" of=/dev/null bs=512 count=1 iflag=direct status=none || fail "$DM cannot be read"
    echo "$NODE: $P1 via host 1, $P2 via host 2, multipath $DM ($(vpd80 "$P1"))"
}

# two_hosts_up: everything above for this VM, in order.
two_hosts_up() {
    say "VM $ROLE: $([ "$ROLE" = a ] && echo "Ceph, ")target host $HOST, $NODE"
    load_modules
    if [ "$ROLE" = a ]; then ceph_up; fi
    ceph_client
    target_host_up
    node_up
}

# mpath_prout DEV ARGS...: mpathpersist PR OUT on a multipath device (REGISTER goes to every
# path); 24 on RESERVATION CONFLICT, as the single-path helpers.
mpath_prout() {
    local dev=$1 rc; shift
    mpathpersist --out "$@" "$dev" >/tmp/mpathpersist.out 2>&1 && return 0 || rc=$?
    cat /tmp/mpathpersist.out
    # MPATH_PR_RESERV_CONFLICT (mpath_persist.h)
    { [ "$rc" = 11 ] || grep -qi 'reservation conflict' /tmp/mpathpersist.out; } && return 24
    return "$rc"
}

# dm_write DEV LBA CHAR / dm_read DEV LBA: one 512-byte block through the block layer (a
# multipath device), O_DIRECT; dm_read into /tmp/read.out. RESERVATION CONFLICT reaches a
# process as EBADE ("Invalid exchange", BLK_STS_NEXUS): 24, as the single-path helpers.
dm_write() {
    head -c 512 /dev/zero | tr '\0' "$3" >/tmp/dm.blk
    dd if=/tmp/dm.blk of="$1" bs=512 seek="$2" count=1 oflag=direct conv=notrunc status=none 2>/tmp/dd.err && return 0
    cat /tmp/dd.err
    grep -q 'Invalid exchange' /tmp/dd.err && return 24
    return 1
}
dm_read() {
    dd if="$1" of=/tmp/read.out bs=512 skip="$2" count=1 iflag=direct status=none 2>/tmp/dd.err && return 0
    cat /tmp/dd.err
    grep -q 'Invalid exchange' /tmp/dd.err && return 24
    return 1
}

# registrations_are KEY COUNT [KEY COUNT...]: READ FULL STATUS through each host (P1, P2) lists
# KEY for COUNT nexuses, the same through both.
registrations_are() {
    local dev key n got i args=("$@")
    for dev in "$P1" "$P2"; do
        tur "$dev"
        sg_persist -n --in --read-full-status "$dev" >/tmp/fs.out 2>&1 || { cat /tmp/fs.out; return 1; }
        for ((i = 0; i < ${#args[@]}; i += 2)); do
            key=${args[i]} n=${args[i + 1]}
            got=$(grep -ci "Key=$key\$" /tmp/fs.out || true)
            [ "$got" = "$n" ] || { echo "$dev: $got registration(s) of $key, expected $n"; cat /tmp/fs.out; return 1; }
        done
    done
}

# same_keys_on_both_hosts: READ KEYS through host 1 and host 2 agree (one table).
same_keys_on_both_hosts() {
    local k1 k2
    tur "$P1"; tur "$P2"
    k1=$(key_list "$P1"); k2=$(key_list "$P2")
    echo "host 1: $k1; host 2: $k2"
    [ -n "$k1" ] && [ "$k1" = "$k2" ]
}

# holder_is DEV KEY: READ RESERVATION through DEV: KEY holds Write Exclusive - Registrants Only.
holder_is() {
    tur "$1"
    sg_persist -n --in --read-reservation "$1" >/tmp/res.out 2>&1
    cat /tmp/res.out
    grep -qi "Key=$2\$" /tmp/res.out && grep -qi 'Write Exclusive, registrants only' /tmp/res.out
}

# mpath_paths: "<sdX> <state>" for each path of this node's map, as multipathd sees it.
mpath_paths() { multipathd show paths raw format "%d %t %T" 2>/dev/null | awk '{ print $1, $2 "/" $3 }'; }

# commands_of INITIATOR: the commands this host's daemon finished on INITIATOR's paths of the
# volume since it started (tsvctl status --json, the paths' counters); "unbound" if it has none.
commands_of() {
    "$TSVCTL" status --json | python3 -c '
import json, sys
init = sys.argv[1]
paths = [p for v in json.load(sys.stdin)["volumes"] for p in v["paths"]
         if (p.get("initiator") or "").split(",")[0] == init]
print(sum(((p.get("counters") or {}).get("commands") or 0) for p in paths) if paths else "unbound")
' "$1"
}

two_hosts_cleanup() {
    set +e
    multipath -F >/dev/null 2>&1
    iscsiadm -m node --logout >/dev/null 2>&1
}

# two_hosts_story: both hosts and nodes up; VM b then runs what VM a sends until VM a is done.
two_hosts_story() {
    two_hosts_up
    if [ "$ROLE" = b ]; then
        pair_serve
        pair_done
        exit 0
    fi
}

# node2 'COMMAND' [SECONDS]: on VM b (node2 and host 2), with its $DM, $P1, $P2.
node2() { pair_run "$1" "${2:-600}"; }

# two_hosts_end: the summary table (fails on any unexpected answer); then both VMs end together.
two_hosts_end() {
    summary
    pair_release
    pair_done
}
