#!/bin/bash
# tsv-vm: pair
# Self-test of the two-VM rig (not matched by run-all.sh's NN-*.sh pattern):
#   scripts/vm/run tests/e2e/selftest-pair.sh [info]   identities differ, each reaches the other
#                                                      over the private network, events order
#   scripts/vm/run tests/e2e/selftest-pair.sh fail-b   VM b exits 7, a exits 0: the run exits 7
#   scripts/vm/run tests/e2e/selftest-pair.sh wait-b   VM b waits for a signal a never sends; a
#                                                      exits 0: b is killed after the grace, 124
# The role (a or b) is the first argument, as in every pair script.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-pair.sh"
mode=${2:-info}

case $mode in
  info)
    me="$(hostname) $(cat /etc/machine-id) $(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi) $ADDR"
    echo "this VM: $me; kernel $(uname -r), $(nproc) CPU(s)"
    pair_signal "id.$ROLE" "$me"
    other=$(pair_wait "id.$PEER" 300)
    echo "the other VM: $other"
    read -r h1 m1 i1 _ <<<"$me"
    read -r h2 m2 i2 _ <<<"$other"
    [ "$h1" != "$h2" ] && [ "$m1" != "$m2" ] && [ "$i1" != "$i2" ] || fail "both VMs share a host name, machine id or initiator name"
    getent hosts "tsv-$PEER" | grep -q "^$PEER_ADDR " || fail "tsv-$PEER does not resolve to $PEER_ADDR"
    # Over the private network: a serves its host name on TCP 7000, b reads it.
    if [ "$ROLE" = a ]; then
        python3 -c 'import socket, sys
s = socket.create_server(("10.99.0.1", 7000)); print("listening", flush=True)
c, peer = s.accept(); c.sendall(socket.gethostname().encode()); c.close(); print("served", peer[0])' &
        srv=$!
        sleep 2
        pair_signal listening
        wait "$srv" || fail "the TCP server failed"
        got=$(pair_wait got 120)
        [ "$got" = tsv-a ] || fail "b read '$got' over the network"
    else
        pair_wait listening 120 >/dev/null
        t0=$(date +%s%N)
        got=$(python3 -c 'import socket; s = socket.create_connection(("10.99.0.1", 7000), timeout=20); print(s.recv(100).decode())') ||
            fail "cannot reach 10.99.0.1:7000"
        echo "read '$got' from 10.99.0.1 in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        pair_signal got "$got"
    fi
    pair_done 120
    ok "two VMs, distinct identities, one private network"
    ;;
  fail-b)
    [ "$ROLE" = a ] || { echo "b exits 7 on purpose"; exit 7; }
    echo "a exits 0"
    ;;
  wait-b)
    [ "$ROLE" = a ] || { echo "b waits for a signal nobody sends"; sleep 100000; }
    echo "a exits 0 without signalling"
    ;;
  *)
    echo "selftest-pair: unknown mode $mode" >&2
    exit 2
    ;;
esac
