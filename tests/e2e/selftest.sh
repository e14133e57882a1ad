#!/bin/bash
# Self-test of the VM runner itself (not matched by run-all.sh's NN-*.sh pattern):
#   scripts/vm/run tests/e2e/selftest.sh [info]     prints facts about the guest, exits 0
#   scripts/vm/run tests/e2e/selftest.sh fail [N]   writes to stdout and stderr, exits N (3)
#   TSV_VM_TIMEOUT=60 scripts/vm/run tests/e2e/selftest.sh hang   never returns
case ${1:-info} in
  info)
    echo "guest kernel $(uname -r), host name $(hostname), $(nproc) CPUs, args: $*"
    findmnt -no SOURCE,FSTYPE,OPTIONS /repo
    ip -br addr
    ;;
  fail)
    echo "selftest: this line is on stdout"
    echo "selftest: this line is on stderr; exiting ${2:-3} on purpose" >&2
    exit "${2:-3}"
    ;;
  hang)
    echo "selftest: sleeping forever; the host must time out"
    sleep 100000
    ;;
  *)
    echo "selftest: unknown mode $1" >&2
    exit 2
    ;;
esac
