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

# pair_wait NAME [SECONDS]: waits (default 600 s) until the other VM signalled NAME; prints
# its value. Fails at once if the other VM's script has ended (the host writes exit.ROLE).
pair_wait() {
    local name=$1 n=${2:-600} t0=$SECONDS
    while [ ! -e "$PAIR/$name" ]; do
        [ -e "$PAIR/exit.$PEER" ] && fail "VM $PEER exited $(cat "$PAIR/exit.$PEER") before signalling '$name'"
        (( SECONDS - t0 < n )) || fail "VM $PEER did not signal '$name' within ${n} s"
        sleep 0.2
    done
    cat "$PAIR/$name"
}

# pair_done: the last step of both scripts. Each VM waits for the other, so that neither powers
# off (VM a with Ceph in it, either with a target host) while the other still uses it.
pair_done() {
    pair_signal "done.$ROLE"
    pair_wait "done.$PEER" "${1:-600}" >/dev/null
}

# on_role ROLE CMD...: runs CMD only on that VM.
on_role() { local r=$1; shift; [ "$ROLE" != "$r" ] || "$@"; }
