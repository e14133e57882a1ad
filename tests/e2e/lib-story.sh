# A scenario told step by step (sourced after lib.sh): each step runs one action, prints what the
# target answered against what the standard says it must, and goes into the summary table.
# 60-failover (make demo) and the two-host tests tell their scenarios with it.
ROWS=()
BAD=0

narrate() { printf '\n\033[1m%s\033[0m\n' "$*"; }

# step WHO WHAT EXPECTED COMMAND...: runs one action; exit 0 is GOOD, 24 RESERVATION CONFLICT.
step() {
    local who=$1 what=$2 want=$3 got rc; shift 3
    if "$@" >/tmp/step.out 2>&1; then rc=0; else rc=$?; fi
    case $rc in 0) got=GOOD ;; 24) got="RESERVATION CONFLICT" ;; *) got="FAILED (exit $rc)" ;; esac
    local mark=ok; [ "$got" = "$want" ] || { mark=UNEXPECTED; BAD=$((BAD + 1)); cat /tmp/step.out; }
    printf '  %-6s %-52s -> %-21s [%s]\n' "$who" "$what" "$got" "$mark"
    ROWS+=("$(printf '| %-6s | %-52s | %-21s | %-10s |' "$who" "$what" "$got" "$mark")")
}

# check WHO WHAT CONDITION...: a fact the scenario relies on (not a SCSI answer), as a row.
check() {
    local who=$1 what=$2 mark=ok; shift 2
    "$@" >/tmp/step.out 2>&1 || { mark=UNEXPECTED; BAD=$((BAD + 1)); cat /tmp/step.out; }
    printf '  %-6s %-52s    %-21s [%s]\n' "$who" "$what" "" "$mark"
    ROWS+=("$(printf '| %-6s | %-52s | %-21s | %-10s |' "$who" "$what" "" "$mark")")
}

prout() { # prout DEV ARGS...: sg_persist PR OUT; 24 on RESERVATION CONFLICT
    local dev=$1; shift
    tur "$dev"
    if sg_persist -n --out "$@" "$dev" >/tmp/prout.out 2>&1; then return 0; fi
    grep -qi 'reservation conflict' /tmp/prout.out && return 24
    cat /tmp/prout.out; return 1
}
write_page() { tur "$1"; scsi_write "$1" "$2" "$3"; }
same_page() { cmp "$1" <(head -c 512 /dev/zero | tr '\0' "$2"); } # same_page FILE CHAR: 512 bytes of CHAR
key_list() { sg_persist -n --in --read-keys "$1" 2>/dev/null | grep -E '^[[:space:]]+0x' | tr -d ' ' | tr '\n' ' '; }

# summary: the table of every step; fails the test if any answer was not the standard's.
summary() {
    narrate "Summary"
    printf '| %-6s | %-52s | %-21s | %-10s |\n' node action "target answered" check
    printf '|%s|%s|%s|%s|\n' -------- ------------------------------------------------------ ----------------------- ------------
    printf '%s\n' "${ROWS[@]}"
    if [ "$BAD" -ne 0 ]; then fail "$BAD step(s) did not answer as the standard says"; fi
}
