# Helpers for guest tests that run on a pair of VMs ("# tsv-vm: pair" in the script's header;
# sourced after lib.sh). scripts/vm/pair-guest has set up the VM and exported its role
# (TSV_VM_ROLE, also the script's first argument), its address and its peer's, and the
# directory both VMs share (TSV_PAIR, /pair). The VMs' clocks differ by up to a second or so:
# order events across them with pair_signal / pair_wait, never with timestamps.

ROLE=${TSV_VM_ROLE:?not in a VM pair: run with scripts/vm/run and '# tsv-vm: pair' in the header}
PEER=$TSV_VM_PEER
ADDR=$TSV_VM_ADDR
PEER_ADDR=$TSV_VM_PEER_ADDR
PAIR=$TSV_PAIR

# pair_signal NAME [VALUE]: tells the other VM that NAME happened (VALUE, one line, for it to
# read). Written aside and renamed, so that the other VM never reads half a value.
pair_signal() {
    printf '%s\n' "${2:-}" >"$PAIR/.$1.$ROLE" && mv -f "$PAIR/.$1.$ROLE" "$PAIR/$1" || fail "cannot write $PAIR/$1"
}

# pair_await FILE SECONDS WHAT: waits until $PAIR/FILE exists; fails at once if the other VM's
# script has ended (the host writes exit.ROLE), or after SECONDS, saying it was waiting for WHAT.
pair_await() {
    local t0=$SECONDS
    while [ ! -e "$PAIR/$1" ]; do
        [ -e "$PAIR/exit.$PEER" ] && fail "VM $PEER exited $(cat "$PAIR/exit.$PEER") before $3"
        (( SECONDS - t0 < $2 )) || fail "VM $PEER: no $3 within $2 s"
        sleep 0.1
    done
}

# pair_wait NAME [SECONDS]: waits (default 600 s) until the other VM signalled NAME; prints
# its value.
pair_wait() {
    pair_await "$1" "${2:-600}" "signal '$1'"
    cat "$PAIR/$1"
}

# pair_done: the last step of both scripts. Each VM waits for the other, so that neither powers
# off (VM a with Ceph in it, either with a target host) while the other still uses it.
pair_done() {
    pair_signal "done.$ROLE"
    pair_wait "done.$PEER" "${1:-600}" >/dev/null
}

# One VM can drive the whole test and run commands on the other, so that a scenario reads as one
# story with one summary: the other VM calls pair_serve, the driver pair_run for each command and
# pair_release at the end.
PAIR_SEQ=0

# pair_run 'COMMAND' [SECONDS]: evaluates COMMAND (a string: its variables and functions are the
# other VM's) on the other VM; prints its output and returns its exit code.
pair_run() {
    # The next number not used yet: a call in a subshell ($(pair_run ...)) cannot count for us.
    local n=$((PAIR_SEQ + 1)) limit=${2:-600}
    while [ -e "$PAIR/cmd.$n" ]; do n=$((n + 1)); done
    PAIR_SEQ=$n
    printf '%s\n' "$1" >"$PAIR/.cmd.$n" && mv -f "$PAIR/.cmd.$n" "$PAIR/cmd.$n" || fail "cannot write $PAIR/cmd.$n"
    pair_await "rc.$n" "$limit" "end of: $1"
    cat "$PAIR/out.$n"
    return "$(cat "$PAIR/rc.$n")"
}

# pair_release: the driver is done with the other VM (pair_serve returns there).
pair_release() { pair_run release >/dev/null; }

# pair_serve: runs what the driver sends with pair_run, in order, each command in a subshell of
# this shell (it sees this script's functions and variables, and cannot end the script), its
# output on this VM's console too; returns on pair_release, fails if the driver's script ends.
pair_serve() {
    local n=0 cmd rc
    while :; do
        n=$((n + 1))
        pair_await "cmd.$n" 86400 "its next command or pair_release"
        cmd=$(cat "$PAIR/cmd.$n")
        if [ "$cmd" = release ]; then
            echo 0 >"$PAIR/.rc.$n"; : >"$PAIR/out.$n"; mv -f "$PAIR/.rc.$n" "$PAIR/rc.$n"
            return 0
        fi
        echo "+ $cmd"
        ( eval "$cmd" ) >"$PAIR/.out.$n" 2>&1 && rc=0 || rc=$?
        cat "$PAIR/.out.$n"
        mv -f "$PAIR/.out.$n" "$PAIR/out.$n"
        echo "$rc" >"$PAIR/.rc.$n" && mv -f "$PAIR/.rc.$n" "$PAIR/rc.$n"
    done
}
