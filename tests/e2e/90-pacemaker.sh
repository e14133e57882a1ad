#!/usr/bin/env bash
# tsv-vm: pair
# Issue 23: a real Pacemaker cluster fences through the target. Two cluster nodes, tsv-a (node1)
# and tsv-b (node2), with Debian's corosync, pacemaker, pcs and fence-agents; nothing mocked.
#
# Where the target runs: on VM a, beside node1 (the daemon as its systemd service, a sparse file
# volume exported with `tsvctl export iscsi` and mutual CHAP to both nodes on 10.99.0.1:3260).
# A third VM would double the cost of every run under emulation and prove nothing more about
# fencing: what decides is that node2's storage path (10.99.0.0/24) stays up while its cluster
# network (corosync on 10.99.1.0/24, a second address on the same NIC) is cut, as on a real
# split, so that only the target's reservation table stops node2. The two-host target is proven
# by 80–82.
#
# The cluster: `pcs cluster setup` (two nodes, so corosync's two_node quorum), one fence_scsi
# stonith device per node on the shared disk's /dev/disk/by-id path with provides=unfencing
# (fencing node1 waits 20 s, so that in a split node1 wins the race, as Red Hat recommends for
# two-node clusters), stonith-action=off, and a group "app": a Filesystem (ext4 on the shared
# disk) and tsv-appender, a service that appends "<node> <n>" to a file on it every 0.2 s and
# acknowledges a line in a node-local file only after fsync returned.
#
# The story:
#  1. Both nodes log in; the cluster forms; both are unfenced (their fence_scsi keys registered,
#     Write Exclusive - Registrants Only held); the group runs on node2.
#  2. node2's corosync traffic is dropped both ways while its service writes: node1's cluster
#     fences node2 through the target (PREEMPT AND ABORT of node2's key), starts the group on
#     node1, whose filesystem has every line node2 had acknowledged; node2's direct write gets
#     RESERVATION CONFLICT and never reaches the disk; node2's own (delayed) fencing of node1 fails.
#  3. The filesystem checks clean (e2fsck -fn, the group stopped for it); node2 is restarted as a
#     fenced node must be (fence_scsi cuts I/O, it does not reboot), its network returns, it
#     rejoins and is unfenced (its key registered again); the group moves back with
#     `pcs resource move`, no fence.
#  4. Step 2 again with the target's daemon restarted (systemctl restart) during the cut: the
#     fence still happens, exactly once, and nothing acknowledged is lost.
# Each cut prints a timeline (on VM a's clock; node2's first refused write converted from VM b's
# clock with the offset measured through /pair) and the time from the cut to the service back.
# VM a (target, node1) drives; VM b (node2) runs what it is sent.
. "$(dirname "$0")/lib.sh"
ISCSI_CHAP=mutual
. "$(dirname "$0")/lib-iscsi.sh"
. "$(dirname "$0")/lib-service.sh"
. "$(dirname "$0")/lib-pair.sh"
. "$(dirname "$0")/lib-story.sh"

NODE=tsv-$ROLE
N=$([ "$ROLE" = a ] && echo 1 || echo 2)
CLUSTER_ADDR=10.99.1.$N PEER_CLUSTER_ADDR=10.99.1.$((3 - N))
TARGET=iqn.2026-12.org.example:cluster-disk
INITIATOR=iqn.2026-12.org.example:$NODE
VOLUME=/srv/cluster-disk.img
MNT=/mnt/app
# The filesystem takes the first 192 MiB of the 256 MiB disk; direct writes go past it.
FS_BLOCKS=49152 SPARE_LBA=450000
ACKED=/var/lib/tsv-appender/acked
AUDIT_ID=6f1a3c2e9b7d4e0a8c5b1d2f3e4a5b6c # the daemon's reservation audit records (MESSAGE_ID)
DISK= DEV=

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" != 0 ] && command -v crm_mon >/dev/null; then
        echo "--- $NODE: cluster diagnostics"
        crm_mon -1 -rf 2>&1 | head -40
        stonith_admin --history '*' 2>&1 | head -10
        echo "journal lines: unit pacemaker $(journalctl -u pacemaker --no-pager -o cat | wc -l)," \
            "controld $(journalctl -t pacemaker-controld --no-pager -o cat | wc -l), log file $(wc -l </var/log/pacemaker/pacemaker.log)"
        pcmk_journal | grep -iE 'error|warn|fail|fenc' | tail -40
        systemctl status tsv-appender --no-pager 2>&1 | tail -5
        tail -n 3 "$ACKED" "$ACKED.failed" 2>&1
        findmnt "$MNT"
    fi
    # Bounded: a node cut off from its peer may still be retrying its fencing of it.
    timeout 60 systemctl stop pacemaker >/dev/null 2>&1 || systemctl kill -s KILL pacemaker >/dev/null 2>&1
    systemctl stop corosync tsv-appender >/dev/null 2>&1
    umount "$MNT" >/dev/null 2>&1 || umount -l "$MNT" >/dev/null 2>&1
    iscsi_cleanup "$TARGET"
}
trap cleanup EXIT

# pcmk_journal [ARGS...]: Pacemaker's and fence_scsi's journal lines (short-unix: epoch seconds
# with microseconds first), on this VM's clock.
pcmk_journal() {
    journalctl --no-pager -o short-unix -t pacemaker-controld -t pacemaker-fenced -t pacemaker-schedulerd \
        -t pacemaker-execd -t pacemakerd -t fence_scsi "$@" 2>/dev/null
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
now_ns() { date +%s%N; }
secs() { awk -v ns="$1" -v t0="$2" 'BEGIN { printf "%.1f", (ns - t0) / 1e9 }'; } # secs NS T0_NS

# --- the target (VM a) ---------------------------------------------------------------------

target_up() {
    install_service
    service_start start
    tsv volume create "$VOLUME" --size 256M >/dev/null
    (umask 077
     for n in a b; do
         i=iqn.2026-12.org.example:tsv-$n
         echo "$i tsv-$n $(chap_secret initiator "$i") tsv-target $(chap_secret target "$i")"
     done >/etc/tsv-chap.secrets)
    tsv export iscsi --volume "$VOLUME" --target "$TARGET" --initiator iqn.2026-12.org.example:tsv-a \
        --initiator iqn.2026-12.org.example:tsv-b --portal 10.99.0.1:3260 --chap-secrets /etc/tsv-chap.secrets >/dev/null
    echo "target: $VOLUME exported as $TARGET on 10.99.0.1:3260 (mutual CHAP) to tsv-a and tsv-b"
    pair_signal exported
}

# --- each node -------------------------------------------------------------------------------

# node_login: this node's session; DEV its /dev/sdX, DISK the stable /dev/disk/by-id name that
# the cluster configuration uses (the same on both nodes: the volume's NAA identifier).
node_login() {
    [ "$ROLE" = a ] || pair_wait exported 900 >/dev/null
    DEV=$(PORTAL_IP=10.99.0.1 iscsi_login "$TARGET" tsv-node "$INITIATOR")
    local l
    for _ in $(seq 150); do
        udevadm settle 2>/dev/null || true
        for l in /dev/disk/by-id/wwn-0x*; do
            [ -e "$l" ] && [ "$(readlink -f "$l")" = "$DEV" ] && { DISK=$l; break 2; }
        done
        sleep 0.2
    done
    [ -n "$DISK" ] || { ls -l /dev/disk/by-id; fail "no /dev/disk/by-id/wwn-0x… name for $DEV"; }
    echo "$NODE: $DEV = $DISK"
}

# appender_install: the group's service, on both nodes (pacemaker starts it with systemd:).
appender_install() {
    mkdir -p "$MNT" /var/lib/tsv-appender
    cat >/usr/local/bin/tsv-appender <<'END'
#!/bin/bash
# Appends "<node> <n>" to /mnt/app/log every 0.2 s; a line is acknowledged (in the node-local
# /var/lib/tsv-appender/acked, with the time) only once fsync of the file returned success,
# as a database acknowledges a commit. A failed line is logged in acked.failed.
log=/mnt/app/log acked=/var/lib/tsv-appender/acked
n=$(wc -l <"$log" 2>/dev/null || echo 0)
while :; do
    n=$((n + 1))
    line="$(hostname) $n"
    if printf '%s\n' "$line" | dd of="$log" oflag=append conv=notrunc,fsync status=none 2>/dev/null; then
        echo "$(date +%s%N) $line" >>"$acked"
    else
        echo "$(date +%s%N) $line" >>"$acked.failed"
    fi
    sleep 0.2
done
END
    chmod 0755 /usr/local/bin/tsv-appender
    cat >/etc/systemd/system/tsv-appender.service <<'END'
[Unit]
Description=appends acknowledged lines to a file on the shared disk (e2e 90-pacemaker)
[Service]
ExecStart=/usr/local/bin/tsv-appender
END
    systemctl daemon-reload
}

# cluster_files (VM a): corosync.conf from pcs (no pcsd: --corosync_conf writes the file only),
# corosync's and pacemaker's keys, for both nodes through /pair.
cluster_files() {
    pcs cluster setup tsv tsv-a addr=10.99.1.1 tsv-b addr=10.99.1.2 totem token=5000 \
        --corosync_conf "$PAIR/corosync.conf" >/tmp/pcs-setup.out 2>&1 ||
        { cat /tmp/pcs-setup.out; fail "pcs cluster setup"; }
    corosync-keygen -l -k "$PAIR/corosync.authkey" >/dev/null 2>&1 || fail "corosync-keygen"
    head -c 4096 /dev/urandom >"$PAIR/pacemaker.authkey"
    pair_signal cluster-files
}

# cluster_node_up: this node's cluster stack with the shared configuration, started.
cluster_node_up() {
    [ "$ROLE" = a ] || pair_wait cluster-files 900 >/dev/null
    ip addr add "$CLUSTER_ADDR/24" dev eth0
    systemctl stop pacemaker corosync >/dev/null 2>&1 || true
    install -m 0644 "$PAIR/corosync.conf" /etc/corosync/corosync.conf
    install -m 0400 "$PAIR/corosync.authkey" /etc/corosync/authkey
    install -m 0640 -g haclient "$PAIR/pacemaker.authkey" /etc/pacemaker/authkey
    rm -f /var/lib/pacemaker/cib/cib*
    # Without --wait: pcs 0.11.5's --wait fails with an IndexError when pcsd is not running.
    pcs cluster start >/tmp/pcs-start.out 2>&1 || { cat /tmp/pcs-start.out; fail "pcs cluster start"; }
    echo "$NODE: corosync on $CLUSTER_ADDR, pacemaker started"
}

# wait_until SECONDS WHAT CMD...: CMD succeeds within SECONDS; prints how long it took.
wait_until() {
    local limit=$1 what=$2 t0=$SECONDS; shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - t0 < limit)) || fail "no $what within $limit s"
        sleep 0.5
    done
    echo "$what after $((SECONDS - t0)) s"
}
both_online() { crm_mon -1 2>/dev/null | grep -qE 'Online: \[ tsv-a tsv-b \]'; }
# running_on RESOURCE NODE: pacemaker reports RESOURCE started on NODE.
running_on() { crm_resource --resource "$1" --locate 2>/dev/null | grep -q "is running on: $2\$"; }
# keys: the registered keys, one per line, through this node's disk.
keys() { tur "$DEV"; sg_persist -n --in --read-keys "$DEV" 2>/dev/null | awk '/^ +0x/ { print $1 }' | sort; }
key_count_is() { [ "$(keys | wc -l)" = "$1" ]; }
has_key() { keys | grep -qx "$1"; }
holder() { tur "$DEV"; sg_persist -n --in --read-reservation "$DEV" 2>/dev/null | sed -n 's/.*Key=\(0x[0-9a-f]*\).*/\1/p'; }
# key_of NODE: the key NODE's initiator registered (fence_scsi derives it from the cluster name
# and the node's id), from READ FULL STATUS through this node's disk.
key_of() {
    tur "$DEV"
    sg_persist -n --in --read-full-status "$DEV" 2>/dev/null |
        awk -v i="iqn.2026-12.org.example:$1" '/Key=/ { sub(/.*Key=/, ""); k = $1 } index($0, i",") || $NF == i { print k; exit }'
}
acked_lines() { [ -e "$ACKED" ] && wc -l <"$ACKED" || echo 0; }
appending() { local n; n=$(acked_lines); sleep 1; (( $(acked_lines) > n )); }

# cut_cluster / heal_cluster: the cluster network to the other node, dropped by each VM for its peer
# (blackhole routes: corosync's packets go nowhere; iSCSI on 10.99.0.0/24 is untouched).
cut_cluster() { ip route add blackhole "$PEER_CLUSTER_ADDR/32"; }
heal_cluster() { ip route del blackhole "$PEER_CLUSTER_ADDR/32"; }

# restart_fenced_node (VM b): what a node fenced by fence_scsi needs before it may rejoin (its
# I/O was cut, it was not rebooted): its cluster stack stopped, its resources with it, the
# filesystem it still had mounted released.
restart_fenced_node() {
    timeout 120 systemctl stop pacemaker || systemctl kill -s KILL pacemaker
    systemctl stop corosync
    systemctl stop tsv-appender 2>/dev/null || true
    if mountpoint -q "$MNT"; then timeout 60 umount "$MNT" || umount -l "$MNT"; fi
    echo "tsv-b: pacemaker and corosync stopped, tsv-appender stopped, $MNT not mounted"
}

# --- VM b serves VM a ------------------------------------------------------------------------

say "VM $ROLE: $NODE$([ "$ROLE" = a ] && echo ", the target")"
load_modules
[ "$ROLE" = a ] && target_up
node_login
appender_install
if [ "$ROLE" = a ]; then
    mkfs.ext4 -q -F -b 4096 -L app "$DISK" "$FS_BLOCKS" || fail "mkfs.ext4 $DISK"
    cluster_files
else
    pair_wait cluster-files 900 >/dev/null
fi
cluster_node_up
if [ "$ROLE" = b ]; then
    pair_serve
    pair_done
    exit 0
fi

# --- VM a tells the story --------------------------------------------------------------------

node2() { pair_run "$1" "${2:-600}"; } # node2 'COMMAND' [SECONDS]: on VM b, with its $DEV

narrate "1. The cluster: tsv-a (node1, with the target) and tsv-b (node2), corosync on 10.99.1.0/24"
wait_until 300 "both nodes online" both_online
crm_mon -1 | sed 's/^/  /'
pcs property set stonith-action=off
pcs resource defaults update resource-stickiness=100 >/dev/null
pcs stonith create fence-tsv-a fence_scsi devices="$DISK" pcmk_host_list=tsv-a pcmk_delay_base=20s \
    meta provides=unfencing || fail "pcs stonith create fence-tsv-a"
pcs stonith create fence-tsv-b fence_scsi devices="$DISK" pcmk_host_list=tsv-b meta provides=unfencing ||
    fail "pcs stonith create fence-tsv-b"
pcs resource create fs ocf:heartbeat:Filesystem device="$DISK" directory="$MNT" fstype=ext4 \
    --group app --disabled || fail "pcs resource create fs"
pcs resource create appender systemd:tsv-appender --group app || fail "pcs resource create appender"
pcs constraint location app prefers tsv-b=50 || fail "pcs constraint location"
pcs resource enable fs
wait_until 300 "both nodes unfenced (two keys)" key_count_is 2
wait_until 300 "group app on tsv-b" running_on appender tsv-b
wait_until 60 "tsv-b's service acknowledging lines" node2 appending
KEY_A=$(key_of tsv-a) KEY_B=$(key_of tsv-b)
echo "  keys: tsv-a $KEY_A, tsv-b $KEY_B; registered: $(keys | tr '\n' ' '); holder $(holder)"
check tsv-a "both nodes unfenced: keys of tsv-a and tsv-b registered" eval '[ -n "$KEY_A" ] && [ -n "$KEY_B" ] && [ "$KEY_A" != "$KEY_B" ]'
check tsv-a "WERO held by a cluster key" eval '[ -n "$(holder)" ]'
crm_mon -1 | sed 's/^/  /'

# clock_offset: VM a's clock minus VM b's, in ns, from one round trip through /pair (the
# estimate is within half the round trip, which it prints).
clock_offset() {
    local a0 b a1
    a0=$(now_ns); b=$(node2 now_ns); a1=$(now_ns)
    OFFSET=$(( (a0 + a1) / 2 - b )) OFFSET_ERR_MS=$(( (a1 - a0) / 2000000 ))
}

# journal_first SINCE_NS PATTERN ARGS...: the time (ns) of the first journal line since SINCE
# (journalctl ARGS) matching PATTERN, or nothing.
journal_first() {
    local since=$1 pat=$2; shift 2
    "${JOURNAL:-journalctl}" --no-pager -o short-unix --since "@$((since / 1000000000))" "$@" 2>/dev/null |
        grep -E "$pat" | awk -v s="$since" '{ t = $1 * 1e9; if (t >= s) { printf "%.0f\n", t; exit } }'
}
# fences_of_b_since NS: fencing operations ("off") against tsv-b that tsv-a's fencer completed
# since NS. (The fence history of stonith_admin keeps only the latest successful operation per
# node, and unfencing is one too: the fencer's own log counts every one.)
fences_of_b_since() {
    pcmk_journal -t pacemaker-fenced --since "@$(($1 / 1000000000))" | awk -v s="$1" '$1 * 1e9 >= s' |
        grep -c "Operation 'off' targeting tsv-b by [^ ]* for [^ ]*: OK" || true
}
# preempts_since NS: successful PREEMPT AND ABORTs in the target's audit trail since NS (a failed
# PR OUT, such as tsv-b's attempt to fence tsv-a with its removed key, is audited as a conflict).
preempts_since() {
    journalctl --no-pager -o cat "MESSAGE_ID=$AUDIT_ID" RESULT=good --since "@$(($1 / 1000000000))" 2>/dev/null |
        grep -c 'preempted and aborted' || true
}
# page_is_not LBA CHAR: the block at LBA, read through this node's disk, is not 512 bytes of CHAR.
page_is_not() {
    dd if="$DEV" of=/tmp/page bs=512 skip="$1" count=1 iflag=direct status=none || return 1
    ! same_page /tmp/page "$2"
}

# failover ROUND [restart]: the cut of step 2 (and 4), asserted and timed.
failover() {
    local round=$1 restart=${2:-} t_cut t_restart
    wait_until 60 "tsv-b's service acknowledging lines" node2 appending
    clock_offset
    node2 cut_cluster
    cut_cluster
    t_cut=$(now_ns)
    echo "  cut at $(date -d "@$((t_cut / 1000000000))" +%T): corosync between 10.99.1.1 and 10.99.1.2 dropped both ways"
    if [ -n "$restart" ]; then
        sleep 2
        t_restart=$(now_ns)
        service_start restart
    fi
    wait_until 180 "tsv-b's key removed" eval '! has_key "$KEY_B"'
    wait_until 300 "group app on tsv-a" running_on appender tsv-a
    wait_until 120 "tsv-a's service acknowledging lines" appending
    step tsv-a "READ RESERVATION: WERO held by tsv-a's key" GOOD eval '[ "$(holder)" = "$KEY_A" ]'
    step tsv-b "WRITE LBA $SPARE_LBA directly (fenced)" "RESERVATION CONFLICT" node2 "write_page \"\$DEV\" $SPARE_LBA X"
    step tsv-a "READ LBA $SPARE_LBA: tsv-b's write is not there" GOOD page_is_not "$SPARE_LBA" X
    # Every line tsv-b acknowledged is in the file tsv-a's cluster mounted.
    node2 "cut -d' ' -f2- $ACKED" >/tmp/acked-b
    local missing n_acked
    n_acked=$(wc -l </tmp/acked-b)
    missing=$(grep -vxFf "$MNT/log" /tmp/acked-b | head -5 || true)
    check tsv-a "all $n_acked lines tsv-b acknowledged are on the disk" eval '[ -z "$missing" ] && [ "$n_acked" -gt 0 ]'
    [ -z "$missing" ] || echo "  missing: $missing"
    # tsv-b's own cluster tries to fence tsv-a after its 20 s delay, with a key the target no
    # longer has: it must fail, and tsv-a keeps its key and the reservation.
    # Waited for in tsv-b's fencer log (its time converted to VM b's clock), not assumed.
    local since_b=$(((t_cut - OFFSET) / 1000000000))
    wait_until 120 "tsv-b's own fencing of tsv-a failed" \
        node2 "pcmk_journal -t pacemaker-fenced --since @$since_b | grep -q \"Operation 'off' targeting tsv-a by tsv-b .*: Error\""
    node2 "pcmk_journal -t pacemaker-fenced --since @$since_b | grep -E \"targeting tsv-a\" | tail -3" | sed 's/^/  tsv-b: /' || true
    check tsv-a "tsv-b's fencing of tsv-a failed: tsv-a's key stays" has_key "$KEY_A"
    check tsv-a "tsv-a's service still acknowledging" appending

    # The timeline, on VM a's clock.
    local t_decide t_key t_started t_back t_refused
    t_decide=$(JOURNAL=pcmk_journal journal_first "$t_cut" "fenc.*tsv-b|tsv-b.*fenc")
    t_key=$(journal_first "$t_cut" "preempted and aborted" "MESSAGE_ID=$AUDIT_ID" RESULT=good)
    t_started=$(JOURNAL=pcmk_journal journal_first "$t_cut" "start operation for fs on tsv-a: ok")
    t_back=$(awk -v s="$t_cut" '$1 >= s { print $1; exit }' "$ACKED" 2>/dev/null)
    t_refused=$(node2 "journalctl -k --no-pager -o short-unix --since @$(((t_cut - OFFSET) / 1000000000)) | grep -m1 'critical nexus' | awk '{ printf \"%.0f\", \$1 * 1e9 }'" || true)
    [ -n "$t_refused" ] && t_refused=$((t_refused + OFFSET))
    narrate "Timeline of cut $round (s after the cut; VM b's event ±$OFFSET_ERR_MS ms)"
    printf '  %-70s %8s\n' "corosync traffic of tsv-b dropped both ways" 0.0
    [ -n "$restart" ] && printf '  %-70s %8s\n' "systemctl restart tcmu-shared-volume on the target" "$(secs "$t_restart" "$t_cut")"
    printf '  %-70s %8s\n' "tsv-a's cluster decides to fence tsv-b (pacemaker)" "$([ -n "$t_decide" ] && secs "$t_decide" "$t_cut" || echo '?')"
    printf '  %-70s %8s\n' "tsv-b's key removed (PREEMPT AND ABORT by fence_scsi, target's audit)" "$([ -n "$t_key" ] && secs "$t_key" "$t_cut" || echo '?')"
    printf '  %-70s %8s\n' "tsv-b's first write refused (RESERVATION CONFLICT, tsv-b's kernel)" "$([ -n "$t_refused" ] && secs "$t_refused" "$t_cut" || echo '?')"
    printf '  %-70s %8s\n' "tsv-a mounted the filesystem (Filesystem started by pacemaker)" "$([ -n "$t_started" ] && secs "$t_started" "$t_cut" || echo '?')"
    printf '  %-70s %8s\n' "service back: tsv-a's first acknowledged line" "$([ -n "$t_back" ] && secs "$t_back" "$t_cut" || echo '?')"
    [ -n "$t_back" ] && ROWS+=("$(printf '| %-6s | %-52s | %-21s | %-10s |' tsv-a "cut $round: service back on tsv-a after $(secs "$t_back" "$t_cut") s" "" info)")
    stonith_admin --history tsv-b 2>/dev/null | sed 's/^/  /'
    journalctl --no-pager -o cat "MESSAGE_ID=$AUDIT_ID" --since "@$((t_cut / 1000000000))" | sed 's/^/  audit: /'
    check tsv-a "cut $round: pacemaker fenced tsv-b exactly once" eval "[ \$(fences_of_b_since $t_cut) = 1 ]"
    check tsv-a "cut $round: one successful PREEMPT AND ABORT on the target" eval "[ \$(preempts_since $t_cut) = 1 ]"
}

# rejoin: step 3. The filesystem node1 took over is checked first, with the group stopped and
# tsv-b still out, so that the group comes back on tsv-a (with tsv-b online, its location
# preference would place a stopped group there): the move back is then `pcs resource move`.
rejoin() {
    local t0
    t0=$(now_ns)
    pcs resource disable app >/dev/null || fail "pcs resource disable app"
    wait_until 120 "group app stopped" eval '! crm_resource --resource fs --locate 2>/dev/null | grep -q "is running"'
    step tsv-a "e2fsck -fn of the shared filesystem" GOOD e2fsck -fn "$DISK"
    pcs resource enable app >/dev/null || fail "pcs resource enable app"
    wait_until 120 "group app on tsv-a again" running_on appender tsv-a
    node2 restart_fenced_node
    node2 heal_cluster
    heal_cluster
    node2 'pcs cluster start >/tmp/pcs-start.out 2>&1 || { cat /tmp/pcs-start.out; exit 1; }'
    wait_until 300 "both nodes online" both_online
    wait_until 300 "tsv-b unfenced (its key registered again)" has_key "$KEY_B"
    check tsv-b "tsv-b's key registered again (unfencing)" has_key "$KEY_B"
    check tsv-a "group app stays on tsv-a (resource-stickiness 100 > tsv-b's 50)" running_on appender tsv-a
    pcs resource move app tsv-b >/tmp/move.out 2>&1 || { cat /tmp/move.out; fail "pcs resource move app tsv-b"; }
    wait_until 300 "group app moved to tsv-b" running_on appender tsv-b
    wait_until 120 "tsv-b's service acknowledging lines" node2 appending
    step tsv-b "WRITE LBA $((SPARE_LBA + 1)) directly (unfenced)" GOOD node2 "write_page \"\$DEV\" $((SPARE_LBA + 1)) Y"
    check tsv-a "the rejoin and the move fenced nobody" eval "[ \$(fences_of_b_since $t0) = 0 ] && has_key $KEY_A && has_key $KEY_B"
    crm_mon -1 | sed 's/^/  /'
}

narrate "2. tsv-b loses the cluster network while its service writes"
failover 1
narrate "3. The filesystem checks clean; tsv-b is restarted and rejoins, is unfenced, the group moves back"
rejoin
narrate "4. The same cut, with the target's daemon restarted during it"
failover 2 restart
# tsv-b, fenced again, is taken down as after cut 1 (the cluster stays up on tsv-a alone).
node2 restart_fenced_node

summary
pair_release
pair_done
echo
echo "pacemaker: tsv-a's cluster fenced tsv-b through the target twice (once across a daemon restart); nothing acknowledged was lost"
